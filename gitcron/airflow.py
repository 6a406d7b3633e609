"""The Airflow DAG factory: the same config and modules as `orchestrator.py`,
one task per module (docs/airflow.md). The only file of the project that
imports Airflow.

Every module task runs the runner's own task command (`python -m gitcron task
NAME`, gitcron/task.py), so a module runs as it runs locally: stdin /dev/null,
its own process group, the same kill on timeout and cleanup of what it leaves,
the same masking, levels, environment and exit codes. Airflow does the order,
the retries and the recovery, wired like this (Airflow has no per-edge trigger
rules):

- every module waits on the last critical module before it (the "gate") and on
  the task before it, with `none_failed`: a skip (exit 10) does not spread,
  and a critical failure upstream leaves it `upstream_failed` (not run);
- a non-critical module is followed by a join (`all_done`) that the next
  module waits on, so that its failure lets the rest run;
- a recovery script is a task after its module (`all_failed`) that runs only
  when the module itself ran and failed (not when it never ran); a critical
  module with one becomes a gate through a join (`one_success`) of the two;
- `pipeline.start` claims the run's id and folder and fixes its window;
  `pipeline.finish` (`all_done`, the only leaf) writes the run record, sends
  the notifications, and fails when a critical module failed for good, so
  the DAG run's state is the run's.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, BaseOperator, CronDataIntervalTimetable, Param, TriggerRule
from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from airflow.sdk.log import mask_secret

import gitcron
from gitcron import config as cfg
from gitcron import plan, task
from gitcron import window as windows
from gitcron.codes import EXIT_OK, MODULE_SKIP, FatalError
from gitcron.config import Config, ModuleSpec
from gitcron.execute import KILL_GRACE_SECONDS
from gitcron.window import Window

START = "pipeline.start"
FINISH = "pipeline.finish"
JOIN_SUFFIX = ".done"
OUTCOME_KEY = "outcome"  # XCom of a module task: task.outcome_json of its attempt
# Runs whose data interval is their window.
INTERVAL_RUNS = ("scheduled", "backfill")
NOT_TASK_ID = re.compile(r"[^\w.-]")
# Any fixed moment in the past: with catchup off, Airflow starts at the next tick.
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)
# Airflow's execution_timeout is a backstop above the runner's own timeout, which
# fires first: the module's timeout, its kill grace, and the cleanup after it.
BACKSTOP_SECONDS = 2 * KILL_GRACE_SECONDS + 60
# The folder that holds the gitcron package: the task command imports it from there.
PACKAGE_ROOT = str(Path(gitcron.__file__).resolve().parent.parent)
LOG_LEVELS = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "STDERR": logging.INFO,
              "WARNING": logging.WARNING, "ERROR": logging.ERROR}
PARAMS = {
    "dry_run": Param(False, type="boolean", description="PIPELINE_DRY_RUN=1"),
    "force": Param(False, type="boolean", description="PIPELINE_FORCE=1"),
    "since": Param(None, type=["null", "string"],
                   description="a backfill: the window's start (ISO 8601)"),
    "until": Param(None, type=["null", "string"],
                   description="with since: the window's end (default: the run's start)"),
}


@dataclass(frozen=True)
class Step:
    """One module as tasks: its own, its recovery's, and the one the next waits on."""

    spec: ModuleSpec
    task_id: str
    recovery_id: str | None
    outcome_id: str  # the module itself, or the join after it


@dataclass(frozen=True)
class Where:
    """What every task needs to find the project and its data on a worker."""

    config: str  # the config file's absolute path
    data_dir: str | None  # log_dir lives under it; None: $GITCRON_DATA_DIR, else the project


def dag_from_config(path: str | os.PathLike[str], dag_id: str | None = None,
                    schedule: Any = None, *, data_dir: str | os.PathLike[str] | None = None,
                    default_args: Mapping[str, Any] | None = None, queue: str | None = None,
                    pool: str | None = None) -> DAG:
    """The DAG of the pipeline that the config at `path` describes.

    `dag_id`: default the config's `name`. `schedule`: a cron line (in the
    config's `timezone`; each run's window is its data interval) or any Airflow
    schedule; default the config's `schedule`, else manual runs only.
    `data_dir`: where `log_dir` lives (default $GITCRON_DATA_DIR, else beside the
    config): outside a DAG bundle, whose checkout changes at every commit.
    `default_args`, `queue`, `pool`: for every task.
    """
    config = cfg.load(str(path))
    steps = plan_steps(plan.build(config, plan.Selection()).modules)
    where = Where(str(config.path), str(data_dir) if data_dir is not None else None)
    common = {k: v for k, v in (("queue", queue), ("pool", pool)) if v is not None}
    with DAG(
        dag_id=dag_id or configured_dag_id(config),
        schedule=timetable(schedule if schedule is not None else config.schedule, config),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        params=dict(PARAMS),
        default_args=dict(default_args or {}),
        doc_md=f"Pipeline of `{config.path}`: {', '.join(s.spec.name for s in steps)}.",
        tags=["gitcron"],
    ) as dag:
        _tasks(config, where, steps, common)
    return dag


