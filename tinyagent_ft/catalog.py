"""Tool catalogs: the tools a planner may call, as the prompt shows them and the parser, the grammar,
the metrics, the classifier and the server check them.

A ``Catalog`` is a value passed to every part that needs one; ``TINYAGENT`` (TinyAgent's 16 desktop
tools, their prompt text byte for byte) is the default. Label id = position in ``catalog.tools``: the
tool classifier and every report use this order. ``catalog_files.load_catalog`` reads a user's own
catalog (OpenAI function specs, plus an optional project YAML).
"""
from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

JOIN = "join"
SCALAR_TYPES = ("str", "int", "float", "bool")
ARG_TYPES = SCALAR_TYPES + tuple(f"list[{t}]" for t in SCALAR_TYPES)
FORMATS = ("datetime", "date")  # datetime: 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD'; date: 'YYYY-MM-DD'
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PY_TYPES = {"str": (str,), "int": (int,), "float": (int, float), "bool": (bool,)}
SAVED_FORMAT = "tinyagent-ft-catalog/1"
CATALOG_FILE = "catalog.json"  # the catalog a trained planner folder carries


def fits_type(value, scalar_type: str) -> bool:
    """Whether a Python value is of a scalar argument type (one of SCALAR_TYPES); True and False are not numbers."""
    if isinstance(value, bool) and scalar_type != "bool":
        return False
    return isinstance(value, _PY_TYPES[scalar_type])


@dataclass(frozen=True)
class Arg:
    name: str
    type: str  # one of ARG_TYPES
    nullable: bool = False  # None accepted where the value does not apply
    format: str | None = None  # one of FORMATS, for str arguments
    enum: tuple = ()  # the only values allowed, when not empty
    optional: bool = False  # may be left out, with every argument after it; None is accepted too

    @property
    def is_list(self) -> bool:
        return self.type.startswith("list[")

    @property
    def item_type(self) -> str:
        return self.type[5:-1] if self.is_list else self.type

    @property
    def accepts_none(self) -> bool:
        return self.nullable or self.optional


@dataclass(frozen=True)
class Tool:
    name: str
    signature: str  # the first line the prompt shows
    bullets: tuple[str, ...]
    args: tuple[Arg, ...]  # positional order
    group: str = ""  # the app a tool belongs to; prompt rules may name groups

    @property
    def description(self) -> str:
        """The text the planner sees: signature line, then ` - ` bullets."""
        return "\n".join([self.signature, *(f" - {b}" for b in self.bullets)])

    @property
    def required(self) -> int:
        """How many leading arguments every call writes: the rest are optional and may be left out."""
        return max((i + 1 for i, a in enumerate(self.args) if not a.optional), default=0)


@dataclass(frozen=True)
class Rule:
    """A custom instruction the prompt adds when any of ``tools`` is shown."""
    tools: frozenset[str]
    text: str


JOIN_DESCRIPTION = (
    "join():\n"
    " - Collects and combines results from prior actions.\n"
    " - A LLM agent is called upon invoking join() to either finalize the user query or wait "
    "until the plans are executed.\n"
    " - join should always be the last action in the plan, and will be called in two scenarios:\n"
    "   (a) if the answer can be determined by gathering the outputs from tasks to generate the "
    "final response.\n"
    "   (b) if the answer cannot be determined in the planning phase before you execute the plans."
)

# Custom instructions after "Today's date is ...", before the tool rules.
GENERIC_INSTRUCTIONS = (
    "Do not use named arguments; pass every argument positionally.",
    "Fill every argument of an action; use an empty string, empty list or the default when a value does not apply.",
    "Write dates and times in ISO format, 'YYYY-MM-DD HH:MM:SS'.",
    'To use the output of an earlier action, write $ followed by its index, for example "$1".',
    "Call join only once, at the very end of the plan.",
)


