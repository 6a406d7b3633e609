"""Pings to an outside monitor (healthchecks.io, Cronitor, a plain URL): real runs,
a real HTTP server on 127.0.0.1 recording the pings and their order."""

from __future__ import annotations

import os
import signal
import subprocess
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from conftest import OK, Project
from notifyservers import HookServer, Reply, dead_port, wait_for

from gitcron import notify
from gitcron.codes import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, EXIT_USAGE
from gitcron.config import Monitor
from gitcron.logs import Masker

SECRET = "s3cr3t-Value-42"
# The module tells the same server that it runs: the order of the requests is the
# order of the events.
TELL = ("import os, sys, urllib.request\n"
        "urllib.request.urlopen(os.environ['WHERE'] + '/module-ran', timeout=10).read()\n")


@pytest.fixture
def server() -> Iterator[HookServer]:
    found = HookServer()
    yield found
    found.close()


def setup(project: Project, server: HookServer, kind: str, code: int = 0,
          url: str = "${HC_PING_URL}") -> dict[str, str]:
    project.module("1.work.py", TELL + f"print('token {SECRET}', file=sys.stderr)\n"
                                       f"sys.exit({code})\n")
    project.config(monitor={"url": url, "kind": kind}, mask_env=["HC_PING_URL"])
    return {"HC_PING_URL": server.url("/ping/abc-uuid-key"), "WHERE": server.url(""),
            "DB_PASSWORD": SECRET, "no_proxy": "127.0.0.1", "NO_PROXY": "127.0.0.1"}


def requests(server: HookServer) -> list[tuple[str, str, dict[str, list[str]]]]:
    found = []
    for posted in server.posted:
        parts = urlsplit(posted.path)
        found.append((posted.method, parts.path, parse_qs(parts.query)))
    return found


def test_healthchecks_start_then_success_with_the_runs_uuid(project: Project,
                                                            server: HookServer) -> None:
    env = setup(project, server, "healthchecks")
    result = project.run(env=env)
    assert result.returncode == EXIT_OK
    rid = project.record()["monitor"]["rid"]
    assert project.record()["monitor"]["kind"] == "healthchecks"
    assert str(uuid.UUID(rid)) == rid
    assert requests(server) == [("GET", "/ping/abc-uuid-key/start", {"rid": [rid]}),
                                ("GET", "/module-ran", {}),
                                ("GET", "/ping/abc-uuid-key", {"rid": [rid]})]
    assert "monitor healthchecks http://127.0.0.1:" in result.stdout
    assert "abc-uuid-key" not in result.stdout and "abc-uuid-key" not in project.log_text()


def test_healthchecks_fail_posts_the_review_masked(project: Project, server: HookServer) -> None:
    env = setup(project, server, "healthchecks", code=3)
    assert project.run(env=env).returncode == EXIT_FAILED
    rid = project.record()["monitor"]["rid"]
    assert [(m, p) for m, p, _ in requests(server)] == [
        ("GET", "/ping/abc-uuid-key/start"), ("GET", "/module-ran"),
        ("POST", "/ping/abc-uuid-key/fail")]
    assert requests(server)[2][2] == {"rid": [rid]}
    body = server.posted[2].body.decode()
    review = (project.log_dir / "runs" / project.record()["run_id"] / "review.txt").read_text()
    assert body == review
    assert "token ***" in body and SECRET not in body


def test_a_partial_run_pings_success(project: Project, server: HookServer) -> None:
    env = setup(project, server, "healthchecks", code=3)
    config = project.read_config()
    config["modules"] = [{"path": "modules/1.work.py", "critical": False}]
    project.config(config)
    assert project.run(env=env).returncode == EXIT_OK
    assert requests(server)[-1][1] == "/ping/abc-uuid-key"


@pytest.mark.parametrize(("code", "end"), [(0, "complete"), (3, "fail")])
def test_cronitor_states_with_the_run_id_as_series(project: Project, server: HookServer,
                                                   code: int, end: str) -> None:
    env = setup(project, server, "cronitor", code=code)
    project.run(env=env)
    run_id = project.record()["run_id"]
    assert requests(server) == [
        ("GET", "/ping/abc-uuid-key", {"state": ["run"], "series": [run_id]}),
        ("GET", "/module-ran", {}),
        ("GET", "/ping/abc-uuid-key", {"state": [end], "series": [run_id]})]


@pytest.mark.parametrize(("code", "pings"), [(0, 1), (3, 0)])
def test_plain_is_one_get_after_a_good_run(project: Project, server: HookServer, code: int,
                                           pings: int) -> None:
    env = setup(project, server, "plain", code=code)
    project.run(env=env)
    assert requests(server) == [("GET", "/module-ran", {})] + [
        ("GET", "/ping/abc-uuid-key", {})] * pings


