"""The review report, and sending it out by webhook and e-mail to real servers on 127.0.0.1."""

from __future__ import annotations

import base64
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import OK, Project, fail
from notifyservers import (
    HookServer,
    Reply,
    SmtpServer,
    certificate,
    dead_port,
    server_context,
    silent_port,
)

from gitcron import notify
from gitcron.config import Channel, Email, Webhook
from gitcron.logs import Masker

RUN_ID = "20261123_06h00"
STARTED = "2026-11-23T06:00:00.000+00:00"
SECRET = "s3cr3t-Value-42"
HOOK_PATH = "T000/B111/hookpathsecret"
LINK = "https://github.com/acme/weather/blob/abc123/data%20and%20logs/workflow_20261123_06h00.log"


def module(name: str, status: str, **extra: Any) -> dict[str, Any]:
    entry = {"name": name, "path": f"modules/{name}.py", "status": status, "exit_code": 0,
             "attempts": 1, "timed_out": False, "started": STARTED, "finished": STARTED,
             "duration_seconds": 1.0, "peak_rss_mb": 20.0}
    return {**entry, **extra}


def failed_record(status: str = "failed") -> dict[str, Any]:
    return {
        "run_id": RUN_ID, "status": status, "started": STARTED,
        "finished": "2026-11-23T06:02:03.500+00:00", "duration_seconds": 123.5,
        "dry_run": False, "trigger": "schedule", "last_run_date_before": None,
        "log_file": "data and logs/workflow_20261123_06h00.log",
        "modules": [
            module("1.file_retrieval", "success", peak_rss_mb=41.25),
            module("2.check", "skipped", exit_code=10),
            module("3.load", "recovered", exit_code=4, attempts=2,
                   recovery={"path": "modules/rollback_load.sh", "status": "success",
                             "exit_code": 0, "duration_seconds": 0.4}),
            module("4.transform", "failed", exit_code=3, attempts=3, peak_rss_mb=88.5,
                   recovery={"path": "modules/undo.py", "status": "failed", "exit_code": 1,
                             "duration_seconds": 2.0}),
            module("5.publish", "not_run", exit_code=None, attempts=0, started=None,
                   finished=None, duration_seconds=None, peak_rss_mb=None),
        ],
    }


TAILS = {"3.load": ["connection reset by peer"],
         "4.transform": ["Traceback (most recent call last):", f"ValueError: bad token {SECRET}"]}


def report(tmp_path: Path, record: dict[str, Any] | None = None, **options: Any) -> str:
    options.setdefault("mask", Masker([SECRET]))
    return notify.review_report(record or failed_record(), options.pop("tails", TAILS),
                                pipeline="weather", log_dir=tmp_path, **options)


def section(text: str, title: str) -> list[str]:
    """The lines of one section of a report, up to the next blank line before a title."""
    lines = text.splitlines()
    start = lines.index(title) + 2
    titles = {"SUMMARY", "ERROR DETAILS", "RECOVERY ACTIONS", "METADATA"}
    end = next((i - 1 for i in range(start, len(lines)) if lines[i] in titles), len(lines))
    return [line for line in lines[start:end]]


# --- The review report ---------------------------------------------------------------------


def test_report_has_header_and_sections_in_order(tmp_path: Path) -> None:
    text = report(tmp_path)
    lines = text.splitlines()
    assert lines[1] == "PIPELINE REVIEW: weather"
    assert "Run:          20261123_06h00" in lines
    assert "Status:       FAILED" in lines
    assert f"Started:      {STARTED}" in lines
    positions = [lines.index(title) for title in
                 ("SUMMARY", "ERROR DETAILS", "RECOVERY ACTIONS", "METADATA")]
    assert positions == sorted(positions)
    assert section(text, "SUMMARY") == [
        "Modules: 5 total, 1 succeeded, 1 skipped, 1 failed, 1 recovered, 1 not run"]


def test_report_error_details_name_each_failed_or_recovered_module(tmp_path: Path) -> None:
    details = section(report(tmp_path), "ERROR DETAILS")
    assert details[0] == "3.load: recovered, exit code 4, 2 attempts"
    assert "  | connection reset by peer" in details
    assert "4.transform: failed, exit code 3, 3 attempts" in details
    assert "  | Traceback (most recent call last):" in details
    assert not any("1.file_retrieval" in line or "5.publish" in line for line in details)


