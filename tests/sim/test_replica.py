import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim.config import EngineConfig
from servesim.metrics import token_times
from servesim.perf import Batch
from tests.sim.conftest import serve


def test_single_request_is_prefill_plus_decodes(checked):
    r, (req,) = serve([(0.0, 700, 50)])
    perf = r.perf
    prefill = perf.iteration_time(Batch.prefill(700))
    # decode k attends to the prompt, the k-1 earlier outputs, and its own new token
    decodes = [perf.iteration_time(Batch.decode(1, 700 + k)) for k in range(1, 50)]
    assert req.record.first_token == pytest.approx(prefill, rel=1e-12)
    assert req.record.finish == pytest.approx(prefill + sum(decodes), rel=1e-9)
    times = token_times(req, [r.meter.iter_end])
    assert len(times) == 50
    assert np.diff(times) == pytest.approx(decodes, rel=1e-6)
    assert r.it == 50


def test_one_token_request_finishes_at_prefill(checked):
    r, (req,) = serve([(1.0, 100, 1)])
    assert req.record.finish == req.record.first_token == pytest.approx(1.0 + r.perf.iteration_time(Batch.prefill(100)))


def test_ttft_at_low_load_is_the_prefill_time(checked):
    reqs = [(100.0 * i, 200 + 37 * i, 20) for i in range(10)]
    r, done = serve(reqs)
    for q in done:
        assert q.record.first_token - q.arrival == pytest.approx(r.perf.iteration_time(Batch.prefill(q.prompt_len)))


def test_conservation_and_token_counts(checked):
    rng = np.random.default_rng(3)
    reqs = [(float(t), int(i), int(o)) for t, i, o in
            zip(np.cumsum(rng.exponential(0.02, 300)), rng.integers(1, 3000, 300), rng.integers(1, 400, 300),
                strict=True)]  # fmt: skip
    r, done = serve(reqs, EngineConfig(max_num_batched_tokens=1024, max_num_seqs=64))
    assert all(q.record.finish is not None for q in done)
    assert sorted(q.id for q in done) == list(range(300))
    for q in done:
        times = token_times(q, [r.meter.iter_end])
        assert len(times) == q.output_len
        assert times[0] == q.record.first_token and times[-1] == q.record.finish
        assert np.all(np.diff(times) > 0)
    assert r.state.kv.used == 0 and not r.state.running and not r.state.waiting


def test_fast_forward_equals_step_by_step(step_by_step):
    """Advancing many decode iterations at once gives the same timeline as one at a time."""
    rng = np.random.default_rng(5)
    reqs = [(float(t), int(i), int(o)) for t, i, o in
            zip(np.cumsum(rng.exponential(0.05, 150)), rng.integers(10, 2000, 150), rng.integers(1, 300, 150),
                strict=True)]  # fmt: skip
    engine = EngineConfig(max_num_batched_tokens=2048, max_num_seqs=32)
    r1, slow = serve(reqs, engine, num_blocks=900)
    from servesim.sim import replica as replica_mod

    replica_mod.MAX_RUN = 1 << 20
    r2, fast = serve(reqs, engine, num_blocks=900)
    assert r1.it == r2.it
    assert np.allclose(r1.meter.iter_end[: r1.it], r2.meter.iter_end[: r2.it], rtol=1e-9)
    assert [q.record.finish for q in slow] == pytest.approx([q.record.finish for q in fast], rel=1e-9)
    assert [q.record.preemptions for q in slow] == [q.record.preemptions for q in fast]
    assert sum(q.record.preemptions for q in fast) > 0  # the small cache exercised preemption


def test_preemption_recomputes_and_conserves(checked):
    reqs = [(0.001 * i, 400, 300) for i in range(60)]
    r, done = serve(reqs, EngineConfig(max_num_seqs=64), num_blocks=600)
    assert sum(q.record.preemptions for q in done) > 0
    for q in done:
        assert len(token_times(q, [r.meter.iter_end])) == 300
    # newest admitted are preempted first: the earliest request is never preempted
    assert done[0].record.preemptions == 0
    assert r.state.kv.used == 0


