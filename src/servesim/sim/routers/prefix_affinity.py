"""Prefix-cache affinity: the replica caching the longest prefix of the request, within a load cap.

A replica is eligible when its outstanding requests are at most `LOAD_CAP` times the
least loaded replica's plus a small slack; among eligible replicas the longest cached
prefix wins, ties going to the lighter one. Requests without hash ids go to the least
loaded replica (as in prefix-aware routers such as SGLang's and Mooncake's).
"""

from servesim.sim.router import Router, register

LOAD_CAP = 1.5
SLACK = 4


@register
class PrefixAffinity(Router):
    name = "prefix_affinity"

    def route(self, req, replicas) -> int:
        loads = [r.outstanding for r in replicas]
        limit = LOAD_CAP * min(loads) + SLACK
        best, best_key = 0, None
        for i, rep in enumerate(replicas):
            if loads[i] > limit:
                continue
            hit = rep.state.kv.cached_prefix_units(req.hash_ids, req.hash_ends) if req.hash_ids else 0
            key = (-hit, loads[i], i)
            if best_key is None or key < best_key:
                best, best_key = i, key
        return best
