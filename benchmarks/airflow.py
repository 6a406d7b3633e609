"""What Airflow adds per module task on a real deployment: the LocalExecutor on
SQLite with `api-server`, `dag-processor` and `scheduler` (tests/airflow/deployment.py).

    /path/to/airflow-venv/bin/python benchmarks/airflow.py [--rounds 3] [--modules 8]

Two DAGs of no-op modules, one of 1 module and one of 1 + N, are triggered one
after the other, alternated, each round; a DAG run's duration is Airflow's own
(its start_date to end_date). The difference of the medians divided by N is
the cost of one more module task: scheduling, the task process, the task
command and its module. The local runner's cost of one more module, measured the
same way (`python orchestrator.py` on the same two configs), is the baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

from _common import PYTHON, REPO, clean_env, make_project, timed

sys.path.insert(0, str(REPO / "tests" / "airflow"))

import deployment  # tests/airflow/deployment.py

NOOP = "import sys\nsys.exit(0)\n"


def project(root: Path, count: int) -> Path:
    modules = {f"{i}.noop.py": NOOP for i in range(1, count + 1)}
    return make_project(root, modules, name=root.name, git={"push": "never"})


def dag_file(dags: Path, config: Path) -> None:
    (dags / f"{config.parent.name}.py").write_text(
        f"import sys\nsys.path.insert(0, {str(REPO)!r})\n"
        "from gitcron.airflow import dag_from_config\n"
        f"dag = dag_from_config({str(config)!r})\n")


def duration(env: dict[str, str], dag_id: str, run_id: str) -> float | None:
    rows = deployment.query(env, "SELECT state, start_date, end_date FROM dag_run WHERE "
                                 "dag_id = ? AND run_id = ?", dag_id, run_id)
    if not rows or rows[0][0] not in deployment.DONE or not rows[0][2]:
        return None
    return (datetime.fromisoformat(rows[0][2]) - datetime.fromisoformat(rows[0][1])
            ).total_seconds()


def dag_run(env: dict[str, str], dag_id: str, n: int) -> float:
    run_id = f"bench__{n}__{time.time_ns()}"
    deployment.airflow(env, "dags", "trigger", dag_id, "--run-id", run_id)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        seconds = duration(env, dag_id, run_id)
        if seconds is not None:
            return seconds
        time.sleep(0.5)
    raise SystemExit(f"benchmark: {dag_id} did not finish")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--modules", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        small = project(work / "bench_small", 1) / "config.json"
        large = project(work / "bench_large", 1 + args.modules) / "config.json"
        (work / "dags").mkdir()
        for config in (small, large):
            dag_file(work / "dags", config)
        os.environ.update(AIRFLOW_HOME=str(work / "airflow"), AIRFLOW__CORE__LOAD_EXAMPLES="False",
                          AIRFLOW__CORE__DAGS_FOLDER=str(work / "dags"), PYTHONWARNINGS="ignore")
        env = dict(clean_env(), **deployment.environment())
        deployment.airflow(env, "db", "migrate")
        logs = work / "airflow" / "deployment"
        logs.mkdir(parents=True)
        processes = deployment.start(env, logs)
        try:
            if not deployment.wait_for("the api-server", time.monotonic() + 300,
                                       lambda: deployment.healthy(env)):
                raise SystemExit("benchmark: the api-server did not start")
            for dag_id in ("bench_small", "bench_large"):
                if not deployment.wait_for(dag_id, time.monotonic() + 300,
                                           lambda d=dag_id: deployment.parsed(env, d)):
                    raise SystemExit("benchmark: the DAGs were not parsed")
                deployment.airflow(env, "dags", "unpause", dag_id)
            dag_run(env, "bench_small", 0)  # warm-up
            a, b = [], []
            for i in range(args.rounds):
                a.append(dag_run(env, "bench_small", i))
                b.append(dag_run(env, "bench_large", i))
        finally:
            deployment.stop(processes)
        local = [PYTHON, str(REPO / "orchestrator.py"), "--no-push", "--config"]
        la = [timed([*local, str(small)], small.parent) for _ in range(args.rounds)]
        lb = [timed([*local, str(large)], large.parent) for _ in range(args.rounds)]
    per_task = (statistics.median(b) - statistics.median(a)) / args.modules
    per_local = (statistics.median(lb) - statistics.median(la)) / args.modules
    print(f"airflow: real deployment (LocalExecutor, SQLite), {args.rounds} rounds: DAG run of "
          f"1 module {statistics.median(a):.2f} s, of {1 + args.modules} modules "
          f"{statistics.median(b):.2f} s: {per_task:.2f} s per module task; local runner "
          f"{per_local * 1000:.0f} ms per module; ratio {per_task / max(per_local, 1e-6):.0f} "
          f"(cpu count {os.cpu_count()})")


if __name__ == "__main__":
    main()
