"""nginx in front of the simulated hosts, configured as docs/scaling.md describes.

One nginx serves every setup of the run, each on a loopback port of its own with an upstream of
its hosts. Where a room's clients land is the upstream's balancing: `split` is docs/scaling.md's
`least_conn`, so a room's ten clients spread over the processes; `room` hashes the room id taken
from the URL, so every client of a room lands on the same process.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from bench.hosts.launch import spawn, stop, wait_for_port
from bench.hosts.net import CpuGroup

PLACEMENTS = {
    "split": "least_conn;",
    # Consistent, so a process added or lost moves only its share of the rooms.
    "room": "hash $lunchsite_room consistent;",
}
# Two file descriptors per proxied connection (client and upstream), 1,000 clients per setup
# and up to five setups joined at once, under the machine's 20,000 per process.
WORKER_CONNECTIONS = 16_000
WORKER_NOFILE = 20_000


@dataclass
class Site:
    """One setup behind nginx: its port, its placement and its daphne processes."""

    name: str  # an upstream name: letters, digits and _
    port: int
    placement: str
    servers: list[str]  # "address:port"

    @property
    def ws_log(self) -> str:
        return f"{self.name}.ws.log"


def nginx_conf(prefix: Path, sites: list[Site], workers: str = "auto") -> str:
    """The whole nginx.conf: docs/scaling.md's proxy settings, one server block per site."""
    blocks = []
    for site in sites:
        if site.placement not in PLACEMENTS:
            raise ValueError(f"unknown placement {site.placement!r}")
        servers = "".join(
            f"        server {s} max_fails=3 fail_timeout=5s;\n" for s in site.servers
        )
        blocks.append(
            f"""
    upstream {site.name} {{
        {PLACEMENTS[site.placement]}
{servers}        keepalive 32;
    }}

    server {{
        listen 127.0.0.1:{site.port};
        access_log off;
        client_max_body_size 64k;

        location /ws/ {{
            # Which process each WebSocket reached: the placement check, read after the run.
            access_log {prefix / site.ws_log} placement;
            proxy_pass http://{site.name};
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 75s;
            proxy_send_timeout 75s;
            proxy_buffering off;
        }}

        location / {{
            proxy_pass http://{site.name};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
"""
        )
    return f"""# Written by bench/hosts/front.py for one run; removed with it.
worker_processes {workers};
worker_rlimit_nofile {WORKER_NOFILE};
pid {prefix / "nginx.pid"};
error_log {prefix / "error.log"} warn;

events {{
    worker_connections {WORKER_CONNECTIONS};
}}

http {{
    log_format placement '$uri $upstream_addr';
    client_body_temp_path {prefix / "client_body"};
    proxy_temp_path {prefix / "proxy"};
    fastcgi_temp_path {prefix / "fastcgi"};
    uwsgi_temp_path {prefix / "uwsgi"};
    scgi_temp_path {prefix / "scgi"};

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}

    # The room id from /ws/rooms/<id>/, /api/rooms/<id>/ or /rooms/<id>/: a room's page, API
    # and WebSockets hash alike. Anything else hashes on its path.
    map $uri $lunchsite_room {{
        "~^/(?:ws/|api/)?rooms/(?<room>[^/]+)/" $room;
        default $uri;
    }}
{"".join(blocks)}}}
"""


def placement_counts(log_text: str) -> dict:
    """From a site's WebSocket log: connections per process, and how many processes each
    room's clients reached."""
    per_server: dict[str, int] = defaultdict(int)
    rooms: dict[str, set[str]] = defaultdict(set)
    for line in log_text.splitlines():
        uri, _, upstream = line.partition(" ")
        if not uri.startswith("/ws/rooms/") or upstream in ("", "-"):
            continue
        per_server[upstream] += 1
        rooms[uri].add(upstream)
    spread: dict[int, int] = defaultdict(int)
    for servers in rooms.values():
        spread[len(servers)] += 1
    order = sorted(per_server, key=_address_order)
    return {
        "connections_per_process": {server: per_server[server] for server in order},
        "rooms_by_processes_reached": dict(sorted(spread.items())),
        "rooms_per_process": {
            server: sum(1 for servers in rooms.values() if servers == {server}) for server in order
        },
    }


def _address_order(upstream: str) -> tuple[int, ...]:
    """10.27.0.9:8000 before 10.27.0.10:8000."""
    return tuple(int(part) for part in upstream.replace(":", ".").split("."))


class Nginx:
    """Debian's nginx with the run's configuration, in the foreground of its own CPU group."""

    def __init__(self, prefix: Path, sites: list[Site], group: CpuGroup) -> None:
        self.prefix, self.sites, self.group = prefix, sites, group
        self.process: subprocess.Popen | None = None

    def start(self) -> Nginx:
        if shutil.which("nginx") is None:
            raise RuntimeError("nginx is not installed (./scripts/bench.sh hosts installs it)")
        self.prefix.mkdir(parents=True, exist_ok=True)
        conf = self.prefix / "nginx.conf"
        conf.write_text(nginx_conf(self.prefix, self.sites))
        base = ["nginx", "-p", str(self.prefix), "-c", str(conf), "-e", str(self.prefix / "e.log")]
        checked = subprocess.run([*base, "-t"], capture_output=True, text=True)
        if checked.returncode != 0:
            raise RuntimeError(f"nginx -t: {checked.stderr.strip()}")
        self.process = spawn(
            [*base, "-g", "daemon off;"], group=self.group, log_path=self.prefix / "stdout.log"
        )
        for site in self.sites:
            wait_for_port("127.0.0.1", site.port, process=self.process)
        return self

    def placement(self, site: Site) -> dict:
        time.sleep(0.5)  # nginx logs a WebSocket when it closes
        path = self.prefix / site.ws_log
        return placement_counts(path.read_text() if path.exists() else "")

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process, timeout=10)
