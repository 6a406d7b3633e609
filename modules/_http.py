"""A careful HTTP client for a stage: one request at a time, streamed to a file.

- `open_url` makes one request and sorts its failures: a connection failure,
  a timeout, a 429 or a 5xx is `Transient` (worth another try, after the
  server's `Retry-After` if it gave one); any other 4xx is an HTTPError.
- `with_retries` retries an action while it raises `Transient`, with
  exponential backoff, and gives up with `Failed`.
- `get` streams a body into a temporary file, hashing it, within a size limit;
  a conditional GET answered 304 returns None.

Secrets in a URL or header never reach a message: messages name `shown`, the
URL without user, password or query values.
"""

from __future__ import annotations

import hashlib
import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import _common as common

if common.TYPE_CHECKING:
    from typing import Any, TypeVar

    T = TypeVar("T")

USER_AGENT = "pipeline-file-retrieval/1"
CHUNK = 1 << 16
RETRY_AFTER_CAP_SECONDS = 60.0


class Failed(Exception):
    """This request failed for good; the message says why."""


class Transient(Exception):
    """A failure worth retrying: no connection, a timeout, a 5xx."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class Endpoint:
    """Where to ask, and how: the real URL and headers, secrets and all."""

    url: str
    headers: Mapping[str, str]
    timeout_seconds: float
    max_bytes: int

    @property
    def shown(self) -> str:
        return shown_url(self.url)


@dataclass
class Download:
    """A payload in a temporary file, with what the server said about it."""

    tmp: Path
    sha256: str
    size: int
    etag: str | None = None
    last_modified: str | None = None
    content_type: str | None = None


def shown_url(url: str) -> str:
    """The URL for messages: no user or password, no query values."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    query = "&".join(pair.split("=", 1)[0] + "=..." for pair in parts.query.split("&") if pair)
    return urlunsplit((parts.scheme, host, parts.path, query, ""))


def open_url(endpoint: Endpoint, method: str, extra: Mapping[str, str]
             ) -> http.client.HTTPResponse:
    """One request; a connection failure, a timeout or a 5xx raises Transient."""
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity",
               **endpoint.headers, **extra}
    request = urllib.request.Request(endpoint.url, method=method, headers=headers)
    try:
        return urllib.request.urlopen(request, timeout=endpoint.timeout_seconds)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code >= 500 or exc.code == 429:
            raise Transient(f"HTTP {exc.code} {exc.reason}", retry_after(exc.headers)) from None
        raise
    except urllib.error.URLError as exc:
        raise Transient(f"cannot connect: {exc.reason}") from None
    except TimeoutError:
        raise Transient(f"no answer within {endpoint.timeout_seconds:g} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise Transient(f"connection failed: {exc!r}") from None


def head(endpoint: Endpoint) -> Mapping[str, str] | None:
    """The headers of one HEAD; None if it fails in any way, and the GET will tell.

    Servers refuse HEAD for reasons of their own (405; 403 from a URL signed
    for GET only), so a HEAD that fails is no verdict on the source.
    """
    try:
        with open_url(endpoint, "HEAD", {}) as response:
            return response.headers
    except (urllib.error.HTTPError, Transient):
        return None


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


def content_length(headers: Mapping[str, str]) -> int | None:
    try:
        return int(headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def with_retries(action: Callable[[], T], retries: int, backoff_seconds: float,
                 label: str) -> T:
    """`action()`, retried with exponential backoff while it raises Transient."""
    for attempt in range(retries + 1):
        try:
            return action()
        except Transient as exc:
            if attempt == retries:
                tries = f" (after {attempt + 1} attempts)" if attempt else ""
                raise Failed(f"{exc}{tries}") from None
            delay = exc.retry_after if exc.retry_after is not None \
                else backoff_seconds * 2 ** attempt
            print(f"{label}: {exc}; retry {attempt + 1} of {retries} in {delay:g} s")
            time.sleep(delay)
    raise AssertionError("unreachable")


def get(endpoint: Endpoint, conditional: Mapping[str, str], tmp: Path) -> Download | None:
    """GET into `tmp`; None when the server answers 304 Not Modified."""
    try:
        response = open_url(endpoint, "GET", conditional)
    except urllib.error.HTTPError as exc:
        if exc.code == 304 and conditional:
            return None
        raise Failed(f"HTTP {exc.code} {exc.reason} from {endpoint.shown}") from None
    with response:
        expected = content_length(response.headers)
        if expected is not None and expected > endpoint.max_bytes:
            raise Failed(f"{common.size_text(expected)} is over max_bytes "
                         f"({common.size_text(endpoint.max_bytes)})")
        digest, size = stream(endpoint, response, tmp, expected)
        return Download(tmp, digest, size, response.headers.get("ETag"),
                        response.headers.get("Last-Modified"),
                        response.headers.get("Content-Type"))


def stream(endpoint: Endpoint, response: Any, tmp: Path, expected: int | None
           ) -> tuple[str, int]:
    """Copy the body to `tmp`, hashing it; a short or broken body raises Transient."""
    try:
        digest, size = copy_hashed(response.read, tmp, endpoint.max_bytes, "body")
    except TimeoutError:
        raise Transient(f"the body stalled for {endpoint.timeout_seconds:g} s") from None
    except (ConnectionError, http.client.HTTPException) as exc:
        raise Transient(f"the connection broke during the body: {exc!r}") from None
    if expected is not None and size != expected:
        raise Transient(f"the body ended after {size} of {expected} bytes")
    return digest, size


def copy_hashed(read: Callable[[int], bytes], tmp: Path, limit: int, what: str
                ) -> tuple[str, int]:
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
