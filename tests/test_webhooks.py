"""The group webhook: which URLs are refused (SSRF), and the delivery to a real local server."""

import socket

import pytest

from groups import services as group_services
from groups import webhooks
from groups.models import Group
from rooms.errors import ClientError

pytestmark = pytest.mark.django_db


def refused(url: str) -> bool:
    try:
        webhooks.webhook_url_clean(url)
    except ClientError as error:
        assert error.code == "invalid_webhook"
        return True
    return False


@pytest.fixture
def public_dns(monkeypatch) -> dict[str, list[str]]:
    """A resolver answering from a table (the tests never depend on real DNS for names)."""
    table: dict[str, list[str]] = {}
    real = socket.getaddrinfo

    def fake(host, port, *args, **kwargs):
        if host in table:
            return [
                (
                    socket.AF_INET6 if ":" in a else socket.AF_INET,
                    socket.SOCK_STREAM,
                    6,
                    "",
                    (a, port),
                )
                for a in table[host]
            ]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", fake)
    return table


# --- Refusals (SSRF) -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hook",
        "https://127.1.2.3:8443/hook",
        "https://localhost/hook",  # a name that resolves to 127.0.0.1
        "https://LOCALHOST./hook",
        "https://[::1]/hook",
        "https://[::ffff:127.0.0.1]/hook",
        "https://10.1.2.3/hook",
        "https://172.16.0.1/hook",
        "https://192.168.1.10/hook",
        "https://169.254.169.254/latest/meta-data",  # cloud metadata, link-local
        "https://[fe80::1]/hook",
        "https://[fd00::1]/hook",
        "https://100.64.0.1/hook",  # carrier-grade NAT
        "https://224.0.0.1/hook",  # multicast
        "https://240.0.0.1/hook",  # reserved
        "https://0.0.0.0/hook",
        "https://2130706433/hook",  # 127.0.0.1 as one number
    ],
)
def test_non_public_addresses_are_refused(url: str) -> None:
    """Loopback, private, link-local, multicast, reserved (and tricks spelling them) are refused."""
    assert refused(url)


@pytest.mark.parametrize(
    "url",
    [
        "http://93.184.215.14/hook",  # plain http outside DEBUG
        "ftp://93.184.215.14/hook",
        "file:///etc/passwd",
        "https:///nohost",
        "not a url",
        "https://93.184.215.14/a b",
        "https://no-such-host.invalid/hook",  # does not resolve
        "https://93.184.215.14/" + "x" * 600,
    ],
)
def test_bad_urls_are_refused(url: str) -> None:
    """Only https URLs with a host that resolves, within the length the model stores."""
    assert refused(url)


def test_a_name_with_any_private_address_is_refused(public_dns) -> None:
    """A name resolving to a public and a private address is refused: both are checked."""
    public_dns["mixed.example"] = ["93.184.215.14", "10.0.0.5"]
    public_dns["chat.example"] = ["93.184.215.14"]
    assert refused("https://mixed.example/hook")
    assert not refused("https://chat.example/hook")


def test_public_https_is_accepted_and_http_only_in_debug(settings) -> None:
    """A public https URL passes; http passes only with DEBUG."""
    assert (
        webhooks.webhook_url_clean(" https://93.184.215.14/hook ") == "https://93.184.215.14/hook"
    )
    assert refused("http://93.184.215.14/hook")
    settings.DEBUG = True
    assert not refused("http://93.184.215.14/hook")


def test_allow_private_lets_an_intranet_chat_through(settings) -> None:
    """GROUP_WEBHOOK_ALLOW_PRIVATE=1 accepts private and loopback hosts, not other schemes."""
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    assert not refused("https://localhost/hook")
    assert not refused("https://10.1.2.3/hook")
    assert refused("ftp://10.1.2.3/hook")


# --- Delivery --------------------------------------------------------------------


@pytest.fixture
def local_webhooks(settings) -> None:
    """The receivers are plain http on loopback: allowed only with DEBUG and ALLOW_PRIVATE."""
    settings.DEBUG = True
    settings.GROUP_WEBHOOK_ALLOW_PRIVATE = True
    settings.GROUP_WEBHOOK_BACKOFF_SECONDS = 0.01


def payload(group: Group) -> webhooks.WebhookPayload:
    return {
        "text": "Lunch for Team: pho (picked by minji)",
        "group": {"slug": group.slug, "name": group.name},
        "room": "room-id",
        "item": "pho",
        "by": "minji",
        "at": "2026-11-24T12:00:00+00:00",
    }


@pytest.fixture
def group() -> Group:
    return group_services.group_create(name="Team", language="en")


