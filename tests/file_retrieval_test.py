"""modules/1.file_retrieval.py against a real HTTP server on 127.0.0.1 and real files."""

from __future__ import annotations

import gzip
import io
import json
import os
import signal
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import REPO, Project, load_stage, run_stage, stage_command, stage_env
from httpfiles import FileServer, Reply, Resource, Script

NAME = "1.file_retrieval.py"
CSV = b"date,precipitation,temp_max,temp_min,wind,weather\n2012-01-01,0.0,12.8,5.0,4.7,drizzle\n"
HTML = b"<!DOCTYPE html>\n<html><body><h1>Service unavailable</h1></body></html>\n"
TESTDATA = REPO / "tests" / "data"
retrieval = load_stage(NAME)
formats = retrieval.formats


@pytest.fixture
def server() -> Iterator[FileServer]:
    files = FileServer()
    yield files
    files.close()


def configure(project: Project, *sources: dict[str, Any], **retrieval_keys: Any) -> None:
    project.config(sources=list(sources),
                   retrieval={"retries": 0, "backoff_seconds": 0, **retrieval_keys})


def retrieve(project: Project, **options: Any) -> subprocess.CompletedProcess[str]:
    return run_stage(project, NAME, **options)


def data(project: Project) -> Path:
    return project.log_dir / "data"


def manifest(project: Project) -> dict[str, Any]:
    return json.loads((data(project) / "manifest.json").read_text())


def leftovers(project: Project) -> list[str]:
    """Temporary files a download left behind (there must never be any)."""
    return sorted(p.name for p in data(project).rglob(".*.part")) if data(project).exists() else []


def gzipped(payload: bytes) -> bytes:
    buffer = io.BytesIO()
    with gzip.GzipFile(fileobj=buffer, mode="wb", mtime=0) as handle:
        handle.write(payload)
    return buffer.getvalue()


# ---------------------------------------------------------------- local files

def test_a_plain_path_is_copied_then_left_alone_while_unchanged(project: Project) -> None:
    (project.root / "in.csv").write_bytes(CSV)
    configure(project, {"id": "weather", "url": "in.csv", "format": "csv"})

    first = retrieve(project)
    assert first.returncode == 0, first.stderr
    assert f"weather: downloaded: {len(CSV)} bytes, 1 row, 6 columns" in first.stdout
    assert (data(project) / "weather.csv").read_bytes() == CSV
    entry = manifest(project)["weather"]
    assert entry["bytes"] == len(CSV) and entry["run_id"] == "20261123_06h00"
    assert entry["mtime_ns"] == (project.root / "in.csv").stat().st_mtime_ns

    second = retrieve(project)
    assert second.returncode == 10, second.stderr
    assert "up to date: size and modification time unchanged" in second.stdout


def test_a_touched_file_with_the_same_bytes_is_up_to_date(project: Project) -> None:
    source = project.root / "in.csv"
    source.write_bytes(CSV)
    configure(project, {"id": "weather", "url": "in.csv", "format": "csv"})
    assert retrieve(project).returncode == 0
    before = manifest(project)
    os.utime(source, ns=(1, 1))  # a fresh checkout gives every file a new mtime

    again = retrieve(project)
    assert again.returncode == 10
    assert "up to date: content unchanged" in again.stdout
    assert manifest(project) == before


def test_a_changed_file_is_copied_again(project: Project) -> None:
    source = project.root / "in.csv"
    source.write_bytes(CSV)
    configure(project, {"id": "weather", "url": "in.csv", "format": "csv"})
    assert retrieve(project).returncode == 0
    source.write_bytes(CSV + b"2012-01-02,10.9,10.6,2.8,4.5,rain\n")

    again = retrieve(project)
    assert again.returncode == 0, again.stderr
    assert "2 rows, 6 columns" in again.stdout
    assert (data(project) / "weather.csv").read_bytes() == source.read_bytes()


