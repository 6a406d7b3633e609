"""`metrics_file`: node_exporter's textfile format, read back with prometheus_client's parser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import OK, Project, fail
from prometheus_client.parser import text_string_to_metric_families

from gitcron import config as cfg
from gitcron import metrics

FAMILIES = ["pipeline_last_run_timestamp_seconds", "pipeline_last_success_timestamp_seconds",
            "pipeline_last_run_status", "pipeline_run_duration_seconds",
            "pipeline_module_duration_seconds", "pipeline_module_exit_code"]


def parse(text: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """{family: {sorted labels: value}}, every family a gauge with HELP."""
    found = {}
    for family in text_string_to_metric_families(text):
        assert family.type == "gauge" and family.documentation
        found[family.name] = {tuple(sorted(s.labels.items())): s.value for s in family.samples}
    return found


def one(family: dict[tuple[tuple[str, str], ...], float], **labels: str) -> float:
    return family[tuple(sorted(labels.items()))]


def finished(record: dict[str, Any]) -> float:
    return cfg.parse_timestamp(record["finished"]).timestamp()


@pytest.fixture
def pipeline(project: Project) -> Project:
    project.module("1.fetch.py", OK)
    project.module("2.load.py", "import os, sys\nsys.exit(int(os.environ.get('LOAD_EXIT', '0')))\n")
    (project.root / "textfiles").mkdir()
    project.config(metrics_file="textfiles/pipeline.prom")
    return project


def prom(project: Project) -> Path:
    return project.root / "textfiles" / "pipeline.prom"


def test_a_success_writes_every_metric_with_the_pipeline_label(pipeline: Project) -> None:
    assert pipeline.run("--no-push").returncode == 0
    text = prom(pipeline).read_text()
    found = parse(text)
    assert list(found) == FAMILIES
    record, name = pipeline.record(), pipeline.root.name
    assert one(found["pipeline_last_run_timestamp_seconds"], pipeline=name) == finished(record)
    assert one(found["pipeline_last_success_timestamp_seconds"], pipeline=name) == finished(record)
    statuses = {dict(k)["status"]: v for k, v in found["pipeline_last_run_status"].items()}
    assert statuses == {"success": 1.0, "partial": 0.0, "failed": 0.0, "interrupted": 0.0}
    assert one(found["pipeline_run_duration_seconds"], pipeline=name) == record[
        "duration_seconds"]
    for module in record["modules"]:
        labels = {"pipeline": name, "module": module["name"]}
        assert one(found["pipeline_module_duration_seconds"], **labels) == module[
            "duration_seconds"]
        assert one(found["pipeline_module_exit_code"], **labels) == 0
    assert [p.name for p in prom(pipeline).parent.iterdir()] == ["pipeline.prom"]


def test_a_failure_never_hides_the_last_success(pipeline: Project) -> None:
    assert pipeline.run("--no-push").returncode == 0
    success = finished(pipeline.record())
    assert pipeline.run("--no-push", env={"LOAD_EXIT": "3"}).returncode == 1
    found, name = parse(prom(pipeline).read_text()), pipeline.root.name
    failed = next(r for r in pipeline.records() if r["status"] == "failed")
    assert one(found["pipeline_last_success_timestamp_seconds"], pipeline=name) == success
    assert one(found["pipeline_last_run_timestamp_seconds"], pipeline=name) == finished(failed)
    assert one(found["pipeline_last_run_status"], pipeline=name, status="failed") == 1
    assert one(found["pipeline_last_run_status"], pipeline=name, status="success") == 0
    assert one(found["pipeline_module_exit_code"], pipeline=name, module="2.load") == 3


def test_partial_backfill_and_narrowed_successes_do_not_move_the_last_success(
        pipeline: Project) -> None:
    pipeline.config(metrics_file="textfiles/pipeline.prom",
                    modules=["modules/1.fetch.py", {"path": "modules/2.load.py",
                                                    "critical": False}])
    assert pipeline.run("--no-push").returncode == 0
    success = finished(pipeline.record())
    runs = [("--no-push",), ("--no-push", "--since", "2026-01-01", "--until", "2026-01-02"),
            ("--no-push", "--only", "fetch")]
    for i, args in enumerate(runs):
        done = pipeline.run(*args, env={"LOAD_EXIT": "3"} if i == 0 else {})
        assert done.returncode == 0, done.stderr
        found, name = parse(prom(pipeline).read_text()), pipeline.root.name
        assert one(found["pipeline_last_success_timestamp_seconds"], pipeline=name) == success
        assert one(found["pipeline_last_run_timestamp_seconds"], pipeline=name) == finished(
            pipeline.records()[-1])  # the newest, by the time it was written
    statuses = sorted(r["status"] for r in pipeline.records())
    assert statuses == ["partial", "success", "success", "success"]


def test_a_dry_run_leaves_the_file_alone(pipeline: Project) -> None:
    assert pipeline.run("--no-push").returncode == 0
    before = prom(pipeline).read_bytes()
    assert pipeline.run("--no-push", "--dry-run", env={"LOAD_EXIT": "3"}).returncode == 1
    assert prom(pipeline).read_bytes() == before


def test_without_a_file_the_last_success_comes_from_the_records(pipeline: Project) -> None:
    pipeline.config()
    assert pipeline.run("--no-push").returncode == 0
    success = finished(pipeline.record())
    pipeline.config(metrics_file=str(prom(pipeline)))  # absolute, this time
    assert pipeline.run("--no-push", env={"LOAD_EXIT": "3"}).returncode == 1
    found = parse(prom(pipeline).read_text())
    assert one(found["pipeline_last_success_timestamp_seconds"],
               pipeline=pipeline.root.name) == success


def test_never_a_success_is_zero(pipeline: Project) -> None:
    assert pipeline.run("--no-push", env={"LOAD_EXIT": "3"}).returncode == 1
    found = parse(prom(pipeline).read_text())
    assert one(found["pipeline_last_success_timestamp_seconds"],
               pipeline=pipeline.root.name) == 0


def test_a_file_that_cannot_be_written_is_a_warning_not_a_failure(pipeline: Project) -> None:
    pipeline.config(metrics_file="no such folder/pipeline.prom")
    done = pipeline.run("--no-push")
    assert done.returncode == 0, done.stderr
    assert pipeline.record()["status"] == "success"
    assert "WARNING  | orchestrator | metrics_file: cannot write" in done.stdout
    assert "No such file or directory" in done.stdout


def test_labels_are_escaped_and_missing_values_left_out() -> None:
    record = {"status": "interrupted", "finished": "2026-11-23T06:00:02+00:00",
              "duration_seconds": 2.5,
              "modules": [{"name": 'a"b\\c\nd', "duration_seconds": 1.25, "exit_code": -9},
                          {"name": "2.after", "duration_seconds": None, "exit_code": None},
                          "not a module", {"name": 7}]}
    found = parse(metrics.render(record, 'my "pipeline"', 12.0))
    labels = {"pipeline": 'my "pipeline"', "module": 'a"b\\c\nd'}
    assert one(found["pipeline_module_exit_code"], **labels) == -9
    assert one(found["pipeline_module_duration_seconds"], **labels) == 1.25
    assert len(found["pipeline_module_exit_code"]) == 1
    assert one(found["pipeline_last_success_timestamp_seconds"],
               pipeline='my "pipeline"') == 12.0
    assert one(found["pipeline_last_run_timestamp_seconds"],
               pipeline='my "pipeline"') == 1795413602.0


@pytest.mark.parametrize(("value", "message"), [
    ("", "metrics_file"), (3, "metrics_file"), ("a\0b", "NUL"),
])
def test_a_bad_metrics_file_setting_exits_2_before_anything_runs(
        pipeline: Project, value: Any, message: str) -> None:
    pipeline.config(metrics_file=value)
    done = pipeline.run("--no-push")
    assert done.returncode == 2 and message in done.stderr
    assert pipeline.records() == []


def test_a_near_miss_of_the_key_is_named(pipeline: Project) -> None:
    pipeline.config(metric_file="x.prom")
    done = pipeline.run("--no-push")
    assert done.returncode == 2
    assert "unknown key 'metric_file': did you mean 'metrics_file'?" in done.stderr


def test_a_metrics_file_beside_the_config(project: Project) -> None:
    project.module("1.bad.py", fail(5))
    project.config(metrics_file="m.prom")
    assert project.run("--no-push").returncode == 1
    found = parse((project.root / "m.prom").read_text())
    assert one(found["pipeline_module_exit_code"], pipeline=project.root.name,
               module="1.bad") == 5


def test_a_run_of_another_engine_writes_the_metrics_too(pipeline: Project) -> None:
    """Airflow's finish task ends a run with the runner's own functions: metrics included."""
    from task_test import begin, run_task

    from gitcron import task

    run = begin(pipeline)
    states = {name: task.TaskState("success", run_task(pipeline, run, name)[1], None)
              for name in ("1.fetch", "2.load")}
    record = task.finish(cfg.load(str(pipeline.config_path)), run, states)
    found = parse(prom(pipeline).read_text())
    assert one(found["pipeline_last_success_timestamp_seconds"],
               pipeline=pipeline.root.name) == finished(record)
    assert one(found["pipeline_module_exit_code"], pipeline=pipeline.root.name,
               module="2.load") == 0
