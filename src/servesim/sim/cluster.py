"""A deployment at run time: pools of replicas behind routers, driven by one event queue.

The cluster builds its pools' replicas with the factory (`pool.make_replica`), admits the
workload's requests (refusing those longer than `max_model_len`, as vLLM does, and a
program with such a call whole), and routes each arrival to a replica of the first stage:
every pool of a co-located service (GPU types mixed behind one router), or the prefill pool.
In a disaggregated deployment the first pool's replicas prefill and hand each request on;
its KV cache lands on the next pool after the transfer time (`kv_transfer.py`) and is
admitted straight into decoding. Controllers (live migration, power control, semi-PD's
SM split) act every `interval_s`.

Before an event is handled, the replicas it concerns run every iteration that starts
before it: the pools that hand requests on first (they may add earlier events, which are
then handled first), then, for a controller, all pools. A router sees its pool through
`AdvancedTo`: a replica runs up to the event when the router reads it, so a router that
reads two replicas (or none) costs two (or none), however large the pool. A replica left
behind runs later; its own arrivals cut its runs where they would have been cut anyway,
so the timeline is the same. A read of the queued tokens (`AdvancedTo.queued_tokens`) does
not even cut the decode run it falls in: the run's KV growth by then is in closed form.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from servesim.perf.profiled import describe
from servesim.sim.controller import Controller
from servesim.sim.events import ARRIVAL, CONTROL, LANDING, EventQueue
from servesim.sim.hooks import ReplicaHooks
from servesim.sim.kv_transfer import HandOff
from servesim.sim.memory import MemoryPlan
from servesim.sim.pool import PoolSpec, make_replica
from servesim.sim.replica import Replica, ReplicaReport
from servesim.sim.request import Request
from servesim.sim.router import Router, make_router
from servesim.sim.sequence import Sequence as Seq


@dataclass
class Stage:
    """Replicas behind one router: every pool of a co-located service (of one GPU type or several), or the
    prefill or the decode pool of a disaggregated one. The router sees the `active` ones (all, unless an
    autoscaler starts and stops them); arrivals with none active wait in `held`."""

    replicas: list[Replica]
    router: Router
    active: list[Replica] = field(default_factory=list)
    held: list[Request] = field(default_factory=list)


@dataclass
class Pool:
    """A pool at run time: its replicas, and how it hands requests on to the next stage (if it does)."""

    name: str
    replicas: list[Replica]
    hand_off: HandOff | None = None
    next: Stage | None = field(default=None, repr=False)

    def advance(self, t: float) -> None:
        for rep in self.replicas:
            rep.advance(t)


class AdvancedTo(Sequence):
    """A pool's replicas as they stand at time t: each runs up to t when it is first read."""

    def __init__(self, replicas: list[Replica], t: float):
        self.replicas, self.t = replicas, t

    def __len__(self) -> int:
        return len(self.replicas)

    def __getitem__(self, i: int) -> Replica:
        rep = self.replicas[i]
        rep.advance(self.t)
        return rep

    def unread(self, i: int) -> Replica:
        """Replica i, not run up to t: for what running does not change (its speed, its price)."""
        return self.replicas[i]

    def queued_tokens(self, i: int) -> int:
        """Replica i's `state.queued_tokens()` at t, read without cutting its decode run there."""
        return self.replicas[i].queued_tokens_at(self.t)


