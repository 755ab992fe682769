"""The shipped deploy files, run for real: Debian's nginx with deploy/nginx/lunchsite.conf (TLS
with a certificate of the test's own) in front of two daphne processes started with the
ExecStart of deploy/systemd/lunchsite@.service and the variables of deploy/lunchsite.env.example.
Only ports, paths and secrets are swapped. Pages, the API and a room work through it, and the
address the site counts is the client's, not nginx's, whatever X-Forwarded-For a client sends.
"""

from __future__ import annotations

import datetime
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.support.client import RoomClient, item_names
from tests.support.processes import (
    PROJECT_DIR,
    TEST_SECRET_KEY,
    DaphneServer,
    RedisServer,
    free_port,
    server_env,
    wait_for_port,
)

pytestmark = [pytest.mark.e2e, pytest.mark.nginx]

DEPLOY = PROJECT_DIR / "deploy"
NGINX = "/usr/sbin/nginx"
HOST = "lunch.example.org"  # the name in the shipped files
ORIGIN = f"https://{HOST}"


def unit_setting(unit: str, key: str) -> str:
    """One `Key=value` line of a systemd unit file."""
    text = (DEPLOY / "systemd" / unit).read_text()
    [value] = re.findall(rf"^{key}=(.+)$", text, re.MULTILINE)
    return value


