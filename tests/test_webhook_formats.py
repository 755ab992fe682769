"""Each chat's incoming-webhook format, posted to a local receiver that checks what that service
documents (and answers 400, as the service would, when something is off); the format chosen
from the URL's host or the group's `webhook_format`.

What each service documents (checked when this was written):
- Slack: POST application/json `{"text": ...}` (api.slack.com, incoming webhooks).
- Mattermost: POST application/json `{"text": ...}` (developers.mattermost.com, incoming webhooks).
- Discord: POST application/json, `content` (at most 2,000 characters) or `embeds` required.
- Google Chat: POST `application/json; charset=UTF-8` `{"text": ...}` (developers.google.com).
- JANDI: POST with `Accept: application/vnd.tosslab.jandi-v2+json` and
  `Content-Type: application/json`; `body` required, `connectColor` a hex colour,
  `connectInfo` a list of `{title, description, imageUrl}` (support.jandi.com).
- Dooray!: POST application/json `{"botName", "botIconImage"?, "text", "attachments"?}`, botName
  and text required.
"""

import re
import threading

import pytest
from django.utils import timezone

from groups import services as group_services
from groups import webhooks
from groups.models import Group

pytestmark = pytest.mark.django_db

TEXT = "오늘 점심 방이 열렸어요: https://lunch.example/rooms/abc/ (11:55에 정해요)"
LINK = "https://lunch.example/rooms/abc/"


def _json(request: dict) -> str:
    media = (request["content_type"] or "").split(";")[0].strip()
    return "" if media == "application/json" else f"content type {request['content_type']!r}"


def _only(body: dict, required: set[str], allowed: set[str]) -> str:
    if not isinstance(body, dict):
        return "not an object"
    if missing := required - set(body):
        return f"missing {sorted(missing)}"
    if extra := set(body) - allowed:
        return f"unknown fields {sorted(extra)}"
    return ""


def _text(body: dict, key: str) -> str:
    value = body.get(key)
    return "" if isinstance(value, str) and value.strip() else f"{key} is not a non-empty string"


def slack(request: dict) -> str:
    body = request["body"]
    return _json(request) or _only(body, {"text"}, {"text"}) or _text(body, "text")


mattermost = slack


def discord(request: dict) -> str:
    body = request["body"]
    fault = _json(request) or _only(body, {"content"}, {"content"}) or _text(body, "content")
    return fault or ("content over 2000 characters" if len(body["content"]) > 2000 else "")


def google_chat(request: dict) -> str:
    body = request["body"]
    if request["content_type"] != "application/json; charset=UTF-8":
        return f"content type {request['content_type']!r}"
    return _only(body, {"text"}, {"text"}) or _text(body, "text")


def jandi(request: dict) -> str:
    body = request["body"]
    if request["headers"].get("Accept") != "application/vnd.tosslab.jandi-v2+json":
        return f"Accept {request['headers'].get('Accept')!r}"
    fault = _json(request) or _only(body, {"body"}, {"body", "connectColor", "connectInfo"})
    fault = fault or _text(body, "body")
    if fault:
        return fault
    if "connectColor" in body and not re.fullmatch(r"#[0-9A-Fa-f]{6}", body["connectColor"]):
        return "connectColor is not a hex colour"
    for info in body.get("connectInfo", []):
        if (
            not isinstance(info, dict)
            or not info
            or set(info) - {"title", "description", "imageUrl"}
        ):
            return f"connectInfo entry {info!r}"
        if not all(isinstance(value, str) for value in info.values()):
            return "connectInfo values must be strings"
    return ""


def dooray(request: dict) -> str:
    body = request["body"]
    allowed = {"botName", "botIconImage", "text", "attachments"}
    fault = _json(request) or _only(body, {"botName", "text"}, allowed)
    return fault or _text(body, "botName") or _text(body, "text")


CHECKS = {
    "slack": slack,
    "mattermost": mattermost,
    "discord": discord,
    "google_chat": google_chat,
    "jandi": jandi,
    "dooray": dooray,
}


@pytest.fixture
def local_webhooks(settings) -> None:
    """The receivers are plain http on loopback: allowed only with DEBUG and ALLOW_PRIVATE."""
    settings.DEBUG = True
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    settings.GROUP_WEBHOOK_BACKOFF_SECONDS = 0.01


@pytest.fixture
def group() -> Group:
    return group_services.group_create(name="Team", language="ko")