def test_max_num_seqs_and_budget_respected(checked):
    reqs = [(0.0, 3000, 50) for _ in range(40)]
    r, _ = serve(reqs, EngineConfig(max_num_seqs=8, max_num_batched_tokens=1000))
    steps = r.meter.log.arrays()
    assert steps["seqs"].max() == 8
    assert steps["tokens"].max() <= 1000


def test_prefix_cache_hits(checked):
    reqs = [(0.0, 1100, 20, [0, 1, 2]), (0.5, 1200, 15, [0, 1, 3]), (1.0, 600, 12, [4, 5]), (1.5, 1536, 8, [0, 1, 2])]
    _, done = serve(reqs, EngineConfig(enable_prefix_caching=True))
    assert [q.record.cached_tokens for q in done] == [0, 1024, 0, 1024]  # whole 512-token units; last token recomputed
    _, cold = serve(reqs, EngineConfig(enable_prefix_caching=False))
    assert [q.record.cached_tokens for q in cold] == [0, 0, 0, 0]
    assert done[1].record.first_token - done[1].arrival < cold[1].record.first_token - cold[1].arrival


def test_rejects_nothing_it_can_hold_and_empty_stream():
    r, done = serve([])
    assert r.it == 0 and done == []


lengths = st.tuples(st.floats(0, 5), st.integers(1, 2500), st.integers(1, 300))


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    reqs=st.lists(lengths, min_size=1, max_size=40),
    scheduler=st.sampled_from(["vllm", "sarathi", "orca", "static", "sjf"]),
    max_num_seqs=st.integers(1, 48),
    budget=st.integers(48, 4096),
    block_size=st.sampled_from([8, 16, 32]),
    blocks=st.integers(400, 3000),
)
def test_invariants_hold_on_random_workloads(checked, reqs, scheduler, max_num_seqs, budget, block_size, blocks):
    options = {"chunk_size": max(max_num_seqs, budget // 2)} if scheduler == "sarathi" else {}
    engine = EngineConfig(scheduler=scheduler, max_num_seqs=max_num_seqs, max_num_batched_tokens=budget,
                          block_size=block_size, scheduler_options=options)  # fmt: skip
    # every request must fit alone: blocks * block_size >= the longest sequence
    blocks = max(blocks, (2500 + 300) // block_size + 2)
    r, done = serve(reqs, engine, num_blocks=blocks, unit_tokens=512 // 16 * block_size)
    for q in done:
        assert q.record.finish is not None and q.arrival <= q.record.first_token <= q.record.finish
        assert len(token_times(q, [r.meter.iter_end])) == q.output_len
    steps = r.meter.log.arrays()
    assert steps["seqs"].max() <= max_num_seqs
    assert steps["kv_used"].max() <= blocks
    assert np.all(np.diff(r.meter.iter_end[: r.it]) > 0)
    assert r.state.kv.used == 0


def test_preempted_prefill_finds_its_computed_chunks():
    """As in vLLM V1, a prompt's full units are cached as its chunks run: a preempted prefill resumes
    from them, and a request with the same prefix finds them while the first is still prefilling."""
    from servesim.sim.request import Request
    from servesim.sim.state import ReplicaState

    s = ReplicaState(1000, 16, True, 512, 8)
    s.receive_all([Request(0, 0.0, 2000, 10, [1, 2, 3, 4]), Request(1, 0.0, 1600, 10, [1, 2, 9])])
    s.enqueue_due()
    first, second = s.waiting
    assert s.admit(first, 1100) == 1100
    s.ran([(first, 1100)], 0.1)  # the chunk ran: two whole units (1024 tokens) become shareable
    assert first.computed == 1100 and s.it == 1 and s.now == 0.1
    s.check()
    assert s.admit(second, 1024) == 1600 - 1024
    assert second.computed == 1024
    s.preempt(first)
    s.check()
    assert first.computed == 0 and first.rec.preemptions == 1
    assert s.admit(first, 2000) == 2000 - 1024  # it recomputes only what no unit holds
    assert first.computed == 1024
    s.check()
