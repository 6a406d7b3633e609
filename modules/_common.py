"""Helpers shared by the shipped modules (discovery ignores names starting with `_`).

A module learns everything from its environment (see README.md, "Writing a
module"): where the config is, where logs and data go, and whether this is a
dry run or a forced one.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any

SKIP = 10  # exit code: skipped, conditions not met


def settings() -> dict[str, Any]:
    """The whole config file; a module reads its own keys from it."""
    return json.loads(Path(os.environ["PIPELINE_CONFIG"]).read_text(encoding="utf-8"))


def project_root() -> Path:
    return Path(os.environ["PIPELINE_CONFIG"]).parent


def log_dir() -> Path:
    return Path(os.environ["PIPELINE_LOG_DIR"])


def data_dir() -> Path:
    return log_dir() / "data"


def dry_run() -> bool:
    return os.environ.get("PIPELINE_DRY_RUN") == "1"


def force() -> bool:
    return os.environ.get("PIPELINE_FORCE") == "1"


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: Path, data: bytes) -> None:
    """Temporary file beside the target, fsync, rename: never a half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: Path, value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode())


def read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default
