"""Energy, power and cost of a run.

GPU energy is what the iterations drew (their mean power x time x GPUs) plus idle power
whenever a replica had nothing to run; hosts draw a constant power per node. Iteration
energy and GPU-time cost are shared among the tokens each iteration processed: prefill
tokens carry the input share, decode tokens the output share; what no token carried
(idle GPUs) is the cost of idle capacity.
"""

from __future__ import annotations

import numpy as np

from servesim.metrics.tally import StepTotals, Tally, billed_per_bin, billed_seconds


def power_series(totals: list[StepTotals], host_w: float, duration: float, replica_of: list[int] | None = None,
                 info: list | None = None) -> dict[str, np.ndarray]:  # fmt: skip
    """Mean power (W) in each window of the step totals: per replica (all its GPUs; with pipeline parallelism
    its streams' engines together, `replica_of` giving each engine's replica) and for the cluster with hosts.
    `info` (per engine: gpus and the `provisioned` windows it was billed in) limits an autoscaled replica's
    idle power, and its hosts' share, to its windows."""
    bin_s = totals[0].bin_s if totals else 1.0
    windows = [r.provisioned for r in info] if info else [None] * len(totals)
    watts = [t.watts(duration, w) for t, w in zip(totals, windows, strict=True)]
    n = len(watts[0]) if watts else len(np.arange(0.0, max(duration, bin_s) + bin_s, bin_s)) - 1
    out = {"time_s": np.arange(n) * bin_s}
    total = np.full(n, host_w)
    if info and any(w is not None for w in windows):  # hosts draw for the GPUs billed in each window
        edges = np.arange(n + 1) * bin_s
        gpus = sum(r.gpus for r in info)
        share = sum(r.gpus * billed_per_bin(edges, max(duration, t.last_end), w)
                    for r, t, w in zip(info, totals, windows, strict=True)) / (gpus * bin_s)  # fmt: skip
        total = host_w * share
    for i, w in zip(replica_of or range(len(watts)), watts, strict=True):
        key = f"replica_{i}_w"
        out[key] = out[key] + w if key in out else w
        total = total + w
    out["cluster_w"] = total
    return out


def energy_cost_summary(tally: Tally, totals: list[StepTotals], info: list, duration: float,
                        host_w: float, replica_of: list[int] | None = None) -> dict:  # fmt: skip
    """The run's energy, power and cost (info: per engine, its gpus, idle_w, usd_per_s and busy_s; `replica_of`:
    each engine's replica, where pipeline streams make several engines a replica)."""
    done = tally.completed
    in_tok, out_tok = tally.input_tokens, tally.output_tokens
    busy_j = float(sum(t.energy_j for t in totals))
    billed = [billed_seconds(duration, r.provisioned) for r in info]  # (autoscaled: its windows)
    idle_j = float(sum(r.idle_w * r.gpus * max(b - r.busy_s, 0.0) for r, b in zip(info, billed, strict=True)))
    gpus = sum(r.gpus for r in info)
    gpu_s = sum(r.gpus * b for r, b in zip(info, billed, strict=True))
    host_j = host_w * gpu_s / gpus if gpus else host_w * duration  # hosts draw for the GPUs billed
    total_j = busy_j + idle_j + host_j
    usd = float(sum(r.usd_per_s * b for r, b in zip(info, billed, strict=True)))
    in_usd, out_usd = tally.prefill_usd, tally.decode_usd
    series = power_series(totals, host_w, duration, replica_of, info)
    replicas = len(series) - 2  # (beside time and the cluster's)
    per_m = lambda x, n: x / n * 1e6 if n else None  # noqa: E731
    return {
        "energy": {
            "total_j": total_j,
            "gpu_busy_j": busy_j,
            "gpu_idle_j": idle_j,
            "host_j": host_j,
            "j_per_request": total_j / done if done else None,
            "j_per_input_token": tally.prefill_j / in_tok if in_tok else None,
            "j_per_output_token": tally.decode_j / out_tok if out_tok else None,
            "tokens_per_j": (in_tok + out_tok) / total_j if total_j else None,
            "output_tokens_per_j": out_tok / total_j if total_j else None,
            "avg_power_w": total_j / duration if duration else 0.0,
            "peak_power_w": float(series["cluster_w"].max()),
            "avg_power_per_gpu_w": (busy_j + idle_j) / gpu_s if gpu_s else 0.0,
            "replica_avg_power_w": [float(series[f"replica_{i}_w"].mean()) for i in range(replicas)],
            "replica_peak_power_w": [float(series[f"replica_{i}_w"].max()) for i in range(replicas)],
        },
        "cost": {
            "gpus": gpus,
            "gpu_hours": gpu_s / 3600,
            "total_usd": usd,
            "usd_per_m_input_tokens": per_m(in_usd, in_tok),
            "usd_per_m_output_tokens": per_m(out_usd, out_tok),
            "usd_per_m_tokens": per_m(usd, in_tok + out_tok),
            "idle_usd": max(usd - in_usd - out_usd, 0.0),
            "utilization": float(sum(r.busy_s * r.gpus for r in info) / gpu_s) if gpu_s else 0.0,
        },
    }


def host_power(total_gpus: int, gpus_per_node: int, host_w_per_node: float) -> float:
    """Host power of a deployment: its GPUs' share of their nodes' CPUs, memory, NICs and fans."""
    return total_gpus / gpus_per_node * host_w_per_node
