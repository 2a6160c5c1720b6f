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

Two partitions working at once (semi-PD's two workers) are priced from a measured pair,
`profiles/h100-sxm/sm_pair.csv` (a copy of docs/validation/h100_green_context_pair.csv,
from `.devrun/green2.py`): a GEMM in one green context and GEMVs in the other, each timed
alone on the whole GPU, alone on its partition, and both launched at once. Together they
took 1.25-1.65x as long as running the two in turn on the whole GPU, and only 7-9% of
the shorter one's partition time hid under the longer at 64-96 GEMM SMs (22% at 112, 69%
at 48): the partitions did not give each kernel its own SMs and bandwidth at once.
`PairContention` prices this as processor sharing fitted to the pair: while both run,
each progresses at 1 / (2 - h) of its speed alone on its partition, h the hidden fraction
measured at the nearest splits (interpolated in the GEMM's share), which reproduces every
measured pair's time. What is assumed: that a prefill iteration's kernels contend as the
GEMM did and a decode iteration's as the GEMVs did; GPUs without the table take the
H100's.
"""

from __future__ import annotations

import numpy as np

from servesim.perf.base import DecodeCurve, Wrapped
from servesim.perf.profile_data import BUILTIN

SATURATING_SHARE = 0.4  # fallback: share of SMs at which bandwidth saturates
PAIR_TABLE = "sm_pair.csv"  # two partitions at once: a profile's own, else the H100's (measured)


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


class PairContention:
    """How two workers on disjoint SM partitions of one GPU slow each other while both run, from a measured pair
    (the module's docstring): `hidden(x)` is the fraction of the shorter kernel's partition time that hid under
    the longer's with the GEMM on a share x of the partitioned SMs."""

    def __init__(self, shares: np.ndarray, hidden: np.ndarray, source: str):
        order = np.argsort(shares)
        self.shares, self._hidden, self.source = shares[order], np.clip(hidden[order], 0.0, 1.0), source

    @classmethod
    def for_profile(cls, profile) -> PairContention:
        """The profile's measured pair, else the H100's."""
        path = None if profile is None else profile.path / PAIR_TABLE
        own = path is not None and path.is_file()
        if not own:
            path = BUILTIN / "h100-sxm" / PAIR_TABLE
        t = np.genfromtxt(path, delimiter=",", names=True)
        part = np.stack([t["gemm_part_s"], t["gemv_part_s"]])
        hidden = (part.sum(axis=0) - t["both_s"]) / part.min(axis=0)
        source = "measured pair of green contexts" + ("" if own else " on the H100")
        return cls(t["gemm_sms"] / (t["gemm_sms"] + t["gemv_sms"]), hidden, source)

    def hidden(self, share: float) -> float:
        return float(np.interp(share, self.shares, self._hidden))

    def slowdown(self, share: float, overlap: float) -> float:
        """Factor on a worker's GPU seconds when the other worker runs for a fraction `overlap` of its time, the
        prefill worker on `share` of the SMs: 1 alone, 2 - h throughout (processor sharing: a pair alone for a
        and b seconds then takes max(a, b) + (1 - h) min(a, b), as measured)."""
        both = 1.0 / (2.0 - self.hidden(share))  # the speed of each while both run
        return 1.0 / (1.0 - overlap + overlap * both)


class SMSharedModel(Wrapped):
    """`inner`'s iterations on a share of the SMs: compute-bound seconds / compute(share), memory-bound
    seconds / memory(share), collectives and CPU unchanged; the GPU seconds times `slowdown` where the other
    worker on the GPU contends (semi-PD's controller sets it from `PairContention`). `share` may change between
    iterations (semi-PD's controller moves it)."""

    def __init__(self, inner, share: float, sm: SMShare, label: str):
        super().__init__(inner)
        self.sm, self.label = sm, label
        self._curves: dict[int, DecodeCurve] = {}
        self.slowdown = 1.0
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
        self._price()

    def contend(self, slowdown: float) -> None:
        """Price the GPU seconds of the next iterations `slowdown` times longer (1: as if alone on the GPU)."""
        self.slowdown = slowdown
        self._price()

    def _price(self) -> None:
        self._fc = float(self.sm.compute(self._share)) / self.slowdown
        self._fm = float(self.sm.memory(self._share)) / self.slowdown
        self._curves.clear()

    def split(self, batch) -> tuple[float, float, float]:
        comp, mem, other = self.inner.split(batch)
        return comp / self._fc, mem / self._fm, other

    def decode_curve(self, n: int) -> DecodeCurve:
        curve = self._curves.get(n)
        if curve is None:
            base = self.inner.decode_curve(n)
            fixed = base.comp + base.other
            comp = base.comp / self._fc
            seconds = comp + base.other + (base.seconds - fixed) / self._fm
            curve = self._curves[n] = DecodeCurve(comp, base.other, base.xs, seconds)
        return curve
