"""Retrieve each source named in config.json's "sources" into the data folder.

A source whose content is unchanged since the last good copy is not fetched
again. Exit 10 when every source was up to date; 1 when any source failed.
"""

from __future__ import annotations

import sys
from pathlib import Path
from urllib.parse import unquote, urlparse

import _common as common

MANIFEST = "manifest.json"


def source_path(url: str) -> Path:
    """A `file://` URL or a plain path, relative to the project folder."""
    if url.startswith("file://"):
        return Path(unquote(urlparse(url).path))
    return common.project_root() / url


def retrieve(source: dict, manifest: dict) -> str:
    """Copy one source if it changed: "fetched", "unchanged" or "would fetch"."""
    src = source_path(source["url"])
    dest = common.data_dir() / f"{source['id']}{src.suffix}"
    digest = common.sha256_of(src)
    known = manifest.get(source["id"], {})
    if known.get("sha256") == digest and dest.exists() and not common.force():
        return "unchanged"
    if common.dry_run():
        return "would fetch"
    common.write_atomic(dest, src.read_bytes())
    manifest[source["id"]] = {"url": source["url"], "file": dest.name, "sha256": digest,
                              "bytes": dest.stat().st_size}
    return "fetched"


def main() -> int:
    sources = common.settings().get("sources", [])
    manifest_path = common.data_dir() / MANIFEST
    manifest = common.read_json(manifest_path, {})
    results = {}
    for source in sources:
        try:
            results[source["id"]] = retrieve(source, manifest)
        except OSError as exc:
            print(f"{source['id']}: failed: {exc}", file=sys.stderr)
            results[source["id"]] = "failed"
        print(f"{source['id']}: {results[source['id']]}")
    if "fetched" in results.values():
        common.write_json(manifest_path, manifest)
    if "failed" in results.values():
        return 1
    return common.SKIP if all(r == "unchanged" for r in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