def test_a_file_url_with_a_space_in_its_path(project: Project, tmp_path: Path) -> None:
    source = tmp_path / "some folder" / "in.json"
    source.parent.mkdir()
    source.write_text('[{"a": 1}, {"a": 2}]')
    configure(project, {"id": "items", "url": source.as_uri(), "format": "json"})

    result = retrieve(project)
    assert result.returncode == 0, result.stderr
    assert "items: downloaded: 20 bytes, a list of 2 items" in result.stdout
    assert manifest(project)["items"]["url"] == source.as_uri()


def test_the_local_copy_edited_or_deleted_is_fetched_again(project: Project) -> None:
    (project.root / "in.csv").write_bytes(CSV)
    configure(project, {"id": "weather", "url": "in.csv", "format": "csv"})
    assert retrieve(project).returncode == 0
    copy = data(project) / "weather.csv"
    copy.write_bytes(CSV.replace(b"drizzle", b"snow!!!"))
    assert retrieve(project).returncode == 0
    assert copy.read_bytes() == CSV
    copy.unlink()
    assert retrieve(project).returncode == 0
    assert copy.read_bytes() == CSV


def test_a_missing_file_fails_and_records_nothing(project: Project) -> None:
    configure(project, {"id": "weather", "url": "nowhere.csv", "format": "csv"})
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: no such file: " in result.stderr
    assert not (data(project) / "manifest.json").exists()


# ---------------------------------------------------------------- HTTP freshness

def test_an_unchanged_etag_on_head_means_no_download(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"v1"')
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})

    assert retrieve(project).returncode == 0
    assert manifest(project)["weather"]["etag"] == '"v1"'
    server.requests.clear()

    again = retrieve(project)
    assert again.returncode == 10, again.stderr
    assert 'up to date: ETag "v1" unchanged' in again.stdout
    assert server.methods("/w.csv") == ["HEAD"]


