"""One engine replica: the loop and the pricing that turn a request stream into iterations.

Each step the policy plans an iteration from the replica's state. A plan with prefill
chunks runs as one iteration. A plan of decodes only runs as many identical-shape
iterations as it can at once: up to the next finish, the next arrival that could change
the plan, or the iteration at which the KV cache would run out, priced in closed form
(`DecodeCurve.run`: iteration time is piecewise linear in the mean context). The meter
records what each iteration cost; the state, told what ran, advances its clock and its
sequences.

A replica is built by the factory (`pool.make_replica`) from its pool's description;
with pipeline parallelism each of a replica's micro-batch streams is one of these (vLLM's
virtual engines), on tp GPUs at a time.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from itertools import accumulate

import numpy as np

from servesim.perf import Batch, PerfModel
from servesim.perf.energy import NO_POWER, PowerModel, stretch
from servesim.sim.hooks import NO_HOOKS, ReplicaHooks
from servesim.sim.kv_swap import SwapCost
from servesim.sim.meter import Meter
from servesim.sim.request import Request
from servesim.sim.scheduler import SCHEDULERS
from servesim.sim.sequence import Sequence
from servesim.sim.state import ReplicaState

MAX_RUN = 1 << 20  # iterations advanced in one decode run at most


@dataclass(frozen=True)
class ReplicaReport:
    """What a replica's run amounted to, for the result (`Cluster.report`)."""

    gpus: float
    idle_w: float
    usd_per_s: float
    busy_s: float
    swap_s: float  # copy time to and from the CPU tier
    prefix_hit_blocks: int
    prefix_query_blocks: int
    provisioned: tuple | None = None  # (start, end or None) windows it was billed in; None: the whole run


