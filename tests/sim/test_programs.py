"""Programs on a replica: calls released after their parents, contexts cached, pinned (Continuum), ranked (Autellix)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim.config import Duration, EngineConfig, LengthDist, ProgramConfig, WorkloadConfig
from servesim.metrics import token_times
from servesim.workload import generate
from tests.sim.conftest import make_replica


def calls_of(n=30, rate=4.0, shape="chain", fanout=1, gap=0.5, seed=0, max_calls=6, first=800):
    pc = ProgramConfig(shape=shape, fanout=fanout, calls=LengthDist(dist="uniform", min=1, max=max_calls),
                       new_input=LengthDist(mean=200, sigma=0.5), gap=Duration(mean_s=gap))  # fmt: skip
    wl = WorkloadConfig(num_requests=n, rate=rate, programs=pc, seed=seed,
                        input=LengthDist(mean=first, sigma=0.5), output=LengthDist(mean=120, sigma=0.7, max=600))
    return generate(wl, unit=16)


def run(calls, engine=None, num_blocks=20000, host_blocks=0):
    from servesim.sim.kv_swap import SwapCost

    r = make_replica(engine or EngineConfig(), num_blocks=num_blocks, unit_tokens=16)
    r.state.swap = SwapCost(32768, 64, 55.0, group_blocks=16, host_blocks=host_blocks)
    r.run([c for c in calls if not c.parents])
    return r


def test_calls_arrive_a_gap_after_their_parents_and_hit_their_context(checked):
    calls = run_calls = calls_of()
    r = run(run_calls)
    assert all(c.record.finish is not None for c in calls)
    for c in calls:
        for child in c.children:
            assert child.record.arrival == pytest.approx(c.record.finish + child.delay)
            # the parent's whole context (prompt and answer, but its last token) is cached for the child
            assert child.record.cached_tokens == (c.prompt_len + c.output_len - 1) // 16 * 16
        assert len(token_times(c, [r.meter.iter_end])) == c.output_len
    progs = {c.program for c in calls}
    assert all(p.left == 0 and p.finish == max(c.record.finish for c in p.calls) for p in progs)
    assert r.state.kv.used == 0 and not r.state.kept.pins


def test_dag_calls_wait_for_their_whole_stage(checked):
    calls = calls_of(shape="dag", fanout=3)
    run(calls)
    for c in calls:
        for child in c.children:
            assert child.record.arrival >= c.record.finish + child.delay - 1e-12
    assert any(c.parents == 3 for c in calls)  # a stage after the first waits for all three calls before it
    assert all(c.record.finish is not None and not c.program.waiting for c in calls)  # counted down to zero


def test_without_prefix_caching_every_call_recomputes(checked):
    calls = calls_of()
    run(calls, EngineConfig(enable_prefix_caching=False))
    assert all(c.record.cached_tokens == 0 for c in calls)


def test_vllm_loses_contexts_under_pressure_and_continuum_pins_them(checked):
    """A small cache, long tool calls: vLLM evicts finished contexts for new work, Continuum keeps them."""
    def hits(scheduler):
        calls = calls_of(n=60, rate=8.0, gap=1.5, first=2000)
        run(calls, EngineConfig(scheduler=scheduler), num_blocks=1500)
        later = [c for c in calls if c.delay > 0]
        return sum(c.record.cached_tokens for c in later) / sum(c.prompt_len for c in later)

    vllm, continuum = hits("vllm"), hits("continuum")
    assert continuum > vllm + 0.1


def test_a_pin_lapses_at_its_ttl():
    calls = calls_of(n=1, gap=5.0, max_calls=2, seed=1)
    while len(calls) < 2:  # a program of two calls
        calls = calls_of(n=1, gap=5.0, max_calls=2, seed=len(calls) + 7)
    engine = EngineConfig(scheduler="continuum", scheduler_options={"ttl_s": 1.0})
    r = make_replica(engine, num_blocks=20000, unit_tokens=16)
    r.run([calls[0]], until=calls[0].arrival + 0.01)
    r.advance(10_000)
    first, second = calls
    assert second.record.arrival - first.record.finish > 1.0
    assert not r.state.kept.pins  # the pin went at its TTL; the cache still held the context (nothing needed room)
    assert second.record.cached_tokens > 0


def test_autellix_serves_the_program_with_less_service_first(checked):
    """Two calls wait: the one whose program has done less goes first, though it came later."""
    from servesim.sim.request import Program, Request

    long_prog = Program(0, [Request(0, 0.0, 10, 10)])
    long_prog.service = 100_000
    short_prog = Program(1, [Request(1, 0.0, 10, 10)])
    late = Request(3, 0.2, 500, 50)
    late.program = short_prog
    early = Request(2, 0.1, 500, 50)
    early.program = long_prog
    busy = Request(4, 0.0, 4000, 400)  # holds the only sequence slot until both have arrived
    engine = EngineConfig(scheduler="autellix", max_num_seqs=1, max_num_batched_tokens=8192)
    r = make_replica(engine)
    r.run([busy, early, late])
    assert late.record.first_token < early.record.first_token
    fcfs = make_replica(EngineConfig(max_num_seqs=1))
    for q in (busy, early, late):
        q.__init__(q.id, q.arrival, q.prompt_len, q.output_len)
    early.program, late.program = long_prog, short_prog
    fcfs.run([busy, early, late])
    assert early.record.first_token < late.record.first_token


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    scheduler=st.sampled_from(["vllm", "continuum", "continuum offload", "autellix", "sjf"]),
    shape=st.sampled_from(["chain", "dag"]),
    blocks=st.integers(260, 1500),
    max_num_seqs=st.integers(1, 32),
    gap=st.floats(0.0, 2.0),
    seed=st.integers(0, 1000),
)
def test_programs_conserve_calls_tokens_and_blocks(checked, scheduler, shape, blocks, max_num_seqs, gap, seed):
    calls = calls_of(n=12, rate=6.0, shape=shape, fanout=2, gap=gap, seed=seed, max_calls=4, first=600)
    calls = [c for c in calls if c.program.calls[-1].prompt_len + 600 < blocks * 16 - 64] or calls[:0]
    keep = {c.program for c in calls if all(x.prompt_len + x.output_len < blocks * 16 - 64 for x in c.program.calls)}
    calls = [c for c in calls if c.program in keep]
    name, _, offload = scheduler.partition(" ")
    options = {"offload": True} if offload else {}
    engine = EngineConfig(scheduler=name, scheduler_options=options, max_num_seqs=max_num_seqs,
                          max_num_batched_tokens=2048)  # fmt: skip
    r = run(calls, engine, num_blocks=blocks, host_blocks=2000)
    for c in calls:
        assert c.record.finish is not None and c.record.arrival <= c.record.first_token <= c.record.finish
        assert len(token_times(c, [r.meter.iter_end])) == c.output_len
    s = r.state
    assert s.kv.used == 0 and not s.kept.pins and not s.running and not s.waiting and not s.incoming
    assert s.host_used == 0 and not s.kept.offloaded
    assert np.all(np.diff(r.meter.iter_end[: r.it]) > 0)


@pytest.mark.parametrize("scheduler", ["vllm", "continuum", "autellix", "sjf"])
def test_fast_forward_equals_step_by_step_with_programs(step_by_step, scheduler):
    from servesim.sim import replica as replica_mod

    engine = EngineConfig(scheduler=scheduler, max_num_seqs=24)
    slow = calls_of(n=40, rate=6.0, gap=0.8, first=1500)
    r1 = run(slow, engine, num_blocks=1000)
    replica_mod.MAX_RUN = 1 << 20
    fast = calls_of(n=40, rate=6.0, gap=0.8, first=1500)
    r2 = run(fast, engine, num_blocks=1000)
    assert r1.it == r2.it
    assert [q.record.finish for q in slow] == pytest.approx([q.record.finish for q in fast], rel=1e-9)
    assert [q.record.cached_tokens for q in slow] == [q.record.cached_tokens for q in fast]
    assert sum(q.record.preemptions for q in fast) > 0  # the small cache exercised preemption


def test_an_offloaded_context_comes_back_from_the_cpu_tier(checked):
    """Small GPU cache, long tool calls: the context is gone from the GPU but loaded back, not recomputed."""
    def run_with(options, host):
        calls = calls_of(n=60, rate=8.0, gap=1.5, first=2000)
        engine = EngineConfig(scheduler="continuum", scheduler_options=options)
        r = run(calls, engine, num_blocks=1500, host_blocks=host)
        later = [c for c in calls if c.delay > 0]
        return r, sum(c.record.cached_tokens for c in later) / sum(c.prompt_len for c in later)

    offloaded, reused = run_with({"offload": True, "program_fcfs": False}, 20000)
    nowhere, lost = run_with({"ttl_s": 0.0, "program_fcfs": False}, 20000)
    assert reused > lost + 0.2  # loaded back instead of recomputed
    assert offloaded.state.swap_total_s > 0 and offloaded.state.host_used == 0
    full, _ = run_with({"offload": True, "program_fcfs": False}, 0)  # no room on the host: nothing kept
    assert full.state.swap_total_s == 0


def test_continuum_learns_a_tool_calls_duration_only_once_it_has_returned(checked):
    """The default TTL is the mean of the tool calls returned so far: at each call's end, the history holds exactly
    the earliest tool calls to return, none that was still running."""
    calls = calls_of(n=40, rate=6.0, gap=1.5, seed=3)
    r = make_replica(EngineConfig(scheduler="continuum"), num_blocks=20000, unit_tokens=16)
    sched, keep = r.scheduler, r.state.retention
    assert sched.opts.predictor == "mean"
    looks = []

    def watched(seq):
        looks.append((seq, sched.seen, sched.gaps, keep(seq)))
        return looks[-1][3]

    r.state.retention = watched
    r.run([c for c in calls if not c.parents])
    tools = sorted((c.record.finish + min(x.delay for x in c.children), min(x.delay for x in c.children))
                   for c in calls if c.children)  # fmt: skip
    assert len(looks) == len(tools) and sched.seen == sum(back <= max(c.record.finish for c in calls)
                                                          for back, _ in tools)  # fmt: skip
    assert looks[0][1] == 0 < looks[-1][1]  # (it starts knowing nothing and learns)
    for seq, seen, gaps, ttl in looks:
        assert sum(back <= seq.rec.finish for back, _ in tools) >= seen  # none counted before it returned
        assert gaps == pytest.approx(sum(g for _, g in tools[:seen]))  # the earliest to return, in order
        expected = gaps / seen if seen else sched.opts.max_ttl_s
        assert ttl == pytest.approx(expected * 1.2 if expected <= sched.opts.max_ttl_s else 0.0)


def test_continuums_oracle_ttl_is_each_tool_calls_own_duration_and_a_bad_predictor_is_one_line():
    from servesim.api import simulate
    from servesim.config import Scenario
    from servesim.errors import ServesimError

    calls = calls_of(n=10, gap=1.0, seed=5)
    r = make_replica(EngineConfig(scheduler="continuum", scheduler_options={"predictor": "oracle"}), unit_tokens=16)
    for c in calls:
        if c.children:
            seq = type("Seq", (), {"req": c})()
            assert r.scheduler.retention(seq) == pytest.approx(1.2 * min(x.delay for x in c.children))
    with pytest.raises(ServesimError, match=r"^scheduler_options of continuum: predictor: Input should be 'mean' "
                                            r"or 'oracle'$"):  # fmt: skip
        simulate(Scenario(engine=EngineConfig(scheduler="continuum", scheduler_options={"predictor": "median"})))