def test_a_conditional_get_answered_304_means_no_download(
        project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"v1"', head_allowed=False)
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    server.requests.clear()

    again = retrieve(project)
    assert again.returncode == 10, again.stderr
    assert "up to date: 304 Not Modified" in again.stdout
    assert server.methods("/w.csv") == ["HEAD", "GET"]
    assert server.requests[-1][2]["if-none-match"] == '"v1"'


def test_last_modified_is_a_validator_too(project: Project, server: FileServer) -> None:
    monday = "Mon, 23 Nov 2026 06:00:00 GMT"
    server.routes["/w.csv"] = Resource(CSV, last_modified=monday)
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0

    unchanged = retrieve(project)
    assert unchanged.returncode == 10
    assert f"Last-Modified {monday} unchanged" in unchanged.stdout

    newer = CSV + b"2012-01-02,10.9,10.6,2.8,4.5,rain\n"
    server.routes["/w.csv"] = Resource(newer, last_modified="Tue, 24 Nov 2026 06:00:00 GMT")
    changed = retrieve(project)
    assert changed.returncode == 0, changed.stderr
    assert (data(project) / "weather.csv").read_bytes() == newer


def test_a_conditional_get_sends_if_modified_since(project: Project, server: FileServer) -> None:
    monday = "Mon, 23 Nov 2026 06:00:00 GMT"
    server.routes["/w.csv"] = Resource(CSV, last_modified=monday, head_allowed=False)
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    again = retrieve(project)
    assert again.returncode == 10
    assert server.requests[-1][2]["if-modified-since"] == monday


def test_a_head_refused_is_no_verdict(project: Project, server: FileServer) -> None:
    # A URL signed for GET only answers HEAD with 403; the GET still works.
    server.routes["/w.csv"] = Script([Reply(200, CSV, {"ETag": '"v1"'})], head=Reply(403))
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    assert server.methods("/w.csv") == ["GET"]  # nothing to compare with: no HEAD

    again = retrieve(project)
    assert again.returncode == 10, again.stderr
    assert "up to date: content unchanged" in again.stdout
    assert server.methods("/w.csv") == ["GET", "HEAD", "GET"]


def test_a_new_etag_on_the_same_bytes_keeps_the_file(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"v1"')
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    copy = data(project) / "weather.csv"
    os.utime(copy, ns=(1, 1))
    server.routes["/w.csv"] = Resource(CSV, etag='"v2"')

    again = retrieve(project)
    assert again.returncode == 10
    assert "up to date: content unchanged" in again.stdout
    assert copy.stat().st_mtime_ns == 1
    assert manifest(project)["weather"]["etag"] == '"v2"'


def test_force_downloads_whatever_the_manifest_says(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"v1"')
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    server.requests.clear()

    forced = retrieve(project, force=True)
    assert forced.returncode == 0, forced.stderr
    assert "weather: downloaded" in forced.stdout
    get = [headers for method, _, headers in server.requests if method == "GET"]
    assert len(get) == 1 and "if-none-match" not in get[0]


def written(project: Project) -> list[Path]:
    """The files under log_dir (the run's own folder, made by the runner, is empty)."""
    return [p for p in project.log_dir.rglob("*") if not p.is_dir()]


def test_dry_run_probes_reports_and_writes_nothing(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"v1"')
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})

    dry = retrieve(project, dry_run=True)
    assert dry.returncode == 0, dry.stderr
    assert "weather: would download: never downloaded" in dry.stdout
    assert server.methods("/w.csv") == ["HEAD"]
    assert written(project) == []

    assert retrieve(project).returncode == 0
    assert retrieve(project, dry_run=True).returncode == 10
    server.routes["/w.csv"] = Resource(CSV + CSV[-40:], etag='"v2"')
    before = manifest(project)
    changed = retrieve(project, dry_run=True)
    assert changed.returncode == 0
    assert 'would download: changed: ETag "v2"' in changed.stdout
    assert manifest(project) == before
    assert (data(project) / "weather.csv").read_bytes() == CSV


# ---------------------------------------------------------------- HTTP failures

def test_a_500_then_200_is_retried_with_backoff(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(500, b"oops"), Reply(503, b"busy"),
                                      Reply(200, CSV, {"ETag": '"v1"'})])
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"},
              retries=2)
    result = retrieve(project)
    assert result.returncode == 0, result.stderr
    assert "weather: HTTP 500 Internal Server Error; retry 1 of 2 in 0 s" in result.stdout
    assert "weather: HTTP 503 Service Unavailable; retry 2 of 2 in 0 s" in result.stdout
    assert (data(project) / "weather.csv").read_bytes() == CSV


def test_5xx_that_persists_fails_after_its_retries(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(502, b"bad gateway")])
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"},
              retries=2)
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: HTTP 502 Bad Gateway (after 3 attempts)" in result.stderr
    assert server.methods("/w.csv") == ["GET"] * 3
    assert list(data(project).iterdir()) == []


def test_a_404_fails_at_once_without_retries(project: Project, server: FileServer) -> None:
    configure(project, {"id": "weather", "url": server.url("/gone.csv?key=s3cr3t"),
                        "format": "csv"}, retries=3)
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: HTTP 404 Not Found from http://127.0.0.1:" in result.stderr
    assert "/gone.csv?key=..." in result.stderr and "s3cr3t" not in result.stderr
    assert len(server.requests) == 1


def test_a_429_waits_as_long_as_retry_after_says(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(429, headers={"Retry-After": "0"}), Reply(200, CSV)])
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"},
              retries=1, backoff_seconds=1000)
    result = retrieve(project)
    assert result.returncode == 0, result.stderr
    assert "HTTP 429 Too Many Requests; retry 1 of 1 in 0 s" in result.stdout


def test_a_server_that_does_not_answer_times_out(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(stall=True)])
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"},
              timeout_seconds=0.3)
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: no answer within 0.3 s" in result.stderr
    assert leftovers(project) == []


def test_a_body_that_stalls_times_out_and_leaves_no_half_file(
        project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(200, CSV[:20], length=len(CSV),
                                            stall_after_body=True)], head=Reply(405))
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"},
              timeout_seconds=0.3)
    result = retrieve(project)
    assert result.returncode == 1
    assert "the body stalled for 0.3 s" in result.stderr
    assert not (data(project) / "weather.csv").exists()
    assert leftovers(project) == []


