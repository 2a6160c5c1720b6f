"""Turn any schedule into a timeline: each device runs its ops in order, each as soon as its inputs are there.

F of micro-batch i on virtual stage k needs the activations of F(i, k-1) and, across
devices, their send; B(i, k) or BW(i, k) needs F(i, k) and the input gradient of stage
k+1 (from its B or BW) plus the send back (the last stage's needs only its F: the loss);
W(i, k) needs B(i, k). A device starts
its next op when it is free and those inputs have arrived, so the timeline is the
earliest one the order allows. An order that waits on an op that can never run is a
deadlock and is refused, naming the ops.

Activation memory per device follows the ops: F holds `act` from its start, B releases
all but `act_w` (what W still needs), W releases the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from servesim.errors import ServesimError
from servesim.pipeline.costs import StageCosts
from servesim.pipeline.ops import Op


@dataclass
class Timeline:
    placement: list[int]  # virtual stage -> device
    slices: list[list[tuple[Op, float, float]]]  # per device: (op, start, end) in run order
    peak_act: np.ndarray  # per device, bytes

    @property
    def devices(self) -> int:
        return len(self.slices)

    @property
    def makespan(self) -> float:
        """One step alone: the first op anywhere to the last op anywhere."""
        return max((s[-1][2] for s in self.slices if s), default=0.0)

    def spans(self) -> np.ndarray:
        """Each device's first op to its last."""
        return np.array([s[-1][2] - s[0][1] if s else 0.0 for s in self.slices])

    @property
    def period(self) -> float:
        """Time per step when steps follow each other: a device starts the next step as soon as it has finished
        this one (its next forward needs only its own and earlier devices' work), so steps tile with the longest
        device span. Schedules that flush (GPipe, 1F1B) have a first device spanning the whole step anyway."""
        return float(self.spans().max(initial=0.0))

    def busy(self) -> np.ndarray:
        return np.array([sum(e - b for _, b, e in s) for s in self.slices])

    def bubble(self) -> np.ndarray:
        """Idle fraction of each device per step period."""
        period = self.period
        return 1.0 - self.busy() / period if period else np.zeros(self.devices)


def duration(op: Op, c: StageCosts) -> float:
    k = op.stage
    return float(c.b[k] + c.w[k] if op.kind == "BW" else {"F": c.f, "B": c.b, "W": c.w}[op.kind][k])


def makes(op: Op) -> tuple[str, int, int] | None:
    """What `op` produces for others: activations ("f") or an input gradient ("g") of (micro-batch, stage)."""
    return ("f", op.mb, op.stage) if op.kind == "F" else None if op.kind == "W" else ("g", op.mb, op.stage)


def inputs(op: Op, stages: int) -> list[tuple[str, int, int]]:
    """What `op` needs, each from the stage that makes it (a different stage means a send if on another device)."""
    kind, mb, k = op
    if kind == "F":
        return [("f", mb, k - 1)] if k else []
    if kind == "W":
        return [("g", mb, k)]
    return [("f", mb, k)] + ([("g", mb, k + 1)] if k + 1 < stages else [])


def execute(orders: list[list[Op]], placement: list[int], costs: StageCosts, micro_batches: int) -> Timeline:
    """The timeline of devices running `orders` (one ordered op list per device)."""
    V = costs.stages
    _check_complete(orders, placement, V, micro_batches)
    end: dict[tuple, float] = {}
    pos = [0] * len(orders)
    free = [0.0] * len(orders)
    slices: list[list] = [[] for _ in orders]
    remaining = sum(len(o) for o in orders)
    while remaining:
        progressed = False
        for d, order in enumerate(orders):
            while pos[d] < len(order):
                op = order[pos[d]]
                ready = free[d]
                for dep in inputs(op, V):
                    if dep not in end:
                        break
                    ready = max(ready, end[dep] + costs.send(placement[dep[2]], placement[op.stage]))
                else:
                    finish = ready + duration(op, costs)
                    if (made := makes(op)) is not None:
                        end[made] = finish
                    slices[d].append((op, ready, finish))
                    free[d] = finish
                    pos[d] += 1
                    remaining -= 1
                    progressed = True
                    continue
                break
        if not progressed:
            stuck = ", ".join(f"device {d} waits at {orders[d][pos[d]]}" for d in range(len(orders))
                              if pos[d] < len(orders[d]))  # fmt: skip
            raise ServesimError(f"the schedule deadlocks: {stuck}")
    return Timeline(placement, slices, _peak_activations(slices, costs))


def _check_complete(orders, placement, stages: int, m: int) -> None:
    got = [op for order in orders for op in order]
    split = {(op.mb, op.stage) for op in got if op.kind == "B"}
    want = {Op(k, i, s) for i in range(m) for s in range(stages)
            for k in (("F", "B", "W") if (i, s) in split else ("F", "BW"))}  # fmt: skip
    for d, order in enumerate(orders):
        for op in order:
            if placement[op.stage] != d:
                raise ServesimError(f"{op} is ordered on device {d}, but stage {op.stage} is on {placement[op.stage]}")
    if len(got) != len(set(got)) or set(got) != want:
        wrong = sorted(str(o) for o in want ^ set(got))[:3]
        raise ServesimError(f"a schedule must run F and the backward (BW, or B and W) once per micro-batch and "
                            f"stage; these are missing or extra: {', '.join(wrong)}")  # fmt: skip


def activation_change(op: Op, costs: StageCosts) -> float:
    """Bytes of activations `op` takes (F, at its start) or gives back (the backward ops, at their end)."""
    act, kept = costs.act[op.stage], costs.act_w[op.stage]
    return {"F": act, "B": -(act - kept), "W": -kept, "BW": -act}[op.kind]


def _peak_activations(slices, costs: StageCosts) -> np.ndarray:
    peaks = []
    for dev in slices:
        # (time, order, bytes): at equal times the op that ended releases before the next allocates
        events = [(start, 1, activation_change(op, costs)) if op.kind == "F" else
                  (finish, 0, activation_change(op, costs)) for op, start, finish in dev]  # fmt: skip
        level = peak = 0.0
        for _, _, delta in sorted(events, key=lambda e: (e[0], e[1])):
            level += delta
            peak = max(peak, level)
        peaks.append(peak)
    return np.array(peaks)
