"""Sparsity-aware loading (LLM in a flash, Alizadeh et al. 2023; PowerInfer, Song et al. 2023): attention and
embeddings stay in memory and a predictor picks the FFN neurons a token will activate, so only their rows (gate
and up projections) and column (down projection) are read from the tier, bundled as one read per neuron
("row-column bundling"). Neurons active for the last tokens are kept (`reuse`: LLM in a flash's window).

`sparsity` is a stated parameter, never emergent: the fraction of a token's FFN neurons that are inactive.
Tokens activate neurons independently, so a batch of t tokens reads 1 - sparsity^t of the neurons: prefill
reads nearly all of them. The predictor's own cost is not priced (a low-rank layer, small beside the FFN).
"""

from servesim.errors import ServesimError
from servesim.models import DTYPE_BYTES
from servesim.offload import register
from servesim.offload.pipeline import OffloadPolicy
from servesim.perf.batch import Batch

# OPT 6.7B: 97% of the FFN's ReLU outputs are zero for a token (LLM in a flash, section 3.1).
SPARSITY = 0.97


@register
class Sparse(OffloadPolicy):
    name = "sparse"
    part = "FFN weights"
    options = ("sparsity", "reuse")

    @classmethod
    def check(cls, cfg, model) -> None:
        super().check(cfg, model)
        if model.is_moe:
            raise ServesimError(f"offload sparse reads a dense FFN's active neurons; {model.name} is a mixture of "
                                "experts: use offload stream")  # fmt: skip

    @staticmethod
    def offloadable(model) -> float:
        ffn = model.dense_mlp_params()
        return ffn / (ffn + model.attention_params())

    def __init__(self, cfg, model, placement):
        super().__init__(cfg, model, placement)
        self.sparsity = SPARSITY if cfg.sparsity is None else cfg.sparsity
        self.reuse = cfg.reuse or 0.0
        self._mlp: dict[int, tuple[float, str]] = {}

    def active(self, tokens: int) -> float:
        """Share of the FFN neurons some of `tokens` tokens activate."""
        return 1.0 - self.sparsity ** max(tokens, 1)

    def layer_bytes(self, batch: Batch) -> float:
        return self.placement.layer_io_bytes * self.active(batch.num_tokens) * (1.0 - self.reuse)

    def chunk_bytes(self) -> float:
        """One neuron's bundle: its gate and up rows and its down column, on one GPU."""
        return 3 * self.model.hidden * DTYPE_BYTES["bf16"]

    def device_split(self, inner, batch: Batch) -> tuple[float, float, float]:
        comp, mem, other = inner.split(batch)
        t = batch.num_tokens
        if t not in self._mlp:
            op = next((o for o in inner.breakdown(Batch(t, t)) if o.name == "mlp"), None)
            self._mlp[t] = (0.0, "memory") if op is None else (op.seconds, op.bound)
        seconds, bound = self._mlp[t]
        saved = seconds * (1.0 - self.active(t))  # the inactive neurons are neither read nor multiplied
        return (comp - saved, mem, other) if bound == "compute" else (comp, mem - saved, other)
