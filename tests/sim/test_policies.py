import numpy as np
import pytest

from servesim.config import EngineConfig
from servesim.errors import ServesimError
from servesim.sim import scheduler_names
from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.scheduler import register
from tests.sim.conftest import make_replica, serve


def test_registry():
    assert {"vllm", "sarathi", "orca", "static"} <= set(scheduler_names())
    with pytest.raises(ServesimError, match="unknown scheduler 'fifo'"):
        make_replica(EngineConfig(scheduler="fifo"))


def test_vllm_chunks_long_prompts(checked):
    r, (req,) = serve([(0.0, 5000, 5)], EngineConfig(max_num_batched_tokens=2048))
    steps = r.meter.log.arrays()
    assert list(steps["tokens"][:3]) == [2048, 2048, 904]  # 5000 = 2048 + 2048 + 904
    assert req.record.first_token == pytest.approx(steps["end"][2])


def test_sarathi_budget_is_the_chunk_size(checked):
    engine = EngineConfig(scheduler="sarathi", scheduler_options={"chunk_size": 512})
    r, _ = serve([(0.0, 3000, 30), (0.0, 100, 200)], engine)
    assert r.meter.log.arrays()["tokens"].max() == 512


def test_orca_prefills_whole_prompts(checked):
    r, _ = serve([(0.0, 3000, 10), (0.0, 500, 10)], EngineConfig(scheduler="orca", max_num_batched_tokens=2048))
    tokens = list(r.meter.log.arrays()["tokens"])
    assert tokens[0] == 3000  # longer than the budget: runs alone, unchunked
    assert 501 in tokens  # the second prompt whole, beside one decode


def test_decodes_continue_beside_prefills(checked):
    # vLLM: a running decode is never stalled by a newcomer's prefill
    r, (a, b) = serve([(0.0, 100, 40), (0.05, 1500, 5)], EngineConfig(max_num_batched_tokens=512))
    steps = r.meter.log.arrays()
    mixed = [s for s, t in zip(steps["seqs"], steps["tokens"], strict=True) if t > 2]
    assert all(s == 2 for s in mixed[1:])  # every chunk of b shares its iteration with a's decode


def test_static_waits_for_the_batch(checked):
    r, (a, b, c) = serve([(0.0, 100, 200), (0.0, 100, 50), (0.01, 100, 10)], EngineConfig(scheduler="static"))
    assert c.record.first_scheduled >= max(a.record.finish, b.record.finish)
    assert a.record.first_scheduled == b.record.first_scheduled == 0.0


def test_static_admits_up_to_max_num_seqs(checked):
    r, done = serve([(0.0, 50, 20)] * 10, EngineConfig(scheduler="static", max_num_seqs=4))
    starts = sorted({q.record.first_scheduled for q in done})
    assert len(starts) == 3  # batches of 4, 4 and 2


def test_a_policy_may_admit_any_waiting_request(checked):
    """A policy picks from the queue by its own rule and admits that request, not the head."""

    @register
    class LeastOutputFirst(VLLMScheduler):
        name = "test_least_output_first"

        def schedule_prefills(self):
            s, plan = self.state, []
            if s.waiting and not s.running:
                req = min(s.waiting, key=lambda r: r.output_len)
                plan.append((req, self.admit(req, self.token_budget())))
            return plan

    engine = EngineConfig(scheduler="test_least_output_first")
    r, done = serve([(0.0, 100, 50), (0.001, 100, 300), (0.002, 100, 10), (0.003, 100, 100)], engine)
    order = sorted(done, key=lambda q: q.record.first_scheduled)
    assert [q.output_len for q in order] == [50, 10, 100, 300]
    assert all(q.record.finish is not None for q in done)


def test_sjf_queue_orders_by_remaining_output(checked):
    engine = EngineConfig(scheduler="sjf", max_num_seqs=1)
    r, done = serve([(0.0, 100, 50), (0.001, 100, 300), (0.002, 100, 10), (0.003, 100, 100)], engine)
    assert [q.output_len for q in sorted(done, key=lambda q: q.record.first_scheduled)] == [50, 10, 100, 300]
    fcfs, _ = serve([(0.0, 100, 50), (0.001, 100, 300), (0.002, 100, 10), (0.003, 100, 100)],
                    EngineConfig(max_num_seqs=1))  # fmt: skip
    mean_e2e = lambda reqs: sum(q.record.finish - q.arrival for q in reqs) / len(reqs)  # noqa: E731
    assert mean_e2e(done) < mean_e2e(_)
    with pytest.raises(ServesimError, match="scheduler_options of sjf: size"):
        make_replica(EngineConfig(scheduler="sjf", scheduler_options={"size": "weight"}))


