"""1F1B (PipeDream-Flush, Narayanan et al., SC 2021): a few forwards, then one forward, one backward.

Stage s warms up with p-s-1 forwards, alternates forward and backward, and drains the
rest, so at most p-s micro-batches are in flight: GPipe's bubble with memory of p
micro-batches instead of m.
"""

from servesim.pipeline.ops import Op
from servesim.pipeline.schedule import Schedule, backward, register


@register
class OneFOneB(Schedule):
    name = "1f1b"
    summary = "warm-up forwards, then alternate one forward and one backward"

    def orders(self, p, v, m, costs):
        out = []
        for d in range(p):
            warm = min(p - d - 1, m)
            order = [Op("F", i, d) for i in range(warm)]
            for i in range(m - warm):
                order += [Op("F", warm + i, d)] + backward(i, d)
            for i in range(m - warm, m):
                order += backward(i, d)
            out.append(order)
        return out
