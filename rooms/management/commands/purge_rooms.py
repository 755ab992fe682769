"""Delete rooms that have been expired or closed for longer than a given age."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandParser

from rooms import services


class Command(BaseCommand):
    help = (
        "Delete rooms (with their items, votes and participants) that expired or were closed "
        "more than --older-than seconds ago. Run it from cron or a systemd timer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--older-than",
            type=int,
            default=24 * 60 * 60,
            metavar="SECONDS",
            help="how long a room must have been expired or closed (default: 86400, one day)",
        )

    def handle(self, *args, older_than: int, **options) -> None:
        if older_than < 0:
            self.stderr.write("--older-than must be 0 or more seconds")
            raise SystemExit(2)
        deleted = services.rooms_purge(older_than=timedelta(seconds=older_than))
        self.stdout.write(f"Deleted {deleted} room(s) expired or closed over {older_than}s ago.")
