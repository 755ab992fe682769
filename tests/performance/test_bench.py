"""The benchmark's own arithmetic: scenario names and the medians of repeated steps."""

import gc

import pytest

from bench.loadgen import PARSED_FRAMES_PER_ROOM, Room
from bench.run import Scenario, best_rate, by_rate, collector_paused, in_turn, machine_shares


def step(rate: float, p50: float, p99: float, cpu: float, done: int = 10, bad: int = 0) -> dict:
    return {
        "rate": rate,
        "fanout_ms": {"p50": p50, "p99": p99},
        "cpu_ms_per_action": cpu,
        "machine_busy_percent": 50.0,
        "machine_stolen_percent": 2.0,
        "machine_share_percent": {
            "servers": 30.0,
            "postgresql": 8.0,
            "redis": 1.0,
            "generator": 6.0,
        },
        "done": done,
        "actions": 10,
        "consistency": {"rooms": 5, "inconsistent": bad},
    }


def test_a_scenario_name_carries_its_servers_settings() -> None:
    sc = Scenario.parse("product-pubsub-2p-sqlite+DATABASE_THREADS=2+ROOM_RESYNC_SECONDS=3")
    assert (sc.app, sc.layer, sc.procs, sc.database) == ("product", "pubsub", 2, "sqlite")
    assert sc.env == {"DATABASE_THREADS": "2", "ROOM_RESYNC_SECONDS": "3"}
    assert Scenario.parse("baseline-pubsub-1p").env == {}
    odd = Scenario.parse("product-pubsub-1p+PYTHONPATH=/tmp/x+PGOPTIONS=-c a=b")
    assert odd.env == {"PYTHONPATH": "/tmp/x", "PGOPTIONS": "-c a=b"}
    assert odd.file_name == "product-pubsub-1p+PYTHONPATH=_tmp_x+PGOPTIONS=-c_a=b"
    for bad in ["product-pubsub-1p+THREADS", "nope-pubsub-1p", "product-pubsub-x"]:
        with pytest.raises(ValueError):
            Scenario.parse(bad)


def test_repeats_of_a_rate_merge_into_medians_sums_and_the_worst_room_count() -> None:
    result = {
        "steps": [
            step(60, 10, 500, 5.0),  # one slow second in one repeat
            step(60, 12, 40, 6.0, bad=1),
            step(60, 11, 50, 4.0, done=9),
            step(100, 20, 90, 3.0),
        ]
    }
    sixty, hundred = by_rate(result)
    assert sixty["repeats"] == 3
    assert sixty["fanout_ms"] == {"p50": 11, "p99": 50}
    assert sixty["cpu_ms_per_action"] == 5.0
    assert (sixty["done"], sixty["actions"]) == (29, 30)
    assert sixty["consistency"] == {"rooms": 5, "inconsistent": 1}
    assert hundred["fanout_ms"]["p99"] == 90
    # 60/s lost an action, so the best rate with p99 <= 100 ms is 100 only if all were done
    assert best_rate(result) == 100
    result["steps"][3]["done"] = 9
    assert best_rate(result) is None


def test_each_setup_takes_every_place_in_the_order_across_repeats() -> None:
    setups = ["baseline", "product", "product+A=B"]
    orders = [in_turn(setups, repeat) for repeat in range(3)]
    assert orders[0] == setups
    for place in range(3):
        assert sorted(order[place] for order in orders) == sorted(setups)
    assert in_turn(setups, 3) == setups
    assert in_turn([], 1) == []


def test_the_generator_does_not_collect_garbage_while_it_times() -> None:
    assert gc.isenabled()
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()
    with pytest.raises(RuntimeError), collector_paused():
        raise RuntimeError("a step that fails")
    assert gc.isenabled()


def test_the_machine_share_table_leaves_the_rest_to_everything_else() -> None:
    result = {"scenario": "product-pubsub-1p", "app": "product", "steps": [step(60, 5, 9, 4.0)]}
    last_row = machine_shares([result]).splitlines()[-1]
    assert [cell.strip() for cell in last_row.strip("|").split("|")] == [
        "product-pubsub-1p",
        "60",
        "50",
        "30",
        "8",
        "1",
        "6",
        "2",
        "3",
    ]


def test_a_rooms_clients_share_one_decoding_of_the_same_frame() -> None:
    room = Room("r", [])
    text = '{"type": "state", "version": 3, "items": []}'
    first = room.decoded(text)
    # Another client's copy: equal text, another string object.
    assert room.decoded("".join(text)) is first
    assert first == {"type": "state", "version": 3, "items": []}
    assert room.decoded(text.replace("3", "4"))["version"] == 4
    for version in range(PARSED_FRAMES_PER_ROOM * 2):
        room.decoded(f'{{"version": {version}}}')
    assert len(room.parsed) <= PARSED_FRAMES_PER_ROOM
