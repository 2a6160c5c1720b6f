"""Helpers: run explicit requests through a replica, checking its invariants after every step."""

from __future__ import annotations

import dataclasses

import pytest

from servesim.config import EngineConfig
from servesim.hardware import get_gpu
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf import RooflineModel
from servesim.sim import replica as replica_mod
from servesim.sim.memory import plan_memory
from servesim.sim.pool import PoolSpec
from servesim.sim.replica import Replica
from servesim.sim.request import Request


def check_invariants(r: Replica) -> None:
    r.state.check()


@pytest.fixture
def checked(monkeypatch):
    """Wrap the replica's step functions so that every step is followed by an invariant check."""
    step, run = Replica._step, Replica._decode_run

    def checked_step(self, plan):
        step(self, plan)
        check_invariants(self)

    def checked_run(self, *args):
        left_whole = run(self, *args)  # (a run left whole by a read changed nothing)
        check_invariants(self)
        return left_whole

    monkeypatch.setattr(Replica, "_step", checked_step)
    monkeypatch.setattr(Replica, "_decode_run", checked_run)


def make_replica(engine: EngineConfig | None = None, model="llama-3.1-8b", gpu="h100", num_blocks=20000,
                 unit_tokens=512, index=0, swap=None) -> Replica:  # fmt: skip
    """A bare replica, priced by the roofline, with what a unit test asks of it (the factory builds a
    deployment's from a PoolSpec; `pool_spec` gives one)."""
    engine = engine or EngineConfig()
    perf = RooflineModel(get_model(model), get_gpu(gpu), Layout(engine.tp))
    return Replica(engine, perf, num_blocks, unit_tokens=unit_tokens, index=index, swap=swap)


def pool_spec(name="", replicas=1, engine: EngineConfig | None = None, num_blocks=20000, router="round_robin",
              model="llama-3.1-8b", gpu="h100", unit_tokens=512, hand_off=None, stage=0) -> PoolSpec:  # fmt: skip
    """A pool of `replicas` replicas as `make_replica` makes them, `num_blocks` of KV cache each."""
    engine = engine or EngineConfig()
    m, g = get_model(model), get_gpu(gpu)
    memory = dataclasses.replace(plan_memory(m, g, engine), num_blocks=num_blocks)
    return PoolSpec(name, m, g, engine, Layout.of(engine), replicas, router, memory, "roofline",
                    unit_tokens=unit_tokens, hand_off=hand_off, stage=stage)  # fmt: skip


def serve(reqs: list[tuple], engine=None, num_blocks=20000, **kw) -> tuple[Replica, list[Request]]:
    """Serve (arrival, prompt_len, output_len[, hash_ids]) tuples; returns the replica and requests."""
    requests = [Request(i, *t) for i, t in enumerate(sorted(reqs, key=lambda t: t[0]))]
    r = make_replica(engine, num_blocks=num_blocks, **kw)
    r.run(requests)
    return r, requests


@pytest.fixture
def step_by_step(monkeypatch):
    monkeypatch.setattr(replica_mod, "MAX_RUN", 1)
