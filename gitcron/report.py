"""`report --html DIR`: the run history as one page a person looks at.

The page is one file, `DIR/index.html`, that needs nothing at view time: no
network, no script, its charts inline SVG and its style inline CSS, so that
GitHub Pages (or any folder) serves it as it is. Records are read newest first
through gitcron/records.py and reading stops at `-n` runs: the cost follows
what is shown, not the size of the history.

Every text on the page comes from files a module can write (records, file
names), so each one is masked (the values the runner masks, read from this
environment and `.env`), its control characters written as \\xNN, and then
HTML-escaped where the page writes it (`Text.plain`, then `html.escape`).
"""

from __future__ import annotations

import argparse
import html
import itertools
import os
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from gitcron import config as cfg
from gitcron.codes import EXIT_OK, FatalError
from gitcron.history import _count, _Parser, format_duration, started_at, warn_skipped
from gitcron.records import Record, is_rehearsal, is_whole, records_newest_first
from gitcron.records import moment as record_time
from gitcron.text import sanitise

DEFAULT_COUNT = 200
PAGE_NAME = "index.html"
ERROR_WIDTH = 200  # characters of a failure's first line shown in the table
# The badge's words, as in `<log_dir>/badge.json` (shields.io's endpoint format).
BADGE = {"success": ("passing", "#1a7f37"), "partial": ("partial", "#9a6700"),
         "failed": ("failing", "#cf222e"), "interrupted": ("failing", "#cf222e")}
RUN_STATUSES = ("success", "partial", "failed", "interrupted")
MODULE_STATUSES = ("success", "skipped", "recovered", "failed", "not_run")
MARKS = {"success": "✓", "skipped": "↷", "failed": "✗", "recovered": "↺", "not_run": "·"}


class Text:
    """What a page may show of an outside value: masked, printable, escaped."""

    def __init__(self, mask: Callable[[str], str]) -> None:
        self.mask = mask

    def plain(self, value: Any, missing: str = "?") -> str:
        """Masked and printable; the page escapes it where it writes it."""
        if value is None or value == "":
            return missing
        return sanitise(self.mask(str(value)), one_line=True)


class ModuleRun(NamedTuple):
    name: str
    status: str
    seconds: float | None
    exit_code: str
    attempts: str
    error: str


class Run(NamedTuple):
    run_id: str
    status: str
    started: str
    moment: datetime | None
    seconds: float | None
    trigger: str
    log_href: str | None
    window: tuple[datetime | None, datetime | None]
    notes: tuple[str, ...]
    backfill: bool
    rehearsal: bool
    whole: bool  # what the current status, the badge and the rates count, as in `status`
    modules: tuple[ModuleRun, ...]


class Page(NamedTuple):
    title: str
    runs: list[Run]  # newest first
    generated: datetime
    asked: int  # -n


# The command


def report_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator.py report",
                     description="Write the run history as one self-contained HTML page.")
    parser.add_argument("--html", required=True, metavar="DIR",
                        help=f"the folder to write {PAGE_NAME} into (made when missing)")
    parser.add_argument("-n", type=_count, default=DEFAULT_COUNT, metavar="N",
                        help=f"how many of the newest runs (default {DEFAULT_COUNT})")
    parser.add_argument("--config", metavar="PATH",
                        help="the config file (default: config.json, .yaml or .yml, here or "
                             "beside orchestrator.py)")
    parser.add_argument("--log-url", metavar="PREFIX",
                        help="link each run to PREFIX + its log's path in the repository "
                             "(e.g. https://github.com/OWNER/REPO/blob/main/); default: a "
                             "relative link from DIR to the log on disk")
    return parser


def report_main(argv: Sequence[str]) -> int:
    """`orchestrator.py report --html DIR [-n N] [--config PATH] [--log-url PREFIX]`."""
    args = report_parser().parse_args(list(argv))
    config = cfg.load(cfg.find(args.config))
    env = cfg.load_env(config.root, os.environ)
    out_dir = _out_dir(args.html)
    text = Text(_masker(config, env))
    skipped: list[Path] = []
    records = itertools.islice(records_newest_first(config.log_dir, skipped), args.n)
    links = _linker(config.root, out_dir, args.log_url, text)
    runs = [read_run(path, record, config.tz, text, links) for path, record in records]
    warn_skipped("report", skipped)
    from gitcron.run import pipeline_name  # the name notifications and metrics use too

    title = pipeline_name(config, env)
    page = render(Page(text.plain(title), runs, datetime.now(timezone.utc), args.n))
    target = out_dir / PAGE_NAME
    try:
        cfg.write_atomic(target, page)
    except OSError as exc:
        raise FatalError(f"--html {args.html}: cannot write {PAGE_NAME}: "
                         f"{exc.strerror or exc}") from None
    print(f"report: {sanitise(str(target), one_line=True)}: "
          f"{len(runs)} run{'s' if len(runs) != 1 else ''}")
    return EXIT_OK


