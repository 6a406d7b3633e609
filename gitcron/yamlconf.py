"""config.yaml: read with PyYAML's safe loader; `last_run_date` written back by
changing one line, so that comments, order and quoting stay byte for byte."""

from __future__ import annotations

import re
import sys
from typing import Any

import yaml

from gitcron.codes import FatalError

BOOL_TAG = "tag:yaml.org,2002:bool"


class _Loader(yaml.SafeLoader):
    """safe_load, but a key given twice in one mapping is an error, as in JSON, keys
    are text, as in JSON, dates stay the strings they were written as (the config's
    checks want text), and booleans follow YAML 1.2 (below)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        self.flatten_mapping(node)  # merge keys (<<: *anchor) first
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                shown = repr(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "a " + (
                    "list" if isinstance(key_node, yaml.SequenceNode) else "mapping")
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {shown} is not text (quote it)", key_node.start_mark)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} appears twice in one mapping",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def _timestamp_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    return loader.construct_scalar(node)  # type: ignore[return-value]


def _yaml12_bool(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> bool | str:
    """YAML 1.2: only true and false are booleans. PyYAML follows YAML 1.1, where
    `on`, `off`, `yes` and `no` are too, so that a channel's `on: [failed]` would
    be read as `True: [...]`: those stay the words they are."""
    text = str(loader.construct_scalar(node))
    return text.lower() == "true" if text.lower() in ("true", "false") else text


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_text)
_Loader.add_constructor(BOOL_TAG, _yaml12_bool)
# `tRuE` too: true and false in any case (YAML 1.1's rule knows three spellings of each).
_Loader.add_implicit_resolver(BOOL_TAG, re.compile(r"^(?:[Tt][Rr][Uu][Ee]|[Ff][Aa][Ll][Ss][Ee])$"),
                              list("tTfF"))


def parse(text: str, display: str) -> Any:
    """The document; FatalError naming the file and, where PyYAML gives one, the line."""
    try:
        return yaml.load(text, Loader=_Loader)  # a SafeLoader subclass: no custom tags
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = exc.problem or exc.context or "not valid YAML"
        if "could not determine a constructor" in str(exc):
            problem = f"custom tags are not allowed ({exc.problem})"
        raise FatalError(f"{display}: not valid YAML{where}: {problem}") from None
    except yaml.YAMLError as exc:
        raise FatalError(f"{display}: not valid YAML: {exc}") from None
    except RecursionError:
        raise FatalError(f"{display}: nested too deep to be a config") from None
    except ValueError:  # int() reads at most 4300 digits (sys.get_int_max_str_digits)
        raise FatalError(f"{display}: not valid YAML: a number of more than "
                         f"{sys.get_int_max_str_digits()} digits") from None


def _line(key: str, value: str, newline: str) -> str:
    return f"{key}: '{value}'{newline}"


def _comment(line: str) -> str:
    """The line's trailing comment (`  # moved by each run`), kept when its value
    changes: the first ` #` before which the line still means the same."""
    whole = _quiet_parse(line)
    for match in re.finditer(r"[ \t]+#", line):
        if _quiet_parse(line[:match.start()]) == whole:
            return line[match.start():]
    return ""


def _quiet_parse(text: str) -> Any:
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.YAMLError:
        return None


def set_top_level(text: str, display: str, key: str, value: str) -> str:
    """`text` with `key: 'value'` changed in place, or appended.

    The result is parsed again and must equal the old data plus the new value;
    if not (a flow mapping, a value over several lines), FatalError: the text
    is not to be written.
    """
    before = parse(text, display)
    newline = "\r\n" if "\r\n" in text else "\n"
    pattern = re.compile(rf"^{re.escape(key)}[ \t]*:.*?(\r?\n|$)", re.MULTILINE)
    found = pattern.search(text)
    if found:
        ending = found.group(1) or ""
        old_line = text[found.start():found.end() - len(ending)]
        new_line = _line(key, value, "") + _comment(old_line) + ending
        new_text = text[: found.start()] + new_line + text[found.end():]
    else:
        sep = "" if not text or text.endswith("\n") else newline
        new_text = text + sep + _line(key, value, newline)
    expected = dict(before) if isinstance(before, dict) else before
    if isinstance(expected, dict):
        expected[key] = value
    try:
        after = parse(new_text, display)
    except FatalError:
        after = None
    if after != expected:
        raise FatalError(f"{display}: {key} could not be written by changing one line "
                         f"(write it as a plain top-level `{key}: '...'` line); "
                         "the file was left as it was")
    return new_text


