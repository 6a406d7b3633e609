"""The retrieval module on a large CSV served on 127.0.0.1, against a bare download.

    python benchmarks/retrieval.py [--megabytes 100] [--rounds 3]

The baseline is the least any careful download can do with the same checks, in
the same interpreter: one GET streamed to a file in 64 KiB blocks, hashed, then
parsed once with the csv module. The module adds a HEAD, the freshness gate,
the temporary file and rename, fsyncs and the manifest. It runs with
PIPELINE_FORCE=1 so that every round downloads. Goals: ratio at most 1.25, and
peak RSS at most 40 MB whatever the size (the download streams).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from _common import PYTHON, REPO, alternate, clean_env, verdict

GOAL = 1.25
RSS_GOAL_MB = 40
BASELINE = """
import csv, hashlib, sys, urllib.request
url, out = sys.argv[1:]
digest = hashlib.sha256()
with urllib.request.urlopen(url) as response, open(out, "wb") as handle:
    while block := response.read(1 << 16):
        digest.update(block)
        handle.write(block)
with open(out, newline="") as handle:
    rows = sum(1 for _ in csv.reader(handle))
print(rows, digest.hexdigest())
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


def big_csv(path: Path, megabytes: int) -> None:
    rows = (REPO / "sample_data" / "seattle-weather.csv").read_bytes().split(b"\n", 1)[1]
    with open(path, "wb") as handle:
        handle.write(b"date,precipitation,temp_max,temp_min,wind,weather\n")
        while handle.tell() < megabytes << 20:
            handle.write(rows)


def measured(command: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one process."""
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{command[1]} exited {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench project"
        served = root / "served"
        served.mkdir(parents=True)
        big_csv(served / "big.csv", args.megabytes)
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/big.csv"
        (root / "modules").mkdir()
        for name in ("_common.py", "1.file_retrieval.py"):
            shutil.copy(REPO / "modules" / name, root / "modules" / name)
        (root / "config.json").write_text(json.dumps(
            {"sources": [{"id": "big", "url": url, "format": "csv"}]}))
        env = dict(clean_env(), PIPELINE_CONFIG=str(root / "config.json"),
                   PIPELINE_LOG_DIR=str(root / "logs"), PIPELINE_RUN_ID="20261123_06h00",
                   PIPELINE_RUN_STARTED="2026-11-23T06:00:00+00:00", PIPELINE_FORCE="1",
                   PIPELINE_DRY_RUN="0", PIPELINE_MODULE="1.file_retrieval",
                   PIPELINE_LAST_RUN_DATE="", no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
        baseline = [PYTHON, "-c", BASELINE, url, str(root / "baseline.csv")]
        module = [PYTHON, str(root / "modules" / "1.file_retrieval.py")]
        peaks: list[float] = []

        def subject() -> float:
            seconds, peak = measured(module, root, env)
            peaks.append(peak)
            return seconds

        base, subj = alternate(args.rounds, lambda: measured(baseline, root, env)[0], subject)
        server.shutdown()
        assert (root / "logs" / "data" / "big.csv").stat().st_size == \
            (served / "big.csv").stat().st_size
    ratio, peak = subj / base, max(peaks)
    print(f"retrieval: {args.megabytes} MB csv over HTTP: download+hash+parse {base:.3f} s, "
          f"module {subj:.3f} s, ratio {ratio:.2f} (goal <= {GOAL}) {verdict(ratio, GOAL)}")
    print(f"retrieval: module peak RSS {peak:.1f} MB (goal <= {RSS_GOAL_MB}) "
          f"{verdict(peak, RSS_GOAL_MB)}")


if __name__ == "__main__":
    main()
