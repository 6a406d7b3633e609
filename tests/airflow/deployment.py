"""A real Airflow deployment for one DAG run, within a time budget.

    python tests/airflow/deployment.py DAG_ID BUDGET_SECONDS [CONF_JSON]

Starts `airflow api-server` (on 127.0.0.1), `airflow dag-processor` and
`airflow scheduler` with the LocalExecutor on the SQLite database of
AIRFLOW_HOME, unpauses DAG_ID, triggers one run, and waits for it to end.
Whatever happens, every process it started (each in its own session, with
what they started) is killed at the end. Prints the run's state and the
seconds from trigger to end; exit 0 when the run ended within the budget.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

AIRFLOW = str(Path(sys.executable).parent / "airflow")
DONE = ("success", "failed")
STOP_GRACE_SECONDS = 15


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def environment() -> dict[str, str]:
    port = free_port()
    return dict(
        os.environ,
        AIRFLOW__CORE__EXECUTOR="LocalExecutor",
        AIRFLOW__CORE__PARALLELISM="4",
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{port}/execution/",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(port),
        AIRFLOW__API__BASE_URL=f"http://127.0.0.1:{port}",
        AIRFLOW__API__WORKERS="1",
        AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(32),
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
        AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME="0.5",
        AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_SEC="2",
    )


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=120)


def database(env: dict[str, str]) -> str:
    return str(Path(env["AIRFLOW_HOME"]) / "airflow.db")


def query(env: dict[str, str], sql: str, *args: str) -> list[tuple]:
    """Read the deployment's SQLite database: polling it costs nothing, where each
    `airflow` command costs seconds of CPU that the scheduler needs."""
    try:
        with sqlite3.connect(f"file:{database(env)}?mode=ro", uri=True, timeout=5) as db:
            return db.execute(sql, args).fetchall()
    except sqlite3.Error:
        return []  # not created yet, or busy: ask again


def run_state(env: dict[str, str], dag_id: str, run_id: str) -> str | None:
    rows = query(env, "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id)
    return str(rows[0][0]) if rows else None


def parsed(env: dict[str, str], dag_id: str) -> bool:
    return bool(query(env, "SELECT 1 FROM dag WHERE dag_id = ?", dag_id))


def start(env: dict[str, str], logs: Path) -> list[subprocess.Popen[bytes]]:
    processes = []
    for command in (["api-server"], ["dag-processor"], ["scheduler"]):
        out = open(logs / f"{command[0]}.log", "wb")
        processes.append(subprocess.Popen([AIRFLOW, *command], env=env, stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True))
    return processes


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    """SIGTERM to each process group, SIGKILL to what is left after the grace."""
    for process in processes:
        _signal(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass
    for process in processes:
        _signal(process.pid, signal.SIGKILL)
        process.wait()


def _signal(group: int, signum: int) -> None:
    try:
        os.killpg(group, signum)
    except (ProcessLookupError, PermissionError):
        pass


def healthy(env: dict[str, str]) -> bool:
    url = env["AIRFLOW__API__BASE_URL"] + "/api/v2/monitor/health"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except OSError:
        return False


def wait_for(what: str, deadline: float, check: Callable[[], bool]) -> bool:
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.5)
    print(f"deployment: {what}: not within the budget", file=sys.stderr)
    return False


def main() -> int:
    dag_id, budget = sys.argv[1], float(sys.argv[2])
    conf = sys.argv[3] if len(sys.argv) > 3 else "{}"
    deadline = time.monotonic() + budget
    env = environment()
    logs = Path(env["AIRFLOW_HOME"]) / "deployment"
    logs.mkdir(parents=True, exist_ok=True)
    processes = start(env, logs)
    try:
        # Tasks report to the api-server: none may start before it answers.
        if not wait_for("the api-server", deadline, lambda: healthy(env)):
            return 1
        if not wait_for(f"DAG {dag_id} parsed", deadline, lambda: parsed(env, dag_id)) \
                or airflow(env, "dags", "unpause", dag_id).returncode != 0:
            return 1
        run_id = f"deployment__{int(time.time())}"
        triggered = airflow(env, "dags", "trigger", dag_id, "--run-id", run_id, "--conf", conf)
        if triggered.returncode != 0:
            print(f"deployment: trigger: {triggered.stderr.strip()[-500:]}", file=sys.stderr)
            return 1
        t0 = time.monotonic()
        state: list[str | None] = [None]

        def ended() -> bool:
            state[0] = run_state(env, dag_id, run_id)
            return state[0] in DONE

        ok = wait_for(f"DAG run {run_id}", deadline, ended)
        print(json.dumps({"run_id": run_id, "state": state[0],
                          "seconds": round(time.monotonic() - t0, 1)}))
        return 0 if ok else 1
    finally:
        stop(processes)


if __name__ == "__main__":
    raise SystemExit(main())
