"""How one replica of a model is spread over GPUs: tensor, pipeline and expert parallelism.

A replica spans tp x pp GPUs: pp pipeline stages of consecutive layers, each stage a
tensor-parallel group of tp GPUs. Expert parallelism lives inside the tensor-parallel
group, as in vLLM (`--enable-expert-parallel`) and SGLang (`--ep-size`): the experts of
each MoE layer are spread whole over ep groups of tp/ep GPUs, and each expert is split
over its group's GPUs. So ep divides tp and adds no GPUs; attention stays tensor parallel.

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

    @classmethod
    def of(cls, engine, gpus_per_node: int = 8) -> Layout:
        return cls(engine.tp, engine.pp, engine.ep, gpus_per_node)

    @property
    def gpus(self) -> int:
        """GPUs of one replica."""
        return self.tp * self.pp

    @property
    def streams(self) -> int:
        """Micro-batch streams in flight (vLLM's virtual engines): one per pipeline stage."""
        return self.pp

    def stage_layers(self, model: ModelSpec) -> int:
        """Layers of the largest pipeline stage."""
        return -(-model.layers // self.pp)

    def label(self) -> str:
        """As the field writes a layout: TP4, TP2 PP2, TP8 EP8."""
        return f"TP{self.tp}" + (f" PP{self.pp}" if self.pp > 1 else "") + (f" EP{self.ep}" if self.ep > 1 else "")

    def check(self, model: ModelSpec) -> list[str]:
        """Refuse a layout the model cannot take (one clear line); return notes on what was assumed."""
        m = model
        if self.tp < 1 or m.heads % self.tp:
            raise ServesimError(f"tensor parallel size {self.tp} must divide {m.name}'s {m.heads} attention heads")
        if self.pp < 1 or self.pp > m.layers:
            raise ServesimError(f"pipeline parallel size {self.pp} must be between 1 and {m.name}'s {m.layers} layers")
        if self.ep < 1:
            raise ServesimError(f"expert parallel size {self.ep} must be at least 1")
        if self.ep > 1:
            if not m.is_moe or m.num_experts % self.ep:
                raise ServesimError(f"expert parallel size {self.ep} needs a MoE model whose expert count it divides")
            if self.tp % self.ep:
                raise ServesimError(
                    f"expert parallel size {self.ep} must divide tensor parallel size {self.tp}: experts are spread "
                    f"over the replica's tensor-parallel GPUs (as in vLLM and SGLang); use --tp {self.ep} --ep "
                    f"{self.ep} for {self.ep} GPUs"
                )
        notes = []
        if self.tp > self.gpus_per_node:
            nodes = -(-self.tp // self.gpus_per_node)
            notes.append(f"TP {self.tp} spans {nodes} nodes of {self.gpus_per_node} GPUs: its all-reduces run over "
                         "the network, not NVLink")  # fmt: skip
        if m.layers % self.pp:
            small = m.layers // self.pp
            notes.append(f"PP {self.pp} does not divide {m.name}'s {m.layers} layers: stages hold {small} or "
                         f"{small + 1}; the largest sets the KV cache size")  # fmt: skip
        return notes
