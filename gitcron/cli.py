"""The command line: arguments, the one error handler, exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from gitcron import __version__
from gitcron import config as cfg
from gitcron import plan as planning
from gitcron import window as windows
from gitcron.codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE, FatalError
from gitcron.text import sanitise

EXAMPLES = """\
commands:
  run (the default)   python orchestrator.py --only transform_data
  history             python orchestrator.py history -n 50
  status              python orchestrator.py status --json
  report              python orchestrator.py report --html site
  init                python orchestrator.py init path/to/repository

exit codes: 0 success or partial, 1 failed, 2 bad usage or configuration,
            3 run finished but not pushed, 4 another run holds this checkout,
            130 interrupted

examples:
  python orchestrator.py                       run the whole pipeline
  python orchestrator.py --list                show the plan, run nothing
  python orchestrator.py --only transform_data run one module (name, short name or number)
  python orchestrator.py --from 2 --skip 0     start at module 2, leave module 0 out
  python orchestrator.py --resume              start where the newest run failed
  python orchestrator.py --window 120          hand the modules the last two hours
  python orchestrator.py --since 2026-11-01 --until 2026-11-04 --every 1d
                                               backfill three days, one run a day
  python orchestrator.py --dry-run --no-push   rehearse: no state, no commit
"""
COMMANDS = ("history", "status", "init", "report", "task")


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the option at fault (argparse prints the usage too)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {sanitise(message, one_line=True)} (see --help)\n")


def _names(value: str) -> list[str]:
    """`--only a b`, `--only a,b`, `--only "a b"` and repeated options all work."""
    names = value.replace(",", " ").split()
    if not names:
        raise argparse.ArgumentTypeError("an empty module name")
    return names


def _number(unit: str, low: float, high: float, above: bool = False) -> Callable[[str], float]:
    """An argparse type: a number of `unit` from `low` (or above it) to `high`."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not a number of {unit}") from None
        if not (low < number if above else low <= number) or not number <= high:
            bound = f"above {low:g}" if above else f"from {low:g}"
            raise argparse.ArgumentTypeError(f"{value!r}: a number of {unit} {bound} and at "
                                             f"most {high:.0f}")
        return number
    return parse


