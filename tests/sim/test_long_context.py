"""Prompts of 32k to 1M tokens (Qwen2.5-7B-Instruct-1M): chunked over many iterations, KV growing, preempted."""

import pytest

from servesim import Scenario, simulate
from servesim.config import EngineConfig, LengthDist, WorkloadConfig
from servesim.metrics import token_times
from servesim.perf import Batch
from servesim.sim.request import Request
from tests.sim.conftest import make_replica

MODEL, GPU = "qwen2.5-7b-1m", "h200"


@pytest.mark.parametrize("prompt", [32_768, 262_144, 1_000_000])
def test_a_long_prompt_is_prefilled_in_chunks(checked, prompt):
    engine = EngineConfig(max_num_batched_tokens=8192)
    r = make_replica(engine, model=MODEL, gpu=GPU, num_blocks=prompt // 16 + 4096)
    req = Request(0, 0.0, prompt, 64)
    r.run([req])
    chunks = -(-prompt // 8192)
    assert r.it == chunks + 63  # every chunk one iteration, then the decodes
    expected = sum(r.perf.iteration_time(Batch.prefill(min(8192, prompt - c), c)) for c in range(0, prompt, 8192))
    assert req.record.first_token == pytest.approx(expected, rel=1e-9)
    assert len(token_times(req, [r.meter.iter_end])) == 64
    assert r.meter.log.arrays()["kv_used"].max() == prompt // 16  # the whole prompt held before decoding


def test_long_prompts_that_do_not_fit_together_are_preempted_and_all_finish(checked):
    engine = EngineConfig(max_num_batched_tokens=8192)
    reqs = [Request(i, 0.001 * i, 600_000, 200) for i in range(2)] + [Request(2 + i, 0.01 * i, 2000, 300)
                                                                      for i in range(20)]  # fmt: skip
    r = make_replica(engine, model=MODEL, gpu=GPU, num_blocks=1_000_000 // 16)
    r.run(sorted(reqs, key=lambda q: q.arrival))
    assert all(q.record.finish is not None for q in reqs)
    assert sum(q.record.preemptions for q in reqs) > 0
    assert r.state.kv.used == 0


def test_a_million_token_run_from_the_scenario():
    wl = WorkloadConfig(num_requests=6, rate=0.05, input=LengthDist(dist="uniform", min=32_768, max=1_000_000),
                        output=LengthDist(dist="fixed", mean=256, max=256))  # fmt: skip
    s = simulate(Scenario(model=MODEL, gpu=GPU, workload=wl)).summary()
    assert s["completed"] == 6 and s["failed"] == 0
    assert s["iterations"] > 6 * 32_768 // 8192
