"""Time windows and backfills: the arithmetic, and real runs that hand them to modules."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
from conftest import Project

from gitcron import window as windows
from gitcron.codes import EXIT_FAILED, EXIT_OK, EXIT_USAGE, FatalError
from gitcron.config import zone

BERLIN = zone("Europe/Berlin")


def real(moment: datetime) -> datetime:
    """In UTC: Python subtracts two times of one zone as wall-clock times."""
    return moment.astimezone(timezone.utc)


PRINT_WINDOW = """\
import os
print("window", os.environ["PIPELINE_WINDOW_START"] or "-", os.environ["PIPELINE_WINDOW_END"])
"""


def test_a_window_across_the_spring_change_is_exactly_its_length_in_real_time() -> None:
    # Berlin goes from +01:00 to +02:00 at 02:00 local on 2026-03-29.
    started = datetime(2026, 3, 29, 4, 0, tzinfo=BERLIN)
    window = windows.default(None, started, 180, BERLIN)
    assert window.end.isoformat() == "2026-03-29T04:00:00+02:00"
    assert window.start is not None
    assert window.start.isoformat() == "2026-03-29T00:00:00+01:00"  # 3 h of real time
    assert real(window.end) - real(window.start) == timedelta(hours=3)


def test_intervals_across_the_autumn_change_each_last_one_hour() -> None:
    since = windows.parse_time("2026-10-25T01:00:00+02:00", "--since", BERLIN)
    until = windows.parse_time("2026-10-25T04:00:00+01:00", "--until", BERLIN)
    got = list(windows.intervals(since, until, timedelta(hours=1), BERLIN))
    assert [w.as_record()["start"] for w in got] == [
        "2026-10-25T01:00:00+02:00", "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:00:00+01:00", "2026-10-25T03:00:00+01:00"]
    assert all(real(w.end) - real(w.start) == timedelta(hours=1) for w in got if w.start)


def test_intervals_across_a_year_boundary_and_a_short_last_one() -> None:
    since = windows.parse_time("2026-12-30", "--since", timezone.utc)
    until = windows.parse_time("2027-01-01T12:00", "--until", timezone.utc)
    got = [w.as_record() for w in windows.intervals(since, until, timedelta(days=1), timezone.utc)]
    assert got == [
        {"start": "2026-12-30T00:00:00+00:00", "end": "2026-12-31T00:00:00+00:00"},
        {"start": "2026-12-31T00:00:00+00:00", "end": "2027-01-01T00:00:00+00:00"},
        {"start": "2027-01-01T00:00:00+00:00", "end": "2027-01-01T12:00:00+00:00"},
    ]


def test_a_time_without_offset_is_in_the_configured_zone() -> None:
    assert windows.parse_time("2026-07-01T06:00", "--since", BERLIN).isoformat() == (
        "2026-07-01T06:00:00+02:00")
    assert windows.parse_time("2026-07-01T06:00Z", "--since", BERLIN).isoformat() == (
        "2026-07-01T08:00:00+02:00")


@pytest.mark.parametrize(("text", "words"), [
    ("yesterday", "--since: 'yesterday' is not an ISO 8601 date"),
    ("2026-13-01", "--since: '2026-13-01' is not an ISO 8601 date"),
    ("", "--since: '' is not an ISO 8601"),
])
def test_a_time_that_does_not_parse_names_the_option(text: str, words: str) -> None:
    with pytest.raises(FatalError, match=words):
        windows.parse_time(text, "--since", timezone.utc)


@pytest.mark.parametrize("text", ["0d", "1w", "d", "-1h", "1.5h", "٣d"])
def test_every_takes_minutes_hours_or_days(text: str) -> None:
    with pytest.raises(FatalError, match="--every: .* is not a duration"):
        windows.parse_every(text)
    assert windows.parse_every("90m") == timedelta(minutes=90)


def test_default_window_runs_from_last_run_date_to_the_start(project: Project) -> None:
    project.module("1.a.py", PRINT_WINDOW)
    project.module("2.b.py", PRINT_WINDOW)
    project.config(last_run_date="2026-01-01T00:00:00+00:00", timezone="Asia/Tokyo")
    assert project.run().returncode == EXIT_OK
    record = project.record()
    assert record["window"]["start"] == "2026-01-01T09:00:00+09:00"
    assert record["window"]["end"] == record["started"][:19] + "+09:00"
    lines = [ln.split("| ")[-1] for ln in project.log_text().splitlines() if "| window " in ln]
    assert len(lines) == 2 and lines[0] == lines[1]  # the same window for every module
    assert lines[0] == f"window {record['window']['start']} {record['window']['end']}"


def test_without_last_run_date_the_start_is_empty(project: Project) -> None:
    project.module("1.a.py", PRINT_WINDOW)
    project.config({})
    assert project.run().returncode == EXIT_OK
    assert project.record()["window"]["start"] is None
    assert "| 1.a | window - " in project.log_text()


def test_window_minutes_and_the_option(project: Project) -> None:
    project.module("1.a.py", PRINT_WINDOW)
    project.config(window_minutes=120, last_run_date="2026-01-01T00:00:00+00:00")
    assert project.run("--window", "30").returncode == EXIT_OK
    window = project.record()["window"]
    length = datetime.fromisoformat(window["end"]) - datetime.fromisoformat(window["start"])
    assert length == timedelta(minutes=30)


def test_a_backfill_runs_each_interval_oldest_first_and_keeps_the_state(project: Project) -> None:
    project.module("1.a.py", PRINT_WINDOW)
    project.config(last_run_date="2026-11-20T00:00:00+00:00")
    result = project.run("--since", "2026-11-01", "--until", "2026-11-04", "--every", "1d")
    assert result.returncode == EXIT_OK, result.stderr
    records = sorted(project.records(), key=lambda r: r["run_id"])
    assert [r["window"]["start"][:10] for r in records] == ["2026-11-01", "2026-11-02",
                                                           "2026-11-03"]
    assert all(r["backfill"] and r["status"] == "success" for r in records)
    assert len(project.logs()) == 3  # each its own log and record
    assert project.read_config()["last_run_date"] == "2026-11-20T00:00:00+00:00"
    assert "a backfill" in project.logs()[0].read_text()


def test_a_backfill_stops_at_the_first_failed_interval(project: Project) -> None:
    project.module("1.a.py", """\
        import os, sys
        print("window", os.environ["PIPELINE_WINDOW_START"])
        sys.exit(4 if os.environ["PIPELINE_WINDOW_START"].startswith("2026-11-02") else 0)
    """)
    project.config({})
    result = project.run("--since", "2026-11-01", "--until", "2026-11-04", "--every", "1d")
    assert result.returncode == EXIT_FAILED
    records = sorted(project.records(), key=lambda r: r["run_id"])
    assert [(r["window"]["start"][:10], r["status"]) for r in records] == [
        ("2026-11-01", "success"), ("2026-11-02", "failed")]
    assert "last_run_date" not in project.read_config()


def test_since_without_until_ends_now(project: Project) -> None:
    project.module("1.a.py", PRINT_WINDOW)
    project.config({})
    assert project.run("--since", "2026-11-01").returncode == EXIT_OK
    record = project.record()
    assert record["window"]["start"] == "2026-11-01T00:00:00+00:00"
    assert record["window"]["end"] <= record["started"]
    assert record["backfill"] is True


def test_list_prints_the_intervals_and_runs_nothing(project: Project) -> None:
    project.module("1.a.py", "open('ran', 'w')\n")
    project.config({})
    result = project.run("--list", "--since", "2026-11-01T00:00", "--until", "2026-11-01T12:00",
                         "--every", "6h")
    assert result.returncode == EXIT_OK
    assert result.stdout.splitlines()[-3:] == [
        "backfill: 2 runs, oldest first",
        "  1. 2026-11-01T00:00:00+00:00 -> 2026-11-01T06:00:00+00:00",
        "  2. 2026-11-01T06:00:00+00:00 -> 2026-11-01T12:00:00+00:00"]
    assert not (project.root / "ran").exists() and not project.log_dir.exists()


@pytest.mark.parametrize(("args", "words"), [
    (["--since", "2026-11-02", "--until", "2026-11-01"], "--since/--until: the window's start"),
    (["--since", "2026-11-01", "--until", "2026-11-01"], "is not before its end"),
    (["--since", "nope"], "--since: 'nope' is not an ISO 8601"),
    (["--since", "2026-11-01", "--until", "11/02/2026"], "--until: '11/02/2026' is not"),
    (["--until", "2026-11-01"], "--until: goes with --since"),
    (["--every", "1d"], "--every: goes with --since"),
    (["--since", "2026-11-01", "--every", "soon"], "--every: 'soon' is not a duration"),
    (["--since", "2026-11-01", "--window", "5"], "--window: not with --since"),
    (["--since", "2000-01-01", "--every", "1m"], "--every: .* intervals; at most 10000"),
    (["--since", "2026-01-01", "--until", "2026-01-02", "--every", "99999999999999999999d"],
     "--every: .* is longer than any window can be"),
    (["--since", "0001-01-01T00:00:00+14:00", "--until", "2026-01-02"],
     "--since: .* is outside the range of dates"),
    (["--window", "1e308"], "--window: .*at most 5270400"),
    (["--window", "nan"], "--window: 'nan': a number of minutes above 0"),
])
def test_bad_windows_exit_2_and_run_nothing(project: Project, args: list[str], words: str) -> None:
    project.module("1.a.py", "open('ran', 'w')\n")
    project.config({})
    result = project.run(*args)
    assert result.returncode == EXIT_USAGE
    assert len(result.stderr.splitlines()) == 1
    assert pytest.importorskip("re").search(words, result.stderr), result.stderr
    assert not (project.root / "ran").exists() and not project.log_dir.exists()


def test_the_window_option_must_be_a_positive_number(project: Project) -> None:
    project.module("1.a.py", "open('ran', 'w')\n")
    project.config({})
    result = project.run("--window", "0")
    assert result.returncode == EXIT_USAGE and "--window" in result.stderr
    assert json.loads(project.config_path.read_text()) == {}
