"""Retrieve each source in config.json's "sources" into the data folder.

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
(percent-encoded in a URL), so secrets stay out of config.json and, masked,
out of the log; `${PIPELINE_LAST_RUN_DATE}` asks an API for what is new.

Exit 0 when something was downloaded, 10 when every source was up to date,
1 when any source failed, 2 on a bad setting. Under PIPELINE_DRY_RUN=1 it
probes and says what it would download, and writes nothing; under
PIPELINE_FORCE=1 it downloads every source whatever the manifest says.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from collections import Counter
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit
from xml.etree import ElementTree

import _common as common

MANIFEST = "manifest.json"
QUARANTINE = "quarantine"
USER_AGENT = "pipeline-file-retrieval/1"
CHUNK = 1 << 16
RETRY_AFTER_CAP_SECONDS = 60.0

DEFAULTS: dict[str, Any] = {"timeout_seconds": 30.0, "max_bytes": 1 << 30, "retries": 3,
                            "backoff_seconds": 2.0}
EXTENSIONS = {"csv": ".csv", "json": ".json", "gzip": ".gz", "zip": ".zip",
              "parquet": ".parquet", "xlsx": ".xlsx"}
SOURCE_KEYS = {"id", "url", "format", "file", "headers", "encoding", *DEFAULTS}
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Failed(Exception):
    """This source failed for good; the message says why."""


class Transient(Exception):
    """A failure worth retrying: no connection, a timeout, a 5xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class Invalid(Exception):
    """The payload does not match the declared format."""


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
        return shown_url(self.url)

    def real_url(self) -> str:
        return expand(self.url, lambda value: quote(value, safe=""))

    def real_headers(self) -> dict[str, str]:
        return {name: expand(value, str) for name, value in self.headers.items()}

    def local_path(self) -> Path:
        """A `file://` URL or a plain path (relative to the config's folder)."""
        if self.url.lower().startswith("file://"):
            return Path(unquote(urlsplit(expand(self.url, str)).path))
        return common.project_root() / expand(self.url, str)


# ---------------------------------------------------------------- settings

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
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise bad("encoding", f"not an encoding Python knows (got {encoding!r})") from None
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


