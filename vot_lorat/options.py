"""Settings as dataclasses, turned into command-line flags and environment variables by one set of rules.

A field declared with :func:`option` carries its help text and, where it has them, its allowed values. Its flag
is ``--field-name``; a field of a nested dataclass is ``--field-parent`` (``jitter.scale`` is
``--scale-jitter``). Booleans get ``--x`` / ``--no-x``, lists are repeatable flags, tuples take one value per
element; a field without a default is a required flag. The same fields read from and write to environment
variables (``PREFIX`` + the field name in upper case), which is how the VOT toolkit configures the tracker
process (``env_*`` keys in trackers.ini).

Nothing here imports torch: writing a trackers.ini must not load a deep-learning stack.
"""
from __future__ import annotations

import argparse
import dataclasses
import re
import typing
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

MISSING = dataclasses.MISSING
_METAVARS = {int: "N", float: "X"}  # in the help texts too: "every N epochs"
_TRUE, _FALSE = ("1", "true", "yes"), ("0", "false", "no")


def option(default: Any = MISSING, help: str = "", *, factory: Optional[Callable[[], Any]] = None,
           choices: Optional[Sequence[Any]] = None, flag: Optional[str] = None,
           metavar: Optional[str] = None, hidden: bool = False) -> Any:
    """A dataclass field with the help text its flag shows.

    Args:
        default: the value when the flag is not given; leave it out for a required flag.
        help: what the setting does, for ``--help`` and the documentation.
        factory: a default factory, for mutable defaults.
        choices: the allowed values; flags, environment variables and :func:`check_choices` refuse others.
        flag: the flag when it is not ``--field-name``.
        metavar: the value's shape in the help.
        hidden: a flag for tests and benchmarks: accepted, left out of ``--help``.
    """
    metadata = {"help": help, "flag": flag, "metavar": metavar, "choices": tuple(choices) if choices else None,
                "hidden": hidden}
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


def _plain(kind: Any) -> Any:
    """``Optional[X]`` -> ``X``; other types as they are."""
    if typing.get_origin(kind) is typing.Union:
        return next(a for a in typing.get_args(kind) if a is not type(None))
    return kind


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not MISSING else f.default