def test_delivery_posts_json_and_records_success(group, receiver_factory, local_webhooks) -> None:
    """One POST of application/json with the payload; the group records the delivery."""
    receiver = receiver_factory()
    assert webhooks.webhook_deliver(group_id=group.pk, url=receiver.url, payload=payload(group))
    [request] = receiver.requests
    assert request["headers"]["Content-Type"] == "application/json"
    assert request["body"] == payload(group)
    assert request["headers"]["Host"] == f"127.0.0.1:{receiver.server_address[1]}"
    group.refresh_from_db()
    assert group.webhook_last_status == "delivered: HTTP 200"
    assert group.webhook_last_at is not None
    assert webhooks.webhook_outcome(group.webhook_last_status) == {
        "delivered": True,
        "reason": "http",
        "http_status": 200,
        "attempts": 1,
    }


def test_server_errors_are_retried_with_backoff(group, receiver_factory, local_webhooks) -> None:
    """5xx and 429 are retried up to GROUP_WEBHOOK_ATTEMPTS; a later success counts."""
    receiver = receiver_factory(statuses=[503, 429, 200])
    assert webhooks.webhook_deliver(group_id=group.pk, url=receiver.url, payload=payload(group))
    assert len(receiver.requests) == 3


def test_client_errors_are_not_retried(group, receiver_factory, local_webhooks) -> None:
    """A 404 (a deleted webhook) will not get better: one attempt, recorded as failed."""
    receiver = receiver_factory(statuses=[404, 200])
    assert not webhooks.webhook_deliver(group_id=group.pk, url=receiver.url, payload=payload(group))
    assert len(receiver.requests) == 1
    group.refresh_from_db()
    assert group.webhook_last_status == "failed: HTTP 404 (1 attempt(s))"
    outcome = webhooks.webhook_outcome(group.webhook_last_status)
    assert outcome == {"delivered": False, "reason": "http", "http_status": 404, "attempts": 1}


def test_a_hanging_receiver_times_out_after_every_attempt(
    group, receiver_factory, local_webhooks, settings
) -> None:
    """A receiver that never answers costs the timeout per attempt, then is recorded as failed."""
    settings.GROUP_WEBHOOK_TIMEOUT_SECONDS = 0.3
    settings.GROUP_WEBHOOK_ATTEMPTS = 2
    receiver = receiver_factory(hang=True)
    assert not webhooks.webhook_deliver(group_id=group.pk, url=receiver.url, payload=payload(group))
    assert len(receiver.requests) == 2
    group.refresh_from_db()
    assert group.webhook_last_status == "failed: timed out (2 attempt(s))"
    outcome = webhooks.webhook_outcome(group.webhook_last_status)
    assert outcome == {"delivered": False, "reason": "timeout", "http_status": None, "attempts": 2}


def test_the_address_is_checked_again_when_sending(
    group, receiver_factory, settings, public_dns
) -> None:
    """A name that was public when saved but resolves to loopback later is not posted to."""
    settings.DEBUG = True
    receiver = receiver_factory()
    port = receiver.server_address[1]
    public_dns["chat.example"] = ["93.184.215.14"]
    url = webhooks.webhook_url_clean(f"http://chat.example:{port}/hook")
    public_dns["chat.example"] = ["127.0.0.1"]  # DNS rebinding
    assert not webhooks.webhook_deliver(group_id=group.pk, url=url, payload=payload(group))
    assert receiver.requests == []
    group.refresh_from_db()
    assert group.webhook_last_status.startswith("failed: refused")
    assert webhooks.webhook_outcome(group.webhook_last_status)["reason"] == "refused"


def test_the_request_goes_to_the_checked_address_with_the_name_as_host(
    group, receiver_factory, local_webhooks, public_dns
) -> None:
    """The connection goes to the address that was checked; Host keeps the URL's name."""
    receiver = receiver_factory()
    port = receiver.server_address[1]
    public_dns["chat.example"] = ["127.0.0.1"]
    url = f"http://chat.example:{port}/hook?token=abc"
    assert webhooks.webhook_deliver(group_id=group.pk, url=url, payload=payload(group))
    [request] = receiver.requests
    assert request["headers"]["Host"] == f"chat.example:{port}"
    assert request["path"] == "/hook?token=abc"


def test_address_is_public() -> None:
    """The address test itself, on both families."""
    assert webhooks.address_is_public("93.184.215.14")
    assert webhooks.address_is_public("2606:2800:21f:cb07:6820:80da:af6b:8b2c")
    for address in ["127.0.0.1", "::1", "::ffff:10.0.0.1", "fe80::1", "ff02::1", "192.0.2.1"]:
        assert not webhooks.address_is_public(address)
