"""Text the runner did not write itself, made inert before it leaves: the one rule.

Module output, a remote's message, a file or module name, a config value, an
exception's text: each may hold a terminal's escape sequences (`ESC]0;title BEL`
retitles the window, `ESC[2J` clears it, OSC 8 hides a link behind words), a
bare carriage return that hides what came before it, or a character no log
reader expects. `sanitise` shows what a terminal would show, made inert.
"""

from __future__ import annotations

import re

# ANSI escape sequences (ECMA-48): CSI (also its 8-bit form), OSC ended by BEL or
# ST, DCS/SOS/PM/APC strings ended by ST, and the short ESC sequences.
ESCAPES = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x9b[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b\n]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b\n]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
)
# C0 and C1 controls but tab and newline, and lone surrogates (a file name that is
# not UTF-8 decodes to them; no encoder writes them).
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# The same on one line: tab and newline too.
_LINE_CONTROLS = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def sanitise(text: str, *, one_line: bool = False) -> str:
    """What a terminal would show of `text`, made inert: after a bare `\\r` only the
    text after the last one, no ANSI escape sequence, and every other control
    character but tab and newline written as `\\xNN` (a lone surrogate as `\\udNNN`).

    `one_line`: for a name, a title, a table cell: every control character is
    written as `\\xNN`, tab, newline, carriage return and escape included, so
    that the text stays on one line and a file named with an escape sequence can
    still be told and found (`1.\\x1b[31mred`).
    """
    if one_line:
        return _LINE_CONTROLS.sub(_escape, text)
    if "\r" in text:
        text = "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in text.split("\n"))
    if "\x1b" in text or "\x9b" in text:
        text = ESCAPES.sub("", text)
    return _CONTROLS.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
