"""Preemption by swapping to the CPU tier, priority scheduling and VTC fair share on a replica."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim.config import EngineConfig
from servesim.metrics import token_times
from servesim.sim.kv_swap import SwapCost
from servesim.sim.request import Request
from tests.sim.conftest import make_replica

SWAP = SwapCost(block_bytes=32768, tensors=64, host_gbs=55.0, host_blocks=5000)


def test_swap_cost_counts_copies_and_bytes():
    one = SWAP(1)
    assert one == pytest.approx(64 * 2.3e-6 + 64 * 32768 / 55e9)
    grouped = SwapCost(32768, 64, 55.0, group_blocks=64)
    assert SWAP(128) == pytest.approx(128 * one)  # block by block: linear in blocks
    assert grouped(128) < SWAP(128) / 4  # 2 copies per tensor instead of 128
    assert grouped(128) > 128 * 64 * 32768 / 55e9  # never faster than the link


def serve(reqs, engine, num_blocks, swap=SWAP):
    requests = [Request(i, t, p, o) for i, (t, p, o, *_) in enumerate(reqs)]
    for r, spec in zip(requests, reqs, strict=True):
        r.priority = spec[3] if len(spec) > 3 else 0
        r.tenant = spec[4] if len(spec) > 4 else 0
    r = make_replica(engine, num_blocks=num_blocks)
    r.state.swap = swap
    r.run(requests)
    return r, requests


PRESSURE = [(0.001 * i, 400, 300) for i in range(60)]


def test_swapped_requests_resume_without_recomputing(checked):
    recompute, a = serve(PRESSURE, EngineConfig(max_num_seqs=64), 600)
    swapped, b = serve(PRESSURE, EngineConfig(max_num_seqs=64, preemption_mode="swap"), 600)
    assert sum(q.record.preemptions for q in b) > 0
    for q in b:
        assert len(token_times(q, [swapped.meter.iter_end])) == 300
    prefill = lambda r: r.meter.log.arrays()["tokens"].sum() - r.meter.log.arrays()["seqs"].sum()  # noqa: E731
    assert prefill(swapped) < prefill(recompute)  # swapped KV came back instead of being recomputed
    assert swapped.state.swap_total_s > 0 and swapped.state.host_used == 0


def test_a_full_cpu_tier_falls_back_to_recompute(checked):
    tiny = SwapCost(32768, 64, 55.0, host_blocks=30)
    r, done = serve(PRESSURE, EngineConfig(max_num_seqs=64, preemption_mode="swap"), 600, tiny)
    assert all(q.record.finish is not None for q in done)
    assert r.state.host_used == 0


def test_priority_preempts_for_an_important_arrival(checked):
    low = [(0.0, 3000, 400, 1)] * 8
    urgent = (0.5, 500, 20, 0)
    engine = EngineConfig(scheduler="priority", max_num_seqs=8, max_num_batched_tokens=4096)
    r, done = serve(low + [urgent], engine, 20000)
    hurry = done[-1]
    assert sum(q.record.preemptions for q in done[:-1]) >= 1  # a low-priority request made room
    assert hurry.record.first_token - hurry.arrival < 0.2  # instead of waiting for a batch request to finish
    fcfs, plain = serve(low + [urgent], EngineConfig(max_num_seqs=8, max_num_batched_tokens=4096), 20000)
    assert plain[-1].record.first_token - plain[-1].arrival > 1.0


def test_vtc_serves_the_tenant_with_less_service_first(checked):
    heavy = [(0.001 * i, 500, 100, 0, 0) for i in range(40)]
    light = [(0.05, 500, 100, 0, 1)]
    engine = EngineConfig(scheduler="vtc", max_num_seqs=4, max_num_batched_tokens=2048)
    r, done = serve(heavy + light, engine, 20000)
    lone = done[-1]
    assert sum(q.record.first_token < lone.record.first_token for q in done[:-1]) <= 8  # it did not wait for all 40
    fcfs, plain = serve(heavy + light, EngineConfig(max_num_seqs=4, max_num_batched_tokens=2048), 20000)
    assert sum(q.record.first_token < plain[-1].record.first_token for q in plain[:-1]) == 40


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reqs=st.lists(st.tuples(st.floats(0, 3), st.integers(1, 2000), st.integers(1, 300), st.integers(0, 2),
                            st.integers(0, 2)), min_size=1, max_size=40),  # fmt: skip
    scheduler=st.sampled_from(["vllm", "priority", "vtc", "sjf"]),
    mode=st.sampled_from(["recompute", "swap"]),
    group=st.sampled_from([1, 16]),
    host=st.integers(0, 400),
    max_num_seqs=st.integers(1, 32),
    blocks=st.integers(160, 1200),
)
def test_swap_conserves_requests_tokens_and_blocks(checked, reqs, scheduler, mode, group, host, max_num_seqs, blocks):
    reqs = sorted(reqs)
    engine = EngineConfig(scheduler=scheduler, max_num_seqs=max_num_seqs, max_num_batched_tokens=2048,
                          preemption_mode=mode, swap_group_blocks=group)  # fmt: skip
    tier = SwapCost(32768, 64, 55.0, group, host_blocks=host)
    r, done = serve(reqs, engine, max(blocks, (2000 + 300) // 16 + 2), tier)
    for q in done:
        assert q.record.finish is not None and q.arrival <= q.record.first_token <= q.record.finish
        assert len(token_times(q, [r.meter.iter_end])) == q.output_len
    s = r.state
    assert s.kv.used == 0 and s.host_used == 0 and not s.running and not s.waiting
    assert np.all(np.diff(r.meter.iter_end[: r.it]) > 0)


@pytest.mark.parametrize("scheduler", ["vllm", "priority", "vtc"])
def test_fast_forward_equals_step_by_step_with_swap(step_by_step, scheduler):
    from servesim.sim import replica as replica_mod

    rng = np.random.default_rng(9)
    reqs = [(float(t), int(i), int(o), int(p), int(p)) for t, i, o, p in
            zip(np.cumsum(rng.exponential(0.03, 150)), rng.integers(10, 2000, 150), rng.integers(1, 300, 150),
                rng.integers(0, 3, 150), strict=True)]  # fmt: skip
    engine = EngineConfig(scheduler=scheduler, max_num_seqs=32, max_num_batched_tokens=2048, preemption_mode="swap")
    r1, slow = serve(reqs, engine, 900)
    replica_mod.MAX_RUN = 1 << 20
    r2, fast = serve(reqs, engine, 900)
    assert r1.it == r2.it
    assert [q.record.finish for q in slow] == pytest.approx([q.record.finish for q in fast], rel=1e-9)
    assert sum(q.record.preemptions for q in fast) > 0 and r2.state.swap_total_s > 0
