from __future__ import annotations

import pytest

from gitcron import commands
from gitcron.commands import Command


@pytest.mark.parametrize(("line", "expected"), [
    ("::error::it broke", Command("error", "it broke")),
    ("::ERROR::case does not matter", Command("error", "case does not matter")),
    ("   \t::warning::leading blanks", Command("warning", "leading blanks")),
    ("::notice::", Command("notice", "")),
    ("::debug::a::b", Command("debug", "a::b")),
    ("::warning file=a.csv,line=3,title=T::msg",
     Command("warning", "msg", {"file": "a.csv", "line": "3", "title": "T"})),
    ("::warning FILE=a.csv,,=x,novalue,col=::msg", Command("warning", "msg", {"file": "a.csv"})),
    ("::error title=a%3Ab%2Cc%25%0A::x%25y%0D%0Az%3A",
     Command("error", "x%y\r\nz%3A", {"title": "a:b,c%\n"})),
    ("::add-mask::s3cr3t", Command("add-mask", "s3cr3t")),
])
def test_lines_that_are_commands(line: str, expected: Command) -> None:
    assert commands.parse(line) == expected


@pytest.mark.parametrize("line", [
    "plain text", "x ::error::not first", "::error no second key", "::set-output name=a::b",
    "::stop-commands::token", ":: error::space before the name", "", "##[error]legacy",
])
def test_lines_that_are_not(line: str) -> None:
    assert commands.parse(line) is None


def test_a_caller_may_ask_for_other_names() -> None:
    assert commands.parse("::stop-commands::tok", frozenset({"stop-commands"})) == Command(
        "stop-commands", "tok")


def test_may_hold_is_a_safe_quick_test() -> None:
    assert not commands.may_hold("a\nb: c\n")
    assert commands.may_hold("a\n  ::error::b\n")
