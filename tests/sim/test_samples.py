"""Parallel samples (n > 1): one prompt computed once, its samples decoding from the shared blocks."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from servesim import Scenario, simulate
from servesim.config import EngineConfig, LengthDist, WorkloadConfig
from servesim.metrics import token_times
from servesim.workload import generate
from tests.sim.conftest import make_replica


def prompts(n=4, num=20, rate=2.0, seed=0, prompt=1000):
    wl = WorkloadConfig(num_requests=num, rate=rate, n=n, seed=seed, input=LengthDist(mean=prompt, sigma=0.3),
                        output=LengthDist(mean=200, sigma=0.5, max=800))  # fmt: skip
    return generate(wl, unit=16)


def run(reqs, engine=None, num_blocks=20000):
    r = make_replica(engine or EngineConfig(), num_blocks=num_blocks, unit_tokens=16)
    r.run([q for q in reqs if not q.parents])
    return r


def test_samples_are_numbered_by_prompt_and_keep_the_prompts_own_draws():
    one, four = generate(WorkloadConfig(num_requests=30, n=1)), prompts(4, 30)
    assert [r.id for r in four] == list(range(120))
    firsts = four[::4]
    base = generate(WorkloadConfig(num_requests=30, n=1, rate=2.0, input=LengthDist(mean=1000, sigma=0.3),
                                   output=LengthDist(mean=200, sigma=0.5, max=800)))  # fmt: skip
    key = lambda rs: [(r.arrival, r.prompt_len, r.output_len) for r in rs]  # noqa: E731
    assert key(firsts) == key(base)
    assert len(one) == 30
    for k in range(30):
        group = four[4 * k : 4 * k + 4]
        assert len({(r.arrival, r.prompt_len) for r in group}) == 1 and group[0].samples == tuple(group[1:])
        assert all(r.parents == 1 for r in group[1:]) and group[0].program is group[3].program
    assert len({r.output_len for r in four}) > 30  # each sample has its own length


def test_samples_share_the_prompt_and_start_when_it_is_computed(checked):
    reqs = prompts(4, 20)
    r = run(reqs)
    for k in range(20):
        first, *rest = reqs[4 * k : 4 * k + 4]
        for sib in rest:
            assert sib.record.first_token >= first.record.first_token  # it starts once the prompt is computed
            assert first.prompt_len - sib.record.cached_tokens <= 16  # only the last, partial block is computed again
        for q in (first, *rest):
            assert len(token_times(q, [r.meter.iter_end])) == q.output_len
    assert r.state.kv.used == 0


def test_shared_prompts_hold_less_memory_than_separate_requests(checked):
    reqs = prompts(8, 10, rate=100.0, prompt=3000)
    shared = run(reqs)
    alone = [type(q)(q.id, q.arrival, q.prompt_len, q.output_len) for q in reqs]  # no samples, no sharing
    separate = run(alone)
    peak = lambda rep: rep.meter.log.arrays()["kv_used"].max()  # noqa: E731
    assert peak(shared) < 0.6 * peak(separate)


def test_prompt_summary_is_time_to_all_samples():
    wl = WorkloadConfig(num_requests=100, rate=2.0, n=4)
    res = simulate(Scenario(workload=wl))
    s, df = res.summary(), res.requests
    assert s["prompts"]["completed"] == 100 and s["completed"] == 400
    last = df.groupby("program").finish_s.max() - df.groupby("program").arrival_s.min()
    assert np.mean(last) * 1000 == s["prompts"]["completion_ms"]["mean"]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(n=st.integers(2, 8), seed=st.integers(0, 1000), blocks=st.integers(300, 1500),
       max_num_seqs=st.integers(1, 32), scheduler=st.sampled_from(["vllm", "priority", "sjf"]),
       mode=st.sampled_from(["recompute", "swap"]))  # fmt: skip
def test_samples_conserve_requests_tokens_and_blocks(checked, n, seed, blocks, max_num_seqs, scheduler, mode):
    from servesim.sim.kv_swap import SwapCost

    reqs = prompts(n, 8, rate=20.0, seed=seed, prompt=1500)
    engine = EngineConfig(scheduler=scheduler, max_num_seqs=max_num_seqs, max_num_batched_tokens=2048,
                          preemption_mode=mode)  # fmt: skip
    r = make_replica(engine, num_blocks=max(blocks, 200), unit_tokens=16)
    r.state.swap = SwapCost(32768, 64, 55.0, host_blocks=200)
    r.run([q for q in reqs if not q.parents])
    for q in reqs:
        assert q.record.finish is not None and len(token_times(q, [r.meter.iter_end])) == q.output_len
    assert r.state.kv.used == 0 and r.state.host_used == 0 and not r.state.running