def test_a_short_body_is_retried(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(200, CSV[:30], length=len(CSV)), Reply(200, CSV)],
                                     head=Reply(405))
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"},
              retries=1)
    result = retrieve(project)
    assert result.returncode == 0, result.stderr
    assert "retry 1 of 1" in result.stdout
    assert (data(project) / "weather.csv").read_bytes() == CSV


def test_a_body_over_max_bytes_is_refused(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV)
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv",
                        "max_bytes": 50})
    result = retrieve(project)
    assert result.returncode == 1
    assert f"{len(CSV)} bytes is over max_bytes (50 bytes)" in result.stderr
    assert leftovers(project) == [] and not (data(project) / "weather.csv").exists()


def test_a_body_of_unknown_length_is_cut_at_max_bytes(project: Project,
                                                      server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(200, CSV * 100, no_length=True)])
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv",
                        "max_bytes": 1000})
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: body is over max_bytes (1000 bytes)" in result.stderr
    assert leftovers(project) == [] and not (data(project) / "weather.csv").exists()


def test_a_body_of_unknown_length_is_read_to_its_end(project: Project,
                                                     server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(200, CSV, no_length=True)])
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    assert (data(project) / "weather.csv").read_bytes() == CSV


def test_a_local_file_over_max_bytes_is_refused(project: Project) -> None:
    (project.root / "in.csv").write_bytes(CSV)
    configure(project, {"id": "weather", "url": "in.csv", "format": "csv", "max_bytes": 10})
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: file is over max_bytes (10 bytes)" in result.stderr
    assert leftovers(project) == []


def test_a_refused_connection_fails_cleanly(project: Project, server: FileServer) -> None:
    url = server.url("/w.csv")
    server.close()
    configure(project, {"id": "weather", "url": url, "format": "csv"})
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: cannot connect:" in result.stderr


