"""Reading a team's own tool catalog: OpenAI function specs, plus an optional project YAML.

- ``tools.json``: the function-calling format users already have, a JSON list of
  ``{"type": "function", "function": {"name", "description", "parameters": <JSON schema>}}``
  (bare ``{"name", "description", "parameters"}`` objects and ``{"tools": [...]}`` are read too).
  Positional order is the order of ``properties``; an argument not in ``required`` is optional (a plan
  may leave it out when it is last, or pass None).
- ``project.yaml``: what that format cannot say. ``functions`` (the JSON file, relative to the YAML,
  or the list inline), ``name``, ``groups`` ({group: [tools]}), ``order`` ({tool: [arguments]}),
  ``rules`` ([{tools: [...], groups: [...], text: ...}]: custom instructions shown with those tools),
  ``instructions`` (general custom instructions, replacing the generic ones).
- ``catalog.json`` as a trained planner folder carries it (``Catalog.to_dict``).

Every problem is one line naming the file and the tool (and argument).
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from .catalog import (CATALOG_FILE, NAME, SAVED_FORMAT, SCALAR_TYPES, TINYAGENT, Arg, Catalog, Rule, Tool,
                      fits_type)
from .jsonio import BadFile, BadLine, decode, read_json

_SCALARS = {"string": "str", "integer": "int", "number": "float", "boolean": "bool"}
_FORMATS = {"date-time": "datetime", "date": "date"}
_FORMAT_TEXT = {"datetime": "'YYYY-MM-DD HH:MM:SS'", "date": "'YYYY-MM-DD'"}
_ARG_KEYS = {"type", "description", "enum", "format", "default", "items", "nullable", "title", "examples"}
_PROJECT_KEYS = {"functions", "name", "groups", "order", "rules", "instructions"}


class CatalogError(BadFile):
    """A catalog file that cannot be used: one line naming the file, the tool and the field."""


def _types(schema: dict, where: str) -> tuple[str, bool]:
    """(JSON type, nullable) of a property schema."""
    kind = schema.get("type")
    nullable = bool(schema.get("nullable", False))
    if isinstance(kind, list):
        nullable = nullable or "null" in kind
        kind = [k for k in kind if k != "null"]
        if len(kind) != 1:
            raise CatalogError(f"{where}: a union of types {kind} is not supported; use one type (and null)")
        kind = kind[0]
    if kind is None:
        raise CatalogError(f"{where}: no 'type' (supported: string, integer, number, boolean, array)")
    return kind, nullable


def _arg(name: str, schema, required: bool, where: str) -> tuple[Arg, str | None]:
    """An argument and the bullet that describes it (None when the schema says nothing to add)."""
    where = f"{where}, argument {name!r}"
    if not NAME.fullmatch(name):
        raise CatalogError(f"{where}: argument names must be identifiers")
    if not isinstance(schema, dict):
        raise CatalogError(f"{where}: expected a JSON schema object")
    if extra := sorted(set(schema) - _ARG_KEYS):
        raise CatalogError(f"{where}: unsupported schema feature(s) {', '.join(extra)}")
    kind, nullable = _types(schema, where)
    if kind == "array":
        items = schema.get("items")
        if not isinstance(items, dict):
            raise CatalogError(f"{where}: an array needs 'items' with a type")
        if extra := sorted(set(items) - {"type", "description", "title"}):
            raise CatalogError(f"{where}: unsupported feature(s) in items: {', '.join(extra)}")
        item, _ = _types(items, where + " items")
        if item not in _SCALARS:
            raise CatalogError(f"{where}: arrays of {item} are not supported (only of string, integer, number, boolean)")
        type_ = f"list[{_SCALARS[item]}]"
    elif kind in _SCALARS:
        type_ = _SCALARS[kind]
    else:
        raise CatalogError(f"{where}: type {kind!r} is not supported (string, integer, number, boolean, array)")
    enum = schema.get("enum", [])
    if not isinstance(enum, list) or (enum and type_ not in SCALAR_TYPES) or not all(fits_type(v, type_)
                                                                                       for v in enum):
        raise CatalogError(f"{where}: 'enum' must be a list of {type_} values")
    fmt = _FORMATS.get(schema.get("format")) if type_ == "str" else None
    arg = Arg(name, type_, nullable, fmt, tuple(enum), not required)
    notes = []
    if enum:
        notes.append("one of " + ", ".join(repr(v) for v in enum))
    if fmt:
        notes.append(f"format {_FORMAT_TEXT[fmt]}")
    if not required:
        notes.append(f"optional, default {schema['default']!r}" if "default" in schema else "optional")
    text = str(schema.get("description", "")).strip()
    if notes:
        joined = "; ".join(notes)
        text = f"{text} ({joined})" if text else joined[0].upper() + joined[1:]
    return arg, f"{name}: {text}" if text else None


def _signature(name: str, args: list[Arg], defaults: dict) -> str:
    def one(a: Arg) -> str:
        text = f"{a.name}: {a.type}" + (" | None" if a.nullable else "")
        return text + (f" = {defaults.get(a.name)!r}" if a.optional else "")
    return f"{name}({', '.join(map(one, args))})"


def _tool(spec, path: Path, order: dict, seen: set) -> Tool:
    if isinstance(spec, dict) and spec.get("type") == "function":
        spec = spec.get("function")
    if not isinstance(spec, dict):
        raise CatalogError(f"{path}: every entry must be a function spec object")
    name = spec.get("name")
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise CatalogError(f"{path}: function name {name!r} must be an identifier")
    where = f"{path}: tool {name!r}"
    if name == "join":
        raise CatalogError(f"{where}: 'join' is reserved for the end of every plan")
    if name in seen:
        raise CatalogError(f"{where}: defined twice")
    seen.add(name)
    description = spec.get("description")
    if not isinstance(description, str) or not description.strip():
        raise CatalogError(f"{where}: missing description (the planner only knows a tool by it)")
    params = spec.get("parameters") or {"type": "object", "properties": {}}
    if not isinstance(params, dict) or params.get("type", "object") != "object":
        raise CatalogError(f"{where}: 'parameters' must be a JSON schema of type object")
    props, required = params.get("properties") or {}, params.get("required") or []
    if not isinstance(props, dict) or not isinstance(required, list):
        raise CatalogError(f"{where}: 'properties' must be an object and 'required' a list")
    if missing := [r for r in required if r not in props]:
        raise CatalogError(f"{where}: required argument(s) {', '.join(map(repr, missing))} not in properties")
    names = list(props)
    if name in order:
        if sorted(order[name]) != sorted(names):
            raise CatalogError(f"{where}: 'order' must list exactly the arguments {names}")
        names = list(order[name])
    built = [_arg(n, props[n], n in required, where) for n in names]
    args = [a for a, _ in built]
    bullets = [line.strip() for line in description.strip().splitlines() if line.strip()]
    bullets += [b for _, b in built if b]
    defaults = {n: props[n]["default"] for n in names if "default" in props[n]}
    return Tool(name, _signature(name, args, defaults), tuple(bullets), tuple(args))


def _functions(data, path: Path) -> list:
    if isinstance(data, dict) and isinstance(data.get("tools"), list):
        data = data["tools"]
    if not isinstance(data, list) or not data:
        raise CatalogError(f"{path}: expected a non-empty JSON list of OpenAI function specs")
    return data


def _mapping(value, path: Path, key: str) -> dict:
    if value is None:
        return {}
    if not isinstance(value, dict) or not all(isinstance(v, list) for v in value.values()):
        raise CatalogError(f"{path}: {key!r} must map names to lists")
    return value


def _from_project(tree, path: Path) -> Catalog:
    if not isinstance(tree, dict):
        raise CatalogError(f"{path}: expected a mapping with 'functions'")
    if extra := sorted(set(tree) - _PROJECT_KEYS):
        raise CatalogError(f"{path}: unknown key(s) {', '.join(extra)} (known: {', '.join(sorted(_PROJECT_KEYS))})")
    functions = tree.get("functions")
    if isinstance(functions, str):
        source = path.parent / functions
        functions = _functions(read_json(source), source)
    else:
        source, functions = path, _functions(functions, path)
    order = _mapping(tree.get("order"), path, "order")
    seen: set = set()
    tools = [_tool(spec, source, order, seen) for spec in functions]
    groups = _mapping(tree.get("groups"), path, "groups")
    group_of = {}
    for group, members in groups.items():
        for m in members:
            if m not in seen:
                raise CatalogError(f"{path}: group {group!r} names unknown tool {m!r}")
            group_of[m] = str(group)
    tools = [replace(t, group=group_of.get(t.name, "")) for t in tools]
    rules = []
    for i, r in enumerate(tree.get("rules") or [], 1):
        if not isinstance(r, dict) or not isinstance(r.get("text"), str) or not r["text"].strip():
            raise CatalogError(f"{path}: rule {i} needs 'text' and 'tools' or 'groups'")
        names = set(r.get("tools") or [])
        for g in r.get("groups") or []:
            if g not in groups:
                raise CatalogError(f"{path}: rule {i} names unknown group {g!r}")
            names |= set(groups[g])
        if not names or (unknown := sorted(names - seen)):
            raise CatalogError(f"{path}: rule {i} " + (f"names unknown tool(s) {', '.join(unknown)}"
                                                       if names else "applies to no tool"))
        rules.append(Rule(frozenset(names), r["text"].strip()))
    kwargs = {"name": str(tree.get("name") or path.stem)}
    if "instructions" in tree:
        instructions = tree["instructions"]
        if not isinstance(instructions, list) or not all(isinstance(x, str) for x in instructions):
            raise CatalogError(f"{path}: 'instructions' must be a list of strings")
        kwargs["instructions"] = tuple(instructions)
    return Catalog(tuple(tools), tuple(rules), **kwargs)


def load_catalog(source: str | Path | None) -> Catalog:
    """A catalog from a file (see the module docstring) or a planner folder; None gives TinyAgent's."""
    if source is None:
        return TINYAGENT
    path = Path(source)
    if path.is_dir():
        if not (path / CATALOG_FILE).is_file():
            raise CatalogError(f"{path}: no {CATALOG_FILE} in this folder")
        path = path / CATALOG_FILE
    if not path.is_file():
        raise CatalogError(f"{path}: no such catalog file")
    if path.suffix in (".yaml", ".yml"):
        import yaml
        try:
            tree = yaml.safe_load(decode(path.read_bytes()))
        except BadLine as exc:
            raise CatalogError(f"{path}: {exc}") from None
        except (yaml.YAMLError, RecursionError) as exc:
            raise CatalogError(f"{path}: not YAML ({str(exc).splitlines()[0]})") from None
        return _from_project(tree, path)
    data = read_json(path)
    if isinstance(data, dict) and data.get("format") == SAVED_FORMAT:
        try:
            return Catalog.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise CatalogError(f"{path}: damaged catalog ({type(exc).__name__}: {exc})") from None
    return _from_project({"functions": _functions(data, path)}, path)


def save_catalog(catalog: Catalog, folder: str | Path) -> None:
    import json
    (Path(folder) / CATALOG_FILE).write_text(json.dumps(catalog.to_dict(), indent=1, ensure_ascii=False))


def folder_catalog(folder: str | Path) -> Catalog:
    """The catalog a planner or classifier folder carries; TinyAgent's for other folders and model names."""
    path = Path(folder) / CATALOG_FILE
    return load_catalog(path) if path.is_file() else TINYAGENT


def resolve_catalog(source: str | Path | None, folder: str | Path | None = None) -> Catalog:
    """What a command plans with: the file given, else the folder's own catalog, else TinyAgent's."""
    if source is not None:
        return load_catalog(source)
    return folder_catalog(folder) if folder is not None else TINYAGENT


CATALOG_HELP = "tool catalog: OpenAI function specs (.json) or project YAML; default TinyAgent's 16 tools"
