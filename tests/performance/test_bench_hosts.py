"""The simulated hosts' pure parts (nginx's configuration, parsing, the skip) and a short run."""

from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bench.hosts import cli, launch, net, report, scenario
from bench.hosts.front import PLACEMENTS, Site, nginx_conf, placement_counts
from tests.support.processes import PROJECT_DIR

SITES = [
    Site("one", 18001, "split", ["10.27.0.10:8000"]),
    Site("four_split", 18002, "split", [f"10.27.0.{i}:8000" for i in range(11, 15)]),
    Site("four_room", 18003, "room", [f"10.27.0.{i}:8000" for i in range(15, 19)]),
]


def test_nginx_balances_each_site_by_its_placement_and_passes_the_upgrade(tmp_path: Path) -> None:
    conf = nginx_conf(tmp_path, SITES)
    split = conf[conf.index("upstream four_split") : conf.index("upstream four_room")]
    room = conf[conf.index("upstream four_room") :]
    assert "least_conn;" in split and "hash" not in split
    assert "hash $lunchsite_room consistent;" in room and "least_conn" not in room
    assert split.count("server 10.27.0.") == 4
    assert "listen 127.0.0.1:18003;" in room
    for header in ("Upgrade $http_upgrade", "Connection $connection_upgrade", "Host $host"):
        assert f"proxy_set_header {header};" in room
    with pytest.raises(ValueError, match="placement"):
        nginx_conf(tmp_path, [Site("x", 1, "sticky", ["10.27.0.10:8000"])])
    assert set(PLACEMENTS) == {"split", "room"}


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_the_configuration(tmp_path: Path) -> None:
    """nginx -t passes on the whole file: the room map's regex, every upstream, the paths."""
    conf = tmp_path / "nginx.conf"
    text = nginx_conf(tmp_path, SITES)
    conf.write_text(text)
    checked = subprocess.run(
        ["nginx", "-t", "-p", str(tmp_path), "-c", str(conf), "-e", str(tmp_path / "e.log")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stderr


def test_the_placement_check_counts_processes_per_room() -> None:
    log = "\n".join(
        [
            "/ws/rooms/a/ 10.27.0.11:8000",
            "/ws/rooms/a/ 10.27.0.11:8000",
            "/ws/rooms/b/ 10.27.0.11:8000",
            "/ws/rooms/b/ 10.27.0.9:8000",
            "/ws/rooms/c/ -",  # refused before an upstream answered
            "/healthz 10.27.0.12:8000",
        ]
    )
    counts = placement_counts(log)
    assert list(counts["connections_per_process"].items()) == [
        ("10.27.0.9:8000", 1),
        ("10.27.0.11:8000", 3),
    ]
    assert counts["rooms_by_processes_reached"] == {1: 1, 2: 1}
    assert counts["rooms_per_process"] == {"10.27.0.9:8000": 0, "10.27.0.11:8000": 1}


def test_the_skip_says_what_is_missing() -> None:
    def has(path: Path) -> bool:
        return True

    assert "root" in net.skip_reason(euid=1000, has_command=lambda c: True, has_path=has)
    missing_ip = net.skip_reason(euid=0, has_command=lambda c: c != "ip", has_path=has)
    assert "`ip`" in missing_ip
    v2_only = net.skip_reason(
        euid=0, has_command=lambda c: True, has_path=lambda p: p.name != "cpu.cfs_quota_us"
    )
    assert "cgroup v1" in v2_only
    assert net.skip_reason(euid=0, has_command=lambda c: True, has_path=has) is None


def test_make_bench_skips_with_the_reason_where_it_cannot_run(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setattr(net, "unavailable", lambda: "needs root (it creates network namespaces)")
    assert cli.main([]) == 0
    assert capsys.readouterr().out.startswith("hosts scenario skipped: needs root")
    assert cli.main(["--check"]) == 1


def test_hosts_get_short_names_and_their_own_addresses() -> None:
    network = net.Network(ipaddress.IPv4Network("10.27.0.0/24"))
    hosts = [network.host(i, net.CpuGroup(f"host-{i}", 0.3)) for i in (0, 12)]
    assert [h.address for h in hosts] == ["10.27.0.10", "10.27.0.22"]
    assert network.bridge_address == "10.27.0.1"
    for host in hosts:
        assert len(host.veth) <= 15 and host.veth.startswith(net.PREFIX + "-")
        assert ["ip", "-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0"] in (
            host.commands()
        )
        # Nothing routes out of the subnet.
        assert not any("route" in command for command in host.commands())
    assert net.CpuGroup("h", 0.3, period_us=100_000).quota_us == 30_000
    with pytest.raises(ValueError):
        net.Network(ipaddress.IPv4Network("10.27.0.0/28")).host(5, net.CpuGroup("x"))


def test_a_launched_process_joins_its_groups_before_it_runs(tmp_path: Path) -> None:
    """The pid the shell writes into each group is the pid of the program it becomes."""
    procs = [tmp_path / "cpu.procs", tmp_path / "cpuacct.procs"]
    command = launch.launch_command(["sh", "-c", "echo $$"], procs_files=procs)
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    assert [p.read_text().strip() for p in procs] == [done.stdout.strip()] * 2


def test_the_cpu_stat_parses() -> None:
    stat = "nr_periods 120\nnr_throttled 30\nthrottled_time 99\n"
    assert net.parse_cpu_stat(stat) == {
        "nr_periods": 120,
        "nr_throttled": 30,
        "throttled_time": 99,
    }


def test_one_process_is_one_setup_and_the_others_one_per_placement() -> None:
    assert scenario.setup_names([1, 2, 4], ["split", "room"]) == [
        ("1p", 1, "split"),
        ("2p-split", 2, "split"),
        ("2p-room", 2, "room"),
        ("4p-split", 4, "split"),
        ("4p-room", 4, "room"),
    ]


def _step(level: float, procs: int, p99: float, quota: float, done: int = 10) -> dict:
    shares = {part: 1.0 for part in report.PARTS} | {"generator": 20.0}
    return {
        "level": level,
        "rate": level * procs,
        "fanout_ms": {"p50": p99 / 4, "p99": p99},
        "cpu_ms_per_action": 3.0,
        "machine_busy_percent": 60.0,
        "machine_stolen_percent": 0.0,
        "share_percent": shares,
        "quota_used_percent": [quota, quota / 2],
        "throttled_percent": [5.0, 0.0],
        "done": done,
        "actions": 10,
        "consistency": {"rooms": 4, "inconsistent": 0},
    }


def test_the_highest_rate_and_what_was_nearest_its_ceiling_at_the_knee() -> None:
    one = {"setup": "1p", "procs": 1, "placement": "-"}
    one["steps"] = [_step(30, 1, 40, 50), _step(60, 1, 90, 80), _step(90, 1, 300, 99)]
    two = {"setup": "2p-room", "procs": 2, "placement": "room"}
    two["steps"] = [_step(30, 2, 50, 50), _step(60, 2, 80, 70, done=9)]
    assert report.best(one)["rate"] == 60
    assert report.best(two)["rate"] == 60  # 120/s lost a change
    knee = report.by_level(one)[-1]
    assert report.nearest_ceilings(knee, cores=2) == [("the busiest host's quota", 99)]
    knee["machine_busy_percent"] = 100
    assert report.nearest_ceilings(knee, cores=2) == [
        ("the machine", 100),
        ("the busiest host's quota", 99),
    ]
    knee["quota_used_percent"], knee["machine_busy_percent"] = 30, 60
    assert report.nearest_ceilings(knee, cores=2) == [("the machine", 60)]
    info = {"machine": {"cores": 2}, "config": {"quota": 0.3, "period_ms": 100}}
    summary = report.tables([one, two], info).splitlines()
    assert summary[2].split("|")[3].strip() == "1.00x"
    assert summary[3].split("|")[3].strip() == "1.00x"  # 60/s of 2p against 60/s of 1p


@pytest.mark.hosts
@pytest.mark.timeout(240)
def test_a_short_run_on_simulated_hosts_measures_and_leaves_nothing(tmp_path: Path) -> None:
    """A few seconds on 1 and 2 hosts (room placement): every change reaches every client,
    and no namespace, interface or cgroup of the run is left."""
    reason = net.unavailable()
    if reason:
        pytest.skip(reason)
    if shutil.which("nginx") is None:
        pytest.skip("nginx is not installed (./scripts/bench.sh hosts installs it)")
    if os.environ.get("DATABASE_URL"):
        pytest.skip("the run has a PostgreSQL of its own: once, in the suite's first pass")
    out = tmp_path / "hosts.json"
    short = "--procs 1,2 --placements room --rooms 4 --clients 3 --levels 4 --step 2 --repeat 1"
    files = ["--workdir", str(tmp_path), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-m", "bench.hosts", *short.split(), "--settle", "0.5", *files],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=200,
    )
    if "holds /run/lunchsite-hosts.lock" in done.stdout:
        pytest.skip("a run of the simulated hosts is going on")
    assert done.returncode == 0, done.stdout + done.stderr
    results = json.loads(out.read_text())["results"]
    assert [r["setup"] for r in results] == ["1p", "2p-room"]
    for result in results:
        assert result["join"]["joined"] == 12
        (step,) = result["steps"]
        assert step["done"] == step["actions"] > 0
        assert step["consistency"]["inconsistent"] == 0
        assert step["share_percent"]["postgresql"] > 0  # the run's own cluster did the work
    check = results[1]["placement_check"]
    assert sum(check["connections_per_process"].values()) == 12  # every WebSocket, via nginx
    assert check["rooms_by_processes_reached"] == {"1": 4}
    with net.exclusive():  # a run started since would still be making its hosts
        namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True)
        assert f"{net.PREFIX}-" not in namespaces.stdout
        assert not (net.CPU_ROOT / net.CGROUP).exists()
        assert not net.RUN_DIR.exists()
