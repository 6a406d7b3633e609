"""Retrieve each source in the config's "sources" into the data folder.

For every source: probe it without downloading (HEAD for http(s); size and
mtime for a file), compare with the manifest of earlier good downloads, and
download only what changed, with a conditional GET that a server may answer
304. A download streams into a temporary file, must match the declared format
(magic bytes and a parse check), and only then is renamed into place and
recorded in `manifest.json`. A bad payload goes to `data/quarantine/` with a
file saying why; the manifest is not touched for it.

Settings:

    "sources": [{"id": "weather", "url": "https://example.com/weather.csv",
                 "format": "csv"}],
    "retrieval": {"timeout_seconds": 30, "max_bytes": 1073741824,
                  "retries": 3, "backoff_seconds": 2.0}

A source may also set `file` (the name in the data folder; default: its id and
the format's extension), `headers` (e.g. {"Authorization": "Bearer ${API_TOKEN}"}),
`encoding` (csv, default utf-8) and any `retrieval` key for itself alone.
`${NAME}` in `url` or `headers` is replaced by the environment variable NAME
(percent-encoded in a URL), so secrets stay out of the config and, masked,
out of the log; `?from=${PIPELINE_WINDOW_START}&to=${PIPELINE_WINDOW_END}`
asks an API for this run's window.

Exit 0 when something was downloaded, 10 when every source was up to date,
1 when any source failed, 2 on a bad setting. Under PIPELINE_DRY_RUN=1 it
probes and says what it would download, and writes nothing; under
PIPELINE_FORCE=1 it downloads every source whatever the manifest says.

The stage reads in order: settings, probe, decide, fetch, record. What a
format must look like is in `_formats.py`, how to talk HTTP in `_http.py`.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import _common as common
import _formats as formats
import _http as http
from _formats import EXTENSIONS

if common.TYPE_CHECKING:
    from typing import Any

MANIFEST = "manifest.json"
QUARANTINE = "quarantine"

DEFAULTS: dict[str, Any] = {"timeout_seconds": 30.0, "max_bytes": 1 << 30, "retries": 3,
                            "backoff_seconds": 2.0}
SOURCE_KEYS = {"id", "url", "format", "file", "headers", "encoding", *DEFAULTS}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Failed(Exception):
    """This source failed for good; the message says why."""


# ---------------------------------------------------------------- settings

@dataclass(frozen=True)
class Source:
    id: str
    url: str  # as written in the config: ${NAME} placeholders unexpanded
    format: str
    file: str
    headers: dict[str, str] = field(default_factory=dict)
    encoding: str = "utf-8"
    timeout_seconds: float = DEFAULTS["timeout_seconds"]
    max_bytes: int = DEFAULTS["max_bytes"]
    retries: int = DEFAULTS["retries"]
    backoff_seconds: float = DEFAULTS["backoff_seconds"]

    @property
    def remote(self) -> bool:
        return urlsplit(self.url).scheme.lower() in ("http", "https")

    @property
    def shown(self) -> str:
        """The URL for messages: no user or password, no query values."""
        return http.shown_url(self.url)

    def endpoint(self) -> http.Endpoint:
        """The URL and headers with their placeholders filled in."""
        return http.Endpoint(
            url=expand(self.url, lambda value: quote(value, safe="")),
            headers={name: expand(value, str) for name, value in self.headers.items()},
            timeout_seconds=self.timeout_seconds, max_bytes=self.max_bytes)

    def local_path(self) -> Path:
        """A `file://` URL or a plain path (relative to the config's folder)."""
        if self.url.lower().startswith("file://"):
            return Path(unquote(urlsplit(expand(self.url, str)).path))
        return common.project_root() / expand(self.url, str)


def read_sources() -> list[Source]:
    settings = common.settings()
    defaults = common.section("retrieval", DEFAULTS)
    sources = settings.get("sources", [])
    if not isinstance(sources, list):
        raise common.SettingsError(f"{common.config_path().name}: sources: must be a list")
    result = [read_source(f"sources[{i}]", entry, defaults) for i, entry in enumerate(sources)]
    for i, source in enumerate(result):
        if any(other.id == source.id or other.file == source.file for other in result[:i]):
            raise common.SettingsError(f"{common.config_path().name}: sources[{i}]: "
                                       f"id or file {source.id!r} is used twice")
    return result


def read_source(where: str, entry: Any, defaults: dict[str, Any]) -> Source:
    name = common.config_path().name

    def bad(key: str, problem: str) -> common.SettingsError:
        return common.SettingsError(f"{name}: {where}.{key}: {problem}")

    if not isinstance(entry, dict):
        raise common.SettingsError(f"{name}: {where}: must be an object with id, url and format")
    for key in entry:
        if key not in SOURCE_KEYS:
            raise bad(key, f"unknown key (known: {', '.join(sorted(SOURCE_KEYS))})")
    for key in ("id", "url", "format"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise bad(key, "must be a non-empty string")
    if not SAFE_NAME.match(entry["id"]):
        raise bad("id", "letters, digits, '.', '_' and '-' only")
    if entry["format"] not in EXTENSIONS:
        raise bad("format", f"must be one of {', '.join(EXTENSIONS)} (got {entry['format']!r})")
    if "\0" in entry["url"]:
        raise bad("url", "holds a NUL character")
    scheme = urlsplit(entry["url"]).scheme.lower()
    if len(scheme) > 1 and scheme not in ("http", "https", "file"):
        raise bad("url", f"http://, https://, file:// or a path (got {scheme}://)")
    file = entry.get("file", entry["id"] + EXTENSIONS[entry["format"]])
    if not isinstance(file, str) or not SAFE_NAME.match(file) or file == MANIFEST:
        raise bad("file", "a plain file name: letters, digits, '.', '_' and '-'")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise bad("headers", "must be an object of strings")
    options = {key: common.checked(f"{where}.{key}", entry[key], DEFAULTS[key])
               for key in DEFAULTS if key in entry}
    encoding = entry.get("encoding", "utf-8")
    try:
        io.TextIOWrapper(io.BytesIO(), encoding=encoding)  # refuses rot13 and the like too
    except (LookupError, TypeError, ValueError):
        raise bad("encoding", f"not a text encoding Python knows (got {encoding!r})") from None
    options = {**defaults, **options}
    if options["timeout_seconds"] <= 0:
        raise bad("timeout_seconds", "must be more than 0 (here or in retrieval)")
    return Source(id=entry["id"], url=entry["url"], format=entry["format"], file=file,
                  headers=headers, encoding=encoding, **options)


def expand(text: str, encode: Any) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in os.environ:
            raise Failed(f"${{{name}}} is not set in the environment")
        return encode(os.environ[name])

    return PLACEHOLDER.sub(value, text)


# ---------------------------------------------------------------- probe

@dataclass(frozen=True)
class Probe:
    """What a source says about itself before any download."""

    etag: str | None = None
    last_modified: str | None = None
    length: int | None = None
    mtime_ns: int | None = None

    def describe(self) -> str:
        parts = [f"ETag {self.etag}" if self.etag else "",
                 f"Last-Modified {self.last_modified}" if self.last_modified else "",
                 common.size_text(self.length) if self.length is not None else ""]
        return ", ".join(p for p in parts if p) or "no validators"


def probe_http(source: Source) -> Probe | None:
    """One HEAD; None if it fails, and the GET will tell."""
    headers = http.head(source.endpoint())
    if headers is None:
        return None
    return Probe(etag=headers.get("ETag"), last_modified=headers.get("Last-Modified"),
                 length=http.content_length(headers))


def probe_file(path: Path) -> Probe:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise Failed(f"no such file: {path}") from None
    if not path.is_file():
        raise Failed(f"not a regular file: {path}")
    return Probe(length=info.st_size, mtime_ns=info.st_mtime_ns)


# ---------------------------------------------------------------- decide

@dataclass(frozen=True)
class Entry:
    """A source's entry in the manifest: the last good download, as it is on disk."""

    url: str
    file: str
    sha256: str
    size: int  # "bytes" in the manifest
    format: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    mtime_ns: int | None = None  # of a local source, when it was copied
    retrieved: str | None = None
    run_id: str | None = None

    REQUIRED = {"url": str, "file": str, "sha256": str, "bytes": int}
    OPTIONAL = {"format": str, "etag": str, "last_modified": str, "mtime_ns": int,
                "retrieved": str, "run_id": str}

    @classmethod
    def from_json(cls, value: Any) -> Entry | None:
        """The entry, or None for one this version cannot use (written by hand, or broken)."""
        if not isinstance(value, dict) or not all(
                type(value.get(key)) is kind for key, kind in cls.REQUIRED.items()):
            return None
        optional = {key: value[key] for key, kind in cls.OPTIONAL.items()
                    if type(value.get(key)) is kind}
        return cls(url=value["url"], file=value["file"], sha256=value["sha256"],
                   size=value["bytes"], **optional)

    def to_json(self) -> dict[str, Any]:
        values = {"url": self.url, "file": self.file, "format": self.format,
                  "sha256": self.sha256, "bytes": self.size, "etag": self.etag,
                  "last_modified": self.last_modified, "mtime_ns": self.mtime_ns,
                  "retrieved": self.retrieved, "run_id": self.run_id}
        return {key: value for key, value in values.items() if value is not None}


@dataclass
class Result:
    status: str  # "downloaded", "up to date", "would download", "failed"
    detail: str
    entry: Entry | None = None  # the new manifest entry of a good download


def current_entry(source: Source, manifest: dict[str, Any], folder: Path) -> Entry | None:
    """The manifest's entry for this source if its file is still there, intact."""
    known = Entry.from_json(manifest.get(source.id))
    if known is None or known.url != source.url or known.file != source.file:
        return None
    path = folder / source.file
    if not path.is_file() or path.stat().st_size != known.size \
            or common.sha256_of(path) != known.sha256:
        return None
    return known


def unchanged_by_probe(known: Entry, probe: Probe | None) -> str | None:
    """Why the manifest entry is still current, going by the probe alone."""
    if probe is None:
        return None
    if probe.etag and probe.etag == known.etag and not probe.etag.startswith("W/"):
        return f"ETag {probe.etag} unchanged"
    if probe.last_modified and probe.last_modified == known.last_modified and (
            probe.length is None or probe.length == known.size):
        return f"Last-Modified {probe.last_modified} unchanged"
    if probe.mtime_ns is not None and (probe.length, probe.mtime_ns) == (
            known.size, known.mtime_ns):
        return "size and modification time unchanged"
    return None


def same_file(source: Source, known: Entry, probe: Probe | None) -> str | None:
    """A local source touched (a fresh checkout) but with the recorded bytes."""
    if source.remote or probe is None or probe.length != known.size:
        return None
    same = common.sha256_of(source.local_path()) == known.sha256
    return "content unchanged" if same else None


def retrieve(source: Source, manifest: dict[str, Any], folder: Path) -> Result:
    known = None if common.force() else current_entry(source, manifest, folder)
    if not source.remote:
        probe = probe_file(source.local_path())
    elif known or common.dry_run():
        probe = probe_http(source)
    else:
        probe = None  # nothing to compare with: the GET needs no HEAD before it
    if known and (why := unchanged_by_probe(known, probe) or same_file(source, known, probe)):
        return Result("up to date", why)
    if common.dry_run():
        return Result("would download", would_download_because(source, manifest, known, probe))
    tmp = common.temporary_beside(folder / source.file)
    try:
        return fetch(source, known, probe, tmp, folder)
    finally:
        tmp.unlink(missing_ok=True)


def would_download_because(source: Source, manifest: dict[str, Any], known: Entry | None,
                           probe: Probe | None) -> str:
    if common.force():
        return "forced"
    if source.id not in manifest:
        return "never downloaded"
    if not known:
        return "the copy here is missing or changed, or the source moved"
    if probe is None:
        return "HEAD failed or is not answered; a conditional GET would tell"
    return f"changed: {probe.describe()}"


# ---------------------------------------------------------------- fetch

def fetch(source: Source, known: Entry | None, probe: Probe | None, tmp: Path,
          folder: Path) -> Result:
    if source.remote:
        download = http.with_retries(lambda: get(source, known, tmp), source.retries,
                                     source.backoff_seconds, source.id)
        if download is None:
            return Result("up to date", "304 Not Modified")
    else:
        download = copy_file(source, source.local_path(), tmp)
    if known and download.sha256 == known.sha256:
        # Same bytes under new validators: keep the file, remember the validators.
        renewed = dataclasses.replace(known, etag=download.etag,
                                      last_modified=download.last_modified)
        return Result("up to date", "content unchanged", renewed if renewed != known else None)
    try:
        described = formats.validate(tmp, source.format, source.encoding)
    except formats.Invalid as exc:
        where = quarantine(source, download, str(exc), folder)
        raise Failed(f"{exc}; moved to {where.relative_to(folder.parent)}") from None
    common.commit_file(tmp, folder / source.file)
    return Result("downloaded", f"{common.size_text(download.size)}, {described}",
                  new_entry(source, download, probe))


def get(source: Source, known: Entry | None, tmp: Path) -> http.Download | None:
    """A GET, conditional on what the manifest knows; None for 304 Not Modified."""
    conditional = {}
    if known and known.etag:
        conditional["If-None-Match"] = known.etag
    if known and known.last_modified:
        conditional["If-Modified-Since"] = known.last_modified
    return http.get(source.endpoint(), conditional, tmp)


def copy_file(source: Source, path: Path, tmp: Path) -> http.Download:
    with open(path, "rb") as src:
        digest, size = http.copy_hashed(src.read, tmp, source.max_bytes, "file")
    return http.Download(tmp, digest, size)


def quarantine(source: Source, download: http.Download, reason: str, folder: Path) -> Path:
    """Move a bad payload to quarantine/, with a `.reason.json` beside it."""
    target_dir = folder / QUARANTINE
    target_dir.mkdir(parents=True, exist_ok=True)
    target = free_name(target_dir, f"{source.id}_{common.run_id()}", EXTENSIONS[source.format])
    common.write_json(target.with_name(target.name + ".reason.json"), {
        "source": source.id, "url": source.shown, "reason": reason,
        "run_id": common.run_id(), "bytes": download.size, "sha256": download.sha256,
        "content_type": download.content_type})
    shutil.move(download.tmp, target)
    target.chmod(0o644)
    return target


def free_name(folder: Path, stem: str, suffix: str) -> Path:
    """`stem` + `suffix` in `folder`, or `stem_2` + `suffix`... if that is taken."""
    path, number = folder / f"{stem}{suffix}", 1
    while path.exists():
        number += 1
        path = folder / f"{stem}_{number}{suffix}"
    return path


# ---------------------------------------------------------------- record

def new_entry(source: Source, download: http.Download, probe: Probe | None) -> Entry:
    return Entry(url=source.url, file=source.file, format=source.format,
                 sha256=download.sha256, size=download.size, etag=download.etag,
                 last_modified=download.last_modified,
                 mtime_ns=probe.mtime_ns if probe else None,
                 retrieved=common.run_started().isoformat(timespec="seconds"),
                 run_id=common.run_id())


def main() -> int:
    sources = read_sources()
    folder = common.data_dir()
    manifest_path = folder / MANIFEST
    manifest = common.read_json(manifest_path, {})
    if not sources:
        print("no sources in the config: nothing to retrieve")
        return common.SKIP
    results = {}
    for source in sources:
        results[source.id] = result = one(source, manifest, folder)
        if result.entry is not None:
            # Recorded as soon as it is in place: a timeout later loses nothing.
            manifest = {**manifest, source.id: result.entry.to_json()}
            common.write_json(manifest_path, manifest)
    counts = {status: sum(r.status == status for r in results.values())
              for status in ("downloaded", "would download", "up to date", "failed")}
    print(", ".join(f"{n} {status}" for status, n in counts.items() if n))
    if counts["failed"]:
        return common.FAILED
    return common.SKIP if counts["up to date"] == len(results) else 0


def one(source: Source, manifest: dict[str, Any], folder: Path) -> Result:
    try:
        result = retrieve(source, manifest, folder)
    except (Failed, http.Failed) as exc:
        print(f"{source.id}: failed: {exc}", file=sys.stderr)
        return Result("failed", str(exc))
    except OSError as exc:
        where = f": {exc.filename}" if exc.filename else ""
        print(f"{source.id}: failed: {exc.strerror or exc}{where}", file=sys.stderr)
        return Result("failed", str(exc))
    print(f"{source.id}: {result.status}: {result.detail}")
    return result


if __name__ == "__main__":
    common.run(main)
