"""The work of a pipeline step: forward (F), backward-for-inputs (B) and backward-for-weights (W) passes.

An op is one pass of one micro-batch through one virtual stage (a contiguous slice of
layers). Classic schedules run the whole backward as one op, BW, whose input gradient
is sent when it ends (as autograd computes it); the Zero Bubble family splits it into B,
which sends the gradient at once, and W, which nothing waits for. A schedule places
virtual stages on devices and orders each device's ops.
"""

from __future__ import annotations

from typing import NamedTuple


class Op(NamedTuple):
    kind: str  # "F", "B", "W" or "BW"
    mb: int  # micro-batch
    stage: int  # virtual stage, 0 .. p*v-1 in model order

    def __str__(self) -> str:
        return f"{self.kind}{self.mb}@{self.stage}"


def F(mb: int, stage: int) -> Op:
    return Op("F", mb, stage)


def B(mb: int, stage: int) -> Op:
    return Op("B", mb, stage)


def W(mb: int, stage: int) -> Op:
    return Op("W", mb, stage)


def looping(p: int, v: int) -> list[int]:
    """Megatron's placement: virtual stage k on device k mod p (each device holds v chunks)."""
    return [k % p for k in range(p * v)]


def v_shape(p: int) -> list[int]:
    """Zero Bubble V's placement: device d holds virtual stages d and 2p-1-d, so the first and last meet."""
    return list(range(p)) + list(reversed(range(p)))
