"""Real servers on 127.0.0.1 for the notification tests.

- `HookServer`: an HTTP server that records every POST and GET (method, path,
  headers, body) in the order they came, and
  answers from a script: "500, then 200", "429 with Retry-After", a reply that
  never comes (stall), or one that trickles out a byte at a time, forever.
- `SmtpServer`: aiosmtpd in a thread of its own, with STARTTLS or implicit TLS
  and a login when asked; it records each message and can refuse the first ones
  with a transient 451.
- `silent_port()`: a port that accepts connections and never says a word;
  `dead_port()`: a port where nothing listens.
- `certificate()`: a self-signed certificate for 127.0.0.1, made with openssl.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import socket
import ssl
import subprocess
import threading
import time
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    stall: bool = False  # accept the request, never answer
    trickle: bool = False  # answer one byte every 50 ms, never finishing


@dataclass
class Posted:
    path: str
    headers: dict[str, str]
    body: bytes
    method: str = "POST"


class HookServer:
    def __init__(self, replies: list[Reply] | None = None,
                 tls: ssl.SSLContext | None = None) -> None:
        self.replies = list(replies or [Reply()])
        self.posted: list[Posted] = []
        self.release = threading.Event()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.server.daemon_threads = True
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self.scheme = "https" if tls else "http"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def url(self, path: str = "/hook") -> str:
        return f"{self.scheme}://127.0.0.1:{self.server.server_address[1]}{path}"

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _next(self) -> Reply:
        return self.replies.pop(0) if len(self.replies) > 1 else self.replies[0]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.answer()

            def do_GET(self) -> None:
                self.answer()

            def answer(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                owner.posted.append(Posted(self.path, headers, body, self.command))
                reply = owner._next()
                if reply.stall:
                    owner.release.wait()
                    return
                if reply.trickle:
                    self.trickle()
                    return
                self.send_response(reply.status)
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply.body)))
                self.end_headers()
                self.wfile.write(reply.body)
                self.close_connection = True

            def trickle(self) -> None:
                for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 100_000:
                    if owner.release.wait(0.05):
                        return
                    self.wfile.write(bytes([byte]))
                    self.wfile.flush()

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler


class _Recorder:
    def __init__(self, owner: SmtpServer) -> None:
        self.owner = owner

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.owner.refuse > 0:
            self.owner.refuse -= 1
            self.owner.refused += 1
            return "451 4.3.0 try again later"
        content = envelope.content.replace(b"\r\n", b"\n")
        message = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.owner.messages.append(message)
        self.owner.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on its own event loop and thread, on a port the system picks."""

    def __init__(self, *, tls: ssl.SSLContext | None = None, implicit_tls: bool = False,
                 login: tuple[str, str] | None = None, refuse: int = 0) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[tuple[str, str]] = []
        self.refuse, self.refused = refuse, 0
        self.login = login
        self.loop = asyncio.new_event_loop()
        recorder = _Recorder(self)

        def factory() -> SMTP:
            return SMTP(recorder, hostname="test.local",
                        tls_context=None if implicit_tls else tls,
                        require_starttls=bool(tls) and not implicit_tls,
                        authenticator=self._authenticate if login else None,
                        auth_required=bool(login), auth_require_tls=True)

        ready = threading.Event()
        self.thread = threading.Thread(target=self._serve,
                                       args=(factory, tls if implicit_tls else None, ready),
                                       daemon=True)
        self.thread.start()
        ready.wait(10)

    def _serve(self, factory: Any, ssl_context: ssl.SSLContext | None,
               ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            self.loop.create_server(factory, "127.0.0.1", 0, ssl=ssl_context))
        self.port = self.server.sockets[0].getsockname()[1]
        ready.set()
        self.loop.run_forever()

    def _authenticate(self, server: Any, session: Any, envelope: Any, mechanism: str,
                      data: Any) -> AuthResult:
        if not isinstance(data, LoginPassword):
            return AuthResult(success=False, handled=False)
        pair = (data.login.decode(), data.password.decode())
        self.logins.append(pair)
        return AuthResult(success=pair == self.login, handled=False)

    def close(self) -> None:
        def stop() -> None:
            self.server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(10)


def silent_port() -> tuple[socket.socket, int]:
    """A listening socket nobody accepts on: connections open, and nothing is said."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    return listener, listener.getsockname()[1]


def dead_port() -> int:
    """A port that was free a moment ago: connecting is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def certificate(folder: Path) -> tuple[Path, Path]:
    """A self-signed certificate (and its key) for 127.0.0.1, valid one day."""
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )
    return cert, key


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def wait_for(condition: Any, seconds: float = 10.0) -> bool:
    """Poll until `condition()` holds (a server thread catching up), or give up."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.01)
    return bool(condition())
