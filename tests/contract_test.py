"""The module contract: one function builds a module's environment for every engine."""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import datetime, timezone

import pytest
from conftest import Project, stage_env
from execute_test import context

from gitcron import config as cfg
from gitcron import contract


def test_module_env_does_not_touch_the_parent_environment(project: Project) -> None:
    spec = cfg.module_spec(project.module("a.py", "").resolve(), project.root, display="c", key="k")
    base = {"A": "1"}
    env = contract.module_env(base, context(project, last_run_date=None), spec)
    assert base == {"A": "1"}
    assert env["PIPELINE_LAST_RUN_DATE"] == ""
    assert env["PYTHONUNBUFFERED"] == "1"
    assert "PIPELINE_RUN_ID" not in os.environ


def spec_of(project: Project, **changes: object) -> cfg.ModuleSpec:
    path = project.module("a.py", "").resolve()
    return cfg.module_spec(path, project.root, display="c", key="k", **changes)


@pytest.mark.parametrize("asks", [False, True])
def test_github_tokens_stay_out_unless_the_module_asks(project: Project, asks: bool) -> None:
    base = {"GITHUB_TOKEN": "ghs_abc", "GH_TOKEN": "gho_def", "OTHER_TOKEN": "kept"}
    env = contract.module_env(base, context(project), spec_of(project, github_token=asks))
    assert ("GITHUB_TOKEN" in env, "GH_TOKEN" in env) == (asks, asks)
    assert env["OTHER_TOKEN"] == "kept"
    assert base["GITHUB_TOKEN"] == "ghs_abc"


def test_unbuffered_is_set_only_when_wanted_and_not_already_set(project: Project) -> None:
    ctx = context(project)
    assert contract.module_env({}, ctx, spec_of(project))["PYTHONUNBUFFERED"] == "1"
    assert "PYTHONUNBUFFERED" not in contract.module_env({}, ctx, spec_of(project, unbuffered=False))
    kept = contract.module_env({"PYTHONUNBUFFERED": "0"}, ctx, spec_of(project))
    assert kept["PYTHONUNBUFFERED"] == "0"


def test_window_and_run_dir_reach_the_module(project: Project) -> None:
    ctx = context(project, window_start=datetime(2026, 11, 23, 5, tzinfo=timezone.utc),
                  window_end=datetime(2026, 11, 23, 6, tzinfo=timezone.utc),
                  run_dir=project.log_dir / "runs" / "20261123_06h00")
    env = contract.module_env({}, ctx, spec_of(project))
    assert env["PIPELINE_WINDOW_START"] == "2026-11-23T05:00:00+00:00"
    assert env["PIPELINE_WINDOW_END"] == "2026-11-23T06:00:00+00:00"
    assert env["PIPELINE_RUN_DIR"] == str(project.log_dir / "runs" / "20261123_06h00")


def test_a_recovery_script_is_told_which_module_failed_and_how(project: Project) -> None:
    project.module("rollback.sh", "exit 0\n")
    module = cfg.module_spec(project.module("2.load.py", "").resolve(), project.root,
                             display="c", key="k")
    recovery = cfg.module_spec((project.root / "modules" / "rollback.sh").resolve(),
                               project.root, display="c", key="k")
    module = replace(module, on_failure=replace(recovery, name="2.load.on_failure"))
    env = contract.recovery_env({"GITHUB_TOKEN": "ghs_abc"}, context(project), module, "timeout")
    assert env["PIPELINE_MODULE"] == "2.load"
    assert env["PIPELINE_FAILED_MODULE"] == "2.load"
    assert env["PIPELINE_FAILED_EXIT_CODE"] == "timeout"
    assert "GITHUB_TOKEN" not in env
    assert env["PIPELINE_RUN_ID"] == "20261123_06h00"


def test_the_shipped_modules_are_tested_under_the_whole_contract(project: Project) -> None:
    """stage_env (the fixture of the shipped modules' tests) is the runner's own."""
    project.config({})
    env = stage_env(project, "1.file_retrieval.py")
    names = {name for name in env if name.startswith("PIPELINE_")}
    runner = contract.module_env({}, context(project), spec_of(project))
    assert names == set(runner) - {"PYTHONUNBUFFERED"}
    assert env["PIPELINE_MODULE"] == "1.file_retrieval"
    assert env["PIPELINE_WINDOW_END"] == env["PIPELINE_RUN_STARTED"]
    assert env["PIPELINE_RUN_DIR"] == str(project.log_dir.absolute() / "runs" / env["PIPELINE_RUN_ID"])
    assert os.path.isdir(env["PIPELINE_RUN_DIR"])
