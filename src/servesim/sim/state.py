"""A replica's requests and KV cache: the one owner of who is waiting, prefilling and decoding.

Policies read this state and change it only through its methods: `admit` (a waiting
request starts prefilling), `preempt` (a running request gives its blocks back),
`start_decoding` (a request whose KV cache was transferred in), and the replica's own
`prefilled`, `finish`, `hand_off` and `migrate_out`. `check()` recounts everything from
scratch; tests run it after every step.

A decoding request's progress follows from the iteration counter `it` (see
`decoding.py`), so ending its stint of decoding (finish, preemption, hand-off,
migration) settles its generated tokens, its record of the iterations that made them,
and their share of energy and cost.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections import deque
from operator import attrgetter

from servesim.errors import ServesimError
from servesim.sim.decoding import DecodingSet
from servesim.sim.kv_cache import KVCache
from servesim.sim.kv_swap import SwapCost
from servesim.sim.meter import Meter
from servesim.sim.queue import FCFSQueue, WaitingQueue
from servesim.sim.request import Request
from servesim.sim.retention import Kept

PREEMPTION_MODES = ("recompute", "swap")  # vLLM V1 recomputes; V0 could also swap to a CPU tier (kv_swap.py)


_READY = attrgetter("ready")


def _NO_RETENTION(req: Request) -> float:
    return 0.0


class ReplicaState:
    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool, unit_tokens: int, max_num_seqs: int,
                 waiting: WaitingQueue | None = None, rid: int = 0, meter: Meter | None = None):  # fmt: skip
        self.rid = rid  # the replica's index in its deployment; token records name it
        self.block_size = block_size
        self.unit_tokens = unit_tokens  # tokens per prefix-cache entry (the trace's hash unit)
        self.max_num_seqs = max_num_seqs
        self.kv = KVCache(num_blocks, block_size, prefix_caching, max(1, unit_tokens // block_size))
        self.dec = DecodingSet(block_size)
        self.incoming: deque[Request] = deque()  # handed over, arriving later (at `req.ready`)
        self.waiting = waiting if waiting is not None else FCFSQueue()
        self.running: dict[int, Request] = {}  # in admission order
        self.prefilling: list[Request] = []  # running requests still computing their prompt
        self.landed = 0  # waiting requests whose KV cache came with them
        self.landing = 0  # such requests still incoming
        self.it = 0  # iterations run so far
        self.decodes_reserved = False  # this iteration's decode blocks are already taken
        self.now = 0.0
        self.meter = meter or Meter()
        self.done: list[Request] | None = None  # a streamed run collects finished requests here
        self.kept = Kept(self)  # finished program calls' contexts kept for the calls after them (retention.py)
        self.retention = _NO_RETENTION  # finished call -> seconds to keep its context (set by the policy)
        self.on_finish = None  # the policy's `finished`, where it has one
        # the CPU KV tier (preemption by swapping): its cost model, blocks held there, copy time owed
        self.swap: SwapCost | None = None
        self.host_used = 0
        self.swap_s = 0.0  # copy time this iteration must add
        self.swap_total_s = 0.0

    # ----- reading -----
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def newest(self) -> Request:
        """The most recently admitted running request (vLLM's preemption victim)."""
        return next(reversed(self.running.values()))

    def held(self, req: Request) -> int:
        """Blocks a running request holds, its shared prefix blocks included."""
        if req.decoding:
            return self.blocks_for(req.base + self.it + self.decodes_reserved)
        return req.blocks

    def progress(self, req: Request) -> int:
        """Tokens of a running request whose KV is cached."""
        return req.base + self.it if req.decoding else req.computed

    @property
    def outstanding(self) -> int:
        """Requests queued, running or handed over but not yet arrived."""
        return len(self.running) + len(self.waiting) + len(self.incoming)

    def kv_load(self) -> float:
        """Fraction of the KV cache held or wanted by queued prompts (Llumnix's virtual usage)."""
        wanted = sum(self.blocks_for(r.target) for r in self.waiting)
        return (self.kv.used + wanted) / self.kv.total

    def queued_tokens(self) -> int:
        """Work here in tokens: KV held by running requests plus prompts not yet started."""
        waiting = sum(r.target - r.computed for r in self.waiting) + sum(r.prompt_len for r in self.incoming)
        return self.kv.used * self.block_size + waiting

    # ----- changing -----
    def receive(self, req: Request) -> None:
        """A request handed over (or a program's call released), arriving at `req.ready`."""
        incoming = self.incoming
        if incoming and incoming[-1].ready > req.ready:  # a released call may come before later arrivals
            insort(incoming, req, key=_READY)
        else:
            incoming.append(req)
        self.landing += req.kv_ready

    def receive_all(self, requests: list[Request]) -> None:
        """Requests handed over together, sorted by `ready` (released program calls may already wait later)."""
        incoming = self.incoming
        if incoming and requests and incoming[-1].ready > requests[0].ready:
            merged = sorted([*incoming, *requests], key=_READY)
            incoming.clear()
            incoming.extend(merged)
        else:
            incoming.extend(requests)
        self.landing += sum(r.kv_ready for r in requests)

    def arrive(self) -> None:
        """Queue the handed-over requests whose time has come."""
        incoming, now = self.incoming, self.now
        while incoming and incoming[0].ready <= now:
            req = incoming.popleft()
            self.landed += req.kv_ready
            self.landing -= req.kv_ready
            self.waiting.push(req)

    def admit(self, req: Request, budget: int, chunked: bool = True) -> int:
        """Start waiting request `req` with a prefill chunk of up to `budget` tokens, its cached prefix
        reused. Returns the chunk, or 0 (it stays waiting) if unchunked it exceeds the budget or its
        blocks do not fit."""
        if req.kv_ready:  # its KV cache is here (swapped out, or transferred): it resumes, never re-prefills
            return 0
        kv, unit, ends = self.kv, self.unit_tokens, req.hash_ends
        hits, hit_units, idle = [], 0, 0
        if req.hash_ids:
            units = (req.target - 1) // unit
            if ends is None:
                hits, idle = kv.lookup(req.hash_ids, units)
                hit_units = len(hits)
            else:  # segments: those that end within the limit
                hits, idle = kv.lookup(req.hash_ids, bisect_right(ends, units), units)
                hit_units = ends[len(hits) - 1] if hits else 0
        kept = self.kept
        loaded, parents = kept.loadable(req, hit_units) if kept.offloaded_for else (0, None)
        hit_tokens = hit_units * unit
        todo = req.target - hit_tokens - loaded * unit
        if not chunked and todo > budget:
            return 0
        chunk = min(todo, budget)
        shared = hit_units * kv.unit_blocks
        need = self.blocks_for(hit_tokens + loaded * unit + chunk) - shared
        if need + idle > kv.free():  # (referencing the idle hits takes them from the free blocks)
            return 0
        kv.take(hits)
        kv.allocate(need)
        if parents is not None:  # its context comes back from the CPU tier
            kept.load(req, parents, loaded)
            hit_tokens += loaded * unit
        self.waiting.remove(req)
        if kept.pinned_for:
            kept.continued(req)
        req.entries = hits
        req.shared_blocks = shared
        req.computed = hit_tokens
        req.blocks = shared + need
        self.running[req.id] = req
        self.prefilling.append(req)
        if req.first_scheduled is None:
            req.first_scheduled = self.now
            req.cached_tokens = hit_tokens
        return chunk

    def grow(self, req: Request, tokens: int) -> bool:
        """Give a prefilling request blocks for `tokens` more tokens, if they fit."""
        need = self.blocks_for(req.computed + tokens) - req.blocks
        if not self.kv.allocate(need):
            return False
        req.blocks += need
        return True

    def start_decoding(self, req: Request) -> bool:
        """Admit a waiting request whose KV cache came with it straight into decoding, if it fits."""
        if len(self.running) >= self.max_num_seqs or not self.kv.allocate(self.blocks_for(req.computed + 1)):
            return False
        self.waiting.remove(req)
        req.kv_ready = False
        self.landed -= 1
        if req.swapped:  # copied back from the CPU tier, in this iteration
            self.copy(req.swapped)
            self.host_used -= req.swapped
            req.swapped = 0
        req.blocks = req.shared_blocks = 0
        req.entries = []
        self.running[req.id] = req
        self.decode_from(req, self.it)
        req.seg_start = self.it
        return True

    def preempt(self, victim: Request, mode: str = "recompute") -> None:
        """Take a running request's blocks back; it waits again and recomputes what it had, or, swapped
        to the CPU tier (a decoding request, if the tier has room), resumes decoding when copied back."""
        if mode not in PREEMPTION_MODES:
            raise ServesimError(f"preemption mode '{mode}' is not modelled; use {', '.join(PREEMPTION_MODES)}")
        blocks = self.blocks_for(self.progress(victim))
        swap = mode == "swap" and victim.decoding and self.host_used + blocks <= self.swap.host_blocks
        self._release(victim)
        if victim.decoding:
            self._end_stint(victim)
        else:
            self.prefilling.remove(victim)
        victim.preemptions += 1
        if swap:
            victim.computed = victim.prompt_len + victim.generated - 1  # (its newest token is not cached yet)
            victim.swapped, victim.kv_ready = blocks, True
            self.host_used += blocks
            self.landed += 1
            self.copy(blocks)
        else:
            victim.computed = 0
        self.waiting.requeue(victim)

    def copy(self, blocks: int) -> None:
        """Owe the time of copying `blocks` to or from the CPU tier to this iteration."""
        seconds = self.swap(blocks)
        self.swap_s += seconds
        self.swap_total_s += seconds

    def prefilled(self, req: Request) -> None:
        """A request's prompt is computed: it stops prefilling (the replica decides what comes next); its
        parallel samples start now, finding the prompt in the prefix cache."""
        self.prefilling.remove(req)
        self.cache_computed(req)
        if req.samples:
            for sib in req.samples:
                sib.pending, sib.ready = 0, self.now
                self.receive(sib)
            req.samples = ()

    def cache_computed(self, req: Request) -> None:
        """After each prefill chunk: the prompt's full units computed so far become prefix-cache entries, so a
        preempted prefill finds its work again (vLLM V1 registers each full block when its chunk is scheduled,
        one iteration earlier: there a request admitted beside the chunk may already match it)."""
        if self.kv.prefix_caching and req.hash_ids:
            self._cache_units(req, min(req.computed, req.prompt_len) // self.unit_tokens)

    def decode_from(self, req: Request, it: int) -> None:
        """Start decoding at iteration `it` (every earlier iteration is metered)."""
        self.dec.add(req, it)
        self.meter.mark(req)

    def finish(self, req: Request, t: float) -> None:
        """A request is done at time t. A program's call releases the calls waiting for it; its whole
        context is cached for them, and pinned for as long as the policy's `retention` says (or until
        the next call comes)."""
        if req.children and self.kv.prefix_caching:
            self._cache_units(req, (req.prompt_len + req.output_len - 1) // self.unit_tokens)
            keep_s = self.retention(req)
            if keep_s > 0 and req.entries:
                self.kept.keep(req, t + keep_s)
        self.hand_off(req)
        req.finish = t
        if req.program is not None:
            req.program.done(req, t)
            for child in req.children:
                child.pending -= 1
                if not child.pending:
                    # (a replayed turn comes no earlier than its recorded time, which `arrival` holds)
                    child.arrival = child.ready = max(t + child.delay, child.arrival)
                    self.receive(child)
        if self.on_finish is not None:
            self.on_finish(req)
        if self.done is not None:
            self.done.append(req)

    def hand_off(self, req: Request) -> None:
        """Free a request that is done here, closing the record of the tokens it made here."""
        self._release(req)
        if req.decoding:
            self._end_stint(req)
        else:  # it made one token here, in its last prefill iteration
            req.segments.append((self.rid, req.seg_start, req.seg_start))

    def migrate_out(self, req: Request) -> None:
        """Let a decoding request leave with its progress (its KV cache is copied elsewhere)."""
        self._release(req)
        req.computed = req.base + self.it
        self._end_stint(req)
        req.migrations += 1

    def _release(self, req: Request) -> None:
        self.kv.release(self.held(req) - req.shared_blocks)
        self.kv.unref(req.entries)
        req.entries = []
        req.shared_blocks = req.blocks = 0
        del self.running[req.id]

    def _end_stint(self, req: Request) -> None:
        last = self.it - 1
        req.generated = req.output_len - req.finish_it + last
        self.meter.charge(req)
        req.segments.append((self.rid, req.seg_start, last))
        self.dec.remove(req)

    def _cache_units(self, req: Request, full: int) -> None:
        """Make the request's first `full` hash units (its own blocks) shareable prefix-cache entries."""
        kv, ends, start = self.kv, req.hash_ends, len(req.entries)
        if ends is None:
            new = kv.insert(req.hash_ids[start:full])
        else:  # segments that end within `full` units, each its own size
            upto = bisect_right(ends, full)
            if upto <= start:
                return
            sizes = [(ends[i] - (ends[i - 1] if i else 0)) * kv.unit_blocks for i in range(start, upto)]
            new = kv.insert(req.hash_ids[start:upto], sizes)
        req.entries += new
        req.shared_blocks += kv.blocks_of(new)

    # ----- the invariant -----
    def check(self) -> None:
        """Recount blocks, prefix references and the decode aggregate from scratch; raise if they disagree."""
        kv, dec, B = self.kv, self.dec, self.block_size
        assert 0 <= kv.used <= kv.total
        assert kv.used + kv.evictable <= kv.total
        assert len(self.running) <= self.max_num_seqs
        decoding = [q for q in self.running.values() if q.decoding]
        assert [q for q in self.running.values() if not q.decoding] == self.prefilling
        assert not any(q.id in self.running for q in self.waiting)
        assert self.landed == sum(q.kv_ready for q in self.waiting)
        assert self.host_used == sum(q.swapped for q in self.waiting) + sum(b for _, b in self.kept.offloaded.values())
        assert self.swap is None or self.host_used <= self.swap.host_blocks
        assert self.landing == sum(q.kv_ready for q in self.incoming)
        assert dec.n == len(decoding)
        assert dec.base_sum == sum(q.base for q in decoding)
        assert dec.phase == [sum(1 for q in decoding if q.base % B == p) for p in range(B)]
        held, refs = 0, {}
        for q in self.running.values():
            blocks, computed = self.held(q), self.progress(q)
            assert blocks >= math.ceil(computed / B)
            if q.decoding:  # generated tokens follow from the iteration counter, like computed ones
                generated = q.output_len - q.finish_it + self.it - 1
                assert 1 <= generated < q.output_len
                assert computed == q.prompt_len + generated - 1  # the newest token is not cached yet
            else:
                assert computed < q.target
            held += blocks - q.shared_blocks
            for h in q.entries:
                refs[h] = refs.get(h, 0) + 1
        for entries in self.kept.pins.values():
            for h in entries:
                refs[h] = refs.get(h, 0) + 1
        live = {h: c for h, c in kv._refs.items() if c > 0}
        assert live == refs, "prefix-cache reference counts disagree with the running requests"
        assert kv.used == held + kv.blocks_of(live)
        assert kv.evictable == kv.blocks_of(kv._lru)
        assert set(kv._big) <= set(kv._refs)