def shown_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(pair.split("=", 1)[0] + "=..." for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


# ---------------------------------------------------------------- probing

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
    """One HEAD; None if it fails in any way, and the GET will tell.

    Servers refuse HEAD for reasons of their own (405; 403 from a URL signed
    for GET only), so a HEAD that fails is no verdict on the source.
    """
    try:
        with open_url(source, "HEAD", {}) as response:
            return Probe(etag=response.headers.get("ETag"),
                         last_modified=response.headers.get("Last-Modified"),
                         length=content_length(response))
    except (urllib.error.HTTPError, Transient):
        return None


def probe_file(path: Path) -> Probe:
    try:
        info = path.stat()
    except FileNotFoundError:
        raise Failed(f"no such file: {path}") from None
    if not path.is_file():
        raise Failed(f"not a regular file: {path}")
    return Probe(length=info.st_size, mtime_ns=info.st_mtime_ns)


def unchanged_by_probe(known: dict[str, Any], probe: Probe | None) -> str | None:
    """Why the manifest entry is still current, going by the probe alone."""
    if probe is None:
        return None
    if probe.etag and probe.etag == known.get("etag") and not probe.etag.startswith("W/"):
        return f"ETag {probe.etag} unchanged"
    if probe.last_modified and probe.last_modified == known.get("last_modified") and (
            probe.length is None or probe.length == known.get("bytes")):
        return f"Last-Modified {probe.last_modified} unchanged"
    if probe.mtime_ns is not None and (probe.length, probe.mtime_ns) == (
            known.get("bytes"), known.get("mtime_ns")):
        return "size and modification time unchanged"
    return None


def current_entry(source: Source, manifest: dict[str, Any], folder: Path) -> dict[str, Any]:
    """The manifest's entry for this source if its file is still there, intact."""
    known = manifest.get(source.id)
    if not isinstance(known, dict) or known.get("url") != source.url \
            or known.get("file") != source.file:
        return {}
    path = folder / source.file
    if not path.is_file() or path.stat().st_size != known.get("bytes") \
            or common.sha256_of(path) != known.get("sha256"):
        return {}
    return known


# ---------------------------------------------------------------- HTTP

def open_url(source: Source, method: str, extra: dict[str, str]) -> http.client.HTTPResponse:
    """One request; a connection failure, a timeout or a 5xx raises Transient."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
               **source.real_headers(), **extra}
    request = urllib.request.Request(source.real_url(), method=method, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=source.timeout_seconds)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise Transient(f"HTTP {exc.code} {exc.reason}", retry_after(exc.headers)) from None
        raise
    except urllib.error.URLError as exc:
        raise Transient(f"cannot connect: {exc.reason}") from None
    except TimeoutError:
        raise Transient(f"no answer within {source.timeout_seconds:g} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise Transient(f"connection failed: {exc!r}") from None


def retry_after(headers: Any) -> float | None:
    """Seconds the server asked us to wait (a number or an HTTP date), capped."""
    value = headers.get("Retry-After") if headers else None
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP_SECONDS)


def content_length(response: Any) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def with_retries(source: Source, action: Any) -> Any:
    """`action()`, retried with exponential backoff while it raises Transient."""
    for attempt in range(source.retries + 1):
        try:
            return action()
        except Transient as exc:
            if attempt == source.retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise Failed(f"{exc}{tries}") from None
            delay = exc.retry_after if exc.retry_after is not None \
                else source.backoff_seconds * 2 ** attempt
            print(f"{source.id}: {exc}; retry {attempt + 1} of {source.retries} "
                  f"in {delay:g} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


@dataclass
class Download:
    """A payload in a temporary file, with what the server said about it."""

    tmp: Path
    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None


def get(source: Source, known: dict[str, Any], tmp: Path) -> Download | None:
    """GET into `tmp`; None when the server answers 304 Not Modified."""
    conditional = {}
    if known.get("etag"):
        conditional["If-None-Match"] = known["etag"]
    if known.get("last_modified"):
        conditional["If-Modified-Since"] = known["last_modified"]
    try:
        response = open_url(source, "GET", conditional)
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and conditional:
            return None
        raise Failed(f"HTTP {exc.code} {exc.reason} from {source.shown}") from None
    with response:
        expected = content_length(response)
        if expected is not None and expected > source.max_bytes:
            raise Failed(f"{common.size_text(expected)} is over max_bytes "
                         f"({common.size_text(source.max_bytes)})")
        digest, size = stream(source, response, tmp, expected)
        return Download(tmp, digest, size, response.headers.get("ETag"),
                        response.headers.get("Last-Modified"),
                        response.headers.get("Content-Type"))


def stream(source: Source, response: Any, tmp: Path, expected: int | None) -> tuple[str, int]:
    """Copy the body to `tmp`, hashing it; a short or broken body raises Transient."""
    try:
        digest, size = copy_hashed(response.read, tmp, source.max_bytes, "body")
    except TimeoutError:
        raise Transient(f"the body stalled for {source.timeout_seconds:g} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise Transient(f"the connection broke during the body: {exc!r}") from None
    if expected is not None and size != expected:
        raise Transient(f"the body ended after {size} of {expected} bytes")
    return digest, size


def copy_file(source: Source, path: Path, tmp: Path) -> Download:
    with open(path, "rb") as src:
        digest, size = copy_hashed(src.read, tmp, source.max_bytes, "file")
    return Download(tmp, digest, size)


def copy_hashed(read: Any, tmp: Path, limit: int, what: str) -> tuple[str, int]:
    """Copy blocks from `read` into `tmp`: (sha256, size); Failed past `limit` bytes."""
    digest, size = hashlib.sha256(), 0
    with open(tmp, "wb") as out:
        while block := read(CHUNK):
            size += len(block)
            if size > limit:
                raise Failed(f"{what} is over max_bytes ({common.size_text(limit)})")
            digest.update(block)
            out.write(block)
    return digest.hexdigest(), size


# ---------------------------------------------------------------- validation

def validate(path: Path, source: Source) -> str:
    """What the payload holds ("1,461 rows, 6 columns"); Invalid if it is not `format`."""
    with open(path, "rb") as handle:
        head = handle.read(512)
    if not head:
        raise Invalid("empty body (0 bytes)")
    if looks_like_html(head):
        raise Invalid(f"an HTML page, not {source.format} (starts {head[:40]!r})")
    return CHECKS[source.format](path, head, source)


def looks_like_html(head: bytes) -> bool:
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    return start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")) or (
        start.startswith(b"<") and b"<html" in start)


def check_csv(path: Path, head: bytes, source: Source) -> str:
    if (line := first_nul(path)) is not None:
        raise Invalid(f"a NUL byte on line {line}: binary, not CSV")
    encoding = source.encoding
    if codecs.lookup(encoding).name == "utf-8" and head.startswith(codecs.BOM_UTF8):
        encoding = "utf-8-sig"  # drop the BOM from the first column's name
    try:
        with open(path, encoding=encoding, newline="") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if not any(name.strip() for name in header):
                raise Invalid("no header row")
            widths = Counter(map(len, reader))  # the loop runs in C
    except UnicodeDecodeError as exc:
        raise Invalid(f"not {source.encoding} text ({exc.reason})") from None
    except csv.Error as exc:
        raise Invalid(f"not CSV: line {reader.line_num}: {exc}") from None
    rows = widths.total() - widths[0]  # blank lines are rows of no fields
    ragged = rows - widths[len(header)]
    if rows == 0:
        raise Invalid("a header and no rows")
    if ragged * 2 > rows:
        raise Invalid(f"{ragged} of {rows} rows do not have the header's {len(header)} fields")
    note = f" ({ragged} with another number of fields)" if ragged else ""
    return f"{common.counted(rows, 'row')}{note}, {common.counted(len(header), 'column')}"


def first_nul(path: Path) -> int | None:
    """The line of the first NUL byte in the file, if any."""
    lines = 1
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            if (at := block.find(b"\0")) >= 0:
                return lines + block.count(b"\n", 0, at)
            lines += block.count(b"\n")
    return None


def check_json(path: Path, head: bytes, source: Source) -> str:
    try:
        with open(path, encoding="utf-8-sig") as handle:
            value = json.load(handle)
    except UnicodeDecodeError as exc:
        raise Invalid(f"not UTF-8 text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise Invalid(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if isinstance(value, list):
        return f"a list of {common.counted(len(value), 'item')}"
    if isinstance(value, dict):
        return f"an object with {common.counted(len(value), 'key')}"
    return f"a single {type(value).__name__}"


def check_gzip(path: Path, head: bytes, source: Source) -> str:
    magic(head, b"\x1f\x8b", "gzip")
    size = 0
    try:
        with gzip.open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                size += len(block)
    except EOFError as exc:
        raise Invalid(f"truncated gzip: {exc}") from None
    except (gzip.BadGzipFile, zlib.error) as exc:
        raise Invalid(f"corrupt gzip: {exc}") from None
    return f"{common.size_text(size)} uncompressed"


def check_zip(path: Path, head: bytes, source: Source) -> str:
    names = zip_members(path, head, "zip")
    return common.counted(len(names), "member")


def zip_members(path: Path, head: bytes, kind: str) -> list[str]:
    if head.startswith(b"PK\x05\x06"):
        raise Invalid(f"an empty {kind} archive")
    magic(head, b"PK\x03\x04", kind)
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
            names = archive.namelist()
    except (zipfile.BadZipFile, EOFError, zlib.error, NotImplementedError) as exc:
        raise Invalid(f"corrupt {kind}: {exc}") from None
    if bad is not None:
        raise Invalid(f"corrupt {kind}: member {bad!r} fails its CRC check")
    return names


def check_xlsx(path: Path, head: bytes, source: Source) -> str:
    names = zip_members(path, head, "xlsx")
    if "[Content_Types].xml" not in names or "xl/workbook.xml" not in names:
        raise Invalid("a zip archive, but not a workbook (no xl/workbook.xml)")
    with zipfile.ZipFile(path) as archive:
        try:
            workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        except ElementTree.ParseError as exc:
            raise Invalid(f"corrupt xlsx: xl/workbook.xml: {exc}") from None
    sheets = [e.get("name", "?") for e in workbook.iter() if e.tag.endswith("}sheet")]
    if not sheets:
        raise Invalid("a workbook without sheets")
    return f"{common.counted(len(sheets), 'sheet')}: {', '.join(sheets)}"


def check_parquet(path: Path, head: bytes, source: Source) -> str:
    """Magic at both ends, then the footer's FileMetaData parsed (Thrift compact)."""
    magic(head, b"PAR1", "parquet")
    size = path.stat().st_size
    with open(path, "rb") as handle:
        handle.seek(max(size - 8, 0))
        tail = handle.read(8)
        footer_size = int.from_bytes(tail[:4], "little")
        if size < 12 or tail[4:] != b"PAR1" or not 0 < footer_size <= size - 12:
            raise Invalid("truncated parquet: no footer at the end")
        handle.seek(size - 8 - footer_size)
        footer = handle.read(footer_size)
    try:
        meta = CompactReader(footer).struct()
    except (IndexError, ValueError, RecursionError) as exc:
        raise Invalid(f"corrupt parquet footer: {exc}") from None
    if not isinstance(meta.get(2), list) or not isinstance(meta.get(3), int):
        raise Invalid("corrupt parquet footer: no schema or row count")
    columns = max(len(meta[2]) - 1, 0)  # the first schema element is the root
    return f"{common.counted(meta[3], 'row')}, {common.counted(columns, 'column')}"


def magic(head: bytes, expected: bytes, kind: str) -> None:
    if not head.startswith(expected):
        raise Invalid(f"not {kind}: starts {head[:8]!r}, not {expected!r}")


class CompactReader:
    """Just enough of Thrift's compact protocol to walk a parquet footer."""

    MAX_DEPTH = 64

    def __init__(self, data: bytes) -> None:
        self.data, self.pos, self.depth = data, 0, 0

    def byte(self) -> int:
        value = self.data[self.pos]
        self.pos += 1
        return value

    def varint(self) -> int:
        result = shift = 0
        while True:
            value = self.byte()
            result |= (value & 0x7F) << shift
            if not value & 0x80:
                return result
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def zigzag(self) -> int:
        value = self.varint()
        return (value >> 1) ^ -(value & 1)

    def skip(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise ValueError("a field runs past the footer's end")
        self.pos += count
        return self.data[self.pos - count:self.pos]

    def value(self, kind: int) -> Any:
        if kind in (1, 2):
            return kind == 1
        readers = {3: self.byte, 4: self.zigzag, 5: self.zigzag, 6: self.zigzag,
                   7: lambda: self.skip(8), 8: lambda: self.skip(self.varint()),
                   9: self.list, 10: self.list, 11: self.map, 12: self.struct}
        if kind not in readers:
            raise ValueError(f"unknown field type {kind}")
        return readers[kind]()

    def nested(self, read: Any) -> Any:
        self.depth += 1
        if self.depth > self.MAX_DEPTH:
            raise ValueError("nested too deep")
        try:
            return read()
        finally:
            self.depth -= 1

    def struct(self) -> dict[int, Any]:
        def read() -> dict[int, Any]:
            fields: dict[int, Any] = {}
            last = 0
            while head := self.byte():
                delta, kind = head >> 4, head & 0x0F
                last = last + delta if delta else self.zigzag()
                fields[last] = self.value(kind)
            return fields
        return self.nested(read)

    def list(self) -> list[Any]:
        head = self.byte()
        count, kind = head >> 4, head & 0x0F
        if count == 15:
            count = self.varint()
        if count > len(self.data) - self.pos:
            raise ValueError("a list longer than the footer")
        # In a list a boolean is a whole byte (1 true, 2 or 0 false).
        read = self.byte if kind in (1, 2) else lambda: self.value(kind)
        return self.nested(lambda: [read() for _ in range(count)])

    def map(self) -> dict[Any, Any]:
        count = self.varint()
        if count == 0:
            return {}
        if count > len(self.data) - self.pos:
            raise ValueError("a map longer than the footer")
        kinds = self.byte()
        pairs = [(self.value(kinds >> 4), self.value(kinds & 0x0F)) for _ in range(count)]
        return {repr(key): value for key, value in pairs}


CHECKS = {"csv": check_csv, "json": check_json, "gzip": check_gzip, "zip": check_zip,
          "parquet": check_parquet, "xlsx": check_xlsx}


# ---------------------------------------------------------------- one source

@dataclass
class Result:
    status: str  # "downloaded", "up to date", "would download", "failed"
    detail: str
    entry: dict[str, Any] | None = None  # the new manifest entry of a good download


def retrieve(source: Source, manifest: dict[str, Any], folder: Path) -> Result:
    known = {} if common.force() else current_entry(source, manifest, folder)
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


def same_file(source: Source, known: dict[str, Any], probe: Probe | None) -> str | None:
    """A local source touched (a fresh checkout) but with the recorded bytes."""
    if source.remote or probe is None or probe.length != known.get("bytes"):
        return None
    same = common.sha256_of(source.local_path()) == known.get("sha256")
    return "content unchanged" if same else None


def would_download_because(source: Source, manifest: dict[str, Any], known: dict[str, Any],
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


def fetch(source: Source, known: dict[str, Any], probe: Probe | None, tmp: Path,
          folder: Path) -> Result:
    if source.remote:
        download = with_retries(source, lambda: get(source, known, tmp))
        if download is None:
            return Result("up to date", "304 Not Modified")
    else:
        download = copy_file(source, source.local_path(), tmp)
    if known and download.sha256 == known.get("sha256"):
        # Same bytes under new validators: keep the file, remember the validators.
        renewed = {**known, "etag": download.etag, "last_modified": download.last_modified}
        renewed = {key: value for key, value in renewed.items() if value is not None}
        return Result("up to date", "content unchanged", renewed if renewed != known else None)
    try:
        described = validate(tmp, source)
    except Invalid as exc:
        where = quarantine(source, download, str(exc), folder)
        raise Failed(f"{exc}; moved to {where.relative_to(folder.parent)}") from None
    common.commit_file(tmp, folder / source.file)
    return Result("downloaded", f"{common.size_text(download.size)}, {described}",
                  manifest_entry(source, download, probe))


def manifest_entry(source: Source, download: Download, probe: Probe | None) -> dict[str, Any]:
    values = {"url": source.url, "file": source.file, "format": source.format,
              "sha256": download.sha256, "bytes": download.size,
              "etag": download.etag, "last_modified": download.last_modified,
              "mtime_ns": probe.mtime_ns if probe else None,
              "retrieved": common.run_started().isoformat(timespec="seconds"),
              "run_id": common.run_id()}
    return {key: value for key, value in values.items() if value is not None}


def quarantine(source: Source, download: Download, reason: str, folder: Path) -> Path:
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


# ---------------------------------------------------------------- the run

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
            manifest = {**manifest, source.id: result.entry}
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
    except Failed as exc:
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