def format_value(value: Any) -> str:
    """A value as the environment and the help texts write it: booleans as 1 / 0, None as ``none``."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return "none" if value is None else str(value)


def _argument(path: Tuple[str, ...], f: dataclasses.Field, kind: Any, env_name: Optional[str],
              now: Any) -> Tuple[str, Dict[str, Any]]:
    """The flag and ``add_argument`` keywords of one field."""
    flag = f.metadata.get("flag") or "--" + "-".join(path[::-1]).replace("_", "-")
    help_text = f.metadata.get("help", "")
    default = _default(f)
    notes = []
    if env_name:  # the environment's spelling of values, none included
        notes.append(f"env {env_name}")
        if default is not MISSING:
            notes.append(f"default: {format_value(default)}")
        if now is not MISSING and now != default:
            notes.append(f"now {format_value(now)} from the environment")
    elif default is not MISSING and default is not None and default != []:
        notes.append(f"default: {default}")
    if notes:
        help_text += " (" + "; ".join(notes) + ")"
    shown = argparse.SUPPRESS if f.metadata.get("hidden") else help_text.replace("%", "%%")
    kwargs: Dict[str, Any] = {"dest": ".".join(path), "default": None, "help": shown}
    if default is MISSING:
        kwargs["required"] = True
    kind = _plain(kind)
    origin = typing.get_origin(kind)
    choices = f.metadata.get("choices")
    if kind is bool:
        return flag, {**kwargs, "action": argparse.BooleanOptionalAction}
    if origin is list:
        return flag, {**kwargs, "action": "append", "metavar": f.metadata.get("metavar")}
    if origin is tuple:
        items = typing.get_args(kind)
        kind, kwargs["nargs"] = items[0], len(items)
    if choices:
        kwargs["choices"] = choices
    return flag, {**kwargs, "type": kind, "metavar": f.metadata.get("metavar") or _METAVARS.get(kind)}


def add_flags(parser: argparse.ArgumentParser, cls: type, env_prefix: Optional[str] = None,
              environ: Optional[Mapping[str, str]] = None) -> None:
    """One flag per field of the dataclass ``cls``; a nested dataclass's flags form their own help group.

    With ``env_prefix`` the help names each field's environment variable and, given ``environ``, the value it
    holds there when that differs from the default.
    """
    groups: Dict[str, Any] = {}
    from_env = env_values(cls, environ, env_prefix) if env_prefix and environ is not None else {}
    for path, f, kind in _fields(cls):
        target = parser
        if len(path) > 1:
            if path[0] not in groups:
                nested = typing.get_type_hints(cls)[path[0]]
                groups[path[0]] = parser.add_argument_group(f"{path[0]} ({nested.__name__})", nested.__doc__)
            target = groups[path[0]]
        env_name = env_prefix + f.name.upper() if env_prefix else None
        flag, kwargs = _argument(path, f, kind, env_name, from_env.get(f.name, MISSING))
        target.add_argument(flag, **kwargs)


def given_values(args: argparse.Namespace, cls: type) -> Dict[str, Any]:
    """The fields of ``cls`` given on the command line, as nested dicts (``{"jitter": {"scale": 0.3}}``)."""
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


def parse_value(kind: Any, raw: str, name: str, choices: Optional[Sequence[Any]] = None) -> Any:
    """A string (an environment variable's value) as a value of ``kind``; ``name`` is said in the error."""
    kind = _plain(kind)
    if kind is bool:
        if raw.lower() not in _TRUE + _FALSE:
            raise ValueError(f"{name}={raw!r} is not a boolean (use 1 or 0)")
        return raw.lower() in _TRUE
    try:
        value = kind(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name}={raw!r} is not a valid {getattr(kind, '__name__', kind)}") from None
    if choices and value not in choices:
        raise ValueError(f"{name}={raw!r}: choose one of {', '.join(map(str, choices))}")
    return value


_UNEXPANDED = re.compile(r"\$\{?(\w+)\}?")


def env_values(cls: type, environ: Mapping[str, str], prefix: str) -> Dict[str, Any]:
    """The fields of the flat dataclass ``cls`` set in ``environ`` (``prefix`` + name in upper case), typed and
    checked. A blank value means unset; a ``${NAME}`` left unexpanded (a trackers.ini that names a variable
    nobody exported) is refused with the variable to export."""
    values = {}
    for _, f, kind in _fields(cls):
        name = prefix + f.name.upper()
        raw = environ.get(name)
        if raw is None or raw.strip() == "":
            continue
        unexpanded = _UNEXPANDED.fullmatch(raw.strip())
        if unexpanded:
            raise ValueError(f"{name} is {raw.strip()!r}: export {unexpanded.group(1)} in the shell that runs vot "
                             f"(see trackers.ini)")
        values[f.name] = parse_value(kind, raw.strip(), name, f.metadata.get("choices"))
    return values


def to_env(settings: Any, prefix: str) -> Dict[str, str]:
    """Every field of a flat dataclass that is not None, as the environment :func:`env_values` reads back."""
    return {prefix + f.name.upper(): format_value(getattr(settings, f.name)) for f in dataclasses.fields(settings)
            if getattr(settings, f.name) is not None}


def check_choices(settings: Any, prefix: str = "") -> None:
    """Refuse a field whose value is not one of its allowed values (whether it came from flags, the environment
    or code); ``prefix`` names the field as its environment variable in the message."""
    for f in dataclasses.fields(settings):
        choices = f.metadata.get("choices")
        value = getattr(settings, f.name)
        if choices and value is not None and value not in choices:
            name = prefix + f.name.upper() if prefix else f.name
            raise ValueError(f"{name}={value!r}: choose one of {', '.join(map(str, choices))}")
