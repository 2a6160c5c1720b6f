"""The CPU KV tier: what swapping a preempted request's KV cache out to host memory and back costs.

A swap copies the request's blocks between GPU and host memory over the GPU's host link
(`GPUSpec.host_gbs`; each GPU of a tensor-parallel replica copies its own shard over its
own link). vLLM's paged cache keeps each layer's keys and values in separate tensors and
copies block by block, so one request's swap is blocks x layers x 2 small copies, and each
copy has a fixed cost besides its bytes. That fixed cost is the granularity effect
FastSwitch (Shen et al., arXiv 2411.18424) is about: it allocates a request's blocks in
contiguous groups and copies a group at once. Measured on an H200 over PCIe Gen5
(docs/validation/host_copy_h200.csv): 55 GB/s for large copies and about 2.3 us a copy
when the copies are issued from a CUDA graph (8.5 us from a Python loop), so a 32 KiB copy
(one 16-token block of one layer of Llama-3.1-8B) moves at 10-11 GB/s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from servesim.kv_geometry import KVGeometry

COPY_US = 2.3  # fixed cost of one host<->device copy, measured (above)


@dataclass(frozen=True)
class SwapCost:
    """Seconds to copy n blocks of one request either way, and how many blocks the host tier holds."""

    block_bytes: float  # one block of one layer's keys (or values), per GPU
    tensors: int  # per-layer tensors a block lives in: layers x 2 (keys and values), x 1 for MLA
    host_gbs: float
    group_blocks: int = 1  # blocks moved by one copy (1: vLLM's block-by-block; more: contiguous groups)
    copy_us: float = COPY_US
    host_blocks: int = 0  # capacity of the CPU tier, blocks

    @classmethod
    def of(cls, kv: KVGeometry, block_size: int, host_gbs: float, group_blocks: int, swap_space_gib: float) -> SwapCost:
        """The tier of a replica of KV geometry `kv`, `swap_space_gib` of host memory per GPU."""
        block = kv.block_bytes(block_size)  # on one GPU, all its tensors
        host_blocks = int(swap_space_gib * 2**30 // block)
        return cls(block / kv.tensors, kv.tensors, host_gbs, group_blocks, host_blocks=host_blocks)

    def __call__(self, blocks: int) -> float:
        copies = math.ceil(blocks / self.group_blocks) * self.tensors
        return copies * self.copy_us * 1e-6 + blocks * self.tensors * self.block_bytes / (self.host_gbs * 1e9)
