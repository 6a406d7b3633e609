"""GitHub Actions: log groups, annotations, the step summary and step outputs.

Everything here is a no-op unless GITHUB_ACTIONS=true. Every text that leaves
through it is masked first.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote

# GitHub shows at most 10 annotations of each type per step (its "Annotations"
# limits); past that they are dropped silently, so the rest are summarised.
MAX_ANNOTATIONS = 10
# $GITHUB_STEP_SUMMARY is refused above 1 MiB per step; stay well under it.
SUMMARY_BUDGET_BYTES = 900 * 1024
MAX_TABLE_ROWS = 300
MAX_GANTT_TASKS = 60
ICONS = {"success": "✅", "partial": "⚠️", "failed": "❌", "interrupted": "🛑"}


@dataclass(frozen=True)
class Failure:
    """A failed module, as an annotation tells it."""

    name: str
    critical: bool
    why: str  # "exit code 3", "timed out"...
    last_stderr: str = ""


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

    def _command(self, text: str) -> None:
        sys.stdout.write(text + "\n")
        sys.stdout.flush()

    def start_group(self, title: str) -> None:
        """Groups never nest: a group still open is closed first."""
        if not self.enabled:
            return
        self.end_group()
        self._command(f"::group::{_escape_data(self.mask(title))}")
        self._open_group = True

    def end_group(self) -> None:
        if self._open_group:
            self._command("::endgroup::")
            self._open_group = False

    def annotate(self, failures: Sequence[Failure]) -> None:
        """::error for a failed critical module, ::warning for a non-critical one."""
        if not self.enabled:
            return
        for kind, critical in (("error", True), ("warning", False)):
            chosen = [f for f in failures if f.critical is critical]
            shown = chosen if len(chosen) <= MAX_ANNOTATIONS else chosen[: MAX_ANNOTATIONS - 1]
            for failure in shown:
                self._annotation(kind, failure.name, _annotation_text(failure))
            rest = chosen[len(shown):]
            if rest:
                names = ", ".join(f.name for f in rest)
                self._annotation(kind, f"{len(rest)} more failed modules",
                                 f"{len(rest)} more modules failed: {names}")

    def _annotation(self, kind: str, title: str, message: str) -> None:
        title, message = self.mask(title), self.mask(message)
        self._command(f"::{kind} title={_escape_property(title)}::{_escape_data(message)}")

    def outputs(self, values: Mapping[str, str]) -> None:
        path = self.env.get("GITHUB_OUTPUT")
        if not (self.enabled and path):
            return
        with open(path, "a", encoding="utf-8") as handle:
            for key, value in values.items():
                handle.write(f"{key}={self.mask(value).replace(chr(10), ' ')}\n")

    def summary(self, record: Mapping[str, Any], log_link: str | None) -> None:
        path = self.env.get("GITHUB_STEP_SUMMARY")
        if not (self.enabled and path):
            return
        text = self.mask(step_summary(record, log_link))
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
    return f"{text}; last stderr line: {failure.last_stderr}" if failure.last_stderr else text


def step_summary(record: Mapping[str, Any], log_link: str | None) -> str:
    """Markdown: headline, module table, gantt timeline, log link; under the size limit."""
    status = record["status"]
    modules = list(record["modules"])
    parts = [
        f"## {ICONS.get(status, '')} Pipeline run `{record['run_id']}`: **{status}**\n\n",
        f"{len(modules)} modules in {record['duration_seconds']:.1f} s, trigger "
        f"`{record['trigger']}`{', dry run' if record.get('dry_run') else ''}.\n\n",
        _table(modules),
        _gantt(modules),
        f"Log: [{record['log_file']}]({log_link})\n" if log_link else
        f"Log: `{record['log_file']}` (not pushed)\n",
    ]
    text = "".join(parts)
    if len(text.encode()) > SUMMARY_BUDGET_BYTES:  # module names of absurd length
        text = text.encode()[:SUMMARY_BUDGET_BYTES].decode(errors="ignore") + "\n\n(cut)\n"
    return text


def _cell(value: object) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")[:200]


def _table(modules: list[Mapping[str, Any]]) -> str:
    rows = ["| # | module | status | duration | attempts | exit code |",
            "| ---: | --- | --- | ---: | ---: | ---: |"]
    for i, m in enumerate(modules[:MAX_TABLE_ROWS], 1):
        duration = "" if m["duration_seconds"] is None else f"{m['duration_seconds']:.1f} s"
        code = "" if m["exit_code"] is None else m["exit_code"]
        timed_out = " (timed out)" if m.get("timed_out") else ""
        rows.append(f"| {i} | `{_cell(m['name'])}` | {m['status']}{timed_out} | {duration} | "
                    f"{m['attempts']} | {code} |")
    if len(modules) > MAX_TABLE_ROWS:
        rows.append(f"| | … {len(modules) - MAX_TABLE_ROWS} more modules | | | | |")
    return "\n".join(rows) + "\n\n"


def _gantt(modules: list[Mapping[str, Any]]) -> str:
    ran = [m for m in modules if m["started"] and m["finished"]]
    if not ran:
        return ""
    lines = ["```mermaid", "gantt", "  dateFormat x", "  axisFormat %H:%M:%S",
             "  section modules"]
    tags = {"failed": "crit, ", "skipped": "done, "}
    for i, m in enumerate(ran[:MAX_GANTT_TASKS], 1):
        start = int(datetime.fromisoformat(m["started"]).timestamp() * 1000)
        # A bar needs some width to show: at least 1 ms.
        end = max(start + 1, int(datetime.fromisoformat(m["finished"]).timestamp() * 1000))
        name = "".join(c if c.isalnum() or c in "._- " else "_" for c in m["name"])[:60]
        lines.append(f"  {name} ({m['status']}) :{tags.get(m['status'], '')}m{i}, {start}, {end}")
    if len(ran) > MAX_GANTT_TASKS:
        lines.append(f"  %% {len(ran) - MAX_GANTT_TASKS} more modules not drawn")
    return "\n".join(lines) + "\n```\n\n"
