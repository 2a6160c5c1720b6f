"""Ranking by an objective, and Pareto frontiers of cost or throughput against latency."""

from __future__ import annotations


def rank(results: list[dict], objective: str) -> list[dict]:
    """Feasible candidates with capacity, best first."""
    ok = [r for r in results if r.get("feasible") and r.get("capacity", 0) > 0 and objective in r]
    return sorted(ok, key=lambda r: (-r[objective], r["label"]))


def frontier(results: list[dict], x: str, y: str, x_smaller: bool = True, y_smaller: bool = True) -> list[dict]:
    """Points no other point beats on both x and y."""
    sign_x, sign_y = (1 if x_smaller else -1), (1 if y_smaller else -1)
    pts = sorted(
        (r for r in results if r.get(x) is not None and r.get(y) is not None),
        key=lambda r: (sign_x * r[x], sign_y * r[y]),
    )
    out, best_y = [], float("inf")
    for r in pts:
        if sign_y * r[y] < best_y:
            out.append(r)
            best_y = sign_y * r[y]
    return out
