"""Finishing what failed by running the same command again: a backfill skips the
intervals an earlier backfill did, and `--resume --list` shows what `--resume`
would do. Real runs of a real orchestrator process."""

from __future__ import annotations

from conftest import OK, Project

from gitcron.codes import EXIT_FAILED, EXIT_OK

# Fails for the window that starts on the day named in the file `fail-on`, if any;
# writes every window it sees to `seen.txt`.
BY_WINDOW = """\
import os, pathlib, sys
start = os.environ["PIPELINE_WINDOW_START"]
with open("seen.txt", "a") as seen:
    seen.write(start[:10] + "\\n")
marker = pathlib.Path("fail-on")
if marker.exists() and start.startswith(marker.read_text().strip()):
    sys.exit(3)
sys.exit(int(os.environ.get("EXIT_CODE", "0")))
"""
BACKFILL = ("--since", "2026-01-01", "--until", "2026-01-05", "--every", "1d")


def windowed(project: Project) -> None:
    project.module("1.load.py", BY_WINDOW)
    project.config()


def seen(project: Project) -> list[str]:
    path = project.root / "seen.txt"
    found = path.read_text().split() if path.exists() else []
    path.unlink(missing_ok=True)
    return found


def test_the_same_backfill_again_runs_only_what_is_left(project: Project) -> None:
    windowed(project)
    (project.root / "fail-on").write_text("2026-01-03")
    first = project.run(*BACKFILL)
    assert first.returncode == EXIT_FAILED
    assert seen(project) == ["2026-01-01", "2026-01-02", "2026-01-03"]
    (project.root / "fail-on").unlink()
    again = project.run(*BACKFILL)
    assert again.returncode == EXIT_OK, again.stderr
    assert seen(project) == ["2026-01-03", "2026-01-04"]
    assert "| INFO     | orchestrator | 2 of 4 intervals already done; --force reruns them" \
        in again.stdout
    done = project.run(*BACKFILL)
    assert done.returncode == EXIT_OK and seen(project) == []
    assert done.stderr == "orchestrator: 4 of 4 intervals already done; --force reruns them\n"
    assert len(project.records()) == 5
    forced = project.run(*BACKFILL, "--force")
    assert forced.returncode == EXIT_OK
    assert seen(project) == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]


def test_a_partial_interval_is_done_and_a_dry_or_failed_one_is_not(project: Project) -> None:
    project.module("1.load.py", BY_WINDOW)
    project.config(modules=[{"path": "modules/1.load.py", "critical": False}])
    one = ("--since", "2026-01-01", "--until", "2026-01-02")
    assert project.run(*one, "--dry-run").returncode == EXIT_OK
    assert project.run(*one).returncode == EXIT_OK
    assert seen(project) == ["2026-01-01", "2026-01-01"]
    assert project.run(*one).stderr == (
        "orchestrator: 1 of 1 interval already done; --force reruns them\n")
    other = ("--since", "2026-02-01", "--until", "2026-02-02")
    assert project.run(*other, env={"EXIT_CODE": "3"}).returncode == EXIT_OK  # partial
    assert project.records()[-1]["status"] == "partial"
    assert project.run(*other).stderr.endswith("1 of 1 interval already done; --force reruns "
                                               "them\n")
    assert seen(project) == ["2026-02-01"]


def test_a_scheduled_run_is_no_backfill_of_its_window(project: Project) -> None:
    """Only a backfill's record says an interval was backfilled."""
    windowed(project)
    assert project.run().returncode == EXIT_OK
    record = project.record()
    window = record["window"]
    assert window["start"] is None
    # The window a backfill up to the scheduled run's end would use is not done.
    result = project.run("--since", "2025-12-01", "--until", window["end"])
    assert result.returncode == EXIT_OK and "already done" not in result.stdout + result.stderr


def test_resume_list_shows_the_window_of_the_run_it_resumes(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", "import sys\nsys.exit(3)\n")
    project.config(last_run_date="2026-11-22T06:00:00+00:00")
    assert project.run().returncode == EXIT_FAILED
    failed = project.record()
    listed = project.run("--resume", "--list")
    assert listed.returncode == EXIT_OK, listed.stderr
    lines = listed.stdout.splitlines()
    assert [line.split()[1] for line in lines[1:] if line[:1].isdigit()] == ["2.b"]
    assert lines[-1] == (f"resuming run {failed['run_id']}, with its window: "
                         f"2026-11-22T06:00:00+00:00 -> {failed['window']['end']}")
    assert len(project.records()) == 1  # nothing ran


def test_resume_list_with_nothing_to_resume_says_so_as_resume_does(project: Project) -> None:
    project.module("1.a.py", OK)
    project.config()
    assert project.run().returncode == EXIT_OK
    listed = project.run("--resume", "--list")
    resumed = project.run("--resume")
    assert listed.returncode == resumed.returncode == EXIT_OK
    assert listed.stdout == ""
    assert "nothing to resume" in listed.stderr
    assert listed.stderr == resumed.stderr
    assert len(project.records()) == 1