def test_report_recovery_actions_and_metadata(tmp_path: Path) -> None:
    text = report(tmp_path, disk_written_bytes=3 * 1024 * 1024)
    assert section(text, "RECOVERY ACTIONS") == [
        "3.load: ran modules/rollback_load.sh: success (exit code 0, 0.4 s)",
        "4.transform: ran modules/undo.py: failed (exit code 1, 2.0 s)",
    ]
    meta = section(text, "METADATA")
    assert "Duration:     123.5 s" in meta
    assert "Peak memory:  88.5 MB (4.transform)" in meta
    assert f"Disk written: 3.0 MB under {tmp_path.name}/" in meta
    assert any(line.startswith("Disk free:") and line.endswith(" MB") for line in meta)
    assert "Trigger:      schedule" in meta
    assert "Log:          data and logs/workflow_20261123_06h00.log" in meta


def test_report_masks_a_secret_in_a_stderr_tail(tmp_path: Path) -> None:
    text = report(tmp_path)
    assert SECRET not in text
    assert "  | ValueError: bad token ***" in text.splitlines()


def test_report_masks_a_secret_where_a_long_line_is_cut(tmp_path: Path) -> None:
    """The line is masked before it is cut: no head of the secret survives the cut."""
    line = "x" * 70 + SECRET + "y" * 100
    text = report(tmp_path, tails={"4.transform": [line]})
    assert SECRET[:6] not in text
    assert "  | " + "x" * 70 + "***..." in text.splitlines()


def test_report_fits_80_columns(tmp_path: Path) -> None:
    record = failed_record()
    record["modules"][3]["name"] = "4." + "very_long_module_name_" * 6
    record["log_file"] = "data and logs/" + "deep/" * 30 + "workflow_20261123_06h00.log"
    record["trigger"] = "workflow_dispatch " * 8
    tails = {record["modules"][3]["name"]: ["e" * 500, "\tindented\twith\ttabs " * 10]}
    text = report(tmp_path, record, tails=tails)
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "deep/deep/" in text and "e" * 70 in text


def test_report_keeps_only_the_last_lines_of_stderr(tmp_path: Path) -> None:
    tails = {"4.transform": [f"line {i}" for i in range(30)]}
    details = section(report(tmp_path, tails=tails), "ERROR DETAILS")
    assert "  | line 29" in details and "  | line 20" in details
    assert "  | line 19" not in details


def test_report_of_a_timeout_a_signal_and_nothing_on_stderr(tmp_path: Path) -> None:
    record = failed_record()
    record["modules"] = [module("1.slow", "failed", exit_code=-15, timed_out=True),
                         module("2.killed", "failed", exit_code=-9, attempts=1,
                                recovery={"path": "modules/undo.sh", "status": "failed",
                                          "exit_code": -9, "duration_seconds": None})]
    details = section(report(tmp_path, record, tails={}), "ERROR DETAILS")
    assert details == ["1.slow: failed, timed out, 1 attempt", "  (nothing on stderr)", "",
                       "2.killed: failed, killed by SIGKILL, 1 attempt",
                       "  (nothing on stderr)"]
    assert section(report(tmp_path, record, tails={}), "RECOVERY ACTIONS") == [
        "2.killed: ran modules/undo.sh: failed (killed by SIGKILL)"]


def test_report_of_a_run_with_no_failure(tmp_path: Path) -> None:
    record = failed_record("interrupted")
    record["modules"] = [module("1.a", "success"), module("2.b", "not_run")]
    text = report(tmp_path, record)
    assert section(text, "ERROR DETAILS") == ["none"]
    assert section(text, "RECOVERY ACTIONS") == ["none"]


def test_report_of_a_record_from_an_older_version(tmp_path: Path) -> None:
    """No recovery, timed_out, peak memory, trigger or finish: the report still reads."""
    record = {"run_id": RUN_ID, "status": "interrupted", "started": STARTED,
              "modules": [{"name": "1.a", "status": "failed"}, {"name": "2.b"}, "junk"]}
    text = report(tmp_path / "missing", record, tails={})
    assert "Status:       INTERRUPTED" in text
    assert "Finished:     unknown" in text
    assert "1.a: failed, exit code unknown, attempts unknown" in text
    assert "Peak memory:  unknown" in text and "Disk free:    unknown" in text
    assert "Modules: 2 total, 0 succeeded, 0 skipped, 1 failed, 0 recovered, 0 not run" in text


