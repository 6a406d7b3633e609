"""Who hears of a run: the default statuses, "back to normal" and `after_failures`,
read from the records of real runs (real orchestrator processes), sent to a real
HTTP server and a real SMTP server on 127.0.0.1, across real clones."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import OK, Project
from notifyservers import HookServer, SmtpServer

from gitcron import notify
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE
from gitcron.config import Channel, Webhook

# The module's exit code is read from a file the test writes before each run.
BY_FILE = "import pathlib, sys\nsys.exit(int(pathlib.Path('outcome').read_text()))\n"


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


def flaky(project: Project, channel: dict[str, Any], **config: Any) -> None:
    project.module("1.source.py", BY_FILE)
    project.module("2.after.py", OK)
    project.config(notify=[channel], **config)


def run(project: Project, code: int, *args: str) -> subprocess.CompletedProcess[str]:
    (project.root / "outcome").write_text(str(code))
    return project.run(*args)


def bodies(hook: HookServer) -> list[dict[str, Any]]:
    """The JSON posted, its text without the pipeline's name ("my project: ")."""
    found = [json.loads(posted.body) for posted in hook.posted]
    return [dict(body, text=body["text"].split(": ", 1)[1]) for body in found]


def test_a_recovered_critical_failure_reaches_the_default_channel(project: Project,
                                                                  hook: HookServer) -> None:
    project.module("1.load.py", "import sys\nsys.exit(4)\n")
    project.module("rollback.sh", "exit 0\n")
    project.config(modules=[{"path": "modules/1.load.py", "on_failure": "modules/rollback.sh"}],
                   notify=[{"webhook": hook.url()}])
    assert project.run().returncode == EXIT_OK
    assert project.record()["status"] == "partial"
    [body] = bodies(hook)
    assert body["text"].startswith("pipeline partial: run ")
    assert "recovered: 1.load" in body["text"]
    assert body["failures_in_a_row"] == 0


def test_the_first_success_after_failures_says_back_to_normal_once(project: Project,
                                                                    hook: HookServer) -> None:
    flaky(project, {"webhook": hook.url()}, modules=["modules/1.source.py", {
        "path": "modules/2.after.py", "critical": False}])
    assert run(project, 0).returncode == EXIT_OK
    assert run(project, 3).returncode == EXIT_FAILED
    (project.root / "modules" / "2.after.py").write_text("import sys\nsys.exit(5)\n")
    assert run(project, 0).returncode == EXIT_OK  # partial: 2.after failed
    (project.root / "modules" / "2.after.py").write_text(OK)
    assert run(project, 0).returncode == EXIT_OK
    assert run(project, 0).returncode == EXIT_OK
    records = project.records()
    assert [r["status"] for r in records] == ["success", "failed", "partial", "success",
                                              "success"]
    texts = [body["text"] for body in bodies(hook)]
    assert len(texts) == 3, texts
    assert texts[0].startswith("pipeline failed:") and texts[1].startswith("pipeline partial:")
    assert texts[2].startswith(
        f"pipeline back to normal: run {records[3]['run_id']} succeeded after 2 runs that "
        f"needed attention, since {records[1]['started']}; log: ")
    assert [body["run"]["run_id"] for body in bodies(hook)] == [
        r["run_id"] for r in records[1:4]]


def test_after_failures_waits_for_that_many_failed_runs_in_a_row(project: Project,
                                                                 hook: HookServer) -> None:
    flaky(project, {"webhook": hook.url(), "after_failures": 3})
    for _ in range(2):
        assert run(project, 3).returncode == EXIT_FAILED
    assert hook.posted == []
    first = project.records()[-1]
    review = (project.log_dir / "runs" / first["run_id"] / "review.txt").read_text()
    assert "Failures in a row: 2 (whole runs failed or interrupted, this one included)" in review
    assert run(project, 3).returncode == EXIT_FAILED
    assert run(project, 3).returncode == EXIT_FAILED
    assert [body["failures_in_a_row"] for body in bodies(hook)] == [3, 4]
    assert run(project, 0).returncode == EXIT_OK
    assert bodies(hook)[-1]["text"].startswith("pipeline back to normal: run ")
    assert "after 4 runs that needed attention" in bodies(hook)[-1]["text"]


def test_a_channel_that_heard_nothing_hears_no_back_to_normal(project: Project,
                                                              hook: HookServer) -> None:
    flaky(project, {"webhook": hook.url(), "after_failures": 2})
    assert run(project, 3).returncode == EXIT_FAILED
    assert run(project, 0).returncode == EXIT_OK
    assert run(project, 3).returncode == EXIT_FAILED
    assert hook.posted == []  # the success in between ended the first failure