def configured_dag_id(config: Config) -> str:
    """The config's `name`: never a folder's name, which differs between the
    dag-processor's checkout and a worker's (a Git DAG bundle)."""
    name = config.name
    if not name or not name.strip():
        raise FatalError(f"{config.display}: name: set the pipeline's name (the DAG's id), "
                         "or pass dag_id= to dag_from_config")
    if NOT_TASK_ID.search(name):
        raise FatalError(f"{config.display}: name: {name!r} is not a DAG id (letters, digits, "
                         "'_', '.' and '-')")
    return name


def task_id(name: str) -> str:
    """Airflow task ids allow letters, digits, `_`, `.` and `-`."""
    return NOT_TASK_ID.sub("_", name)


def timetable(schedule: Any, config: Config) -> Any:
    """A cron line gets data intervals (Airflow 3's default cron timetable has
    none), in the config's time zone: they are the runs' windows."""
    if isinstance(schedule, str) and len(schedule.split()) == 5:
        return CronDataIntervalTimetable(schedule, timezone=config.timezone_name)
    return schedule


def plan_steps(modules: Sequence[ModuleSpec]) -> tuple[Step, ...]:
    """Task ids for each module; FatalError if two would collide."""
    steps, seen = [], {START, FINISH}
    for spec in modules:
        own = task_id(spec.name)
        recovery = task_id(spec.on_failure.name) if spec.on_failure else None
        needs_join = recovery is not None or not spec.critical
        outcome = own + JOIN_SUFFIX if needs_join else own
        for name in {own, outcome, recovery} - {None}:
            if name in seen:
                raise FatalError(f"module {spec.name!r}: its task id {name!r} is taken "
                                 "by another module or task")
            seen.add(name)
        steps.append(Step(spec, own, recovery, outcome))
    return tuple(steps)


def upstreams(steps: Sequence[Step]) -> dict[str, tuple[str, ...]]:
    """What each module's task waits on: the last gate and the previous outcome."""
    waits: dict[str, tuple[str, ...]] = {}
    gate, previous = START, START
    for step in steps:
        waits[step.task_id] = tuple(dict.fromkeys((gate, previous)))
        previous = step.outcome_id
        if step.spec.critical:
            gate = step.outcome_id
    waits[FINISH] = tuple(dict.fromkeys((gate, previous)))
    return waits


def task_command(where: Where, name: str, run: str, attempt: int, outcome: str,
                 recover: str | None = None) -> list[str]:
    """The runner's own task command for one attempt of module `name`."""
    argv = [sys.executable, "-m", "gitcron", "task", name, "--config", where.config,
            "--run", run, "--attempt", str(attempt), "--outcome", outcome]
    if recover is not None:
        argv += ["--recover", recover]
    if where.data_dir is not None:
        argv += ["--data-dir", where.data_dir]
    return argv


