"""One engine replica: the discrete-event loop that turns a request stream into iterations.

Each step the scheduler plans an iteration. A plan with prefill chunks runs as one
iteration. A plan of decodes only runs as many identical-shape iterations as it can
at once: up to the next finish, the next arrival that could change the plan, or the
iteration at which the KV cache would run out; their times come from one vectorised
call to the performance model.
"""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from servesim.perf import Batch, PerfModel
from servesim.perf.energy import NO_POWER, PowerModel, stretch
from servesim.sim.decoding import DecodingSet
from servesim.sim.kv_cache import KVCache
from servesim.sim.request import Request
from servesim.sim.scheduler import make_scheduler

MAX_RUN = 4096  # iterations advanced in one decode run at most


class StepLog:
    """Per-step records: a mixed iteration or a run of decode iterations (energy in joules, all GPUs)."""

    __slots__ = ("start", "end", "iters", "seqs", "tokens", "kv_used", "waiting", "energy")

    def __init__(self):
        for name in self.__slots__:
            setattr(self, name, [])

    def add(self, start, end, iters, seqs, tokens, kv_used, waiting, energy):
        self.energy.append(energy)
        self.start.append(start)
        self.end.append(end)
        self.iters.append(iters)
        self.seqs.append(seqs)
        self.tokens.append(tokens)
        self.kv_used.append(kv_used)
        self.waiting.append(waiting)

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: np.asarray(getattr(self, name)) for name in self.__slots__}


