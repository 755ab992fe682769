"""The lunch groups' scheduler: opens each group's room at its time, once (groups/scheduler.py)."""

from __future__ import annotations

import signal
import threading
from datetime import datetime
from types import FrameType

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections, connections
from django.utils import timezone

from groups import scheduler, webhooks


class Command(BaseCommand):
    help = (
        "Open each lunch group's room at its scheduled time, set its deadline and tell its "
        "chat; runs until SIGTERM or SIGINT. Any number may run at once (each opening happens "
        "once): docs/operations.md, 'The scheduler'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--interval",
            type=float,
            default=None,
            metavar="SECONDS",
            help="how often to look (default: SCHEDULER_INTERVAL_SECONDS, 10)",
        )
        parser.add_argument("--once", action="store_true", help="look once, then exit")
        parser.add_argument(
            "--now",
            default=None,
            metavar="ISO-8601",
            help="the clock to look at with --once (tests), e.g. 2026-12-04T11:40:00+09:00",
        )

    def handle(self, *args, interval: float | None, once: bool, now: str | None, **options):
        interval = settings.SCHEDULER_INTERVAL_SECONDS if interval is None else interval
        if interval <= 0:
            raise CommandError("--interval must be more than 0 seconds")
        clock = _parse_now(now) if now else None
        if clock and not once:
            raise CommandError("--now goes with --once")
        stop = threading.Event()

        def stopping(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, stopping)
        signal.signal(signal.SIGINT, stopping)
        self.stdout.write(f"scheduler started interval={interval:g}s", ending="\n")
        self.stdout.flush()
        try:
            while not stop.is_set():
                for room in scheduler.scheduler_tick(clock or timezone.now()):
                    self.stdout.write(f"opened room={room.pk} group={room.group_id}")
                self.stdout.flush()
                if once:
                    break
                close_old_connections()  # a database restart meanwhile: connect again
                stop.wait(interval)
        finally:
            webhooks.webhook_posts_wait(timeout=30)  # the posts already queued still go out
        if not once:
            connections.close_all()
        self.stdout.write("scheduler stopped")


def _parse_now(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise CommandError(f"--now {value!r} is not an ISO-8601 date and time") from None
    if moment.tzinfo is None:
        raise CommandError("--now needs a UTC offset")
    return moment
