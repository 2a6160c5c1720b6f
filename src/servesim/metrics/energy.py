"""Energy, power and cost of a run.

GPU energy is what the iterations drew (their mean power x time x GPUs) plus idle power
whenever a replica had nothing to run; hosts draw a constant power per node. Iteration
energy and GPU-time cost are shared among the tokens each iteration processed: prefill
tokens carry the input share, decode tokens the output share; what no token carried
(idle GPUs) is the cost of idle capacity.
"""

from __future__ import annotations

import numpy as np


def _cumulative(steps: dict, idle_w: float, duration: float) -> tuple[np.ndarray, np.ndarray]:
    """Time points and cumulative energy (J) of one replica: idle power between its steps."""
    start, end, energy = steps["start"], steps["end"], steps["energy"]
    idle_before = idle_w * (start - np.r_[0.0, end[:-1]])
    at_start = np.cumsum(idle_before + np.r_[0.0, energy[:-1]])
    at_end = at_start + energy
    x = np.column_stack([start, end]).ravel()
    y = np.column_stack([at_start, at_end]).ravel()
    last_x = end[-1] if len(end) else 0.0
    tail = (at_end[-1] if len(end) else 0.0) + idle_w * max(duration - last_x, 0.0)
    return np.r_[0.0, x, max(duration, last_x)], np.r_[0.0, y, tail]


def power_series(replica_steps: list[dict], idle_w: list[float], host_w: float, duration: float,
                 bin_s: float = 1.0) -> dict[str, np.ndarray]:  # fmt: skip
    """Mean power (W) in each `bin_s` window: per replica (all its GPUs) and for the cluster with hosts."""
    edges = np.arange(0.0, max(duration, bin_s) + bin_s, bin_s)
    out = {"time_s": edges[:-1]}
    total = np.full(len(edges) - 1, host_w)
    for i, (steps, idle) in enumerate(zip(replica_steps, idle_w, strict=True)):
        x, y = _cumulative(steps, idle, duration)
        watts = np.diff(np.interp(edges, x, y)) / bin_s
        out[f"replica_{i}_w"] = watts
        total = total + watts
    out["cluster_w"] = total
    return out


def energy_cost_summary(df, replica_steps: list[dict], info: list[dict], duration: float,
                        host_w: float) -> dict:  # fmt: skip
    """The run's energy, power and cost (info: per replica gpus, idle_w, usd_per_s, busy_s)."""
    done = df.select(df.completed)
    in_tok, out_tok = int(done.input_len.sum()), int(done.output_len.sum())
    busy_j = float(sum(s["energy"].sum() for s in replica_steps))
    idle_j = float(sum(r["idle_w"] * r["gpus"] * max(duration - r["busy_s"], 0.0) for r in info))
    host_j = host_w * duration
    total_j = busy_j + idle_j + host_j
    gpus = sum(r["gpus"] for r in info)
    usd = float(sum(r["usd_per_s"] * duration for r in info))
    in_usd, out_usd = float(df.prefill_usd.sum()), float(df.decode_usd.sum())
    series = power_series(replica_steps, [r["idle_w"] * r["gpus"] for r in info], host_w, duration)
    per_m = lambda x, n: x / n * 1e6 if n else None  # noqa: E731
    return {
        "energy": {
            "total_j": total_j,
            "gpu_busy_j": busy_j,
            "gpu_idle_j": idle_j,
            "host_j": host_j,
            "j_per_request": total_j / done.rows if done.rows else None,
            "j_per_input_token": float(done.prefill_j.sum()) / in_tok if in_tok else None,
            "j_per_output_token": float(done.decode_j.sum()) / out_tok if out_tok else None,
            "tokens_per_j": (in_tok + out_tok) / total_j if total_j else None,
            "output_tokens_per_j": out_tok / total_j if total_j else None,
            "avg_power_w": total_j / duration if duration else 0.0,
            "peak_power_w": float(series["cluster_w"].max()),
            "avg_power_per_gpu_w": (busy_j + idle_j) / (gpus * duration) if duration else 0.0,
            "replica_avg_power_w": [float(series[f"replica_{i}_w"].mean()) for i in range(len(info))],
            "replica_peak_power_w": [float(series[f"replica_{i}_w"].max()) for i in range(len(info))],
        },
        "cost": {
            "gpus": gpus,
            "gpu_hours": gpus * duration / 3600,
            "total_usd": usd,
            "usd_per_m_input_tokens": per_m(in_usd, in_tok),
            "usd_per_m_output_tokens": per_m(out_usd, out_tok),
            "usd_per_m_tokens": per_m(usd, in_tok + out_tok),
            "idle_usd": max(usd - in_usd - out_usd, 0.0),
            "utilization": float(sum(r["busy_s"] * r["gpus"] for r in info) / (gpus * duration)) if duration else 0.0,
        },
    }


def host_power(total_gpus: int, gpus_per_node: int, host_w_per_node: float) -> float:
    """Host power of a deployment: its GPUs' share of their nodes' CPUs, memory, NICs and fans."""
    return total_gpus / gpus_per_node * host_w_per_node