def test_disk_written_counts_this_run_files_only(tmp_path: Path) -> None:
    log_dir = tmp_path / "data and logs"
    (log_dir / "runs" / RUN_ID / "out").mkdir(parents=True)
    (log_dir / "runs" / "20261122_06h00").mkdir(parents=True)
    (log_dir / "data").mkdir()
    sizes = {f"workflow_{RUN_ID}.log": 1000, f"workflow_{RUN_ID}.json": 200,
             f"runs/{RUN_ID}/review.txt": 30, f"runs/{RUN_ID}/out/part.csv": 4000,
             "data/new.csv": 50_000,
             # Not this run's: older runs, and data that did not change during it.
             "workflow_20261122_06h00.log": 9_000_000, "runs/20261122_06h00/x.csv": 7_000,
             "data/old.csv": 800_000}
    for name, size in sizes.items():
        (log_dir / name).write_bytes(b"x" * size)
    old = time.time() - 86_400
    os.utime(log_dir / "data" / "old.csv", (old, old))
    (log_dir / "runs" / RUN_ID / "link").symlink_to(log_dir / "data" / "old.csv")
    started = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(time.time() - 60))
    assert notify.disk_written(log_dir, RUN_ID, started) == 1000 + 200 + 30 + 4000 + 50_000
    assert notify.disk_written(log_dir, RUN_ID, None) == 1000 + 200 + 30 + 4000
    assert notify.disk_written(tmp_path / "nowhere", RUN_ID, started) == 0


def test_headline_is_one_line() -> None:
    record = failed_record()
    record["modules"][3]["name"] = "4.trans\nform"
    assert notify.headline(record, LINK, "weather") == (
        f"weather: pipeline failed: run {RUN_ID}; failed: 4.trans form; "
        f"recovered: 3.load; log: {LINK}")
    assert notify.headline(failed_record(), None).endswith(
        "; log: data and logs/workflow_20261123_06h00.log")