def test_fixed_can_be_left_out_and_a_success_channel_gets_the_fixed_text(
        project: Project, hook: HookServer) -> None:
    flaky(project, {"webhook": hook.url("/quiet"), "on": ["failed"]})
    config = project.read_config()
    config["notify"].append({"webhook": hook.url("/all"), "on": ["failed", "success", "fixed"]})
    project.config(config)
    assert run(project, 3).returncode == EXIT_FAILED
    assert run(project, 0).returncode == EXIT_OK
    assert run(project, 0).returncode == EXIT_OK
    got = [(posted.path, body["text"].split(":")[0])
           for posted, body in zip(hook.posted, bodies(hook), strict=True)]
    assert sorted(got[:2]) == [("/all", "pipeline failed"), ("/quiet", "pipeline failed")]
    assert got[2:] == [("/all", "pipeline back to normal"), ("/all", "pipeline success")]


def test_dry_narrowed_and_backfill_runs_neither_end_nor_extend_a_streak(
        project: Project, hook: HookServer) -> None:
    flaky(project, {"webhook": hook.url()})
    assert run(project, 3).returncode == EXIT_FAILED
    assert run(project, 0, "--only", "source").returncode == EXIT_OK
    assert run(project, 0, "--dry-run").returncode == EXIT_OK
    assert run(project, 0, "--since", "2026-01-01", "--until", "2026-01-02").returncode == EXIT_OK
    assert len(hook.posted) == 1
    assert run(project, 0).returncode == EXIT_OK
    assert "after 1 run that needed attention" in bodies(hook)[-1]["text"]


def test_back_to_normal_by_email(project: Project) -> None:
    smtp = SmtpServer()
    try:
        flaky(project, {"email": {"to": "ops@example.com", "from": "p@example.com",
                                  "host": "127.0.0.1", "port": smtp.port}})
        assert run(project, 3).returncode == EXIT_FAILED
        assert run(project, 0).returncode == EXIT_OK
    finally:
        smtp.close()
    records = project.records()
    assert [m["Subject"] for m in smtp.messages] == [
        f"pipeline failed: run {records[0]['run_id']}",
        f"pipeline back to normal: run {records[1]['run_id']}"]
    body = smtp.messages[1].get_content()
    assert "succeeded after 1 run that needed attention" in body


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                          check=True).stdout


def test_back_to_normal_is_known_in_a_fresh_clone(tmp_path: Path, hook: HookServer) -> None:
    """A failure pushed from one checkout, the success in another (as on Actions)."""
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", str(bare))
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "first"))
    first = Project(tmp_path / "first")
    flaky(first, {"webhook": hook.url()}, git={"push": "always"})
    (first.root / ".gitignore").write_text("outcome\n")
    git(first.root, "add", ".")
    git(first.root, "commit", "-q", "-m", "initial")
    git(first.root, "push", "-q", "origin", "HEAD:main")
    assert run(first, 3).returncode == EXIT_FAILED
    git(tmp_path, "clone", "-q", str(bare), str(tmp_path / "second"))
    second = Project(tmp_path / "second")
    assert run(second, 0).returncode == EXIT_OK
    texts = [body["text"] for body in bodies(hook)]
    assert len(texts) == 2 and texts[1].startswith("pipeline back to normal")


@pytest.mark.parametrize(("channel", "says"), [
    ({"after_failures": 0}, "notify[0].after_failures: must be a whole number from 1"),
    ({"after_failures": True}, "notify[0].after_failures: must be a whole number"),
    ({"on": ["fixd"]}, "notify[0].on: 'fixd' is not a run status"),
    ({"after_failure": 2}, "notify[0].after_failure: unknown key (did you mean 'after_failures'?)"),
])
def test_bad_settings_exit_2_naming_the_key(project: Project, channel: dict[str, Any],
                                             says: str) -> None:
    project.module("1.a.py", OK)
    project.config(notify=[{"webhook": "http://127.0.0.1:9/x", **channel}])
    result = project.run()
    assert result.returncode == EXIT_USAGE
    assert says in result.stderr
    assert not project.log_dir.exists()


def test_occasion_rules() -> None:
    channel = Channel(webhook=Webhook("http://127.0.0.1:9/x"), after_failures=2)
    assert notify.occasion(channel, "failed", notify.Attention(1)) is None
    assert notify.occasion(channel, "failed", notify.Attention(2)) == "alert"
    assert notify.occasion(channel, "partial", notify.Attention(0)) == "alert"
    assert notify.occasion(channel, "success", notify.Attention(0)) is None
    ended = notify.Attention(0, ("failed",), "2026-11-23T06:00:00+00:00", fixed=True)
    assert notify.occasion(channel, "success", ended) is None  # it was never told
    ended = notify.Attention(0, ("failed", "failed"), None, fixed=True)
    assert notify.occasion(channel, "success", ended) == "fixed"
    ended = notify.Attention(0, ("partial",), None, fixed=True)
    assert notify.occasion(channel, "success", ended) == "fixed"
