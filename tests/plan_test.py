from __future__ import annotations

import json

import pytest
from conftest import OK, Project

from gitcron import config as cfg
from gitcron import plan as planning
from gitcron.codes import FatalError
from gitcron.plan import Selection


def names(plan: planning.Plan) -> list[str]:
    return [spec.name for spec in plan.modules]


def load(project: Project) -> cfg.Config:
    return cfg.load(str(project.config_path))


@pytest.fixture
def three(project: Project) -> Project:
    for name in ("1.file_retrieval.py", "2.transform_data.py", "0.retention_policy.py"):
        project.module(name, OK)
    project.config(modules=["modules/1.file_retrieval.py", "modules/2.transform_data.py",
                            "modules/0.retention_policy.py"])
    return project


def test_the_config_list_sets_the_order(three: Project) -> None:
    plan = planning.build(load(three), Selection())
    assert names(plan) == ["1.file_retrieval", "2.transform_data", "0.retention_policy"]


def test_discovery_orders_by_number_as_a_number_and_names_what_it_ignores(
    project: Project,
) -> None:
    for name in ("10.late.py", "2.early.sh", "1-first.py", "03_third.py"):
        project.module(name, OK)
    project.module("_helpers.py", OK)
    project.module("README.md", "docs")
    (project.root / "modules" / "4.folder").mkdir()
    project.config({})
    plan = planning.build(load(project), Selection())
    assert names(plan) == ["1-first", "2.early", "03_third", "10.late"]
    assert plan.ignored == ("4.folder", "README.md", "_helpers.py")


def test_discovery_refuses_a_numbered_file_that_cannot_run(project: Project) -> None:
    project.module("1.ok.py", OK)
    project.module("2.data.csv", "a,b\n", mode=0o644)
    project.config({})
    with pytest.raises(FatalError, match=r"modules/2\.data\.csv.*neither"):
        planning.build(load(project), Selection())


def test_discovery_without_a_modules_folder(project: Project) -> None:
    project.config({})
    (project.root / "modules").rmdir()
    with pytest.raises(FatalError, match="no `modules` key and no folder"):
        planning.build(load(project), Selection())


@pytest.mark.parametrize("name", ["2.transform_data", "transform_data", "2", "02"])
def test_a_module_is_named_by_name_short_name_or_number(three: Project, name: str) -> None:
    plan = planning.build(load(three), Selection(only=(name,)))
    assert names(plan) == ["2.transform_data"]


def test_only_keeps_pipeline_order(three: Project) -> None:
    plan = planning.build(load(three), Selection(only=("0", "file_retrieval")))
    assert names(plan) == ["1.file_retrieval", "0.retention_policy"]


def test_from_starts_at_a_module(three: Project) -> None:
    plan = planning.build(load(three), Selection(start="transform_data"))
    assert names(plan) == ["2.transform_data", "0.retention_policy"]


def test_skip_leaves_modules_out(three: Project) -> None:
    plan = planning.build(load(three), Selection(skip=("1", "0.retention_policy")))
    assert names(plan) == ["2.transform_data"]


def test_from_and_skip_combine(three: Project) -> None:
    plan = planning.build(load(three), Selection(start="2", skip=("0",)))
    assert names(plan) == ["2.transform_data"]


def test_an_unknown_name_lists_the_known_ones(three: Project) -> None:
    with pytest.raises(FatalError) as caught:
        planning.build(load(three), Selection(skip=("transform",)))
    assert str(caught.value) == (
        "--skip: unknown module 'transform' (did you mean '2.transform_data'?); known modules: "
        "1.file_retrieval, 2.transform_data, 0.retention_policy"
    )


def test_an_ambiguous_name_is_refused(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("1.b.py", OK)
    project.config({})
    with pytest.raises(FatalError, match="'1' is ambiguous: it names 1.a, 1.b"):
        planning.build(load(project), Selection(only=("1",)))


def test_a_selection_that_leaves_nothing_is_an_error(three: Project) -> None:
    with pytest.raises(FatalError, match="leaves no module to run"):
        planning.build(load(three), Selection(only=("1",), skip=("1",)))


def test_disabled_modules_run_only_when_named(project: Project) -> None:
    project.module("1.a.py", OK)
    project.module("2.b.py", OK)
    project.config(modules=["modules/1.a.py", {"path": "modules/2.b.py", "enabled": False}])
    assert names(planning.build(load(project), Selection())) == ["1.a"]
    assert names(planning.build(load(project), Selection(only=("b",)))) == ["2.b"]


def write_record(project: Project, run_id: str, started: str, modules: list[tuple[str, str]],
                 status: str = "failed") -> None:
    project.log_dir.mkdir(exist_ok=True)
    record = {"run_id": run_id, "status": status, "started": started,
              "modules": [{"name": n, "status": s} for n, s in modules]}
    (project.log_dir / f"workflow_{run_id}.json").write_text(json.dumps(record))


def test_resume_starts_at_the_failed_module_of_the_newest_record(three: Project) -> None:
    write_record(three, "20261122_06h00", "2026-11-22T06:00:00+00:00",
                 [("1.file_retrieval", "failed"), ("2.transform_data", "not_run")])
    # Newer, though written with another offset; its run id sorts lower as text.
    write_record(three, "20261123_01h00", "2026-11-23T07:30:00+01:00",
                 [("1.file_retrieval", "success"), ("2.transform_data", "failed"),
                  ("0.retention_policy", "not_run")])
    (three.log_dir / "workflow_notes.json").write_text('{"not": "a record"}')
    plan = planning.build(load(three), Selection(resume=True))
    assert names(plan) == ["2.transform_data", "0.retention_policy"]


def test_resume_after_a_clean_run_has_nothing_to_do(three: Project) -> None:
    write_record(three, "20261123_06h00", "2026-11-23T06:00:00+00:00",
                 [("1.file_retrieval", "success")], status="success")
    plan = planning.build(load(three), Selection(resume=True))
    assert plan.modules == ()
    assert "nothing to resume" in plan.note and "workflow_20261123_06h00.json" in plan.note


def test_resume_without_a_record_is_an_error(three: Project) -> None:
    with pytest.raises(FatalError, match="--resume: no run record in"):
        planning.build(load(three), Selection(resume=True))


def test_resume_of_a_module_no_longer_in_the_pipeline_is_an_error(three: Project) -> None:
    write_record(three, "20261123_06h00", "2026-11-23T06:00:00+00:00", [("9.gone", "failed")])
    with pytest.raises(FatalError, match="--resume: unknown module '9.gone'"):
        planning.build(load(three), Selection(resume=True))


def test_a_mistyped_module_name_gets_a_did_you_mean(three: Project) -> None:
    config = cfg.load(str(three.config_path))
    with pytest.raises(FatalError, match=r"--only: unknown module 'transfrom_data' \(did you "
                                         r"mean '2\.transform_data'\?\)"):
        planning.build(config, planning.Selection(only=("transfrom_data",)))
