"""What each pass of one micro-batch through one virtual stage costs: seconds, activation bytes, sends.

Training shapes are prefill-like: a micro-batch of b sequences of s tokens runs its GEMMs
on T = b*s rows. Priced with the same performance model as inference (the GPU's profile
where it has the shape, the fitted roofline elsewhere), per GPU after tensor parallelism:

* F: the forward GEMMs (QKV, output projection, gate/up, down), causal attention over s
  tokens, norms and activations, and two TP all-reduces per layer;
* B (gradient with respect to the inputs): each GEMM's dgrad product dX = dY W^T, priced as
  a GEMM of the transposed shape; attention backward at 2.5x the forward attention (five
  matmuls against two, FlashAttention-2, Dao 2023); the elementwise work once more; two
  TP all-reduces;
* W (gradient with respect to the weights): each GEMM's wgrad product dW = X^T dY.

The last virtual stage adds the LM head over all T tokens and the loss; the first the
embedding. Activations kept per token per layer (bf16, FlashAttention, no recomputation,
no sequence parallelism; after Korthikanti et al., MLSys 2023, for a SwiGLU/GQA layer):
the four layer inputs that TP replicates (2 norms, QKV and MLP inputs, 2h bytes each) plus
Q, K, V, the attention output and the three MLP intermediates split over TP. B releases all
but the GEMM inputs that W still needs; W releases those. Weights, gradients and Adam
states take 16 bytes per parameter (mixed precision, Rajbhandari et al., SC 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.layout import Layout
from servesim.models import get_model
from servesim.perf.batch import Batch
from servesim.perf.profiled import describe, make_perf_model
from servesim.pipeline.config import PipelineConfig

BYTES = 2  # bf16 activations
ADAM_BYTES_PER_PARAM = 16  # bf16 weight + bf16 grad + fp32 master, momentum, variance
ADAM_TRAFFIC_PER_PARAM = 28  # optimizer step: read grad, master, m, v; write master, m, v, bf16 weight
ATTN_BACKWARD = 2.5  # attention backward / forward FLOPs (FlashAttention-2)


@dataclass(frozen=True)
class StageCosts:
    """Per virtual stage k: seconds of F, B, W; activation bytes held from F and kept for W. Sending one
    micro-batch's activations (or their gradient) between devices takes `send_local` seconds inside a node
    and `send_remote` across nodes; `devices_per_node` pipeline devices share a node."""

    f: np.ndarray
    b: np.ndarray
    w: np.ndarray
    act: np.ndarray
    act_w: np.ndarray
    send_local: float
    send_remote: float
    devices_per_node: int
    static_bytes: np.ndarray  # weights, grads and optimizer states of each virtual stage, per GPU
    optimizer_s: np.ndarray  # optimizer step of each virtual stage
    flops_per_step: float = 0.0  # model FLOPs of one step (for MFU), all GPUs
    peak_flops: float = 1.0  # per GPU
    tokens_per_mb: int = 1
    perf_model: str = "-"

    @property
    def stages(self) -> int:
        return len(self.f)

    @classmethod
    def uniform(cls, stages: int, f: float = 1.0, b: float = 1.0, w: float = 1.0, send: float = 0.0,
                act: float = 1.0, act_w: float = 0.0) -> StageCosts:  # fmt: skip
        """Equal costs everywhere: the setting of the textbook bubble formulas."""
        one = np.ones(stages)
        return cls(f * one, b * one, w * one, act * one, act_w * one, send, send, 1, 0 * one, 0 * one)

    def send(self, a: int, b: int) -> float:
        """Seconds to move one micro-batch's activations from device a to device b."""
        if a == b:
            return 0.0
        n = self.devices_per_node
        return self.send_local if n and a // n == b // n else self.send_remote


def split_layers(layers: int, stages: int) -> list[int]:
    """Layers per virtual stage, as even as possible, the extra ones on the earliest stages."""
    if stages > layers:
        raise ServesimError(f"{stages} virtual stages (pp x chunks) need at least as many layers; the model has "
                            f"{layers}; lower --pp or --chunks")  # fmt: skip
    base, extra = divmod(layers, stages)
    return [base + (k < extra) for k in range(stages)]


