"""Which address a room's links and QR code carry.

The address the page was opened on, so a friend can open the same one; on loopback, the
machine's LAN address instead (when the server answers on it: `make run`); `PUBLIC_URL`
instead of both behind a proxy.
"""

import ipaddress

from django.conf import settings
from django.http import HttpRequest
from django.http.request import split_domain_port


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_loopback(host: str) -> bool:
    address = _ip(host)
    return host.lower() == "localhost" if address is None else address.is_loopback


def lan_hosts() -> list[str]:
    """The private, non-loopback IP addresses this server answers on (from ALLOWED_HOSTS)."""
    hosts = []
    for host in settings.ALLOWED_HOSTS:
        address = _ip(host)
        if address and address.is_private and not (address.is_loopback or address.is_link_local):
            hosts.append(host)
    return hosts


def base_url(request: HttpRequest) -> str:
    """`scheme://host[:port]` of the address the request came to, or PUBLIC_URL."""
    if settings.PUBLIC_URL:
        return settings.PUBLIC_URL.rstrip("/")
    return f"{request.scheme}://{request.get_host()}"


def share_base_url(request: HttpRequest) -> tuple[str, bool]:
    """The base of the links to hand to friends, and whether it was swapped off loopback."""
    if settings.PUBLIC_URL:
        return base_url(request), False
    domain, port = split_domain_port(request.get_host())
    lan = lan_hosts()
    if not (is_loopback(domain) and lan):
        return base_url(request), False
    default_port = "443" if request.scheme == "https" else "80"
    suffix = f":{port}" if port and port != default_port else ""
    return f"{request.scheme}://{lan[0]}{suffix}", True
