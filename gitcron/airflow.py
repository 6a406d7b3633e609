"""The Airflow DAG factory: the same config and modules as `orchestrator.py`,
one BashOperator per module, with the module contract of README.md (see
docs/airflow.md). The only file of the project that imports Airflow.

Airflow has no per-edge trigger rules, so the contract is wired like this:

- every module waits on the last critical module before it (the "gate") and on
  the task before it, with `none_failed`: a skip (exit 10) does not spread,
  and a critical failure upstream leaves it `upstream_failed` (not run);
- a non-critical module is followed by a join (`all_done`) that the next
  module waits on, so that its failure lets the rest run;
- a recovery script is a task after its module (`all_failed`) that runs only
  when the module itself ran and failed (not when it never ran); a critical
  module with one becomes a gate through a join (`one_success`) of the two;
- one final task is the only leaf, so that the DAG run fails exactly when a
  critical module failed for good; it stores last_run_date in a Variable named
  after the DAG.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from airflow.providers.standard.operators.bash import BashOperator
from airflow.providers.standard.operators.empty import EmptyOperator
from airflow.providers.standard.operators.python import PythonOperator
from airflow.sdk import DAG, CronDataIntervalTimetable, Param, TriggerRule, Variable
from airflow.sdk.exceptions import AirflowException, AirflowSkipException, AirflowTaskTimeout
from airflow.sdk.log import mask_secret

from gitcron import config as cfg
from gitcron import plan, runid
from gitcron.codes import MODULE_SKIP, FatalError
from gitcron.config import Config, ModuleSpec
from gitcron.logs import secret_values

START = "pipeline.start"
FINISH = "pipeline.finish"
JOIN_SUFFIX = ".done"
# XCom key of a module's failed attempt: its exit code, "timeout" or "signal N".
FAILURE_KEY = "failure"
TOKENS = ("GITHUB_TOKEN", "GH_TOKEN")
# Runs whose data interval is their window; a backfill never moves last_run_date.
INTERVAL_RUNS = ("scheduled", "backfill")
NOT_TASK_ID = re.compile(r"[^\w.-]")
JINJA_MARKERS = ("{{", "{%", "{#")
# Any fixed moment in the past: with catchup off, Airflow starts at the next tick.
START_DATE = datetime(2024, 1, 1, tzinfo=timezone.utc)

ModuleStatus = str  # success, skipped, failed, recovered, not_run


@dataclass(frozen=True)
class Step:
    """One module as tasks: its own, its recovery's, and the one the next waits on."""

    spec: ModuleSpec
    task_id: str
    recovery_id: str | None
    outcome_id: str  # the module itself, or the join after it


def dag_from_config(path: str | os.PathLike[str], dag_id: str | None = None,
                    schedule: Any = None) -> DAG:
    """The DAG of the pipeline that the config at `path` describes.

    Modules come from the same loader and planner as `orchestrator.py --list`.
    `schedule`: a cron line (UTC; each run's window is its data interval) or any
    Airflow schedule; default the config's `schedule`, else manual runs only.
    """
    config = cfg.load(str(path))
    check_templatable(config)
    steps = plan_steps(plan.build(config, plan.Selection()).modules)
    dag_id = dag_id or default_dag_id(config)
    with DAG(
        dag_id=dag_id,
        schedule=timetable(schedule if schedule is not None else config.schedule),
        start_date=START_DATE,
        catchup=False,
        max_active_runs=1,
        params={"dry_run": Param(False, type="boolean"), "force": Param(False, type="boolean")},
        doc_md=f"Pipeline of `{config.path}`: {', '.join(s.spec.name for s in steps)}.",
        tags=["pipeline"],
    ) as dag:
        _tasks(config, dag_id, steps)
    return dag


def default_dag_id(config: Config) -> str:
    """The config folder's name, e.g. `weather_pipeline`."""
    return task_id(config.root.name) or "pipeline"


