"""`init [DIR]`: set a repository up to run the pipeline.

Only the user's own files are written: the config, example modules, the
workflows, `.gitignore`, a `requirements.txt` that pins the runner and the
few-line `orchestrator.py`. The runner itself is installed from that pin, so
upgrading it is changing one line. The files come from `gitcron/templates/`,
shipped in the package. Nothing is ever overwritten: every target is checked
before the first file is written.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import NoReturn

from gitcron import __version__
from gitcron.codes import EXIT_OK, EXIT_USAGE, FatalError
from gitcron.text import sanitise

# Every day at 06:17 UTC: off the hour, as GitHub advises for scheduled runs.
DEFAULT_SCHEDULE = "17 6 * * *"
# health.yml runs this long after the pipeline's schedule plus its grace
# (schedule_grace_minutes, default 60): by then a run that started is recorded.
HEALTH_MARGIN_MINUTES = 15
GRACE_MINUTES = 60

CONFIG = {
    "modules": [{"path": "modules/1.example.py", "timeout_seconds": 600},
                {"path": "modules/2.example.sh", "critical": False}],
    "schedule": "@SCHEDULE@",
    "log_dir": "data and logs",
    "log_layout": "daily",
    "timezone": "UTC",
    "git": {"push": "auto", "paths": []},
}

# Target path -> template in gitcron/templates/, in the order they are written.
TEMPLATES = {
    "orchestrator.py": "orchestrator.py",
    "modules/1.example.py": "1.example.py",
    "modules/2.example.sh": "2.example.sh",
    ".github/workflows/pipeline.yml": "pipeline.yml",
    ".github/workflows/health.yml": "health.yml",
    ".gitignore": "gitignore",
}

REQUIREMENTS = """\
# The runner: upgrading it is changing this line. Your modules' own
# dependencies go below it.
{requirement}
"""

NEXT_STEPS = """\
Next steps:
  1. Install the runner and rehearse a run (nothing is stored or pushed):
       cd {where}
       python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
       .venv/bin/python orchestrator.py --dry-run
  2. Commit the set-up, not the rehearsal's log (run `git init` first if this is
     not a repository yet), and push:
       git add .gitignore .github {config} modules orchestrator.py requirements.txt
       git commit -m "Set up the pipeline" && git push
     The workflow's schedule runs on the default branch only; to move it, change
     `schedule` in {config} and the cron lines of both workflows together.
  3. Secrets: on GitHub, Settings > Secrets and variables > Actions; then name
     each one in the `env:` of .github/workflows/pipeline.yml.
  4. Permissions: the run pushes its log back, so the workflow asks for
     `contents: write`; if your organisation limits it, allow "Read and write
     permissions" under Settings > Actions > General > Workflow permissions.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {sanitise(message, one_line=True)} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="orchestrator.py init",
                     description="Set a repository up to run the pipeline: the config, example "
                     "modules, workflows, .gitignore, a requirements.txt that pins the runner "
                     "and orchestrator.py. Never overwrites.")
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR",
                        help="the repository's folder (default: the current one)")
    parser.add_argument("--yaml", action="store_true", help="write config.yaml, not config.json")
    parser.add_argument("--requirement", metavar="SPEC", default=f"gitcron=={__version__}",
                        help="how requirements.txt names the runner (default: "
                        "%(default)s), e.g. git+https://host/owner/gitcron@v1")
    parser.add_argument("--schedule", metavar="CRON", default=DEFAULT_SCHEDULE,
                        help="when the workflows run: five cron fields, UTC "
                        "(default: %(default)r)")
    return parser


def init_main(argv: Sequence[str]) -> int:
    """`orchestrator.py init [DIR]`: write the files, or nothing at all."""
    args = build_parser().parse_args(list(argv))
    target = Path(args.dir)
    files = planned_files(requirement=_requirement(args.requirement),
                          schedule=_schedule(args.schedule), yaml=args.yaml)
    check_free(target, files)
    write_files(target, files)
    print(f"Set up the pipeline in {target}: {len(files)} files.")
    config = "config.yaml" if args.yaml else "config.json"
    print(NEXT_STEPS.format(where=target, config=config), end="")
    return EXIT_OK


def _requirement(spec: str) -> str:
    if not spec.strip() or any(c in spec for c in "\n\r\0"):
        raise FatalError(f"init --requirement: {spec!r} is not one requirement line")
    return spec.strip()


