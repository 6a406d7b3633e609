"""GitHub Actions: log groups, annotations, the step summary and step outputs.

Everything here is a no-op unless GITHUB_ACTIONS=true. Every text that leaves
through it is masked first. What the Actions UI shows is described in
docs/actions.md.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import PurePosixPath
from typing import Any, NamedTuple
from urllib.parse import quote

from gitcron import runid
from gitcron.text import sanitise

# GitHub shows at most 10 annotations of each type per step (its "Annotations"
# limits); past that they are dropped silently, so the rest are summarised.
MAX_ANNOTATIONS = 10
# Modules' own annotations shown as they come, per type; later ones wait for the
# end of the run, where the runner's own (a failed push, failed modules) go first.
LIVE_MODULE_ANNOTATIONS = 5
MAX_ANNOTATION_CHARS = 4000  # GitHub cuts a longer message
ANNOTATION_KINDS = ("error", "warning", "notice")
# The properties an annotation command takes (GitHub's "Workflow commands").
ANNOTATION_PROPERTIES = ("title", "file", "line", "endLine", "col", "endColumn")
# $GITHUB_STEP_SUMMARY is refused above 1 MiB per step; stay well under it.
SUMMARY_BUDGET_BYTES = 900 * 1024
MAX_TABLE_ROWS = 300
MAX_GANTT_TASKS = 60
CUT = ", …"
ICONS = {"success": "✅", "partial": "⚠️", "failed": "❌", "interrupted": "🛑"}


class Failure(NamedTuple):
    """A failed module, as an annotation tells it."""

    name: str
    critical: bool
    why: str  # "exit code 3", "timed out"...
    last_stderr: str = ""
    recovered_by: str = ""  # its on_failure script, when that put things right: a warning


class Annotation(NamedTuple):
    kind: str  # error, warning or notice
    message: str
    properties: tuple[tuple[str, str], ...]  # title first
    module: str = ""  # the module that raised it; empty for the runner's own


@dataclass
class _Budget:
    """GitHub's per-type cap, for modules' annotations: the first few are shown at
    once, the next ones held for the end of the run, the rest counted by module."""

    shown: int = 0
    held: list[Annotation] = field(default_factory=list)
    dropped: Counter[str] = field(default_factory=Counter)


def _escape_data(text: str) -> str:
    """Workflow command message escaping (the runner's own escapeData)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


class Actions:
    """What a run tells the Actions UI. Disabled (does nothing) outside Actions."""

    def __init__(self, env: Mapping[str, str], mask: Callable[[str], str]) -> None:
        self.env = env
        self.mask = mask
        self.enabled = env.get("GITHUB_ACTIONS") == "true"
        self._open_group = False
        self._token: str | None = None
        self._budgets = {kind: _Budget() for kind in ANNOTATION_KINDS}

    def _clean(self, text: str, *, one_line: bool = False) -> str:
        """Masked and inert: what this run may show of any text it did not write."""
        return sanitise(self.mask(text), one_line=one_line)

    def _write(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def _command(self, text: str) -> None:
        """One of our own workflow commands. Inside the fence it is lifted for that one
        line and put back with a new token, so the runner acts on it and nothing else."""
        if self._token is None:
            self._write(text)
            return
        self._write(f"::{self._token}::")
        self._write(text)
        self._token = os.urandom(16).hex()
        self._write(f"::stop-commands::{self._token}")

    def start_group(self, title: str) -> None:
        """Groups never nest: a group still open is closed first."""
        if not self.enabled:
            return
        self.end_group()
        self._command(f"::group::{_escape_data(self._clean(title, one_line=True))}")
        self._open_group = True

    def end_group(self) -> None:
        if self._open_group:
            self._command("::endgroup::")
            self._open_group = False

    def begin_untrusted(self) -> None:
        """From here on the runner acts on no workflow command but ours, until
        end_untrusted(): everything else the run prints (module output, a remote's
        message, a file name) is text. GitHub's advice for untrusted output is
        ::stop-commands:: with a token nobody can guess; each of our own commands
        lifts it for one line and renews the token."""
        if not self.enabled or self._token is not None:
            return
        self._token = os.urandom(16).hex()
        self._write(f"::stop-commands::{self._token}")

    def end_untrusted(self) -> None:
        """The runner acts on commands again (for the steps after this one)."""
        if self._token is None:
            return
        self._write(f"::{self._token}::")
        self._token = None

    def module_command(self, module: str, kind: str, properties: Mapping[str, str],
                       message: str) -> None:
        """A module's own `::warning file=..::msg` line: an annotation (title: its
        own, else the module's name), within the cap per type."""
        if not self.enabled or kind not in ANNOTATION_KINDS:
            return
        title = properties.get("title") or module
        props = [("title", title)] + [(key, properties[key]) for key in ANNOTATION_PROPERTIES[1:]
                                      if properties.get(key)]
        budget = self._budgets[kind]
        annotation = Annotation(kind, message, tuple(props), module)
        if budget.shown < LIVE_MODULE_ANNOTATIONS:
            self._emit(annotation)
            budget.shown += 1
        elif len(budget.held) < MAX_ANNOTATIONS:
            budget.held.append(annotation)
        else:  # a module printing a million ::error lines costs a count, not memory
            budget.dropped[module] += 1

    def _flush(self, own: Sequence[Annotation]) -> None:
        """Per type: the runner's own annotations first, never crowded out; then the
        modules' held ones; one summary for what does not fit."""
        for kind, budget in self._budgets.items():
            mine = [a for a in own if a.kind == kind]
            room = MAX_ANNOTATIONS - budget.shown
            if len(mine) + len(budget.held) > room or budget.dropped:
                room -= 1  # for the summary
            mine_shown, held_shown = mine[:room], budget.held[:max(0, room - len(mine))]
            for annotation in mine_shown + held_shown:
                self._emit(annotation)
            left = mine[len(mine_shown):] + budget.held[len(held_shown):]
            if left or budget.dropped:
                self._emit(_summary_of(kind, left, budget.dropped))
            self._budgets[kind] = _Budget(shown=MAX_ANNOTATIONS)

    def _emit(self, annotation: Annotation) -> None:
        props = ",".join(f"{key}={_escape_property(self._clean(value, one_line=True))}"
                         for key, value in annotation.properties)
        message = _escape_data(self._clean(annotation.message))
        self._command(f"::{annotation.kind} {props}::{message}")

    def finish(self, record: Mapping[str, Any], *, failures: Sequence[Failure] = (),
               commit: str | None, push_error: str | None,
               notifications: Sequence[str] = (), changed: bool = False) -> None:
        """The end of the run in the Actions UI: annotations (a failed push, failed
        modules, the summary of those past the cap), the step summary, the outputs."""
        if not self.enabled:
            return
        self.end_group()
        own = [Annotation("error", push_error, (("title", "push failed"),))] if push_error else []
        for failure in failures:
            kind = "error" if failure.critical and not failure.recovered_by else "warning"
            own.append(Annotation(kind, _annotation_text(failure), (("title", failure.name),)))
        self._flush(own)
        self.end_untrusted()
        link = self.log_link(commit, record["log_file"])
        self.summary(record, link, push_error=push_error, notifications=notifications)
        self.outputs(step_outputs(record, commit, changed))

    def outputs(self, values: Mapping[str, str]) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if not (self.enabled and path):
            return
        text = "".join(output_entry(key, self._clean(value)) for key, value in values.items())
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)

    def summary(self, record: Mapping[str, Any], log_link: str | None, *,
                push_error: str | None = None, notifications: Sequence[str] = ()) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not (self.enabled and path):
            return
        text = self._clean(step_summary(record, log_link, push_error=push_error,
                                        notifications=notifications))
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(text)

    def log_link(self, commit: str | None, log_path: str) -> str | None:
        """The committed log on the server, when the run was pushed."""
        server = (self.env.get("GITHUB_SERVER_URL") or "https://github.com").rstrip("/")
        repository = self.env.get("GITHUB_REPOSITORY")
        if not (commit and repository):
            return None
        return f"{server}/{repository}/blob/{commit}/{quote(log_path)}"


def _annotation_text(failure: Failure) -> str:
    kind = "critical" if failure.critical else "non-critical"
    text = f"{failure.name} ({kind}) failed: {failure.why}"
    if failure.recovered_by:
        text += f"; recovered by {failure.recovered_by}"
    return f"{text}; last stderr line: {failure.last_stderr}" if failure.last_stderr else text


def _summary_of(kind: str, left: Sequence[Annotation], dropped: Counter[str]) -> Annotation:
    """One annotation for those past the cap: failed modules by name (the runner's
    own; a failed push always fits), then each module once, with how many of its
    own annotations were left out."""
    failed = [dict(a.properties).get("title", "") for a in left if not a.module]
    counts = Counter(dropped)
    counts.update(a.module for a in left if a.module)
    total = len(failed) + sum(counts.values())
    if not counts:
        title, message = f"{total} more failed modules", f"{total} more modules failed: "
        message += ", ".join(failed)
    else:
        title = f"{total} more {kind}s"
        parts = [f"failed modules: {', '.join(failed)}"] if failed else []
        parts.append("from modules (see the log): " +
                     ", ".join(f"{name} ({n})" for name, n in counts.most_common()))
        message = f"{title}; " + "; ".join(parts)
    if len(message) > MAX_ANNOTATION_CHARS:
        message = message[:MAX_ANNOTATION_CHARS - len(CUT)].rsplit(", ", 1)[0] + CUT
    return Annotation(kind, message, (("title", title),))


def step_outputs(record: Mapping[str, Any], commit: str | None, changed: bool = False
                 ) -> dict[str, str]:
    """The step's outputs (docs/actions.md): what a later step of the job reads.
    `changed`: the pushed commit holds more than the run's own files."""
    log_file = record["log_file"]
    record_file = PurePosixPath(log_file).with_name(runid.record_name(record["run_id"]))
    return {"status": record["status"], "run_id": record["run_id"], "log_file": log_file,
            "record_file": str(record_file), "run_dir": record.get("run_dir") or "",
            "pushed": "true" if commit else "false", "commit": commit or "",
            "changed": "true" if commit and changed else "false"}


def output_entry(name: str, value: str) -> str:
    """`name<<delimiter`, the value, the delimiter: safe for any value (GitHub's
    "Multiline strings"); the delimiter is random and checked not to occur in it."""
    delimiter = f"ghadelimiter_{os.urandom(16).hex()}"
    while delimiter in value or delimiter in name:  # pragma: no cover (2**-128)
        delimiter = f"ghadelimiter_{os.urandom(16).hex()}"
    return f"{name}<<{delimiter}\n{value}\n{delimiter}\n"


def step_summary(record: Mapping[str, Any], log_link: str | None, *,
                 push_error: str | None = None, notifications: Sequence[str] = ()) -> str:
    """Markdown: headline, module table, gantt timeline, log link; under the size limit."""
    status = record["status"]
    modules = list(record["modules"])
    parts = [
        f"## {ICONS.get(status, '')} Pipeline run `{record['run_id']}`: **{status}**\n\n",
        f"{len(modules)} modules in {record['duration_seconds']:.1f} s, trigger "
        f"`{record['trigger']}`{', dry run' if record.get('dry_run') else ''}.\n\n",
        _table(modules),
        _gantt(record.get("started"), modules),
        _log_line(record["log_file"], log_link, push_error),
        f"Notifications sent: {_cell(', '.join(notifications))}\n" if notifications else "",
    ]
    text = "".join(parts)
    if len(text.encode()) > SUMMARY_BUDGET_BYTES:  # module names of absurd length
        text = text.encode()[:SUMMARY_BUDGET_BYTES].decode(errors="ignore") + "\n\n(cut)\n"
    return text


def _log_line(log_file: str, log_link: str | None, push_error: str | None) -> str:
    if log_link:
        return f"Log: [{log_file}]({log_link})\n\n"
    if push_error:
        return f"Log: `{log_file}`, **not pushed**: {_cell(push_error, 1000)}\n\n"
    return f"Log: `{log_file}` (not pushed)\n\n"


def _cell(value: object, limit: int = 200) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")[:limit]


def _status_cell(module: Mapping[str, Any]) -> str:
    text = module["status"] + (" (timed out)" if module.get("timed_out") else "")
    recovery = module.get("recovery")
    if isinstance(recovery, Mapping):
        text += f", recovery {recovery.get('status')}"
    return text


def _table(modules: list[Mapping[str, Any]]) -> str:
    rows = ["| # | module | status | duration | attempts | exit code |",
            "| ---: | --- | --- | ---: | ---: | ---: |"]
    for i, m in enumerate(modules[:MAX_TABLE_ROWS], 1):
        duration = "" if m["duration_seconds"] is None else f"{m['duration_seconds']:.1f} s"
        code = "" if m["exit_code"] is None else m["exit_code"]
        rows.append(f"| {i} | `{_cell(m['name'])}` | {_status_cell(m)} | {duration} | "
                    f"{m['attempts']} | {code} |")
    if len(modules) > MAX_TABLE_ROWS:
        rows.append(f"| | … {len(modules) - MAX_TABLE_ROWS} more modules | | | | |")
    return "\n".join(rows) + "\n\n"


# The gantt chart plots elapsed time, not clock time: mermaid reads dates in the
# viewer's time zone, so every bar is placed on an anchor date that has no
# daylight-saving change in its first weeks anywhere, as local time; the axis then
# shows minutes and seconds from the run's start whatever the viewer's zone.
GANTT_ANCHOR = datetime(2000, 1, 1)
GANTT_DATE_FORMAT = "YYYY-MM-DD HH:mm:ss.SSS"  # dayjs tokens: mermaid parses with dayjs
# Tick steps: the first that gives at most about 8 ticks, so no label repeats.
TICKS = ((1, "second"), (2, "second"), (5, "second"), (10, "second"), (15, "second"),
         (30, "second"), (1, "minute"), (2, "minute"), (5, "minute"), (10, "minute"),
         (15, "minute"), (30, "minute"), (1, "hour"), (2, "hour"), (3, "hour"), (6, "hour"),
         (12, "hour"), (1, "day"))
SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
GANTT_TAGS = {"failed": "crit, ", "skipped": "done, ", "recovered": "active, "}


def _gantt(run_started: str | None, modules: list[Mapping[str, Any]]) -> str:
    ran = [(i, m) for i, m in enumerate(modules, 1) if m.get("started") and m.get("finished")]
    if not ran:
        return ""
    origin = datetime.fromisoformat(run_started or ran[0][1]["started"])
    spans = [(i, m, _elapsed(origin, m["started"]), _elapsed(origin, m["finished"]))
             for i, m in ran[:MAX_GANTT_TASKS]]
    total = max(end for *_, end in spans)
    lines = ["```mermaid", "gantt", f"  dateFormat {GANTT_DATE_FORMAT}",
             f"  axisFormat {'%H:%M:%S' if total >= 3600 else '%M:%S'}",
             f"  tickInterval {_tick(total)}", "  todayMarker off", "  section modules"]
    for i, m, start, end in spans:
        end = max(end, start + 0.001)  # a bar needs some width to show
        lines.append(f"  {_task_label(i, m)} :{GANTT_TAGS.get(m['status'], '')}m{i}, "
                     f"{_gantt_date(start)}, {_gantt_date(end)}")
    if len(ran) > MAX_GANTT_TASKS:
        lines.append(f"  %% {len(ran) - MAX_GANTT_TASKS} more modules not drawn")
    return "\n".join(lines) + "\n```\n\n"


def _elapsed(origin: datetime, moment: str) -> float:
    return max(0.0, (datetime.fromisoformat(moment) - origin).total_seconds())


def _gantt_date(seconds: float) -> str:
    moment = GANTT_ANCHOR + timedelta(milliseconds=round(seconds * 1000))
    return moment.strftime("%Y-%m-%d %H:%M:%S.") + f"{moment.microsecond // 1000:03d}"


def _tick(total: float) -> str:
    for count, unit in TICKS:
        if total / (count * SECONDS[unit]) <= 8:
            return f"{count}{unit}"
    return "7day"


def _task_label(position: int, module: Mapping[str, Any]) -> str:
    """`3. name (status)`: a leading position keeps any name (`title`, `section`,
    `click`...) from being read as a mermaid keyword; only plain characters stay,
    so `:`, `#`, `;` and `%` cannot end the label or start a comment."""
    name = "".join(c if c.isalnum() or c in "._- " else "_" for c in module["name"])[:60]
    return f"{position}. {name} ({module['status']})"
