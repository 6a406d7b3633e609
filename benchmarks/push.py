"""Committing back, against the plain git CLI doing the same.

    python benchmarks/push.py [--rounds 7] [--quick]

1. Whole processes, with the shipped `git.paths` ("data and logs") and 0 and
   10,000 earlier runs (logs and records committed): `orchestrator.py --push`
   against `orchestrator.py --no-push` followed by `git add --all -- "data and
   logs" config.json`, `git commit`, `git push` of the same files. Goals: ratio
   at most 1.2, and a pushed run at 10,000 earlier runs at most 1.2x one at 0.
2. The commit-back alone (in process, no interpreter start on either side)
   against `git add`/`git commit`/`git push` of the same paths, with 10, 20,000
   and 100,000 tracked files under git.paths. Goal: ratio at most 1.3.

Both sides run turn about (paired rounds), in batches of --rounds pairs until a
batch moves the median paired ratio by at most 3% (at most 4 batches), with
the same environment, set here explicitly: PYTHONUNBUFFERED=1, no
PYTHONDONTWRITEBYTECODE (byte code is cached, as in a real deployment), the
same git identity and HOME.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _common import ORCHESTRATOR, PYTHON, REPO, alternate, verdict

sys.path.insert(0, str(REPO))

PROCESS_GOAL = 1.2
GROWTH_GOAL = 1.2
COMMIT_BACK_GOAL = 1.3
MAX_BATCHES = 4
LOGS = "data and logs"
IDENTITY = {"GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
            "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}


def bench_env(home: Path) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items()
            if not k.startswith(("GITHUB_", "PIPELINE_", "GIT_", "PYTHON"))}
    return dict(keep, **IDENTITY, HOME=str(home), GIT_CONFIG_NOSYSTEM="1",
                GIT_CONFIG_GLOBAL=os.devnull, PYTHONUNBUFFERED="1")


def git(cwd: Path, env: dict[str, str], *args: str, stdin: bytes | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, input=stdin, check=True, capture_output=True,
                   env=env)


def history(files: list[str]) -> bytes:
    """A fast-import stream: one commit holding `files` (a few distinct blobs)."""
    out = [b"blob\nmark :%d\ndata 6\nrun %d\n" % (n + 1, n) for n in range(8)]
    out.append(b"commit refs/heads/main\ncommitter b <b@x> 1700000000 +0000\ndata 7\nhistory\n")
    out.extend(b'M 100644 :%d "%s"\n' % (i % 8 + 1, name.encode()) for i, name in
               enumerate(files))
    return b"".join(out)


def earlier_runs(runs: int) -> list[str]:
    names = []
    for n in range(runs):
        run_id = f"2025{n // 1440 % 12 + 1:02d}{n // 48 % 28 + 1:02d}_{n // 60 % 24:02d}h" \
                 f"{n % 60:02d}_{n // 10000 + 1}"
        names += [f"{LOGS}/workflow_{run_id}.log", f"{LOGS}/workflow_{run_id}.json"]
    return names


def build(root: Path, env: dict[str, str], files: list[str]) -> Path:
    """A bare remote and a working clone: `files`, a config and a module, pushed."""
    bare = root / "remote.git"
    git(root, env, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    git(bare, env, "fast-import", "--quiet", stdin=history(files))
    work = root / "work"
    git(root, env, "clone", "-q", str(bare), str(work))
    (work / "modules").mkdir()
    (work / "modules" / "1.noop.py").write_text("print('ok')\n")
    (work / "config.json").write_text(json.dumps(
        {"git": {"push": "always", "paths": [LOGS]}}, indent=2) + "\n")
    git(work, env, "add", "config.json", "modules")
    git(work, env, "commit", "-q", "-m", "config")
    git(work, env, "push", "-q", "origin", "main")
    time.sleep(1.1)  # then refresh: no entry is racily clean, on either side
    git(work, env, "update-index", "-q", "--refresh")
    return work


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    return time.perf_counter() - start


# The same run, then the git CLI committing and pushing what --push would.
CLI_AFTER_RUN = (
    '"$1" "$2" --no-push && git add --all -- "data and logs" config.json && '
    'git commit -q -m run && git push -q origin main')


def whole_process(runs: int, rounds: int) -> float:
    """A pushed run, as a process, against a run plus the git CLI; returns ours (s)."""
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(Path(tmp))
        work = build(Path(tmp), env, earlier_runs(runs))
        ours = [PYTHON, str(ORCHESTRATOR), "--push"]
        cli = ["sh", "-c", CLI_AFTER_RUN, "cli", PYTHON, str(ORCHESTRATOR)]
        timed(ours, work, env), timed(cli, work, env)  # warm both alike
        base, mine = alternate(rounds, lambda: timed(cli, work, env),
                               lambda: timed(ours, work, env), MAX_BATCHES)
    ratio = mine / base
    print(f"push: whole run, {runs:,} earlier runs under git.paths: run + git CLI "
          f"{1000 * base:.0f} ms, orchestrator --push {1000 * mine:.0f} ms, ratio {ratio:.2f} "
          f"(goal <= {PROCESS_GOAL}) {verdict(ratio, PROCESS_GOAL)}")
    return mine


class CommitBack:
    """One run's files, committed and pushed by gitsync or by the git CLI."""

    def __init__(self, work: Path, env: dict[str, str]) -> None:
        self.work, self.env, self.n = work, env, 0

    def files(self) -> tuple[Path, Path]:
        self.n += 1
        log = self.work / LOGS / f"workflow_20261123_06h00_{self.n + 1}.log"
        record = log.with_suffix(".json")
        log.write_text("2026-11-23 06:00:00.000 | INFO     | orchestrator | run\n" * 50)
        record.write_text(json.dumps({"run_id": str(self.n)}) + "\n")
        (self.work / "config.json").write_text(json.dumps(
            {"git": {"push": "always", "paths": [LOGS]}, "last_run_date": str(self.n)}))
        return log, record

    def git_cli(self) -> float:
        self.files()
        start = time.perf_counter()
        git(self.work, self.env, "add", "--all", "--", LOGS, "config.json")
        git(self.work, self.env, "commit", "-q", "-m", f"run {self.n}")
        git(self.work, self.env, "push", "-q", "origin", "main")
        return time.perf_counter() - start

    def gitsync(self) -> float:
        from gitcron import gitsync
        from gitcron.config import GitSettings

        log, record = self.files()
        request = gitsync.Request(
            root=self.work, log=log, record=record, config=self.work / "config.json",
            extra=(LOGS,), settings=GitSettings(push="always", paths=(LOGS,)),
            run_id=f"20261123_06h00_{self.n + 1}", status="success", env=self.env)
        start = time.perf_counter()
        gitsync.commit_and_push(request, str)
        return time.perf_counter() - start


