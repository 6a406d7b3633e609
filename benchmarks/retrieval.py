"""The retrieval module on a large CSV served on 127.0.0.1, against bare clients.

    python benchmarks/retrieval.py [--megabytes 100] [--rounds 3] [--max-batches 5]

Three paths, each against the least a careful client can do for the same
result, in the same interpreter and environment (PYTHONUNBUFFERED=1 as the
orchestrator sets it, PYTHONDONTWRITEBYTECODE=1, on both sides), turn about:

- forced (PIPELINE_FORCE=1): every round downloads. Baseline: one GET
  streamed to a file in 64 KiB blocks, hashed, then parsed once with the csv
  module. The module adds the temporary file and rename, fsyncs and the
  manifest.
- 304: the server's HEAD gives a weak ETag, which settles nothing, so the
  module sends a conditional GET, answered 304. Baseline: hash the local copy
  (the module checks that its copy is intact before it trusts the manifest),
  a HEAD, a conditional GET.
- 200, same validators: a server that ignores conditional requests sends the
  whole body again, with the same weak ETag. Baseline: hash the local copy, a
  HEAD, the GET streamed to a file and hashed; the digests compared.

Pairs come in batches of --rounds until a batch moves the median paired ratio
by at most 3%. Goals: ratio at most 1.25 on each path, and peak RSS at most 40 MB whatever the
size (the download streams).
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


# Both conditional baselines: hash the local copy, HEAD, then a conditional GET.
CONDITIONAL = """
import hashlib, sys, urllib.error, urllib.request
url, local, out = sys.argv[1:]
def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
known = sha256(local)
with urllib.request.urlopen(urllib.request.Request(url, method="HEAD")) as response:
    etag = response.headers["ETag"]
request = urllib.request.Request(url, headers={"If-None-Match": etag})
try:
    with urllib.request.urlopen(request) as response, open(out, "wb") as handle:
        digest = hashlib.sha256()
        while block := response.read(1 << 16):
            digest.update(block)
            handle.write(block)
    print("same" if digest.hexdigest() == known else "changed")
except urllib.error.HTTPError as exc:
    assert exc.code == 304, exc.code
    print("304")
"""
WEAK_ETAG = 'W/"v1"'
EXPECTED = {"forced": "big: downloaded", "304": "big: up to date: 304 Not Modified",
            "200": "big: up to date: content unchanged"}


class Quiet(SimpleHTTPRequestHandler):
    """Serves the folder. `/304/big.csv` and `/200/big.csv` give a weak ETag instead
    of Last-Modified, so that a HEAD settles nothing; the first answers a matching
    If-None-Match with 304, the second ignores it."""

    mode = ""

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        mode, _, rest = self.path.lstrip("/").partition("/")
        if mode not in ("304", "200"):
            return super().send_head()
        self.mode = mode
        if mode == "304" and self.headers.get("If-None-Match") == WEAK_ETAG:
            self.send_response(304)
            self.send_header("ETag", WEAK_ETAG)
            self.end_headers()
            return None
        self.path = "/" + rest
        handle = super().send_head()
        return handle

    def send_header(self, keyword: str, value: str) -> None:
        if not (self.mode and keyword == "Last-Modified"):
            super().send_header(keyword, value)

    def end_headers(self) -> None:
        if self.mode:
            self.send_header("ETag", WEAK_ETAG)
        super().end_headers()


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
    if process.returncode not in (0, 10):  # 10: up to date
        raise SystemExit(f"{command[1]} exited {process.returncode}")
    return elapsed, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3, help="pairs per batch")
    parser.add_argument("--max-batches", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bench project"
        served = root / "served"
        served.mkdir(parents=True)
        big_csv(served / "big.csv", args.megabytes)
        server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(served)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        base_url = f"http://127.0.0.1:{server.server_address[1]}"
        (root / "modules").mkdir()
        for helper in sorted((REPO / "modules").glob("_*.py")):
            shutil.copy(helper, root / "modules" / helper.name)
        shutil.copy(REPO / "modules" / "1.file_retrieval.py", root / "modules")
        env = dict(clean_env(), PIPELINE_CONFIG=str(root / "config.json"),
                   PIPELINE_LOG_DIR=str(root / "logs"), PIPELINE_RUN_ID="20261123_06h00",
                   PIPELINE_RUN_STARTED="2026-11-23T06:00:00+00:00", PIPELINE_FORCE="1",
                   PIPELINE_DRY_RUN="0", PIPELINE_MODULE="1.file_retrieval",
                   PIPELINE_LAST_RUN_DATE="", PIPELINE_WINDOW_START="",
                   PIPELINE_WINDOW_END="2026-11-23T06:00:00+00:00",
                   PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1",
                   no_proxy="127.0.0.1", NO_PROXY="127.0.0.1")
        module = [PYTHON, str(root / "modules" / "1.file_retrieval.py")]
        local = root / "logs" / "data" / "big.csv"
        peaks: list[float] = []

        def subject(env: dict[str, str]) -> float:
            seconds, peak = measured(module, root, env)
            peaks.append(peak)
            return seconds

        results = []
        for path, forced in (("forced", True), ("304", False), ("200", False)):
            url = f"{base_url}/big.csv" if forced else f"{base_url}/{path}/big.csv"
            (root / "config.json").write_text(json.dumps(
                {"sources": [{"id": "big", "url": url, "format": "csv"}]}))
            run_env = dict(env, PIPELINE_FORCE="1")
            measured(module, root, run_env)  # the manifest and the copy the others start from
            if forced:
                baseline = [PYTHON, "-c", BASELINE, url, str(root / "baseline.csv")]
            else:
                run_env = dict(env, PIPELINE_FORCE="0")
                baseline = [PYTHON, "-c", CONDITIONAL, url, str(local),
                            str(root / "baseline.csv")]
            base, subj = alternate(args.rounds, lambda b=baseline: measured(b, root, env)[0],
                                   lambda e=run_env: subject(e), args.max_batches)
            assert local.stat().st_size == (served / "big.csv").stat().st_size
            said = subprocess.run(module, cwd=root, env=run_env, capture_output=True,
                                  text=True, check=False).stdout
            assert EXPECTED[path] in said, said  # the path timed is the path meant
            results.append((path, base, subj))
        server.shutdown()
    names = {"forced": "forced: download+hash+parse",
             "304": "HEAD + conditional GET, 304: hash+HEAD+GET",
             "200": "HEAD + conditional GET, 200 with the same ETag: hash+HEAD+GET+hash"}
    for path, base, subj in results:
        ratio = subj / base
        print(f"retrieval: {args.megabytes} MB csv over HTTP, {names[path]} {base:.3f} s, "
              f"module {subj:.3f} s, ratio {ratio:.2f} (goal <= {GOAL}) {verdict(ratio, GOAL)}")
    peak = max(peaks)
    print(f"retrieval: module peak RSS {peak:.1f} MB (goal <= {RSS_GOAL_MB}) "
          f"{verdict(peak, RSS_GOAL_MB)}")


if __name__ == "__main__":
    main()
