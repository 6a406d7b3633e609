"""Reading run records: newest first by name, stopping early; `history`; --resume's record."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import OK, ORCHESTRATOR, Project, fail
from runner_model import Runner

from gitcron import history, records
from gitcron.codes import FatalError


def record(run_id: str, status: str = "success", modules: Any = None, **extra: Any
           ) -> dict[str, Any]:
    """A run record as the orchestrator writes it; `extra` adds or replaces keys."""
    hour, minute = run_id[9:11], run_id[12:14]
    data = {
        "run_id": run_id, "status": status,
        "started": f"{run_id[:4]}-{run_id[4:6]}-{run_id[6:8]}T{hour}:{minute}:00+00:00",
        "finished": "", "duration_seconds": 12.5, "dry_run": False, "trigger": "schedule",
        "last_run_date_before": None, "log_file": f"data and logs/workflow_{run_id}.log",
        "modules": modules if modules is not None else [
            {"name": "1.fetch", "status": "success", "duration_seconds": 3.0, "attempts": 1,
             "exit_code": 0},
            {"name": "2.load", "status": "failed" if status == "failed" else "success",
             "duration_seconds": 9.0, "attempts": 2, "exit_code": 1 if status == "failed" else 0},
        ],
    }
    data.update(extra)
    return data


def write(log_dir: Path, run_id: str, content: Any = None, **keys: Any) -> Path:
    log_dir.mkdir(parents=True, exist_ok=True)
    path = log_dir / f"workflow_{run_id}.json"
    text = content if isinstance(content, str) else json.dumps(
        content if content is not None else record(run_id, **keys))
    path.write_text(text)
    return path


def many(source: Path, log_dir: Path, count: int) -> None:
    """`count` records in 2026, one a minute, all hard links to `source`: creating
    10,000 files one by one is slow on some disks."""
    for i in range(count):
        day, rest = divmod(i, 24 * 60)
        os.link(source, log_dir / f"workflow_2026{1 + day // 28:02d}{1 + day % 28:02d}_"
                                  f"{rest // 60:02d}h{rest % 60:02d}.json")


def ids(pairs: Any) -> list[str]:
    return [path.name for path, _ in pairs]


@pytest.fixture
def logs(project: Project) -> Path:
    project.config()
    return project.log_dir


def run_history(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    """`orchestrator.py history --config ... ARGS` as a real process."""
    return subprocess.run(
        [sys.executable, str(ORCHESTRATOR), "history", "--config", str(project.config_path),
         *args], cwd=project.root, capture_output=True, text=True, timeout=60,
        stdin=subprocess.DEVNULL)


# Reading records


def test_records_come_newest_first_by_run_id_with_suffixes_as_numbers(logs: Path) -> None:
    for run_id in ("20261123_06h00", "20261123_06h00_2", "20261123_06h00_10",
                   "20261123_06h00_9", "20261122_23h59", "20270101_00h00"):
        write(logs, run_id)
    assert ids(records.records_newest_first(logs)) == [
        "workflow_20270101_00h00.json", "workflow_20261123_06h00_10.json",
        "workflow_20261123_06h00_9.json", "workflow_20261123_06h00_2.json",
        "workflow_20261123_06h00.json", "workflow_20261122_23h59.json"]


def test_records_past_the_newest_few_keep_the_order(logs: Path) -> None:
    """More names than are taken in the first pass: logs, foreign names that sort
    above every run, and a minute of `_2`..`_12` that the cut falls inside."""
    expected = [f"20261123_06h59_{n}" for n in range(20, 1, -1)] + ["20261123_06h59"]
    expected += [f"20261123_06h{m:02d}" for m in range(58, -1, -1)]
    expected += [f"20261123_05h{m:02d}" for m in range(59, -1, -1)]
    for run_id in expected:
        write(logs, run_id)
        (logs / f"workflow_{run_id}.log").write_text("")
    for name in ("zzz.json", "workflow_zzz.json", "x.txt"):
        (logs / name).write_text("{}")
    assert len(os.listdir(logs)) > 4 * records.HEAD
    assert ids(records.records_newest_first(logs)) == [
        f"workflow_{run_id}.json" for run_id in expected]


def test_unreadable_and_foreign_files_are_passed_over_and_counted(logs: Path) -> None:
    write(logs, "20261123_06h00")
    write(logs, "20261123_07h00", "{not json")
    write(logs, "20261123_08h00", [1, 2])
    write(logs, "20261123_09h00", {"run_id": "x"})  # no modules: not a run record
    write(logs, "20261123_10h00", "[" * 100_000)  # nested too deep for the parser
    (logs / "workflow_20261123_11h00.json").mkdir()
    (logs / "workflow_20261123_12h00.json").write_bytes(b"\xff\xfe")
    (logs / "workflow_backup.json").write_text("{}")  # not a run id: never looked at
    (logs / "notes.json").write_text("{}")
    (logs / "runs" / "20261123_13h00").mkdir(parents=True)  # only the top level counts
    write(logs / "runs", "20261123_13h00")
    skipped: list[Path] = []
    found = list(records.records_newest_first(logs, skipped))
    assert ids(found) == ["workflow_20261123_06h00.json"]
    assert len(skipped) == 6


def test_reading_stops_at_what_is_asked(logs: Path) -> None:
    """10,000 records, all but the newest three broken: asking for three reads none of them."""
    logs.mkdir(parents=True)
    broken = logs / "broken"
    broken.write_text("broken")
    many(broken, logs, 10_000)
    for run_id in ("20270101_00h00", "20270101_00h01", "20270101_00h02"):
        write(logs, run_id)
    skipped: list[Path] = []
    reader = records.records_newest_first(logs, skipped)
    assert [next(reader)[1]["run_id"] for _ in range(3)] == [
        "20270101_00h02", "20270101_00h01", "20270101_00h00"]
    assert skipped == []


def test_a_missing_log_dir_has_no_records(tmp_path: Path) -> None:
    assert list(records.records_newest_first(tmp_path / "none")) == []
    assert records.resume_record(tmp_path / "none") is None


def test_resume_record_passes_over_dry_runs_and_backfills(logs: Path) -> None:
    write(logs, "20261123_06h00", status="failed")
    write(logs, "20261123_07h00", status="success", dry_run=True)
    write(logs, "20261123_08h00", status="success", backfill=True)
    found = records.resume_record(logs)
    assert found is not None and found[1]["run_id"] == "20261123_06h00"


def test_resume_record_takes_old_records_without_the_new_keys(logs: Path) -> None:
    old = record("20261123_06h00", "failed")
    del old["dry_run"], old["trigger"]
    write(logs, "20261123_06h00", old)
    found = records.resume_record(logs)
    assert found is not None and found[1]["status"] == "failed"


def test_resume_after_real_runs_ignores_a_newer_dry_run(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", fail())
    project.module("3.c.py", OK)
    project.config()
    assert project.run("--no-push").returncode == 1
    project.module("2.b.py", OK)
    assert project.run("--no-push", "--dry-run").returncode == 0
    listed = project.run("--resume", "--list")
    assert listed.returncode == 0, listed.stderr
    assert [line.split()[1] for line in listed.stdout.splitlines()[1:3]] == ["2.b", "3.c"]


# `history`


def test_history_of_real_runs_is_a_table_with_marks_and_a_summary(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", "import sys\nsys.exit(10)\n")
    project.module("3.c.py", "import os, sys\nsys.exit(3 if os.path.exists('fail') else 0)\n")
    project.config()
    assert project.run("--no-push").returncode == 0
    (project.root / "fail").touch()
    assert project.run("--no-push").returncode == 1
    (project.root / "fail").unlink()
    assert project.run("--no-push").returncode == 0
    result = run_history(project)
    assert result.returncode == 0 and result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "id", "trigger", "status", "duration", "modules"]
    assert [line.split()[2] for line in lines[1:4]] == ["success", "failed", "success"]
    assert [line.split()[4] for line in lines[1:4]] == ["✓↷✓", "✓↷✗", "✓↷✓"]
    assert "(failed: 3.c)" in lines[2]
    assert lines[4].startswith("3 runs: success rate 67% (2 of 3), median duration ")
    assert "\033[" not in result.stdout


def test_history_marks_every_module_status_and_notes_what_was_special(logs: Path) -> None:
    modules = [{"name": f"{i}.m", "status": status} for i, status in
               enumerate(("success", "skipped", "failed", "recovered", "not_run", "odd"), 1)]
    write(logs, "20261123_06h00", record("20261123_06h00", "partial", modules, force=True,
                                         selection={"resume_of": "20261122_06h00"}))
    lines = history.history_lines(list(records.records_newest_first(logs)), logs,
                                  history.Style(False, history.MARKS))
    assert "✓↷✗↺·?  (failed: 3.m; recovered: 4.m; forced; resumes 20261122_06h00)" in lines[1]
    assert lines[2] == "1 run: success rate 0% (0 of 1), median duration 12.5s"


def test_history_names_a_run_by_its_file_when_its_record_leaves_the_id_empty(logs: Path
                                                                          ) -> None:
    write(logs, "20261123_06h00", dict(record("20261123_06h00"), run_id="", trigger=""))
    lines = history.history_lines(list(records.records_newest_first(logs)), logs,
                                  history.Style(False, history.MARKS))
    assert lines[1].startswith("20261123_06h00  ?  ")


def test_history_n_takes_the_newest_and_the_median_over_them(logs: Path, project: Project
                                                           ) -> None:
    for i, seconds in enumerate((100, 1, 2, 3)):
        write(logs, f"20261123_0{i}h00", duration_seconds=seconds)
    result = run_history(project, "-n", "3")
    lines = result.stdout.splitlines()
    assert [line.split()[0] for line in lines[1:4]] == [
        "20261123_03h00", "20261123_02h00", "20261123_01h00"]
    assert lines[4] == "3 runs: success rate 100% (3 of 3), median duration 2.0s"


def test_old_hand_edited_and_unparsable_records_cost_one_warning(logs: Path, project: Project
                                                                ) -> None:
    write(logs, "20261123_06h00", {"modules": [], "status": None})  # a very old record
    write(logs, "20261123_07h00", record("20261123_07h00", modules=["junk", 3],
                                         duration_seconds="long", trigger=None))
    write(logs, "20261123_08h00", "{")
    write(logs, "20261123_09h00", "null")
    result = run_history(project)
    assert result.returncode == 0
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("history: skipped 2 unreadable or foreign records (e.g. ")
    lines = result.stdout.splitlines()
    assert lines[1].split() == ["20261123_07h00", "?", "success", "?", "??"]
    assert lines[2].split() == ["20261123_06h00", "?", "?", "?"]
    assert lines[3] == "2 runs: success rate 50% (1 of 2), median duration ?"


def test_history_json_is_one_record_a_line_newest_first(logs: Path, project: Project) -> None:
    for hour in range(5):
        write(logs, f"20261123_0{hour}h00")
    result = run_history(project, "--json", "-n", "2")
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["run_id"] for row in rows] == ["20261123_04h00", "20261123_03h00"]
    assert rows[0] == record("20261123_04h00")


def test_history_without_records_says_so(logs: Path, project: Project) -> None:
    result = run_history(project)
    assert result.returncode == 0 and result.stdout.startswith("no run records in ")


@pytest.mark.parametrize("name", ["2.load", "load", "2", "02"])
def test_history_module_by_any_of_its_names(logs: Path, project: Project, name: str) -> None:
    write(logs, "20261123_06h00")
    write(logs, "20261123_07h00", status="failed")
    write(logs, "20261123_08h00", modules=[{"name": "1.fetch", "status": "success"}])
    result = run_history(project, "--module", name)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["run", "id", "status", "duration", "attempts", "exit", "code"]
    assert lines[1].split()[:2] == ["20261123_08h00", "not"]
    assert lines[2].split() == ["20261123_07h00", "failed", "9.0s", "2", "1"]
    assert lines[3].split() == ["20261123_06h00", "success", "9.0s", "2", "0"]
    assert lines[4] == "2.load in 2 runs: success rate 50% (1 of 2), median duration 9.0s"


def test_history_module_json(logs: Path, project: Project) -> None:
    write(logs, "20261123_06h00")
    rows = [json.loads(line) for line in
            run_history(project, "--module", "fetch", "--json").stdout.splitlines()]
    assert rows == [{"run_id": "20261123_06h00", "started": "2026-11-23T06:00:00+00:00",
                     "run_status": "success", "module": record("20261123_06h00")["modules"][0]}]


def test_history_unknown_module_is_one_line_naming_the_known(logs: Path, project: Project
                                                            ) -> None:
    write(logs, "20261123_06h00")
    result = run_history(project, "--module", "nope")
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr == ("orchestrator: --module: no module 'nope' in the newest 1 runs; "
                             "modules seen: 1.fetch, 2.load\n")


@pytest.mark.parametrize("args", [["-n", "0"], ["-n", "x"], ["-n", "-3"], ["--bogus"]])
def test_history_bad_arguments_are_one_line_and_exit_2(logs: Path, project: Project,
                                                       args: list[str]) -> None:
    result = run_history(project, *args)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and "orchestrator.py history: " in result.stderr


def test_history_with_a_broken_config_is_one_line(project: Project) -> None:
    project.config_path.write_text("{")
    result = run_history(project)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "config.json: not valid JSON" in result.stderr


def test_history_into_a_closed_pipe_ends_quietly(logs: Path, project: Project) -> None:
    many(write(logs, "20250101_00h00"), logs, 3000)
    command = [sys.executable, str(ORCHESTRATOR), "history", "-n", "3000", "--config",
               str(project.config_path)]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          cwd=project.root) as process:
        assert process.stdout is not None and process.stderr is not None
        process.stdout.readline()
        process.stdout.close()
        stderr = process.stderr.read()
        assert process.wait(timeout=60) == 0
    assert stderr == b""


def test_colour_only_on_a_terminal_and_never_with_no_color() -> None:
    leader, follower = os.openpty()
    try:
        with open(follower, "w", encoding="utf-8", closefd=False) as terminal:
            assert history.terminal_style(terminal, {}).colour is True
            assert history.terminal_style(terminal, {"NO_COLOR": "1"}).colour is False
            assert history.terminal_style(terminal, {"NO_COLOR": ""}).colour is True
    finally:
        os.close(leader)
        os.close(follower)
    assert history.terminal_style(io.StringIO(), {}).colour is False
    painted = history.Style(True, history.MARKS)
    assert painted.paint("failed", "failed") == "\033[31mfailed\033[0m"


def test_a_stream_that_cannot_show_the_marks_gets_ascii() -> None:
    stream = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    assert history.terminal_style(stream, {}).marks == history.ASCII_MARKS


def test_an_unlistable_log_dir_is_a_fatal_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(FatalError, match="cannot list the run records"):
        records.record_files_newest_first(tmp_path / "file")


def test_a_hostile_record_cannot_act_on_the_runner_or_the_terminal(project: Project,
                                                                  tmp_path: Path) -> None:
    """Records are files a module can write: their text is shown, never obeyed."""
    project.config({})
    project.log_dir.mkdir(parents=True)
    (project.log_dir / "workflow_20991231_23h59.json").write_text(json.dumps({
        "run_id": "20991231_23h59\n::add-path::/h1", "status": "failed\r::add-path::/h2",
        "trigger": "::set-env name=a::b\x1b]52;c;aGk=\x07", "started": "2099-12-31T23:59:00+00:00",
        "modules": [{"name": "\n::add-path::/h3", "status": "failed"}]}))
    for command in ("history", "status"):
        result = subprocess.run([sys.executable, str(ORCHESTRATOR), command, "--config",
                                 str(project.config_path)], capture_output=True, text=True,
                                env=dict(os.environ, GITHUB_ACTIONS="true"), timeout=60)
        assert "\x1b" not in result.stdout and "\r" not in result.stdout
        acted = [c.name for c in Runner().feed(result.stdout)]
        assert set(acted) <= {"stop-commands", *(c.data for c in Runner().feed(result.stdout)
                                                  if c.name == "stop-commands")}, acted
        assert "\\x0a::add-path::/h1" in result.stdout


def test_a_module_that_skipped_counts_as_done_in_its_success_rate() -> None:
    assert history._summary(3, ["success", "skipped", "failed"], [1.0, 2.0, 3.0],
                            good_statuses=("success", "skipped")).startswith(
        "3 runs: success rate 67% (2 of 3)")


def test_the_success_rate_counts_whole_runs_and_the_others_apart(project: Project) -> None:
    """Real runs: two whole (one failed), one narrowed, one dry run, one backfill."""
    project.module("1.a.py", OK)
    project.module("2.b.py", "import os, sys\nsys.exit(3 if os.path.exists('fail') else 0)\n")
    project.config()
    assert project.run("--no-push").returncode == 0
    (project.root / "fail").touch()
    assert project.run("--no-push").returncode == 1
    assert project.run("--no-push", "--only", "a").returncode == 0
    assert project.run("--no-push", "--dry-run").returncode == 1
    assert project.run("--no-push", "--since", "2026-01-01", "--until", "2026-01-02"
                       ).returncode == 1
    lines = run_history(project).stdout.splitlines()
    assert "(narrowed: --only 1.a)" in lines[3] or "(narrowed: --only a)" in lines[3]
    assert lines[-1].startswith("5 runs: success rate 50% (1 of 2 whole runs), median duration ")
    assert lines[-1].endswith("; not counted: 1 narrowed (1 succeeded), 1 dry run "
                              "(0 succeeded), 1 backfill (0 succeeded)")
