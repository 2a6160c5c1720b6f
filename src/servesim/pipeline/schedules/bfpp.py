"""Breadth-first pipeline parallelism (Lamy-Poirier, 2022): looping placement, one chunk at a time.

Each device holds v chunks (virtual stage k on device k mod p) and pushes every
micro-batch through a chunk before the next, forwards then backwards, GPipe-style. With
several chunks the pipeline fills after one chunk's worth of work, so the bubble shrinks
as with interleaving, and sends overlap well; all micro-batches' activations stay alive.
"""

from servesim.pipeline.ops import Op
from servesim.pipeline.schedule import Schedule, backward, register


@register
class BreadthFirst(Schedule):
    name = "bfpp"
    chunks = 2
    fixed_chunks = False
    summary = "looping placement, all micro-batches through one chunk before the next"

    def orders(self, p, v, m, costs):
        out = []
        for d in range(p):
            order = [Op("F", i, c * p + d) for c in range(v) for i in range(m)]
            order += [op for c in reversed(range(v)) for i in range(m) for op in backward(i, c * p + d)]
            out.append(order)
        return out
