"""How fast an operator runs on a share of the GPU's streaming multiprocessors (SMs).

semi-PD and NanoFlow run prefill and decode, or compute- and memory-bound operators, side
by side on disjoint SM partitions. Compute scales with the SMs given; memory bandwidth
saturates well before all SMs, because a few SMs with enough loads in flight fill the
memory pipe. Measured on an H100 with CUDA green contexts (each operator launched inside a
partition of n SMs; `profiles/h100-sxm/sm_share.csv`, from `.devrun/mech.py`): a bf16
8192^3 GEMM reaches 7% of its full rate on 8 SMs (6%), 56% on 64 (48%), 94% on 112; a
decode-shaped GEMM that streams its 235 MB of weights reaches 77% of full bandwidth on 32
SMs (24%) and 88-100% from 48 SMs (36%) on. Without such a table (other GPUs, or the roofline
model) compute is taken as proportional to the share and bandwidth as saturating at 40% of
the SMs, the shape measured on the H100 (and a Triton streaming kernel with several blocks
per SM saturated at 32-48 of 132 SMs as well).
"""

from __future__ import annotations

import numpy as np

from servesim.perf.base import DecodeCurve, Wrapped

SATURATING_SHARE = 0.4  # fallback: share of SMs at which bandwidth saturates


class SMShare:
    """compute(s), memory(s): the fraction of the whole GPU's compute rate and memory bandwidth that an operator
    confined to a fraction s of the SMs reaches."""

    def __init__(self, shares: np.ndarray | None = None, compute: np.ndarray | None = None,
                 memory: np.ndarray | None = None):  # fmt: skip
        self.measured = shares is not None
        if shares is None:
            shares = np.linspace(0.0, 1.0, 11)
            compute, memory = shares, np.minimum(1.0, shares / SATURATING_SHARE)
        self.shares = np.concatenate([[0.0], shares]) if shares[0] > 0 else shares
        pad = (lambda a: np.concatenate([[0.0], a])) if shares[0] > 0 else (lambda a: a)
        self._compute, self._memory = pad(compute), pad(memory)

    @classmethod
    def for_profile(cls, profile) -> SMShare:
        """The measured curves of a profile's sm_share.csv, or the fallback shape."""
        table = None if profile is None else profile.raw.get("sm_share.csv")
        if table is None:
            return cls()
        sms, ops, secs = np.asarray(table.sms, float), np.asarray(table.op).astype(str), np.asarray(table.seconds)
        full = sms.max()

        def rate(prefix):
            rows = np.char.startswith(ops, prefix)
            order = np.argsort(sms[rows])
            s, t = sms[rows][order], secs[rows][order]
            r = t[-1] / t  # rate relative to all SMs
            return s / full, np.minimum(1.0, np.maximum.accumulate(r))  # more SMs never slower

        shares, compute = rate("gemm_")
        _, memory = rate("gemv_")
        return cls(shares, compute, memory)

    def compute(self, s):
        return np.interp(s, self.shares, self._compute)

    def memory(self, s):
        return np.interp(s, self.shares, self._memory)

    @property
    def source(self) -> str:
        return "measured SM-share curves" if self.measured else "SM-share curves assumed (compute proportional, " \
            f"bandwidth saturating at {SATURATING_SHARE:.0%} of the SMs)"


class SMSharedModel(Wrapped):
    """`inner`'s iterations on a share of the SMs: compute-bound seconds / compute(share), memory-bound
    seconds / memory(share), collectives and CPU unchanged. `share` may change between iterations (semi-PD's
    controller moves it)."""

    def __init__(self, inner, share: float, sm: SMShare, label: str):
        super().__init__(inner)
        self.sm, self.label = sm, label
        self._curves: dict[tuple[int, float], DecodeCurve] = {}
        self.share = share

    @property
    def note(self) -> str:
        return f"{self.label} on a share of the SMs ({self.sm.source})"

    @property
    def share(self) -> float:
        return self._share

    @share.setter
    def share(self, s: float) -> None:
        self._share = s
        self._fc, self._fm = float(self.sm.compute(s)), float(self.sm.memory(s))

    def split(self, batch) -> tuple[float, float, float]:
        comp, mem, other = self.inner.split(batch)
        return comp / self._fc, mem / self._fm, other

    def decode_curve(self, n: int) -> DecodeCurve:
        key = (n, self._share)
        curve = self._curves.get(key)
        if curve is None:
            base = self.inner.decode_curve(n)
            fixed = base.comp + base.other
            comp = base.comp / self._fc
            seconds = comp + base.other + (base.seconds - fixed) / self._fm
            curve = self._curves[key] = DecodeCurve(comp, base.other, base.xs, seconds)
        return curve
