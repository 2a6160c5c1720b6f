"""What a user writes for `servesim pipeline`: the model, the GPUs, the parallel layout and the schedule."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servesim.config import validation_message
from servesim.errors import ServesimError
from servesim.files import read_structured


class PipelineConfig(BaseModel):
    """One training step of a pipeline-parallel model: m micro-batches of `micro_batch_size` x `seq_len`."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    model: str = "llama-3.1-70b"
    gpu: str = "h100-sxm"
    gpu_file: Path | None = None
    pp: int = Field(8, ge=1, description="pipeline stages (devices)")
    tp: int = Field(4, ge=1, description="tensor parallel size of each stage")
    micro_batches: int = Field(32, ge=1, description="micro-batches per step (m)")
    micro_batch_size: int = Field(1, ge=1, description="sequences per micro-batch (b)")
    seq_len: int = Field(4096, ge=1, description="tokens per sequence (s)")
    schedule: str = Field("1f1b", description="`servesim pipeline --list` names them")
    chunks: int | None = Field(None, ge=1, description="model chunks per device (v); default: the schedule's")
    perf_model: Literal["auto", "profiled", "roofline"] = "auto"
    gpus_per_node: int = Field(8, ge=1)
    network_gbs: float = Field(50.0, gt=0, description="inter-node bandwidth per GPU, GB/s")
    memory_limit_gib: float | None = Field(None, gt=0, description="per-GPU limit; default: the GPU's memory")


def load_pipeline_config(path: str | Path, overrides: dict) -> PipelineConfig:
    """A TOML file's settings (if given) with the flags that were set on top."""
    data = read_structured(path, "pipeline file") if path else {}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return PipelineConfig(**data)
    except ValidationError as e:
        raise ServesimError(validation_message(e, str(path or ""))) from None
