"""The cheapest replica whose predicted TTFT keeps to the SLO.

A mixed fleet can meet a TTFT target on its fast replicas and still send work to slow
ones that miss it. Here each arrival's TTFT on a replica is predicted as the prompt tokens
waiting there plus its own, over the replica's prefill speed (`Replica.prefill_tokens_per_s`,
from its performance model), and the request goes to the replica cheapest per token of
work (its price over its speed) among those predicted within `MARGIN` of the scenario's TTFT
SLO; if none is, to the one predicted soonest. Needs a TTFT SLO (`--goodput ttft:MS`).
"""

from servesim.sim.router import Router, register

MARGIN = 0.8  # of the SLO: the prediction ignores the decodes that share the replica's iterations


@register
class SLOAware(Router):
    name = "slo_aware"
    weighs_speed = True
    needs_ttft_slo = True

    def route(self, req, replicas) -> int:
        def ttft(i: int) -> float:
            rep = replicas[i]
            return (rep.state.prompt_tokens_waiting() + req.prompt_len) / rep.prefill_tokens_per_s

        def usd_per_token(i: int) -> float:
            return replicas[i].usd_per_s / replicas[i].tokens_per_s

        within = [i for i in range(len(replicas)) if ttft(i) <= MARGIN * self.ttft_slo_s]
        if within:
            return min(within, key=lambda i: (usd_per_token(i), ttft(i), i))
        return min(range(len(replicas)), key=lambda i: (ttft(i), i))
