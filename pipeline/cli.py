"""The command line: arguments, the one error handler, exit codes."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from pipeline import __version__
from pipeline import config as cfg
from pipeline import plan as planning
from pipeline.codes import EXIT_BUSY, EXIT_OK, EXIT_USAGE, FatalError

EXAMPLES = """\
exit codes: 0 success or partial, 1 failed, 2 bad usage or configuration,
            3 run finished but not pushed, 130 interrupted

examples:
  python orchestrator.py                       run the whole pipeline
  python orchestrator.py --list                show the plan, run nothing
  python orchestrator.py --only transform_data run one module (name, short name or number)
  python orchestrator.py --from 2 --skip 0     start at module 2, leave module 0 out
  python orchestrator.py --resume              start where the newest run failed
  python orchestrator.py --dry-run --no-push   rehearse: no state, no commit
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line naming the option at fault (argparse prints the usage too)."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def _names(value: str) -> list[str]:
    """`--only a b`, `--only a,b`, `--only "a b"` and repeated options all work."""
    return value.replace(",", " ").split()


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="orchestrator.py",
        description="Run the pipeline's modules one after another; log, record and "
        "commit the run back to the repository.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", default="config.json", metavar="PATH",
                        help="the config file (default: config.json)")
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
    parser.add_argument("--list", action="store_true", help="print the plan and exit")
    parser.add_argument("--wait", type=float, default=0.0, metavar="SECONDS",
                        help="wait this long for another run in this checkout to finish")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug lines on the console")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _main(args)
    except FatalError as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return EXIT_USAGE


def _main(args: argparse.Namespace) -> int:
    config = cfg.load(args.config)
    selection = planning.Selection(
        only=tuple(sum(args.only, [])), start=args.start, skip=tuple(sum(args.skip, [])),
        resume=args.resume,
    )
    plan = planning.build(config, selection)
    if args.list:
        print(format_plan(plan))
        return EXIT_OK
    if plan.note:
        print(f"orchestrator: {plan.note}", file=sys.stderr)
        return EXIT_OK
    from pipeline import run  # loguru is imported only for a real run

    env = cfg.load_env(config.root, os.environ)
    options = run.Options(dry_run=args.dry_run, force=args.force, verbose=args.verbose,
                          push=args.push)
    from pipeline import gitsync, lock

    try:
        with lock.hold(config.root, config.log_dir, args.wait) as held:
            for line in gitsync.repair(config.root, held.since):
                print(f"orchestrator: {line}", file=sys.stderr)
            if config.git.wanted(args.push, args.dry_run, env):
                gitsync.check(config.root, config.git, env, config.log_dir)
            return run.start(config, plan, options, env).exit_code
    except lock.Busy as exc:
        print(f"orchestrator: {exc}", file=sys.stderr)
        return EXIT_BUSY


def format_plan(plan: planning.Plan) -> str:
    rows = [("#", "module", "critical", "timeout", "retries", "path")]
    for i, spec in enumerate(plan.modules, 1):
        rows.append((str(i), spec.name, "yes" if spec.critical else "no",
                     f"{spec.timeout_seconds:g}s", str(spec.retries), spec.rel))
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]) - 1)]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
             for row in rows]
    left_out = [s.name for s in plan.known if s not in plan.modules]
    if left_out:
        lines.append(f"not in this run: {', '.join(left_out)}")
    return "\n".join(lines)
