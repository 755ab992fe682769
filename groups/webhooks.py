"""Posting to a group's team chat: which URLs may be posted to, each chat's format, delivery.

A webhook URL is user input that makes the server send requests, so it is checked twice:
when it is saved (a clear 400 for the person typing it) and when it is used (DNS may have
changed meanwhile). The request then goes to the very address that was checked, with the
URL's host name kept for the Host header, TLS SNI and the certificate check, so a name that
resolves differently a second time cannot steer it elsewhere.

Every post (a decision, today's room opening, an announcement) is a plain sentence handed to
`message_post`, which puts it in the receiving chat's own format (`webhook_payload`: Slack,
Mattermost, Discord, Google Chat, JANDI, Dooray!, or our generic payload), chosen from the
URL's host unless the group set `webhook_format`.

Delivery runs on a small thread pool after the decision has committed: a slow or dead chat
server never delays the room's `picked` event.
"""

import ipaddress
import json
import logging
import re
import socket
import time
from concurrent import futures
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypedDict, cast

import httpx
from django.conf import settings
from django.db import connections
from django.utils import timezone, translation
from django.utils.translation import gettext

from rooms.errors import ClientError
from rooms.models import Room
from rooms.protocol import GroupInfo

from .models import WEBHOOK_FORMATS, Group

log = logging.getLogger(__name__)

# Two threads: a decision is rare (one per room), and a hanging receiver holds one thread
# for at most GROUP_WEBHOOK_ATTEMPTS x GROUP_WEBHOOK_TIMEOUT_SECONDS plus the backoff.
_EXECUTOR = ThreadPoolExecutor(max_workers=2, thread_name_prefix="webhook")
_PENDING: set[Future] = set()  # the posts queued and not yet done
_MAX_URL_LENGTH = cast(int, Group._meta.get_field("webhook_url").max_length)  # a CharField's
_STATUS_LENGTH = Group._meta.get_field("webhook_last_status").max_length


class WebhookPayload(TypedDict):
    """The generic payload of a decision (the `generic` format's body)."""

    text: str
    group: GroupInfo
    room: str
    item: str
    by: str | None  # None: the room decided by itself (a deadline, a runoff)
    at: str


# The chats whose incoming webhooks we speak (docs/protocol.md, "Webhook formats").
FORMATS = tuple(WEBHOOK_FORMATS)
# Host (or its parent domain) -> format; anything else is `generic`.
_FORMAT_HOSTS = {
    "hooks.slack.com": "slack",
    "discord.com": "discord",
    "discordapp.com": "discord",
    "chat.googleapis.com": "google_chat",
    "jandi.com": "jandi",
    "dooray.com": "dooray",
    "mattermost.com": "mattermost",
    "cloud.mattermost.com": "mattermost",
}
# The name a Dooray! hook posts under (it requires one), and JANDI's attachment bar colour.
BOT_NAME = "lunchsite"
JANDI_COLOR = "#FAC11B"
DISCORD_MAX_CONTENT = 2000  # Discord refuses longer `content`
_JSON = {"Content-Type": "application/json"}


class _Refused(Exception):
    """The URL may not be posted to (scheme, host, or an address that is not public)."""


class _Unresolved(Exception):
    """The host name did not resolve (perhaps only for now)."""


# --- Checking a URL --------------------------------------------------------------


def webhook_url_clean(url: str) -> str:
    """The URL, trimmed, if it may be posted to; else ClientError(invalid_webhook)."""
    url = url.strip()
    try:
        target = _parse(url)
        _allowed_addresses(target)
    except (_Refused, _Unresolved) as exc:
        log.info("webhook refused: %s", exc)
        raise ClientError("invalid_webhook") from None
    return url


def _parse(url: str) -> httpx.URL:
    if len(url) > _MAX_URL_LENGTH or any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise _Refused("not a URL")
    try:
        target = httpx.URL(url)
    except (httpx.InvalidURL, TypeError, ValueError) as exc:
        raise _Refused(f"not a URL: {exc}") from None
    schemes = {"https", "http"} if settings.DEBUG else {"https"}
    if target.scheme not in schemes:
        raise _Refused(f"scheme {target.scheme!r} not allowed")
    if not target.raw_host:
        raise _Refused("no host")
    return target


