"""Zero Bubble ZB-H1 / ZB-1p (Qi et al., ICLR 2024): split backward into B and W, fill bubbles with W.

The backward pass splits into B (gradient for the inputs, which the previous stage
waits for) and W (gradient for the weights, which nobody waits for). Run greedily: a ready
B first, then a forward while activations fit 1F1B's peak memory, else a pending W. Same
peak activation memory as 1F1B; with equal pass costs the bubble falls from 1F1B's
(p-1)(F+B+W) to (p-1)(F+B-W).
"""

from servesim.pipeline.schedule import Schedule, greedy, register


@register
class ZBH1(Schedule):
    name = "zb-h1"
    summary = "B/W split, W fills bubbles, 1F1B's activation memory"
    memory_factor = 1  # activation memory allowed per device, in units of 1F1B's peak

    def orders(self, p, v, m, costs):
        return greedy(self.placement(p, v), costs, m, [self.memory_factor * one_f_one_b_peak(p, costs)] * p)


def one_f_one_b_peak(p: int, costs) -> float:
    """1F1B's peak activation memory for the same layers on p devices: device d holds p-d micro-batches of its
    stage (its chunks' activations together)."""
    per_mb = [sum(costs.act[k] for k in range(costs.stages) if k % p == d) for d in range(p)]
    return max((p - d) * a for d, a in enumerate(per_mb))
