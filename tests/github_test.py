"""GitHub Actions: the workflows, and a run as the Actions UI shows it."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from conftest import REPO, Project
from gitsync_test import clone, git, remote  # noqa: F401  (remote is a fixture)
from runner_model import Runner, parse_file_command, split_lines, try_parse_legacy, try_parse_v2

from gitcron import github, scaffold
from gitcron.codes import EXIT_INTERRUPTED, EXIT_OK, EXIT_PUSH

WORKFLOWS = REPO / ".github" / "workflows"


def load_workflow(name: str) -> dict:
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True, data.get("on"))  # YAML 1.1 reads a bare `on` as true
    return data


WORKFLOW_NAMES = ["pipeline.yml", "tests.yml", "health.yml"]


def check_pipeline_workflow(flow: dict) -> tuple[dict, list[dict]]:
    """What the shipped workflow and the one `init` writes share; their inputs and steps."""
    minute, hour, *_ = flow["on"]["schedule"][0]["cron"].split()
    assert minute.isdigit() and int(minute) not in (0, 30)  # busy times on GitHub
    inputs = flow["on"]["workflow_dispatch"]["inputs"]
    assert set(inputs) == DISPATCH_INPUTS
    assert inputs["resume"]["type"] == "boolean"
    assert flow["permissions"] == {}
    assert flow["concurrency"]["cancel-in-progress"] is False
    assert "github.ref" in flow["concurrency"]["group"]
    job = flow["jobs"]["run"]
    assert job["permissions"] == {"contents": "write"}
    largest_module_timeout = 3600  # config.json's default_timeout_seconds
    assert job["timeout-minutes"] * 60 > largest_module_timeout
    steps = job["steps"]
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always() && steps.pipeline.outputs.run_dir != ''"
    assert upload["with"]["path"] == "${{ steps.pipeline.outputs.run_dir }}"
    return inputs, steps


DISPATCH_INPUTS = {"only", "from", "skip", "resume", "since", "until", "every", "dry_run",
                   "force"}


def test_the_pipeline_workflow_runs_this_repositorys_action() -> None:
    inputs, steps = check_pipeline_workflow(load_workflow("pipeline.yml"))
    step = next(s for s in steps if s.get("uses") == "./")
    assert step["id"] == "pipeline" and step["with"]["python-version"]
    for name in inputs:  # every dispatch input reaches the action
        assert step["with"][name] == f"${{{{ inputs.{name} }}}}"


def test_the_workflow_init_writes_runs_the_pinned_runner() -> None:
    flow = yaml.safe_load(scaffold.planned_files()[".github/workflows/pipeline.yml"])
    flow["on"] = flow.pop(True)
    inputs, steps = check_pipeline_workflow(flow)
    assert any(s.get("with", {}).get("cache") == "pip" for s in steps)
    assert any(s.get("run") == "pip install -r requirements.txt" for s in steps)
    run_step = next(s for s in steps if "orchestrator.py" in s.get("run", ""))
    assert run_step["id"] == "pipeline"
    assert run_step["env"]["GITHUB_TOKEN"] == "${{ secrets.GITHUB_TOKEN }}"
    for name in inputs:  # every input reaches the script through env
        assert f"${{{{ inputs.{name} }}}}" in run_step["env"].values()


def test_the_action_takes_the_dispatch_inputs_and_gives_the_runners_outputs() -> None:
    action = yaml.safe_load((REPO / "action.yml").read_text())
    assert set(action["inputs"]) >= DISPATCH_INPUTS | {"config", "python-version", "push"}
    assert action["inputs"]["token"]["default"] == "${{ github.token }}"
    outputs = {"status", "run_id", "log_file", "record_file", "run_dir", "pushed", "commit",
               "changed"}
    assert set(action["outputs"]) >= outputs
    for name in outputs:
        assert action["outputs"][name]["value"] == f"${{{{ steps.run.outputs.{name} }}}}"
    assert action["runs"]["using"] == "composite"
    steps = action["runs"]["steps"]
    setup = next(s for s in steps if s.get("uses", "").startswith("actions/setup-python@"))
    assert setup["if"] == "inputs.python-version != ''" and setup["with"]["cache"] == "pip"
    assert any('"$GITHUB_ACTION_PATH"' in s.get("run", "") for s in steps)  # its own folder
    run = next(s for s in steps if s.get("id") == "run")
    assert run["env"]["GITHUB_TOKEN"] == "${{ inputs.token }}"
    for name in set(action["inputs"]) - {"python-version", "token"}:
        assert f"${{{{ inputs.{name} }}}}" in run["env"].values(), name
    for step in steps:
        assert "${{" not in step.get("run", ""), step


def test_health_workflow_runs_status_read_only_on_its_own_schedule() -> None:
    flow = load_workflow("health.yml")
    assert flow["on"]["schedule"][0]["cron"] == scaffold.health_schedule(
        load_workflow("pipeline.yml")["on"]["schedule"][0]["cron"])
    assert flow["permissions"] == {}
    job = flow["jobs"]["status"]
    assert job["permissions"] == {"contents": "read"}
    assert any(s.get("run", "").startswith("python orchestrator.py status") for s in job["steps"])


@pytest.mark.parametrize("name", [*WORKFLOW_NAMES, "action.yml"])
def test_every_action_is_pinned_to_a_commit(name: str) -> None:
    path = REPO / name if name == "action.yml" else WORKFLOWS / name
    uses = re.findall(r"^\s*-?\s*uses:\s*(\S+)(.*)$", path.read_text(), re.M)
    assert uses
    for action, comment in uses:
        if action == "./":  # this repository's own action
            continue
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action
        assert re.fullmatch(r"\s*# v\d+\.\d+\.\d+", comment), (action, comment)


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_least_privilege_and_no_persisted_credentials(name: str) -> None:
    flow = load_workflow(name)
    assert flow["permissions"] == {}
    for job in flow["jobs"].values():
        assert "permissions" in job
        for step in job["steps"]:
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False


@pytest.mark.parametrize("name", WORKFLOW_NAMES)
def test_no_expression_is_pasted_into_a_script(name: str) -> None:
    """`${{ inputs.x }}` inside `run:` is a script-injection hole: use env instead."""
    for job in load_workflow(name)["jobs"].values():
        for step in job["steps"]:
            assert "${{" not in step.get("run", ""), step


def test_tests_workflow_runs_on_push_and_pull_request_on_supported_pythons() -> None:
    flow = load_workflow("tests.yml")
    assert set(flow["on"]) == {"push", "pull_request"}
    versions = flow["jobs"]["test"]["strategy"]["matrix"]["python-version"]
    assert versions[0] == "3.11" and len(versions) >= 3  # requires-python, cronsim 2.8
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

    outputs = parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text())
    record = project.record()
    assert outputs == {"status": "partial", "run_id": record["run_id"],
                       "log_file": record["log_file"],
                       "record_file": f"data and logs/workflow_{record['run_id']}.json",
                       "run_dir": record.get("run_dir") or "", "pushed": "false", "commit": "",
                       "changed": "false"}


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


# What a hostile module prints: each line would act on the runner if it reached
# the runner's parser as a command (a bare CR splits a line there; legacy
# ##[cmd] counts anywhere in a line; command names ignore case).
HOSTILE = r'''
import sys
print("progress 10%\r::stop-commands::x")
print("a,##[error]pwned")
print("::set-output name=x::y")
print("::add-path::/tmp/evil")
print("  ::SET-ENV name=A::b")
print("half\r##[add-path]/tmp/evil2")
print("::endgroup::")
print("::group::fake group")
print("::x::")
print("::warning::legit")
print("##[set-output name=z;]w", file=sys.stderr)
print("::error::from stderr", file=sys.stderr)
sys.exit(3)
'''


def test_the_runner_acts_on_no_command_a_module_prints(project: Project, tmp_path: Path) -> None:
    project.module("1.hostile.py", HOSTILE)
    project.module("2.after.py", "print('::add-path::/tmp/evil3')\n")
    project.config(modules=[{"path": "modules/1.hostile.py", "critical": False},
                            "modules/2.after.py"])
    result = project.run("--no-push", env=actions_env(tmp_path))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    console = result.stdout + result.stderr
    assert "a,##[error]pwned" in console and "/tmp/evil3" in console  # the output did arrive

    acted = Runner().feed(result.stdout) + Runner().feed(result.stderr)
    names = [c.name for c in acted]
    tokens = [c.data for c in acted if c.name == "stop-commands"]
    assert len(set(tokens)) == len(tokens) and all(len(t) == 32 for t in tokens)
    ours = {"group", "endgroup", "stop-commands", "warning", "error", *tokens}
    assert set(names) <= ours, [c.line for c in acted if c.name not in ours]
    # The module's own ::warning:: and ::error:: lines are annotations we make, titled
    # with its name; its failure is a warning (it is non-critical).
    assert [c.line for c in acted if c.name in ("warning", "error")] == [
        "::warning title=1.hostile::legit", "::error title=1.hostile::from stderr",
        "::warning title=1.hostile::1.hostile (non-critical) failed: exit code 3; "
        "last stderr line: ::error::from stderr"]
    assert [c.data for c in acted if c.name == "group"] == ["[1/2] 1.hostile", "[2/2] 2.after"]
    assert names.count("endgroup") == 2
    # The fence holds from the first line to the last: each of our commands is a
    # resume with the current token, the command, and a new fence.
    assert names[0] == "stop-commands" and names[-1] == tokens[-1]
    for i, name in enumerate(names):
        if name in ("group", "endgroup", "warning", "error"):
            assert names[i - 1] in tokens and names[i + 1] == "stop-commands", names[i - 1:i + 2]
    # Without the spans the runner would act on the module's lines: the model sees them
    # (but for the bare CR's line: sanitising keeps only what follows the CR, after our prefix).
    unguarded = "\n".join(ln for ln in result.stdout.splitlines()
                          if not any(t in ln for t in tokens)) + "\n"
    assert "| 1.hostile | ::stop-commands::x" in unguarded
    assert ("stop-commands", "x") not in [(c.name, c.data) for c in Runner().feed(unguarded)]
    unstopped = unguarded.replace("::stop-commands::x", "")
    hijacked = {c.name for c in Runner().feed(unstopped)}
    assert {"error", "add-path", "set-output"} <= hijacked
    warnings = [c for c in acted if c.name == "warning"]
    failure = ("1.hostile (non-critical) failed: exit code 3; "
               "last stderr line: ::error::from stderr")
    assert failure in [w.data for w in warnings]
    for warning in warnings:  # the failure, and the module's own warning once it is parsed
        assert (warning.properties, warning.data) in (
            ({"title": "1.hostile"}, failure), ({"title": "1.hostile"}, "legit")), warning.line


def test_the_fence_encloses_the_whole_run(project: Project, tmp_path: Path) -> None:
    project.module("1.a.py", "print('one')\n")
    project.module("2.b.py", "print('two')\n")
    project.config({})
    lines = project.run("--no-push", env=actions_env(tmp_path)).stdout.splitlines()
    assert lines[0].startswith("::stop-commands::")
    token = None
    for line in lines:  # every line is inside a fence but our own commands
        if line.startswith("::stop-commands::"):
            assert token is None
            token = line.removeprefix("::stop-commands::")
        elif token is not None and line == f"::{token}::":
            token = None
        elif line.startswith("::"):
            assert token is None, line  # our command: the fence was lifted for it
        else:
            assert token is not None, line  # text: inside the fence
    assert token is None  # lifted at the end, for the steps after this one
    assert any(ln.endswith("| 1.a | one") for ln in lines)


def test_the_runner_model_follows_the_runners_rules() -> None:
    assert split_lines("a\rb\r\nc\n\nd") == ["a", "b", "c", "", "d"]
    registered = {"warning", "error", "add-path", "stop-commands"}
    command = try_parse_v2("  ::Warning file=a.csv,line=3,title=T%3A1::50%25%0Adone", registered)
    assert command is not None and command.name == "warning"
    assert command.properties == {"file": "a.csv", "line": "3", "title": "T:1"}
    assert command.data == "50%\ndone"
    assert try_parse_v2("x ::warning::no", registered) is None
    assert try_parse_v2("::unknown::no", registered) is None
    legacy = try_parse_legacy("cell,##[error]pwned", registered)
    assert legacy is not None and (legacy.name, legacy.data) == ("error", "pwned")
    runner = Runner()
    runner.feed("::stop-commands::tok123\n::add-path::/x\n##[error]no\nrow ##[TOK123] resumes\n"
                "::add-path::/y\n")
    assert [(c.name, c.data) for c in runner.acted] == [
        ("stop-commands", "tok123"), ("tok123", " resumes"), ("add-path", "/y")]


def test_step_outputs_survive_any_value_the_way_the_runner_reads_them(tmp_path: Path) -> None:
    out = tmp_path / "output.txt"
    actions = github.Actions({"GITHUB_ACTIONS": "true", "GITHUB_OUTPUT": str(out)},
                             lambda t: t.replace("hunter22", "***"))
    values = {"a": "two\nlines", "b": "", "c": "x=y<<z", "d": "pw hunter22", "e": "ghadelimiter_"}
    actions.outputs(values)
    assert parse_file_command(out.read_text()) == dict(values, d="pw ***")


def annotations(text: str) -> list[tuple[str, str, str]]:
    return [(c.name, c.properties.get("title", ""), c.data) for c in Runner().feed(text)
            if c.name in ("error", "warning", "notice")]


def test_a_module_annotation_lifts_the_fence_for_its_line_alone(
        capsys: pytest.CaptureFixture[str]) -> None:
    actions = github.Actions({"GITHUB_ACTIONS": "true"}, lambda t: t.replace("s3cret", "***"))
    actions.begin_untrusted()
    actions.start_group("[1/1] 1.load")
    actions.module_command("1.load", "warning", {"file": "a.csv", "line": "3"}, "odd: row, s3cret")
    actions.module_command("1.load", "notice", {"title": "Rows"}, "12 rows")
    actions.module_command("1.load", "debug", {}, "not an annotation")
    actions.end_group()
    actions.end_untrusted()
    lines = capsys.readouterr().out.splitlines()
    commands = [ln for ln in lines if not ln.startswith("::stop-commands::")
                and not (ln.startswith("::") and ln.endswith("::") and len(ln) == 36)]
    assert commands == ["::group::[1/1] 1.load",
                        "::warning title=1.load,file=a.csv,line=3::odd: row, ***",
                        "::notice title=Rows::12 rows",
                        "::endgroup::"]
    assert Runner().feed("\n".join(lines) + "\n") and not any(
        c.name == "debug" for c in Runner().feed("\n".join(lines) + "\n"))


def test_the_runners_own_annotations_come_before_the_modules_past_the_cap(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    actions = github.Actions({"GITHUB_ACTIONS": "true"}, lambda t: t)
    for i in range(12):
        actions.module_command("1.chatty", "warning", {}, f"note {i}")
    actions.module_command("2.odd", "warning", {}, "odd")
    actions.module_command("1.chatty", "error", {}, "one error")
    failures = [github.Failure("3.x", False, "exit code 1"), github.Failure("4.y", False, "exit 1")]
    actions.finish(fake_record(1), failures=failures, commit=None, push_error=None)
    shown = annotations(capsys.readouterr().out)
    warnings = [a for a in shown if a[0] == "warning"]
    assert len(warnings) == github.MAX_ANNOTATIONS
    assert warnings[:5] == [("warning", "1.chatty", f"note {i}") for i in range(5)]
    assert [title for _, title, _ in warnings[5:7]] == ["3.x", "4.y"]
    assert warnings[7:9] == [("warning", "1.chatty", "note 5"), ("warning", "1.chatty", "note 6")]
    assert warnings[9] == ("warning", "6 more warnings", "6 more warnings; from modules (see "
                           "the log): 1.chatty (5), 2.odd (1)")
    assert [a for a in shown if a[0] == "error"] == [("error", "1.chatty", "one error")]


def test_exactly_ten_annotations_are_all_shown(capsys: pytest.CaptureFixture[str]) -> None:
    actions = github.Actions({"GITHUB_ACTIONS": "true"}, lambda t: t)
    failures = [github.Failure(f"{i}.m", True, "exit code 1") for i in range(10)]
    actions.finish(fake_record(1), failures=failures, commit=None, push_error=None)
    shown = annotations(capsys.readouterr().out)
    assert [title for _, title, _ in shown] == [f"{i}.m" for i in range(10)]


def test_a_failed_push_is_an_annotation_the_summary_and_outputs(
        remote: Path, tmp_path: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    remote.rename(remote.with_name("moved.git"))  # the push cannot reach it
    env = actions_env(tmp_path)
    result = project.run(env=env)
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    errors = [a for a in annotations(result.stdout) if a[0] == "error"]
    assert len(errors) == 1 and errors[0][1] == "push failed"
    assert errors[0][2].startswith("push to origin (main) failed: ")
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert "**not pushed**: push to origin (main) failed: " in summary
    outputs = parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text())
    assert (outputs["status"], outputs["pushed"], outputs["commit"]) == ("success", "false", "")


def test_a_pushed_run_outputs_its_commit(remote: Path, tmp_path: Path) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    env = actions_env(tmp_path)
    result = project.run(env=env)
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    outputs = parse_file_command(Path(env["GITHUB_OUTPUT"]).read_text())
    head = git(remote, "rev-parse", "main")
    assert (outputs["pushed"], outputs["commit"]) == ("true", head)
    summary = Path(env["GITHUB_STEP_SUMMARY"]).read_text()
    assert f"(https://github.com/owner/repo/blob/{head}/data%20and%20logs/workflow_" in summary
    assert not [a for a in annotations(result.stdout) if a[0] == "error"]


def module_entry(name: str, status: str, start: float, end: float, **extra: object) -> dict:
    def at(seconds: float) -> str:
        return f"2026-11-23T06:{int(seconds // 60):02d}:{seconds % 60:06.3f}+00:00"
    return dict({"name": name, "path": f"modules/{name}.py", "status": status, "exit_code": 0,
                 "attempts": 1, "timed_out": False, "started": at(start), "finished": at(end),
                 "duration_seconds": end - start}, **extra)


def run_record(status: str, modules: list[dict]) -> dict:
    return {"run_id": "20261123_06h00", "status": status, "started": "2026-11-23T06:00:00+00:00",
            "duration_seconds": 80.0, "trigger": "schedule",
            "log_file": "data and logs/workflow_20261123_06h00.log", "modules": modules}


def test_the_gantt_chart_plots_elapsed_time_with_safe_labels() -> None:
    record = run_record("partial", [
        module_entry("title", "success", 0.5, 2.0),
        module_entry("section", "skipped", 2.0, 2.0),
        module_entry("click: #x; %%y", "failed", 2.5, 75.25, exit_code=3),
        module_entry("4.load", "recovered", 75.5, 79.0, exit_code=1, recovery={
            "path": "modules/undo.sh", "status": "success", "exit_code": 0,
            "duration_seconds": 0.5}),
        {"name": "5.never", "path": "modules/5.never.py", "status": "not_run", "exit_code": None,
         "attempts": 0, "timed_out": False, "started": None, "finished": None,
         "duration_seconds": None},
    ])
    text = github.step_summary(record, None, notifications=["webhook", "email ops@example.com"])
    gantt = text.split("```mermaid\n", 1)[1].split("```", 1)[0].splitlines()
    assert gantt[:6] == ["gantt", "  dateFormat YYYY-MM-DD HH:mm:ss.SSS", "  axisFormat %M:%S",
                         "  tickInterval 10second", "  todayMarker off", "  section modules"]
    assert gantt[6:] == [
        "  1. title (success) :m1, 2000-01-01 00:00:00.500, 2000-01-01 00:00:02.000",
        "  2. section (skipped) :done, m2, 2000-01-01 00:00:02.000, 2000-01-01 00:00:02.001",
        "  3. click_ _x_ __y (failed) :crit, m3, 2000-01-01 00:00:02.500, "
        "2000-01-01 00:01:15.250",
        "  4. 4.load (recovered) :active, m4, 2000-01-01 00:01:15.500, 2000-01-01 00:01:19.000"]
    assert "| 4 | `4.load` | recovered, recovery success | 3.5 s | 1 | 1 |" in text
    assert "| 5 | `5.never` | not_run |  | 0 |  |" in text
    assert "Notifications sent: webhook, email ops@example.com\n" in text
    assert "Log: `data and logs/workflow_20261123_06h00.log` (not pushed)" in text


@pytest.mark.parametrize(("seconds", "axis", "tick"), [
    (0.2, "%M:%S", "1second"), (8, "%M:%S", "1second"), (9, "%M:%S", "2second"),
    (600, "%M:%S", "2minute"), (4000, "%H:%M:%S", "10minute"), (90_000, "%H:%M:%S", "6hour"),
])
def test_the_axis_never_repeats_a_label(seconds: float, axis: str, tick: str) -> None:
    record = run_record("success", [module_entry("1.a", "success", 0, 0)])
    record["modules"][0]["finished"] = (
        datetime.fromisoformat(record["started"]) + timedelta(seconds=seconds)).isoformat()
    text = github.step_summary(record, None)
    assert f"  axisFormat {axis}\n  tickInterval {tick}\n" in text


@pytest.mark.parametrize("errors", [11, 299])
def test_a_refused_push_is_never_crowded_out_by_module_annotations(
        remote: Path, tmp_path: Path, errors: int) -> None:  # noqa: F811
    project = clone(remote, "work clone")
    project.module("1.a.py", f"for i in range({errors}):\n    print(f'::error::bad row {{i}}')\n")
    project.module("2.b.py", "print('::error::b1')\nprint('::error::b2')\n")
    project.config({**project.read_config(), "modules": ["modules/1.a.py", "modules/2.b.py"]})
    git(project.root, "commit", "-qam", "two modules")
    git(project.root, "push", "-q")
    hook = remote / "hooks" / "pre-receive"
    hook.write_text("#!/bin/sh\necho 'protected branch: pushes need a review' >&2\nexit 1\n")
    hook.chmod(0o755)
    result = project.run(env=actions_env(tmp_path))
    assert result.returncode == EXIT_PUSH, result.stdout + result.stderr
    shown = [a for a in annotations(result.stdout) if a[0] == "error"]
    assert len(shown) == github.MAX_ANNOTATIONS
    [push] = [a for a in shown if a[1] == "push failed"]
    assert push[2].startswith("push to origin (main) failed: ")
    assert "protected branch: pushes need a review" in push[2]
    left = errors + 2 - (github.MAX_ANNOTATIONS - 2)
    assert shown[-1] == ("error", f"{left} more errors",
                         f"{left} more errors; from modules (see the log): "
                         f"1.a ({left - 2}), 2.b (2)")
