"""FlexGen's block schedule (Sheng et al., ICML 2023, section 4.1): each layer's weights are loaded once for a
block of micro-batches of `gpu_batch` requests and used by all of them before the next layer, so a larger block
amortises every load; attention next to an offloaded KV cache (on the CPU) overlaps the GPU's work on the next
micro-batch, so a layer takes the longer of the two, not their sum."""

from servesim.offload import register
from servesim.offload.pipeline import OffloadPolicy
from servesim.perf.batch import Batch


@register
class FlexGen(OffloadPolicy):
    name = "flexgen"
    options = ("gpu_batch",)

    def device_split(self, inner, batch: Batch) -> tuple[float, float, float]:
        g, n = self.cfg.gpu_batch, batch.num_decodes
        if g is None or batch.prefill_lens or n <= g:
            return inner.split(batch)
        full, rest = divmod(n, g)
        per = batch.decode_ctx_sum / n  # mean context, the same in every micro-batch
        parts = [(full, Batch(g, round(g * per), decode_q=batch.decode_q))]
        if rest:
            parts.append((1, Batch(rest, round(rest * per), decode_q=batch.decode_q)))
        splits = [(k, inner.split(b)) for k, b in parts]
        return tuple(sum(k * s[i] for k, s in splits) for i in range(3))

    def layer_compute(self, device: float, near: float) -> float:
        return max(device, near)
