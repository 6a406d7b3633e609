"""`init [DIR]`: set a repository up to run the pipeline.

The orchestrator, its package, the workflow and requirements.txt are copied
from this very installation, so that what `init` writes cannot drift from what
is shipped. Nothing is ever overwritten: every target is checked before the
first file is written.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

from gitcron.codes import EXIT_OK, EXIT_USAGE, FatalError

SOURCE = Path(__file__).resolve().parent.parent
# Copied byte for byte from this installation, with every gitcron/*.py.
ENTRY = "orchestrator.py"
# The workflows are the shipped ones, byte for byte: they cannot drift apart.
COPIED = (".github/workflows/pipeline.yml", ".github/workflows/health.yml", "requirements.txt")

CONFIG = {
    "modules": [{"path": "modules/1.example.py", "timeout_seconds": 600}],
    "log_dir": "data and logs",
    "timezone": "UTC",
    "git": {"push": "auto", "paths": []},
}

GITIGNORE = """\
# Secrets for local runs: never committed.
.env
# The virtual environment and caches.
.venv/
__pycache__/
*.pyc
.pytest_cache/
.ruff_cache/
.mypy_cache/
"""

EXAMPLE = '''\
"""An example module: one stage of the pipeline. Replace it with your own.

The orchestrator runs it with the run's settings in its environment (README.md,
"Writing a module"). Exit 0: success; exit 10: skipped (nothing to do); any
other code: failed.
"""

import os
import sys
from pathlib import Path

SKIPPED = 10

# The run's time window [start, end): handle exactly the data that arrived in it.
start = os.environ.get("PIPELINE_WINDOW_START", "")
end = os.environ.get("PIPELINE_WINDOW_END") or os.environ.get("PIPELINE_RUN_STARTED", "")
dry_run = os.environ.get("PIPELINE_DRY_RUN") == "1"

if start and start == end:
    print("the window is empty: nothing to do")
    sys.exit(SKIPPED)

print(f"handling data from {start or 'the beginning'} until {end or 'now'}")
if dry_run:
    print("dry run: nothing written")
    sys.exit(0)

# Per-run outputs go to the run's own folder, committed with the run.
run_dir = os.environ.get("PIPELINE_RUN_DIR")
if run_dir:
    Path(run_dir, "example.txt").write_text(f"window {start or '-'} .. {end}\\n")
    print(f"wrote {Path(run_dir, 'example.txt')}")
'''

NEXT_STEPS = """\
Next steps:
  1. Create the virtual environment and rehearse a run (nothing is stored or pushed):
       cd {where}
       python3 -m venv .venv && .venv/bin/pip install -r requirements.txt
       .venv/bin/python orchestrator.py --dry-run
  2. Commit the set-up, not the rehearsal's log (run `git init` first if this is
     not a repository yet), and push:
       git add .gitignore .github config.json modules orchestrator.py gitcron requirements.txt
       git commit -m "Set up the pipeline" && git push
     The workflow's schedule runs on the default branch only.
  3. Secrets: on GitHub, Settings > Secrets and variables > Actions; then name
     each one in the `env:` of .github/workflows/pipeline.yml.
  4. Permissions: the run pushes its log back, so the workflow asks for
     `contents: write`; if your organisation limits it, allow "Read and write
     permissions" under Settings > Actions > General > Workflow permissions.
"""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def init_main(argv: Sequence[str]) -> int:
    """`orchestrator.py init [DIR]`: write the files, or nothing at all."""
    parser = _Parser(prog="orchestrator.py init",
                     description="Set a repository up to run the pipeline; never overwrites.")
    parser.add_argument("dir", nargs="?", default=".", metavar="DIR",
                        help="the repository's folder (default: the current one)")
    target = Path(parser.parse_args(list(argv)).dir)
    files = planned_files()
    check_free(target, files)
    write_files(target, files)
    print(f"Set up the pipeline in {target}: {len(files)} files.")
    print(NEXT_STEPS.format(where=target), end="")
    return EXIT_OK


def planned_files() -> dict[str, bytes]:
    """Relative path -> content, in the order they are written."""
    files = {ENTRY: _source(ENTRY)}
    for path in sorted((SOURCE / "gitcron").glob("*.py")):
        files[f"gitcron/{path.name}"] = _source(f"gitcron/{path.name}")
    files.update({name: _source(name) for name in COPIED})
    files["config.json"] = (json.dumps(CONFIG, indent=2) + "\n").encode()
    files["modules/1.example.py"] = EXAMPLE.encode()
    files[".gitignore"] = GITIGNORE.encode()
    return files


def _source(name: str) -> bytes:
    try:
        return (SOURCE / name).read_bytes()
    except OSError as exc:
        raise FatalError(f"init: cannot read {SOURCE / name}: {exc.strerror or exc}") from None


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