def commit_back(files: int, rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        env = bench_env(Path(tmp))
        names = [f"{LOGS}/d{i % 100:03d}/f{i:06d}.txt" for i in range(files)]
        runs = CommitBack(build(Path(tmp), env, names), env)
        runs.gitsync(), runs.git_cli()  # warm both alike
        base, ours = alternate(rounds, runs.git_cli, runs.gitsync, MAX_BATCHES)
    ratio = ours / base
    print(f"push: commit-back alone, {files:,} tracked files under git.paths: git CLI "
          f"{1000 * base:.1f} ms, gitsync {1000 * ours:.1f} ms, ratio {ratio:.2f} "
          f"(goal <= {COMMIT_BACK_GOAL}) {verdict(ratio, COMMIT_BACK_GOAL)}")


def growth(at_zero: float, at_many: float, many: int) -> None:
    ratio = at_many / at_zero
    print(f"push: a pushed run at {many:,} earlier runs / at 0: {ratio:.2f} "
          f"(goal <= {GROWTH_GOAL}) {verdict(ratio, GROWTH_GOAL)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="skip the 100,000-file case")
    args = parser.parse_args()
    measurements: list[Callable[[], object]] = [
        lambda: growth(whole_process(0, args.rounds), whole_process(10_000, args.rounds), 10_000),
        lambda: commit_back(10, args.rounds),
        lambda: commit_back(20_000, args.rounds),
    ]
    if not args.quick:
        measurements.append(lambda: commit_back(100_000, args.rounds))
    for measure in measurements:
        measure()


if __name__ == "__main__":
    main()
