"""Weight-only quantization (W4A16, W8A16): smaller weights, the same bf16 activations.

vLLM's `--quantization awq|gptq|awq_marlin|gptq_marlin` loads AWQ or GPTQ checkpoints whose
linear-layer weights are 4- or 8-bit integers with one fp16 scale and zero point per group
of 128 inputs; on Hopper it runs them with Marlin kernels (plain `awq`/`gptq` checkpoints are
converted to the Marlin format unless the legacy kernel is forced), which dequantise in
registers and multiply in bf16. So a quantised GEMM:
- reads bits/8 + 4/group bytes per weight instead of 2, but streams them less efficiently
  than cuBLAS streams bf16: `BANDWIDTH_SHARE`, measured on an H100 with torch's W4A16
  kernel (`docs/validation/h100_weight_only_gemm.csv`: 1.7-1.9 TB/s at 1-2 tokens where the
  bf16 GEMM reaches 2.9 TB/s on the same shapes);
- computes at `COMPUTE_SHARE` of the bf16 GEMM's rate once compute-bound, for the dequantisation
  and the Marlin pipeline's lower tensor-core use (an assumption: Marlin, Frantar et al. 2024,
  reports near-ideal 4x up to 16-32 tokens and a shrinking gain beyond; "Give Me BF16 or Give Me
  Death", Kurtic et al. 2024, finds W4A16 best for latency and W8A8 for high-batch throughput).
Embeddings, the LM head, norms and MoE routers stay bf16, as in these checkpoints. `fp8` is
W8A8 and priced by the measured fp8 GEMMs (dtype fp8), not here.
"""

from __future__ import annotations

from dataclasses import dataclass

BANDWIDTH_SHARE = 0.65  # W4A16 kernel's weight streaming rate over bf16 GEMV's (measured, H100)
COMPUTE_SHARE = 0.8  # dequantising GEMM's rate over bf16 GEMM's when compute-bound (assumed, see above)
WEIGHT_ONLY = ("awq", "gptq", "awq_marlin", "gptq_marlin")


@dataclass(frozen=True)
class WeightQuant:
    method: str
    bits: int
    group: int = 128

    @property
    def bytes_per_weight(self) -> float:
        return self.bits / 8 + 4 / self.group  # fp16 scale and zero point per group

    @property
    def label(self) -> str:
        return f"W{self.bits}A16 ({self.method})"


def weight_quant(method: str | None, bits: int = 4) -> WeightQuant | None:
    """The weight-only scheme of vLLM's --quantization value (None for none or fp8)."""
    return WeightQuant(method, bits) if method in WEIGHT_ONLY else None
