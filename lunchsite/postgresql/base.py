"""Django's PostgreSQL backend, with a pool check that costs no round trip while all is well.

With `CONN_HEALTH_CHECKS`, Django gives psycopg's pool `ConnectionPool.check_connection`,
which sends an empty query on every checkout: one round trip in six of a room change
(docs/performance.md). Django passes `check=` itself and has no setting for another, so
this backend swaps in `check_if_suspect` once the pool exists.
"""

import select
from typing import Any

from django.db.backends.postgresql import base
from psycopg_pool import ConnectionPool

from lunchsite import metrics


def check_if_suspect(conn: Any) -> None:
    """Check a pooled connection only when the server may have dropped it; raise if it did.

    A connection idle in the pool, in autocommit, has nothing to read. A server that ended
    it (pg_terminate_backend, a restart, a crash) sent an error or closed the socket, either
    of which makes it readable. Only then is psycopg's own check worth its round trip; it
    raises for a dead connection and the pool opens a new one in its place. A connection
    lost without a word (a network partition) is not seen here; the caller's retry covers
    it (rooms/database.py, lunchsite/middleware.py).
    """
    if looks_dropped(conn):
        ConnectionPool.check_connection(conn)


def looks_dropped(conn: Any) -> bool:
    """The connection is closed, or its socket has something to read while it is idle: the
    server's error or end of stream. psycopg's sync and async connections alike.

    poll(), not select(): a process serving thousands of WebSockets opens its database
    connections past descriptor 1024, which select() refuses with ValueError; the pool then
    took every checkout for a failed check and timed out (issue 27).
    """
    if conn.closed:
        return True
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return bool(poller.poll(0))


class DatabaseWrapper(base.DatabaseWrapper):
    def get_new_connection(self, conn_params: dict[str, Any]) -> Any:
        """Django's, with the wait for a pooled connection timed (lunchsite/metrics.py)."""
        if self.pool is None:
            return super().get_new_connection(conn_params)
        with metrics.pool_waited("django"):
            return super().get_new_connection(conn_params)

    @property
    def pool(self) -> ConnectionPool | None:
        pool = super().pool
        # psycopg_pool keeps the check in `_check`; tests/performance/test_database_pool.py
        # fails if a new release renames it.
        if pool is not None and pool._check is ConnectionPool.check_connection:
            pool._check = check_if_suspect
        return pool
