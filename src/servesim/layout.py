"""How one replica of a model is spread over GPUs: tensor, pipeline, data-parallel attention and expert parallelism.

A replica spans tp x pp x dp GPUs: pp pipeline stages of consecutive layers, each stage
dp data-parallel attention ranks (dp is 1 unless asked), each rank a tensor-parallel group
of tp GPUs. A rank runs attention for its own requests, with its own KV cache; an MoE
layer spans the stage's dp x tp GPUs. Expert parallelism lives inside that group, as in
vLLM (`--enable-expert-parallel`, with `--data-parallel-size` for DP attention) and SGLang
(`--ep-size`, `--enable-dp-attention`): the experts of each MoE layer are spread whole over
ep groups of dp x tp / ep GPUs, and each expert is split over its group's GPUs. So ep divides
dp x tp and adds no GPUs. With dp = ep = 64 this is DeepSeek-V3's wide expert parallelism:
attention data parallel, each GPU holding whole experts.

Every rule about a layout is checked here, once, when a deployment is planned
(`sim/deployment.py`); the performance model, the memory plan, the KV geometry and the
search then take the checked `Layout` and ask it for GPU counts and stage sizes.
"""

from __future__ import annotations

from dataclasses import dataclass

from servesim.errors import ServesimError
from servesim.models import ModelSpec


@dataclass(frozen=True)
class Layout:
    tp: int = 1
    pp: int = 1
    ep: int = 1
    gpus_per_node: int = 8
    dp: int = 1

    @classmethod
    def of(cls, engine, gpus_per_node: int = 8) -> Layout:
        return cls(engine.tp, engine.pp, engine.ep, gpus_per_node, getattr(engine, "dp", 1))

    @property
    def gpus(self) -> int:
        """GPUs of one replica."""
        return self.tp * self.pp * self.dp

    @property
    def moe_gpus(self) -> int:
        """GPUs an MoE layer spans: a stage's data-parallel ranks' tensor-parallel groups."""
        return self.tp * self.dp

    @property
    def streams(self) -> int:
        """Micro-batch streams in flight on each attention rank (vLLM's virtual engines): one per pipeline stage;
        they share the rank's KV cache."""
        return self.pp

    @property
    def engines(self) -> int:
        """Engines a replica runs, each on tp GPUs at a time: its streams on each data-parallel attention rank."""
        return self.pp * self.dp

    def stage_layers(self, model: ModelSpec) -> int:
        """Layers of the largest pipeline stage."""
        return -(-model.layers // self.pp)

    def label(self) -> str:
        """As the field writes a layout: TP4, TP2 PP2, TP8 EP8, TP1 DP16 EP16."""
        return f"TP{self.tp}" + (f" PP{self.pp}" if self.pp > 1 else "") + (f" DP{self.dp}" if self.dp > 1 else "") \
            + (f" EP{self.ep}" if self.ep > 1 else "")  # fmt: skip

    def check(self, model: ModelSpec) -> list[str]:
        """Refuse a layout the model cannot take (one clear line); return notes on what was assumed."""
        m = model
        if self.tp < 1 or m.heads % self.tp:
            raise ServesimError(f"tensor parallel size {self.tp} must divide {m.name}'s {m.heads} attention heads")
        if self.pp < 1 or self.pp > m.layers:
            raise ServesimError(f"pipeline parallel size {self.pp} must be between 1 and {m.name}'s {m.layers} layers")
        if self.ep < 1 or self.dp < 1:
            raise ServesimError(f"expert and data parallel sizes must be at least 1, not EP {self.ep} and DP {self.dp}")
        if self.dp > 1 and not m.is_moe:
            raise ServesimError(f"data-parallel attention (DP {self.dp}) is for MoE models, whose experts it shares; "
                                f"{m.name} is dense: use --replicas {self.dp} instead")  # fmt: skip
        if self.ep > 1:
            if not m.is_moe or m.num_experts % self.ep:
                raise ServesimError(f"expert parallel size {self.ep} needs a MoE model whose expert count it divides")
            if self.moe_gpus % self.ep:
                dp = f" x DP {self.dp}" if self.dp > 1 else ""
                raise ServesimError(
                    f"expert parallel size {self.ep} must divide the GPUs an MoE layer spans (TP {self.tp}{dp} = "
                    f"{self.moe_gpus}): experts are spread over them (as in vLLM and SGLang); use --tp {self.ep} "
                    f"--ep {self.ep}, or --dp {self.ep // self.tp if self.ep % self.tp == 0 else self.ep} with "
                    "data-parallel attention"
                )
        if m.is_moe and self.moe_gpus // self.ep > m.moe_intermediate:
            raise ServesimError(f"an MoE layer over TP {self.tp} x DP {self.dp} / EP {self.ep} would split each of "
                                f"{m.name}'s experts over more GPUs than its {m.moe_intermediate} columns; lower --dp "
                                "or --tp, or raise --ep")  # fmt: skip
        notes = []
        if self.tp > self.gpus_per_node:
            nodes = -(-self.tp // self.gpus_per_node)
            notes.append(f"TP {self.tp} spans {nodes} nodes of {self.gpus_per_node} GPUs: its all-reduces run over "
                         "the network, not NVLink")  # fmt: skip
        if self.ep > 1 and self.moe_gpus > self.gpus_per_node:
            nodes = -(-self.moe_gpus // self.gpus_per_node)
            notes.append(f"EP {self.ep} spans {nodes} nodes of {self.gpus_per_node} GPUs: its all-to-alls run over "
                         "the network, not NVLink")  # fmt: skip
        if m.layers % self.pp:
            small = m.layers // self.pp
            notes.append(f"PP {self.pp} does not divide {m.name}'s {m.layers} layers: stages hold {small} or "
                         f"{small + 1}; the largest sets the KV cache size")  # fmt: skip
        return notes
