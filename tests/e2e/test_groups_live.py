"""Lunch groups against running daphne: one room per group across processes, and the webhook."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.support.client import RoomClient, http_json

pytestmark = pytest.mark.e2e


def create_group(base_url: str, **body: object) -> dict:
    status, data = http_json("POST", f"{base_url}/api/groups/", json.dumps(body).encode())
    assert status == 201, (status, data)
    return data


# Plain http to a loopback receiver: allowed only with DEBUG and GROUP_WEBHOOK_ALLOW_PRIVATE.
WEBHOOK_ENV = {"DJANGO_DEBUG": "1", "GROUP_WEBHOOK_ALLOW_PRIVATE": "1"}


def test_one_open_room_across_two_processes(daphne_factory) -> None:
    """Calls released at the same instant on two daphne processes get one room per group.

    Twelve groups, four callers each (two per process) held at a barrier and let go together,
    so the first calls of each group race across processes; every group ends with one room.
    """
    # The calls open up to 24 rooms; creation limits are not what this test is about.
    servers = [daphne_factory(ROOM_CREATE_PER_MINUTE=0), daphne_factory(ROOM_CREATE_PER_MINUTE=0)]
    slugs = [create_group(servers[0].http_url, name=f"team {n}")["slug"] for n in range(12)]
    callers = 4
    barrier = threading.Barrier(callers)

    def open_room(n: int, slug: str) -> tuple[int, dict]:
        barrier.wait()
        return http_json("POST", f"{servers[n % 2].http_url}/api/groups/{slug}/room/")

    for slug in slugs:
        with ThreadPoolExecutor(max_workers=callers) as pool:
            answers = list(pool.map(open_room, range(callers), [slug] * callers))
        statuses = sorted(status for status, _ in answers)
        assert statuses == [200] * (callers - 1) + [201], (slug, statuses)
        assert len({body["id"] for _, body in answers}) == 1, answers
        _, after = http_json("GET", f"{servers[1].http_url}/api/groups/{slug}/")
        assert after["room"]["id"] == answers[0][1]["id"]


async def decide(base_url: str, slug: str, names: tuple[str, ...]) -> tuple[list, float]:
    """Open today's room, join `names`, add two ideas, pick; (clients, seconds until all saw it)."""
    _, room = http_json("POST", f"{base_url}/api/groups/{slug}/room/")
    clients = [await RoomClient(f"{room['ws_url']}?name={name}").connect() for name in names]
    await clients[0].send("add:pho")
    await clients[0].send("vote:pho")
    await asyncio.gather(
        *(c.wait_state(lambda s: s["items"] and s["items"][0]["votes"] == 1) for c in clients)
    )
    started = time.monotonic()
    await clients[0].send("pick:fresh")
    await asyncio.gather(*(c.wait_for(lambda e: e["type"] == "picked") for c in clients))
    return clients, time.monotonic() - started


async def test_decision_is_posted_to_the_webhook(daphne_factory, receiver_factory) -> None:
    """A decision reaches a real local HTTP server as JSON, and the group page shows it went."""
    receiver = receiver_factory(path="/hooks/T0/SECRET")
    server = daphne_factory(**WEBHOOK_ENV)
    group = create_group(server.http_url, name="Team Kimchi", webhook_url=receiver.url)
    clients, _ = await decide(server.http_url, group["slug"], ("minji", "joon"))
    assert await asyncio.to_thread(receiver.received.wait, 10)
    [post] = receiver.requests
    assert post["content_type"] == "application/json"
    body = post["body"]
    assert (body["item"], body["by"]) == ("pho", "minji")
    assert body["group"] == {"slug": group["slug"], "name": "Team Kimchi"}
    assert body["room"] == clients[0].state["room"]["id"]
    assert "pho" in body["text"] and "minji" in body["text"]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        _, data = http_json("GET", f"{server.http_url}/api/groups/{group['slug']}/")
        if data["webhook"]["last_status"]:
            break
        await asyncio.sleep(0.1)
    assert data["webhook"]["last_status"] == "delivered: HTTP 200"
    assert [h["item"] for h in data["history"]] == ["pho"]
    await asyncio.gather(*(c.close() for c in clients))


