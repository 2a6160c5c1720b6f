"""A device's memory hierarchy: its own memory, then slower tiers (host DRAM, SSD, flash) behind links.

A tier has a capacity, a read and a write bandwidth and a per-transfer latency with some
transfers in flight (an NVMe or UFS queue). Data reaches the device from a tier over the
links on its path, so the slowest of them sets the pace: a discrete GPU reads host DRAM
over PCIe at its measured copy rate (`GPUSpec.host_gbs`), and an SSD behind the host
through the drive's own link and then PCIe again. A CPU or a system-on-chip (Apple
M-series, Jetson, phone) computes out of DRAM itself, so its tiers start at the flash.

Reading `chunk` bytes at a time, each read pays the latency, and `queue_depth` reads
overlap, so small reads see a fraction of the bandwidth: LLM in a flash (Alizadeh et al.,
2023) reads flash in larger bundles for exactly this reason.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, model_validator

# Link bandwidths per direction, GB/s, raw after line coding. PCIe: 8/16/32 GT/s per lane (Gen3/4/5) with
# 128b/130b coding (PCI-SIG base specifications 3.0, 4.0, 5.0). UFS: 2 lanes of M-PHY HS-G4 (11.6 Gb/s, UFS 3.1)
# or HS-G5 (23.2 Gb/s, UFS 4.0) with 8b/10b coding (JEDEC JESD220E, JESD220F). "internal": on the device's own
# fabric, no link of its own (an SoC's NAND controller).
LINKS: dict[str, float] = {
    "pcie3x16": 15.75,
    "pcie4x4": 7.88,
    "pcie4x16": 31.5,
    "pcie5x4": 15.75,
    "pcie5x16": 63.0,
    "ufs3.1": 2.32,
    "ufs4.0": 4.64,
    "internal": 1e9,
}

# The largest tier of each medium that exists as one device's share: a 32 TiB 8-socket server's DRAM, a PiB of
# flash (a full NVMe shelf). Anything larger is a typo (GiB given as bytes, TiB as GiB).
MAX_GIB = {"dram": 32 * 1024, "ssd": 1024**2, "flash": 1024**2}
MIN_GBS = 1e-3  # 1 MB/s: slower than any link worth modelling


class TierSpec(BaseModel, frozen=True, extra="forbid", allow_inf_nan=False):
    """One memory tier below a device's own memory."""

    name: str = Field(description="host, ssd, flash, ...: what offload settings name")
    medium: Literal["dram", "ssd", "flash"]
    capacity_gib: float = Field(gt=0, description="usable capacity for this device, GiB")
    read_gbs: float = Field(description="the medium's sequential read bandwidth, GB/s")
    write_gbs: float = Field(description="sequential write bandwidth, GB/s")
    latency_us: float = Field(0.0, ge=0, le=1e6, description="fixed cost of one transfer (a read request)")
    queue_depth: int = Field(1, ge=1, le=4096, description="transfers in flight at once")
    near_gbs: float | None = Field(None, gt=0, le=1e4, description="bandwidth at which compute next to this tier "
                                   "reads it (the host CPU for DRAM, a computational SSD's own flash channels); "
                                   "None: nothing computes there")  # fmt: skip
    link: str = Field("internal", description=f"the link to the device: one of {', '.join(LINKS)}")
    source: str = ""

    @model_validator(mode="after")
    def _plausible(self):
        top = MAX_GIB[self.medium]
        if self.capacity_gib > top:
            raise ValueError(f"tier {self.name}: {self.capacity_gib:g} GiB of {self.medium} is more than any one "
                             f"device has (at most {top:,} GiB); give capacity_gib in GiB")  # fmt: skip
        for what, gbs in (("read_gbs", self.read_gbs), ("write_gbs", self.write_gbs)):
            if not MIN_GBS <= gbs <= 1e4:
                raise ValueError(f"tier {self.name}: {what} {gbs:g} GB/s is outside [0.001, 10000] GB/s (1 MB/s to "
                                 "10 TB/s); give it in GB/s")  # fmt: skip
        if self.link not in LINKS:
            raise ValueError(f"tier {self.name}: unknown link '{self.link}'; use one of {', '.join(LINKS)}")
        return self

    @property
    def capacity_bytes(self) -> float:
        return self.capacity_gib * 2**30


class TierPath:
    """How a tier's data reaches the device: the slowest link on the way and the tier's own latency."""

    __slots__ = ("tier", "read_gbs", "write_gbs")

    def __init__(self, tier: TierSpec, cap_gbs: float = float("inf")):
        link = min(LINKS[tier.link], cap_gbs)
        self.tier = tier
        self.read_gbs = min(tier.read_gbs, link)
        self.write_gbs = min(tier.write_gbs, link)

    def read_rate(self, chunk_bytes: float | None = None) -> float:
        """Bytes per second reading `chunk_bytes` at a time (None: one large sequential stream)."""
        bw = self.read_gbs * 1e9
        if chunk_bytes is None or self.tier.latency_us == 0:
            return bw
        per_read = self.tier.latency_us * 1e-6 + chunk_bytes / bw
        return min(bw, self.tier.queue_depth * chunk_bytes / per_read)

    def read_seconds(self, nbytes: float, chunk_bytes: float | None = None) -> float:
        """Seconds to bring `nbytes` to the device in reads of `chunk_bytes`."""
        if nbytes <= 0:
            return 0.0
        return self.tier.latency_us * 1e-6 + nbytes / self.read_rate(chunk_bytes)

    def write_seconds(self, nbytes: float) -> float:
        return 0.0 if nbytes <= 0 else self.tier.latency_us * 1e-6 + nbytes / (self.write_gbs * 1e9)
