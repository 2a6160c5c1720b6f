"""GPipe (Huang et al., NeurIPS 2019): every micro-batch's forward, then every backward.

All m micro-batches' activations are alive at once; the bubble is (p-1)/(m+p-1) of the step
when passes cost the same everywhere.
"""

from servesim.pipeline.ops import Op
from servesim.pipeline.schedule import Schedule, backward, register


@register
class GPipe(Schedule):
    name = "gpipe"
    summary = "all forwards, then all backwards"

    def orders(self, p, v, m, costs):
        return [[Op("F", i, d) for i in range(m)] + [op for i in range(m) for op in backward(i, d)] for d in range(p)]
