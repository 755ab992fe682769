"""The database backend as the event loop may see it: never through `django.db.connection`.

On the event loop, `django.db.connection` is a different DatabaseWrapper for every asyncio
task: asgiref's Local, which holds Django's connections, is context-local in a thread that
runs a loop. A consumer that read `connection.vendor` made a wrapper of its own (with its
operations, features and introspection objects, in reference cycles) that only a full
garbage collection freed: about 10 KiB per WebSocket that came and went (issue 27).
"""

import functools

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend


def vendor() -> str:
    """ "postgresql" or "sqlite": the default database's vendor, without a connection."""
    return _backend_wrapper(connections.settings[DEFAULT_DB_ALIAS]["ENGINE"]).vendor


def converting_wrapper() -> BaseDatabaseWrapper:
    """A DatabaseWrapper of the default database that never connects, for what needs only its
    operations: turning a column's value into a field's (`Model.from_db`'s converters)."""
    return _unconnected(connections.settings[DEFAULT_DB_ALIAS]["ENGINE"])


@functools.cache
def _backend_wrapper(engine: str) -> type[BaseDatabaseWrapper]:
    return load_backend(engine).DatabaseWrapper


@functools.cache
def _unconnected(engine: str) -> BaseDatabaseWrapper:
    return _backend_wrapper(engine)(connections.settings[DEFAULT_DB_ALIAS], DEFAULT_DB_ALIAS)
