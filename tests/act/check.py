"""Check what the act workflow (tests/act/workflow.yml) left: its step outputs and
the commit it pushed to the bare remote. Exit 1 naming the first difference."""

from __future__ import annotations

import json
import subprocess
import sys


def main(result: str, remote: str) -> int:
    with open(result, encoding="utf-8") as handle:
        outputs = json.load(handle)
    head = subprocess.run(["git", "-C", remote, "rev-parse", "main"], check=True,
                          capture_output=True, text=True).stdout.strip()
    message = subprocess.run(["git", "-C", remote, "log", "-1", "--format=%s", "main"],
                             check=True, capture_output=True, text=True).stdout.strip()
    files = subprocess.run(["git", "-C", remote, "show", "--name-only", "--format=", "main"],
                           check=True, capture_output=True, text=True).stdout.splitlines()
    expected = {"status": "success", "pushed": "true", "commit": head, "exit_code": "0"}
    for name, value in expected.items():
        if outputs.get(name) != value:
            print(f"act: output {name} is {outputs.get(name)!r}, expected {value!r}")
            return 1
    run_id = outputs["run_id"]
    wanted = {outputs["log_file"], outputs["record_file"], "config.json"}
    if message != f"pipeline: success run {run_id} [skip ci]" or not wanted <= set(files):
        print(f"act: the pushed commit is {message!r} with {files}")
        return 1
    print(f"act: run {run_id} pushed {head[:7]}: {', '.join(sorted(wanted))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(*sys.argv[1:]))
