"""NanoFlow's intra-device parallelism: an iteration's compute- and memory-bound work overlapped.

NanoFlow (Zhu et al., OSDI 2025) splits each iteration's batch into nano-batches and runs
their operators in a pipeline so that at any moment a compute-bound operator (the GEMMs of
one nano-batch) and a memory-bound one (the decode attention of another) execute together,
each on its own partition of the SMs (its kernels are written to occupy a fixed number).
Here an iteration of (compute-bound, memory-bound, other) seconds on the whole GPU takes

    max(C / compute(s), M / memory(1 - s)) + (the shorter stream) / N + other

with s the compute partition that minimises it (`sm_share.py`'s curves: bandwidth saturates
on a minority of the SMs, which is why the overlap pays) and 1/N of the shorter stream left
unhidden at the pipeline's start and end for N nano-batches. Collectives and CPU work
("other") are not overlapped; NanoFlow also hides the CPU's scheduling, which this does not
credit. Splitting GEMMs into nano-batches lowers their efficiency a little; that is not
priced either (the paper measures it as small for nano-batches of >=128 tokens).

Plain CUDA streams do not give this overlap: a cuBLAS GEMM fills every SM, and the H100
measurement in docs/validation/h100_stream_overlap.csv shows two streams saving at most 10%
of the shorter operator. The mechanism needs NanoFlow's SM-limited kernels, which is what
this prices. Decode-only iterations are priced on a grid of mean contexts (`GRID`),
interpolated, so that decode runs stay closed-form.
"""

from __future__ import annotations

import numpy as np

from servesim.perf.base import FAR, DecodeCurve, Wrapped
from servesim.perf.batch import Batch
from servesim.perf.sm_share import SMShare

SHARES = np.linspace(0.05, 0.95, 19)  # compute partitions tried
GRID = np.concatenate([[0.0], np.geomspace(16, 2**21, 40), [FAR]])  # mean contexts of the decode-only curves


class NanoFlowModel(Wrapped):
    def __init__(self, inner, nano_batches: int, sm: SMShare | None = None):
        super().__init__(inner)
        self.n = nano_batches
        self.sm = sm if sm is not None else SMShare.for_profile(getattr(inner, "profile", None))
        self._c, self._m = self.sm.compute(SHARES), self.sm.memory(1.0 - SHARES)
        self._curves: dict[int, DecodeCurve] = {}
        self.note = f"NanoFlow overlap of {nano_batches} nano-batches ({self.sm.source})"

    def overlapped(self, comp, mem):
        """Seconds of compute-bound `comp` and memory-bound `mem` run as overlapped nano-batch streams (arrays)."""
        comp, mem = np.asarray(comp, float)[..., None], np.asarray(mem, float)[..., None]
        c, m = comp / self._c, mem / self._m
        t = np.maximum(c, m) + np.minimum(c, m) / self.n
        return np.minimum(t.min(axis=-1), (comp + mem)[..., 0])  # never worse than running them in turn

    def _scaled(self, comp: float, mem: float, other: float) -> tuple[float, float, float]:
        """The split with compute and memory shrunk in proportion to the overlapped time."""
        if comp <= 0 or mem <= 0:
            return comp, mem, other
        r = float(self.overlapped(comp, mem)) / (comp + mem)
        return comp * r, mem * r, other

    def split(self, batch: Batch) -> tuple[float, float, float]:
        if not batch.prefill_lens:
            return self.decode_curve(batch.num_decodes).split_at(batch.decode_ctx_sum / batch.num_decodes)
        return self._scaled(*self.inner.split(batch))

    def decode_curve(self, n: int) -> DecodeCurve:
        curve = self._curves.get(n)
        if curve is None:
            base = self.inner.decode_curve(n)
            mem = base.times(GRID) - base.comp - base.other
            t = self.overlapped(np.full(len(GRID), base.comp), mem) + base.other
            # (the power model reads comp and other as constant over a run: keep compute's share unscaled)
            curve = self._curves[n] = DecodeCurve(min(base.comp, float(t[0] - base.other)), base.other, GRID, t)
        return curve
