"""Commit-and-push of one run, against the plain git CLI doing the same.

    python benchmarks/push.py [--rounds 5]

For a repository of 10 files and one of 20,000 files with 2,000 commits of
history: gitsync.commit_and_push (the orchestrator's commit back) against
`git add` + `git commit` + `git push` of the same three files, alternated in
one run against a bare remote on disk. Goals: ratio at most 1.3, and no growth
with the size of the repository.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, alternate, verdict

sys.path.insert(0, str(REPO))
from pipeline import gitsync
from pipeline.config import GitSettings

GOAL = 1.3
ENV = {"GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "b@x",
       "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "b@x"}


def git(cwd: Path, *args: str, stdin: bytes | None = None) -> None:
    subprocess.run(["git", *args], cwd=cwd, input=stdin, check=True, capture_output=True,
                   env=dict(ENV, PATH="/usr/local/bin:/usr/bin:/bin", HOME=str(cwd)))


def history(files: int, commits: int) -> bytes:
    """A fast-import stream: `files` files, then `commits - 1` commits changing one each."""
    out = [b"blob\nmark :1\ndata 5\nseed\n"]
    when = 1_700_000_000
    for n in range(commits):
        message = f"commit {n}".encode()
        out.append(b"commit refs/heads/main\ncommitter b <b@x> %d +0000\ndata %d\n%s\n"
                   % (when + n, len(message), message))
        if n == 0:
            out.extend(b"M 100644 :1 d%03d/f%05d.txt\n" % (i % 100, i) for i in range(files))
        else:
            body = f"change {n}\n".encode()
            out.append(b"M 100644 inline d%03d/f%05d.txt\ndata %d\n%s\n"
                       % (n % 100, n % files, len(body), body))
    return b"".join(out)


def build(root: Path, files: int, commits: int) -> Path:
    """A bare remote and a working clone with a config.json and a log folder."""
    bare = root / "remote.git"
    git(root, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    git(bare, "fast-import", "--quiet", stdin=history(files, commits))
    work = root / "work"
    git(root, "clone", "-q", str(bare), str(work))
    (work / "config.json").write_text('{"git": {"push": "always"}}\n')
    (work / "data and logs").mkdir()
    git(work, "add", "config.json")
    git(work, "commit", "-q", "-m", "config")
    git(work, "push", "-q", "origin", "main")
    return work


class Runs:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.n = 0

    def files(self) -> tuple[Path, Path]:
        self.n += 1
        log = self.work / "data and logs" / f"workflow_{self.n:05d}.log"
        record = log.with_suffix(".json")
        log.write_text("2026-11-23 06:00:00.000 | INFO     | orchestrator | run\n" * 50)
        record.write_text(json.dumps({"run_id": str(self.n)}) + "\n")
        config = self.work / "config.json"
        config.write_text(json.dumps({"git": {"push": "always"}, "last_run_date": str(self.n)}))
        return log, record

    def plain_git(self) -> float:
        log, record = self.files()
        start = time.perf_counter()
        git(self.work, "add", "--", str(log), str(record), "config.json")
        git(self.work, "commit", "-q", "-m", f"run {self.n}")
        git(self.work, "push", "-q", "origin", "main")
        return time.perf_counter() - start

    def gitsync(self) -> float:
        log, record = self.files()
        request = gitsync.Request(
            root=self.work, log=log, record=record, config=self.work / "config.json", extra=(),
            settings=GitSettings(push="always"), run_id=str(self.n), status="success",
            env=ENV, rename_record=lambda content, run_id, log_file: content)
        start = time.perf_counter()
        gitsync.commit_and_push(request, lambda text: text)
        return time.perf_counter() - start


def measure(files: int, commits: int, rounds: int) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        runs = Runs(build(Path(tmp), files, commits))
        runs.gitsync()  # warm the caches of both alike
        runs.plain_git()
        base, ours = alternate(rounds, runs.plain_git, runs.gitsync)
    ratio = ours / base
    print(f"push: {files} files, {commits} commits: git CLI {1000 * base:.1f} ms, "
          f"gitsync {1000 * ours:.1f} ms, ratio {ratio:.2f} (goal <= {GOAL}) "
          f"{verdict(ratio, GOAL)}")
    return ours


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    small = measure(10, 20, args.rounds)
    large = measure(20_000, 2_000, args.rounds)
    growth = large / small
    print(f"push: gitsync at 20,000 files / at 10 files: {growth:.2f}x "
          f"(the git CLI's own growth is the floor)")


if __name__ == "__main__":
    main()
