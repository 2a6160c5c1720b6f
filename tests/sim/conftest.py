"""Helpers: run explicit requests through a replica, checking its invariants after every step."""

from __future__ import annotations

import math

import pytest

from servesim.config import EngineConfig
from servesim.hardware import get_gpu
from servesim.models import get_model
from servesim.perf import RooflineModel
from servesim.sim import replica as replica_mod
from servesim.sim.replica import Replica
from servesim.sim.request import Request


def check_invariants(r: Replica) -> None:
    kv, dec, B = r.kv, r.dec, r.block_size
    assert 0 <= kv.used <= kv.total
    assert kv.used + kv.evictable <= kv.total
    assert len(r.running) <= r.engine.max_num_seqs
    decoding = [q for q in r.running.values() if q.decoding]
    prefilling = [q for q in r.running.values() if not q.decoding]
    assert prefilling == r.prefilling
    assert dec.n == len(decoding)
    assert dec.base_sum == sum(q.base for q in decoding)
    assert dec.phase == [sum(1 for q in decoding if q.base % B == p) for p in range(B)]
    held = 0
    refs: dict = {}
    for q in r.running.values():
        blocks = math.ceil((q.base + r.it) / B) if q.decoding else q.blocks
        computed = q.base + r.it if q.decoding else q.computed
        assert blocks >= math.ceil(computed / B)
        if q.decoding:  # generated tokens follow from the iteration counter, like computed ones
            generated = q.output_len - q.finish_it + r.it - 1
            assert 1 <= generated < q.output_len
            assert computed == q.prompt_len + generated - 1  # the newest token is not cached yet
        else:
            assert computed < q.target
        held += blocks - q.shared_blocks
        for h in q.entries:
            refs[h] = refs.get(h, 0) + 1
    live = {h: c for h, c in kv._refs.items() if c > 0}
    assert live == refs, "prefix-cache reference counts disagree with the running requests"
    assert kv.used == held + len(live) * kv.unit_blocks
    assert kv.evictable == len(kv._lru) * kv.unit_blocks


@pytest.fixture
def checked(monkeypatch):
    """Wrap the replica's step functions so that every step is followed by an invariant check."""
    step, run = Replica._step, Replica._decode_run

    def checked_step(self, plan):
        step(self, plan)
        check_invariants(self)

    def checked_run(self, *args):
        run(self, *args)
        check_invariants(self)

    monkeypatch.setattr(Replica, "_step", checked_step)
    monkeypatch.setattr(Replica, "_decode_run", checked_run)


def make_replica(engine: EngineConfig | None = None, model="llama-3.1-8b", gpu="h100", num_blocks=20000,
                 unit_tokens=512) -> Replica:  # fmt: skip
    engine = engine or EngineConfig()
    perf = RooflineModel(get_model(model), get_gpu(gpu), tp=engine.tp)
    return Replica(engine, perf, num_blocks, unit_tokens)


def serve(reqs: list[tuple], engine=None, num_blocks=20000, **kw) -> tuple[Replica, list[Request]]:
    """Serve (arrival, prompt_len, output_len[, hash_ids]) tuples; returns the replica and requests."""
    requests = [Request(i, *t) for i, t in enumerate(sorted(reqs, key=lambda t: t[0]))]
    r = make_replica(engine, num_blocks=num_blocks, **kw)
    r.run(requests)
    return r, requests


@pytest.fixture
def step_by_step(monkeypatch):
    monkeypatch.setattr(replica_mod, "MAX_RUN", 1)