class Replica:
    def __init__(self, engine, perf: PerfModel, num_blocks: int, unit_tokens: int = 512, rid: int = 0,
                 power: PowerModel = NO_POWER, gpus: int = 1, price_per_hour: float = 0.0):  # fmt: skip
        self.rid = rid  # index in its cluster; token times name the replica that produced them
        self.engine = engine
        self.perf = perf
        self.power, self.gpus = power, gpus  # each GPU of the replica draws `power`
        self.usd_per_s = price_per_hour * gpus / 3600
        self.cap_w: float | None = None  # per-GPU power cap in force
        self.energy_j = 0.0  # energy of all iterations so far
        self.busy_s = 0.0
        self.block_size = B = engine.block_size
        self.unit_tokens = unit_tokens
        self.kv = KVCache(num_blocks, B, engine.enable_prefix_caching, max(1, unit_tokens // B))
        self.dec = DecodingSet(B)
        self.incoming: deque[Request] = deque()  # handed over, arriving later
        self.waiting: deque[Request] = deque()
        self.running: dict[int, Request] = {}  # admission order; preemption takes the last
        self.prefilling: list[Request] = []
        self.decodes_reserved = False
        self.it = 0
        self.now = 0.0
        self.iter_end = np.empty(4096)
        # running sums over iterations of each token's share of energy and cost, for decoding requests
        self.cum_j = np.empty(4096)
        self.cum_usd = np.empty(4096)
        self.log = StepLog()
        self.scheduler = make_scheduler(engine.scheduler, self)
        # set on prefill replicas of a disaggregated deployment: called with (request, time, last
        # iteration's seconds) when a prefill has produced the first token and the request moves on
        self.on_prefilled = None

    # ----- helpers the scheduler uses -----
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def last_running(self) -> Request:
        return next(reversed(self.running.values()))

    def start(self, req: Request, hits: list, hit_tokens: int, new_blocks: int) -> None:
        """Move the head of the waiting queue into the running set."""
        self.waiting.popleft()
        req.entries = hits
        req.shared_blocks = len(hits) * self.kv.unit_blocks
        req.computed = hit_tokens
        req.blocks = req.shared_blocks + new_blocks
        self.running[req.id] = req
        self.prefilling.append(req)
        if req.first_scheduled is None:
            req.first_scheduled = self.now
            req.cached_tokens = hit_tokens

    def start_decoding(self, req: Request) -> None:
        """Move a waiting request whose KV cache came with it straight to decoding."""
        self.waiting.remove(req)
        req.kv_ready = False
        req.blocks = req.shared_blocks = 0
        req.entries = []
        self.running[req.id] = req
        self.dec.add(req, self.it)
        req.seg_start = self.it

    def _held(self, req: Request) -> int:
        if req.decoding:
            return self.blocks_for(req.base + self.it + self.decodes_reserved)
        return req.blocks

    def _release(self, req: Request) -> None:
        self.kv.release(self._held(req) - req.shared_blocks)
        self.kv.unref(req.entries)
        req.entries = []
        req.shared_blocks = req.blocks = 0
        del self.running[req.id]

    def preempt(self, req: Request) -> None:
        """Recompute preemption: free everything, requeue at the front."""
        self._release(req)
        if req.decoding:
            self._close_decoding(req)
        else:
            self.prefilling.remove(req)
        req.computed = 0
        req.preemptions += 1
        self.waiting.appendleft(req)

    def migrate_out(self, req: Request) -> None:
        """Let a decoding request leave with its progress (its KV cache is copied to another replica)."""
        self._release(req)
        req.computed = req.base + self.it
        self._close_decoding(req)
        req.migrations += 1

    def kv_load(self) -> float:
        """Fraction of the KV cache held or wanted by queued prompts (Llumnix's virtual usage)."""
        wanted = sum(self.blocks_for(r.target) for r in self.waiting)
        return (self.kv.used + wanted) / self.kv.total

    def _close_decoding(self, req: Request) -> None:
        """End a decoding stint: count its tokens, record their iterations and share of energy and cost."""
        req.generated = req.output_len - req.finish_it + self.it - 1
        last, first = self.it - 1, req.dec_first
        if last >= first:
            before_j = self.cum_j[first - 1] if first else 0.0
            before_usd = self.cum_usd[first - 1] if first else 0.0
            req.decode_j += float(self.cum_j[last] - before_j)
            req.decode_usd += float(self.cum_usd[last] - before_usd)
        req.segments.append((self.rid, req.seg_start, last))
        self.dec.remove(req)

    def _leave(self, req: Request) -> None:
        """Free a request that is done here, closing the record of the tokens it made here."""
        self._release(req)
        if req.decoding:
            self._close_decoding(req)
        else:  # it made one token here, in its last prefill iteration
            req.segments.append((self.rid, req.seg_start, req.seg_start))

    def _finish(self, req: Request, t: float) -> None:
        self._leave(req)
        req.finish = t

    # ----- the loop -----
    def run(self, requests: list[Request]) -> None:
        """Serve `requests` (sorted by arrival) to completion."""
        self.incoming.extend(requests)
        self.advance(math.inf)

    def submit(self, req: Request) -> None:
        """Hand over a request that becomes ready at `req.ready` (no earlier than those before it)."""
        self.incoming.append(req)

    def advance(self, until: float) -> None:
        """Run every iteration that starts before `until`, admitting arrivals as they come."""
        incoming, sched, dec = self.incoming, self.scheduler, self.dec
        while True:
            while incoming and incoming[0].ready <= self.now:
                self.waiting.append(incoming.popleft())
            if not self.running and not self.waiting:
                if not incoming or incoming[0].ready >= until:
                    return
                self.now = incoming[0].ready
                continue
            if self.now >= until:
                return
            self.decodes_reserved = False
            plan = sched.schedule()
            if plan:
                self._step(plan)
            elif dec.n:
                self._decode_run(incoming[0].ready if incoming else None, until)
            else:
                raise RuntimeError(f"scheduler {sched.name} made no progress at t={self.now}")

    @property
    def outstanding(self) -> int:
        """Requests queued, running or handed over but not yet arrived."""
        return len(self.running) + len(self.waiting) + len(self.incoming)

    def _record(self, start: int, ends, j_per_token, usd_per_token) -> None:
        """Store iteration end times and running per-token energy and cost from iteration `start` on."""
        stop = start + len(ends)
        if stop > len(self.iter_end):
            size = max(stop, 2 * len(self.iter_end))
            for name in ("iter_end", "cum_j", "cum_usd"):
                grown = np.empty(size)
                grown[:start] = getattr(self, name)[:start]
                setattr(self, name, grown)
        before_j = self.cum_j[start - 1] if start else 0.0
        before_usd = self.cum_usd[start - 1] if start else 0.0
        if stop == start + 1:  # one iteration: skip numpy's per-call overhead
            self.iter_end[start] = ends[0]
            self.cum_j[start] = before_j + j_per_token[0]
            self.cum_usd[start] = before_usd + usd_per_token[0]
            return
        self.iter_end[start:stop] = ends
        self.cum_j[start:stop] = before_j + np.cumsum(j_per_token)
        self.cum_usd[start:stop] = before_usd + np.cumsum(usd_per_token)

    def _price(self, comp, mem, other):
        """(seconds, watts per GPU) of iterations with these bound splits, under the power cap if any."""
        if self.cap_w is None:
            return comp + mem + other, self.power.mean_watts(comp, mem, other)
        # the most power-hungry iteration of a run sets its clock: at low clocks that is the most memory-bound one
        clock = min(self.power.clock_for(comp, float(m), other, self.cap_w) for m in (np.min(mem), np.max(mem)))
        comp_t, mem_t = stretch(comp, mem, clock)
        return comp_t + mem_t + other, self.power.mean_watts(comp, mem, other, clock)

    def _step(self, plan) -> None:
        dec, it, kv = self.dec, self.it, self.kv
        batch = Batch(dec.n, dec.ctx_sum(it), tuple(c for _, c in plan), tuple(r.computed for r, _ in plan))
        dt, watts = self._price(*self.perf.split(batch))
        t = self.now + dt
        energy, tokens = watts * dt * self.gpus, batch.num_tokens
        jpt, usdpt = energy / tokens, dt * self.usd_per_s / tokens
        self._record(it, (t,), (jpt,), (usdpt,))
        self.energy_j += energy
        self.busy_s += dt
        self.decodes_reserved = False
        for req, chunk in plan:
            req.prefill_j += chunk * jpt
            req.prefill_usd += chunk * usdpt
            req.computed += chunk
            if req.computed < req.target:
                continue
            self.prefilling.remove(req)
            if kv.prefix_caching and req.hash_ids:
                self._cache_prompt(req)
            req.generated += 1
            if req.first_token is None:
                req.first_token = t
            req.seg_start = it
            if req.generated >= req.output_len:
                self._finish(req, t)
            elif self.on_prefilled is not None:  # disaggregated: decoding happens elsewhere
                self._leave(req)
                self.on_prefilled(req, t, t - self.now)
            else:
                dec.add(req, it + 1)
        self.it = it + 1
        for req in dec.pop_finished(it):
            self._finish(req, t)
        self.log.add(self.now, t, 1, batch.num_seqs, tokens, kv.used, len(self.waiting), energy)
        self.now = t

    def _cache_prompt(self, req: Request) -> None:
        """Make the request's full prompt units shareable prefix-cache entries."""
        kv = self.kv
        full = req.prompt_len // self.unit_tokens
        for h in req.hash_ids[len(req.entries) : full]:
            if kv.insert(h):
                req.entries.append(h)
                req.shared_blocks += kv.unit_blocks

    def _decode_run(self, next_arrival: float | None, until: float = math.inf) -> None:
        dec, kv, j0 = self.dec, self.kv, self.it
        n = dec.n
        k = min(dec.next_finish() - j0 + 1, 1 + dec.iterations_fitting(j0 + 1, kv.free()), MAX_RUN)
        if self.scheduler.preempted:
            k = 1  # freed room may admit waiting requests next step
        ctx = dec.base_sum + n * (j0 + 1 + np.arange(k))
        times, watts = self._price(*self.perf.decode_split(n, ctx))
        ends = self.now + np.cumsum(times)
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
        self._record(j0, ends, energy / n, times * (self.usd_per_s / n))
        run_energy = float(energy.sum())
        self.energy_j += run_energy
        self.busy_s += float(times.sum())
        self.decodes_reserved = False
        self.it = j0 + k
        t = float(ends[-1])
        for req in dec.pop_finished(self.it - 1):
            self._finish(req, t)
        self.log.add(self.now, t, k, n, n, kv.used, len(self.waiting), run_energy)
        self.now = t
