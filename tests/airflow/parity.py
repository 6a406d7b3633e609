"""Parity: the fixture run by the local runner and on Airflow, compared.

    python tests/airflow/parity.py DAG_ID LOCAL_ROOT AIRFLOW_ROOT DOC

LOCAL_ROOT and AIRFLOW_ROOT hold each run's `data and logs/` (the newest run
record there is the run). Compares, module by module: the statuses in the two
records, the PIPELINE_* variables each saw (`1.ok` leaves them in the run's
folder), and the lines each log holds for the modules (times and durations
aside). Then checks DOC's parity table (the section "## Parity"): each row's
statuses must be what both runs recorded and the DAG run's task state. One
line per difference and exit 1; "parity: ok" and exit 0.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from gitcron import runid

AIRFLOW = str(Path(sys.executable).parent / "airflow")
LOG_DIR = "data and logs"
# The variables whose values differ by nature (a path, the moment); checked apart.
OWN_VALUES = {"PIPELINE_RUN_ID", "PIPELINE_RUN_STARTED", "PIPELINE_WINDOW_END",
              "PIPELINE_RUN_DIR", "PIPELINE_CONFIG", "PIPELINE_LOG_DIR"}
DURATION = re.compile(r"\b\d+(\.\d+)? s\b")
STAMP = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} \| ")


def newest(root: Path) -> tuple[dict, list[str]]:
    # Either log_layout: `workflow_<id>.json` in log_dir, or in its YYYY/MM/DD/ folders.
    paths = sorted((root / LOG_DIR).rglob("workflow_*.json"), key=lambda p: p.stat().st_mtime_ns)
    record = json.loads(paths[-1].read_text())
    log = paths[-1].with_suffix(".log").read_text(encoding="utf-8")
    return record, log.splitlines()


def module_lines(lines: list[str]) -> list[str]:
    """`LEVEL | module | text` of the modules' own lines, durations as `N s`."""
    kept = []
    for line in lines:
        rest = STAMP.sub("", line)
        if " | orchestrator | " not in rest:
            kept.append(DURATION.sub("N s", rest))
    return kept


def environment(root: Path, record: dict) -> dict[str, str]:
    folder = Path(record["run_dir"]) if record.get("run_dir") else None
    if folder is None:
        return {}
    folder = folder if folder.is_absolute() else root / folder
    path = folder / "env" / "1.ok.json"
    return json.loads(path.read_text()) if path.exists() else {}


def env_faults(local: dict[str, str], airflow: dict[str, str], log_dir: Path) -> list[str]:
    found = []
    if set(local) != set(airflow) or not local:
        found.append(f"variables differ: local only {sorted(set(local) - set(airflow))}, "
                     f"Airflow only {sorted(set(airflow) - set(local))}")
    for name in sorted(set(local) - OWN_VALUES):
        if local.get(name) != airflow.get(name):
            found.append(f"{name}: local {local.get(name)!r}, Airflow {airflow.get(name)!r}")
    for env, engine, where in ((local, "local", None), (airflow, "Airflow", log_dir)):
        run_id = env.get("PIPELINE_RUN_ID", "")
        if not runid.RUN_ID.fullmatch(run_id):
            found.append(f"{engine}: PIPELINE_RUN_ID {run_id!r} is not a run id")
        if Path(env.get("PIPELINE_RUN_DIR", "")).parts[-2:] != (runid.RUNS_FOLDER, run_id):
            found.append(f"{engine}: PIPELINE_RUN_DIR {env.get('PIPELINE_RUN_DIR')!r}")
        if env.get("PIPELINE_WINDOW_END") != env.get("PIPELINE_RUN_STARTED"):
            found.append(f"{engine}: the window does not end at the run's start")
        if where is not None and Path(env.get("PIPELINE_LOG_DIR", "")) != where:
            found.append(f"{engine}: PIPELINE_LOG_DIR {env.get('PIPELINE_LOG_DIR')!r}, "
                         f"expected {where}")
    return found


def task_states(dag_id: str) -> dict[str, str]:
    def listed(*args: str) -> list[dict]:
        out = subprocess.run([AIRFLOW, *args, "-o", "json"], capture_output=True, text=True,
                             check=True).stdout
        return next((json.loads(line) for line in reversed(out.splitlines())
                     if line.startswith("[")), [])

    runs = sorted(listed("dags", "list-runs", dag_id), key=lambda r: r["start_date"] or "")
    return {t["task_id"]: t["state"]
            for t in listed("tasks", "states-for-dag-run", dag_id, runs[-1]["run_id"])}


def parity_table(doc: Path) -> list[list[str]]:
    """The rows of the first table after `## Parity`: cells without backquotes."""
    text = doc.read_text(encoding="utf-8").split("\n## Parity", 1)[1]
    rows = [line for line in text.splitlines() if line.startswith("|")]
    return [[cell.strip().strip("`") for cell in row.strip("|").split("|")] for row in rows[2:]]


def table_faults(rows: list[list[str]], local: dict, airflow: dict, states: dict[str, str]
                 ) -> list[str]:
    """Columns: module, what it does, status (both records), Airflow task state."""
    found = []
    local_modules = {m["name"]: m["status"] for m in local["modules"]}
    airflow_modules = {m["name"]: m["status"] for m in airflow["modules"]}
    seen = set()
    for module, _, status, state in (row[:4] for row in rows):
        if module == "the run":
            got = {local["status"], airflow["status"]}
        else:
            seen.add(module)
            got = {local_modules.get(module), airflow_modules.get(module)}
        if got != {status}:
            found.append(f"table row {module}: status {status}, the runs recorded {sorted(map(str, got))}")
        task = "pipeline.finish" if module == "the run" else re.sub(r"[^\w.-]", "_", module)
        if states.get(task) != state:
            found.append(f"table row {module}: task state {state}, Airflow had {states.get(task)}")
    missing = set(local_modules) - seen
    if missing:
        found.append(f"the table lacks {sorted(missing)}")
    return found


def main() -> int:
    dag_id, local_root, airflow_root, doc = sys.argv[1], *map(Path, sys.argv[2:5])
    local, local_log = newest(local_root)
    airflow, airflow_log = newest(airflow_root)
    found = []
    if [(m["name"], m["status"]) for m in local["modules"]] != \
            [(m["name"], m["status"]) for m in airflow["modules"]] or \
            local["status"] != airflow["status"]:
        found.append(f"statuses: local {local['status']} {local['modules']}, "
                     f"Airflow {airflow['status']} {airflow['modules']}")
    found += env_faults(environment(local_root, local), environment(airflow_root, airflow),
                        (airflow_root / LOG_DIR).absolute())
    ours, theirs = module_lines(local_log), module_lines(airflow_log)
    if ours != theirs:
        for a, b in zip(ours + [""] * len(theirs), theirs + [""] * len(ours), strict=False):
            if a != b:
                found.append(f"logs differ: local {a!r}, Airflow {b!r}")
                break
    found += table_faults(parity_table(doc), local, airflow, task_states(dag_id))
    for line in found:
        print(f"parity: {line}")
    if not found:
        print(f"parity: ok ({len(local['modules'])} modules, {len(ours)} log lines alike)")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