_seconds = _number("seconds", 0, cfg.MAX_SECONDS)  # --wait: up to 7 days
_minutes = _number("minutes", 0, cfg.MAX_MINUTES, above=True)  # --window: up to 10 years


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orchestrator.py",
        usage="%(prog)s [run] [options] | history | status | init [DIR] | report --html DIR",
        description="Run the pipeline's modules one after another; log, record and "
        "commit the run back to the repository.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", metavar="PATH",
                        help="the config file (default: config.json, config.yaml or config.yml "
                        "here, else beside orchestrator.py)")
    parser.add_argument("--only", nargs="+", type=_names, action="extend", default=[],
                        metavar="NAME", help="run just these modules, in pipeline order")
    start = parser.add_mutually_exclusive_group()
    start.add_argument("--from", dest="start", metavar="NAME", help="start at this module")
    start.add_argument("--resume", action="store_true",
                       help="start at the module that failed in the newest run record")
    parser.add_argument("--skip", nargs="+", type=_names, action="extend", default=[],
                        metavar="NAME", help="leave these modules out")
    parser.add_argument("--dry-run", action="store_true",
                        help="modules run with PIPELINE_DRY_RUN=1; no state, no commit")
    parser.add_argument("--force", action="store_true",
                        help="modules run with PIPELINE_FORCE=1 (ignore freshness checks)")
    push = parser.add_mutually_exclusive_group()
    push.add_argument("--push", dest="push", action="store_true", default=None,
                      help="commit and push the run back, whatever git.push says")
    push.add_argument("--no-push", dest="push", action="store_false",
                      help="do not commit or push, whatever git.push says")
    parser.add_argument("--list", action="store_true",
                        help="print the plan (and a backfill's intervals) and exit")
    parser.add_argument("--since", metavar="TIME",
                        help="the window's start (ISO 8601 date or date-time): a backfill")
    parser.add_argument("--until", metavar="TIME",
                        help="the window's end, exclusive (default: now)")
    parser.add_argument("--every", metavar="D",
                        help="with --since: one run per interval of D (30m, 6h, 1d), oldest first")
    parser.add_argument("--window", type=_minutes, metavar="MINUTES",
                        help="the window is the last MINUTES before the run's start")
    parser.add_argument("--wait", type=_seconds, default=0.0, metavar="SECONDS",
                        help="wait this long for another run in this checkout to finish")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug lines on the console")
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="the console's lines: text, or one JSON object a line (time, level, "
                        "module, message, run_id) for log shippers; the log file keeps its format")
    parser.add_argument("--version", action="version", version=f"gitcron {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["run"]:
        argv = argv[1:]
    try:
        if argv[:1] and argv[0] in COMMANDS:
            return _command(argv[0])(argv[1:])
        args = build_parser().parse_args(argv)
        return _quietly_piped(lambda: _main(args))
    except FatalError as exc:
        print(f"orchestrator: {sanitise(str(exc), one_line=True)}", file=sys.stderr)
        return EXIT_USAGE
    except ModuleNotFoundError as exc:
        if not _a_requirement(exc.name):
            raise
        print(f"orchestrator: the requirements are not installed (no module "
              f"{sanitise(str(exc.name), one_line=True)!r}): {_install_hint()}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:  # a signal while still starting: nothing was written
        return EXIT_INTERRUPTED


def _a_requirement(name: str | None) -> bool:
    """A module missing from outside the standard library and the package: a
    requirement that is not installed (import names differ from the names in
    requirements.txt: `yaml` is PyYAML)."""
    top = (name or "").partition(".")[0]
    return bool(top) and top != __package__ and top not in sys.stdlib_module_names


def _install_hint() -> str:
    """What to install: requirements.txt beside the package (a checkout), else the
    installed package's own dependencies; one home either way."""
    from pathlib import Path

    listed = Path(__file__).resolve().parent.parent / "requirements.txt"
    try:
        lines = listed.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        from importlib import metadata

        try:
            wanted = metadata.requires(__package__) or []
        except metadata.PackageNotFoundError:
            wanted = []
        return f"install {', '.join(wanted) or 'its requirements'}"
    wanted = [line.split("#")[0].strip() for line in lines]
    return (f"run `pip install -r {listed}` ({', '.join(w for w in wanted if w)})")


def _command(name: str) -> Callable[[list[str]], int]:
    if name == "init":
        from gitcron import scaffold

        return scaffold.init_main
    if name == "report":
        from gitcron import report

        return report.report_main
    if name == "task":  # one module of a run on Airflow (docs/airflow.md)
        from gitcron import task

        return task.task_main
    from gitcron import history

    return history.history_main if name == "history" else history.status_main


def _quietly_piped(work: Callable[[], int]) -> int:
    """Output into a closed pipe (`--list | head -1`) ends quietly, as `cat` does."""
    try:
        return work()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush is quiet too
        return EXIT_OK


def _main(args: argparse.Namespace) -> int:
    config = cfg.load(cfg.find(args.config))
    selection = planning.Selection(
        only=tuple(sum(args.only, [])), start=args.start, skip=tuple(sum(args.skip, [])),
        resume=args.resume,
    )
    plan = planning.build(config, selection)
    backfill = _backfill(args, config)
    if args.list:
        if plan.note:  # --resume with nothing to resume: said as the run would say it
            print(f"orchestrator: {plan.note}", file=sys.stderr)
            return EXIT_OK
        print(format_plan(plan))
        if backfill is not None:
            print(format_intervals(backfill))
        elif plan.whole and plan.resumed is None and config.catch_up != "none":
            print(format_catch_up(config))
        if plan.resumed is not None:
            print(format_resumed(plan.resumed, config.tz))
        return EXIT_OK
    env = cfg.load_env(config.root, os.environ)
    cfg.check_environment(config, env)
    if plan.note:
        print(f"orchestrator: {sanitise(plan.note, one_line=True)}", file=sys.stderr)
        return EXIT_OK
    from gitcron import run  # loguru is imported only for a real run

    options = run.Options(dry_run=args.dry_run, force=args.force, verbose=args.verbose,
                          push=args.push, window_minutes=args.window, wait_seconds=args.wait,
                          log_format=args.log_format)
    return run.run_all(config, plan, options, env, backfill)


def _backfill(args: argparse.Namespace, config: cfg.Config) -> list[windows.Window] | None:
    """The windows of `--since`/`--until` (one, or one per `--every`); None without them."""
    if args.since is None:
        for option in ("until", "every"):
            if getattr(args, option) is not None:
                raise FatalError(f"--{option}: goes with --since (the window's start)")
        return None
    if args.window is not None:
        raise FatalError("--window: not with --since; a backfill's window is --since/--until")
    if args.resume:
        raise FatalError("--resume: not with --since; a resumed run keeps the window it had")
    since = windows.parse_time(args.since, "--since", config.tz)
    until = (windows.parse_time(args.until, "--until", config.tz) if args.until is not None
             else windows.in_zone(windows.now(), config.tz))
    if args.every is None:
        return [windows.explicit(since, until)]
    return list(windows.intervals(since, until, windows.parse_every(args.every), config.tz))


def format_plan(plan: planning.Plan) -> str:
    rows = [("#", "module", "critical", "timeout", "retries", "path")]
    for i, spec in enumerate(plan.modules, 1):
        path = spec.rel + (f" (on failure: {spec.on_failure.rel})" if spec.on_failure else "")
        rows.append((str(i), sanitise(spec.name, one_line=True),
                     "yes" if spec.critical else "no", f"{spec.timeout_seconds:g}s",
                     str(spec.retries), sanitise(path, one_line=True)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    left_out = [s.name for s in plan.known if s not in plan.modules]
    if left_out:
        lines.append(f"not in this run: {sanitise(', '.join(left_out), one_line=True)}")
    return "\n".join(lines)


def format_resumed(resumed: planning.Resumed, tz: Any) -> str:
    """The run a --resume continues, and the window its modules will see (that run's)."""
    window = windows.from_record(resumed.record.get("window"), tz)
    if window is None:
        return (f"resuming run {resumed.run_id}; its record holds no window: the run's own "
                "(from last_run_date to its start)")
    start = windows.iso(window.start) if window.start else "the beginning"
    return f"resuming run {resumed.run_id}, with its window: {start} -> {windows.iso(window.end)}"


def format_catch_up(config: cfg.Config) -> str:
    """What `catch_up` would run now: the missed intervals' runs, or that there are none."""
    from gitcron import catchup

    caught = catchup.plan(config, windows.now())
    if caught is None:
        return f"catch_up {config.catch_up}: no missed schedule interval"
    lines = [caught.summary(config.catch_up)]
    lines += [f"  {i}. {windows.iso(w.start) if w.start else ''} -> {windows.iso(w.end)}"
              for i, w in enumerate(caught.windows, 1)]
    if caught.left_out:
        lines.append(caught.warning())
    return "\n".join(lines)


def format_intervals(backfill: list[windows.Window]) -> str:
    lines = [f"backfill: {len(backfill)} run{'s' if len(backfill) != 1 else ''}, oldest first"]
    lines += [f"  {i}. {windows.iso(w.start) if w.start else ''} -> {windows.iso(w.end)}"
              for i, w in enumerate(backfill, 1)]
    return "\n".join(lines)
