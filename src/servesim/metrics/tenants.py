"""Per-tenant metrics and fairness, as VTC counts service (Sheng et al., "Fairness in Serving Large
Language Models", OSDI 2024).

Service is weighted tokens: input tokens x W_IN + output tokens x W_OUT (the paper's
weights, 1 and 2: an output token costs more to make). Fairness is judged only while
every tenant is backlogged, as the paper defines it: has a request waiting in the queue
(arrived, not yet scheduled). A tenant that asks for less than its share is not
under-served for receiving it. Over windows of the run in
which all tenants were backlogged throughout, each tenant's service in the window divided
by its weight gives Jain's index, (sum x)^2 / (n sum x^2): 1 when all got equal service,
1/n when one got all of it. A request's prompt is counted when its first token comes, its
output spread evenly until it finishes (the records keep no per-token times per tenant).
"""

from __future__ import annotations

import numpy as np

from servesim.metrics.sketch import exact_stats

W_IN, W_OUT = 1.0, 2.0
WINDOWS = 400  # the run is cut into this many windows


def jain(x: np.ndarray) -> float:
    s2 = float((x * x).sum())
    return float(x.sum() ** 2 / (len(x) * s2)) if s2 > 0 else 1.0


def tenant_summary(records, names: list[str], weights: list[float], duration: float) -> dict:
    """Per tenant: requests, latencies and service; and Jain's fairness index while all were backlogged."""
    tenant = records.tenant
    done = records.completed
    out = {}
    for k, name in enumerate(names):
        mine, ok = tenant == k, (tenant == k) & done
        service = W_IN * records.input_len[ok].sum() + W_OUT * records.output_len[ok].sum()
        out[name] = {
            "requests": int(mine.sum()),
            "completed": int(ok.sum()),
            "request_throughput": float(ok.sum() / duration) if duration > 0 else 0.0,
            "service": float(service),
            "ttft_ms": exact_stats(records.ttft_s[ok]),
            "tpot_ms": exact_stats(records.tpot_s[ok]),
            "e2el_ms": exact_stats(records.e2el_s[ok]),
        }
    return {"tenants": out, "fairness": fairness(records, len(names), np.asarray(weights), duration)}


def fairness(records, n: int, weights: np.ndarray, duration: float) -> dict:
    """Jain's index of weighted service per window in which every tenant stayed backlogged."""
    if n < 2 or duration <= 0:
        return {"jain_backlogged": None, "backlogged_s": 0.0}
    ok = records.completed
    edges = np.linspace(0.0, duration, WINDOWS + 1)
    served = np.zeros((n, len(edges)))  # each tenant's service received by each edge
    backlogged = np.ones(WINDOWS, dtype=bool)
    for k in range(n):
        mine = ok & (records.tenant == k)
        arrive, first, finish = records.arrival_s[mine], records.first_token_s[mine], records.finish_s[mine]
        start = records.first_scheduled_s[mine]
        prompt, output = W_IN * records.input_len[mine], W_OUT * records.output_len[mine]
        span = np.maximum(finish - first, 1e-12)
        for lo in range(0, len(first), 4096):  # (requests x edges at a time)
            sl = slice(lo, lo + 4096)
            t = edges[None, :]
            got = prompt[sl, None] * (t >= first[sl, None])
            got += output[sl, None] * np.clip((t - first[sl, None]) / span[sl, None], 0.0, 1.0)
            served[k] += got.sum(axis=0)
        a, f = np.sort(arrive), np.sort(start)
        for probe in (edges[:-1], (edges[:-1] + edges[1:]) / 2, edges[1:] - 1e-9):  # ends and middle
            backlogged &= np.searchsorted(a, probe, "right") - np.searchsorted(f, probe, "right") > 0
    per_window = np.diff(served, axis=1)[:, backlogged] / weights[:, None]
    if not per_window.shape[1]:
        return {"jain_backlogged": None, "backlogged_s": 0.0}
    scores = [jain(per_window[:, j]) for j in range(per_window.shape[1])]
    share = per_window.sum(axis=1) / per_window.sum()
    return {"jain_backlogged": float(np.mean(scores)), "backlogged_s": float(backlogged.sum() * duration / WINDOWS),
            "service_share_backlogged": [float(x) for x in share]}  # fmt: skip
