"""A replica's sequences, KV cache and clock: the one owner of who is waiting, prefilling and decoding.

A request handed to the replica becomes a `Sequence` here (`receive`), due at its `ready`
time. Policies read this state and change it only through its methods: `admit` (a waiting
sequence starts prefilling), `grow`, `preempt` (a running one gives its blocks back),
`start_decoding` (one whose KV cache came with it), `reserve_decodes`. The replica, having
priced an iteration, tells the state it ran (`ran`, `ran_decodes`): that is what advances
the clock (`now`, `it`) and every sequence's progress, first tokens, finishes and hand-offs.
`check()` recounts everything from scratch; tests run it after every step.

A decoding sequence's progress follows from the iteration counter `it` (see
`decoding.py`), so ending its stint of decoding (finish, preemption, hand-off,
migration) settles its generated tokens, its record of the iterations that made them,
and their share of energy and cost.
"""

from __future__ import annotations

import math
from bisect import bisect_right, insort
from collections import deque
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING

from servesim.errors import ServesimError
from servesim.sim.decoding import DecodingSet
from servesim.sim.hooks import NO_HOOKS, ReplicaHooks
from servesim.sim.kv_cache import KVCache
from servesim.sim.kv_swap import SwapCost
from servesim.sim.meter import Meter
from servesim.sim.queue import FCFSQueue, WaitingQueue
from servesim.sim.retention import Kept
from servesim.sim.sequence import Sequence

if TYPE_CHECKING:
    from servesim.sim.hooks import PolicyHooks
    from servesim.sim.request import Request

PREEMPTION_MODES = ("recompute", "swap")  # vLLM V1 recomputes; V0 could also swap to a CPU tier (kv_swap.py)


_READY = attrgetter("ready")


def _no_retention(seq: Sequence) -> float:
    return 0.0


