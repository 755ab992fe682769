"""Put a room in a given shape over the WebSocket protocol, synchronously, for page tests."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from websockets.sync.client import ClientConnection, connect

from tests.support.processes import PROJECT_DIR, server_env


class Person:
    """One participant on a plain WebSocket: send commands, wait for the state to show them."""

    def __init__(self, ws_url: str, name: str, token: str | None = None) -> None:
        query = f"?name={name}" + (f"&token={token}" if token else "")
        # Entered by hand (not a `with` block): the connection lives across test steps.
        self.ws: ClientConnection = connect(ws_url + query, open_timeout=10).__enter__()
        self.you: dict = {}
        self.state: dict = {}
        self.events: list[dict] = []
        self.wait(lambda e: e["type"] == "state")

    def wait(self, predicate, timeout: float = 10.0) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            event = json.loads(self.ws.recv(timeout=max(0.01, deadline - time.monotonic())))
            self.events.append(event)
            if event["type"] == "welcome":
                self.you = event["you"]
            if event["type"] == "state":
                self.state = event
            if predicate(event):
                return event

    def do(self, command: dict, until=None) -> dict:
        """Send a command and wait for the state it leads to (or an error)."""
        # States from others' earlier commands first, so the next one read is ours.
        try:
            while True:
                self.wait(lambda e: False, timeout=0.1)
        except TimeoutError:
            pass
        self.ws.send(json.dumps(command))
        return self.wait(
            lambda e: e["type"] == "error" or (e["type"] == "state" and (until or bool)(e))
        )

    def close(self) -> None:
        self.ws.__exit__(None, None, None)


def lively_room(person: Person, other: Person) -> None:
    """Four ideas, votes from both, a veto: the room most screenshots show."""
    for name in ("Kimchi stew", "Pho", "Tonkatsu", "Bibimbap"):
        person.do({"action": "add", "item": name})
    person.do({"action": "vote", "item": "Kimchi stew"})
    other.do({"action": "vote", "item": "Kimchi stew"})
    other.do({"action": "vote", "item": "Pho"})
    other.do({"action": "veto", "item": "Tonkatsu"})


# Two earlier lunches of a group: bibimbap ten days ago, kimchi stew two days ago.
_EARLIER_LUNCHES = """
from datetime import timedelta
from django.utils import timezone
from groups.models import Group
from rooms import text
from rooms.models import Room
group = Group.objects.get(slug={slug!r})
for item, days in [("Bibimbap", 10), ("Kimchi stew", 2)]:
    at = timezone.now() - timedelta(days=days)
    Room.objects.create(group=group, created_at=at, expires_at=at + timedelta(minutes=10),
        decision_item=item, decision_by="Joon", decided_at=at, decision_key=text.item_key(item))
"""


def earlier_lunches(database_url: str, slug: str) -> None:
    """Give the group two decided lunches on other days (its usual places), in the database."""
    subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", _EARLIER_LUNCHES.format(slug=slug)],
        cwd=PROJECT_DIR,
        env=server_env(database_url),
        check=True,
    )
