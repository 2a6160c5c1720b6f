"""Live migration of decoding requests between replicas, after Llumnix (Sun et al., OSDI 2024).

Every `interval_s` the most and least loaded replicas are compared by KV load (blocks
held plus blocks their queued prompts want); when the gap exceeds `threshold`, the
source's shortest decoding request moves to the destination. `live` migration copies
the KV cache while the request keeps decoding and pauses it only for the blocks written
meanwhile (about one block) plus the link latency; `stop` pauses it for the whole copy.
The request keeps its tokens and resumes decoding on arrival, ahead of queued prompts.
"""

from __future__ import annotations

from servesim.config import KVTransferConfig, MigrationConfig
from servesim.sim.replica import Replica
from servesim.sim.request import Request


class Migrator:
    def __init__(self, cfg: MigrationConfig, link: KVTransferConfig, kv_bytes_per_token: float):
        self.cfg, self.link, self.kv_bytes = cfg, link, kv_bytes_per_token
        self.moves = 0
        self.paused_s = 0.0

    def pause(self, req: Request, block_size: int) -> float:
        tokens = req.computed if self.cfg.mode == "stop" else block_size
        return tokens * self.kv_bytes / (self.link.bandwidth_gbs * 1e9) + self.link.latency_us * 1e-6

    def step(self, replicas: list[Replica]) -> tuple[Request, Replica, float] | None:
        """Pick one move, if the imbalance calls for it: (request, destination, landing time)."""
        loads = [r.kv_load() for r in replicas]
        src = max(range(len(replicas)), key=loads.__getitem__)
        dst = min(range(len(replicas)), key=loads.__getitem__)
        if loads[src] - loads[dst] < self.cfg.threshold:
            return None
        source, dest = replicas[src], replicas[dst]
        movable = [q for q in source.running.values() if q.decoding and q.seg_start < source.it]
        if not movable:
            return None
        req = min(movable, key=lambda q: q.base)  # shortest context: cheapest to copy
        if dest.kv.free() < dest.blocks_for(req.base + source.it + 1) + dest.dec.n:
            return None
        source.migrate_out(req)
        pause = self.pause(req, source.block_size)
        self.moves += 1
        self.paused_s += pause
        return req, dest, source.now + pause