class ReplicaState:
    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool, unit_tokens: int, max_num_seqs: int,
                 index: int = 0, meter: Meter | None = None, swap: SwapCost | None = None,
                 hooks: ReplicaHooks = NO_HOOKS):  # fmt: skip
        self.index = index  # the replica's (micro-batch stream's) index in its deployment; token records name it
        self.block_size = block_size
        self.unit_tokens = unit_tokens  # tokens per prefix-cache entry (the trace's hash unit)
        self.max_num_seqs = max_num_seqs
        self.kv = KVCache(num_blocks, block_size, prefix_caching, max(1, unit_tokens // block_size))
        self.dec = DecodingSet(block_size)
        self.incoming: deque[Sequence] = deque()  # received, due later (at `seq.ready`)
        self.waiting: WaitingQueue = FCFSQueue()  # in the policy's order (`attach`)
        self.running: dict[int, Sequence] = {}  # in admission order
        self.prefilling: list[Sequence] = []  # running sequences still computing their prompt
        self.landed = 0  # waiting sequences whose KV cache came with them
        self.landing = 0  # such sequences still incoming
        self.it = 0  # iterations run so far
        self.reserved = -1  # the iteration whose decode blocks are taken (`reserve_decodes`)
        self.now = 0.0
        self.meter = meter or Meter()
        self.hand_on, self.done = hooks.hand_on, hooks.done
        self.kept = Kept(self)  # finished program calls' contexts kept for the calls after them (retention.py)
        self.retention = _no_retention  # finished call -> seconds to keep its context (the policy's, `attach`)
        self.on_finish = None  # the policy's `finished`, where it keeps accounts
        # the CPU KV tier (preemption by swapping): its cost model, blocks held there, copy time owed
        self.swap = swap
        self.host_used = 0
        self.swap_s = 0.0  # copy time this iteration must add
        self.swap_total_s = 0.0

    def attach(self, policy: PolicyHooks) -> None:
        """What the replica's scheduling policy hooks in, once, as it is made: the waiting queue's order, how
        long a finished call's context is kept and where, and its accounts of finished requests."""
        self.waiting = policy.make_queue()
        self.retention = policy.retention
        self.on_finish = policy.finished
        self.kept.offload = policy.offload

    # ----- reading -----
    def blocks_for(self, tokens: int) -> int:
        return -(-tokens // self.block_size)

    def newest(self) -> Sequence:
        """The most recently admitted running sequence (vLLM's preemption victim)."""
        return next(reversed(self.running.values()))

    def held(self, seq: Sequence) -> int:
        """Blocks a running sequence holds, its shared prefix blocks included."""
        if seq.decoding:
            return self.blocks_for(seq.base + self.it + (self.reserved == self.it))
        return seq.blocks

    def progress(self, seq: Sequence) -> int:
        """Tokens of a running sequence whose KV is cached."""
        return seq.base + self.it if seq.decoding else seq.computed

    def made(self, seq: Sequence) -> int:
        """Output tokens a sequence has made so far (a decoding one's follow from the iteration counter)."""
        return seq.base + self.it - seq.prompt_len + 1 if seq.decoding else seq.generated

    @property
    def outstanding(self) -> int:
        """Sequences queued, running or received but not yet due."""
        return len(self.running) + len(self.waiting) + len(self.incoming)

    def kv_load(self) -> float:
        """Fraction of the KV cache held or wanted by queued prompts (Llumnix's virtual usage)."""
        wanted = sum(self.blocks_for(q.target) for q in self.waiting)
        return (self.kv.used + wanted) / self.kv.total

    def prompt_tokens_waiting(self) -> int:
        """Prompt tokens not yet computed of the requests that wait to start or to finish their prefill."""
        return sum(q.target - q.computed for q in self.waiting) + sum(q.prompt_len for q in self.incoming)

    def queued_tokens(self) -> int:
        """Work here in tokens: KV held by running sequences plus prompts not yet started."""
        waiting = sum(q.target - q.computed for q in self.waiting) + sum(q.prompt_len for q in self.incoming)
        return self.kv.used * self.block_size + waiting

    # ----- requests coming in -----
    def receive(self, req: Request, ready: float, carried: Sequence | None = None) -> None:
        """A request handed to this replica (or a program's call released here), due at `ready`; `carried` is
        its sequence on the replica it left, whose KV cache comes with it (disaggregated decode, migration)."""
        seq = Sequence(req, ready) if carried is None else \
            Sequence(req, ready, carried.computed, carried.generated, kv_ready=True)  # fmt: skip
        incoming = self.incoming
        if incoming and incoming[-1].ready > ready:  # a released call may come before later arrivals
            insort(incoming, seq, key=_READY)
        else:
            incoming.append(seq)
        self.landing += seq.kv_ready

    def receive_all(self, requests: list[Request]) -> None:
        """Requests arriving on their own, sorted by arrival (released program calls may already wait later)."""
        incoming = self.incoming
        seqs = [Sequence(req, req.arrival) for req in requests]
        if incoming and seqs and incoming[-1].ready > seqs[0].ready:
            merged = sorted([*incoming, *seqs], key=_READY)
            incoming.clear()
            incoming.extend(merged)
        else:
            incoming.extend(seqs)

    def enqueue_due(self) -> None:
        """Queue the received sequences whose time has come."""
        incoming, now = self.incoming, self.now
        while incoming and incoming[0].ready <= now:
            seq = incoming.popleft()
            self.landed += seq.kv_ready
            self.landing -= seq.kv_ready
            self.waiting.push(seq)

    # ----- the scheduler's mechanics -----
    def reserve_decodes(self, make_room: Callable[[], object]) -> None:
        """Take the blocks this iteration's decodes grow into, calling `make_room` (the policy's preemption)
        while they do not fit; once an iteration (the reservation ends with it: nothing to reset)."""
        it, dec, kv = self.it, self.dec, self.kv
        if self.reserved != it:
            need = dec.blocks_needed_at(it)
            while need > kv.free():
                make_room()
                need = dec.blocks_needed_at(it)  # a decoding victim may have been one that needed a block
            kv.allocate(need)
            self.reserved = it

    def admit(self, seq: Sequence, budget: int, chunked: bool = True) -> int:
        """Start waiting sequence `seq` with a prefill chunk of up to `budget` tokens, its cached prefix
        reused. Returns the chunk, or 0 (it stays waiting) if unchunked it exceeds the budget or its
        blocks do not fit."""
        if seq.kv_ready:  # its KV cache is here (swapped out, or transferred): it resumes, never re-prefills
            return 0
        kv, unit, req = self.kv, self.unit_tokens, seq.req
        hits, hit_units, idle = [], 0, 0
        if req.hash_ids:
            units = (seq.target - 1) // unit
            ends = req.hash_ends
            if ends is None:
                hits, idle = kv.lookup(req.hash_ids, units)
                hit_units = len(hits)
            else:  # segments: those that end within the limit
                hits, idle = kv.lookup(req.hash_ids, bisect_right(ends, units), units)
                hit_units = ends[len(hits) - 1] if hits else 0
        kept = self.kept
        loaded, parents = kept.loadable(seq, hit_units) if kept.offloaded_for else (0, None)
        hit_tokens = hit_units * unit
        todo = seq.target - hit_tokens - loaded * unit
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
            kept.load(seq, parents, loaded)
            hit_tokens += loaded * unit
        self.waiting.remove(seq)
        if kept.pinned_for:
            kept.continued(seq)
        seq.entries = hits
        seq.shared_blocks = shared
        seq.computed = hit_tokens
        seq.blocks = shared + need
        self.running[seq.id] = seq
        self.prefilling.append(seq)
        rec = seq.rec
        if rec.first_scheduled is None:
            rec.first_scheduled = self.now
            rec.cached_tokens = hit_tokens
        return chunk

    def grow(self, seq: Sequence, tokens: int) -> bool:
        """Give a prefilling sequence blocks for `tokens` more tokens, if they fit."""
        need = self.blocks_for(seq.computed + tokens) - seq.blocks
        if not self.kv.allocate(need):
            return False
        seq.blocks += need
        return True

    def start_decoding(self, seq: Sequence) -> bool:
        """Admit a waiting sequence whose KV cache came with it straight into decoding, if it fits."""
        if len(self.running) >= self.max_num_seqs or not self.kv.allocate(self.blocks_for(seq.computed + 1)):
            return False
        self.waiting.remove(seq)
        seq.kv_ready = False
        self.landed -= 1
        if seq.swapped:  # copied back from the CPU tier, in this iteration
            self.copy(seq.swapped)
            self.host_used -= seq.swapped
            seq.swapped = 0
        seq.blocks = seq.shared_blocks = 0
        seq.entries = []
        self.running[seq.id] = seq
        self.decode_from(seq, self.it)
        seq.seg_start = self.it
        return True

    def preempt(self, victim: Sequence, mode: str = "recompute") -> None:
        """Take a running sequence's blocks back; it waits again and recomputes what it had, or, swapped
        to the CPU tier (a decoding one, if the tier has room), resumes decoding when copied back."""
        if mode not in PREEMPTION_MODES:
            raise ServesimError(f"preemption mode '{mode}' is not modelled; use {', '.join(PREEMPTION_MODES)}")
        blocks = self.blocks_for(self.progress(victim))
        swap = mode == "swap" and victim.decoding and self.host_used + blocks <= self.swap.host_blocks
        self._release(victim)
        if victim.decoding:
            self._end_stint(victim)
        else:
            self.prefilling.remove(victim)
        victim.rec.preemptions += 1
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

    def take_copy_time(self) -> float:
        """The copy time the iteration being priced must add; it is then paid."""
        seconds, self.swap_s = self.swap_s, 0.0
        return seconds

    # ----- the clock: what ran -----
    def ran(self, plan: list[tuple[Sequence, int]], t: float) -> int:
        """An iteration of `plan`'s prefill chunks beside every decode ended at t: progress, first tokens,
        finishes and hand-offs. Returns the output tokens it made."""
        it, dec = self.it, self.dec
        out = dec.n  # every decode makes a token, and every prefill that completes
        for seq, chunk in plan:
            seq.computed += chunk
            if seq.computed < seq.target:
                self.cache_computed(seq)
                continue
            self.prefilled(seq)
            out += 1
            seq.generated += 1
            rec = seq.rec
            if rec.first_token is None:
                rec.first_token = t
            seq.seg_start = it
            if seq.generated >= seq.output_len:
                self.finish(seq, t)
            elif self.hand_on is not None:  # disaggregated: decoding happens elsewhere
                self.hand_off(seq)
                self.hand_on(seq, t, t - self.now)
            else:
                self.decode_from(seq, it + 1)
        self.it = it + 1
        for seq in dec.pop_finished(it):
            self.finish(seq, t)
        self.now = t
        return out

    def ran_decodes(self, k: int, t: float, grow: int) -> None:
        """k decode-only iterations ended at t (the last one's end): the decodes' growth (`grow` blocks past the
        first iteration's, `DecodingSet.blocks_needed`), and who finished."""
        j0 = self.it
        if not self.kv.allocate(grow):
            raise RuntimeError("decode run outgrew the KV cache")
        self.it = j0 + k
        for seq in self.dec.pop_finished(self.it - 1):
            self.finish(seq, t)
        self.now = t

    def idle_until(self, t: float) -> None:
        """Nothing to run before t."""
        self.now = t

    def wait_for_copies(self) -> None:
        """Nothing runs while copies to or from the CPU tier go."""
        self.now += self.take_copy_time()

    # ----- sequences going -----
    def prefilled(self, seq: Sequence) -> None:
        """A sequence's prompt is computed: it stops prefilling (the replica decides what comes next); the
        prompt's other samples start now, finding it in the prefix cache."""
        self.prefilling.remove(seq)
        self.cache_computed(seq)
        req = seq.req
        if req.samples:
            for sib in req.program.release_samples(req):
                self.receive(sib, self.now)

    def cache_computed(self, seq: Sequence) -> None:
        """After each prefill chunk: the prompt's full units computed so far become prefix-cache entries, so a
        preempted prefill finds its work again (vLLM V1 registers each full block when its chunk is scheduled,
        one iteration earlier: there a request admitted beside the chunk may already match it)."""
        if self.kv.prefix_caching and seq.req.hash_ids:
            self._cache_units(seq, min(seq.computed, seq.prompt_len) // self.unit_tokens)

    def decode_from(self, seq: Sequence, it: int) -> None:
        """Start decoding at iteration `it` (every earlier iteration is metered)."""
        self.dec.add(seq, it)
        self.meter.mark(seq)

    def finish(self, seq: Sequence, t: float) -> None:
        """A sequence is done at time t. A program's call releases the calls waiting for it; its whole
        context is cached for them, and pinned for as long as the policy's `retention` says (or until
        the next call comes)."""
        req = seq.req
        if req.children and self.kv.prefix_caching:
            self._cache_units(seq, (seq.prompt_len + seq.output_len - 1) // self.unit_tokens)
            keep_s = self.retention(seq)
            if keep_s > 0 and seq.entries:
                self.kept.keep(seq, t + keep_s)
        self.hand_off(seq)
        seq.rec.finish = t
        if req.program is not None:
            for child in req.program.done(req, t):
                # (a replayed turn comes no earlier than its recorded time, which its `arrival` holds)
                ready = child.record.arrival = max(t + child.delay, child.arrival)
                self.receive(child, ready)
        if self.on_finish is not None:
            self.on_finish(seq)
        if self.done is not None:
            self.done.append(req)

    def hand_off(self, seq: Sequence) -> None:
        """Free a sequence that is done here, closing the record of the tokens it made here."""
        self._release(seq)
        if seq.decoding:
            self._end_stint(seq)
        else:  # it made one token here, in its last prefill iteration
            seq.rec.segments.append((self.index, seq.seg_start, seq.seg_start))

    def migrate_out(self, seq: Sequence) -> None:
        """Let a decoding sequence leave with its progress (its KV cache is copied elsewhere)."""
        self._release(seq)
        seq.computed = seq.base + self.it
        self._end_stint(seq)
        seq.rec.migrations += 1

    def _release(self, seq: Sequence) -> None:
        self.kv.release(self.held(seq) - seq.shared_blocks)
        self.kv.unref(seq.entries)
        seq.entries = []
        seq.shared_blocks = seq.blocks = 0
        del self.running[seq.id]

    def _end_stint(self, seq: Sequence) -> None:
        last = self.it - 1
        seq.generated = seq.output_len - seq.finish_it + last
        self.meter.charge(seq)
        seq.rec.segments.append((self.index, seq.seg_start, last))
        self.dec.remove(seq)

    def _cache_units(self, seq: Sequence, full: int) -> None:
        """Make the sequence's first `full` hash units (its own blocks) shareable prefix-cache entries."""
        kv, req, start = self.kv, seq.req, len(seq.entries)
        ends = req.hash_ends
        if ends is None:
            new = kv.insert(req.hash_ids[start:full])
        else:  # segments that end within `full` units, each its own size
            upto = bisect_right(ends, full)
            if upto <= start:
                return
            sizes = [(ends[i] - (ends[i - 1] if i else 0)) * kv.unit_blocks for i in range(start, upto)]
            new = kv.insert(req.hash_ids[start:upto], sizes)
        seq.entries += new
        seq.shared_blocks += kv.blocks_of(new)

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
                assert generated == self.made(q)
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
        assert live == refs, "prefix-cache reference counts disagree with the running sequences"
        assert kv.used == held + kv.blocks_of(live)
        assert kv.evictable == kv.blocks_of(kv._lru)
        assert set(kv._big) <= set(kv._refs)