def task_id(name: str) -> str:
    """Airflow task and DAG ids allow letters, digits, `_`, `.` and `-`."""
    return NOT_TASK_ID.sub("_", name)


def check_templatable(config: Config) -> None:
    """Airflow renders bash_command, cwd and env with Jinja: a path holding `{{`
    would be rendered, not run."""
    for place in (config.root, config.log_dir):
        if any(marker in str(place) for marker in JINJA_MARKERS):
            raise FatalError(f"{config.display}: {place}: a path holding '{{{{', '{{%' or "
                             "'{#' cannot run on Airflow (Jinja would render it)")


def timetable(schedule: Any) -> Any:
    """A cron line gets data intervals (Airflow 3's default cron timetable has
    none): they are the runs' windows."""
    if isinstance(schedule, str) and len(schedule.split()) == 5:
        return CronDataIntervalTimetable(schedule, timezone="UTC")
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


def bash_command(spec: ModuleSpec) -> str:
    """`exec` the module, every word quoted; the trailing space keeps Airflow
    from reading a command ending in `.sh` as a template file to load."""
    return "exec " + shlex.join(spec.command) + " "


def failure_text(exit_code: int | None) -> str:
    """PIPELINE_FAILED_EXIT_CODE: the exit code, or `signal N`."""
    if exit_code is None:
        return "not started"
    return f"signal {-exit_code}" if exit_code < 0 else str(exit_code)


class ModuleOperator(BashOperator):
    """A module as a task: its command, its environment, its secrets masked."""

    def __init__(self, *, module_env: Mapping[str, str], mask_env: Sequence[str],
                 keep_tokens: bool, unbuffered: bool, **kwargs: Any) -> None:
        super().__init__(env=dict(module_env), append_env=True, do_xcom_push=False, **kwargs)
        self.mask_env = tuple(mask_env)
        self.keep_tokens = keep_tokens
        self.unbuffered = unbuffered

    def get_env(self, context: Any) -> dict[str, str]:
        env = super().get_env(context)
        if not self.keep_tokens:
            for name in TOKENS:
                env.pop(name, None)
        env.update(context["ti"].xcom_pull(task_ids=START))
        if self.unbuffered:
            env.setdefault("PYTHONUNBUFFERED", "1")
        for value in secret_values(env, self.mask_env):
            mask_secret(value)
        return env

    def execute(self, context: Any) -> Any:
        """Run it; note why an attempt failed, for its recovery script."""
        try:
            return super().execute(context)
        except AirflowSkipException:
            raise
        except AirflowTaskTimeout:
            context["ti"].xcom_push(key=FAILURE_KEY, value="timeout")
            raise
        except AirflowException:
            process = self.subprocess_hook.sub_process
            code = process.returncode if process is not None else None
            context["ti"].xcom_push(key=FAILURE_KEY, value=failure_text(code))
            raise