def test_sigterm_mid_download_leaves_no_temporary_file(
        project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Script([Reply(200, CSV[:20], length=len(CSV),
                                            stall_after_body=True)], head=Reply(405))
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    process = subprocess.Popen(stage_command(project, NAME), cwd=project.root,
                               env=stage_env(project, NAME), stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert server.stalled.wait(30)
    assert len(leftovers(project)) == 1  # the download is under way, in its temporary file
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 128 + signal.SIGTERM
    process.stdout.close()
    process.stderr.close()
    assert leftovers(project) == []
    assert not (data(project) / "weather.csv").exists()


def test_a_download_is_recorded_before_the_next_source_starts(
        project: Project, server: FileServer) -> None:
    server.routes["/a.csv"] = Resource(CSV, etag='"a"')
    server.routes["/b.csv"] = Script([Reply(stall=True)])
    configure(project, {"id": "a", "url": server.url("/a.csv"), "format": "csv"},
              {"id": "b", "url": server.url("/b.csv"), "format": "csv"})
    process = subprocess.Popen(stage_command(project, NAME), cwd=project.root,
                               env=stage_env(project, NAME), stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert server.stalled.wait(30)
    process.send_signal(signal.SIGTERM)  # a timeout or a cancel, while b downloads
    assert process.wait(30) == 128 + signal.SIGTERM
    assert list(manifest(project)) == ["a"]
    assert (data(project) / "a.csv").read_bytes() == CSV
    assert leftovers(project) == []


# ---------------------------------------------------------------- validation gate

@pytest.mark.parametrize(("path", "body", "fmt", "reason"), [
    ("/w.csv", HTML, "csv", "an HTML page, not csv"),
    ("/w.csv.gz", gzipped(CSV * 50)[:60], "gzip", "truncated gzip"),
    ("/w.csv", b"", "csv", "empty body (0 bytes)"),
    ("/w.json", b'{"a": [1, 2', "json", "not JSON: Expecting"),
    ("/w.zip", b"PK\x03\x04 this is not really a zip", "zip", "corrupt zip"),
])
def test_a_bad_payload_is_quarantined_with_its_reason(
        project: Project, server: FileServer, path: str, body: bytes, fmt: str,
        reason: str) -> None:
    server.routes[path] = Resource(body, content_type="text/html")
    configure(project, {"id": "weather", "url": server.url(path), "format": fmt})
    result = retrieve(project)
    assert result.returncode == 1
    assert f"weather: failed: {reason}" in result.stderr
    assert "moved to data/quarantine/weather_20261123_06h00" in result.stderr
    quarantined = sorted((data(project) / "quarantine").iterdir())
    assert [p.name for p in quarantined] == [
        f"weather_20261123_06h00{formats.EXTENSIONS[fmt]}",
        f"weather_20261123_06h00{formats.EXTENSIONS[fmt]}.reason.json"]
    assert quarantined[0].read_bytes() == body
    why = json.loads(quarantined[1].read_text())
    assert why["reason"].startswith(reason) and why["content_type"] == "text/html"
    assert not (data(project) / f"weather{formats.EXTENSIONS[fmt]}").exists()
    assert not (data(project) / "manifest.json").exists()
    assert leftovers(project) == []


def test_a_bad_payload_keeps_the_last_good_copy(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"v1"')
    configure(project, {"id": "weather", "url": server.url("/w.csv"), "format": "csv"})
    assert retrieve(project).returncode == 0
    good = manifest(project)
    server.routes["/w.csv"] = Resource(HTML, etag='"v2"')
    assert retrieve(project).returncode == 1
    assert retrieve(project).returncode == 1
    assert (data(project) / "weather.csv").read_bytes() == CSV
    assert manifest(project) == good
    names = sorted(p.name for p in (data(project) / "quarantine").glob("*.csv"))
    assert names == ["weather_20261123_06h00.csv", "weather_20261123_06h00_2.csv"]


def test_one_failed_source_does_not_stop_the_others(project: Project, server: FileServer) -> None:
    server.routes["/good.csv"] = Resource(CSV)
    configure(project, {"id": "bad", "url": server.url("/bad.csv"), "format": "csv"},
              {"id": "good", "url": server.url("/good.csv"), "format": "csv"})
    result = retrieve(project)
    assert result.returncode == 1
    assert "1 downloaded, 1 failed" in result.stdout
    assert list(manifest(project)) == ["good"]


@pytest.mark.parametrize(("payload", "fmt", "described"), [
    ((REPO / "sample_data" / "seattle-weather.csv").read_bytes(), "csv", "1,461 rows, 6 columns"),
    (b"\xef\xbb\xbfa;b\n1;2\n", "csv", "1 row, 1 column"),
    (b'{"a": 1}', "json", "an object with 1 key"),
    (gzipped(CSV), "gzip", f"{len(CSV)} bytes uncompressed"),
    ((TESTDATA / "weather.parquet").read_bytes(), "parquet", "20 rows, 6 columns"),
    ((TESTDATA / "weather.xlsx").read_bytes(), "xlsx", "1 sheet: weather"),
])
def test_good_payloads_pass_the_gate(tmp_path: Path, payload: bytes, fmt: str,
                                     described: str) -> None:
    path = tmp_path / "payload"
    path.write_bytes(payload)
    assert formats.validate(path, fmt) == described


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in members.items():
            archive.writestr(name, content)
    return buffer.getvalue()


PARQUET = (TESTDATA / "weather.parquet").read_bytes()


@pytest.mark.parametrize(("payload", "fmt", "reason"), [
    (b"a,b\n", "csv", "a header and no rows"),
    (b"a,b,c\n1\n2\n3,4,5\n", "csv", "2 of 3 rows do not have the header's 3 fields"),
    (b"a,b\n\xff\xfe,1\n", "csv", "not utf-8 text"),
    (b"a,b\n1,\x00\n", "csv", "a NUL byte on line 2"),
    (b"<?xml version='1.0'?><html><body>login</body></html>", "csv", "an HTML page"),
    (b"plain text", "gzip", "not gzip: starts b'plain te'"),
    (gzipped(CSV)[:-4] + b"\0\0\0\0", "gzip", "corrupt gzip"),
    (b"PK\x05\x06" + b"\0" * 18, "zip", "an empty zip archive"),
    (zipped({"a.txt": b"hello"}), "xlsx", "a zip archive, but not a workbook"),
    (PARQUET[: len(PARQUET) // 2], "parquet", "truncated parquet"),
    (PARQUET[:100] + PARQUET[-8:], "parquet", "truncated parquet"),
    (b"PAR1" + b"\xff" * 20 + (20).to_bytes(4, "little") + b"PAR1", "parquet",
     "corrupt parquet footer"),
])
def test_bad_payloads_fail_the_gate(tmp_path: Path, payload: bytes, fmt: str,
                                    reason: str) -> None:
    path = tmp_path / "payload"
    path.write_bytes(payload)
    with pytest.raises(formats.Invalid, match="^" + reason.replace("(", r"\(")):
        formats.validate(path, fmt)


# ---------------------------------------------------------------- settings and secrets

def test_placeholders_fill_urls_and_headers_from_the_environment(
        project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV)
    configure(project, {"id": "weather", "format": "csv",
                        "url": server.url("/w.csv?since=${PIPELINE_LAST_RUN_DATE}"),
                        "headers": {"Authorization": "Bearer ${API_TOKEN}"}})
    result = retrieve(project, last_run="2026-11-22T06:00:00+00:00",
                      API_TOKEN="tok-0123456789")
    assert result.returncode == 0, result.stderr
    method, path, headers = server.requests[-1]
    assert path == "/w.csv?since=2026-11-22T06%3A00%3A00%2B00%3A00"
    assert headers["authorization"] == "Bearer tok-0123456789"
    assert "tok-0123456789" not in result.stdout + result.stderr
    assert "tok-0123456789" not in (data(project) / "manifest.json").read_text()


WINDOWED = "/w.csv?from=${PIPELINE_WINDOW_START}&to=${PIPELINE_WINDOW_END}"


def test_the_runs_window_fills_the_url(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV, etag='"day-1"')
    configure(project, {"id": "weather", "format": "csv", "url": server.url(WINDOWED)})
    first = retrieve(project, PIPELINE_WINDOW_START="2026-11-22T07:00:00+01:00",
                     PIPELINE_WINDOW_END="2026-11-23T07:00:00+01:00")
    assert first.returncode == 0, first.stderr
    assert server.requests[-1][:2] == ("GET", "/w.csv?from=2026-11-22T07%3A00%3A00%2B01%3A00"
                                               "&to=2026-11-23T07%3A00%3A00%2B01%3A00")
    assert manifest(project)["weather"]["url"] == server.url(WINDOWED)

    server.routes["/w.csv"] = Resource(CSV + b"2012-01-02,10.9,10.6,2.8,4.5,rain\n",
                                       etag='"day-2"')
    second = retrieve(project, run_id="20261124_06h00",
                      PIPELINE_WINDOW_START="2026-11-23T07:00:00+01:00",
                      PIPELINE_WINDOW_END="2026-11-24T07:00:00+01:00")
    assert second.returncode == 0, second.stderr
    assert [(method, path.split("&")[0]) for method, path, _ in server.requests[1:]] == [
        ("HEAD", "/w.csv?from=2026-11-23T07%3A00%3A00%2B01%3A00"),
        ("GET", "/w.csv?from=2026-11-23T07%3A00%3A00%2B01%3A00")]
    assert "weather: downloaded: " in second.stdout


def test_a_window_with_no_start_leaves_from_empty(project: Project, server: FileServer) -> None:
    server.routes["/w.csv"] = Resource(CSV)
    configure(project, {"id": "weather", "format": "csv", "url": server.url(WINDOWED)})
    result = retrieve(project, PIPELINE_WINDOW_START="",
                      PIPELINE_WINDOW_END="2026-11-23T06:00:00+00:00")
    assert result.returncode == 0, result.stderr
    assert server.requests[-1][1] == "/w.csv?from=&to=2026-11-23T06%3A00%3A00%2B00%3A00"


def test_an_unset_placeholder_fails_that_source(project: Project, server: FileServer) -> None:
    configure(project, {"id": "weather", "format": "csv", "url": server.url("/w.csv"),
                        "headers": {"Authorization": "Bearer ${NO_SUCH_TOKEN}"}})
    result = retrieve(project)
    assert result.returncode == 1
    assert "weather: failed: ${NO_SUCH_TOKEN} is not set in the environment" in result.stderr
    assert server.requests == []


@pytest.mark.parametrize(("sources", "message"), [
    ({"id": "w"}, "sources: must be a list"),
    ([{"id": "w", "url": "a.csv"}], "sources[0].format: must be a non-empty string"),
    ([{"id": "w", "url": "a.csv", "format": "xls"}],
     "sources[0].format: must be one of csv, json, gzip, zip, parquet, xlsx (got 'xls')"),
    ([{"id": "../w", "url": "a.csv", "format": "csv"}], "sources[0].id: letters, digits"),
    ([{"id": "w", "url": "ftp://h/a.csv", "format": "csv"}], "sources[0].url: http://, https://"),
    ([{"id": "w", "url": "a.csv", "format": "csv", "fromat": "csv"}],
     "sources[0].fromat: unknown key"),
    ([{"id": "w", "url": "a.csv", "format": "csv", "timeout_seconds": -1}],
     "sources[0].timeout_seconds: must be a number, 0 or more (got -1)"),
    ([{"id": "w", "url": "a.csv", "format": "csv", "timeout_seconds": 0}],
     "sources[0].timeout_seconds: must be more than 0 (here or in retrieval)"),
    ([{"id": "w", "url": "a.csv", "format": "csv", "encoding": "klingon"}],
     "sources[0].encoding: not a text encoding Python knows"),
    ([{"id": "w", "url": "a.csv", "format": "csv", "encoding": "rot13"}],
     "sources[0].encoding: not a text encoding Python knows (got 'rot13')"),
    ([{"id": "w", "url": "a\u0000.csv", "format": "csv"}], "sources[0].url: holds a NUL character"),
    ([{"id": "w", "url": "a.csv", "format": "csv"}, {"id": "w", "url": "b.csv", "format": "csv"}],
     "sources[1]: id or file 'w' is used twice"),
])
def test_bad_settings_are_one_line_and_exit_2(project: Project, sources: Any,
                                              message: str) -> None:
    project.config(sources=sources)
    result = retrieve(project)
    assert result.returncode == 2
    assert result.stderr == f"1.file_retrieval: config.json: {message}" + \
        result.stderr.split(message, 1)[1]
    assert len(result.stderr.strip().splitlines()) == 1
    assert written(project) == []


def test_a_bad_retrieval_setting_is_named(project: Project) -> None:
    project.config(sources=[], retrieval={"retries": 1.5})
    result = retrieve(project)
    assert result.returncode == 2
    assert result.stderr.strip() == ("1.file_retrieval: config.json: retrieval.retries: "
                                     "must be a whole number, 0 or more (got 1.5)")


def test_a_broken_manifest_is_reported_not_overwritten(project: Project) -> None:
    (project.root / "in.csv").write_bytes(CSV)
    configure(project, {"id": "weather", "url": "in.csv", "format": "csv"})
    (data(project)).mkdir(parents=True)
    (data(project) / "manifest.json").write_text('{"weather": ')
    result = retrieve(project)
    assert result.returncode == 2
    assert "manifest.json: not valid JSON" in result.stderr
    assert (data(project) / "manifest.json").read_text() == '{"weather": '


def test_no_sources_is_a_skip(project: Project) -> None:
    project.config(sources=[])
    result = retrieve(project)
    assert result.returncode == 10
    assert "no sources" in result.stdout