def test_pick_victim_hook_chooses_who_is_preempted(checked):
    victims = []

    @register
    class EvictLongest(VLLMScheduler):
        name = "test_evict_longest"

        def pick_victim(self):
            running = list(self.state.running.values())
            victim = max(running, key=lambda q: (q.output_len, q.id))
            victims.append((victim, running))
            return victim

    reqs = [(0.001 * i, 300, 40 + 37 * i) for i in range(12)]
    r, done = serve(reqs, EngineConfig(scheduler="test_evict_longest", max_num_batched_tokens=1024), num_blocks=90)
    assert victims and all(v.output_len == max(q.output_len for q in running) for v, running in victims)
    assert sum(q.record.preemptions for q in done) == len(victims)
    assert all(q.record.finish is not None for q in done)


def test_policy_options_are_checked_by_the_policy():
    with pytest.raises(ServesimError, match="sarathi chunk_size \\(64\\) must be >= max_num_seqs \\(256\\)"):
        make_replica(EngineConfig(scheduler="sarathi", scheduler_options={"chunk_size": 64}))
    with pytest.raises(ServesimError, match="scheduler vllm takes no options"):
        make_replica(EngineConfig(scheduler_options={"chunk_size": 64}))
    assert make_replica(EngineConfig(scheduler="SJF")).scheduler.name == "sjf"  # names are case- and hyphen-blind


def test_no_evict_admits_only_what_can_finish(checked):
    """TensorRT-LLM's GUARANTEED_NO_EVICT: where vLLM's admission on the prompt alone preempts, this never does,
    and the requests running at once never need more blocks than the cache has."""
    reqs = [(0.0, 1000, 600)] * 12  # 100 blocks of 16 tokens each over a whole life; 600 blocks in the cache
    vllm, _ = serve(reqs, EngineConfig(), num_blocks=600)
    assert sum(q.record.preemptions for q in _) > 0
    r, done = serve(reqs, EngineConfig(scheduler="no_evict"), num_blocks=600)
    assert sum(q.record.preemptions for q in done) == 0 and all(q.record.finish is not None for q in done)
    starts = sorted(q.record.first_scheduled for q in done)
    for q in done:  # at most six whole lives (600 blocks) overlap at any admission
        assert sum(1 for p in done if p.record.first_scheduled <= q.record.first_scheduled < p.record.finish) <= 6
    assert starts[5] == 0.0 and starts[6] > 0.0
    # with room for every request, it plans exactly as vLLM does
    same = [(0.1 * i, 300, 50) for i in range(20)]
    a, x = serve(same, EngineConfig())
    b, y = serve(same, EngineConfig(scheduler="no_evict"))
    assert [q.record.finish for q in x] == [q.record.finish for q in y]


def test_sjf_with_a_noisy_ranker_sits_between_fcfs_and_the_oracle(checked):
    """Mean latency of a queue of mixed jobs: oracle SJF < tau 0.5 ranker < FCFS (same requests)."""
    rng = np.random.default_rng(0)
    reqs = [(0.001 * i, 50, int(o)) for i, o in enumerate(np.maximum(1, rng.lognormal(4, 1.2, 60).astype(int)))]
    mean = {}
    for label, opts in (("fcfs", None), ("noisy", {"predictor": "noisy", "tau": 0.5}), ("oracle", {})):
        engine = EngineConfig(scheduler="vllm" if opts is None else "sjf", scheduler_options=opts or {},
                              max_num_seqs=2)  # fmt: skip
        _, done = serve(reqs, engine)
        mean[label] = sum(q.record.finish - q.arrival for q in done) / len(done)
    assert mean["oracle"] < mean["noisy"] < mean["fcfs"]


def test_sjf_starvation_guard_bounds_the_wait_of_a_long_job(checked):
    """A long job behind a stream of short ones: SJF alone starves it; max_wait_s lets it in once it has waited."""
    reqs = [(0.0, 20, 2000)] + [(0.002 * i, 20, 5) for i in range(1, 400)]
    wait = {}
    for guard in (None, 0.1):
        opts = {} if guard is None else {"max_wait_s": guard}
        _, done = serve([(0.0, 20, 5)] + reqs, EngineConfig(scheduler="sjf", scheduler_options=opts, max_num_seqs=1))
        long = next(q for q in done if q.output_len == 2000)
        wait[guard] = long.record.first_scheduled - long.arrival
    assert wait[None] > 0.5
    assert 0.1 <= wait[0.1] < wait[None]


def test_static_grouping_batches_similar_predicted_lengths(checked):
    lengths = [5, 400, 6, 380, 7, 390, 8, 410]
    reqs = [(0.0, 20, o) for o in lengths]
    batches = {}
    for group in (False, True):
        engine = EngineConfig(scheduler="static", max_num_seqs=2, scheduler_options={"group": group})
        r, done = serve(reqs, engine)
        starts = {}
        for q in done:
            starts.setdefault(q.record.first_scheduled, []).append(q.output_len)
        batches[group] = (sorted(sorted(b) for b in starts.values()), max(q.record.finish for q in done))
    assert all(max(b) < 10 or min(b) > 300 for b in batches[True][0])  # short with short, long with long
    assert not all(max(b) < 10 or min(b) > 300 for b in batches[False][0])
    assert batches[True][1] < 0.7 * batches[False][1]  # less time waiting on a batch's longest member
