"""Settings declared once, as the fields of the dataclass that holds them.

A field made with `setting(kind, default, doc)` is a config key: its name (or
`key=`), its kind (how a value is checked and converted, and how the reference
names it), its default and a one-line description. `read` checks a mapping
against the fields of a class (unknown keys, did you mean, kinds, defaults) and
`reference` writes the table of `docs/config.md` from the same fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any, NoReturn

from gitcron.codes import FatalError


class Invalid(ValueError):
    """What is wrong with one value, worded to follow "<file>: <key>: "."""


@dataclass(frozen=True)
class Kind:
    """How the values of a key are checked and converted, and how the docs name them."""

    text: str  # the reference's "kind" column: "true or false"
    convert: Callable[[Any, Reader, str], Any]  # (value, reader, key) -> value; Invalid if wrong


def simple(text: str, convert: Callable[[Any], Any]) -> Kind:
    """A kind whose check needs nothing but the value."""
    return Kind(text, lambda value, reader, key: convert(value))


def setting(kind: Kind, default: Any = MISSING, doc: str = "", *, key: str | None = None,
            shown: str | None = None, inherit: str | None = None) -> Any:
    """A config key, declared as a dataclass field. No default: the key is required.
    `key`: its name in the file when that is no Python name (`from`); `shown`: its
    default as the reference states it, when the value alone would mislead;
    `inherit`: the top-level key whose value it takes when it is not set."""
    metadata = {"kind": kind, "doc": doc, "key": key, "shown": shown, "inherit": inherit}
    return field(default=default, metadata=metadata)


def keys(cls: type) -> dict[str, Field[Any]]:
    """The config keys of a dataclass, by their name in the file, in declared order."""
    return {f.metadata["key"] or f.name: f for f in fields(cls) if "kind" in f.metadata}


def inherited(cls: type, top: Mapping[str, Any]) -> dict[str, Any]:
    """The defaults `cls` takes from the top level's values (by attribute name)."""
    return {f.name: top[f.metadata["inherit"]] for f in keys(cls).values()
            if f.metadata["inherit"]}


class Reader:
    """Reads the sections of one config file; a wrong value raises FatalError naming
    the file and the key."""

    def __init__(self, display: str) -> None:
        self.display = display

    def fail(self, key: str, problem: str) -> NoReturn:
        raise FatalError(f"{self.display}: {key}: {problem}")

    def read(self, cls: type, raw: dict[str, Any], where: str = "", *, strict: bool = True,
             defaults: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The checked value of each of `cls`'s keys in `raw`, by attribute name, with
        the defaults of the missing ones (from `defaults` first, by attribute name).
        `strict`: an unknown key is an error; else only a near miss of a known key is
        (the others belong to someone else)."""
        declared = keys(cls)
        self._unknown(raw, declared, where, strict)
        defaults = defaults or {}
        return {f.name: defaults[f.name] if name not in raw and f.name in defaults
                else self._value(f, name, raw, where) for name, f in declared.items()}

    def value(self, kind: Kind, value: Any, key: str) -> Any:
        try:
            return kind.convert(value, self, key)
        except Invalid as exc:
            self.fail(key, str(exc))

    def _value(self, f: Field[Any], name: str, raw: dict[str, Any], where: str) -> Any:
        key = f"{where}.{name}" if where else name
        if name in raw:
            return self.value(f.metadata["kind"], raw[name], key)
        if f.default is MISSING:
            self.fail(key, "is required")
        return f.default

    def _unknown(self, raw: dict[str, Any], declared: Collection[str], where: str,
                 strict: bool) -> None:
        for name in raw:
            if name in declared:
                continue
            close = close_match(name, declared)
            if not strict and close:
                raise FatalError(f"{self.display}: unknown key {name!r}: did you mean "
                                 f"{close[0]!r}?")
            if strict:
                hint = (f"did you mean {close[0]!r}?" if close
                        else f"known: {', '.join(sorted(declared))}")
                self.fail(f"{where}.{name}", f"unknown key ({hint})")


def close_match(key: str, known: Collection[str]) -> list[str]:
    """difflib's nearest known key at its default cutoff; imported only when a key is unknown."""
    import difflib

    return difflib.get_close_matches(key, known, n=1)


def show(value: Any) -> str:
    """A value as a message quotes it: short, and never a traceback of its own."""
    try:
        return json.dumps(value, default=str)[:60]
    except (ValueError, RecursionError):
        return type(value).__name__


def reference(sections: list[tuple[str, type]]) -> str:
    """The Markdown tables of `docs/config.md`: one per (title, class)."""
    return "\n".join(_table(title, cls) for title, cls in sections)


def _table(title: str, cls: type) -> str:
    rows = "".join(f"| `{name}` | {_cell(f.metadata['kind'].text)} | {_default(f)} | "
                   f"{_cell(f.metadata['doc'])} |\n" for name, f in keys(cls).items())
    header = "| key | kind | default | what it is |\n| --- | --- | --- | --- |\n"
    return f"### {title}\n\n{header}{rows}"


def _default(f: Field[Any]) -> str:
    if f.metadata["shown"] is not None:
        return _cell(f.metadata["shown"])
    if f.metadata["inherit"]:
        return f"top-level `{f.metadata['inherit']}`"
    if f.default is MISSING:
        return "required"
    return f"`{json.dumps(_plain(f.default), ensure_ascii=False, default=str)}`"


def _plain(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return list(value) if isinstance(value, tuple) else value


def _cell(text: str) -> str:
    return text.replace("|", "\\|")
