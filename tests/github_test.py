"""GitHub Actions: the workflows, and a run as the Actions UI shows it."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Project
from gitsync_test import clone, git, remote  # noqa: F401  (remote is a fixture)

from pipeline import github
from pipeline.codes import EXIT_INTERRUPTED, EXIT_OK

WORKFLOWS = REPO / ".github" / "workflows"


def load_workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` as true
    return data


def test_pipeline_workflow_triggers_permissions_and_concurrency() -> None:
    flow = load_workflow("pipeline.yml")
    assert "cron" in flow["on"]["schedule"][0]
    assert set(flow["on"]["workflow_dispatch"]["inputs"]) == {"only", "from", "dry_run", "force"}
    assert flow["permissions"] == {"contents": "write"}
    assert flow["concurrency"]["cancel-in-progress"] is False
    assert "github.ref" in flow["concurrency"]["group"]
    job = flow["jobs"]["run"]
    assert job["timeout-minutes"] > 0
    steps = job["steps"]
    assert steps[0]["with"]["persist-credentials"] is False
    assert any(s.get("with", {}).get("cache") == "pip" for s in steps)
    run_step = next(s for s in steps if "orchestrator.py" in s.get("run", ""))
    assert run_step["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"


@pytest.mark.parametrize("name", ["pipeline.yml", "tests.yml"])
def test_no_expression_is_pasted_into_a_script(name: str) -> None:
    """`${{ inputs.x }}` inside `run:` is a script-injection hole: use env instead."""
    for job in load_workflow(name)["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step


def test_tests_workflow_runs_on_push_and_pull_request_on_supported_pythons() -> None:
    flow = load_workflow("tests.yml")
    assert set(flow["on"]) == {"push", "pull_request"}
    versions = flow["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    assert "3.10" in versions and len(versions) >= 3
    assert any("pytest" in s.get("run", "") for s in flow["jobs"]["test"]["steps"])


def actions_env(tmp_path: Path) -> dict[str, str]:
    return {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "GITHUB_OUTPUT": str(tmp_path / "output.txt"), "GITHUB_EVENT_NAME": "schedule",
            "GITHUB_REPOSITORY": "owner/repo"}


def test_groups_annotations_summary_and_outputs(project: Project, tmp_path: Path) -> None:
    project.module("01.ok.py", "print('fine')\n")
    for i in range(2, 14):  # twelve failing non-critical modules: more than GitHub shows
        project.module(f"{i:02d}.bad.py", f"import sys\nprint('oops {i} secretvalue', "
                       "file=sys.stderr)\nsys.exit(5)\n")
    project.config(modules=["modules/01.ok.py"] + [
        {"path": f"modules/{i:02d}.bad.py", "critical": False} for i in range(2, 14)])
    env = actions_env(tmp_path)
    result = project.run("--no-push", env=dict(env, MY_SECRET="secretvalue"))
    assert result.returncode == EXIT_OK
    out = result.stdout
    starts = [ln for ln in out.splitlines() if ln.startswith("::group::")]
    ends = [ln for ln in out.splitlines() if ln == "::endgroup::"]
    assert starts[0] == "::group::[1/13] 01.ok" and starts[-1] == "::group::[13/13] 13.bad"
    assert len(starts) == len(ends) == 13
    depth = 0
    for line in out.splitlines():  # groups never nest
        depth += line.startswith("::group::") - (line == "::endgroup::")
        assert depth in (0, 1)
    warnings = [ln for ln in out.splitlines() if ln.startswith("::warning ")]
    assert len(warnings) == github.MAX_ANNOTATIONS
    assert warnings[0] == ("::warning title=02.bad::02.bad (non-critical) failed: exit code 5; "
                           "last stderr line: oops 2 ***")
    assert warnings[-1].startswith("::warning title=3 more failed modules::3 more modules failed:")
    assert not any(ln.startswith("::error ") for ln in out.splitlines())

    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "Pipeline run `" in summary and "**partial**" in summary
    assert "| 1 | `01.ok` | success |" in summary
    assert re.search(r"\| 13 \| `13.bad` \| failed \| [\d.]+ s \| 1 \| 5 \|", summary)
    assert "```mermaid\ngantt\n" in summary and "13.bad (failed) :crit, m13," in summary
    assert "secretvalue" not in summary + out

    outputs = dict(ln.split("=", 1) for ln in Path(env["GITHUB_OUTPUT"]).read_text().splitlines())
    record = project.record()
    assert outputs == {"status": "partial", "run_id": record["run_id"],
                       "log_file": record["log_file"],
                       "record_file": f"data and logs/workflow_{record['run_id']}.json"}


def test_a_critical_failure_is_an_error_annotation(project: Project, tmp_path: Path) -> None:
    project.module("1.bad.py", "import sys\nprint('50% done,\\nthen: failed', file=sys.stderr)\n"
                   "sys.exit(2)\n")
    project.config({})
    result = project.run("--no-push", env=actions_env(tmp_path))
    errors = [ln for ln in result.stdout.splitlines() if ln.startswith("::error ")]
    assert errors == ["::error title=1.bad::1.bad (critical) failed: exit code 2; "
                      "last stderr line: then: failed"]


def test_outside_actions_nothing_is_written(project: Project, tmp_path: Path) -> None:
    project.module("1.a.py", "print('x')\n")
    project.config({})
    env = dict(actions_env(tmp_path), GITHUB_ACTIONS="false")
    result = project.run("--no-push", env=env)
    assert "::group::" not in result.stdout
    assert not Path(env["GITHUB_STEP_SUMMARY"]).exists()
    assert not Path(env["GITHUB_OUTPUT"]).exists()


def fake_record(modules: int) -> dict:
    started = "2026-11-23T06:00:00.000+00:00"
    return {"run_id": "20261123_06h00", "status": "failed", "duration_seconds": 9.0,
            "trigger": "schedule", "log_file": "data and logs/workflow_20261123_06h00.log",
            "modules": [{"name": f"{i}.module_with_a_rather_long_name_{'x' * 80}",
                         "status": "failed", "started": started,
                         "finished": "2026-11-23T06:00:01.000+00:00", "duration_seconds": 1.0,
                         "attempts": 1, "exit_code": 1, "timed_out": False}
                        for i in range(modules)]}


def test_the_summary_stays_under_githubs_limit_however_many_modules() -> None:
    text = github.step_summary(fake_record(20_000), "https://github.com/o/r/blob/abc/x.log")
    assert len(text.encode()) < 1024 * 1024
    assert "more modules" in text
    assert text.count(":crit, m") == github.MAX_GANTT_TASKS
    assert "[data and logs/workflow_20261123_06h00.log](https://github.com/o/r/blob/abc/x.log)" \
        in text


def test_the_log_link_points_at_the_pushed_commit() -> None:
    actions = github.Actions({"GITHUB_ACTIONS": "true", "GITHUB_REPOSITORY": "o/r",
                              "GITHUB_SERVER_URL": "https://ghe.example.com"}, lambda t: t)
    assert actions.log_link("abc123", "data and logs/w.log") == (
        "https://ghe.example.com/o/r/blob/abc123/data%20and%20logs/w.log")
    assert actions.log_link(None, "x.log") is None


def test_a_cancelled_workflow_still_pushes_its_log(remote: Path) -> None:  # noqa: F811
    """GitHub cancels with SIGINT, then SIGTERM 7.5 s later, then kills 2.5 s after."""
    project = clone(remote, "work clone")
    started = project.root / "started"
    project.module("1.a.py", f"""
        import signal, time
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a module slow to stop
        open({str(started)!r}, "w").close()
        time.sleep(600)
    """)
    git(project.root, "add", ".")
    git(project.root, "commit", "-q", "-m", "a slow module")
    git(project.root, "push", "-q")
    proc = subprocess.Popen(project.command(), cwd=project.root, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    while not started.exists():
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=7.5)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    try:
        out, err = proc.communicate(timeout=2.5)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("still running 10 s after SIGINT: GitHub would have killed it")
    assert proc.returncode == EXIT_INTERRUPTED, out + err
    run_id = project.record()["run_id"]
    log = git(remote, "show", f"main:data and logs/workflow_{run_id}.log")
    assert "| 1.a | failed (critical): interrupted" in log
    record = git(remote, "show", f"main:data and logs/workflow_{run_id}.json")
    assert '"status": "interrupted"' in record
