"""Workflow-command lines (`::warning file=a.csv,line=3::text`), parsed as a GitHub
runner parses them, so that a module's own commands mean here what they mean there.

The rules are those of actions/runner (src/Runner.Common/ActionCommand.cs,
`TryParseV2`): leading whitespace is ignored; the line starts with `::`; the
command's name runs to the first space or the next `::`; properties
(`key=value`, comma-separated) follow the space; the message follows the second
`::`. Names are matched case-insensitively (the runner's registry uses
OrdinalIgnoreCase), as are property keys. `%25`, `%0D` and `%0A` in the message,
and also `%3A` and `%2C` in a property's value, stand for `%`, CR, LF, `:` and `,`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

KEY = "::"
ADD_MASK = "add-mask"
# The commands a module's line can carry into the log, and the level each one gets.
LEVELS: Mapping[str, str] = {
    "error": "ERROR", "warning": "WARNING", "notice": "INFO", "debug": "DEBUG",
}
KNOWN = frozenset({*LEVELS, ADD_MASK})

_DATA_ESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%25", "%"))
_PROPERTY_ESCAPES = (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%"))


class Command(NamedTuple):
    """One workflow command: its name (lower case), properties and message."""

    name: str
    message: str
    properties: Mapping[str, str] = MappingProxyType({})


def parse(line: str, names: frozenset[str] = KNOWN) -> Command | None:
    """The command `line` carries, if its name is one of `names`; else None."""
    text = line.lstrip()
    if not text.startswith(KEY):
        return None
    end = text.find(KEY, len(KEY))
    if end < 0:
        return None
    info = text[len(KEY):end]
    space = info.find(" ")
    name = (info if space < 0 else info[:space]).lower()
    if name not in names:
        return None
    properties = _properties(info[space + 1:]) if space > 0 else {}
    return Command(name, _unescape(text[end + len(KEY):], _DATA_ESCAPES), properties)


def may_hold(text: str) -> bool:
    """False when no line of `text` can be a command: a quick test for a whole chunk."""
    return ":" in text and KEY in text  # the first test is a memchr(): fast where ':' is rare


def _properties(text: str) -> dict[str, str]:
    properties = {}
    for item in text.strip().split(","):
        pair = [part for part in item.split("=", 1) if part]
        if len(pair) == 2:
            properties[pair[0].lower()] = _unescape(pair[1], _PROPERTY_ESCAPES)
    return properties


def _unescape(text: str, escapes: tuple[tuple[str, str], ...]) -> str:
    if "%" in text:
        for escaped, plain in escapes:
            text = text.replace(escaped, plain)
    return text