def test_a_dry_run_does_not_ping(project: Project, server: HookServer) -> None:
    env = setup(project, server, "healthchecks")
    result = project.run("--dry-run", env=env)
    assert result.returncode == EXIT_OK
    assert requests(server) == [("GET", "/module-ran", {})]
    assert "monitor: not pinged (dry run)" in result.stdout


def test_a_dead_monitor_is_one_warning_a_ping_and_not_the_exit_code(project: Project,
                                                                     server: HookServer) -> None:
    env = setup(project, server, "healthchecks")
    env["HC_PING_URL"] = f"http://127.0.0.1:{dead_port()}/ping/abc-uuid-key"
    result = project.run(env=env)
    assert result.returncode == EXIT_OK
    warnings = [line for line in result.stdout.splitlines() if "| WARNING  |" in line]
    assert len(warnings) == 2, warnings
    assert "monitor healthchecks http://127.0.0.1:" in warnings[0]
    assert ": start ping: failed (connection refused) after 3 tries" in warnings[0]
    assert ": success ping: failed (connection refused) after 3 tries" in warnings[1]
    assert "abc-uuid-key" not in result.stdout


def test_quick_retries_on_a_5xx(server: HookServer) -> None:
    server.replies = [Reply(503), Reply(200)]
    line = notify.ping(Monitor(url=server.url("/p"), kind="healthchecks"), "start", status="failed",
                       rid="r-1", run_id="x", env={}, mask=Masker([]))
    assert line == f"monitor healthchecks {server.url('')}: start ping: sent after 2 tries"
    assert [p.path for p in server.posted] == ["/p/start?rid=r-1"] * 2


def test_a_stalling_monitor_is_given_up_within_its_budget(server: HookServer) -> None:
    server.replies = [Reply(stall=True)]
    line = notify.ping(Monitor(url=server.url("/p"), kind="plain"), "end", status="success",
                       rid="r-1", run_id="x", env={}, mask=Masker([]), budget_seconds=1.0)
    assert line is not None and ": success ping: failed (" in line


def test_the_url_keeps_its_own_query_and_a_trailing_slash() -> None:
    monitor = Monitor(url="https://hc.example.com/ping/key/?create=1", kind="healthchecks")
    url = notify.ping_url(monitor, monitor.url, "end", "interrupted", "r-1", "x")
    assert url == "https://hc.example.com/ping/key/fail?create=1&rid=r-1"
    assert notify.ping_url(Monitor(url="https://x.example/p", kind="plain"), "https://x.example/p",
                           "start", "success", "r", "x") is None


def test_the_failure_body_is_cut_at_100_kB_masked_and_whole_characters() -> None:
    text = SECRET + " " + "é" * 60_000
    body = notify._ping_body(text, Masker([SECRET]))
    assert len(body) <= 100_000 and body.startswith(b"*** ")
    body.decode("utf-8")  # no character cut in two


@pytest.mark.parametrize(("monitor", "says"), [
    ({"url": "https://hc-ping.com/x", "kind": "nagios"}, "monitor.kind: must be"),
    ({"kind": "plain"}, "monitor.url: is required"),
    ({"url": "ftp://x"}, "monitor.url: must be an http:// or https:// URL"),
    ({"url": "https://hc-ping.com/${UNSET_PING}"}, "monitor.url: ${UNSET_PING} is used but"),
    ({"url": "https://hc-ping.com/x", "knd": "plain"}, "monitor.knd: unknown key (did you mean 'kind'?)"),
    ("https://hc-ping.com/x", "monitor: must be an object"),
])
def test_bad_monitor_settings_exit_2(project: Project, monitor: Any, says: str) -> None:
    project.module("1.a.py", OK)
    project.config(monitor=monitor)
    result = project.run()
    assert result.returncode == EXIT_USAGE, result.stdout
    assert says in result.stderr
    assert not project.log_dir.exists()


def test_an_interrupted_run_pings_fail_with_its_review(project: Project,
                                                       server: HookServer) -> None:
    """A real SIGTERM while the module runs (it has told the server it started)."""
    env = setup(project, server, "healthchecks")
    project.module("1.work.py", TELL + "import time\ntime.sleep(60)\n")
    proc = subprocess.Popen(project.command(), cwd=project.root, env=dict(os.environ, **env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            stdin=subprocess.DEVNULL)
    assert wait_for(lambda: any(p.path == "/module-ran" for p in server.posted), 60)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == EXIT_INTERRUPTED
    record = project.record()
    assert record["status"] == "interrupted"
    assert [(m, p) for m, p, _ in requests(server)] == [
        ("GET", "/ping/abc-uuid-key/start"), ("GET", "/module-ran"),
        ("POST", "/ping/abc-uuid-key/fail")]
    assert requests(server)[2][2] == {"rid": [record["monitor"]["rid"]]}
    assert b"Status:       INTERRUPTED" in server.posted[2].body
