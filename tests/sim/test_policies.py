import pytest

from servesim.config import EngineConfig
from servesim.errors import ServesimError
from servesim.sim import scheduler_names
from tests.sim.conftest import make_replica, serve


def test_registry():
    assert {"vllm", "sarathi", "orca", "static"} <= set(scheduler_names())
    with pytest.raises(ServesimError, match="unknown scheduler 'fifo'"):
        make_replica(EngineConfig(scheduler="fifo"))


def test_vllm_chunks_long_prompts(checked):
    r, (req,) = serve([(0.0, 5000, 5)], EngineConfig(max_num_batched_tokens=2048))
    steps = r.meter.log.arrays()
    assert list(steps["tokens"][:3]) == [2048, 2048, 904]  # 5000 = 2048 + 2048 + 904
    assert req.first_token == pytest.approx(steps["end"][2])


def test_sarathi_budget_is_the_chunk_size(checked):
    r, _ = serve([(0.0, 3000, 30), (0.0, 100, 200)], EngineConfig(scheduler="sarathi", scheduler_options={"chunk_size": 512}))
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
    assert c.first_scheduled >= max(a.finish, b.finish)
    assert a.first_scheduled == b.first_scheduled == 0.0


def test_static_admits_up_to_max_num_seqs(checked):
    r, done = serve([(0.0, 50, 20)] * 10, EngineConfig(scheduler="static", max_num_seqs=4))
    starts = sorted({q.first_scheduled for q in done})
    assert len(starts) == 3  # batches of 4, 4 and 2
