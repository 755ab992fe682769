"""A local stand-in for a team chat's incoming webhook, for the webhook delivery tests."""

from __future__ import annotations

import http.server
import json
import threading
from collections.abc import Callable, Iterator


class Receiver(http.server.ThreadingHTTPServer):
    """Records each POST (headers, content type, body, path) and answers with the next status.

    `statuses` are answered in order (200 once they run out); with `hang` it answers nothing
    until `release` is set. `received` is set on the first POST. With `check` (a function of
    the recorded request returning what is wrong with it, "" if nothing), a request it finds
    fault with is answered 400, as the chat service would.
    """

    daemon_threads = True

    def __init__(
        self,
        *,
        statuses: list[int] | None = None,
        hang: bool = False,
        path: str = "/hook",
        check: Callable[[dict], str] | None = None,
    ) -> None:
        self.requests: list[dict] = []
        self.check = check
        self.faults: list[str] = []
        self.statuses = list(statuses or [])
        self.hang = hang
        self.path = path
        self.release = threading.Event()
        self.received = threading.Event()
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"


class _Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        server: Receiver = self.server  # type: ignore[assignment]
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        request = {
            "headers": dict(self.headers),
            "content_type": self.headers.get("Content-Type"),
            "body": json.loads(body),
            "path": self.path,
        }
        server.requests.append(request)
        fault = server.check(request) if server.check else ""
        if fault:
            server.faults.append(fault)
        server.received.set()
        if server.hang:
            server.release.wait(60)
            return
        status = server.statuses.pop(0) if server.statuses else 200
        if fault:
            status = 400
        self.send_response(status)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args) -> None:
        pass


def receivers() -> Iterator[Callable[..., Receiver]]:
    """Yield a function starting receivers; all are released and shut down afterwards."""
    servers: list[Receiver] = []

    def start(**kwargs) -> Receiver:
        server = Receiver(**kwargs)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.release.set()
        server.shutdown()
        server.server_close()