@pytest.mark.parametrize("format", sorted(CHECKS))
def test_each_format_is_what_its_chat_documents(
    format, group, receiver_factory, local_webhooks
) -> None:
    """Each format's body and headers pass that chat's documented checks, and are delivered."""
    receiver = receiver_factory(check=CHECKS[format])
    body, headers = webhooks.webhook_payload(format, TEXT, link=LINK, title="오늘 점심")
    delivered = webhooks.webhook_deliver(
        group_id=group.pk, url=receiver.url, payload=body, headers=headers
    )
    assert receiver.faults == []
    assert delivered
    [request] = receiver.requests
    sent = request["body"]
    words = sent.get("text") or sent.get("content") or sent.get("body")
    assert TEXT in words  # the sentence arrives whole (Korean kept as UTF-8)
    if format == "jandi":
        assert sent["connectInfo"] == [{"title": "오늘 점심", "description": LINK}]


@pytest.mark.parametrize("format", sorted(CHECKS))
def test_the_checks_can_fail(format, group, receiver_factory, local_webhooks) -> None:
    """The generic payload is not any chat's format: each receiver refuses it with a 400."""
    receiver = receiver_factory(check=CHECKS[format])
    body, headers = webhooks.webhook_payload("generic", TEXT, data={"room": "abc"})
    if format == "jandi":
        headers = {**headers, "Accept": "application/vnd.tosslab.jandi-v2+json"}
    assert not webhooks.webhook_deliver(
        group_id=group.pk, url=receiver.url, payload=body, headers=headers
    )
    assert receiver.faults


def test_discord_content_is_cut_to_its_limit() -> None:
    body, _ = webhooks.webhook_payload("discord", "가" * 2500)
    assert len(body["content"]) == 2000


def test_generic_keeps_the_current_payload() -> None:
    """Any other receiver gets what it always got: the sentence and the decision's fields."""
    data = {"group": {"slug": "s", "name": "Team"}, "room": "r", "item": "pho", "by": "minji"}
    body, headers = webhooks.webhook_payload("generic", "Lunch for Team: pho", data=data)
    assert body == {"text": "Lunch for Team: pho", **data}
    assert headers == {"Content-Type": "application/json"}


@pytest.mark.parametrize(
    ("url", "format"),
    [
        ("https://hooks.slack.com/services/T0/B0/X", "slack"),
        ("https://discord.com/api/webhooks/1/x", "discord"),
        ("https://discordapp.com/api/webhooks/1/x", "discord"),
        ("https://ptb.discord.com/api/webhooks/1/x", "discord"),
        ("https://chat.googleapis.com/v1/spaces/A/messages?key=k&token=t", "google_chat"),
        ("https://wh.jandi.com/connect-api/webhook/1/abc", "jandi"),
        ("https://hook.dooray.com/services/1/2/x", "dooray"),
        ("https://team.cloud.mattermost.com/hooks/abc", "mattermost"),
        ("https://HOOKS.SLACK.COM./services/x", "slack"),
        ("https://chat.example/hooks/abc", "generic"),
        ("https://notslack.com/hooks.slack.com", "generic"),
        ("https://slack.com.evil.example/x", "generic"),
    ],
)
def test_the_format_is_chosen_from_the_host(url, format) -> None:
    assert webhooks.webhook_format_for(url) == format


def test_the_groups_choice_wins_over_the_host() -> None:
    assert webhooks.webhook_format_for("https://chat.example/h", "mattermost") == "mattermost"
    assert webhooks.webhook_format_for("https://hooks.slack.com/x", "generic") == "generic"


def test_a_post_to_a_slack_host_is_in_slacks_format(
    group, receiver_factory, local_webhooks, public_dns
) -> None:
    """message_post, the one way every post leaves: the host decides the format end to end."""
    receiver = receiver_factory(check=slack, path="/services/T0/B0/SECRET")
    public_dns["hooks.slack.com"] = ["127.0.0.1"]
    group.webhook_url = f"http://hooks.slack.com:{receiver.port}/services/T0/B0/SECRET"
    group.save()
    assert webhooks.message_post(group=group, text=TEXT)
    assert receiver.received.wait(30)
    assert receiver.requests[0]["body"] == {"text": TEXT}
    assert receiver.faults == []


def test_a_decision_goes_out_in_the_groups_format(group, receiver_factory, local_webhooks) -> None:
    """The decision's post goes through the format layer: Discord gets `content`."""
    receiver = receiver_factory(check=discord)
    group.webhook_url, group.webhook_format = receiver.url, "discord"
    group.save()
    room, _ = group_services.group_room_open(group=group)
    room.decision_item, room.decision_by = "짬뽕", "민지"
    room.decided_at = timezone.now()
    group_services.decision_announce(room=room)
    assert receiver.received.wait(30)
    assert receiver.faults == []
    assert "짬뽕" in receiver.requests[0]["body"]["content"]


@pytest.fixture
def public_dns(monkeypatch) -> dict[str, list[str]]:
    """A resolver answering from a table (as in tests/test_webhooks.py)."""
    import socket

    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo
    lock = threading.Lock()

    def fake(host, port, *args, **kwargs):
        with lock:
            addresses = table.get(host)
        if addresses:
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table
