"""Weights streamed layer by layer: each decoder layer's offloaded share is read whole from its tier while the
previous layer computes (DeepSpeed ZeRO-Inference, Accelerate's offload with prefetch; `pipeline.py`)."""

from servesim.offload import register
from servesim.offload.pipeline import OffloadPolicy


@register
class Stream(OffloadPolicy):
    name = "stream"
