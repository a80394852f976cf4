"""The capacity model's arithmetic (bench/capacity_model.py): the README's Capacity table follows from its inputs."""

import pytest

from bench import capacity_model as model

MEASURED = model.Measured(
    master_mb=30,
    worker_mb=100,
    stream_mb=0.5,
    cpu_seconds=0.05,
    redis_live_bytes=6000,
    redis_finished_bytes=1000,
    redis_base_bytes=1_000_000,
    cap=204,
    connections=5,
    reply_seconds=20,
)


def test_a_dyno_holds_the_streams_its_memory_leaves_once_master_and_idle_workers_are_counted():
    # 512 MB less 15%: 435.2 MB; less the master and one worker: 305.2 MB, 610 streams by memory, 204 by the cap.
    assert model.streams_on(MEASURED, 512, 1) == 204
    # Two workers: 205.2 MB left, 410 streams, under their caps of 408 no more: the cap binds.
    assert model.streams_on(MEASURED, 512, 2) == 408
    # Three: 105.2 MB, 210 streams by memory, under the caps of 612.
    assert model.streams_on(MEASURED, 512, 3) == 210


def test_a_dyno_runs_a_process_per_vcpu_and_two_at_least():
    assert [model.processes_for(vcpus) for vcpus in (0.16, 2, 8)] == [2, 2, 8]


def test_a_dynos_messages_a_minute_are_bound_by_its_cpu_or_by_its_streams():
    rows = {row[0]: row for row in model.dyno_rows(MEASURED)}
    # Standard-1X: 0.16 vCPU at 50 ms a message: 192 a minute, fewer than 408 streams turn over (1,224).
    assert rows["Eco / Basic / Standard-1X"][3:] == (2, 408, pytest.approx(192), "CPU")
    slow = model.Measured(**{**MEASURED.__dict__, "cpu_seconds": 0.001, "reply_seconds": 60})
    assert {row[0]: row for row in model.dyno_rows(slow)}["Standard-2X"][4:] == (
        408,
        408,
        "streams",
    )  # 2 × 204 streams, a minute each


def test_memory_too_small_for_a_worker_holds_no_stream():
    assert model.streams_on(MEASURED, 100, 1) == 0


def test_messages_a_minute_are_the_streams_turned_over_once_a_reply():
    assert model.messages_per_minute(MEASURED, 408) == pytest.approx(408 * 3)


def test_a_redis_plan_connects_what_its_connections_allow_after_a_console_and_holds_replies_by_memory():
    rows = {name: (processes, per_minute) for name, _, _, processes, per_minute in model.redis_rows(MEASURED)}
    assert rows["mini"][0] == 3  # (20 − 1) // 5
    assert rows["premium-2"][0] == 39
    # A message a minute holds 6000 × 20/60 B while written and 1000 × 10 B once finished: 12,000 B.
    assert rows["mini"][1] == pytest.approx((25 * 1024 * 1024 - 1_000_000) / 12_000)


def test_s3_cost_is_the_list_price_of_each_request_per_thousand_messages():
    assert model.s3_cost({"GET": 10, "PUT": 4, "LIST": 0, "DELETE": 1}) == pytest.approx(10 * 0.0004 + 4 * 0.005)


def test_the_tables_have_a_row_per_dyno_and_per_plan():
    lines = model.tables(MEASURED).splitlines()
    assert sum(line.startswith("| Eco") or line.startswith("| Standard-2X") for line in lines) == 2
    assert any(line.startswith("| premium-0 | 40 | 50 MB | 7 |") for line in lines)
