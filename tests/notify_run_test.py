"""A failed run writes its review report and tells a webhook, end to end: a real
orchestrator process, a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import json

import pytest
from conftest import OK, Project
from notifyservers import HookServer

from gitcron.codes import EXIT_FAILED, EXIT_OK

SECRET = "hunter2-very-secret-value"


@pytest.fixture
def hook():
    server = HookServer()
    yield server
    server.close()


def failing(project: Project, hook: HookServer, on: list[str] | None = None) -> None:
    project.module("1.load.py", "import os, sys\n"
                   "print('cannot connect with', os.environ['DB_PASSWORD'], file=sys.stderr)\n"
                   "sys.exit(3)\n")
    project.module("2.after.py", OK)
    channel = {"webhook": hook.url("/T/${HOOK_PATH}"),
               "headers": {"Authorization": "Bearer ${HOOK_TOKEN}"}}
    if on is not None:
        channel["on"] = on
    project.config(notify=[channel])


def env(**extra: str) -> dict[str, str]:
    return {"DB_PASSWORD": SECRET, "HOOK_PATH": "path-part", "HOOK_TOKEN": "tok-123456", **extra}


def test_a_failed_run_writes_its_review_and_posts_it_masked(project: Project,
                                                             hook: HookServer) -> None:
    failing(project, hook)
    result = project.run(env=env())
    assert result.returncode == EXIT_FAILED
    record = project.record()
    [named] = [line.split("review report: ")[1] for line in result.stdout.splitlines()
               if "review report: " in line]
    assert named == f"data and logs/runs/{record['run_id']}/review.txt"
    review = (project.root / named).read_text()
    for section in ("SUMMARY", "ERROR DETAILS", "RECOVERY ACTIONS", "METADATA"):
        assert section in review
    assert "cannot connect with ***" in review and SECRET not in review
    assert max(len(line) for line in review.splitlines()) <= 80
    assert record["run_dir"] == f"data and logs/runs/{record['run_id']}"
    assert len(hook.posted) == 1
    posted = hook.posted[0]
    assert posted.path == "/T/path-part"
    assert posted.headers["authorization"] == "Bearer tok-123456"
    body = json.loads(posted.body)
    assert "failed" in body["text"] and record["run_id"] in body["text"]
    assert "1.load" in body["text"]
    assert body["run"]["run_id"] == record["run_id"]
    assert SECRET.encode() not in posted.body
    assert "notify[0]: webhook http://127.0.0.1" in result.stdout
    assert "path-part" not in result.stdout and "tok-123456" not in result.stdout


def test_a_successful_run_sends_nothing_by_default(project: Project, hook: HookServer) -> None:
    project.module("1.a.py", OK)
    project.config(notify=[{"webhook": hook.url()}])
    assert project.run().returncode == EXIT_OK
    assert hook.posted == []
    record = project.record()
    assert record["run_dir"] is None  # no review, nothing else: the folder went


def test_a_dry_run_says_what_it_would_send(project: Project, hook: HookServer) -> None:
    failing(project, hook)
    result = project.run("--dry-run", env=env())
    assert result.returncode == EXIT_FAILED
    assert hook.posted == []
    assert "would send (dry run)" in result.stdout


def test_a_dead_endpoint_costs_a_warning_and_not_the_exit_code(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config(notify=[{"webhook": "http://127.0.0.1:9/hook", "on": ["success"]}])
    result = project.run()
    assert result.returncode == EXIT_OK
    assert "| WARNING  | orchestrator | notify[0]: webhook http://127.0.0.1:9: failed" in result.stdout


def test_a_channel_that_failed_is_a_warning_and_one_that_sent_is_not(
        project: Project, hook: HookServer) -> None:
    project.module("1.a.py", OK)
    project.config(notify=[{"webhook": hook.url("/sent"), "on": ["success"]},
                           {"webhook": "http://127.0.0.1:9/dead", "on": ["success"]}])
    result = project.run()
    assert result.returncode == EXIT_OK
    said = {line.split(" | ")[3].split(":")[0]: line.split(" | ")[1].strip()
            for line in result.stdout.splitlines() if " | notify[" in line}
    assert said == {"notify[0]": "INFO", "notify[1]": "WARNING"}
    assert [p.path for p in hook.posted] == ["/sent"]


def test_two_webhooks_on_one_host_are_told_apart(project: Project, hook: HookServer) -> None:
    project.module("1.a.py", OK)
    project.config(notify=[{"webhook": hook.url("/one"), "on": ["success"]},
                           {"webhook": "http://127.0.0.1:9/two", "on": ["failed"]},
                           {"webhook": hook.url("/three"), "on": ["success"]}])
    result = project.run()
    assert result.returncode == EXIT_OK
    assert "notify[0]: webhook http://127.0.0.1" in result.stdout
    assert "notify[2]: webhook http://127.0.0.1" in result.stdout
    assert "notify[1]" not in result.stdout  # it does not want a success
    assert sorted(p.path for p in hook.posted) == ["/one", "/three"]