@dataclass
class ClusterReport:
    """What the deployment's run amounted to, for the result (`run.py`). `replicas`, `memories`, `replica_of`
    and `engine_ids` have one entry per engine: a replica, or one micro-batch stream (PP) of one data-parallel
    attention rank (DP) of it; `replica_of` says which replica each engine is of, `engine_ids` which rank and
    stream it is there (only those the layout has), and `pools` lists replicas by number."""

    replicas: list[ReplicaReport]
    memories: list[MemoryPlan]
    replica_of: list[int]
    engine_ids: list[dict]
    pools: dict[str, list[int]]  # pool name -> its replicas (where there are several pools)
    perf_model: str  # how iterations were priced
    controllers: dict  # what each controller with figures to report did, by its name
    notes: list[str]  # what controllers did, in words
    pool_info: dict[str, dict] = field(default_factory=dict)  # pool name -> its GPU and layout (several pools)

    @property
    def replica_count(self) -> int:
        return self.replica_of[-1] + 1 if self.replica_of else 0

    def engines_of(self, replica: int) -> range:
        """A replica's engines (its streams are numbered together)."""
        return range(bisect_left(self.replica_of, replica), bisect_right(self.replica_of, replica))

    def engine_label(self, engine: int) -> str:
        """"replica 3", or "replica 3 rank 2 stream 1" for one of a replica's engines, after its pool's name where
        there are several ("a100 replica 3")."""
        replica = self.replica_of[engine]
        pool = [name for name, ids in self.pools.items() if replica in ids]
        names = (f"{key} {value}" for key, value in self.engine_ids[engine].items())
        return " ".join([*pool, f"replica {replica}", *names])

    @property
    def prefix_hit_rate(self) -> float | None:
        queries = sum(r.prefix_query_blocks for r in self.replicas)
        return sum(r.prefix_hit_blocks for r in self.replicas) / queries if queries else None

    @classmethod
    def join(cls, reports: list[ClusterReport]) -> ClusterReport:
        """The reports of independent groups as one, replicas numbered group after group (partitions: one pool;
        a controller's figures, each group's own autoscaler's, added up over the groups)."""
        from servesim.sim.autoscale import join_figures

        first, per = reports[0], reports[0].replica_count
        replica_of = [g * per + r for g, rep in enumerate(reports) for r in rep.replica_of]
        # (an autoscaler is the only controller partitions allow: the others see the whole fleet)
        figures = {name: join_figures([rep.controllers[name] for rep in reports]) for name in first.controllers}
        return cls([r for rep in reports for r in rep.replicas], [m for rep in reports for m in rep.memories],
                   replica_of, [e for rep in reports for e in rep.engine_ids], {}, first.perf_model, figures,
                   first.notes)  # fmt: skip


