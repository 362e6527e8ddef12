"""The 16 desktop tools: prompt descriptions, app groups, prompt rules and argument schema.

Label id = position in ``TOOLS``; the tool classifier and every report use this order.
"""
from __future__ import annotations

from dataclasses import dataclass

ARG_TYPES = ("str", "list[str]", "int", "bool")


@dataclass(frozen=True)
class Arg:
    name: str
    type: str  # one of ARG_TYPES
    nullable: bool = False  # None accepted where the value does not apply
    format: str | None = None  # "datetime": 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD'

    @property
    def is_list(self) -> bool:
        return self.type == "list[str]"


@dataclass(frozen=True)
class Tool:
    id: int
    name: str
    app: str
    signature: str
    bullets: tuple[str, ...]
    args: tuple[Arg, ...]

    @property
    def description(self) -> str:
        """The text the planner sees: signature line, then ` - ` bullets."""
        return "\n".join([self.signature, *(f" - {b}" for b in self.bullets)])


def _tool(i: int, app: str, signature: str, args: list[tuple], bullets: list[str]) -> Tool:
    name = signature.split("(", 1)[0]
    return Tool(i, name, app, signature, tuple(bullets), tuple(Arg(*a) for a in args))


TOOLS: tuple[Tool, ...] = (
    _tool(0, "calendar",
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
    _tool(1, "contacts", "get_phone_number(name: str) -> str", [("name", "str")],
          ["Search for a contact and return their phone number.",
           "Returns the phone number, which can be passed to send_sms."]),
    _tool(2, "contacts", "get_email_address(name: str) -> str", [("name", "str")],
          ["Search for a contact and return their email address.",
           "Returns the email address, which can be used as an email recipient, cc, "
           "calendar invitee or zoom meeting invitee."]),
    _tool(3, "files", "open_and_get_file_path(file_name: str) -> str", [("file_name", "str")],
          ["Open the file with the given name and return its path.",
           "Returns the file path, which can be passed to summarize_pdf or attached to an email."]),
    _tool(4, "files", "summarize_pdf(pdf_path: str) -> str", [("pdf_path", "str")],
          ["Summarize a PDF file at the given path.",
           "The path must come from open_and_get_file_path.",
           "Returns the summary, which can be used as email context or note content."]),
    _tool(5, "mail",
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
    _tool(6, "mail", "reply_to_email(cc: list[str], context: str, attachments: list[str]) -> str",
          [("cc", "list[str]"), ("context", "str"), ("attachments", "list[str]")],
          ["Reply to the currently selected email.",
           "The cc is a list of email addresses; context and attachments as in compose_new_email.",
           "Returns the status of the reply."]),
    _tool(7, "mail",
          "forward_email(recipients: list[str], cc: list[str], context: str, attachments: list[str]) -> str",
          [("recipients", "list[str]"), ("cc", "list[str]"), ("context", "str"), ("attachments", "list[str]")],
          ["Forward the currently selected email.",
           "The recipients and cc are lists of email addresses; context and attachments as in "
           "compose_new_email.",
           "Returns the status of forwarding the email."]),
    _tool(8, "maps", "maps_open_location(location: str) -> str", [("location", "str")],
          ["Open the given location in Maps.",
           "Returns the Maps URL, which can be sent by SMS or email."]),
    _tool(9, "maps", "maps_show_directions(start_location: str, end_location: str, transport: str) -> str",
          [("start_location", "str"), ("end_location", "str"), ("transport", "str")],
          ["Show directions from start_location to end_location in Maps.",
           "Use an empty string for start_location to start from the current location.",
           "transport is 'd' for driving (default), 'w' for walking, or 'r' for public transit.",
           "Returns the Maps URL, which can be sent by SMS or email."]),
    _tool(10, "notes", "create_note(name: str, content: str, folder: str) -> str",
          [("name", "str"), ("content", "str"), ("folder", "str", True)],
          ["Create a new note with the given name and content.",
           "The folder is optional; use an empty string if not applicable.",
           "Returns the status of the note creation."]),
    _tool(11, "notes", "open_note(name: str, folder: str) -> str",
          [("name", "str"), ("folder", "str", True)],
          ["Open the note with the given name.",
           "The folder is optional; use an empty string if not applicable.",
           "Returns the content of the note."]),
    _tool(12, "notes", "append_note_content(name: str, content: str, folder: str) -> str",
          [("name", "str"), ("content", "str"), ("folder", "str", True)],
          ["Append content to an existing note.",
           "The folder is optional; use an empty string if not applicable.",
           "Returns the status of the update."]),
    _tool(13, "reminders",
          "create_reminder(name: str, due_date: str, notes: str, list_name: str, priority: int, "
          "all_day: bool) -> str",
          [("name", "str"), ("due_date", "str", True, "datetime"), ("notes", "str", True), ("list_name", "str", True),
           ("priority", "int"), ("all_day", "bool")],
          ["Create a new reminder.",
           "The format for due_date is 'YYYY-MM-DD HH:MM:SS'; use an empty string if there is none.",
           "priority is 0 by default; all_day is False by default.",
           "Returns the status of the reminder creation."]),
    _tool(14, "sms", "send_sms(recipients: list[str], message: str) -> str",
          [("recipients", "list[str]"), ("message", "str")],
          ["Send an SMS message to one or more phone numbers.",
           "Send a single SMS to several contacts rather than one each.",
           "Returns the status of sending the message."]),
    _tool(15, "zoom",
          "get_zoom_meeting_link(topic: str, start_time: str, duration: int, "
          "meeting_invitees: Sequence[str]) -> str",
          [("topic", "str"), ("start_time", "str", False, "datetime"), ("duration", "int"), ("meeting_invitees", "list[str]")],
          ["Create a Zoom meeting and return its link.",
           "The format for start_time is 'YYYY-MM-DD HH:MM:SS'; duration is in minutes.",
           "meeting_invitees is a list of email addresses.",
           "The link must then be used in a calendar event or an email."]),
)

TOOL_NAMES: tuple[str, ...] = tuple(t.name for t in TOOLS)
BY_NAME: dict[str, Tool] = {t.name: t for t in TOOLS}
JOIN = "join"

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

APPS: dict[str, tuple[str, ...]] = {}
for _t in TOOLS:
    APPS.setdefault(_t.app, ())
    APPS[_t.app] += (_t.name,)

# Tool-specific custom instructions, each added when any of its tools is in the prompt (spec 2.3).
_EMAIL = {"compose_new_email", "reply_to_email", "forward_email"}
TOOL_RULES: tuple[tuple[frozenset[str], str], ...] = (
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
)


def get_tool(name: str) -> Tool:
    """Look a tool up by name, with an error that lists the valid names."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown tool {name!r}; valid tools: {', '.join(TOOL_NAMES)}") from None


def rules_for(tool_names: set[str] | frozenset[str]) -> list[str]:
    return [rule for tools, rule in TOOL_RULES if tools & set(tool_names)]
