"""An iteration whose decoder layers are streamed in from a slower tier, priced layer by layer.

Layer l's offloaded weights (and, with the KV cache offloaded and attention on the device,
its KV) cross the tier's link while layer l-1 computes; the link carries both, one after the
other. With per-layer load `io` and compute `c` (the device's share of the iteration, and
attention next to the KV where it runs there), L layers take

    L x max(c, io)      with prefetch
    L x (io + c)        without

plus what is not per layer (CPU scheduling, collectives). This is FlexGen's cost model
(Sheng et al., ICML 2023, section 4.2: per-layer loads overlapped with compute) for one
stream of loads. With prefetch, the next iteration's first layer loads while this one's
last layer computes (its weights do not depend on the batch), so no load is exposed in
the steady state: on an H100 streaming Llama-3.1-8B's layers from pinned host memory, a
prefetched iteration took max(copy, compute) within 0.1% in all 13 shapes measured, and
a serial one copy + compute (docs/validation/offload_h100.md).

The device is busy for its own seconds only: the rest is time spent waiting on the link,
which the power model counts as "other" (not compute or memory bound).
A policy (`policies/`) says how many weight bytes a layer reads for a batch and how the
device's compute and attention next to the KV combine.
"""

from __future__ import annotations

import numpy as np

from servesim.offload.placement import Placement
from servesim.perf.base import FAR, DecodeCurve, Wrapped
from servesim.perf.batch import Batch

GRID = np.concatenate([[0.0], np.geomspace(16, 2**21, 48), [FAR]])  # mean contexts of the decode-only curves


class OffloadPolicy:
    """How one offloading scheme reads weights and combines compute; subclasses are the registered policies."""

    name = ""
    part = "weights"  # what of a layer it offloads (for messages)
    options: tuple[str, ...] = ()  # the OffloadConfig fields only this policy uses

    @classmethod
    def check(cls, cfg, model) -> None:
        """Refuse settings this policy cannot act on (one line)."""
        from servesim.errors import ServesimError

        for key in ("gpu_batch", "sparsity", "reuse"):
            if getattr(cfg, key) is not None and key not in cls.options:
                raise ServesimError(f"offload {key} acts only in a policy that uses it, not {cls.name}; drop it or "
                                    f"use {'flexgen' if key == 'gpu_batch' else 'sparse'}")  # fmt: skip

    @staticmethod
    def offloadable(model) -> float:
        """Share of a decoder layer's bytes the policy may place in the tier."""
        return 1.0

    def __init__(self, cfg, model, placement: Placement):
        self.cfg, self.model, self.placement = cfg, model, placement

    def layer_bytes(self, batch: Batch) -> float:
        """Weight bytes one layer reads from the tier for `batch`."""
        return self.placement.layer_io_bytes

    def device_split(self, inner, batch: Batch) -> tuple[float, float, float]:
        """(compute, memory, other) seconds the device spends on `batch`."""
        return inner.split(batch)

    def layer_compute(self, device: float, near: float) -> float:
        """Seconds one layer computes: the device's share, then attention next to the KV (in turn)."""
        return device + near

    def chunk_bytes(self) -> float | None:
        """Bytes of each read from the tier (None: whole layers, sequentially)."""
        return None

    def note(self) -> str:
        p = self.placement
        parts = [f"{p.offloaded:.0%} of each layer's {self.part} ({p.offloaded_gib:.1f} GiB/GPU) streamed from "
                 f"{p.config.weights} at {p.weights.read_gbs:g} GB/s"] if p.weights and p.offloaded else []  # fmt: skip
        if p.kv is not None:
            where = "attention next to it" if p.config.attention == "near" else "streamed in for attention"
            parts.append(f"KV cache in {p.config.kv} ({where})")
        return f"offload {self.name}: " + ("; ".join(parts) or "nothing offloaded")


