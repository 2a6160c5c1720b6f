"""Live migration of decoding requests between replicas, after Llumnix (Sun et al., OSDI 2024).

Every `interval_s` the most and least loaded replicas of the pool that decodes (the only
pool, or the decode pool of a disaggregated deployment) are compared by KV load (blocks
held plus blocks their queued prompts want); when the gap exceeds `threshold`, the
source's shortest decoding request moves to the destination. `live` migration copies
the KV cache while the request keeps decoding and pauses it only for the blocks written
meanwhile (about one block) plus the link latency; `stop` pauses it for the whole copy.
The request keeps its tokens and resumes decoding on arrival, ahead of queued prompts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from servesim.config import KVTransferConfig, MigrationConfig
from servesim.sim.controller import Controller
from servesim.sim.replica import Replica
from servesim.sim.sequence import Sequence

if TYPE_CHECKING:
    from servesim.sim.cluster import Cluster

Move = tuple[Sequence, Replica, float]  # a request's sequence on its source, its destination, when it lands


class Migrator(Controller):
    def __init__(self, cfg: MigrationConfig, link: KVTransferConfig, link_bytes_per_token: float):
        # bytes of one token each GPU's link carries (`KVGeometry.link_bytes_per_token`: each GPU copies its share)
        self.cfg, self.link, self.kv_bytes = cfg, link, link_bytes_per_token
        self.moves = 0
        self.paused_s = 0.0

    def pause(self, seq: Sequence, block_size: int) -> float:
        tokens = seq.computed if self.cfg.mode == "stop" else block_size
        return tokens * self.kv_bytes / (self.link.bandwidth_gbs * 1e9) + self.link.latency_us * 1e-6

    @property
    def interval_s(self) -> float:
        return self.cfg.interval_s

    def step(self, t: float, cluster: Cluster) -> None:
        """Move one request, if the imbalance calls for it."""
        pool = cluster.pools[-1]
        move = self.pick(pool.replicas, [cluster.replica_of[rep.index] for rep in pool.replicas])
        if move:
            seq, dest, at = move
            cluster.send(seq, at, cluster.stages[-1], dest)

    def pick(self, replicas: list[Replica], replica_of: list[int] | None = None) -> Move | None:
        """One move, if the imbalance calls for it: (its sequence on the source, destination, landing time).
        `replica_of` names each engine's replica: a request moves to another replica, never between the
        pipeline streams of one."""
        of = replica_of or list(range(len(replicas)))
        loads = [r.state.kv_load() for r in replicas]
        src = max(range(len(replicas)), key=loads.__getitem__)
        others = [i for i in range(len(replicas)) if of[i] != of[src]]
        if not others:
            return None
        dst = min(others, key=loads.__getitem__)
        if loads[src] - loads[dst] < self.cfg.threshold:
            return None
        source, dest = replicas[src].state, replicas[dst].state
        movable = [q for q in source.running.values() if q.decoding and q.seg_start < source.it]
        if not movable:
            return None
        seq = min(movable, key=lambda q: q.base)  # shortest context: cheapest to copy
        if dest.kv.free() < dest.blocks_for(seq.base + source.it + 1) + dest.dec.n:
            return None
        source.migrate_out(seq)
        pause = self.pause(seq, source.block_size)
        self.moves += 1
        self.paused_s += pause
        return seq, replicas[dst], source.now + pause
