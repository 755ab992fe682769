"""The clock of this process: every ROOM_DEADLINE_POLL_SECONDS it settles the rooms whose
deadline or runoff is due (rooms/services/deadlines.py).

Started with the server (lunchsite/asgi.py, once daphne's reactor runs), not by a
connection: a deadline set through another process, or with nobody connected anywhere, is
still decided on time. Every process runs one; the claim in the database makes each
decision happen once, and a deadline set before a restart is decided after it.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

from django.conf import settings

from .. import database
from ..errors import ServerBusy
from ..services import deadlines

log = logging.getLogger(__name__)

_tasks: set[asyncio.Task] = set()


def install() -> None:
    """Under daphne, start the clock once its reactor (and asyncio loop) runs; elsewhere (tests,
    manage.py) nothing runs. ROOM_DEADLINE_POLL_SECONDS=0 leaves this process out."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None or settings.ROOM_DEADLINE_POLL_SECONDS <= 0:
        return
    reactor.callWhenRunning(_started, reactor)


def _started(reactor: Any) -> None:
    task = asyncio.get_event_loop().create_task(run(), name="lunchsite-deadlines")
    _tasks.add(task)  # a reference for as long as it runs
    task.add_done_callback(_tasks.discard)


async def run() -> None:
    """Settle what is due, for ever; a failed round is logged and the next one tries again."""
    interval = settings.ROOM_DEADLINE_POLL_SECONDS
    while True:
        await asyncio.sleep(interval)
        try:
            settled = await database.call(deadlines.rooms_due_settle)
        except ServerBusy:
            continue
        except Exception:  # the clock must outlive any one bad round
            log.exception("deadline round failed")
            continue
        if settled:
            log.info("deadlines settled count=%s", settled)
