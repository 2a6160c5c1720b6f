"""`servesim bound`: an analytic upper bound on serving throughput (MoE-Lens style), from memory capacity,
bandwidth and compute, beside the simulated offline throughput of the same deployment.

MoE-Lens (Yu et al., arXiv 2504.09345) bounds the throughput of (MoE) serving with a
holistic model: the KV cache's capacity limits how many sequences decode together; at that
batch each decode iteration must at least read the weights of the experts its tokens
activate and every sequence's KV cache, and compute their FLOPs; each request must also be
prefilled. For requests of mean prompt P and output O at batch B:

    seconds per request >= O x t_decode(B) / B + t_prefill(P)

where B = min(max_num_seqs, KV tokens / (P + O / 2)) (a sequence holds P + O/2 tokens on
average while decoding). `hardware` prices t with datasheet peaks: a bound no engine on
these GPUs can pass. `predicted` prices them with this deployment's performance model
(measured kernels where profiled): MoE-Lens's prediction of what the engine achieves with
full batches. It is not a strict bound for the simulated engine: early in their decoding
sequences hold fewer than P + O/2 tokens, so more of them fit than B. The simulated
offline throughput over the prediction says how well the one-line model predicts it.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.api import simulate
from servesim.perf.batch import Batch
from servesim.sim.deployment import plan


@dataclass(frozen=True)
class Bound:
    batch: int  # sequences decoding together
    limited_by: str  # "memory capacity" or "max_num_seqs"
    hardware_tokens_s: float  # output tokens/s at datasheet peaks
    predicted_tokens_s: float  # output tokens/s priced by the deployment's performance model
    decode_bound: str  # what bounds a decode iteration at datasheet peaks: "compute" or "memory"


def _hardware_decode_s(perf, batch: int, ctx: float) -> tuple[float, str]:
    """Seconds of one decode iteration at datasheet peaks: weights of active experts and KV read once, FLOPs."""
    m, g, tp = perf.model, perf.gpu, perf.tp
    bw, peak = g.mem_bw_gbs * 1e9 * tp, g.peak_flops("bf16") * tp
    wb = perf.wb
    dense = m.num_params - (m.expert_params() * m.num_experts * m.moe_layers if m.is_moe else 0)
    weights = dense * wb
    if m.is_moe:
        active = m.num_experts * (1.0 - (1.0 - m.top_k / m.num_experts) ** batch)
        weights += active * m.expert_params() * m.moe_layers * wb
    kv = batch * ctx * perf.kv.per_layer * m.layers * tp  # what the TP group holds (and reads), replicas included
    flops = batch * m.flops_per_token(int(ctx))
    mem_s, comp_s = (weights + kv) / bw, flops / peak
    return max(mem_s, comp_s), "memory" if mem_s >= comp_s else "compute"


def throughput_bound(perf, kv_tokens: int, max_num_seqs: int, prompt: float, output: float,
                     chunk: int = 8192) -> Bound:  # fmt: skip
    """Output tokens per second no engine on this deployment can pass (see the module docstring)."""
    ctx = prompt + output / 2
    by_memory = int(kv_tokens // ctx)
    batch = max(1, min(max_num_seqs, by_memory))
    limited = "max_num_seqs" if max_num_seqs <= by_memory else "memory capacity"
    m, g, tp = perf.model, perf.gpu, perf.tp
    hw_decode, bound = _hardware_decode_s(perf, batch, ctx)
    hw_prefill = prompt * m.flops_per_token(int(prompt / 2)) / (g.peak_flops("bf16") * tp)
    predicted_decode = float(perf.decode_curve(batch).times(ctx))
    size = max(chunk, int(prompt))  # prompts are prefilled in full batches of tokens
    predicted_prefill = perf.iteration_time(Batch.prefill(size)) * prompt / size
    per_request_hw = output * hw_decode / batch + hw_prefill
    per_request = output * predicted_decode / batch + predicted_prefill
    return Bound(batch, limited, output / per_request_hw, output / per_request, bound)


def bound_report(sc, simulate_too: bool = True) -> dict:
    """The bound of a scenario's (co-located) deployment at its workload's mean lengths, and, if asked, the
    simulated offline throughput of the same deployment (all requests at once) beside it."""
    pl = plan(sc)
    pool = pl.pools[0]
    perf = pool.perf
    wl, e = sc.workload, pool.engine
    b = throughput_bound(perf, pool.memory.kv_tokens, e.max_num_seqs, wl.input.mean, wl.output.mean,
                         e.max_num_batched_tokens)  # fmt: skip
    doc = {"model": pl.model.name, "gpu": pool.gpu.name, "tp": pool.layout.tp, "prompt_tokens": wl.input.mean,
           "output_tokens": wl.output.mean, "batch": b.batch, "batch_limited_by": b.limited_by,
           "decode_bound_by": b.decode_bound, "hardware_output_tokens_s": b.hardware_tokens_s,
           "predicted_output_tokens_s": b.predicted_tokens_s}  # fmt: skip
    if simulate_too:
        offline = sc.model_copy(update={"workload": wl.model_copy(update={"rate": float("inf")})})
        got = simulate(offline).summary()["output_throughput"]
        doc["simulated_output_tokens_s"] = got
        doc["simulated_over_predicted"] = got / b.predicted_tokens_s
        doc["simulated_over_hardware"] = got / b.hardware_tokens_s
    return doc
