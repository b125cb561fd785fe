"""A real HTTP server on 127.0.0.1 for provider tests: recorded or hand-made replies, injected faults.

>>> with LoopbackServer() as srv:                                  # doctest: +SKIP
...     srv.route("/x.json", Reply(503), Reply(body={"ok": 1}))     # first 503, then 200 (repeated)
...     HttpClient("t", srv.url).get_json("/x.json")

Every handler wait (``delay``, ``drip``) is interruptible: closing the server wakes sleeping handlers,
so no thread outlives a test by more than one ``drip`` step.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import socket
import threading
from collections.abc import Callable
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclasses.dataclass
class Reply:
    """One canned HTTP response.

    Attributes
    ----------
    status : int
    body : bytes, str or JSON-able object (dicts/lists are ``json.dumps``-ed)
    headers : dict
        Extra headers; a ``Date`` given here replaces the server's own.
    content_type : str
    delay : float
        Seconds to wait before sending anything (a read timeout for a shorter client timeout).
    drip : float
        Seconds between body bytes (a slow drip); 0 sends the body at once.
    gzip : bool
        Send the body gzip-compressed with ``Content-Encoding: gzip``.
    content_length : int, optional
        Announce this length instead of the real one (a larger value + close = truncated transfer).
    header_drip : float
        Seconds between the bytes of the status line and headers (a server that sends its headers
        slowly: every byte arrives well within a read timeout, the whole never does); 0 sends them
        at once.
    """

    status: int = 200
    body: Any = b""
    headers: dict = dataclasses.field(default_factory=dict)
    content_type: str = "application/json"
    delay: float = 0.0
    drip: float = 0.0
    gzip: bool = False
    content_length: int | None = None
    header_drip: float = 0.0

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            data = self.body
        elif isinstance(self.body, str):
            data = self.body.encode()
        else:
            data = json.dumps(self.body).encode()
        return gzip.compress(data) if self.gzip else data


@dataclasses.dataclass(frozen=True)
class Seen:
    """A request the server received."""

    method: str
    path: str
    query: dict
    headers: dict


Handler = Callable[[Seen], Reply]


class LoopbackServer:
    """``ThreadingHTTPServer`` on a free loopback port serving routes by path.

    Parameters
    ----------
    host : str
        ``"127.0.0.1"`` (default) or ``"localhost"``: the name in :attr:`url`, so two servers can be
        two different origins (``http://127.0.0.1:A`` and ``http://localhost:B``).

    Attributes
    ----------
    connections : int
        TCP connections accepted so far (a client that must stay offline leaves it at 0).
    requests : list of Seen
        Every request received.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.routes: dict[str, Handler] = {}
        self.requests: list[Seen] = []
        self.connections = 0
        self.stopping = threading.Event()
        self._lock = threading.Lock()
        server = self

        class _Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # keep test output quiet
                pass

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                seen = Seen("GET", parts.path, dict(parse_qsl(parts.query, keep_blank_values=True)),
                            {k.lower(): v for k, v in self.headers.items()})
                with server._lock:
                    server.requests.append(seen)
                    handler = server.routes.get(parts.path)
                reply = handler(seen) if handler else Reply(404, {"error": f"no route {parts.path}"})
                self._send(reply)

            def _send(self, reply: Reply) -> None:
                if reply.delay and server.stopping.wait(reply.delay):
                    return
                data = reply.payload()
                try:
                    try:
                        phrase = HTTPStatus(reply.status).phrase
                    except ValueError:
                        phrase = ""
                    status_line = f"HTTP/1.1 {reply.status} {phrase}\r\n".encode("latin-1")
                    headers = {"Content-Type": reply.content_type,
                               "Content-Length": str(reply.content_length if reply.content_length is not None
                                                     else len(data))}
                    if "Date" not in reply.headers:
                        headers["Date"] = formatdate(usegmt=True)
                    if reply.gzip:
                        headers["Content-Encoding"] = "gzip"
                    headers.update(reply.headers)
                    if reply.content_length is not None:
                        headers["Connection"] = "close"
                    if headers.get("Connection", "").lower() == "close":
                        self.close_connection = True
                    head = status_line + b"".join(f"{k}: {v}\r\n".encode("latin-1") for k, v in headers.items())
                    head += b"\r\n"
                    if reply.header_drip:
                        for i in range(len(head)):
                            self.wfile.write(head[i:i + 1])
                            self.wfile.flush()
                            if server.stopping.wait(reply.header_drip):
                                return
                    else:
                        self.wfile.write(head)
                    if reply.drip:
                        for i in range(len(data)):
                            self.wfile.write(data[i:i + 1])
                            self.wfile.flush()
                            if server.stopping.wait(reply.drip):
                                return
                    else:
                        self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                    self.close_connection = True

        class _Server(ThreadingHTTPServer):
            def process_request(self, request, client_address):  # one call per accepted connection
                with server._lock:
                    server.connections += 1
                super().process_request(request, client_address)

        self._httpd = _Server((host, 0), _Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                        daemon=True)

    @property
    def url(self) -> str:
        port = self._httpd.server_address[1]
        return f"http://{self.host}:{port}"

    def route(self, path: str, *replies: Reply | Handler) -> None:
        """Serve ``replies`` in order at ``path`` (the last repeats); a callable answers each request."""
        if len(replies) == 1 and callable(replies[0]) and not isinstance(replies[0], Reply):
            self.routes[path] = replies[0]
            return
        queue = list(replies)
        lock = threading.Lock()

        def handler(_: Seen) -> Reply:
            with lock:
                return queue.pop(0) if len(queue) > 1 else queue[0]

        self.routes[path] = handler

    def hits(self, path: str) -> list[Seen]:
        """The requests received at ``path``."""
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def close(self) -> None:
        self.stopping.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
