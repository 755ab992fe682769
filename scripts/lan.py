"""What `make run` needs to serve a group on the office network.

    lan.py secret-key FILE   print the secret key kept in FILE (made once, mode 600)
    lan.py hosts             print the host names this machine answers to (DJANGO_ALLOWED_HOSTS)
    lan.py banner PORT       print the addresses friends can open, and a QR code of the first
    lan.py url PORT          print the address to put in links (the first LAN one, else loopback)

Standard library and segno only, so it runs before Django is configured.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

LOOPBACK = ["localhost", "127.0.0.1", "[::1]"]


def secret_key(path: Path) -> str:
    """The key in `path`, written there (readable by the owner only) the first time."""
    if path.exists():
        key = path.read_text(encoding="utf-8").strip()
        if len(key) >= 50:
            return key
    key = secrets.token_urlsafe(50)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(key + "\n")
    return key


def _usable(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return ip.version == 4 and not (ip.is_loopback or ip.is_link_local or ip.is_unspecified)


def machine_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback, the likeliest LAN one first."""
    found: list[str] = []
    # The source address of the default route: a UDP "connect" only looks the route up,
    # it sends nothing (192.0.2.1 is TEST-NET-1, reserved for documentation).
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(("192.0.2.1", 9))
            found.append(probe.getsockname()[0])
    except OSError:
        pass
    try:
        for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET):
            found.append(info[4][0])
    except OSError:
        pass
    if shutil.which("ip"):  # Linux: every interface's addresses
        listing = subprocess.run(
            ["ip", "-4", "-o", "addr", "show", "up"], capture_output=True, text=True, check=False
        ).stdout
        for line in listing.splitlines():
            fields = line.split()
            if "inet" in fields:
                found.append(fields[fields.index("inet") + 1].split("/")[0])
    addresses: list[str] = []
    for address in found:
        if _usable(address) and address not in addresses:
            addresses.append(address)
    return addresses


def allowed_hosts() -> list[str]:
    """Loopback, the host name (and its .local mDNS name), and every LAN address."""
    name = socket.gethostname().lower()
    hosts = [*LOOPBACK, name]
    if name and not name.endswith(".local"):
        hosts.append(f"{name}.local")
    return hosts + machine_addresses()


def banner(port: int) -> str:
    """The message `make run` prints: where friends connect, and a QR code to scan."""
    urls = [f"http://{address}:{port}/" for address in machine_addresses()]
    lines = ["", "lunchsite is running (Ctrl-C stops it)."]
    if urls:
        lines.append("Friends on the same network can open:")
        lines += [f"    {url}" for url in urls]
        name = socket.gethostname().lower()
        lines.append(f"    http://{name}.local:{port}/  (if your network has mDNS)")
    else:
        lines.append("No network address found: only this computer can open it.")
    lines.append(f"On this computer: http://127.0.0.1:{port}/")
    text = "\n".join(lines) + "\n"
    if urls:
        import io

        import segno

        drawing = io.StringIO()
        segno.make(urls[0], error="l").terminal(out=drawing, compact=True, border=2)
        text += f"\nScan to open {urls[0]}\n" + drawing.getvalue()
    return text


def main(argv: list[str]) -> int:
    if len(argv) == 2 and argv[0] == "secret-key":
        print(secret_key(Path(argv[1])))
    elif argv == ["hosts"]:
        print(",".join(allowed_hosts()))
    elif len(argv) == 2 and argv[0] == "url":
        addresses = machine_addresses()
        print(f"http://{addresses[0] if addresses else '127.0.0.1'}:{int(argv[1])}")
    elif len(argv) == 2 and argv[0] == "banner":
        sys.stdout.write(banner(int(argv[1])))
    else:
        sys.stderr.write(__doc__ or "")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
