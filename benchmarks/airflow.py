"""What Airflow adds per task: `airflow dags test` of the shipped pipeline against
`python orchestrator.py --no-push` on the same config, in a copy of the project.

    /path/to/airflow-venv/bin/python benchmarks/airflow.py [--rounds 3]

Run it with the interpreter of a venv that has requirements-airflow.txt (the
orchestrator then runs with the same interpreter). Both are warmed up once (the
first run fetches the sample data; later ones skip every module), then
alternated; the medians are compared, and the difference is divided by the
number of modules.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from _common import PYTHON, REPO, alternate, clean_env

AIRFLOW = str(Path(PYTHON).parent / "airflow")
COPIED = ("config.json", "modules", "sample_data", "gitcron", "dags", "orchestrator.py")


def copy_project(root: Path) -> Path:
    root.mkdir()
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, root / name)
    return root


def environment(work: Path, project: Path) -> dict[str, str]:
    """Both sides get the same variables, Python's buffering set alike."""
    return dict(clean_env(), AIRFLOW_HOME=str(work / "airflow"),
                AIRFLOW__CORE__DAGS_FOLDER=str(project / "dags"),
                AIRFLOW__CORE__LOAD_EXAMPLES="False", PYTHONWARNINGS="ignore",
                PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")


def timed(command: list[str], cwd: Path, env: dict[str, str]) -> float:
    import time

    start = time.perf_counter()
    subprocess.run(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        project = copy_project(work / "shipped")
        env = environment(work, project)
        (work / "airflow").mkdir()
        subprocess.run([AIRFLOW, "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        orchestrator = [PYTHON, str(project / "orchestrator.py"), "--no-push"]
        dags_test = [AIRFLOW, "dags", "test", "shipped"]
        timed(orchestrator, project, env)
        timed(dags_test, project, env)
        base, subject = alternate(args.rounds, lambda: timed(orchestrator, project, env),
                                  lambda: timed(dags_test, project, env))
        modules = sum(1 for p in (project / "modules").iterdir() if p.name[0].isdigit())
    print(f"airflow: shipped pipeline ({modules} modules, all skipping), {args.rounds} rounds: "
          f"orchestrator {base:.2f} s, airflow dags test {subject:.2f} s, "
          f"ratio {subject / base:.1f}; Airflow adds {(subject - base) / modules:.2f} s per module "
          f"(cpu count {os.cpu_count()})")


if __name__ == "__main__":
    main()
