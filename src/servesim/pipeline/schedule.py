"""The schedule interface and registry, and the greedy scheduler the Zero Bubble family builds on.

A schedule places virtual stages on devices and gives each device its ordered list of
F/B/W ops; `executor.py` times any such list. Each schedule is one module in
`pipeline/schedules/`, registered by name.
"""

from __future__ import annotations

from servesim.errors import ServesimError
from servesim.pipeline.costs import StageCosts
from servesim.pipeline.executor import activation_change, duration, inputs, makes
from servesim.pipeline.ops import Op, looping
from servesim.registry import Registry

SCHEDULES = Registry("pipeline schedule", "servesim.pipeline.schedules")
register = SCHEDULES.register


class Schedule:
    name = ""
    chunks = 1  # model chunks per device (v) unless the user sets --chunks
    fixed_chunks = True  # False when the schedule takes any number of chunks per device (--chunks)
    summary = ""

    def placement(self, p: int, v: int) -> list[int]:
        return looping(p, v)

    def orders(self, p: int, v: int, m: int, costs: StageCosts) -> list[list[Op]]:
        raise NotImplementedError

    def check(self, p: int, v: int, m: int) -> None:
        """Refuse shapes the schedule cannot run, in one line."""


def backward(mb: int, stage: int) -> list[Op]:
    """The whole backward pass of classic schedules, one op."""
    return [Op("BW", mb, stage)]


def greedy(placement: list[int], costs: StageCosts, m: int, limit: list[float]) -> list[list[Op]]:
    """Zero Bubble's heuristic (Qi et al., ICLR 2024, section 3): each device, when free, runs a ready B first;
    else the next F if its activations fit under the device's `limit` (bytes) with room left for one forward
    of each of its deeper chunks; else a pending W to fill the gap; else it waits for the next input to
    arrive. Micro-batches enter each chunk in order."""
    p, V = max(placement) + 1, costs.stages
    stages_of = [[k for k in range(V) if placement[k] == d] for d in range(p)]
    end: dict[tuple, float] = {}
    done = 0
    free = [0.0] * p
    held = [0.0] * p
    next_f = [{k: 0 for k in stages_of[d]} for d in range(p)]
    pending_b: list[set[Op]] = [set() for _ in range(p)]
    pending_w: list[list[Op]] = [[] for _ in range(p)]
    orders: list[list[Op]] = [[] for _ in range(p)]
    total = 3 * m * V

    def ready_at(op: Op) -> float | None:
        t = 0.0
        for dep in inputs(op, V):
            if dep not in end:
                return None
            t = max(t, end[dep] + costs.send(placement[dep[2]], placement[op.stage]))
        return t

    def run(d: int, op: Op, start: float) -> None:
        nonlocal done
        finish = start + duration(op, costs)
        if (made := makes(op)) is not None:
            end[made] = finish
        done += 1
        free[d] = finish
        orders[d].append(op)
        held[d] += activation_change(op, costs)
        k = op.stage
        if op.kind == "F":
            next_f[d][k] += 1
            pending_b[d].add(Op("B", op.mb, k))
        elif op.kind == "B":
            pending_b[d].discard(op)
            pending_w[d].append(Op("W", op.mb, k))
        else:
            pending_w[d].remove(op)

    def choice(d: int) -> tuple[float, Op] | None:
        """The op device d would run next and when: the earliest moment something can start, then by priority."""
        cands = [(r, 0, op.mb, -op.stage, op) for op in pending_b[d] if (r := ready_at(op)) is not None]
        for k, i in next_f[d].items():
            # keep room for one forward of the device's deeper chunks, or they could never start
            room = max((costs.act[j] for j, n in next_f[d].items() if j > k and n < m), default=0.0)
            fits = held[d] + costs.act[k] + room <= limit[d]
            if i < m and fits and (r := ready_at(Op("F", i, k))) is not None:
                cands.append((r, 1, i, -k, Op("F", i, k)))  # among forwards, the deepest chunk first
        cands += [(end[("g", op.mb, op.stage)], 2, op.mb, 0, op) for op in pending_w[d]]
        if not cands:
            return None
        start = max(free[d], min(c[0] for c in cands))
        best = min((c for c in cands if c[0] <= start), key=lambda c: c[1:4])
        return start, best[4]

    while done < total:
        options = [(c[0], d, c[1]) for d in range(p) if (c := choice(d)) is not None]
        if not options:
            raise ServesimError("the memory limit leaves no forward pass room to start; raise it")
        start, d, op = min(options, key=lambda o: (o[0], o[1]))
        run(d, op, start)
    return orders