def _out_dir(arg: str) -> Path:
    folder = Path(arg)
    if folder.exists() and not folder.is_dir():
        raise FatalError(f"--html {arg}: not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise FatalError(f"--html {arg}: cannot make the folder: {exc.strerror or exc}") from None
    return folder


def _masker(config: cfg.Config, env: Mapping[str, str]) -> Callable[[str], str]:
    from gitcron import logs

    return logs.Masker(logs.secret_values(env, config.mask_env))


def _linker(root: Path, out_dir: Path, prefix: str | None, text: Text
            ) -> Callable[[Any], str | None]:
    """A run's link to its log: PREFIX + its path, or relative from the page's folder."""
    # Found once: a relpath per run costs a third of a page of 10,000 runs.
    up = Path(os.path.relpath(root.absolute(), out_dir.absolute())).as_posix() + "/"

    def link(log_file: Any) -> str | None:
        if not isinstance(log_file, str) or not log_file or "\0" in log_file:
            return None
        path = text.mask(log_file)
        if prefix is not None:
            return prefix + quote(path)
        if os.path.isabs(path):
            return quote(Path(os.path.relpath(path, out_dir.absolute())).as_posix())
        return quote(up + path)
    return link


# Records to runs: whatever their age or content


def read_run(path: Path, record: Record, tz: Any, text: Text,
             link: Callable[[Any], str | None]) -> Run:
    moment = started_at(record, path, tz)
    run_id = text.plain(record.get("run_id"), path.stem.removeprefix("workflow_"))
    window = record.get("window") if isinstance(record.get("window"), dict) else {}
    return Run(
        run_id=run_id, status=text.plain(record.get("status")),
        started=moment.strftime("%Y-%m-%d %H:%M") if moment else "?", moment=moment,
        seconds=_seconds(record.get("duration_seconds")),
        trigger=text.plain(record.get("trigger")), log_href=link(record.get("log_file")),
        window=(record_time(window.get("start")), record_time(window.get("end"))),
        notes=tuple(_notes(record, text)), backfill=record.get("backfill") is True,
        rehearsal=is_rehearsal(record), whole=is_whole(record),
        modules=tuple(_module(m, text) for m in record["modules"] if isinstance(m, dict)),
    )


def _seconds(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return max(0.0, float(value))


def _notes(record: Record, text: Text) -> Iterable[str]:
    for key, note in (("backfill", "backfill"), ("dry_run", "dry run"), ("force", "forced")):
        if record.get(key) is True:
            yield note
    selection = record.get("selection")
    if isinstance(selection, dict):
        if selection.get("resume_of"):
            yield f"resumes {text.plain(selection['resume_of'])}"
        elif any(selection.get(key) for key in ("only", "from", "skip")):
            yield "narrowed"


def _module(entry: dict[str, Any], text: Text) -> ModuleRun:
    error = entry.get("error")
    first_line = str(error).strip().splitlines()[0] if error and str(error).strip() else ""
    attempts = entry.get("attempts")
    return ModuleRun(
        name=text.plain(entry.get("name")), status=text.plain(entry.get("status")),
        seconds=_seconds(entry.get("duration_seconds")), exit_code=_exit_code(entry),
        attempts=str(attempts) if isinstance(attempts, int) else "",
        error=text.plain(first_line, "")[:ERROR_WIDTH],
    )


def _exit_code(entry: dict[str, Any]) -> str:
    code = entry.get("exit_code")
    if entry.get("timed_out") is True:
        return "timeout"
    if isinstance(code, bool) or not isinstance(code, int):
        return ""
    return f"signal {-code}" if code < 0 else str(code)


# The page


def render(page: Page) -> str:
    oldest_first = page.runs[::-1]
    parts = [
        _head(page.title),
        _header(page),
        _timeline(oldest_first),
        _windows(oldest_first),
        _durations(oldest_first),
        _failures(page.runs),
        _runs_table(page.runs),
        "</main></body></html>\n",
    ]
    return "".join(parts)


STYLE = """
:root{--ok:#1a7f37;--partial:#9a6700;--fail:#cf222e;--intr:#8250df;--skip:#8c959f;
--none:#d0d7de;--fg:#1f2328;--muted:#59636e;--bg:#fff;--line:#d1d9e0;--card:#f6f8fa}
@media (prefers-color-scheme:dark){:root{--fg:#e6edf3;--muted:#9198a1;--bg:#0d1117;
--line:#3d444d;--card:#151b23;--none:#3d444d}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:15px/1.45 system-ui,-apple-system,
"Segoe UI",Roboto,sans-serif}
main{max-width:1200px;margin:0 auto;padding:16px}
h1{font-size:1.5em;margin:0 0 4px;overflow-wrap:anywhere}
h2{font-size:1.15em;margin:28px 0 8px;border-bottom:1px solid var(--line);padding-bottom:4px}
a{color:inherit}
.muted{color:var(--muted)}
.head{display:flex;flex-wrap:wrap;gap:8px 16px;align-items:center}
.facts{display:grid;grid-template-columns:repeat(auto-fill,minmax(170px,1fr));gap:8px;
margin:12px 0;padding:0}
.facts div{background:var(--card);border:1px solid var(--line);border-radius:6px;
padding:8px 10px}
.facts dt{font-size:.8em;color:var(--muted)}.facts dd{margin:0;font-weight:600;
overflow-wrap:anywhere}.facts small{display:block;font-weight:400}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;font-size:.85em;color:var(--muted);
margin:4px 0 8px}
.legend span::before{content:"";display:inline-block;width:10px;height:10px;
border-radius:2px;margin-right:5px;vertical-align:-1px;background:var(--c)}
.timeline{display:flex;flex-wrap:wrap;gap:3px}
.timeline a{display:block;width:12px;height:22px;border-radius:2px;background:var(--c)}
.timeline a.rehearsal{background:repeating-linear-gradient(135deg,var(--c) 0 3px,
transparent 3px 5px);outline:1px solid var(--c);outline-offset:-1px}
.timeline a:hover,.timeline a:focus{outline:2px solid var(--fg);outline-offset:1px}
.success{--c:var(--ok)}.partial,.recovered{--c:var(--partial)}.failed{--c:var(--fail)}
.interrupted{--c:var(--intr)}.skipped{--c:var(--skip)}.not_run{--c:var(--none)}
.unknown{--c:var(--muted)}
.status{font-weight:600;color:var(--c);white-space:nowrap}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(300px,1fr));gap:12px}
.chart{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 10px;
min-width:0}
.chart h3{font-size:.95em;margin:0;overflow-wrap:anywhere}
.chart p{margin:0 0 4px;font-size:.8em;color:var(--muted)}
svg{display:block;width:100%;height:auto}
.scroll{overflow-x:auto;max-width:100%}
table{border-collapse:collapse;width:100%;font-size:.9em}
th,td{text-align:left;padding:4px 8px;border-bottom:1px solid var(--line);vertical-align:top;
overflow-wrap:anywhere}
th{font-weight:600;color:var(--muted);overflow-wrap:normal}
td.num{text-align:right;white-space:nowrap;overflow-wrap:normal;
font-variant-numeric:tabular-nums}
td.id,td.when{white-space:nowrap;overflow-wrap:normal}
td.err{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;
overflow-wrap:anywhere;min-width:12em}
.marks{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;letter-spacing:1px}
.tag{display:inline-block;font-size:.78em;border:1px solid var(--line);border-radius:10px;
padding:0 6px;margin:1px 2px 1px 0;white-space:nowrap}
@media (max-width:640px){main{padding:10px}.wide{display:none}td.err{min-width:0}
th,td{padding:4px 5px}.timeline a{width:14px;height:24px}}
"""


def _head(title: str) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta name=\"viewport\" content=\"width=device-width,initial-scale=1\">"
            "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
            "style-src 'unsafe-inline'; img-src data:\">"
            f"<title>{html.escape(title)}: pipeline history</title>"
            f"<style>{STYLE}</style></head><body><main>")


def _status_class(status: str) -> str:
    return status if status in RUN_STATUSES or status in MODULE_STATUSES else "unknown"


def _header(page: Page) -> str:
    whole = [run for run in page.runs if run.whole]
    current = whole[0] if whole else None
    message, colour = BADGE.get(current.status, ("unknown", "#59636e")) if current else (
        "no runs", "#59636e")
    facts = _facts(page, whole, current)
    shown = len(page.runs)
    scope = (f"the newest {shown} runs" if shown >= page.asked
             else f"all {shown} run{'s' if shown != 1 else ''}")
    return (f"<header><div class=\"head\"><h1>{html.escape(page.title)}</h1>"
            f"{badge(message, colour)}</div>"
            f"<p class=\"muted\">Pipeline history: {scope}, newest last in the charts. "
            f"Generated {page.generated:%Y-%m-%d %H:%M} UTC.</p>"
            f"<dl class=\"facts\">{facts}</dl></header>")


def _facts(page: Page, whole: list[Run], current: Run | None) -> str:
    facts = [("current status", _status_html(current.status) + f"<small class=\"muted\">"
              f"{html.escape(current.run_id)}</small>" if current else "no whole run yet")]
    success = next((run for run in whole if run.status == "success"), None)
    facts.append(("newest success", html.escape(success.started) if success else "none shown"))
    in_a_row = sum(1 for _ in itertools.takewhile(
        lambda run: run.status in ("failed", "interrupted"), whole))
    facts.append(("failures in a row", str(in_a_row)))
    if whole:
        good = sum(run.status == "success" for run in whole)
        facts.append(("success rate", f"{100 * good / len(whole):.0f}% "
                      f"<span class=\"muted\">({good} of {len(whole)})</span>"))
    known = [run.seconds for run in whole if run.seconds is not None]
    facts.append(("median duration",
                  format_duration(statistics.median(known)) if known else "?"))
    apart = len(page.runs) - len(whole)
    if apart:
        facts.append(("not counted", f"{apart} <span class=\"muted\">(narrowed, dry runs, "
                      "backfills)</span>"))
    return "".join(f"<div><dt>{label}</dt><dd>{value}</dd></div>" for label, value in facts)


def _status_html(status: str) -> str:
    return f"<span class=\"status {_status_class(status)}\">{html.escape(status)}</span>"


def badge(message: str, colour: str) -> str:
    """A flat badge like shields.io's, drawn inline: `pipeline | passing`."""
    label = "pipeline"
    left, right = 8 + 7 * len(label), 10 + 7 * len(message)
    width = left + right
    return (f"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"20\" "
            f"viewBox=\"0 0 {width} 20\" role=\"img\" aria-label=\"{label}: {message}\" "
            f"style=\"width:{width}px\"><rect width=\"{left}\" height=\"20\" rx=\"3\" "
            f"fill=\"#555\"/><rect x=\"{left}\" width=\"{right}\" height=\"20\" rx=\"3\" "
            f"fill=\"{colour}\"/><rect x=\"{left}\" width=\"4\" height=\"20\" "
            f"fill=\"{colour}\"/><g fill=\"#fff\" font-family=\"Verdana,DejaVu Sans,sans-serif\" "
            f"font-size=\"11\" text-anchor=\"middle\"><text x=\"{left / 2}\" y=\"14\">{label}"
            f"</text><text x=\"{left + right / 2}\" y=\"14\">{message}</text></g></svg>")


def _legend(statuses: Sequence[str], extra: str = "") -> str:
    items = "".join(f"<span class=\"{s}\">{s.replace('_', ' ')}</span>" for s in statuses)
    return f"<p class=\"legend\">{items}{extra}</p>"


def _timeline(runs: list[Run]) -> str:
    cells = []
    for run in runs:
        label = html.escape(f"{run.run_id} {run.status} {format_duration(run.seconds)}"
                            + "".join(f", {note}" for note in run.notes))
        classes = _status_class(run.status) + (" rehearsal" if run.rehearsal else "")
        href = f" href=\"{html.escape(run.log_href)}\"" if run.log_href else ""
        cells.append(f"<a class=\"{classes}\"{href} title=\"{label}\" "
                     f"aria-label=\"{label}\"></a>")
    striped = "<span class=\"muted\">striped: dry run or backfill</span>"
    return (f"<section><h2>Runs, oldest to newest</h2>{_legend(RUN_STATUSES, striped)}"
            f"<nav class=\"timeline\">{''.join(cells)}</nav></section>")


# Windows: each run's [start, end) on one time axis; backfills on a lane of their own.

CHART_W, WINDOW_LANE = 1000, 18


def _windows(runs: list[Run]) -> str:
    spans = [(run, start, end) for run in runs for start, end in [run.window]
             if start is not None and end is not None and end >= start]
    if not spans:
        return ""
    low = min(start for _, start, _ in spans)
    high = max(end for _, _, end in spans)
    total = max((high - low).total_seconds(), 1.0)
    rects = []
    for run, start, end in spans:
        x = CHART_W * (start - low).total_seconds() / total
        w = max(CHART_W * (end - start).total_seconds() / total, 4.0)
        y = 4 + (WINDOW_LANE + 6 if run.backfill else 0)
        tip = html.escape(f"{run.run_id} {run.status}: {start.isoformat()} to {end.isoformat()}"
                          + (" (backfill)" if run.backfill else ""))
        rects.append(f"<rect class=\"{_status_class(run.status)}\" x=\"{x:.1f}\" y=\"{y}\" "
                     f"width=\"{w:.1f}\" height=\"{WINDOW_LANE}\" fill=\"var(--c)\" "
                     f"fill-opacity=\"0.75\"><title>{tip}</title></rect>")
    height = 8 + 2 * WINDOW_LANE + 6
    return ("<section><h2>Time windows</h2><p class=\"muted\">The data window each run "
            f"handled, from {low:%Y-%m-%d %H:%M} to {high:%Y-%m-%d %H:%M}: scheduled runs on "
            "the upper lane, backfills on the lower. A gap is a stretch no run covered.</p>"
            f"<svg viewBox=\"0 0 {CHART_W} {height}\" preserveAspectRatio=\"none\" "
            f"style=\"height:{height}px\" role=\"img\" aria-label=\"run windows\">"
            f"<rect width=\"{CHART_W}\" height=\"{height}\" fill=\"var(--card)\"/>"
            f"{''.join(rects)}</svg></section>")


# Each module's duration over the runs: small multiples sharing one x axis (the runs).

DUR_W, DUR_H, DUR_PAD = 300, 90, 6


def _durations(runs: list[Run]) -> str:
    names = _module_names(runs)
    if not names:
        return ""
    charts = "".join(_duration_chart(name, runs) for name in names)
    legend = _legend(("success", "skipped", "recovered", "failed"))
    return (f"<section><h2>Module durations</h2><p class=\"muted\">One point per run, oldest "
            f"left; a dot marks a run where the module did not succeed.</p>{legend}"
            f"<div class=\"charts\">{charts}</div></section>")


def _module_names(runs: list[Run]) -> list[str]:
    """Newest run's order first, then modules seen only in older runs."""
    seen: dict[str, None] = {}
    for run in reversed(runs):
        for module in run.modules:
            seen.setdefault(module.name, None)
    return list(seen)


class Point(NamedTuple):
    x: float
    y: float
    seconds: float
    status: str
    run_id: str


def _points(name: str, runs: list[Run]) -> list[Point]:
    """The module's duration in each run that has one, placed on the chart."""
    found = [(i, m.seconds, m.status, run.run_id) for i, run in enumerate(runs)
             for m in run.modules if m.name == name and m.seconds is not None]
    top = max((seconds for _, seconds, _, _ in found), default=0.0) or 1.0
    span = max(len(runs) - 1, 1)
    return [Point(DUR_PAD + (DUR_W - 2 * DUR_PAD) * i / span,
                  DUR_H - DUR_PAD - (DUR_H - 2 * DUR_PAD) * seconds / top, seconds, status, run_id)
            for i, seconds, status, run_id in found]


def _duration_chart(name: str, runs: list[Run]) -> str:
    points = _points(name, runs)
    values = [point.seconds for point in points]
    line = " ".join(f"{p.x:.1f},{p.y:.1f}" for p in points)
    dots = "".join(
        f"<circle class=\"{_status_class(p.status)}\" cx=\"{p.x:.1f}\" cy=\"{p.y:.1f}\" r=\"3\" "
        f"fill=\"var(--c)\"><title>{html.escape(p.run_id)}: {html.escape(p.status)}, "
        f"{format_duration(p.seconds)}</title></circle>" for p in points if p.status != "success")
    summary = (f"last {format_duration(values[-1])}, median "
               f"{format_duration(statistics.median(values))}, max {format_duration(max(values))}"
               if values else "no duration recorded")
    return (f"<div class=\"chart\"><h3>{html.escape(name)}</h3><p>{summary}</p>"
            f"<svg viewBox=\"0 0 {DUR_W} {DUR_H}\" role=\"img\" "
            f"aria-label=\"{html.escape(name)} duration per run\">"
            f"<line x1=\"{DUR_PAD}\" x2=\"{DUR_W - DUR_PAD}\" y1=\"{DUR_PAD}\" y2=\"{DUR_PAD}\" "
            f"stroke=\"var(--line)\" stroke-dasharray=\"3 3\"/>"
            f"<line x1=\"{DUR_PAD}\" x2=\"{DUR_W - DUR_PAD}\" y1=\"{DUR_H - DUR_PAD}\" "
            f"y2=\"{DUR_H - DUR_PAD}\" stroke=\"var(--line)\"/>"
            f"<polyline points=\"{line}\" fill=\"none\" stroke=\"#0969da\" stroke-width=\"1.5\" "
            f"stroke-linejoin=\"round\"/>{dots}</svg></div>")


def _link(run: Run, text: str) -> str:
    if run.log_href is None:
        return text
    return f"<a href=\"{html.escape(run.log_href)}\">{text}</a>"


def _failures(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        for module in run.modules:
            if module.status in ("failed", "recovered"):
                rows.append(
                    f"<tr><td class=\"id\">{_link(run, html.escape(run.run_id))}</td>"
                    f"<td class=\"wide when\">{html.escape(run.started)}</td>"
                    f"<td>{html.escape(module.name)}<br>{_status_html(module.status)} "
                    f"<span class=\"muted\">{_ended(module.exit_code)}</span></td>"
                    f"<td class=\"num wide\">{html.escape(module.attempts)}</td>"
                    f"<td class=\"err\">{html.escape(module.error)}</td></tr>")
    if not rows:
        return "<section><h2>Failures</h2><p class=\"muted\">No module failed in these runs.</p>" \
               "</section>"
    return ("<section><h2>Failures</h2><div class=\"scroll\"><table><thead><tr><th>run</th>"
            "<th class=\"wide\">started</th><th>module, exit code</th>"
            "<th class=\"wide\">attempts</th><th>error</th></tr></thead><tbody>"
            f"{''.join(rows)}</tbody></table></div></section>")


def _ended(exit_code: str) -> str:
    return f"exit {exit_code}" if exit_code.isdigit() else html.escape(exit_code)


def _runs_table(runs: list[Run]) -> str:
    rows = []
    for run in runs:
        marks = "".join(f"<span class=\"{_status_class(m.status)} status\" title=\""
                        f"{html.escape(m.name)}: {html.escape(m.status)}\">"
                        f"{MARKS.get(m.status, '?')}</span>" for m in run.modules)
        tags = "".join(f"<span class=\"tag\">{html.escape(note)}</span>" for note in run.notes)
        rows.append(
            f"<tr><td class=\"id\">{_link(run, html.escape(run.run_id))}</td>"
            f"<td>{_status_html(run.status)}</td>"
            f"<td class=\"wide when\">{html.escape(run.started)}</td>"
            f"<td class=\"num\">{format_duration(run.seconds)}</td>"
            f"<td class=\"wide\">{html.escape(run.trigger)}</td>"
            f"<td class=\"wide when\">{_window_text(run)}</td>"
            f"<td><span class=\"marks\">{marks}</span> {tags}</td></tr>")
    return ("<section><h2>Every run, newest first</h2><div class=\"scroll\"><table><thead><tr>"
            "<th>run</th><th>status</th><th class=\"wide\">started</th><th>took</th>"
            "<th class=\"wide\">trigger</th><th class=\"wide\">window</th><th>modules</th>"
            f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div></section>")


def _window_text(run: Run) -> str:
    start, end = run.window
    if end is None:
        return ""
    return f"{start:%m-%d %H:%M} → {end:%m-%d %H:%M}" if start else f"… → {end:%m-%d %H:%M}"
