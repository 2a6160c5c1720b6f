"""Join the shortest queue measured in work: KV tokens held plus prompt tokens still to prefill."""

from servesim.sim.router import Router, register


@register
class LeastTokens(Router):
    name = "least_tokens"

    def route(self, req, replicas) -> int:
        return min(range(len(replicas)), key=replicas.queued_tokens)  # (ties: the first, as min keeps it)