@dataclass(frozen=True)
class Catalog:
    tools: tuple[Tool, ...]
    rules: tuple[Rule, ...] = ()
    instructions: tuple[str, ...] = GENERIC_INSTRUCTIONS
    join_description: str = JOIN_DESCRIPTION
    name: str = "custom"
    by_name: dict[str, Tool] = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self):
        by_name: dict[str, Tool] = {}
        for t in self.tools:
            if not NAME.fullmatch(t.name) or t.name == JOIN:
                raise ValueError(f"tool name {t.name!r} must be an identifier other than {JOIN!r}")
            if t.name in by_name:
                raise ValueError(f"tool {t.name!r} is defined twice")
            by_name[t.name] = t
        for r in self.rules:
            if unknown := sorted(r.tools - by_name.keys()):
                raise ValueError(f"rule {r.text[:40]!r} names unknown tool(s) {', '.join(unknown)}")
        object.__setattr__(self, "by_name", by_name)

    @property
    def names(self) -> tuple[str, ...]:
        """Tool names in label order."""
        return tuple(t.name for t in self.tools)

    def __contains__(self, name: object) -> bool:
        return name in self.by_name

    def __len__(self) -> int:
        return len(self.tools)

    def get(self, name: str) -> Tool:
        """Look a tool up by name, with an error that lists the valid names."""
        try:
            return self.by_name[name]
        except KeyError:
            raise KeyError(f"unknown tool {name!r}; valid tools: {', '.join(self.names)}") from None

    @property
    def groups(self) -> dict[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for t in self.tools:
            out[t.group] = out.get(t.group, ()) + (t.name,)
        return out

    def rules_for(self, tool_names: Iterable[str]) -> list[str]:
        names = set(tool_names)
        return [r.text for r in self.rules if r.tools & names]

    def to_dict(self) -> dict:
        """A JSON-ready form that ``from_dict`` reads back exactly (what a planner folder carries)."""
        def arg(a: Arg) -> dict:
            d = {"name": a.name, "type": a.type}
            d.update({k: v for k, v in (("nullable", a.nullable), ("format", a.format), ("enum", list(a.enum)),
                                         ("optional", a.optional)) if v})
            return d
        return {"format": SAVED_FORMAT, "name": self.name,
                "tools": [{"name": t.name, "group": t.group, "signature": t.signature, "bullets": list(t.bullets),
                           "args": [arg(a) for a in t.args]} for t in self.tools],
                "rules": [{"tools": sorted(r.tools), "text": r.text} for r in self.rules],
                "instructions": list(self.instructions), "join_description": self.join_description}

    @classmethod
    def from_dict(cls, d: dict) -> Catalog:
        tools = tuple(Tool(t["name"], t["signature"], tuple(t["bullets"]),
                           tuple(Arg(a["name"], a["type"], a.get("nullable", False), a.get("format"),
                                     tuple(a.get("enum", ())), a.get("optional", False)) for a in t["args"]),
                           t.get("group", "")) for t in d["tools"])
        return cls(tools, tuple(Rule(frozenset(r["tools"]), r["text"]) for r in d.get("rules", ())),
                   tuple(d.get("instructions", GENERIC_INSTRUCTIONS)), d.get("join_description", JOIN_DESCRIPTION),
                   d.get("name", "custom"))


# --- TinyAgent's 16 desktop tools: the default catalog ------------------------------------------------

def _tool(app: str, signature: str, args: list[tuple], bullets: list[str]) -> Tool:
    name = signature.split("(", 1)[0]
    return Tool(name, signature, tuple(bullets), tuple(Arg(*a) for a in args), app)


_TINYAGENT_TOOLS: tuple[Tool, ...] = (
    _tool("calendar",
          "create_calendar_event(title: str, start_date: str, end_date: str, location: str, "
          "invitees: list[str], notes: str, calendar: str) -> str",
          [("title", "str"), ("start_date", "str", False, "datetime"), ("end_date", "str", False, "datetime"),
           ("location", "str", True),
           ("invitees", "list[str]"), ("notes", "str", True), ("calendar", "str", True)],
          ["Create a calendar event.",
           "The format for start_date and end_date is 'YYYY-MM-DD HH:MM:SS'.",
           "For invitees, you need a list of email addresses; use an empty list if not applicable.",
           "For location, notes, and calendar, you can use an empty string or None if not applicable.",
           "Returns the status of the event creation."]),
    _tool("contacts", "get_phone_number(name: str) -> str", [("name", "str")],
          ["Search for a contact and return their phone number.",
           "Returns the phone number, which can be passed to send_sms."]),
    _tool("contacts", "get_email_address(name: str) -> str", [("name", "str")],
          ["Search for a contact and return their email address.",
           "Returns the email address, which can be used as an email recipient, cc, "
           "calendar invitee or zoom meeting invitee."]),
    _tool("files", "open_and_get_file_path(file_name: str) -> str", [("file_name", "str")],
          ["Open the file with the given name and return its path.",
           "Returns the file path, which can be passed to summarize_pdf or attached to an email."]),
    _tool("files", "summarize_pdf(pdf_path: str) -> str", [("pdf_path", "str")],
          ["Summarize a PDF file at the given path.",
           "The path must come from open_and_get_file_path.",
           "Returns the summary, which can be used as email context or note content."]),
    _tool("mail",
          "compose_new_email(recipients: list[str], cc: list[str], subject: str, context: str, "
          "attachments: list[str]) -> str",
          [("recipients", "list[str]"), ("cc", "list[str]"), ("subject", "str"), ("context", "str"),
           ("attachments", "list[str]")],
          ["Compose a new email.",
           "The recipients and cc are lists of email addresses.",
           "The context is only for passing the output of an earlier action (a map link, a zoom "
           "link, a summary); use an empty string otherwise.",
           "The attachments are file paths; use an empty list if not applicable.",
           "Returns the status of composing the email."]),
    _tool("mail", "reply_to_email(cc: list[str], context: str, attachments: list[str]) -> str",
          [("cc", "list[str]"), ("context", "str"), ("attachments", "list[str]")],
          ["Reply to the currently selected email.",
           "The cc is a list of email addresses; context and attachments as in compose_new_email.",
           "Returns the status of the reply."]),
    _tool("mail",
          "forward_email(recipients: list[str], cc: list[str], context: str, attachments: list[str]) -> str",
          [("recipients", "list[str]"), ("cc", "list[str]"), ("context", "str"), ("attachments", "list[str]")],
          ["Forward the currently selected email.",
           "The recipients and cc are lists of email addresses; context and attachments as in "
           "compose_new_email.",
           "Returns the status of forwarding the email."]),
    _tool("maps", "maps_open_location(location: str) -> str", [("location", "str")],
          ["Open the given location in Maps.",
           "Returns the Maps URL, which can be sent by SMS or email."]),
    _tool("maps", "maps_show_directions(start_location: str, end_location: str, transport: str) -> str",
          [("start_location", "str"), ("end_location", "str"), ("transport", "str")],
          ["Show directions from start_location to end_location in Maps.",
           "Use an empty string for start_location to start from the current location.",
           "transport is 'd' for driving (default), 'w' for walking, or 'r' for public transit.",
           "Returns the Maps URL, which can be sent by SMS or email."]),
    _tool("notes", "create_note(name: str, content: str, folder: str) -> str",
          [("name", "str"), ("content", "str"), ("folder", "str", True)],
          ["Create a new note with the given name and content.",
           "The folder is optional; use an empty string if not applicable.",
           "Returns the status of the note creation."]),
    _tool("notes", "open_note(name: str, folder: str) -> str",
          [("name", "str"), ("folder", "str", True)],
          ["Open the note with the given name.",
           "The folder is optional; use an empty string if not applicable.",
           "Returns the content of the note."]),
    _tool("notes", "append_note_content(name: str, content: str, folder: str) -> str",
          [("name", "str"), ("content", "str"), ("folder", "str", True)],
          ["Append content to an existing note.",
           "The folder is optional; use an empty string if not applicable.",
           "Returns the status of the update."]),
    _tool("reminders",
          "create_reminder(name: str, due_date: str, notes: str, list_name: str, priority: int, "
          "all_day: bool) -> str",
          [("name", "str"), ("due_date", "str", True, "datetime"), ("notes", "str", True), ("list_name", "str", True),
           ("priority", "int"), ("all_day", "bool")],
          ["Create a new reminder.",
           "The format for due_date is 'YYYY-MM-DD HH:MM:SS'; use an empty string if there is none.",
           "priority is 0 by default; all_day is False by default.",
           "Returns the status of the reminder creation."]),
    _tool("sms", "send_sms(recipients: list[str], message: str) -> str",
          [("recipients", "list[str]"), ("message", "str")],
          ["Send an SMS message to one or more phone numbers.",
           "Send a single SMS to several contacts rather than one each.",
           "Returns the status of sending the message."]),
    _tool("zoom",
          "get_zoom_meeting_link(topic: str, start_time: str, duration: int, "
          "meeting_invitees: Sequence[str]) -> str",
          [("topic", "str"), ("start_time", "str", False, "datetime"), ("duration", "int"), ("meeting_invitees", "list[str]")],
          ["Create a Zoom meeting and return its link.",
           "The format for start_time is 'YYYY-MM-DD HH:MM:SS'; duration is in minutes.",
           "meeting_invitees is a list of email addresses.",
           "The link must then be used in a calendar event or an email."]),
)


# Tool-specific custom instructions, each added when any of its tools is in the prompt (spec 2.3).
_EMAIL = {"compose_new_email", "reply_to_email", "forward_email"}
_TINYAGENT_RULES: tuple[Rule, ...] = tuple(Rule(frozenset(t), text) for t, text in (
    (frozenset(_EMAIL),
     "If you need to send an email to a contact, first get their email address with "
     "get_email_address, unless the address is given in the query."),
    (frozenset({"send_sms"}),
     "If you need to send an SMS to a contact, first get their phone number with get_phone_number, "
     "unless the number is given in the query. Send a single SMS to several contacts instead of one each."),
    (frozenset(_EMAIL | {"send_sms"}),
     "Always send the email or SMS in the plan itself before calling join; never ask join to send it."),
    (frozenset({"get_zoom_meeting_link"}),
     "If the query asks for a zoom meeting, you must call get_zoom_meeting_link and pass its link to "
     "a calendar event or an email."),
    (frozenset({"open_note", "append_note_content", "create_note"}),
     "You do not need to call open_note before append_note_content."),
    (frozenset({"maps_open_location", "maps_show_directions"}),
     "You do not need to call maps_open_location before maps_show_directions."),
))

TINYAGENT = Catalog(_TINYAGENT_TOOLS, _TINYAGENT_RULES,
                    ("If no duration is given for a meeting, make it 60 minutes long.", *GENERIC_INSTRUCTIONS),
                    name="tinyagent")
