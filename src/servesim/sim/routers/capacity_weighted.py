"""Least load for the replica's speed: the default router of a fleet that mixes GPU types or layouts.

`least_tokens` sends a request where the fewest tokens wait, which on a mixed fleet piles
as much work on an L40S as on an H200. Here a replica's waiting tokens (KV held plus
prompt tokens still to prefill) are divided by its speed (`Replica.tokens_per_s`, from its
performance model), so each replica's queue is measured in seconds of its own work, and a
replica twice as fast takes about twice the requests.
"""

from servesim.sim.router import Router, register


@register
class CapacityWeighted(Router):
    name = "capacity_weighted"
    weighs_speed = True

    def route(self, req, replicas) -> int:
        def wait(i: int) -> tuple[float, int]:
            return (replicas.queued_tokens(i) + req.prompt_len) / replicas.unread(i).tokens_per_s, i

        return min(range(len(replicas)), key=wait)
