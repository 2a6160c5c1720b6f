"""Each request to the replica that serves its size cheapest, while that one keeps up (Mélange's idea).

Griggs et al., "Mélange: Cost Efficient Large Language Model Serving by Exploiting GPU
Heterogeneity" (arXiv 2404.14527): which GPU is cheapest per request depends on the
request's size, small requests on cheap slow GPUs and long prompts on fast ones, so a
fleet mixing them serves a workload for less than any one type. Mélange sizes the fleet
offline per size bucket; here the router places each arrival: it prices the request on
every kind of replica (GPU-seconds of its prompt's prefill and of its share of a decode
batch, times the replica's price), and sends it to the cheapest whose queue holds under
`MAX_WAIT_S` of that replica's own work, else to the least-waiting replica. Prices are
kept per replica kind and size bucket (powers of two).
"""

import math

from servesim.perf import Batch
from servesim.sim.router import Router, register

MAX_WAIT_S = 1.0  # queued work, in seconds of the replica's own speed, past which a cheaper replica is passed over
DECODE_BATCH = 32  # decodes a request shares its steps with, for its share of a decode step's cost


@register
class SizeAware(Router):
    name = "size_aware"
    weighs_speed = True

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.prices: dict[tuple[int, int, int], float] = {}

    def route(self, req, replicas) -> int:
        def wait(i: int) -> float:
            return replicas.queued_tokens(i) / replicas.unread(i).tokens_per_s

        order = sorted(range(len(replicas)), key=lambda i: (self.price(replicas.unread(i), req), i))
        for i in order:
            if wait(i) < MAX_WAIT_S:
                return i
        return min(order, key=lambda i: (wait(i), i))

    def price(self, rep, req) -> float:
        """USD to serve a request of this size on this kind of replica (sizes rounded up to powers of two)."""
        p, o = (1 << max(0, math.ceil(math.log2(max(n, 1)))) for n in (req.prompt_len, req.output_len))
        key = (id(rep.perf), p, o)
        usd = self.prices.get(key)
        if usd is None:
            perf = rep.perf
            seconds = perf.iteration_time(Batch.prefill(p)) + o * perf.iteration_time(
                Batch.decode(DECODE_BATCH, p + o // 2)) / DECODE_BATCH  # fmt: skip
            usd = self.prices[key] = seconds * rep.usd_per_s
        return usd
