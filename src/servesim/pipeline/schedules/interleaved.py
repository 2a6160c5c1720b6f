"""Interleaved 1F1B (Narayanan et al., SC 2021, Megatron-LM): each device holds v model chunks.

Virtual stage k sits on device k mod p. Micro-batches run through a device's chunks in
groups of p, depth first; the warm-up is (p-d-1)*2 + (v-1)*p chunk-forwards. The bubble
shrinks to (p-1)/(v*m) of the ideal step, at the cost of v times the sends.
"""

from servesim.errors import ServesimError
from servesim.pipeline.ops import Op
from servesim.pipeline.schedule import Schedule, backward, register


@register
class Interleaved(Schedule):
    name = "interleaved"
    chunks = 2
    fixed_chunks = False
    summary = "1F1B over v model chunks per device (Megatron's virtual pipeline)"

    def check(self, p, v, m):
        if m % p:
            raise ServesimError(f"interleaved 1F1B needs micro-batches ({m}) divisible by pp ({p}), as Megatron does")

    def orders(self, p, v, m, costs):
        total = m * v

        def stage(i: int, d: int, forward: bool) -> tuple[int, int]:
            """(micro-batch, virtual stage) of device d's i-th chunk pass."""
            chunk = (i // p) % v
            if not forward:
                chunk = v - 1 - chunk
            return (i // (p * v)) * p + i % p, chunk * p + d

        out = []
        for d in range(p):
            warm = min((p - d - 1) * 2 + (v - 1) * p, total)
            order = [Op("F", *stage(i, d, True)) for i in range(warm)]
            for i in range(total - warm):
                order += [Op("F", *stage(warm + i, d, True))] + backward(*stage(i, d, False))
            for i in range(total - warm, total):
                order += backward(*stage(i, d, False))
            out.append(order)
        return out
