"""A model of how the GitHub Actions runner reads a step's console output.

Written after actions/runner (src/Runner.Sdk/ProcessInvoker.cs,
src/Runner.Common/ActionCommand.cs, src/Runner.Worker/ActionCommandManager.cs,
src/Runner.Worker/Handlers/OutputManager.cs, src/Runner.Worker/FileCommandManager.cs),
so that tests can ask: which workflow commands would the runner act on, given
what our orchestrator printed?

- Lines: the runner reads the step's stdout and stderr with .NET's
  StreamReader.ReadLine, which ends a line at "\\n", at "\\r\\n" and at a bare "\\r".
- A line is looked at only when it holds "##[" or "::" (OutputManager).
- TryParseV2: after leading whitespace is trimmed the line starts with "::";
  the command info runs to the next "::"; the command name is what comes before
  the first space and must be a registered command (compared ignoring case);
  properties are "k=v" pairs split on ",", the data is the rest.
- TryParse (legacy), tried when V2 fails: "##[" ANYWHERE in the line, the
  command info runs to the next "]", properties split on ";".
- While commands are stopped (::stop-commands::TOKEN), the only command acted
  on is TOKEN itself (registered for the time being, so `::TOKEN::` and
  `##[TOKEN]` anywhere in a line both resume); everything else is ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The commands the runner registers (ActionCommandManager's extensions, and
# stop-commands itself); "internal-set-repo-path" is registered only for plugins.
REGISTERED = frozenset({
    "set-env", "set-output", "save-state", "add-mask", "add-path", "add-matcher",
    "remove-matcher", "debug", "warning", "error", "notice", "group", "endgroup", "echo",
    "stop-commands",
})
STOP = "stop-commands"
ANNOTATIONS = frozenset({"warning", "error", "notice"})


@dataclass(frozen=True)
class Command:
    name: str  # lower case
    properties: dict[str, str]
    data: str
    line: str


def split_lines(text: str) -> list[str]:
    """StreamReader.ReadLine: "\\n", "\\r\\n" and a bare "\\r" each end a line; no
    empty line after a final terminator."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return lines[:-1] if lines and lines[-1] == "" else lines


def _unescape(text: str, mappings: tuple[tuple[str, str], ...]) -> str:
    for token, replacement in mappings:
        text = text.replace(replacement, token)
    return text


_DATA = (("\r", "%0D"), ("\n", "%0A"), ("%", "%25"))
_PROPERTY = (("\r", "%0D"), ("\n", "%0A"), (":", "%3A"), (",", "%2C"), ("%", "%25"))
_LEGACY = ((";", "%3B"), ("\r", "%0D"), ("\n", "%0A"), ("]", "%5D"), ("%", "%25"))


def _command(info: str, registered: set[str], separator: str,
             mappings: tuple[tuple[str, str], ...], trim: bool) -> tuple[str, dict[str, str]] | None:
    name, _, rest = info.partition(" ")
    if name.lower() not in registered:
        return None
    properties: dict[str, str] = {}
    if rest:
        for pair in (rest.strip() if trim else rest).split(separator):
            key, equals, value = pair.partition("=")
            if pair and key and equals and value:
                properties[key.lower()] = _unescape(value, mappings)
    return name.lower(), properties


def try_parse_v2(line: str, registered: set[str]) -> Command | None:
    message = line.lstrip()  # .NET TrimStart: leading whitespace
    if not message.startswith("::"):
        return None
    end = message.find("::", 2)
    if end < 0:
        return None
    parsed = _command(message[2:end], registered, ",", _PROPERTY, trim=True)
    if parsed is None:
        return None
    return Command(parsed[0], parsed[1], _unescape(message[end + 2:], _DATA), line)


def try_parse_legacy(line: str, registered: set[str]) -> Command | None:
    start = line.find("##[")
    if start < 0:
        return None
    end = line.find("]", start)
    if end < 0:
        return None
    parsed = _command(line[start + 3:end], registered, ";", _LEGACY, trim=False)
    if parsed is None:
        return None
    return Command(parsed[0], parsed[1], _unescape(line[end + 1:], _LEGACY), line)


@dataclass
class Runner:
    """Feed it a step's output; `acted` lists the commands the runner processed."""

    registered: set[str] = field(default_factory=lambda: set(REGISTERED))
    stop_token: str | None = None
    acted: list[Command] = field(default_factory=list)

    def feed(self, output: str) -> list[Command]:
        for line in split_lines(output):
            self.line(line)
        return self.acted

    def line(self, line: str) -> None:
        if not line or ("##[" not in line and "::" not in line):
            return
        command = try_parse_v2(line, self.registered) or try_parse_legacy(line, self.registered)
        if command is None:
            return
        if self.stop_token is not None:
            if command.name == self.stop_token.lower():
                self.registered.discard(self.stop_token.lower())
                self.stop_token = None
                self.acted.append(command)
            return
        if command.name == STOP:
            # An empty or registered token fails the step (ValidateStopToken).
            assert command.data and command.data.lower() not in self.registered, line
            self.stop_token = command.data
            self.registered.add(command.data.lower())
        self.acted.append(command)


def parse_file_command(text: str) -> dict[str, str]:
    """$GITHUB_OUTPUT as the runner reads it: `name=value` lines, and
    `name<<DELIMITER` followed by the value's lines and the delimiter alone."""
    values: dict[str, str] = {}
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        line = lines[i].removesuffix("\r")
        i += 1
        if not line:
            continue
        equals, heredoc = line.find("="), line.find("<<")
        if equals >= 0 and (heredoc < 0 or equals < heredoc):
            key, value = line.split("=", 1)
            values[key] = value
            continue
        assert heredoc > 0, f"invalid line {line!r}"
        key, delimiter = line.split("<<", 1)
        assert delimiter, f"invalid line {line!r}"
        body: list[str] = []
        while True:
            assert i < len(lines) - 1, f"{key}: matching delimiter not found"
            current = lines[i].removesuffix("\r")
            i += 1
            if current == delimiter:
                break
            body.append(current)
        values[key] = "\n".join(body)
    return values