@pytest.mark.parametrize(("value", "seconds"), [
    ("3", 3.0), ("0", 0.0), ("-5", 0.0), ("", None), (None, None), ("soon", None),
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_retry_after(value: str | None, seconds: float | None) -> None:
    assert notify.retry_after(value) == seconds


def test_retry_after_as_a_future_date() -> None:
    moment = time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime(time.time() + 120))
    wait = notify.retry_after(moment)
    assert wait is not None and 100 < wait <= 120


# --- Webhook -------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the tests fast: the backoff's length is not what they check."""
    monkeypatch.setattr(notify, "BACKOFF_SECONDS", (0.0, 0.0))


@pytest.fixture
def hook() -> Iterator[HookServer]:
    server = HookServer()
    yield server
    server.close()


ENV = {"HOOK_PATH": HOOK_PATH, "HOOK_TOKEN": "bearer-" + SECRET}


def webhook_channel(server: HookServer, **options: Any) -> Channel:
    url = server.url("/hooks/${HOOK_PATH}")
    return Channel(webhook=Webhook(url, (("Authorization", "Bearer ${HOOK_TOKEN}"),)), **options)


def send(channels: list[Channel], record: dict[str, Any] | None = None, *,
         review: str = "review text", env: dict[str, str] | None = None,
         log_path: Path = Path("/nonexistent/workflow.log"), **options: Any) -> list[str]:
    options.setdefault("mask", Masker([SECRET]))
    options.setdefault("dry_run", False)
    options.setdefault("log_link", LINK)
    return notify.send(channels, record or failed_record(), review, env=ENV | (env or {}),
                       log_path=log_path, **options)


def host(server: HookServer) -> str:
    return f"webhook http://127.0.0.1:{server.server.server_address[1]}"


def test_webhook_posts_text_and_run(hook: HookServer) -> None:
    record = failed_record()
    assert send([webhook_channel(hook)], record) == [f"{host(hook)}: sent"]
    [posted] = hook.posted
    assert posted.path == f"/hooks/{HOOK_PATH}"
    assert posted.headers["authorization"] == f"Bearer bearer-{SECRET}"
    assert posted.headers["content-type"].startswith("application/json")
    assert posted.headers["user-agent"] == notify.USER_AGENT
    body = json.loads(posted.body)
    assert body["text"] == (f"pipeline failed: run {RUN_ID}; failed: 4.transform; "
                            f"recovered: 3.load; log: {LINK}")
    assert body["run"] == record


def test_webhook_never_shows_the_url_path_in_its_line(hook: HookServer) -> None:
    hook.replies = [Reply(404)]
    [line] = send([webhook_channel(hook)])
    assert line == f"{host(hook)}: failed (HTTP 404)"
    assert "hookpathsecret" not in line and len(hook.posted) == 1


def test_webhook_masks_a_secret_in_text_and_record(hook: HookServer) -> None:
    record = failed_record()
    record["modules"][3]["name"] = f"4.transform {SECRET}"
    record["modules"][3]["error"] = f"token={SECRET} and {HOOK_PATH}"
    send([webhook_channel(hook)], record, review=f"stderr: {SECRET}")
    body = hook.posted[0].body.decode()
    assert SECRET not in body and HOOK_PATH not in body
    assert json.loads(body)["run"]["modules"][3]["error"] == "token=*** and ***"


def test_webhook_retries_a_5xx(hook: HookServer) -> None:
    hook.replies = [Reply(500), Reply(503), Reply(200)]
    assert send([webhook_channel(hook)]) == [f"{host(hook)}: sent after 3 tries"]
    assert len(hook.posted) == 3


def test_webhook_gives_up_after_three_tries(hook: HookServer) -> None:
    hook.replies = [Reply(502)]
    assert send([webhook_channel(hook)]) == [f"{host(hook)}: failed (HTTP 502) after 3 tries"]
    assert len(hook.posted) == 3


def test_webhook_honours_retry_after_on_429(hook: HookServer) -> None:
    hook.replies = [Reply(429, {"Retry-After": "0"}), Reply(200)]
    assert send([webhook_channel(hook)]) == [f"{host(hook)}: sent after 2 tries"]


def test_webhook_stops_when_retry_after_is_too_long(hook: HookServer) -> None:
    hook.replies = [Reply(429, {"Retry-After": "3600"}), Reply(200)]
    assert send([webhook_channel(hook)]) == [
        f"{host(hook)}: failed (HTTP 429; asked to retry after 3600 s)"]
    assert len(hook.posted) == 1


def test_webhook_does_not_retry_a_4xx_nor_follow_a_redirect(hook: HookServer) -> None:
    hook.replies = [Reply(302, {"Location": "http://127.0.0.1:9/elsewhere"})]
    assert send([webhook_channel(hook)]) == [
        f"{host(hook)}: failed (HTTP 302: redirects are not followed)"]
    assert len(hook.posted) == 1


def test_webhook_to_a_dead_endpoint() -> None:
    channel = Channel(webhook=Webhook(f"http://127.0.0.1:{dead_port()}/x"))
    [line] = send([channel])
    assert line.endswith(": failed (connection refused) after 3 tries")


# "timeout; out of time" most often; on a very busy machine the budget's end may be seen
# first. Either way the call has returned within its budget, and says so.
OUT_OF_TIME = re.compile(r": failed \(([a-z ]+; )?out of time\)")


def test_webhook_to_a_stalling_endpoint_returns_within_the_budget(hook: HookServer) -> None:
    hook.replies = [Reply(stall=True)]
    [line] = send([webhook_channel(hook)], budget_seconds=1.0)
    assert OUT_OF_TIME.fullmatch(line.removeprefix(host(hook)))


def test_webhook_that_trickles_is_given_up_at_the_budget(hook: HookServer) -> None:
    """Each byte comes within the socket timeout: only the overall budget stops it."""
    hook.replies = [Reply(trickle=True)]
    [line] = send([webhook_channel(hook)], budget_seconds=1.0)
    assert OUT_OF_TIME.fullmatch(line.removeprefix(host(hook)))


@pytest.mark.parametrize("url", ["${UNSET_VARIABLE}", "ftp://example.com/x", "http://[::1"])
def test_webhook_with_a_bad_url_fails_in_one_line(url: str) -> None:
    [line] = send([Channel(webhook=Webhook(url))])
    assert "failed (not an http or https URL)" in line


def test_webhook_over_https_trusts_ssl_cert_file(tls: tuple[Path, Path]) -> None:
    server = HookServer(tls=server_context(*tls))
    try:
        channel = Channel(webhook=Webhook(server.url()))
        [untrusted] = send([channel])
        assert untrusted.endswith(": failed (TLS: CERTIFICATE_VERIFY_FAILED)")
        assert send([channel], env={"SSL_CERT_FILE": str(tls[0])}) == [
            f"webhook https://127.0.0.1:{server.server.server_address[1]}: sent"]
    finally:
        server.close()


# --- Which channels, and dry runs ----------------------------------------------------------


def test_by_default_a_channel_hears_of_every_run_that_needs_a_person(hook: HookServer) -> None:
    assert send([webhook_channel(hook)], failed_record("success")) == []
    assert hook.posted == []
    for status in ("failed", "partial", "interrupted"):
        assert send([webhook_channel(hook)], failed_record(status)) == [f"{host(hook)}: sent"]
    assert [json.loads(p.body)["run"]["status"] for p in hook.posted] == [
        "failed", "partial", "interrupted"]


def test_on_chooses_the_statuses(hook: HookServer) -> None:
    channels = [webhook_channel(hook, on=("success", "partial")),
                webhook_channel(hook, on=("failed",))]
    assert send(channels, failed_record("partial")) == [f"{host(hook)}: sent"]
    assert send(channels, failed_record("interrupted")) == []
    assert len(hook.posted) == 1


def test_dry_run_sends_nothing_and_says_what(hook: HookServer) -> None:
    smtp = SmtpServer()
    try:
        channels = [webhook_channel(hook), Channel(email=email_to(smtp, attach_log=True))]
        lines = send(channels, dry_run=True)
    finally:
        smtp.close()
    assert lines == [
        f"{host(hook)}: would send (dry run): pipeline failed: run {RUN_ID}; "
        f"failed: 4.transform; recovered: 3.load; log: {LINK}",
        f"email ops@example.com: would send (dry run): pipeline failed: run {RUN_ID} "
        "(with the log)",
    ]
    assert hook.posted == [] and smtp.messages == []


def test_channels_run_side_by_side_within_one_budget(hook: HookServer) -> None:
    """A black-holed webhook does not starve the e-mail that comes after it."""
    hook.replies = [Reply(stall=True)]
    smtp = SmtpServer()
    try:
        lines = send([webhook_channel(hook), Channel(email=email_to(smtp))], budget_seconds=1.0)
        assert OUT_OF_TIME.fullmatch(lines[0].removeprefix(host(hook)))
        assert lines[1] == "email ops@example.com: sent"
        assert len(smtp.messages) == 1
    finally:
        smtp.close()


# --- E-mail --------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return certificate(tmp_path_factory.mktemp("tls"))


def email_to(server: SmtpServer | None, port: int | None = None, **options: Any) -> Email:
    return Email(to=("ops@example.com",), sender="pipeline@example.com", host="127.0.0.1",
                 port=port or (server.port if server else 25), **options)


CREDENTIALS = {"SMTP_USER": "pipeline", "SMTP_PASSWORD": "pw-" + SECRET}


def test_email_sends_the_review_with_a_filterable_subject() -> None:
    smtp = SmtpServer()
    try:
        review = f"REVIEW\nERROR DETAILS\n  | token {SECRET}\n"
        assert send([Channel(email=email_to(smtp))], review=review) == [
            "email ops@example.com: sent"]
    finally:
        smtp.close()
    [message] = smtp.messages
    assert message["Subject"] == f"pipeline failed: run {RUN_ID}"
    assert message["From"] == "pipeline@example.com" and message["To"] == "ops@example.com"
    assert message.get_content() == "REVIEW\nERROR DETAILS\n  | token ***\n"
    assert SECRET not in message.as_string()
    assert smtp.envelopes == [("pipeline@example.com", ["ops@example.com"])]


def test_email_with_starttls_and_login(tls: tuple[Path, Path]) -> None:
    smtp = SmtpServer(tls=server_context(*tls), login=("pipeline", CREDENTIALS["SMTP_PASSWORD"]))
    try:
        email = email_to(smtp, starttls=True, username_env="SMTP_USER",
                         password_env="SMTP_PASSWORD")
        lines = send([Channel(email=email)], env={**CREDENTIALS, "SSL_CERT_FILE": str(tls[0])})
    finally:
        smtp.close()
    assert lines == ["email ops@example.com: sent"]
    assert smtp.logins == [("pipeline", CREDENTIALS["SMTP_PASSWORD"])]
    assert len(smtp.messages) == 1


def test_email_with_implicit_tls(tls: tuple[Path, Path]) -> None:
    smtp = SmtpServer(tls=server_context(*tls), implicit_tls=True)
    try:
        lines = send([Channel(email=email_to(smtp, ssl=True))],
                     env={"SSL_CERT_FILE": str(tls[0])})
    finally:
        smtp.close()
    assert lines == ["email ops@example.com: sent"] and len(smtp.messages) == 1


def test_email_refuses_a_certificate_it_does_not_trust(tls: tuple[Path, Path]) -> None:
    smtp = SmtpServer(tls=server_context(*tls))
    try:
        [line] = send([Channel(email=email_to(smtp, starttls=True))])
    finally:
        smtp.close()
    assert line == "email ops@example.com: failed (TLS: CERTIFICATE_VERIFY_FAILED)"
    assert smtp.messages == []


def test_email_wrong_password_is_not_retried(tls: tuple[Path, Path]) -> None:
    smtp = SmtpServer(tls=server_context(*tls), login=("pipeline", "the right one"))
    try:
        email = email_to(smtp, starttls=True, username_env="SMTP_USER",
                         password_env="SMTP_PASSWORD")
        [line] = send([Channel(email=email)], env={**CREDENTIALS, "SSL_CERT_FILE": str(tls[0])})
    finally:
        smtp.close()
    assert line == "email ops@example.com: failed (SMTP 535)"
    assert len(smtp.logins) <= 2  # smtplib tries each mechanism (PLAIN, LOGIN) once


def test_email_retries_a_transient_refusal() -> None:
    smtp = SmtpServer(refuse=2)
    try:
        assert send([Channel(email=email_to(smtp))]) == [
            "email ops@example.com: sent after 3 tries"]
    finally:
        smtp.close()
    assert smtp.refused == 2 and len(smtp.messages) == 1


def test_email_never_sends_credentials_in_the_clear() -> None:
    smtp = SmtpServer()
    try:
        email = email_to(smtp, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
        assert send([Channel(email=email)], env=CREDENTIALS) == [
            "email ops@example.com: failed (credentials are sent only over starttls or ssl)"]
    finally:
        smtp.close()
    assert smtp.messages == []


def test_email_with_a_missing_credential_variable() -> None:
    email = email_to(None, starttls=True, username_env="SMTP_USER", password_env="SMTP_PASSWORD")
    assert send([Channel(email=email)], env={"SMTP_USER": "pipeline"}) == [
        "email ops@example.com: failed (SMTP_PASSWORD is not set)"]


def test_email_to_a_dead_server() -> None:
    email = email_to(None, port=dead_port())
    assert send([Channel(email=email)]) == [
        "email ops@example.com: failed (connection refused) after 3 tries"]


def test_email_to_a_silent_server_returns_within_the_budget() -> None:
    listener, port = silent_port()
    with listener:
        [line] = send([Channel(email=email_to(None, port=port))], budget_seconds=1.0)
    assert OUT_OF_TIME.fullmatch(line.removeprefix("email ops@example.com"))


def test_email_attaches_the_log_masked(tmp_path: Path) -> None:
    log = tmp_path / f"workflow_{RUN_ID}.log"
    log.write_text(f"line one\nthe token is {SECRET}\n")
    smtp = SmtpServer()
    try:
        send([Channel(email=email_to(smtp, attach_log=True))], log_path=log, review="REVIEW\n")
    finally:
        smtp.close()
    [message] = smtp.messages
    [attachment] = list(message.iter_attachments())
    assert attachment.get_filename() == log.name
    assert attachment.get_content() == "line one\nthe token is ***\n"
    assert message.get_body().get_content() == f"REVIEW\n\nThe log is attached: {log.name}.\n"
    assert base64.b64encode(SECRET.encode()).decode()[:12] not in message.as_string()


def write_log(path: Path, lines: int) -> None:
    line = "2026-11-23 06:00:01.123 | INFO     | 1.file_retrieval | " + "x" * 40 + " {}\n"
    with open(path, "w") as handle:
        handle.writelines(line.format(i) for i in range(lines))
        handle.write(f"the very last line {SECRET}\n")


def test_a_log_over_5_mb_is_attached_as_its_tail(tmp_path: Path) -> None:
    log = tmp_path / f"workflow_{RUN_ID}.log"
    write_log(log, 60_000)  # about 6 MB
    text, note = notify.log_attachment(log, Masker([SECRET]))
    assert text is not None
    assert len(text.encode()) <= notify.MAX_ATTACHMENT_BYTES
    assert text.startswith("2026-11-23 06:00:01.123 | INFO")  # from a line's start
    assert text.endswith("the very last line ***\n")
    assert note.startswith("The log is attached: its last 5.0 MB of 5.9 MB")


def test_email_attaches_the_tail_of_a_long_log(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole way through SMTP, with a smaller limit: 5 MB through aiosmtpd is slow."""
    monkeypatch.setattr(notify, "MAX_ATTACHMENT_BYTES", 10_000)
    log = tmp_path / f"workflow_{RUN_ID}.log"
    write_log(log, 1_000)
    smtp = SmtpServer()
    try:
        assert send([Channel(email=email_to(smtp, attach_log=True))], log_path=log) == [
            "email ops@example.com: sent"]
    finally:
        smtp.close()
    [message] = smtp.messages
    [attachment] = list(message.iter_attachments())
    text = attachment.get_content()
    assert len(text.encode()) <= 10_000 and text.startswith("2026-11-23 06:00:01.123 | INFO")
    assert text.endswith("the very last line ***\n")
    assert "The log is attached: its last 10 kB of 99 kB" in message.get_body().get_content()


def test_email_when_the_log_cannot_be_read(tmp_path: Path) -> None:
    smtp = SmtpServer()
    try:
        send([Channel(email=email_to(smtp, attach_log=True))], log_path=tmp_path / "gone.log",
             review="REVIEW\n")
    finally:
        smtp.close()
    [message] = smtp.messages
    assert list(message.iter_attachments()) == []
    assert "The log could not be attached: No such file or directory." in message.get_content()


def test_email_to_several_people() -> None:
    smtp = SmtpServer()
    try:
        email = Email(to=("a@example.com", "b@example.com"), sender="p@example.com",
                      host="127.0.0.1", port=smtp.port)
        assert send([Channel(email=email)]) == ["email a@example.com and 1 more: sent"]
    finally:
        smtp.close()
    assert smtp.envelopes == [("p@example.com", ["a@example.com", "b@example.com"])]


# --- With a record the orchestrator wrote ---------------------------------------------------


def test_report_and_webhook_from_a_real_run(project: Project, hook: HookServer) -> None:
    project.module("1.ok.py", OK)
    project.module("2.bad.py", fail(3, f"bad token {SECRET}"))
    project.config(modules=["modules/1.ok.py", "modules/2.bad.py"])
    done = project.run("--no-push", env={"MY_API_KEY": SECRET})
    assert done.returncode == 1, done.stderr
    record = project.record()
    log = project.log_dir / f"workflow_{record['run_id']}.log"
    assert notify.disk_written(project.log_dir, record["run_id"], record["started"]) >= (
        log.stat().st_size)
    text = report(project.log_dir, record, tails={"2.bad": [f"bad token {SECRET}"]})
    assert "Modules: 2 total, 1 succeeded, 0 skipped, 1 failed, 0 recovered, 0 not run" in text
    assert "2.bad: failed, exit code 3, 1 attempt" in text
    assert f"Log:          data and logs/{log.name}" in text
    assert send([webhook_channel(hook)], record, review=text, log_link=None) == [
        f"{host(hook)}: sent"]
    body = json.loads(hook.posted[0].body)
    assert body["text"] == f"pipeline failed: run {record['run_id']}; failed: 2.bad; log: " \
                           f"data and logs/{log.name}"
    assert SECRET not in hook.posted[0].body.decode()


def test_a_record_with_odd_values_is_still_sent(hook: HookServer) -> None:
    record = failed_record()
    record["extra"] = {"path": Path(f"/x/{SECRET}")}  # not a JSON type
    assert send([webhook_channel(hook)], record) == [f"{host(hook)}: sent"]
    assert json.loads(hook.posted[0].body)["run"]["extra"] == {"path": "/x/***"}
