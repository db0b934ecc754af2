"""Command-line flags derived from configuration dataclasses: one flag per field, with the field's type,
default and help text, so a new field is on the command line without a second list to keep up to date.

A field's flag is ``--field-name``; a field of a nested dataclass is ``--field-parent`` (``jitter.scale`` is
``--scale-jitter``). Booleans get ``--x`` / ``--no-x``, lists are repeatable flags, tuples take one value
per element. ``option(...)`` declares a field with its help text (and, rarely, another flag name).
"""
from __future__ import annotations

import argparse
import dataclasses
import typing
from typing import Any, Callable, Dict, List, Optional, Tuple

MISSING = dataclasses.MISSING
_METAVARS = {int: "N", float: "X"}  # in the help texts too: "every N epochs"


def option(default: Any = MISSING, help: str = "", *, factory: Optional[Callable[[], Any]] = None,
           flag: Optional[str] = None, metavar: Optional[str] = None) -> Any:
    """A dataclass field with the help text its flag shows; ``factory`` for mutable defaults, ``flag`` when the
    flag is not ``--field-name``, ``metavar`` for the value's shape in the help."""
    metadata = {"help": help, "flag": flag, "metavar": metavar}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _fields(cls: type, parent: Tuple[str, ...] = ()) -> List[Tuple[Tuple[str, ...], dataclasses.Field, Any]]:
    """(path, field, type) of every leaf field of ``cls``, nested dataclasses flattened, in declaration order."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        kind = hints[f.name]
        if dataclasses.is_dataclass(kind):
            out += _fields(kind, parent + (f.name,))
        else:
            out.append((parent + (f.name,), f, kind))
    return out


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def _argument(path: Tuple[str, ...], f: dataclasses.Field, kind: Any) -> Tuple[str, Dict[str, Any]]:
    """The flag and ``add_argument`` keywords of one field."""
    flag = f.metadata.get("flag") or "--" + "-".join(path[::-1]).replace("_", "-")
    help_text = f.metadata.get("help", "")
    default = _default(f)
    if default is not None and default != []:
        help_text += f" (default: {default})"
    kwargs: Dict[str, Any] = {"dest": ".".join(path), "default": None, "help": help_text.replace("%", "%%")}
    if typing.get_origin(kind) is typing.Union:  # Optional[X]
        kind = next(a for a in typing.get_args(kind) if a is not type(None))
    origin = typing.get_origin(kind)
    if kind is bool:
        return flag, {**kwargs, "action": argparse.BooleanOptionalAction}
    if origin is list:
        return flag, {**kwargs, "action": "append", "metavar": f.metadata.get("metavar")}
    if origin is tuple:
        items = typing.get_args(kind)
        kind, kwargs["nargs"] = items[0], len(items)
    return flag, {**kwargs, "type": kind, "metavar": f.metadata.get("metavar") or _METAVARS.get(kind)}


def add_flags(parser: argparse.ArgumentParser, cls: type) -> None:
    """One flag per field of the dataclass ``cls``; a nested dataclass's flags form their own help group."""
    groups: Dict[str, Any] = {}
    for path, f, kind in _fields(cls):
        target = parser
        if len(path) > 1:
            if path[0] not in groups:
                nested = typing.get_type_hints(cls)[path[0]]
                groups[path[0]] = parser.add_argument_group(f"{path[0]} ({nested.__name__})", nested.__doc__)
            target = groups[path[0]]
        flag, kwargs = _argument(path, f, kind)
        target.add_argument(flag, **kwargs)


def given_values(args: argparse.Namespace, cls: type) -> Dict[str, Any]:
    """The fields of ``cls`` given on the command line, as nested dicts (what ``config_from_dict`` reads)."""
    values: Dict[str, Any] = {}
    for path, _, _ in _fields(cls):
        value = getattr(args, ".".join(path))
        if value is None:
            continue
        inner = values
        for key in path[:-1]:
            inner = inner.setdefault(key, {})
        inner[path[-1]] = value
    return values