class Cluster:
    def __init__(self, pools: list[PoolSpec], controllers: list[Controller] | None = None, max_len: float = math.inf,
                 grouped: bool = False, seed: int = 0, done: list | None = None,
                 serving: int | None = None):  # fmt: skip
        """The pools' replicas, numbered across pools in order, each stage's pools behind one router (arrivals go
        to stage 0, a pool that hands requests on sends them to the next stage); `max_len` is the longest request
        admitted, `grouped` says requests come in programs (refused whole), `done` collects finished and refused
        requests (a streamed run)."""
        self.specs = pools
        self.controllers = controllers or []
        self.max_len, self.grouped, self.done = max_len, grouped, done
        self.pools: list[Pool] = []
        self.replica_of: list[int] = []  # each engine's replica (with PP or DP attention, a replica runs several)
        self.engine_ids: list[dict] = []  # each engine's attention rank and stream in its replica, where several
        first, replica = 0, 0
        for k, spec in enumerate(pools):
            hands_on = spec.hand_off is not None and any(p.stage > spec.stage for p in pools)
            replicas = [make_replica(spec, first + i, ReplicaHooks(self._hand_on(k, i) if hands_on else None, done))
                        for i in range(spec.engines)]  # fmt: skip
            lay = spec.layout
            self.replica_of += [replica + i // lay.engines for i in range(spec.engines)]
            self.engine_ids += [{**({"rank": i % lay.engines // lay.pp} if lay.dp > 1 else {}),
                                 **({"stream": i % lay.pp} if lay.pp > 1 else {})} for i in range(spec.engines)]
            first, replica = first + spec.engines, replica + spec.replicas
            self.pools.append(Pool(spec.name, replicas, spec.hand_off))
        self.stages: list[Stage] = []  # each stage's pools behind one router (the first pool's of it)
        for spec, pool in zip(pools, self.pools, strict=True):
            if spec.stage == len(self.stages):
                self.stages.append(Stage([], make_router(spec.router, seed, spec.ttft_slo_s)))
            self.stages[spec.stage].replicas += pool.replicas
        for spec, pool in zip(pools, self.pools, strict=True):
            if pool.hand_off is not None and spec.stage + 1 < len(self.stages):
                pool.next = self.stages[spec.stage + 1]
        for stage in self.stages:
            stage.active = list(stage.replicas)
        if serving is not None:  # an autoscaled fleet: the first `serving` replicas billed and serving at the start
            front = self.stages[0]
            front.active = front.replicas[:serving]
            for rep in front.replicas:
                rep.bill_by_windows()
            for rep in front.active:
                rep.provision(0.0)
        self.replicas = [rep for pool in self.pools for rep in pool.replicas]
        self.events = EventQueue()
        self._pending = 0  # arrivals and landings not yet handled
        self._more = False  # chunks of requests still to come

    # ----- admission -----
    def admit(self, chunk: list[Request]) -> list[Request]:
        """The requests of a chunk that arrive on their own and are accepted. A request longer than
        `max_model_len` is refused (vLLM refuses it), and a program with such a call is refused whole; a
        program's later calls are released as it runs."""
        ok, refused = [], []
        for r in chunk:
            if r.prompt_len + r.output_len > self.max_len:
                refused.append(r)
            elif not r.parents:
                ok.append(r)
        if refused and self.grouped:
            programs = {r.program for r in refused}
            refused = [c for prog in programs for c in prog.calls]
            ok = [r for r in ok if r.program not in programs]
        for r in refused:
            r.record.rejected = True
        if self.done is not None:
            self.done += refused
        return ok

    # ----- serving -----
    def run(self, requests: list[Request]) -> None:
        """Serve `requests` (sorted by arrival) to completion."""
        self.serve([requests])

    def serve(self, chunks: Iterable[list[Request]], after: Callable[[], None] | None = None) -> None:
        """Serve chunks of requests (sorted by arrival, each after the one before) to completion, admitting
        each chunk only when the simulation reaches its first arrival; `after` is called once the events
        before the next chunk are handled (a streamed run collects what finished)."""
        chunks = (c for c in (self.admit(c) for c in chunks) if c)
        chunk = next(chunks, [])
        t0 = chunk[0].arrival if chunk else 0.0
        for ctl in self.controllers:
            self.events.schedule(ctl.first_check(t0), CONTROL, self._control, ctl)
        alone = len(self.replicas) == 1 and not self.controllers  # no events needed
        while True:
            nxt = next(chunks, None)
            self._more = nxt is not None
            until = nxt[0].arrival if nxt else math.inf
            if alone:
                self.replicas[0].run(chunk, until)
            else:
                self._feed(chunk, until)
            if after is not None:
                after()
            if nxt is None:
                return
            chunk = nxt

    def _feed(self, requests: list[Request], until: float) -> None:
        """Schedule the arrivals, then handle every event before `until` (all of them if it is inf)."""
        events = self.events
        events.extend((r.arrival, ARRIVAL, self._arrive, r) for r in requests)
        self._pending += len(requests)
        sources = [p for p in self.pools if p.next is not None]
        while True:
            t = events.peek()
            if t >= until:  # every replica up to the next chunk (to completion after the last), so what
                if not self._drain(until):  # finished is there to collect even where no router reads
                    return
                continue
            if sources:
                for pool in sources:  # they may hand on requests whose KV cache lands before t
                    pool.advance(t)
                if events.peek() < t:
                    continue
            t, handler, arg = events.pop()
            handler(t, arg)

    def in_flight(self) -> list[Seq]:
        """Requests between replicas: their KV cache has left one and not yet landed on the next (their
        sequences on the replicas they left)."""
        return [arg[0] for arg in self.events.args(LANDING)]

    def _drain(self, until: float = math.inf) -> bool:
        """Run every pool up to `until`, upstream first; True if that scheduled events before it."""
        for pool in self.pools:
            pool.advance(until)
            if self.events.peek() < until:
                return True
        return False

    # ----- handlers -----
    def _arrive(self, t: float, req: Request) -> None:
        self._pending -= 1
        front = self.stages[0]
        if not front.active:  # nothing serving (an autoscaled fleet at zero): wait for a replica to start
            front.held.append(req)
            for ctl in self.controllers:
                ctl.on_held(t, self)
            return
        front.active[front.router.route(req, AdvancedTo(front.active, t))].receive(req, req.arrival)

    # ----- replicas started and stopped (sim/autoscale.py) -----
    def when_ready(self, rep: Replica, t: float, ready: Callable) -> None:
        """Call ready(t, rep, cluster) at t (a started replica's cold start is over)."""
        self.events.schedule(t, CONTROL, lambda at, arg: ready(at, arg, self), rep)

    def activate(self, rep: Replica, t: float) -> list[Request]:
        """Let the front stage's router send requests to `rep` from t on; the arrivals that waited for a replica
        go through the router now. Returns them."""
        front = self.stages[0]
        rep.advance(t)
        front.active.append(rep)
        held, front.held = front.held, []
        for req in held:
            front.active[front.router.route(req, AdvancedTo(front.active, t))].receive(req, t)
        return held

    def drain(self, rep: Replica) -> None:
        """Send `rep` no new requests; it finishes those it holds."""
        self.stages[0].active.remove(rep)

    def _hand_on(self, k: int, i: int) -> Callable[[Seq, float, float], None]:
        """What replica i of pool k does with a request whose prompt it computed: send it to the next stage (to its
        replica i where the pools are paired) once its KV cache has moved."""

        def hand_on(seq: Seq, t: float, last_iteration_s: float) -> None:
            pool = self.pools[k]
            seq.rec.transfer_s = delay = pool.hand_off.seconds(seq.prompt_len, last_iteration_s)
            self.send(seq, t + delay, pool.next, pool.next.replicas[i] if pool.hand_off.paired else None)

        return hand_on

    def send(self, seq: Seq, t: float, stage: Stage, replica: Replica | None = None) -> None:
        """Deliver a request, its KV cache with it, at time t: to `replica`, or where the stage's router sends it.
        `seq` is its sequence on the replica it left, carrying its progress."""
        self._pending += 1
        self.events.schedule(t, LANDING, self._land, (seq, stage, replica))

    def _land(self, t: float, arg) -> None:
        seq, stage, replica = arg
        self._pending -= 1
        if replica is None:
            replica = stage.replicas[stage.router.route(seq.req, AdvancedTo(stage.replicas, t))]
        replica.receive(seq.req, t, seq)

    def _control(self, t: float, ctl: Controller) -> None:
        for pool in self.pools:
            pool.advance(t)
        ctl.step(t, self)
        if self._pending or self._more or self.stages[0].held or any(rep.outstanding for rep in self.replicas):
            self.events.schedule(t + ctl.interval_s, CONTROL, self._control, ctl)

    # ----- after the run -----
    @property
    def pool_members(self) -> dict[str, list[int]]:
        """Pool name -> its replicas, where there are several pools."""
        if len(self.pools) == 1:
            return {}
        of = self.replica_of
        return {p.name: sorted({of[r.index] for r in p.replicas}) for p in self.pools}

    def report(self) -> ClusterReport:
        end = max((rep.now for rep in self.replicas), default=0.0)
        figures = {}
        for ctl in self.controllers:
            figures.update(ctl.report(end))
        return ClusterReport(
            [rep.report() for rep in self.replicas],
            [spec.memory for spec in self.specs for _ in range(spec.engines)],
            list(self.replica_of),
            list(self.engine_ids),
            self.pool_members,
            " / ".join(sorted({describe(rep.perf) for rep in self.replicas})),
            figures,
            [note for ctl in self.controllers for note in ctl.notes()] + self._pricing_notes(),
            {spec.name: {"gpu": spec.gpu.name, "layout": spec.layout.label()} for spec in self.specs}
            if len(self.specs) > 1 else {},
        )  # fmt: skip

    def _pricing_notes(self) -> list[str]:
        """What the pools' performance models priced past their measurements (long prompts, unmeasured MoE
        splits or collectives), once each."""
        notes = []
        for spec in self.specs:
            notes += [n for n in getattr(spec.perf, "outside", ()) if n not in notes]
            if spec.model.is_moe and (routing := _routing_note(spec.layout.ep, spec.engine.expert_skew)) not in notes:
                notes.append(routing)
        return notes


def _routing_note(ep: int, skew: float) -> str:
    """How a pool's MoE routing is priced: uniform over the experts, or under EP with its busiest group's load."""
    if ep > 1:
        return (f"MoE routing: tokens spread uniformly over the experts, the busiest of the EP{ep} groups taking "
                f"{skew:g}x the mean load (--expert-skew)")
    unused = f"; --expert-skew {skew:g} acts only under EP (--ep)" if skew > 1 else ""
    return f"MoE routing: tokens spread uniformly over the experts, every GPU holding a slice of each{unused}"