class ModuleOperator(BaseOperator):
    """A module (or its recovery script) as a task: the runner's task command.

    Only `airflow_env` (the config's `airflow.env`) is rendered with Jinja; the
    module's path, name and everything else are passed as they are.
    """

    template_fields = ("airflow_env",)

    def __init__(self, *, where: Where, module: str, airflow_env: Mapping[str, str],
                 recovers: str | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.where = where
        self.module = module
        self.airflow_env = dict(airflow_env)
        self.recovers = recovers  # the module task whose failure this recovers
        self._process: subprocess.Popen[bytes] | None = None

    def execute(self, context: Any) -> None:
        ti = context["ti"]
        run = ti.xcom_pull(task_ids=START)
        recover = None
        if self.recovers is not None:
            # all_failed also fires when the module never ran (upstream_failed);
            # only a module that ran and failed left its outcome behind.
            failed = ti.xcom_pull(task_ids=self.recovers, key=OUTCOME_KEY)
            if not failed or failed.get("status") != "failed":
                raise AirflowSkipException(f"{self.module} did not fail: nothing to recover")
            recover = str(failed.get("failure"))
        for value in self.airflow_env.values():
            mask_secret(value)
        with tempfile.TemporaryDirectory(prefix="gitcron-task-") as folder:
            outcome_path = os.path.join(folder, "outcome.json")
            argv = task_command(self.where, self.module, run, int(ti.try_number or 1),
                                outcome_path, recover)
            code = self._run(argv)
            outcome = _read_json(outcome_path)
        if outcome is not None:
            ti.xcom_push(key=OUTCOME_KEY, value=outcome)
        if code == MODULE_SKIP and self.recovers is None:
            raise AirflowSkipException(f"{self.module}: skipped (exit code {MODULE_SKIP})")
        if code != EXIT_OK and outcome is not None and outcome.get("retry") is False:
            # The module's retry policy says no more (retry_on_exit_codes, or none left).
            raise AirflowFailException(f"{self.module}: {_how(outcome, code)}")
        if code != EXIT_OK:
            raise AirflowException(f"{self.module}: {_how(outcome, code)}")

    def _run(self, argv: list[str]) -> int:
        env = dict(os.environ, **self.airflow_env)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, (PACKAGE_ROOT, env.get("PYTHONPATH"))))
        # stdin /dev/null: a task's own stdin is its socket to the supervisor.
        self._process = process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            cwd=str(Path(self.where.config).parent), env=env)
        try:
            assert process.stdout is not None
            for raw in process.stdout:
                # Masked already by the runner (Airflow's own masker sees them too).
                line = raw.decode("utf-8", "replace").rstrip("\n")
                self.log.log(task_log_level(line), "%s", line)
            return process.wait()
        except BaseException:  # execution_timeout, or the task being stopped
            self._stop()
            raise

    def _stop(self) -> None:
        """SIGTERM: the task command stops its module's group, kills its leftovers
        and exits; SIGKILL if it has not within the grace (and the cleanup)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=2 * KILL_GRACE_SECONDS + 5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def on_kill(self) -> None:
        self._stop()


def task_log_level(line: str) -> int:
    """The task log's level of a runner's line (`time | LEVEL | module | text`):
    its own, with a module's stderr as INFO (Airflow has no level between)."""
    parts = line.split(" | ", 2)
    level = parts[1].strip() if len(parts) == 3 else "INFO"
    return LOG_LEVELS.get(level, logging.INFO)


def _read_json(path: str) -> dict[str, Any] | None:
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except (OSError, ValueError):
        return None


def _how(outcome: Mapping[str, Any] | None, code: int) -> str:
    if outcome is None:
        return f"the task command exited {code}"
    return f"{outcome.get('status')} ({outcome.get('failure')})"


def _module_task(where: Where, spec: ModuleSpec, task_id_: str, airflow_env: Mapping[str, str],
                 common: Mapping[str, Any], **kwargs: Any) -> ModuleOperator:
    return ModuleOperator(
        task_id=task_id_,
        where=where,
        module=spec.name,
        airflow_env=airflow_env,
        execution_timeout=timedelta(seconds=spec.timeout_seconds + BACKSTOP_SECONDS),
        **common,
        **kwargs,
    )


def _tasks(config: Config, where: Where, steps: Sequence[Step], common: Mapping[str, Any]
           ) -> None:
    tasks: dict[str, Any] = {
        START: PythonOperator(task_id=START, python_callable=functools.partial(
            start_run, where), **common),
        FINISH: PythonOperator(task_id=FINISH, python_callable=functools.partial(
            finish_run, where, steps), trigger_rule=TriggerRule.ALL_DONE, **common),
    }
    airflow_env = task.airflow_env(config)
    for step in steps:
        tasks.update(_step_tasks(where, step, airflow_env, common))
    for task_name, waits in upstreams(steps).items():
        for upstream in waits:
            tasks[upstream] >> tasks[task_name]


