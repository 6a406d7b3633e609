"""The DAG factory (gitcron/airflow.py): tasks, wiring, commands, environment.

Skipped where Airflow is not installed (the main suite); `.ci/airflow` runs
these in its own environment, then runs real DAGs with `airflow dags test`.
"""

from __future__ import annotations

import dataclasses
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
    extra.setdefault("name", "my_pipeline")
    (root / "config.json").write_text(json.dumps({"modules": modules, **extra}))
    return root / "config.json"


def upstream_ids(dag, task_id: str) -> set[str]:
    return set(dag.get_task(task_id).upstream_task_ids)


def test_fixture_dag_has_one_task_per_module_plus_joins_recovery_and_ends() -> None:
    dag = af.dag_from_config(FIXTURE / "config.json")
    assert dag.dag_id == "fixture"  # the config's name
    assert dag.max_active_runs == 1
    assert set(dag.task_ids) == {
        "pipeline.start", "1.ok", "2.skip__ds__", "3.flaky", "4.stdin", "5.leaves_child",
        "6.stubborn", "6.stubborn.done", "7.broken", "7.broken.on_failure", "7.broken.done",
        "8.fatal", "9.never", "9.never.done", "pipeline.finish"}
    assert [t.task_id for t in dag.tasks if not t.downstream_task_ids] == ["pipeline.finish"]
    assert set(dag.params.keys()) == {"dry_run", "force", "since", "until"}


def test_fixture_dag_wires_gates_joins_and_trigger_rules() -> None:
    dag = af.dag_from_config(FIXTURE / "config.json", dag_id="other")
    assert dag.dag_id == "other"
    # After a non-critical module: its join and the last critical module (the gate).
    assert upstream_ids(dag, "7.broken") == {"6.stubborn.done", "5.leaves_child"}
    # A critical module with recovery is a gate through its join.
    assert upstream_ids(dag, "8.fatal") == {"7.broken.done"}
    assert upstream_ids(dag, "7.broken.done") == {"7.broken", "7.broken.on_failure"}
    assert upstream_ids(dag, "pipeline.finish") == {"8.fatal", "9.never.done"}
    rules = {t.task_id: str(t.trigger_rule.value if hasattr(t.trigger_rule, "value")
                            else t.trigger_rule) for t in dag.tasks}
    assert rules["2.skip__ds__"] == "none_failed"
    assert rules["6.stubborn.done"] == "all_done"
    assert rules["7.broken.on_failure"] == "all_failed"
    assert rules["7.broken.done"] == "one_success"
    assert rules["pipeline.finish"] == "all_done"


def test_a_module_task_runs_the_runners_task_command(tmp_path: Path) -> None:
    config = project(tmp_path / "my project", [
        {"path": "modules/1.a{{ds}}.py", "retries": 2, "retry_delay_seconds": 5,
         "timeout_seconds": 90}], airflow={"env": {"API_TOKEN": "{{ conn.api.password }}"}})
    dag = af.dag_from_config(config, queue="q1", pool="p1", default_args={"owner": "ops"})
    task = dag.get_task("1.a__ds__")
    assert task.retries == 2 and task.retry_delay == timedelta(seconds=5)
    # The runner's timeout fires first; Airflow's is a backstop above it.
    assert task.execution_timeout > timedelta(seconds=90)
    assert (task.queue, task.pool, task.owner) == ("q1", "p1", "ops")
    assert dag.get_task("pipeline.start").queue == "q1"
    # Only the config's airflow.env is a template; the module's name is not.
    assert task.template_fields == ("airflow_env",)
    assert task.airflow_env == {"API_TOKEN": "{{ conn.api.password }}"}
    assert task.module == "1.a{{ds}}"
    argv = af.task_command(task.where, task.module, "{}", 2, "/tmp/o.json")
    assert argv[1:5] == ["-m", "gitcron", "task", "1.a{{ds}}"]
    assert argv[argv.index("--attempt") + 1] == "2"


def test_dag_id_comes_from_the_config_never_from_the_folder(tmp_path: Path) -> None:
    config = project(tmp_path / "tracking_repo", ["modules/1.a.py"], name="")
    with pytest.raises(FatalError, match="name"):
        af.dag_from_config(config)
    assert af.dag_from_config(config, dag_id="given").dag_id == "given"


def test_windows_come_from_airflow_state_by_the_runners_rule(tmp_path: Path) -> None:
    config = cfg.load(str(project(tmp_path / "p", ["modules/1.a.py"])))
    started = datetime(2026, 11, 23, 6, 30, tzinfo=UTC)
    a, b = datetime(2026, 11, 22, 6, tzinfo=UTC), datetime(2026, 11, 23, 6, tzinfo=UTC)
    # A scheduled run: its data interval.
    assert af.run_window(config, started, None, {}, (a, b)) == ((a, b), False)
    # A manual run: since the last good run; or since/until params (a backfill).
    last = "2026-11-20T00:00:00+00:00"
    assert af.run_window(config, started, last, {}, None)[0] == (
        datetime(2026, 11, 20, tzinfo=UTC), started)
    window, backfill = af.run_window(config, started, None, {"since": "2026-11-01",
                                                              "until": "2026-11-02"}, None)
    assert backfill and window.start == datetime(2026, 11, 1, tzinfo=UTC)
    with pytest.raises(FatalError, match="since"):
        af.run_window(config, started, None, {"since": "2026-11-03", "until": "2026-11-02"}, None)
    # window_minutes: scheduled and manual alike.
    minutes = dataclasses.replace(config, window_minutes=60.0)
    assert af.run_window(minutes, started, None, {}, (a, b))[0].start == datetime(
        2026, 11, 23, 5, tzinfo=UTC)
    assert af.run_window(minutes, started, last, {}, None)[0].start == datetime(
        2026, 11, 23, 5, 30, tzinfo=UTC)


def test_bad_config_is_one_fatal_error(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"name": "x", "modules": ["modules/missing.py"]}')
    with pytest.raises(FatalError, match="no such module file"):
        af.dag_from_config(config)


def test_a_bad_airflow_env_mapping_is_refused(tmp_path: Path) -> None:
    config = project(tmp_path / "p", ["modules/1.a.py"], airflow={"env": {"A": 1}})
    with pytest.raises(FatalError, match="env: must map variable names"):
        af.dag_from_config(config)


def test_task_ids_that_would_collide_are_refused(tmp_path: Path) -> None:
    config = project(tmp_path / "p", [{"path": "modules/1 a.py", "critical": False},
                                      "modules/1_a.done.py"])
    with pytest.raises(FatalError, match="task id"):
        af.dag_from_config(config)


def test_cron_schedule_gets_data_intervals_in_the_configs_time_zone(tmp_path: Path) -> None:
    from airflow.sdk import CronDataIntervalTimetable

    dag = af.dag_from_config(project(tmp_path / "p", ["modules/1.a.py"],
                                     timezone="Europe/Paris"), schedule="0 6 * * *")
    assert isinstance(dag.timetable, CronDataIntervalTimetable)
    assert str(dag.timetable.timezone) == "Europe/Paris"


def test_task_log_levels() -> None:
    assert af.task_log_level("2026-11-23 06:00:01.123 | ERROR    | 1.a | boom") == 40
    assert af.task_log_level("2026-11-23 06:00:01.123 | STDERR   | 1.a | x") == 20
    assert af.task_log_level("no format | at all") == 20
