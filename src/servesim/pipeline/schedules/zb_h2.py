"""Zero Bubble ZB-H2 / ZB-2p (Qi et al., ICLR 2024): ZB-H1 with twice 1F1B's activation memory.

More forwards in flight let the warm-up fill the pipeline's start with work, so with
passes of equal cost the bubble nearly vanishes; the paper reports up to 31% more
throughput than 1F1B at relaxed memory (up to 23% for ZB-H1 at equal memory).
"""

from servesim.pipeline.schedule import register
from servesim.pipeline.schedules.zb_h1 import ZBH1


@register
class ZBH2(ZBH1):
    name = "zb-h2"
    summary = "B/W split, W fills bubbles, twice 1F1B's activation memory"
    memory_factor = 2