class Offloaded(Wrapped):
    """`inner`'s iterations with layers streamed in as `policy` says (see the module's docstring)."""

    def __init__(self, inner, policy: OffloadPolicy):
        super().__init__(inner)
        self.policy, self.place = policy, policy.placement
        self.layers = self.place.layers
        self.kv_layer = inner.kv.per_layer  # bytes of one token's KV in one layer, per GPU
        self.near = self.place.config.attention == "near"
        self.prefetch = self.place.config.prefetch
        chunk = self.place.config.chunk_kib
        self._chunk = policy.chunk_bytes() if chunk is None else chunk * 1024
        self._curves: dict[int, DecodeCurve] = {}
        self.note = policy.note()

    def _rate(self, path) -> float:
        return path.read_rate(self._chunk)

    def _io(self, batch: Batch) -> tuple[float, float]:
        """(per-layer seconds on the link, per-layer seconds of attention next to the KV)."""
        p = self.place
        io = near = 0.0
        if p.weights is not None:
            io += self.policy.layer_bytes(batch) / self._rate(p.weights)
        if p.kv is not None:
            ctx = batch.decode_ctx_sum + sum(batch.prefill_ctx)  # cached tokens the layer's attention reads
            read = self.kv_layer * ctx
            if self.near:
                near = read / (p.kv.tier.near_gbs * 1e9)
            else:
                io += read / self._rate(p.kv)
            io += self.kv_layer * batch.num_tokens / (p.kv.write_gbs * 1e9)  # the new tokens' KV written back
        return io, near

    def _device_batch(self, batch: Batch) -> Batch:
        """The part of `batch` the device runs: with attention next to the KV, decodes attend over nothing here."""
        if self.near and batch.num_decodes:
            return Batch(batch.num_decodes, batch.num_decodes * batch.decode_q, batch.prefill_lens, batch.prefill_ctx,
                         batch.decode_q, batch.prefill_layers)  # fmt: skip
        return batch

    def _layer(self, batch: Batch) -> tuple[float, float, float, float, float]:
        """(the device's compute, memory and other seconds, then per layer: seconds on the link, seconds computing)."""
        comp, mem, other = self.policy.device_split(self.inner, self._device_batch(batch))
        io, near = self._io(batch)
        return comp, mem, other, io, self.policy.layer_compute((comp + mem) / self.layers, near)

    def split(self, batch: Batch) -> tuple[float, float, float]:
        if batch.num_tokens == 0:
            return 0.0, 0.0, 0.0
        comp, mem, other, io, c = self._layer(batch)
        layers = self.layers * (max(c, io) if self.prefetch else io + c)
        return comp, mem, other + layers - comp - mem

    def decode_curve(self, n: int) -> DecodeCurve:
        curve = self._curves.get(n)
        if curve is None:
            rows = [self.split(Batch(n, int(round(n * max(x, 1.0))))) for x in GRID]
            comp, _, other = rows[0]
            seconds = np.array([sum(r) for r in rows])
            curve = self._curves[n] = DecodeCurve(comp, other, GRID, seconds)
        return curve

    def io_bound(self, batch: Batch) -> bool:
        """Whether the link, not the device, sets the pace of `batch`'s layers."""
        *_, io, c = self._layer(batch)
        return io > c


def io_note(pool, ctx: int = 1024) -> str:
    """One line for a pool's plan notes: what was offloaded, a one-request decode's time and up to which batch the
    link sets the pace."""
    if pool.memory.placement.idle:
        return f"offload: {pool.model.name} fits on {pool.gpu.name} whole, so nothing is offloaded"
    perf, most = pool.perf, pool.engine.max_num_seqs
    while not isinstance(perf, Offloaded):
        perf = perf.inner
    one = sum(perf.split(Batch.decode(1, ctx)))
    n = 1
    while n < most and perf.io_bound(Batch.decode(n, ctx)):
        n = min(most, 2 * n)
    if perf.io_bound(Batch.decode(n, ctx)):
        bound = f"the link sets the pace of every batch up to max_num_seqs {most}"
    else:
        bound = f"the link sets the pace of batches under {n} requests" if n > 1 else "the device sets the pace"
    return f"offload: a decode of one request at {ctx} tokens of context takes {one * 1e3:.0f} ms; {bound}"


def offloaded(perf, model, placement: Placement) -> Offloaded:
    """`perf` with the placement's policy streaming layers in."""
    from servesim.offload import OFFLOADS

    cfg = placement.config
    return Offloaded(perf, OFFLOADS.get(cfg.policy)(cfg, model, placement))