class RecoveryOperator(ModuleOperator):
    """A module's `on_failure` script: runs only if the module ran and failed."""

    def __init__(self, *, failed_task: str, failed_module: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.failed_task = failed_task
        self.failed_module = failed_module

    def execute(self, context: Any) -> Any:
        # all_failed also fires when the module never ran (upstream_failed);
        # only a module that ran and failed left a failure behind.
        failure = context["ti"].xcom_pull(task_ids=self.failed_task, key=FAILURE_KEY)
        if failure is None:
            raise AirflowSkipException(f"{self.failed_module} did not run: nothing to recover")
        self.env = dict(self.env or {}, PIPELINE_FAILED_MODULE=self.failed_module,
                        PIPELINE_FAILED_EXIT_CODE=str(failure))
        return super().execute(context)


def static_env(config: Config, spec: ModuleSpec) -> dict[str, str]:
    """The PIPELINE_* variables that do not change from run to run."""
    return {
        "PIPELINE_CONFIG": str(config.path),
        "PIPELINE_LOG_DIR": str(config.log_dir.absolute()),
        "PIPELINE_MODULE": spec.name,
    }


def _module_task(config: Config, spec: ModuleSpec, task: str, **kwargs: Any) -> Any:
    cls = RecoveryOperator if kwargs.get("failed_task") else ModuleOperator
    return cls(
        task_id=task,
        bash_command=bash_command(spec),
        cwd=str(config.root),
        module_env=static_env(config, spec),
        mask_env=config.mask_env,
        keep_tokens=spec.github_token,
        unbuffered=spec.unbuffered,
        retries=spec.retries,
        retry_delay=timedelta(seconds=spec.retry_delay_seconds),
        execution_timeout=timedelta(seconds=spec.timeout_seconds),
        **kwargs,
    )


def _tasks(config: Config, dag_id: str, steps: Sequence[Step]) -> None:
    tasks: dict[str, Any] = {
        START: PythonOperator(task_id=START, python_callable=functools.partial(
            start_run, config, dag_id)),
        FINISH: PythonOperator(task_id=FINISH, python_callable=functools.partial(
            finish_run, config, dag_id, steps), trigger_rule=TriggerRule.NONE_FAILED),
    }
    for step in steps:
        tasks.update(_step_tasks(config, step))
    for task, waits in upstreams(steps).items():
        for upstream in waits:
            tasks[upstream] >> tasks[task]


def _step_tasks(config: Config, step: Step) -> dict[str, Any]:
    spec = step.spec
    tasks = {step.task_id: _module_task(config, spec, step.task_id,
                                        skip_on_exit_code=MODULE_SKIP,
                                        trigger_rule=TriggerRule.NONE_FAILED)}
    ends = [tasks[step.task_id]]
    if spec.on_failure is not None and step.recovery_id is not None:
        recovery = _module_task(config, spec.on_failure, step.recovery_id,
                                skip_on_exit_code=None, trigger_rule=TriggerRule.ALL_FAILED,
                                failed_task=step.task_id, failed_module=spec.name)
        tasks[step.task_id] >> recovery
        tasks[step.recovery_id] = recovery
        ends.append(recovery)
    if step.outcome_id != step.task_id:
        # Critical: go on if the module succeeded, skipped or was recovered.
        # Non-critical: go on whatever came of it.
        rule = TriggerRule.ONE_SUCCESS if spec.critical else TriggerRule.ALL_DONE
        join = EmptyOperator(task_id=step.outcome_id, trigger_rule=rule)
        for end in ends:
            end >> join
        tasks[step.outcome_id] = join
    return tasks


# What runs on the workers: the run's context first, the run's end last.

def window(config: Config, started: datetime, last_run_date: str | None,
           interval: tuple[datetime | None, datetime | None] | None
           ) -> tuple[datetime | None, datetime]:
    """A scheduled run's data interval; else as `orchestrator.py` does it:
    `window_minutes` before the start, or from last_run_date to the start."""
    if interval is not None:
        start, end = interval
        if start is not None and end is not None and start < end:
            return start.astimezone(config.tz), end.astimezone(config.tz)
    if config.window_minutes:
        return started - timedelta(minutes=config.window_minutes), started
    return (cfg.parse_timestamp(last_run_date) if last_run_date else None), started


def claim_run_dir(log_dir: Path, started: datetime) -> tuple[str, Path]:
    """A free run id and its folder, taken by creating it (`_2`, `_3`... if the
    minute is taken)."""
    runs = log_dir / runid.RUNS_FOLDER
    runs.mkdir(parents=True, exist_ok=True)
    stub = runid.stub(started)
    n = 1
    while True:
        run_id = runid.with_suffix(stub, n)
        try:
            (runs / run_id).mkdir()
        except FileExistsError:
            n += 1
            continue
        return run_id, runs / run_id


def run_env(run_id: str, run_dir: Path, started: datetime, last_run_date: str | None,
            span: tuple[datetime | None, datetime], dry_run: bool, force: bool
            ) -> dict[str, str]:
    """The PIPELINE_* variables of one run, as every module of it sees them."""
    return {
        "PIPELINE_RUN_ID": run_id,
        "PIPELINE_RUN_DIR": str(run_dir),
        "PIPELINE_RUN_STARTED": started.isoformat(timespec="seconds"),
        "PIPELINE_LAST_RUN_DATE": last_run_date or "",
        "PIPELINE_WINDOW_START": span[0].isoformat(timespec="seconds") if span[0] else "",
        "PIPELINE_WINDOW_END": span[1].isoformat(timespec="seconds"),
        "PIPELINE_DRY_RUN": "1" if dry_run else "0",
        "PIPELINE_FORCE": "1" if force else "0",
    }


def start_run(config: Config, dag_id: str, **context: Any) -> dict[str, str]:
    """The run's id, folder and window; last_run_date from the DAG's Variable
    (the config's own value until the first run on Airflow stored one)."""
    started = datetime.now(config.tz).replace(microsecond=0)
    before = Variable.get(dag_id, default=None) or config.last_run_date
    interval = None
    if context["dag_run"].run_type in INTERVAL_RUNS:
        interval = (context.get("data_interval_start"), context.get("data_interval_end"))
    run_id, run_dir = claim_run_dir(config.log_dir.absolute(), started)
    params = context["params"]
    return run_env(run_id, run_dir, started, before, window(config, started, before, interval),
                   bool(params.get("dry_run")), bool(params.get("force")))


def module_statuses(steps: Sequence[Step], states: Mapping[str, str | None]
                    ) -> dict[str, ModuleStatus]:
    """The run record's module statuses, from the states of the tasks."""
    statuses = {}
    for step in steps:
        state = states.get(step.task_id)
        recovered = step.recovery_id is not None and states.get(step.recovery_id) == "success"
        if state == "failed":
            statuses[step.spec.name] = "recovered" if recovered else "failed"
        elif state in ("success", "skipped"):
            statuses[step.spec.name] = str(state)
        else:
            statuses[step.spec.name] = "not_run"
    return statuses


def run_status(steps: Sequence[Step], statuses: Mapping[str, ModuleStatus]) -> str:
    """success, partial or failed, as `orchestrator.py` decides it (README.md)."""
    for step in steps:
        if step.spec.critical and statuses.get(step.spec.name) == "failed":
            return "failed"
    bad = {"failed", "recovered"}
    return "partial" if any(s in bad for s in statuses.values()) else "success"


def finish_run(config: Config, dag_id: str, steps: Sequence[Step], **context: Any) -> str:
    """Runs only when no critical module failed for good: store last_run_date
    (not under dry_run, nor for a backfill) and drop an empty run folder."""
    ti, dag_run = context["ti"], context["dag_run"]
    run = ti.xcom_pull(task_ids=START)
    states = ti.get_task_states(dag_id=dag_id, run_ids=[dag_run.run_id]).get(dag_run.run_id, {})
    statuses = module_statuses(steps, states)
    status = run_status(steps, statuses)
    summary = ", ".join(f"{name} {state}" for name, state in statuses.items())
    print(f"run {run['PIPELINE_RUN_ID']} {status}: {summary}")
    if run["PIPELINE_DRY_RUN"] == "1":
        print("last_run_date left alone: dry run")
    elif dag_run.run_type == "backfill":
        print("last_run_date left alone: backfill")
    else:
        Variable.set(dag_id, run["PIPELINE_RUN_STARTED"])
        print(f"last_run_date = {run['PIPELINE_RUN_STARTED']} (Variable {dag_id!r})")
    _remove_if_empty(Path(run["PIPELINE_RUN_DIR"]))
    return status


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # it holds the run's outputs: keep it