def stage_costs(cfg: PipelineConfig, chunks: int) -> StageCosts:
    """Price every pass of the model split into pp x chunks virtual stages on cfg's GPUs."""
    m, g = get_model(cfg.model), get_gpu(cfg.gpu, cfg.gpu_file)
    if m.is_moe or m.is_mla:
        raise ServesimError(f"servesim pipeline prices dense GQA models; {m.name} is MoE or MLA (not yet modelled)")
    tp = cfg.tp
    layout = Layout(tp, gpus_per_node=cfg.gpus_per_node)
    layout.check(m)
    perf = make_perf_model(m, g, layout, "bf16", "bf16", cfg.perf_model, network_gbs=cfg.network_gbs)
    b, s = cfg.micro_batch_size, cfg.seq_len
    T = b * s
    h, inter, hq, hkv, d = m.hidden, m.intermediate // tp, m.heads // tp, max(1, m.kv_heads // tp), m.head_dim
    gemms = [(hq * d + 2 * hkv * d, h), (h, hq * d), (2 * inter, h), (h, inter)]  # (n, k) of y = x W
    fwd_gemm = sum(perf.gemm_seconds(T, n, k) for n, k in gemms)
    dgrad = sum(perf.gemm_seconds(T, k, n) for n, k in gemms)
    wgrad = sum(perf.gemm_seconds(k, n, T) for n, k in gemms)
    ops = {o.name: o.seconds for o in perf.breakdown(Batch(0, 0, (s,) * b, (0,) * b))}
    L = m.layers
    attn, ew, comm = ops["attention"] / L, ops["norm_act"] / L, ops.get("tp_comm", 0.0) / L
    f_layer = fwd_gemm + attn + ew + comm
    b_layer = dgrad + ATTN_BACKWARD * attn + ew + comm
    w_layer = wgrad
    act_layer = T * BYTES * (4 * h + 2 * hq * d + 2 * hkv * d + 3 * inter)  # TP-split parts are per GPU already
    act_w_layer = T * BYTES * (2 * h + hq * d + inter)  # inputs of the QKV, output, gate/up and down GEMMs
    vocab = m.vocab // tp
    head_f = perf.gemm_seconds(T, vocab, h)
    head_b, head_w = perf.gemm_seconds(T, h, vocab), perf.gemm_seconds(h, vocab, T)
    logits = T * vocab * 4  # fp32 logits for the loss
    layer_params = m.attention_params() + m.dense_mlp_params() + 2 * h

    V = cfg.pp * chunks
    layers = np.array(split_layers(L, V), dtype=float)
    f, bb, w = f_layer * layers, b_layer * layers, w_layer * layers
    act, act_w = act_layer * layers, act_w_layer * layers
    f[-1] += head_f
    bb[-1] += head_b
    w[-1] += head_w
    act[-1] += logits
    params = layer_params * layers
    params[0] += m.vocab * h
    params[-1] += h + (0 if m.tie_embeddings else m.vocab * h)
    params_gpu = params / tp
    bw = g.mem_bw_gbs * 1e9 * perf.p.mem_efficiency
    send_bytes = T * h * BYTES / tp  # each TP rank sends its share (Megatron's scatter/gather)
    base = perf.p.collective_base_s
    tokens = T * cfg.micro_batches
    flops = tokens * (6 * m.num_params + 12 * L * h * s)  # PaLM's model FLOPs (Chowdhery et al. 2022, App. B)
    return StageCosts(f, bb, w, act, act_w, send_bytes / perf.nvlink_bw + base, send_bytes / perf.network_bw + base,
                      cfg.gpus_per_node // tp, params_gpu * ADAM_BYTES_PER_PARAM,
                      params_gpu * ADAM_TRAFFIC_PER_PARAM / bw, flops, g.peak_flops("bf16"), T,
                      describe(perf))  # fmt: skip

