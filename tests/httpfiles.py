"""A real HTTP file server on 127.0.0.1 for the retrieval module's tests.

Each path answers from a `Route`: a `Resource` (a file with an ETag and/or a
Last-Modified date, answering conditional requests with 304, like a static
file server) or a `Script` (fixed replies, one per request, the last one
repeated: "500, then 200"). Every request is recorded, with its headers.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Protocol


@dataclass
class Reply:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    length: int | None = None  # the Content-Length to claim; default len(body)
    no_length: bool = False  # send no Content-Length: the body ends when the connection does
    stall: bool = False  # send nothing until the test ends (a server that hangs)
    stall_after_body: bool = False  # send headers and body, then hang


class Route(Protocol):
    def reply(self, method: str, headers: dict[str, str]) -> Reply: ...


@dataclass
class Resource:
    body: bytes
    etag: str | None = None
    last_modified: str | None = None
    content_type: str = "text/csv"
    head_allowed: bool = True

    def reply(self, method: str, headers: dict[str, str]) -> Reply:
        if method == "HEAD" and not self.head_allowed:
            return Reply(405)
        validators = {"ETag": self.etag, "Last-Modified": self.last_modified}
        validators = {name: value for name, value in validators.items() if value}
        if self.etag and headers.get("if-none-match") == self.etag or (
                self.last_modified and "if-none-match" not in headers
                and headers.get("if-modified-since") == self.last_modified):
            return Reply(304, headers=validators)
        return Reply(200, self.body, {"Content-Type": self.content_type, **validators})


@dataclass
class Script:
    replies: list[Reply]
    head: Reply | None = None  # the answer to every HEAD; None: HEAD takes its turn

    def reply(self, method: str, headers: dict[str, str]) -> Reply:
        if method == "HEAD" and self.head is not None:
            return self.head
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]


class FileServer:
    def __init__(self) -> None:
        self.routes: dict[str, Route] = {}
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.stalled = threading.Event()  # set when a stalling reply has been reached
        self.release = threading.Event()  # set at teardown: stalled replies return
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,),
                                       daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def methods(self, path: str) -> list[str]:
        return [method for method, seen, _ in self.requests if seen == path]

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.answer("GET")

            def do_HEAD(self) -> None:
                self.answer("HEAD")

            def answer(self, method: str) -> None:
                headers = {k.lower(): v for k, v in self.headers.items()}
                server.requests.append((method, self.path, headers))
                route = server.routes.get(self.path.split("?")[0])
                reply = route.reply(method, headers) if route else Reply(404, b"not found")
                if reply.stall:
                    server.stalled.set()
                    server.release.wait()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                if reply.status != 304 and not reply.no_length:
                    length = len(reply.body) if reply.length is None else reply.length
                    self.send_header("Content-Length", str(length))
                self.end_headers()
                if method == "GET" and reply.status != 304:
                    self.wfile.write(reply.body)
                    self.wfile.flush()
                if reply.stall_after_body:
                    server.stalled.set()
                    server.release.wait()
                self.close_connection = True

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