def _schedule(cron: str) -> str:
    """Five cron fields that GitHub and `status` both read; FatalError otherwise."""
    from datetime import datetime, timezone

    from cronsim import CronSim, CronSimError

    cron = " ".join(cron.split())
    try:
        if len(cron.split()) != 5:
            raise CronSimError("five fields are needed")
        CronSim(cron, datetime.now(timezone.utc))
    except CronSimError as exc:
        raise FatalError(f"init --schedule: {cron!r} is not a cron schedule: {exc}") from None
    return cron


def health_schedule(schedule: str, grace_minutes: float = GRACE_MINUTES) -> str:
    """When health.yml checks: a daily schedule at a fixed time, its grace and a quarter
    of an hour later (the same day when that fits); any other schedule, at its own times,
    when `status` judges the run before (it allows each run its grace)."""
    minute, hour, *rest = schedule.split()
    if not (minute.isdigit() and hour.isdigit()) or rest != ["*", "*", "*"]:
        return schedule
    at = int(hour) * 60 + int(minute) + int(grace_minutes) + HEALTH_MARGIN_MINUTES
    if at >= 24 * 60:
        return schedule
    return f"{at % 60} {at // 60} * * *"


def planned_files(requirement: str = f"gitcron=={__version__}",
                  schedule: str = DEFAULT_SCHEDULE, yaml: bool = False) -> dict[str, bytes]:
    """Relative path -> content, in the order they are written."""
    values = {"@SCHEDULE@": schedule, "@HEALTH_SCHEDULE@": health_schedule(schedule)}
    files = {target: _fill(template(name), values) for target, name in TEMPLATES.items()}
    if yaml:
        files["config.yaml"] = _fill(template("config.yaml"), values)
    else:
        files["config.json"] = _fill(json.dumps(CONFIG, indent=2) + "\n", values)
    files["requirements.txt"] = REQUIREMENTS.format(requirement=requirement)
    return {name: text.encode() for name, text in files.items()}


def template(name: str) -> str:
    """A file of gitcron/templates/, from wherever the package is installed."""
    try:
        return resources.files("gitcron").joinpath("templates", name).read_text(encoding="utf-8")
    except OSError as exc:
        raise FatalError(f"init: cannot read the template {name}: "
                         f"{exc.strerror or exc}") from None


def _fill(text: str, values: dict[str, str]) -> str:
    for placeholder, value in values.items():
        text = text.replace(placeholder, value)
    return text


def check_free(target: Path, files: dict[str, bytes]) -> None:
    """FatalError naming the first file (or folder in the way) that already exists."""
    if target.exists() and not target.is_dir():
        raise FatalError(f"{target} exists and is not a folder; init wrote nothing")
    for name in files:
        path = target / name
        if os.path.lexists(path) and not (name == ".gitignore" and path.is_file()):
            raise FatalError(f"{path} already exists; init wrote nothing")
        for parent in path.relative_to(target).parents:
            folder = target / parent
            if os.path.lexists(folder) and not folder.is_dir():
                raise FatalError(f"{folder} is in the way: it is not a folder; "
                                 "init wrote nothing")
    for other in ("config.json", "config.yaml", "config.yml"):
        if other not in files and os.path.lexists(target / other):
            raise FatalError(f"{target / other} already exists; init wrote nothing")


def write_files(target: Path, files: dict[str, bytes]) -> None:
    """Exclusive creation: a file that appeared since the check is not overwritten either."""
    for name, content in files.items():
        path = target / name
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if name == ".gitignore" and path.is_file():
                _extend_gitignore(path, content.decode())
                continue
            with open(path, "xb") as handle:
                handle.write(content)
        except OSError as exc:
            raise FatalError(f"init: cannot write {path}: {exc.strerror or exc}") from None


def _extend_gitignore(path: Path, wanted: str) -> None:
    """A repository's own .gitignore is kept as it is; the lines it lacks are added
    at its end (.env above all: the secrets of local runs)."""
    text = path.read_text(encoding="utf-8", errors="surrogateescape")
    have = {line.strip() for line in text.splitlines()}
    missing = [line for line in wanted.splitlines()
               if line.strip() and not line.startswith("#") and line.strip() not in have]
    if not missing:
        return
    addition = "\n# For the pipeline: local secrets, the virtual environment, caches.\n"
    with open(path, "a", encoding="utf-8", errors="surrogateescape") as handle:
        handle.write(("" if text.endswith("\n") or not text else "\n") + addition
                     + "\n".join(missing) + "\n")
    print(f"{path}: added {', '.join(missing)}")