def _allowed_addresses(target: httpx.URL) -> list[str]:
    """Every address the URL's host stands for, if all of them may be posted to."""
    host = target.raw_host.decode("ascii")
    port = target.port or (443 if target.scheme == "https" else 80)
    try:
        addresses = [str(ipaddress.ip_address(host))]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise _Unresolved(f"{host} does not resolve: {exc}") from None
        # Keep the resolver's order (it prefers what this host can reach), without repeats.
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))
    if not addresses:
        raise _Unresolved(f"{host} has no address")
    if not settings.GROUP_WEBHOOK_ALLOW_PRIVATE:
        # All of them, not just the first: a name with one public and one private address
        # would otherwise reach the private one whenever the order changes.
        for address in addresses:
            if not address_is_public(address):
                raise _Refused(f"{host} resolves to a non-public address {address}")
    return addresses


def address_is_public(address: str) -> bool:
    """True for a globally routable unicast address (not loopback, private, link-local...)."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    return ip.is_global and not (
        ip.is_loopback
        or ip.is_private
        or ip.is_link_local
        or ip.is_multicast
        or ip.is_reserved
        or ip.is_unspecified
    )


# --- Formats --------------------------------------------------------------------


def webhook_format_for(url: str, chosen: str = "") -> str:
    """The format to post to `url` in: the group's choice, else by the URL's host."""
    if chosen in FORMATS:
        return chosen
    try:
        host = (httpx.URL(url).host or "").lower().rstrip(".")
    except (httpx.InvalidURL, TypeError, ValueError):
        return "generic"
    while host:
        if host in _FORMAT_HOSTS:
            return _FORMAT_HOSTS[host]
        host = host.partition(".")[2]  # its parent domain: wh.jandi.com -> jandi.com
    return "generic"


def webhook_payload(
    format: str,
    text: str,
    *,
    link: str = "",
    title: str = "",
    data: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON body and the headers that post `text` to a chat speaking `format`.

    `text` is the whole message, one plain sentence in the group's language (it may already
    carry `link`); `link` and `title` are used where a format has a place for them (JANDI's
    attachment), `data` is what the generic payload carries besides `text`.
    """
    message = text if not link or link in text else f"{text}\n{link}"
    if format in ("slack", "mattermost"):
        return {"text": message}, dict(_JSON)
    if format == "discord":
        return {"content": message[:DISCORD_MAX_CONTENT]}, dict(_JSON)
    if format == "google_chat":
        return {"text": message}, {"Content-Type": "application/json; charset=UTF-8"}
    if format == "jandi":
        info = {"title": title or text, "description": link} if link else {"title": title or text}
        body = {"body": text, "connectColor": JANDI_COLOR, "connectInfo": [info]}
        return body, {**_JSON, "Accept": "application/vnd.tosslab.jandi-v2+json"}
    if format == "dooray":
        return {"botName": BOT_NAME, "text": message}, dict(_JSON)
    return {"text": message, **(data or {})}, dict(_JSON)


def message_post(
    *, group: Group, text: str, link: str = "", title: str = "", data: dict[str, Any] | None = None
) -> bool:
    """Queue `text` for the group's webhook in its chat's format; False if it has none.

    Every post goes through here: the decision, today's room opening, an announcement.
    """
    if not group.webhook_url:
        return False
    format = webhook_format_for(group.webhook_url, group.webhook_format)
    body, headers = webhook_payload(format, text, link=link, title=title, data=data)
    webhook_post(group_id=group.pk, url=group.webhook_url, payload=body, headers=headers)
    return True


# --- The message ----------------------------------------------------------------


def decision_payload(*, group: Group, room: Room) -> WebhookPayload:
    """What is posted for a room's decision; `text` is one sentence in the group's language."""
    assert room.decided_at is not None  # announced after a pick only
    with translation.override(group.language):
        if room.decision_auto:  # the room decided by itself (a deadline, a runoff)
            text = gettext("Lunch for %(group)s: %(item)s (decided on time)") % {
                "group": group.name,
                "item": room.decision_item,
            }
        else:
            text = gettext("Lunch for %(group)s: %(item)s (picked by %(by)s)") % {
                "group": group.name,
                "item": room.decision_item,
                "by": room.decision_by,
            }
    return {
        "text": text,
        "group": {"slug": group.slug, "name": group.name},
        "room": room.pk,
        "item": room.decision_item,
        "by": None if room.decision_auto else room.decision_by,
        "at": room.decided_at.isoformat(),
    }


# --- Delivering ------------------------------------------------------------------


def webhook_post(
    *, group_id: int, url: str, payload: Any, headers: dict[str, str] | None = None
) -> None:
    """Queue the POST on the webhook threads; called once what it tells has committed."""
    future = _EXECUTOR.submit(
        _deliver_job, group_id=group_id, url=url, payload=payload, headers=headers
    )
    _PENDING.add(future)
    future.add_done_callback(_PENDING.discard)


