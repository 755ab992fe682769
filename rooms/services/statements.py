"""Our own SQL on Django's connection: run a statement, send several in one round trip, and
turn a returned row into a model instance without a queryset."""

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from datetime import datetime
from typing import Any, TypeVar

import psycopg
from django.db import connection
from django.db.models import Field, Model
from psycopg.pq import ExecStatus, TransactionStatus

from .. import backend

log = logging.getLogger(__name__)

Statement = tuple[str, dict[str, Any]]
M = TypeVar("M", bound=Model)


def execute(sql: str, params: dict[str, Any]) -> list[tuple]:
    """Run one statement of ours; its rows (RETURNING or SELECT), if any."""
    with connection.cursor() as cursor:
        cursor.execute(sql, adapted(params))
        return cursor.fetchall() if cursor.description else []


def adapted(params: dict[str, Any]) -> dict[str, Any]:
    """The parameters with their times as the database's adapter wants them (in place)."""
    for name, value in params.items():
        if isinstance(value, datetime):
            params[name] = connection.ops.adapt_datetimefield_value(value)
    return params


class Sent:
    """A statement sent with others; `rows` (RETURNING or SELECT), once they have all run."""

    rows: list[tuple]


@contextmanager
def sent_together(*, commit: bool = False) -> Iterator[Callable[[str, dict], Sent]]:
    """Send statements of the open transaction together; their rows are there when the block ends.

    On PostgreSQL they go out in pipeline mode: the BEGIN, every statement and a Sync are
    sent without waiting for any answer, and the answers come back together. One after
    another, each statement was a round trip of its own, and under load each waited for the
    server's process and then for the GIL (docs/performance.md). PostgreSQL still runs them
    one after another, each with its own snapshot, so nothing reads differently. A statement
    that fails raises here, as Django's DatabaseError, once all have been answered (the
    server skips the ones after it); the transaction is then left to roll back. SQLite, in
    process, runs each at once.

    With `commit`, the pipeline ends with COMMIT if it opened the transaction for the only
    atomic block (a block inside another leaves it to the outer one): nothing may be
    written in it afterwards (the rest of the atomic block runs in autocommit), and its
    ClientError no longer rolls anything back. Django's atomic block then finds the
    transaction ended and runs the on_commit hooks as usual.
    """
    pipelined = connection.vendor == "postgresql"
    sent: list[tuple[Sent, Any]] = []

    def send(sql: str, params: dict) -> Sent:
        statement = Sent()
        if not pipelined:
            statement.rows = execute(sql, params)
            return statement
        cursor = cursors.enter_context(connection.cursor())
        cursor.execute(sql, adapted(params))
        sent.append((statement, cursor))
        return statement

    with ExitStack() as cursors:
        if not pipelined:
            yield send
            return
        connection.ensure_connection()
        raw = connection.connection
        with connection.wrap_database_errors:
            opening = _begin_with_the_statements(raw)
            # Leaving the pipeline sends a Sync and reads every answer: the one round trip.
            with raw.pipeline():
                if opening:
                    raw.execute(opening, prepare=False)
                yield send
                if opening and commit and len(connection.atomic_blocks) == 1:
                    raw.execute("COMMIT", prepare=False)  # ours alone: no outer block to wait for
        for statement, cursor in sent:
            # pgresult, not description: psycopg builds description's columns anew on each read.
            returned = cursor.pgresult.status == ExecStatus.TUPLES_OK
            statement.rows = cursor.fetchall() if returned else []


def _begin_with_the_statements(raw: psycopg.Connection) -> str | None:
    """The BEGIN to send as the pipeline's first statement, if the transaction is not open yet.

    psycopg opens a transaction with a BEGIN of its own and, in pipeline mode, waits for
    its answer before sending anything after it: a round trip of its own. So the
    connection is switched to autocommit for the rest of this transaction, and our BEGIN
    goes out with the statements. psycopg's COMMIT and ROLLBACK look at the server's
    transaction status, not at autocommit, so Django's atomic block ends the transaction
    as usual, and then sets autocommit back as it always does.
    """
    if connection.get_autocommit() or raw.pgconn.transaction_status != TransactionStatus.IDLE:
        return None  # outside atomic (nothing to open), or already open
    raw.autocommit = True
    level = raw.isolation_level
    return "BEGIN" if level is None else f"BEGIN ISOLATION LEVEL {level.name.replace('_', ' ')}"


# --- Rows to models --------------------------------------------------------------


def columns(model: type[Model], prefix: str = "") -> str:
    """The model's columns, in field order, for a RETURNING or SELECT list of ours."""
    return ", ".join(f"{prefix}{field.column}" for field in model._meta.concrete_fields)


def row_to_model(model: type[M], row: Sequence[Any]) -> M:
    """A model instance from a row of `columns(model)` (and anything after them), as the
    ORM builds one (Model.from_db, the backend's converters) but without a queryset: on
    every change, a queryset's compiling cost more than its statement."""
    db = backend.converting_wrapper()  # not `connection`: this runs on the event loop too
    fields = model._meta.concrete_fields
    values = list(row[: len(fields)])
    for index, field, converters in _converters(model, db):
        for converter in converters:
            values[index] = converter(values[index], field, db)
    return model.from_db(db.alias, [field.attname for field in fields], values)


_converters_by_model: dict[tuple, list] = {}


def _converters(model: type[Model], db: Any) -> list[tuple[int, Field, list]]:
    """(column index, field, converters) for each of the model's columns the backend converts."""
    key = (model, db.vendor)
    if key not in _converters_by_model:
        found = []
        for index, field in enumerate(model._meta.concrete_fields):
            column = field.get_col(model._meta.db_table)
            converters = db.ops.get_db_converters(column) + field.get_db_converters(db)
            if converters:
                found.append((index, field, converters))
        _converters_by_model[key] = found
    return _converters_by_model[key]
