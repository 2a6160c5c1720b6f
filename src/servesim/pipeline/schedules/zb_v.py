"""ZB-V (Qi et al., "Pipeline Parallelism with Controllable Memory", NeurIPS 2024).

Two model chunks per device in a V: device d holds virtual stages d and 2p-1-d, so the
first device also runs the last chunk and the backward turns around where the forward
did, with no send. Scheduled greedily (B first, F within 1F1B's activation memory, W to
fill), it reaches near-zero bubble at 1F1B's peak memory.
"""

from servesim.pipeline.ops import v_shape
from servesim.pipeline.schedule import register
from servesim.pipeline.schedules.zb_h1 import ZBH1


@register
class ZBV(ZBH1):
    name = "zb-v"
    chunks = 2
    summary = "V-shaped placement of two chunks, B/W split, 1F1B's activation memory"

    def placement(self, p, v):
        return v_shape(p)
