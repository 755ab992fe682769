"""An HTTP proxy that takes every request to one daphne on loopback, whatever host it names.

A browser set to use it opens http://lunch.test:PORT/ as a phone on the office network opens
`make run`'s address: a name that is not loopback, over plain http, so the page is not a
secure context (no async clipboard, no share sheet, no service worker), as it is there.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading

from tests.support.processes import free_port

LAN_HOST = "lunch.test"


class ForwardProxy:
    """Forward each connection to 127.0.0.1:`target_port`: a CONNECT becomes a tunnel, and a
    request in proxy form ("GET http://lunch.test:PORT/path") is sent on in origin form, one
    request per connection (a WebSocket upgrade stays open)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.started = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        if not self.started.wait(10):
            raise RuntimeError("the proxy did not start")

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(
            asyncio.start_server(self._connection, "127.0.0.1", self.port)
        )
        self.started.set()
        self.loop.run_forever()

    async def _connection(self, client_in: asyncio.StreamReader, client_out) -> None:
        try:
            head = await client_in.readuntil(b"\r\n\r\n")
            server_in, server_out = await asyncio.open_connection("127.0.0.1", self.target_port)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            client_out.close()
            return
        if head.startswith(b"CONNECT "):
            client_out.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            server_out.write(_origin_form(head))
        await asyncio.gather(_pipe(client_in, server_out), _pipe(server_in, client_out))

    def stop(self) -> None:
        """Close the listening socket and every connection still open, then the loop."""

        async def shut_down() -> None:
            self.server.close()
            others = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in others:
                task.cancel()
            await asyncio.gather(*others, return_exceptions=True)
            self.loop.stop()

        asyncio.run_coroutine_threadsafe(shut_down(), self.loop)
        self.thread.join(10)
        self.loop.close()


def _origin_form(head: bytes) -> bytes:
    """The request line's absolute URL cut to its path, and `Connection: close` unless the
    request upgrades (a WebSocket): daphne then ends the connection after its answer, so the
    next request comes on a new one and is rewritten too."""
    request_line, _, rest = head.partition(b"\r\n")
    method, url, version = request_line.split(b" ", 2)
    if url.startswith(b"http://"):
        url = b"/" + url[len(b"http://") :].partition(b"/")[2]
    lines = rest.split(b"\r\n")
    upgrade = any(line.lower().startswith(b"upgrade:") for line in lines)
    if not upgrade:
        lines = [line for line in lines if not line.lower().startswith(b"connection:")]
        lines.insert(0, b"Connection: close")
    return b" ".join((method, url, version)) + b"\r\n" + b"\r\n".join(lines)


async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    with contextlib.suppress(OSError, asyncio.CancelledError):
        while data := await source.read(65536):
            sink.write(data)
            await sink.drain()
    with contextlib.suppress(OSError):
        sink.close()