def _step_tasks(where: Where, step: Step, airflow_env: Mapping[str, str],
                common: Mapping[str, Any]) -> dict[str, Any]:
    spec = step.spec
    tasks = {step.task_id: _module_task(
        where, spec, step.task_id, airflow_env, common, retries=spec.retries,
        retry_delay=timedelta(seconds=spec.retry_delay_seconds),
        retry_exponential_backoff=2.0 if spec.retry_backoff == "exponential" else 0,
        max_retry_delay=timedelta(seconds=spec.retry_max_delay_seconds),
        trigger_rule=TriggerRule.NONE_FAILED)}
    ends = [tasks[step.task_id]]
    if spec.on_failure is not None and step.recovery_id is not None:
        recovery = _module_task(where, spec, step.recovery_id, airflow_env, common, retries=0,
                                trigger_rule=TriggerRule.ALL_FAILED, recovers=step.task_id)
        tasks[step.task_id] >> recovery
        tasks[step.recovery_id] = recovery
        ends.append(recovery)
    if step.outcome_id != step.task_id:
        # Critical: go on if the module succeeded, skipped or was recovered.
        # Non-critical: go on whatever came of it.
        rule = TriggerRule.ONE_SUCCESS if spec.critical else TriggerRule.ALL_DONE
        join = EmptyOperator(task_id=step.outcome_id, trigger_rule=rule, **common)
        for end in ends:
            end >> join
        tasks[step.outcome_id] = join
    return tasks


# What runs on the workers: the run's start first, its end last.

def _load(where: Where) -> Config:
    data_dir = where.data_dir or os.environ.get(task.DATA_DIR_VARIABLE)
    return task.under_data_dir(cfg.load(where.config), data_dir)


def run_window(config: Config, started: datetime, last_good: str | None,
               params: Mapping[str, Any], interval: tuple[Any, Any] | None
               ) -> tuple[Window, bool]:
    """The run's window from Airflow's state, by the runner's own rule (window.py);
    and whether the run is a backfill.

    `since`/`until` params: that window (a backfill). A scheduled run: its data
    interval, or with `window_minutes` the minutes before its end. A manual run:
    the minutes before its start, or since the last good run.
    """
    if params.get("since"):
        since = windows.parse_time(str(params["since"]), "since", config.tz)
        until = (windows.parse_time(str(params["until"]), "until", config.tz)
                 if params.get("until") else windows.in_zone(started, config.tz))
        return windows.explicit(since, until), True
    if params.get("until"):
        raise FatalError("until: goes with since (the window's start)")
    if interval is not None and interval[0] is not None and interval[1] is not None \
            and interval[0] < interval[1]:
        start = windows.iso(interval[0])
        return windows.default(start, interval[1], config.window_minutes, config.tz), False
    return windows.default(last_good, started, config.window_minutes, config.tz), False


def start_run(where: Where, **context: Any) -> str:
    """The run's id (claimed from its start), folder and window; "the last good
    run" is the previous successful DAG run (the config's last_run_date before
    the first one)."""
    config = _load(where)
    dag_run = context["dag_run"]
    run_type = str(getattr(dag_run.run_type, "value", dag_run.run_type))
    started = (dag_run.start_date or datetime.now(timezone.utc)).replace(microsecond=0)
    previous = context.get("prev_start_date_success")
    last_good = (windows.iso(windows.in_zone(previous, config.tz)) if previous
                 else config.last_run_date)
    interval = None
    if run_type in INTERVAL_RUNS:
        interval = (context.get("data_interval_start"), context.get("data_interval_end"))
    params = context["params"]
    window, backfill = run_window(config, started, last_good, params, interval)
    run = task.begin(config, started, last_good, window, dry_run=bool(params.get("dry_run")),
                     force=bool(params.get("force")),
                     backfill=backfill or run_type == "backfill",
                     trigger=f"airflow {run_type}")
    return run.to_json()


def finish_run(where: Where, steps: Sequence[Step], **context: Any) -> str:
    """Write the run record (history, status and --resume read it), the review
    report and the notifications; fail when a critical module failed for good."""
    ti, dag_run = context["ti"], context["dag_run"]
    run_json = ti.xcom_pull(task_ids=START)
    if not run_json:
        raise AirflowException(f"{START} did not run: no run to finish")
    config = _load(where)
    states = ti.get_task_states(dag_id=dag_run.dag_id, run_ids=[dag_run.run_id]
                                ).get(dag_run.run_id, {})
    found = {}
    for step in steps:
        recovery = (ti.xcom_pull(task_ids=step.recovery_id, key=OUTCOME_KEY)
                    if step.recovery_id else None)
        found[step.spec.name] = task.TaskState(
            states.get(step.task_id), ti.xcom_pull(task_ids=step.task_id, key=OUTCOME_KEY),
            recovery)
    record = task.finish(config, task.TaskRun.from_json(run_json), found, extra={
        "airflow": {"dag_id": dag_run.dag_id, "dag_run_id": dag_run.run_id}})
    if record["status"] == "failed":
        raise AirflowException(f"run {record['run_id']} failed")
    return str(record["status"])