def webhook_posts_wait(timeout: float | None = None) -> None:
    """Wait for the queued posts to finish (a process about to exit: the scheduler)."""
    futures.wait(list(_PENDING), timeout=timeout)


def _deliver_job(*, group_id: int, url: str, payload: Any, headers: dict[str, str] | None) -> None:
    try:
        webhook_deliver(group_id=group_id, url=url, payload=payload, headers=headers)
    except Exception:  # a pool thread's exception would vanish silently otherwise
        log.exception("webhook delivery crashed group=%s", group_id)
    finally:
        # A pool thread is never cleaned up after by Django's request cycle.
        connections.close_all()


def webhook_deliver(
    *, group_id: int, url: str, payload: Any, headers: dict[str, str] | None = None
) -> bool:
    """POST the payload (JSON, with `headers`), retrying with backoff; record and log the
    outcome; True if delivered."""
    attempts = max(1, settings.GROUP_WEBHOOK_ATTEMPTS)
    for attempt in range(1, attempts + 1):
        delivered, retry, detail = _post_once(url, payload, headers or _JSON)
        if delivered or not retry or attempt == attempts:
            break
        time.sleep(settings.GROUP_WEBHOOK_BACKOFF_SECONDS * 2 ** (attempt - 1))
    outcome = "delivered" if delivered else "failed"
    status = f"{outcome}: {detail}" + ("" if delivered else f" ({attempt} attempt(s))")
    level = logging.INFO if delivered else logging.WARNING
    log.log(level, "webhook %s group=%s", status, group_id)
    _record(group_id, status[:_STATUS_LENGTH])
    return delivered


def _post_once(url: str, payload: Any, headers: dict[str, str]) -> tuple[bool, bool, str]:
    """One attempt: (delivered, worth retrying, what happened)."""
    try:
        target = _parse(url)
        address = _allowed_addresses(target)[0]
    except _Refused:
        return False, False, _REFUSED
    except _Unresolved:
        return False, True, _UNRESOLVED
    pinned = target.copy_with(host=address)
    try:
        with (
            httpx.Client(
                timeout=settings.GROUP_WEBHOOK_TIMEOUT_SECONDS,
                follow_redirects=False,  # a redirect could point anywhere, unchecked
                trust_env=False,  # no proxy from the environment: we connect where we checked
            ) as client,
            client.stream(
                "POST",
                pinned,
                content=json.dumps(payload, ensure_ascii=False).encode(),
                headers={**headers, "Host": target.netloc.decode("ascii")},
                extensions={"sni_hostname": target.raw_host.decode("ascii")},
            ) as response,
        ):
            status = response.status_code  # the body is never read: it is not needed
    except httpx.TimeoutException:
        return False, True, _TIMED_OUT
    except httpx.HTTPError as exc:
        return False, True, f"{type(exc).__name__}"
    if 200 <= status < 300:
        return True, False, f"HTTP {status}"
    return False, status == 429 or status >= 500, f"HTTP {status}"


def _record(group_id: int, status: str) -> None:
    try:
        Group.objects.filter(pk=group_id).update(
            webhook_last_status=status, webhook_last_at=timezone.now()
        )
    except Exception as exc:  # the outcome is also in the log; a lost record harms nobody
        log.warning("webhook outcome not recorded group=%s: %r", group_id, exc)


# --- The outcome, for the group page -------------------------------------------------

# What _post_once says happened; the status (API `last_status`, the log) carries these words.
_REFUSED = "refused (not a public https address)"
_UNRESOLVED = "host did not resolve"
_TIMED_OUT = "timed out"
_STATUS = re.compile(r"(delivered|failed): (.*?)(?: \((\d+) attempt\(s\)\))?")
_HTTP = re.compile(r"HTTP (\d{3})")


class WebhookOutcome(TypedDict):
    """The last delivery as the group page says it: reason is one of "http" (with its
    status), "timeout", "unresolved", "refused" or "connection" (any other failure)."""

    delivered: bool
    reason: str
    http_status: int | None
    attempts: int


def webhook_outcome(status: str) -> WebhookOutcome | None:
    """The outcome recorded in a group's `webhook_last_status`, None if there is none."""
    match = _STATUS.fullmatch(status)
    if match is None:
        return None
    outcome, detail, attempts = match.groups()
    http = _HTTP.fullmatch(detail)
    reason = {_REFUSED: "refused", _UNRESOLVED: "unresolved", _TIMED_OUT: "timeout"}.get(
        detail, "http" if http else "connection"
    )
    return {
        "delivered": outcome == "delivered",
        "reason": reason,
        "http_status": int(http.group(1)) if http else None,
        "attempts": int(attempts or 1),
    }
