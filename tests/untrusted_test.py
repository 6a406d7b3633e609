"""Text the runner did not write (module output, a remote's message, a file name)
leaves it masked and inert, on every path: console, log, annotations, step
summary, outputs, review report, webhook. Through real orchestrator processes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Project
from notifyservers import HookServer

from gitcron.codes import EXIT_FAILED
from gitcron.execute import MAX_LINE_BYTES

TOKEN = "ghs_0123456789abcdefABCDEF01234"  # 31 characters
assert len(TOKEN) == 31


def actions_env(tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "output.txt"), "GITHUB_EVENT_NAME": "schedule",
            "GITHUB_REPOSITORY": "octo/weather", "GITHUB_RUN_ID": "42"}


@pytest.fixture
def hook():
    server = HookServer()
    yield server
    server.close()


def everything_written(project: Project, result, tmp_path: Path, hook: HookServer) -> str:
    record = project.record()
    texts = [result.stdout, result.stderr, project.log_text(),
             json.dumps(record, ensure_ascii=False),
             (project.log_dir / "runs" / record["run_id"] / "review.txt").read_text(),
             (tmp_path / "summary.md").read_text(), (tmp_path / "output.txt").read_text()]
    texts += [posted.body.decode() for posted in hook.posted]
    return "\n".join(texts)


def test_a_secret_cut_by_a_long_stderr_line_is_masked_everywhere(
        project: Project, tmp_path: Path, hook: HookServer) -> None:
    """A stderr line over 1 MiB, written in two writes, with the secret across the
    place where the runner cuts it: neither half reaches anything derived from it."""
    before = MAX_LINE_BYTES - 15  # the cut falls after the secret's 15th character
    project.module("1.leaky.py", f"""\
        import os, sys
        token = os.environ["API_TOKEN"]
        # Past the cut by more than one read (64 KiB): the cut falls inside this write.
        sys.stderr.write("x" * {before} + token + "z" * 200_000)
        sys.stderr.flush()
        sys.stderr.write(" and then some\\n")
        sys.exit(3)
        """)
    project.config(notify=[{"webhook": hook.url("/hook")}])
    result = project.run("--no-push", env={"API_TOKEN": TOKEN, **actions_env(tmp_path)})
    assert result.returncode == EXIT_FAILED, result.stderr
    written = everything_written(project, result, tmp_path, hook)
    head, tail = TOKEN[:15], TOKEN[15:]
    assert tail not in written and head not in written
    assert "x***zzz" in project.log_text()  # the stream: cut in two, and masked whole
    assert "last lines of stderr" in written and "xxxxxxxx [...]" in written
    assert len(hook.posted) == 1