class Replica:
    def __init__(self, engine, perf: PerfModel, num_blocks: int, *, unit_tokens: int = 512, index: int = 0,
                 power: PowerModel = NO_POWER, gpus: float = 1, price_per_hour: float = 0.0,
                 cap_w: float | None = None, swap: SwapCost | None = None,
                 hooks: ReplicaHooks = NO_HOOKS, power_priority: int = 0):  # fmt: skip
        self.engine = engine
        self.perf = perf
        self.power, self.gpus = power, gpus  # each GPU of the replica draws `power`
        self.price_per_hour = price_per_hour  # per GPU
        self.usd_per_s = price_per_hour * gpus / 3600
        self.cap_w = cap_w  # per-GPU power cap in force
        self._left_whole: LeftWhole | None = None  # the decode run a read fell in, not run yet
        self.static_cap_w = cap_w  # the cap it was built with, which a lifted controller cap returns to
        self.power_priority = power_priority  # a power controller caps lower priorities first
        self.windows: list[tuple] | None = None  # billed (start, end) windows; None: the whole run (no autoscaler)
        self._speeds: dict[int, float] = {}  # reference iterations' tokens per second, by their token count
        self.meter = Meter(self.usd_per_s)
        self._full_clock: dict[int, tuple] = {}  # request count -> power.linear of its decode iterations
        policy = SCHEDULERS.get(engine.scheduler)
        self.state = ReplicaState(num_blocks, engine.block_size, engine.enable_prefix_caching, unit_tokens,
                                  engine.max_num_seqs, index, self.meter, swap, hooks)  # fmt: skip
        self.scheduler = policy(self.state, engine, policy.configure(engine))

    @property
    def index(self) -> int:
        return self.state.index

    @property
    def now(self) -> float:
        return self.state.now

    @property
    def it(self) -> int:
        return self.state.it

    @property
    def outstanding(self) -> int:
        return self.state.outstanding

    @property
    def prefill_tokens_per_s(self) -> float:
        """Prompt tokens per second of a full 2,048-token prefill chunk, from its performance model."""
        return self._speed(Batch.prefill(2048))

    @property
    def tokens_per_s(self) -> float:
        """Its speed, for routers that weigh replicas of different GPUs or layouts: tokens per second of a
        reference iteration, a 512-token prompt chunk beside 32 decodes at 1,024 tokens of context."""
        return self._speed(Batch.prefill(512) + Batch.decode(32, 1024))

    def _speed(self, batch: Batch) -> float:
        """Tokens per second of one iteration of `batch` (priced once per replica)."""
        speed = self._speeds.get(batch.num_tokens)
        if speed is None:
            speed = self._speeds[batch.num_tokens] = batch.num_tokens / self.perf.iteration_time(batch)
        return speed

    def set_power_cap(self, watts: float | None) -> None:
        """Cap each GPU's power from the next iteration on (None: uncapped); a controller's lever."""
        self.cap_w = watts

    def set_sm_share(self, share: float) -> None:
        """A semi-PD worker's share of its GPUs' SMs from the next iteration on (semi-PD's controller); the
        worker draws and pays the same share of its GPUs' power and cost."""
        self.gpus *= share / self.perf.share
        self.perf.share = share
        self.usd_per_s = self.meter.usd_per_s = self.price_per_hour * self.gpus / 3600

    def bill_by_windows(self) -> None:
        """Billed only from `provision` to `retire` from now on, not for the whole run (an autoscaled fleet)."""
        self.windows = []

    def provision(self, t: float) -> None:
        """Billed from t on (an autoscaler started it)."""
        self.windows.append((t, None))

    def retire(self, t: float) -> None:
        """Billed until t (an autoscaler stopped it, empty)."""
        start, _ = self.windows.pop()
        self.windows.append((start, t))

    def report(self) -> ReplicaReport:
        s = self.state
        return ReplicaReport(self.gpus, self.power.idle_w, self.usd_per_s, self.meter.busy_s, s.swap_total_s,
                             s.kv.hit_blocks, s.kv.query_blocks,
                             None if self.windows is None else tuple(self.windows))  # fmt: skip

    def log(self) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Its step log as columns, and every iteration's end time (what a run kept in memory returns); the
        replica's own copies are dropped (the run is over, and a replica sits in reference cycles that only a
        full collection would free)."""
        steps, ends = self.meter.log.take(), self.meter.iter_end[: self.it].copy()
        self.meter.trim(self.it, self.it)
        return steps, ends

    # ----- the loop -----
    def run(self, requests: list[Request], until: float = math.inf) -> None:
        """Serve `requests` (sorted by arrival, after any given before): every iteration that starts
        before `until`, by default to completion."""
        self._left_whole = None
        self.state.receive_all(requests)
        self.advance(until)

    def receive(self, req: Request, ready: float, carried: Sequence | None = None) -> None:
        """Take a request due at `ready` (no earlier than those before it); `carried`: its sequence on the
        replica it comes from, whose KV cache comes with it."""
        self._left_whole = None
        self.state.receive(req, ready, carried)

    def next_ready(self) -> float:
        """When this replica next has something to do: now if busy, else its next arrival."""
        s = self.state
        if s.running or s.waiting:
            return s.now
        return s.incoming[0].ready if s.incoming else math.inf

    def queued_tokens_at(self, t: float) -> int:
        """`state.queued_tokens()` as it stands at t (a router's read). Where a decode run goes on past t, the
        run is left whole and its KV growth by t follows in closed form: a read is no event of this replica, and
        cutting the run there would cost a step and a step-log row per read (`LeftWhole`)."""
        run = self._left_whole
        if run is None or t >= run.horizon:
            if not self.advance(t, peek=True):
                return self.state.queued_tokens()
            run = self._left_whole
        grown = run.blocks_by(t)
        if grown is None:  # the run ends before t: run it
            self.advance(t)
            return self.state.queued_tokens()
        return run.queued + grown * self.state.block_size

    def advance(self, until: float, peek: bool = False) -> bool:
        """Run every iteration that starts before `until`, admitting arrivals as they come. `peek`: stop before
        a decode run that only `until` would cut, leaving it in `_left_whole` (returns True)."""
        self._left_whole = None
        s, sched = self.state, self.scheduler
        incoming, dec = s.incoming, s.dec
        while True:
            if incoming and incoming[0].ready <= s.now:
                s.enqueue_due()
            if not s.running and not s.waiting:
                if not incoming or incoming[0].ready >= until:
                    return False
                s.idle_until(incoming[0].ready)
                continue
            if s.now >= until:
                return False
            plan = sched.schedule()
            if plan or (s.swap_s and dec.n):  # (copies to or from the CPU tier hold up one iteration)
                self._step(plan)
            elif s.swap_s:
                s.wait_for_copies()
            elif dec.n:
                if self._decode_run(incoming[0].ready if incoming else None, until, peek):
                    return True
            elif sched.preempted and not s.running:  # it made room for a waiting request: the next plan has it
                continue
            else:
                raise RuntimeError(f"scheduler {sched.name} made no progress at t={s.now}")

    def _price(self, comp: float, mem: float, other: float) -> tuple[float, float]:
        """(seconds, watts per GPU) of an iteration with these bound splits, under the power cap if any."""
        if self.cap_w is None:
            return comp + mem + other, self.power.mean_watts(comp, mem, other)
        clock = self.power.clock_for(comp, mem, other, self.cap_w)
        comp_t, mem_t = stretch(comp, mem, clock)
        return comp_t + mem_t + other, self.power.mean_watts(comp, mem, other, clock)

    def _step(self, plan) -> None:
        s, meter = self.state, self.meter
        dec, it, start = s.dec, s.it, s.now
        if self.scheduler.prices_plan:
            batch = self.scheduler.plan_batch(plan, dec.n, dec.ctx_sum(it))
        else:
            batch = Batch(dec.n, dec.ctx_sum(it), tuple(c for _, c in plan), tuple(q.computed for q, _ in plan))
        comp, mem, other = self.perf.split(batch)
        dt, watts = self._price(comp, mem, other + s.take_copy_time() if s.swap_s else other)
        t = start + dt
        energy, tokens = watts * dt * self.gpus, dec.n + sum(c for _, c in plan)
        meter.step(it, t, dt, energy, tokens, plan)
        held = s.kv.used
        out = s.ran(plan, t)
        meter.log.add((start, t, 1, batch.num_seqs, tokens, s.kv.used, len(s.waiting), energy, out, held, held * dt))

    def _run_power(self, curve, n: int, x0: float, k: int) -> tuple[float, float, float, float]:
        """`PowerModel.linear` for a run of k decode iterations: at full clock, or under the power cap."""
        if self.cap_w is None:
            lin = self._full_clock.get(n)
            if lin is None:
                lin = self._full_clock[n] = self.power.linear(curve.comp, curve.other)
            return lin
        # the most power-hungry iteration of a run sets its clock: at low clocks that is the most memory-bound one
        fixed = curve.comp + curve.other
        clock = min(self.power.clock_for(curve.comp, float(curve.times(x)) - fixed, curve.other, self.cap_w)
                    for x in (x0, x0 + k - 1))  # fmt: skip
        return self.power.linear(curve.comp, curve.other, clock)

    def _decode_run(self, next_arrival: float | None, until: float = math.inf, peek: bool = False) -> bool:
        """Run decode iterations up to the next event (or `until`); peek: not if only `until` would cut them
        (True: see `queued_tokens_at`)."""
        s, meter = self.state, self.meter
        dec, kv, j0, now = s.dec, s.kv, s.it, s.now
        n = dec.n
        sched = self.scheduler
        k = 1 if sched.preempted or not sched.steady else min(dec.next_finish() - j0 + 1, MAX_RUN)
        k = min(k, 1 + dec.iterations_fitting(j0 + 1, kv.free(), k))
        horizon = math.inf
        if next_arrival is not None and sched.arrivals_matter():
            horizon = next_arrival
        elif s.landing:  # a request whose KV cache comes with it starts decoding even while the queue is blocked
            horizon = next(q.ready for q in s.incoming if q.kv_ready)
        if s.kept.expiry and s.waiting:  # a lapsing pin frees blocks a waiting request may need
            horizon = min(horizon, s.kept.next_expiry())
        curve = self.perf.decode_curve(n)
        x0 = dec.base_sum / n + j0 + 1  # mean context of the first iteration; it grows by one per iteration
        a, b, e0, e1 = self._run_power(curve, n, x0, k)
        whole = k
        k, total, elapsed = curve.run(x0, k, min(horizon, until) - now, (a, b))  # (the caller needs `until`)
        if peek and k < whole and until < horizon:
            self._left_whole = LeftWhole(curve, x0, whole, (a, b), now, horizon, s.queued_tokens(), dec, j0 + 1)
            return True
        energy = self.gpus * (k * e0 + e1 * total)
        meter.run(j0, k, now, x0, curve, (a, b), energy, elapsed, n)
        t = now + elapsed
        held, grow = kv.used, dec.blocks_needed(j0 + 1, k - 1)
        s.ran_decodes(k, t, grow)
        meter.log.add((now, t, k, n, n, kv.used, len(s.waiting), energy, k * n, held + grow,
                       (held + grow / 2) * elapsed))  # fmt: skip
        return False


class LeftWhole:
    """A decode run that a router's read fell in, left whole (`Replica.queued_tokens_at`): until the replica
    runs or receives anything, a later read before `horizon` (its next event) is answered from it alone."""

    __slots__ = ("curve", "x0", "whole", "scale", "start", "horizon", "queued", "n", "cycle", "block", "ends")

    def __init__(self, curve, x0: float, whole: int, scale: tuple[float, float], start: float, horizon: float,
                 queued: int, dec, first: int):  # fmt: skip
        self.curve, self.x0, self.whole, self.scale = curve, x0, whole, scale
        self.start, self.horizon, self.queued, self.n = start, horizon, queued, dec.n
        # blocks the decodes need over the first r iterations from `first`, r = 0 .. block_size
        phase, self.block = dec.phase, dec.B
        self.cycle = [0, *accumulate([phase[-(first + j) % dec.B] for j in range(dec.B)])]
        self.ends: list[float] = []  # seconds from `start` to each iteration's end, as far as reads needed

    def blocks_by(self, t: float) -> int | None:
        """KV blocks grown by the iterations that start before t (the first one's were taken before the run), or
        None if the whole run does."""
        budget, ends = t - self.start, self.ends
        if not ends or ends[-1] < budget:
            self.curve.extend_ends(ends, self.x0, budget, self.whole, self.scale)
        k = bisect_left(ends, budget) + 1  # the first iteration whose end reaches t is the last begun before it
        if k >= self.whole:
            return None
        full, rest = divmod(k - 1, self.block)
        return full * self.n + self.cycle[rest]
