"""One engine replica: the clock and the pricing that turn a request stream into iterations.

Each step the policy plans an iteration from the replica's state. A plan with prefill
chunks runs as one iteration. A plan of decodes only runs as many identical-shape
iterations as it can at once: up to the next finish, the next arrival that could change
the plan, or the iteration at which the KV cache would run out; their times come from
one vectorised call to the performance model. The meter records what each iteration
cost.
"""

from __future__ import annotations

import math

import numpy as np

from servesim.perf import Batch, PerfModel
from servesim.perf.energy import NO_POWER, PowerModel, stretch
from servesim.sim.meter import Meter
from servesim.sim.request import Request
from servesim.sim.scheduler import SCHEDULERS
from servesim.sim.state import ReplicaState

MAX_RUN = 4096  # iterations advanced in one decode run at most


class Replica:
    def __init__(self, engine, perf: PerfModel, num_blocks: int, unit_tokens: int = 512, rid: int = 0,
                 power: PowerModel = NO_POWER, gpus: int = 1, price_per_hour: float = 0.0):  # fmt: skip
        self.engine = engine
        self.perf = perf
        self.power, self.gpus = power, gpus  # each GPU of the replica draws `power`
        self.usd_per_s = price_per_hour * gpus / 3600
        self.cap_w: float | None = None  # per-GPU power cap in force
        self.meter = Meter()
        policy = SCHEDULERS.get(engine.scheduler)
        opts = policy.configure(engine)
        self.state = ReplicaState(num_blocks, engine.block_size, engine.enable_prefix_caching, unit_tokens,
                                  engine.max_num_seqs, policy.make_queue(opts), rid, self.meter)  # fmt: skip
        self.scheduler = policy(self.state, engine, opts)
        # set on prefill replicas of a disaggregated deployment: called with (request, time, last
        # iteration's seconds) when a prefill has produced the first token and the request moves on
        self.on_prefilled = None

    @property
    def rid(self) -> int:
        return self.state.rid

    @property
    def now(self) -> float:
        return self.state.now

    @property
    def it(self) -> int:
        return self.state.it

    @property
    def outstanding(self) -> int:
        return self.state.outstanding

    # ----- the loop -----
    def run(self, requests: list[Request]) -> None:
        """Serve `requests` (sorted by arrival) to completion."""
        self.state.incoming.extend(requests)
        self.advance(math.inf)

    def submit(self, req: Request) -> None:
        """Hand over a request that becomes ready at `req.ready` (no earlier than those before it)."""
        self.state.incoming.append(req)

    def next_ready(self) -> float:
        """When this replica next has something to do: now if busy, else its next arrival."""
        s = self.state
        if s.running or s.waiting:
            return s.now
        return s.incoming[0].ready if s.incoming else math.inf

    def advance(self, until: float) -> None:
        """Run every iteration that starts before `until`, admitting arrivals as they come."""
        s, sched = self.state, self.scheduler
        incoming, dec = s.incoming, s.dec
        while True:
            if incoming and incoming[0].ready <= s.now:
                s.arrive()
            if not s.running and not s.waiting:
                if not incoming or incoming[0].ready >= until:
                    return
                s.now = incoming[0].ready
                continue
            if s.now >= until:
                return
            s.decodes_reserved = False
            plan = sched.schedule()
            if plan:
                self._step(plan)
            elif dec.n:
                self._decode_run(incoming[0].ready if incoming else None, until)
            else:
                raise RuntimeError(f"scheduler {sched.name} made no progress at t={s.now}")

    def _price(self, comp, mem, other):
        """(seconds, watts per GPU) of iterations with these bound splits, under the power cap if any."""
        if self.cap_w is None:
            return comp + mem + other, self.power.mean_watts(comp, mem, other)
        # the most power-hungry iteration of a run sets its clock: at low clocks that is the most memory-bound one
        clock = min(self.power.clock_for(comp, float(m), other, self.cap_w) for m in (np.min(mem), np.max(mem)))
        comp_t, mem_t = stretch(comp, mem, clock)
        return comp_t + mem_t + other, self.power.mean_watts(comp, mem, other, clock)

    def _step(self, plan) -> None:
        s, meter = self.state, self.meter
        dec, it, kv = s.dec, s.it, s.kv
        batch = Batch(dec.n, dec.ctx_sum(it), tuple(c for _, c in plan), tuple(r.computed for r, _ in plan))
        dt, watts = self._price(*self.perf.split(batch))
        t = s.now + dt
        energy, tokens = watts * dt * self.gpus, batch.num_tokens
        jpt, usdpt = energy / tokens, dt * self.usd_per_s / tokens
        meter.record(it, (t,), (jpt,), (usdpt,))
        meter.energy_j += energy
        meter.busy_s += dt
        s.decodes_reserved = False
        for req, chunk in plan:
            req.prefill_j += chunk * jpt
            req.prefill_usd += chunk * usdpt
            req.computed += chunk
            if req.computed < req.target:
                continue
            s.prefilled(req)
            req.generated += 1
            if req.first_token is None:
                req.first_token = t
            req.seg_start = it
            if req.generated >= req.output_len:
                s.finish(req, t)
            elif self.on_prefilled is not None:  # disaggregated: decoding happens elsewhere
                s.hand_off(req)
                self.on_prefilled(req, t, t - s.now)
            else:
                s.decode_from(req, it + 1)
        s.it = it + 1
        for req in dec.pop_finished(it):
            s.finish(req, t)
        meter.log.add(s.now, t, 1, batch.num_seqs, tokens, kv.used, len(s.waiting), energy)
        s.now = t

    def _decode_run(self, next_arrival: float | None, until: float = math.inf) -> None:
        s, meter = self.state, self.meter
        dec, kv, j0 = s.dec, s.kv, s.it
        n = dec.n
        k = min(dec.next_finish() - j0 + 1, 1 + dec.iterations_fitting(j0 + 1, kv.free()), MAX_RUN)
        if self.scheduler.preempted:
            k = 1  # freed room may admit waiting requests next step
        ctx = dec.base_sum + n * (j0 + 1 + np.arange(k))
        times, watts = self._price(*self.perf.decode_split(n, ctx))
        ends = s.now + np.cumsum(times)
        horizon = until  # the caller needs this replica's state at `until`
        if next_arrival is not None and self.scheduler.arrivals_matter():
            horizon = min(horizon, next_arrival)
        if horizon < math.inf:
            first = int(np.searchsorted(ends, horizon))
            if first < k:
                k = first + 1
                ends, times, watts = ends[:k], times[:k], watts[:k]
        if not kv.allocate(dec.blocks_needed(j0 + 1, k - 1)):
            raise RuntimeError("decode run outgrew the KV cache")
        energy = watts * times * self.gpus
        meter.record(j0, ends, energy / n, times * (self.usd_per_s / n))
        run_energy = float(energy.sum())
        meter.energy_j += run_energy
        meter.busy_s += float(times.sum())
        s.decodes_reserved = False
        s.it = j0 + k
        t = float(ends[-1])
        for req in dec.pop_finished(s.it - 1):
            s.finish(req, t)
        meter.log.add(s.now, t, k, n, n, kv.used, len(s.waiting), run_energy)
        s.now = t