async def test_a_hanging_webhook_does_not_delay_the_decision(daphne_factory, receiver_factory):
    """With the receiver hanging (5 s timeout, retries), everyone gets `picked` at once."""
    receiver = receiver_factory(hang=True, path="/hooks/T0/SECRET")
    server = daphne_factory(**WEBHOOK_ENV)
    group = create_group(server.http_url, name="Team Pho", webhook_url=receiver.url)
    clients, took = await decide(server.http_url, group["slug"], ("minji", "joon", "sora"))
    assert took < 1.0, f"picked reached everyone after {took:.2f} s"
    for client in clients:
        await client.wait_state(lambda s: s["room"]["decision"] is not None, timeout=2)
    assert await asyncio.to_thread(receiver.received.wait, 10)  # the POST did go out
    # The room keeps working while the webhook thread waits on the receiver.
    await clients[1].send("add:bibimbap")
    for client in clients:
        await client.wait_state(lambda s: len(s["items"]) == 2, timeout=2)
    _, data = http_json("GET", f"{server.http_url}/api/groups/{group['slug']}/")
    assert [h["item"] for h in data["history"]] == ["pho"]
    await asyncio.gather(*(c.close() for c in clients))


async def test_announce_posts_the_summary_once_per_call(daphne_factory, receiver_factory) -> None:
    """`announce` in a group's room: the receiver gets exactly one post, the room's summary;
    a second call within the minute is rate_limited and posts nothing."""
    receiver = receiver_factory(path="/hooks/T0/SECRET")
    server = daphne_factory(**WEBHOOK_ENV)
    group = create_group(server.http_url, name="점심팀", language="ko", webhook_url=receiver.url)
    (minji, joon), _ = await decide(server.http_url, group["slug"], ("minji", "joon"))
    assert await asyncio.to_thread(receiver.received.wait, 10)  # the decision's post
    receiver.received.clear()
    await minji.send("order:짬뽕")
    await joon.send("order:짜장면")
    await minji.send("bill:16000")
    state = await joon.wait_state(lambda s: s["room"]["bill"] is not None)
    await joon.send("announce")
    assert await asyncio.to_thread(receiver.received.wait, 10)
    await joon.send({"action": "announce", "ref": "again"})
    refused = await joon.wait_for(lambda e: e.get("ref") == "again")
    assert refused["code"] == "rate_limited"
    await asyncio.sleep(1)  # room for a wrong second post to arrive
    decision_post, announcement = receiver.requests
    assert "item" in decision_post["body"]
    assert announcement["body"] == {
        "text": state["room"]["summary"],
        "group": {"slug": group["slug"], "name": "점심팀"},
        "room": state["room"]["id"],
    }
    assert "Total 16,000 KRW, paid by minji" in announcement["body"]["text"]  # the group's en
    await asyncio.gather(minji.close(), joon.close())


def test_two_scheduler_processes_open_one_room_and_post_once(
    daphne_factory, e2e_database: str, receiver_factory
) -> None:
    """Two real `manage.py run_scheduler` processes on the same database (PostgreSQL in make
    test's second pass), started together, looking every 0.2 s: a group whose opening time has
    come gets one room and the chat one post; a scheduler started again later posts nothing."""
    import subprocess
    import sys

    from tests.support.processes import PROJECT_DIR, server_env

    server = daphne_factory(**WEBHOOK_ENV)
    receiver = receiver_factory(path="/hooks/T0/SECRET")
    group = create_group(server.http_url, name="Team Kimchi", webhook_url=receiver.url)
    lunch = time.strftime("%H:%M", time.gmtime(time.time() + 10 * 60))  # opened 10 minutes ago
    body = {"lunch_time": lunch, "timezone": "UTC", "weekdays": [1, 2, 3, 4, 5, 6, 7]}
    body["webhook_format"] = "slack"
    status, _ = http_json("PATCH", group["api_url"], json.dumps(body).encode())
    assert status == 200
    env = server_env(e2e_database, PUBLIC_URL="https://lunch.example", **WEBHOOK_ENV)

    def scheduler() -> subprocess.Popen:
        return subprocess.Popen(
            [sys.executable, "manage.py", "run_scheduler", "--interval", "0.2"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )

    first, second = scheduler(), scheduler()
    try:
        assert receiver.received.wait(30)
        time.sleep(3)  # both have looked many times since
    finally:
        for process in (first, second):
            process.terminate()
        outputs = [process.communicate(timeout=40)[0] for process in (first, second)]
    opened = [line for output in outputs for line in output.splitlines()]
    assert sum(line.startswith("opened room=") for line in opened) == 1, outputs
    assert all("scheduler stopped" in output for output in outputs), outputs
    [post] = receiver.requests
    status, data = http_json("GET", group["api_url"])
    room = data["room"]
    hours, minutes = divmod((int(lunch[:2]) * 60 + int(lunch[3:]) - 5) % (24 * 60), 60)
    url = f"https://lunch.example/rooms/{room['id']}/"
    assert post["body"] == {
        "text": f"Today's lunch room is open: {url} (we decide at {hours:02d}:{minutes:02d})"
    }
    # A restart within the same lunch: it finds the opening done and posts nothing.
    again = scheduler()
    time.sleep(2)
    again.terminate()
    assert "room created" not in again.communicate(timeout=40)[0]
    assert len(receiver.requests) == 1
