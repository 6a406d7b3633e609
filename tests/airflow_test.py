"""The DAG factory (gitcron/airflow.py): tasks, wiring, commands, environment.

Skipped where Airflow is not installed (the main suite); `.ci/airflow` runs
these in its own environment, then runs real DAGs with `airflow dags test`.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

pytest.importorskip("airflow.sdk", reason="Apache Airflow is not installed here "
                    "(pip install -r requirements-airflow.txt; .ci/airflow runs these)")

from gitcron import airflow as af
from gitcron import config as cfg
from gitcron.codes import FatalError

FIXTURE = Path(__file__).parent / "airflow" / "fixture"
UTC = timezone.utc


def project(root: Path, modules: list, **extra: object) -> Path:
    (root / "modules").mkdir(parents=True)
    for entry in modules:
        path = entry if isinstance(entry, str) else entry["path"]
        (root / path).write_text("print('hi')\n")
        if isinstance(entry, dict) and "on_failure" in entry:
            (root / entry["on_failure"]).write_text("echo undo\n")
    (root / "config.json").write_text(json.dumps({"modules": modules, **extra}))
    return root / "config.json"


def upstream_ids(dag, task_id: str) -> set[str]:
    return set(dag.get_task(task_id).upstream_task_ids)


def test_fixture_dag_has_one_task_per_module_plus_joins_recovery_and_ends() -> None:
    dag = af.dag_from_config(FIXTURE / "config.json", dag_id="fixture")
    assert dag.dag_id == "fixture"
    assert dag.max_active_runs == 1
    assert set(dag.task_ids) == {
        "pipeline.start", "1.ok", "2.skip", "3.flaky", "4.optional", "4.optional.done",
        "5.broken", "5.broken.on_failure", "5.broken.done", "6.fatal", "7.never",
        "7.never.done", "pipeline.finish"}
    assert [t.task_id for t in dag.tasks if not t.downstream_task_ids] == ["pipeline.finish"]
    assert set(dag.params.keys()) == {"dry_run", "force"}


def test_fixture_dag_wires_gates_joins_and_trigger_rules() -> None:
    dag = af.dag_from_config(FIXTURE / "config.json", dag_id="fixture")
    # After a non-critical module: its join and the last critical module (the gate).
    assert upstream_ids(dag, "5.broken") == {"4.optional.done", "3.flaky"}
    # A critical module with recovery is a gate through its join.
    assert upstream_ids(dag, "6.fatal") == {"5.broken.done"}
    assert upstream_ids(dag, "5.broken.done") == {"5.broken", "5.broken.on_failure"}
    assert upstream_ids(dag, "pipeline.finish") == {"6.fatal", "7.never.done"}
    rules = {t.task_id: str(t.trigger_rule.value if hasattr(t.trigger_rule, "value")
                            else t.trigger_rule) for t in dag.tasks}
    assert rules["2.skip"] == "none_failed"
    assert rules["4.optional.done"] == "all_done"
    assert rules["5.broken.on_failure"] == "all_failed"
    assert rules["5.broken.done"] == "one_success"
    assert rules["pipeline.finish"] == "none_failed"


def test_module_task_carries_the_contract(tmp_path: Path) -> None:
    config = project(tmp_path / "my project", [
        {"path": "modules/1.a.py", "retries": 2, "retry_delay_seconds": 5,
         "timeout_seconds": 90}, "modules/2.b.sh"], mask_env=["DB_URL"])
    dag = af.dag_from_config(config)
    assert dag.dag_id == "my_project"
    task = dag.get_task("1.a")
    assert task.retries == 2 and task.retry_delay == timedelta(seconds=5)
    assert task.execution_timeout == timedelta(seconds=90)
    assert list(task.skip_on_exit_code) == [10]
    assert task.cwd == str(tmp_path / "my project")
    assert task.env["PIPELINE_MODULE"] == "1.a"
    assert task.env["PIPELINE_CONFIG"] == str(config)
    # Quoted (the folder has a space) and not read as a template file.
    sh = dag.get_task("2.b").bash_command
    assert sh == f"exec bash '{tmp_path}/my project/modules/2.b.sh' "


def test_get_env_merges_run_context_drops_tokens_and_masks_secrets(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.sdk._shared.secrets_masker import redact

    config = project(tmp_path / "p", ["modules/1.a.py"], mask_env=["DB_URL"])
    task = af.dag_from_config(config).get_task("1.a")
    monkeypatch.setenv("GITHUB_TOKEN", "gh-token-value-1")
    monkeypatch.setenv("MY_API_KEY", "api-key-value-2")
    monkeypatch.setenv("DB_URL", "postgres://db-value-3")
    run = af.run_env("20261123_06h00", tmp_path, datetime(2026, 11, 23, 6, tzinfo=UTC), None,
                     (None, datetime(2026, 11, 23, 6, tzinfo=UTC)), True, False)

    class TI:
        def xcom_pull(self, task_ids: str, key: str = "return_value") -> object:
            assert task_ids == af.START
            return run

    env = task.get_env({"ti": TI()})
    assert "GITHUB_TOKEN" not in env
    assert env["PIPELINE_RUN_ID"] == "20261123_06h00"
    assert env["PIPELINE_DRY_RUN"] == "1"
    assert env["PIPELINE_WINDOW_START"] == ""
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["PIPELINE_MODULE"] == "1.a"
    line = redact("key api-key-value-2 url postgres://db-value-3")
    assert "api-key-value-2" not in line and "db-value-3" not in line


def test_window_from_data_interval_minutes_or_last_run_date(tmp_path: Path) -> None:
    config = cfg.load(str(project(tmp_path / "p", ["modules/1.a.py"])))
    started = datetime(2026, 11, 23, 6, tzinfo=UTC)
    a, b = datetime(2026, 11, 22, 6, tzinfo=UTC), datetime(2026, 11, 23, 6, tzinfo=UTC)
    assert af.window(config, started, None, (a, b)) == (a, b)
    # An empty interval (a manual run) falls back to last_run_date.
    assert af.window(config, started, "2026-11-20T00:00:00+00:00", (b, b))[0] == datetime(
        2026, 11, 20, tzinfo=UTC)
    assert af.window(config, started, None, None) == (None, started)


def test_claim_run_dir_takes_the_next_free_suffix(tmp_path: Path) -> None:
    moment = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    first = af.claim_run_dir(tmp_path, moment)
    second = af.claim_run_dir(tmp_path, moment)
    assert (first[0], second[0]) == ("20261123_06h00", "20261123_06h00_2")
    assert second[1].is_dir()


def test_statuses_and_run_status_follow_the_recovery_table() -> None:
    config_steps = af.plan_steps(cfg.load(str(FIXTURE / "config.json")).modules or ())
    states = {"1.ok": "success", "2.skip": "skipped", "3.flaky": "success",
              "4.optional": "failed", "5.broken": "failed", "5.broken.on_failure": "success",
              "6.fatal": "success", "7.never": "success"}
    statuses = af.module_statuses(config_steps, states)
    assert statuses["5.broken"] == "recovered"
    assert statuses["2.skip"] == "skipped"
    assert af.run_status(config_steps, statuses) == "partial"
    statuses["6.fatal"] = "failed"
    assert af.run_status(config_steps, statuses) == "failed"
    assert af.module_statuses(config_steps, {})["1.ok"] == "not_run"


def test_failure_text() -> None:
    assert af.failure_text(7) == "7"
    assert af.failure_text(-9) == "signal 9"
    assert af.failure_text(None) == "not started"


def test_bad_config_is_one_fatal_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"modules": ["modules/missing.py"]}')
    with pytest.raises(FatalError, match="no such module file"):
        af.dag_from_config(config)


def test_a_path_airflow_would_render_is_refused(tmp_path: Path) -> None:
    config = project(tmp_path / "{{ x }}", ["modules/1.a.py"])
    with pytest.raises(FatalError, match="Jinja"):
        af.dag_from_config(config)


def test_task_ids_that_would_collide_are_refused(tmp_path: Path) -> None:
    config = project(tmp_path / "p", [{"path": "modules/1 a.py", "critical": False},
                                      "modules/1_a.done.py"])
    with pytest.raises(FatalError, match="task id"):
        af.dag_from_config(config)


def test_cron_schedule_gets_data_intervals(tmp_path: Path) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    dag = af.dag_from_config(project(tmp_path / "p", ["modules/1.a.py"]), schedule="0 6 * * *")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