def environment_file() -> dict[str, str]:
    """deploy/lunchsite.env.example as systemd's EnvironmentFile= reads it."""
    pairs = {}
    for line in (DEPLOY / "lunchsite.env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def replace_once(text: str, old: str, new: str, count: int = 1) -> str:
    """Swap a line of the shipped file, failing if the file no longer has it as expected."""
    assert text.count(old) == count, (old, text.count(old))
    return text.replace(old, new)


def self_signed(directory: Path) -> tuple[Path, Path]:
    """A certificate and key for lunch.example.org, valid for a day."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@dataclass
class Deployment:
    tls_port: int
    http_port: int
    workers: list[DaphneServer]
    log_dir: Path
    metrics_ports: list[int]  # each worker's, as the unit's Environment= gives it

    def https(self, address: str = "127.0.0.1") -> httpx.Client:
        """A browser-like HTTPS client to the site's name, leaving from `address`."""
        return httpx.Client(
            base_url=f"https://127.0.0.1:{self.tls_port}",
            headers={"Host": HOST},
            transport=httpx.HTTPTransport(local_address=address, verify=False),
            timeout=15,
        )

    def room_client(self, room_id: str, name: str) -> RoomClient:
        return RoomClient(f"wss://{HOST}/ws/rooms/{room_id}/?name={name}")

    def ws_options(self, address: str = "127.0.0.1") -> dict:
        no_verify = ssl.create_default_context()
        no_verify.check_hostname = False
        no_verify.verify_mode = ssl.CERT_NONE
        return {
            "ssl": no_verify,
            "host": "127.0.0.1",
            "port": self.tls_port,
            "local_addr": (address, 0),
        }


@pytest.fixture
def deploy_settings() -> dict[str, str]:
    """More environment for the daphne processes; a test module may override it."""
    return {}


@pytest.fixture
def deployment(
    e2e_database: str, redis_server: RedisServer, tmp_path: Path, deploy_settings: dict[str, str]
) -> Iterator[Deployment]:
    """nginx with the shipped site before two daphne processes started as the unit starts them."""
    assert Path(NGINX).exists(), "Debian's nginx is missing (make test installs it)"
    assert shutil.which("curl"), "curl is missing (make test installs it)"
    ports = [free_port(), free_port()]

    # The unit's command line, with this test's port in place of 800%i and daphne from here.
    exec_start = shlex.split(unit_setting("lunchsite@.service", "ExecStart"))
    exec_start_post = unit_setting("lunchsite@.service", "ExecStartPost")
    assert exec_start[0] == "/srv/lunchsite/.venv/bin/daphne", exec_start
    assert "--proxy-headers" in exec_start and exec_start[exec_start.index("-b") + 1] == "127.0.0.1"
    env = server_env(e2e_database, redis_server.url)
    env.update(environment_file())
    assert env["DJANGO_SECRET_KEY"] == ""  # shipped empty: start-up refuses it until set
    env.update(
        DJANGO_SECRET_KEY=TEST_SECRET_KEY,
        DATABASE_URL=e2e_database,
        REDIS_URL=redis_server.url,
        ROOM_CREATE_PER_MINUTE="3",
    )
    env.update(deploy_settings)
    # The unit's own variable: each instance's metrics on a port of its own (910%i there).
    assert unit_setting("lunchsite@.service", "Environment") == "METRICS_PORT=910%i"
    metrics_ports = [free_port(), free_port()]
    workers = []
    for instance, port in enumerate(ports, start=1):
        argv = [arg.replace("800%i", str(port)) for arg in exec_start[1:]]
        worker = DaphneServer(
            {**env, "METRICS_PORT": str(metrics_ports[instance - 1])},
            tmp_path / f"daphne-{instance}.log",
            port=port,
            command=(sys.executable, "-m", "daphne", *argv),
        )
        workers.append(worker)
        worker.start(wait_healthy=False)
        # The unit's ExecStartPost: returns once the process serves.
        post = subprocess.run(
            shlex.split(exec_start_post.replace("800%i", str(port))), timeout=60, check=False
        )
        assert post.returncode == 0, worker.log()
        worker.wait_healthy()

    # The site file as shipped, with this test's ports, certificate and log paths.
    cert, key = self_signed(tmp_path)
    tls_port, http_port = free_port(), free_port()
    site = (DEPLOY / "nginx" / "lunchsite.conf").read_text()
    site = replace_once(site, "listen 80;", f"listen 127.0.0.1:{http_port};")
    site = replace_once(site, "listen [::]:80;", "")
    site = replace_once(site, "listen 443 ssl http2;", f"listen 127.0.0.1:{tls_port} ssl http2;")
    site = replace_once(site, "listen [::]:443 ssl http2;", "")
    site = replace_once(site, f"/etc/letsencrypt/live/{HOST}/fullchain.pem", str(cert))
    site = replace_once(site, f"/etc/letsencrypt/live/{HOST}/privkey.pem", str(key))
    site = replace_once(
        site, "/var/log/nginx/lunchsite.access.log", str(tmp_path / "access.log"), count=2
    )
    site = replace_once(site, "server 127.0.0.1:8001 ", f"server 127.0.0.1:{ports[0]} ", count=2)
    site = replace_once(site, "server 127.0.0.1:8002 ", f"server 127.0.0.1:{ports[1]} ", count=2)
    (tmp_path / "lunchsite.conf").write_text(site)
    temp = "".join(
        f"    {kind}_temp_path {tmp_path / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    (tmp_path / "nginx.conf").write_text(
        ("user root;\n" if os.geteuid() == 0 else "")
        + f"worker_processes 1;\npid {tmp_path / 'nginx.pid'};\n"
        + f"error_log {tmp_path / 'error.log'} info;\n"
        # 200 clients with a socket each way, and more while they reconnect
        # (test_rolling_deploy.py).
        + "worker_rlimit_nofile 8192;\nevents { worker_connections 2048; }\n"
        + "http {\n    include /etc/nginx/mime.types;\n"
        + temp
        + f"    include {tmp_path / 'lunchsite.conf'};\n}}\n"
    )
    nginx_cmd = [NGINX, "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf")]
    checked = subprocess.run([*nginx_cmd, "-t"], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen(
        [*nginx_cmd, "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
    )
    try:
        wait_for_port(tls_port)
        yield Deployment(tls_port, http_port, workers, tmp_path, metrics_ports)
    finally:
        nginx.terminate()
        nginx.wait(10)
        for worker in workers:
            worker.stop()
    for worker in workers:
        assert "Traceback" not in worker.log(), worker.log()[-3000:]


async def test_pages_api_and_a_room_through_nginx(deployment: Deployment) -> None:
    """The page, its static files, the API and a live room, over TLS through the shipped site."""
    with deployment.https() as browser:
        page = browser.get("/")
        assert page.status_code == 200 and "lunchsite" in page.text
        assert "Content-Security-Policy" in page.headers
        assert page.headers["Strict-Transport-Security"].startswith("max-age=")
        assert browser.get("/static/rooms/room.js").status_code == 200
        created = browser.post("/api/rooms/")
        assert created.status_code == 201, created.text
        room = created.json()
        assert room["url"].startswith(f"{ORIGIN}/rooms/"), room  # https, the public name
        assert room["ws_url"].startswith(f"wss://{HOST}/ws/rooms/"), room
        assert browser.get(f"/rooms/{room['id']}/").status_code == 200
        # the probes are not public; each worker answers them on its own port
        assert browser.get("/readyz").status_code == 404
    with httpx.Client(headers={"Host": HOST}) as plain:
        redirect = plain.get(f"http://127.0.0.1:{deployment.http_port}/rooms/x/?token=t")
        assert redirect.status_code == 301
        assert redirect.headers["Location"] == f"{ORIGIN}/rooms/x/?token=t"

    options = deployment.ws_options()
    minji = await deployment.room_client(room["id"], "minji").connect(origin=ORIGIN, **options)
    joon = await deployment.room_client(room["id"], "joon").connect(origin=ORIGIN, **options)
    try:
        await minji.send("add:kimchi stew")
        await joon.wait_state(lambda s: item_names(s) == ["kimchi stew"], timeout=10)
        await joon.send("vote:kimchi stew")
        await minji.wait_state(lambda s: [i["votes"] for i in s["items"]] == [1], timeout=10)
        # A page of another site cannot open a room's socket with its visitors' cookies.
        stranger = deployment.room_client(room["id"], "x")
        with pytest.raises(Exception, match="403"):
            await stranger.connect(origin="https://evil.example", **options)
    finally:
        await minji.close()
        await joon.close()
    access_log = (deployment.log_dir / "access.log").read_text()
    assert "?token" not in access_log and "/ws/rooms/" in access_log


def count_until_refused(create: Callable[[], int], most: int = 10) -> list[int]:
    statuses: list[int] = []
    while len(statuses) < most and 429 not in statuses:
        statuses.append(create())
    return statuses


def test_the_site_counts_the_clients_address_not_nginxs(deployment: Deployment) -> None:
    """Two clients behind nginx are two addresses to the creation limit and the staff lockout,
    and a client's own X-Forwarded-For changes neither."""
    with (
        deployment.https("127.0.0.2") as first,
        deployment.https("127.0.0.3") as second,
        deployment.https("127.0.0.4") as spoofer,
    ):
        statuses = count_until_refused(lambda: first.post("/api/rooms/").status_code)
        assert statuses[-1] == 429 and statuses.count(201) >= 3, statuses
        # the office's next person is not refused for the first one's rooms
        assert second.post("/api/rooms/").status_code == 201

        # A client naming a new address each time is still counted at its own: at a limit of
        # 3 a minute, 7 requests cannot all pass even across a change of minute.
        spoofed = [
            spoofer.post(
                "/api/rooms/",
                headers={"X-Forwarded-For": f"198.51.100.{i}", "X-Real-IP": f"198.51.100.{i}"},
            ).status_code
            for i in range(7)
        ]
        assert 429 in spoofed, spoofed

    # The staff lockout, per address too: guesses from one client lock only that client out.
    from tests.support.processes import manage

    created = manage(
        "createsuperuser",
        "--noinput",
        "--username",
        "boss",
        "--email",
        "boss@lunch.example",
        DATABASE_URL=deployment.workers[0].env["DATABASE_URL"],
        DJANGO_SECRET_KEY=TEST_SECRET_KEY,
        DJANGO_SUPERUSER_PASSWORD="a-real-password-41",
    )
    assert created.returncode == 0, created.stderr
    with deployment.https("127.0.0.2") as guesser, deployment.https("127.0.0.3") as boss:
        statuses = [staff_login(guesser, f"guess-{i}") for i in range(5)]
        assert statuses == [200, 200, 200, 200, 429], statuses
        assert staff_login(boss, "a-real-password-41") == 302


def staff_login(client: httpx.Client, password: str) -> int:
    """The admin login form over HTTPS as a browser posts it (CSRF cookie, token, Referer)."""
    form = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text).group(1)
    answer = client.post(
        "/admin/login/",
        data={"csrfmiddlewaretoken": token, "username": "boss", "password": password},
        headers={"Referer": f"{ORIGIN}/admin/login/", "Origin": ORIGIN},
    )
    return answer.status_code
