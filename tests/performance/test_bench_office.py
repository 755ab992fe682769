"""The office-scale bench's arithmetic: medians of the steps and the targets as ratios."""

from bench.office import summary, targets


def office_step(p50: float, p99: float, done: int = 900, bad: int = 0) -> dict:
    return {
        "fanout_ms": {"p50": p50, "p99": p99},
        "cpu_ms_per_action": 3.0,
        "done": done,
        "actions": 900,
        "consistency": {"rooms": 100, "inconsistent": bad},
    }


def office_result(connections: int, joined_s: float, kib: float, idle: float, p50s: list) -> dict:
    return {
        "connections": connections,
        "join": {"joined": connections, "all_joined_s": joined_s, "first_state_without_self": 0},
        "kib_per_connection": kib,
        "idle": {"cpu_percent": idle},
        "steps": [office_step(p50, p50 * 4) for p50 in p50s],
    }


def test_a_setup_is_summed_up_by_the_medians_of_its_steps() -> None:
    result = office_result(1000, 3.0, 34.0, 1.0, [5.0, 50.0, 6.0])  # one slow step
    result["steps"][1]["done"] = 899
    result["steps"][2]["consistency"]["inconsistent"] = 2
    s = summary(result)
    assert (s["p50_ms"], s["p99_ms"]) == (6.0, 24.0)
    assert (s["done"], s["actions"]) == (2699, 2700)
    assert (s["rooms"], s["inconsistent"]) == (100, 2)
    assert s["first_state_lists_self"] == 1000


def test_the_targets_compare_the_product_with_the_baseline_and_with_itself() -> None:
    by_size = {
        1000: {
            "baseline": summary(office_result(1000, 3.0, 34.0, 1.0, [4.0])),
            "product": summary(office_result(1000, 5.7, 36.0, 1.2, [5.0])),
        },
        10000: {
            "baseline": summary(office_result(10000, 50.0, 30.0, 10.0, [4.0])),
            "product": summary(office_result(10000, 90.0, 33.0, 11.0, [6.0])),
        },
    }
    text = targets(by_size)
    assert "Join storm of 1,000: 1.90x the baseline's" in text
    assert "p50 at 10,000 / p50 at 1,000 (the product's own) 1.20x" in text
    assert "RSS per connection 1.10x" in text
    assert "idle CPU 1.10x" in text
    assert "join storm 1.80x" in text


def test_a_fault_is_over_when_the_last_slow_action_was_sent() -> None:
    """bench.faults: normal again when no action sent later was slow; caught up when what was
    sent before the fault was over had reached everyone."""
    from bench.faults import summary as fault_summary

    before = [(t / 10, 0.005) for t in range(50)]  # 5 ms each for 5 s
    during = [(5.0, 2.2), (5.5, 1.9), (6.0, 0.4)]  # the fault: 5.0 to 6.0
    after = [(6.5, 0.3), (7.0, 0.006), (8.0, 0.005)]
    result = fault_summary(before + during + after, {"fault": 5.0, "over": 6.0})
    assert result["before_p50_ms"] == 5.0
    assert result["slow_deliveries"] == 4  # one per client that received a change late
    assert result["normal_again_after_s"] == 0.5  # the last slow one was sent at 6.5
    assert result["caught_up_after_s"] == 1.4  # the one sent at 5.5 arrived at 7.4
