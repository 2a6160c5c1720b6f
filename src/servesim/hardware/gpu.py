"""Accelerator descriptions and the catalog they come from."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from servesim.errors import ServesimError
from servesim.files import read_structured
from servesim.hardware.tiers import TierPath, TierSpec

_CATALOG = Path(__file__).with_name("catalog.toml")
USER_FILE_ENV = "SERVESIM_GPU_FILE"


class GPUSpec(BaseModel, frozen=True, extra="forbid", allow_inf_nan=False):
    """One accelerator, as its datasheet describes it (unknown fields and non-finite numbers refused)."""

    name: str
    display: str = ""
    aliases: list[str] = Field(default_factory=list)
    bf16_tflops: float = Field(gt=0, description="dense BF16 tensor TFLOP/s")
    fp8_tflops: float = Field(0.0, ge=0, description="dense FP8 tensor TFLOP/s; 0 if unsupported")
    memory_gib: float = Field(gt=0, description="device memory as the runtime reports it")
    mem_bw_gbs: float = Field(gt=0, description="memory bandwidth, GB/s")
    link_gbs: float = Field(gt=0, description="intra-node link bandwidth per GPU, GB/s, both ways")
    host_gbs: float = Field(55.0, gt=0, description="host<->device copy bandwidth per GPU, GB/s (PCIe Gen5 x16, "
                            "measured on an H200: 55)")  # fmt: skip
    tdp_w: float = Field(gt=0)
    idle_w: float = Field(0.0, ge=0)
    price_per_hour: float = Field(0.0, ge=0, description="USD per GPU-hour")
    source: str = ""
    kind: Literal["gpu", "cpu", "soc"] = Field(
        "gpu", description="gpu: a discrete accelerator with its own memory, behind PCIe; cpu: computes out of host "
        "DRAM (memory_gib, mem_bw_gbs are the DRAM's); soc: CPU, GPU and NPU sharing one unified DRAM (Apple "
        "M-series, Jetson, phones)")  # fmt: skip
    tiers: tuple[TierSpec, ...] = Field((), description="memory tiers below the device's own, fastest first "
                                        "(hardware/tiers.py)")  # fmt: skip
    sustained_w: float | None = Field(None, gt=0, description="power the device holds indefinitely before it "
                                      "throttles (a phone's or Jetson's thermal limit); default: tdp_w")  # fmt: skip
    boost_s: float = Field(0.0, ge=0, description="seconds at full power before throttling to sustained_w")
    battery_wh: float | None = Field(None, gt=0, le=1000, description="battery energy, Wh (edge devices)")

    @model_validator(mode="after")
    def _edge(self):
        names = [t.name for t in self.tiers]
        if len(set(names)) < len(names):
            raise ValueError(f"tier names must differ, not {names}")
        if self.sustained_w is not None and self.sustained_w > self.tdp_w:
            raise ValueError(f"sustained_w {self.sustained_w:g} W is above tdp_w {self.tdp_w:g} W; it is the power "
                             "held after throttling")  # fmt: skip
        if self.boost_s and self.sustained_w is None:
            raise ValueError("boost_s needs sustained_w: the power the device throttles to")
        return self

    @property
    def throttles(self) -> bool:
        """Whether it drops to a lower sustained power once hot (sim/thermal.py)."""
        return self.sustained_w is not None and self.sustained_w < self.tdp_w

    def tier_path(self, name: str) -> TierPath:
        """How tier `name` reaches the device: a discrete GPU reads every tier through host memory over its PCIe
        copy rate (host_gbs)."""
        for t in self.tiers:
            if t.name == name:
                return TierPath(t, self.host_gbs if self.kind == "gpu" else float("inf"))
        have = ", ".join(t.name for t in self.tiers) or "none"
        raise ServesimError(f"{self.name} has no memory tier '{name}' (its tiers: {have}); add one as "
                            f"[[{self.name}.tiers]] in a --gpu-file")  # fmt: skip

    @property
    def memory_bytes(self) -> float:
        return self.memory_gib * 2**30

    def peak_flops(self, dtype: str = "bf16") -> float:
        tflops = self.fp8_tflops if dtype == "fp8" else self.bf16_tflops
        if tflops <= 0:
            raise ServesimError(f"GPU {self.name} has no {dtype} tensor cores; use --dtype bf16")
        return tflops * 1e12


def _parse(table: dict, origin: str) -> dict[str, GPUSpec]:
    gpus = {}
    for key, fields in table.items():
        if not isinstance(fields, dict):
            raise ServesimError(f"{origin}: [{key}] must be a table of GPU fields (bf16_tflops, memory_gib, ...), "
                                f"not a {type(fields).__name__}")  # fmt: skip
        if "name" in fields:
            raise ServesimError(f"{origin}: GPU [{key}] has a 'name' field; the table's key [{key}] is its name")
        try:
            gpus[key.lower()] = GPUSpec(name=key.lower(), **fields)
        except ValidationError as e:
            err = e.errors()[0]
            loc = ".".join(str(x) for x in err["loc"])
            raise ServesimError(f"{origin}: GPU [{key}] field {loc}: {err['msg']}") from None
    return gpus


def load_gpu_file(path: str | Path) -> dict[str, GPUSpec]:
    """Read a TOML file of `[name]` tables with GPUSpec fields."""
    return _parse(read_structured(path, "GPU file"), str(path))


@cache
def _builtin() -> dict[str, GPUSpec]:
    return _parse(tomllib.loads(_CATALOG.read_text()), "built-in GPU catalog")


def catalog(extra_file: str | Path | None = None) -> dict[str, GPUSpec]:
    """Built-in GPUs, plus those of `extra_file` or $SERVESIM_GPU_FILE (which win)."""
    gpus = dict(_builtin())
    extra = extra_file or os.environ.get(USER_FILE_ENV)
    if extra:
        gpus.update(load_gpu_file(extra))
    return gpus


def check_device(claimed: GPUSpec, device_name: str, memory_gib: float, tolerance: float = 0.03) -> None:
    """Refuse measurements labelled with a GPU other than the one they run on: the device's memory, as the
    runtime reports it, must be the claimed GPU's `memory_gib` within `tolerance`, and its name must hold the
    claimed GPU's family (h100 in "NVIDIA H100 80GB HBM3") where it holds any catalog GPU's family. A profile
    labelled h200 but taken on an H100 would price every H200 run with H100 timings."""

    def fits(g: GPUSpec) -> bool:
        return abs(memory_gib - g.memory_gib) <= tolerance * g.memory_gib

    gpus = [g for g in catalog().values() if g.kind == "gpu"]  # (a CPU's or SoC's memory is its DRAM's)
    named = [g for g in gpus if g.name.split("-")[0] in device_name.lower()]
    if fits(claimed) and (claimed in named or not named):
        return
    near = [g.name for g in (named or gpus) if fits(g)]
    fix = f"pass --gpu {near[0]}" if near else "add this GPU with --gpu-file and pass its name"
    raise ServesimError(f"this machine's GPU is a {device_name} with {memory_gib:.1f} GiB, not {claimed.name} "
                        f"({claimed.memory_gib:g} GiB); {fix}")


def get_gpu(name: str, extra_file: str | Path | None = None) -> GPUSpec:
    """Look a GPU up by name or alias (case-insensitive)."""
    key = name.strip().lower()
    gpus = catalog(extra_file)
    if key in gpus:
        return gpus[key]
    for gpu in gpus.values():
        if key in (a.lower() for a in gpu.aliases):
            return gpu
    known = ", ".join(sorted(gpus))
    raise ServesimError(f"unknown GPU '{name}'; known GPUs: {known} (add your own with --gpu-file)")
