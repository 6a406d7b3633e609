"""The run's log: loguru sinks (console, file), the line format, masking.

Every line, on every sink, reads
`2026-11-23 06:00:01.123 | INFO     | 1.file_retrieval | text`: `prefix` is
the one place that spells it.
loguru carries the orchestrator's own messages. Module output takes a lighter
path into the same file handles, in the same format and order: a chunk of lines
that arrived in one read is stamped once, masked in one pass and written at
once (passing each of a million lines through `logger.info` costs about 12 us a
line). docs/output.md tells what a module's output becomes.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, tzinfo
from typing import Any, TextIO

from loguru import logger

from gitcron import commands
from gitcron.text import sanitise

MASK = "***"
MIN_MASK_LENGTH = 4  # shorter values would blank out ordinary words and digits
SECRET_MARKERS = ("TOKEN", "SECRET", "PASSWORD", "PASSWD", "API_KEY", "PRIVATE_KEY", "CREDENTIAL")
# How git sends a GitHub token over HTTP (basic auth, base64 of this and the token).
GIT_TOKEN_USER = "x-access-token:"
ORCHESTRATOR = "orchestrator"
STDERR = "STDERR"
# loguru's level numbers, and ours for a module's stderr: above INFO, below WARNING.
LEVEL_NUMBERS: Mapping[str, int] = {
    "DEBUG": 10, "INFO": 20, STDERR: 25, "WARNING": 30, "ERROR": 40,
}
STREAM_LEVELS: Mapping[str, str] = {"stdout": "INFO", "stderr": STDERR}

# (module, kind, properties, message) of a module's `::error::`-like line, masked.
CommandSink = Callable[[str, str, Mapping[str, str], str], None]


def base64_forms(value: str) -> list[str]:
    """What `value` looks like inside any base64 text, as a GitHub runner masks it.

    Its bytes may start at offset 0, 1 or 2 of a 3-byte group; for each, the
    characters that also depend on the bytes around it are left out (2 or 3 at
    the start, 1 at the end when the last group is short).
    """
    data = value.encode()
    forms = []
    for offset, lead in ((0, 0), (1, 2), (2, 3)):
        encoded = base64.b64encode(bytes(offset) + data).decode().rstrip("=")
        end = len(encoded) - (1 if (offset + len(data)) % 3 else 0)
        forms.append(encoded[lead:end])
    return forms


def _forms(value: str) -> tuple[str, ...]:
    return value, *base64_forms(value), *base64_forms(GIT_TOKEN_USER + value)


class Masker:
    """Replaces every known secret value, and its base64 forms, with `***`: the one
    masker of the run's log, records, review, Actions UI, notifications and git's
    messages."""

    def __init__(self, values: Iterable[str] = ()) -> None:
        self._values: list[str] = []
        # Longest first, so that a secret holding another is masked whole.
        self._forms: list[str] = []
        # Every form holds one of these: `in` finds them faster than the regex.
        self._probes: list[str] = []
        self._pattern: re.Pattern[str] | None = None
        self.longest = 0
        self._extend(values)

    def add(self, value: str) -> None:
        """Mask `value`; each line of a multi-line secret (a PEM key) on its own."""
        self._extend([value])

    def extended(self, values: Iterable[str]) -> Masker:
        """A masker of these values too (a channel's own secrets); this one unchanged."""
        other = Masker(self._values)
        other._extend(values)
        return other

    def tree(self, value: Any, text: Callable[[str], str] | None = None) -> Any:
        """`value` with every string in it masked (or made `text(string)`, a function
        that masks and more): mappings (keys kept), lists and tuples, as lists."""
        if isinstance(value, str):
            return self(value) if text is None else text(value)
        if isinstance(value, Mapping):
            return {key: self.tree(item, text) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.tree(item, text) for item in value]
        return value

    def _extend(self, values: Iterable[str]) -> None:
        forms = set(self._forms)
        for value in values:
            for part in value.splitlines():
                part = part.strip()
                if len(part) >= MIN_MASK_LENGTH and part not in self._values:
                    self._values.append(part)
                    forms.update(f for f in _forms(part) if len(f) >= MIN_MASK_LENGTH)
        if len(forms) > len(self._forms):
            self._compile(forms)

    def _compile(self, forms: set[str]) -> None:
        self._forms = sorted(forms, key=lambda f: (-len(f), f))
        shortest_first = self._forms[::-1]
        self._probes = [f for i, f in enumerate(shortest_first)
                        if not any(p in f for p in shortest_first[:i])]
        self._pattern = re.compile("|".join(map(re.escape, self._forms)))
        self.longest = len(self._forms[0])

    def __call__(self, text: str) -> str:
        if self._pattern is None or not self._found(text):
            return text
        return self._pattern.sub(MASK, text)

    def split(self, text: str) -> tuple[str, str]:
        """Mask the start of a line whose rest is still to come.

        Returns the masked head, to write now, and the raw tail that a secret
        cut short may start in (the longest form less one character), to be
        put before the rest.
        """
        cut = max(0, len(text) - max(0, self.longest - 1))
        if self._pattern is None or not self._found(text):
            return text[:cut], text[cut:]
        parts, done = [], 0
        for match in self._pattern.finditer(text):
            if match.start() >= cut:
                break
            parts += (text[done:match.start()], MASK)
            done = match.end()
        cut = max(cut, done)
        parts.append(text[done:cut])
        return "".join(parts), text[cut:]

    def _found(self, text: str) -> bool:
        return any(probe in text for probe in self._probes)

    def __bool__(self) -> bool:
        return bool(self._values)


def secret_values(env: Mapping[str, str], mask_env: Iterable[str]) -> list[str]:
    """Values of variables whose names look secret, and of those named in `mask_env`."""
    named = set(mask_env)
    return [
        value
        for name, value in env.items()
        if value and (name in named or any(m in name.upper() for m in SECRET_MARKERS))
    ]


def stamp(now: datetime) -> str:
    return f"{now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}"


def prefix(now: datetime, level: str, module: str) -> str:
    """THE line format's start: `2026-11-23 06:00:01.123 | INFO     | 1.fetch | `."""
    return f"{stamp(now)} | {level:<8} | {module} | "


class RunLog:
    """The console and the log file of one run, both masked.

    A write error on the file (a full disk) does not stop the console: the file
    is given up, `write_error` says why, and the module whose output could not
    be written is told by an OSError from `output`.
    """

    def __init__(self, tz: tzinfo, masker: Masker, *, verbose: bool = False,
                 on_command: CommandSink | None = None, console_format: str = "text") -> None:
        self.tz = tz
        self.masker = masker
        self.on_command = on_command
        self.write_error = ""
        self.run_id: str | None = None  # known once the log file is made
        self._json_console = console_format == "json"
        self._console: TextIO = sys.stdout
        self._console_level = LEVEL_NUMBERS["DEBUG" if verbose else "INFO"]
        self._file: TextIO | None = None
        self._handler_id: int | None = None
        # The raw end of a long line's piece, per (module, stream): see Masker.split.
        self._carry: dict[tuple[str, str], str] = {}

    def __enter__(self) -> RunLog:
        logger.remove()
        logger.configure(extra={"module": ORCHESTRATOR})
        _add_stderr_level()
        self._handler_id = logger.add(
            self._write_record, level="DEBUG", format="{message}", diagnose=False,
            backtrace=False, catch=True,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        if self._handler_id is not None:
            logger.remove(self._handler_id)
            self._handler_id = None
        self.close_file()

    def attach_file(self, handle: TextIO) -> None:
        self._file = handle

    def close_file(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
                os.fsync(self._file.fileno())
                self._file.close()
            except OSError as exc:
                self._lose_file(exc)
            self._file = None

    def _write_record(self, message: Any) -> None:
        """loguru's sink: one line of the file per line of the message."""
        record = message.record
        # The runner's own words carry outside text: names, a remote's message, exceptions.
        text = sanitise(self.masker(str(message).rstrip("\n"))) + "\n"
        module = record["extra"].get("module", ORCHESTRATOR)
        with contextlib.suppress(OSError):  # told on the console, once, by _lose_file
            self._lines(record["time"].astimezone(self.tz), record["level"].name, module, text)

    def output(self, module: str, stream: str, text: str) -> None:
        """What a module printed on `stream` ("stdout" or "stderr"), as it arrived.

        `text` is one or more lines, each ending in a newline; or, without the
        final newline, a piece of a line too long to hold, whose rest comes in
        the next call. Workflow-command lines (`::warning::...`) are logged at
        their own level; `::add-mask::` lines add secrets and are not logged.
        """
        key = (module, stream)
        if key in self._carry:
            text = self._carry.pop(key) + text
        level = STREAM_LEVELS[stream]
        if not text.endswith("\n"):
            head, self._carry[key] = self.masker.split(text)
            self._lines(datetime.now(self.tz), level, module, head + "\n")
        elif commands.may_hold(text):
            self._commands(module, level, text)
        else:
            self._lines(datetime.now(self.tz), level, module, self.masker(text))

    def _commands(self, module: str, level: str, text: str) -> None:
        now, plain = datetime.now(self.tz), []
        for line in text[:-1].split("\n"):
            command = commands.parse(line)
            if command is None:
                plain.append(line + "\n")
                continue
            if plain:
                self._lines(now, level, module, self.masker("".join(plain)))
                plain.clear()
            self._command(module, command, now)
        if plain:
            self._lines(now, level, module, self.masker("".join(plain)))

    def _command(self, module: str, command: commands.Command, now: datetime) -> None:
        if command.name == commands.ADD_MASK:
            self.masker.add(command.message)
            return
        message = self.masker(command.message)
        # %0D and %0A in a command's message are a CR and a newline: the rule again.
        self._lines(now, commands.LEVELS[command.name], module, sanitise(message) + "\n")
        if self.on_command is not None:
            properties = {k: self.masker(v) for k, v in command.properties.items()}
            self.on_command(module, command.name, properties, message)

    def _lines(self, now: datetime, level: str, module: str, text: str) -> None:
        """Write `text` (lines, each ending in a newline, masked) in the line format."""
        start = prefix(now, level, self._name(module))
        number = LEVEL_NUMBERS.get(level) or logger.level(level).no
        # Every newline but the last starts a line: all are replaced, and the one
        # prefix too many cut off (15% faster on a 64 KB chunk than counting first).
        lines = (start + text.replace("\n", "\n" + start))[:-len(start)]
        console = self._json_lines(now, level, module, text) if self._json_console else lines
        self._emit(lines, number, console)

    def _name(self, module: str) -> str:
        """A module's name as a line shows it: masked (a file may be named after a
        secret) and on one line, inert (or after an escape sequence)."""
        return sanitise(self.masker(module), one_line=True)

    def _json_lines(self, now: datetime, level: str, module: str, text: str) -> str:
        """--log-format json: one object per line, for log shippers (same masked text)."""
        head = {"time": now.isoformat(timespec="milliseconds"), "level": level,
                "module": self._name(module)}
        return "".join(json.dumps({**head, "message": line, "run_id": self.run_id},
                                  ensure_ascii=False) + "\n" for line in text[:-1].split("\n"))

    def _emit(self, text: str, level: int, console: str | None = None) -> None:
        """One write each: an unbuffered console (PYTHONUNBUFFERED) makes a call one syscall."""
        if level >= self._console_level:
            self._console.write(text if console is None else console)
            self._console.flush()
        if self._file is not None:
            try:
                self._file.write(text)
                self._file.flush()
            except OSError as exc:
                self._lose_file(exc)
                raise

    def _lose_file(self, exc: OSError) -> None:
        """Give the file up after a write error; say so on the console, once."""
        handle, self._file = self._file, None
        name = getattr(handle, "name", "")
        self.write_error = f"cannot write the log file {name}: {exc.strerror or exc}"
        if handle is not None:
            with contextlib.suppress(OSError):  # closing flushes again, into the same full disk
                handle.close()
        now = datetime.now(self.tz)
        line = f"{self.write_error}\n"
        self._console.write(self._json_lines(now, "ERROR", ORCHESTRATOR, line) if self._json_console
                            else prefix(now, "ERROR", ORCHESTRATOR) + line)
        self._console.flush()


def _add_stderr_level() -> None:
    try:
        logger.level(STDERR)
    except ValueError:
        logger.level(STDERR, no=LEVEL_NUMBERS[STDERR])
