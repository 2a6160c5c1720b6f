"""The search space: every combination of the listed choices is one candidate deployment."""

from __future__ import annotations

import hashlib
import itertools
import json
from dataclasses import asdict, dataclass
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from servesim.config import EngineConfig, PoolConfig, Scenario, parse_numbers, validation_message
from servesim.errors import ServesimError
from servesim.layout import Layout
from servesim.sim.deployment import infeasible as deployment_infeasible

Positive = Annotated[int, Field(ge=1)]


class SearchSpace(BaseModel):
    """Choices to combine; `pd` adds disaggregated candidates as 'xPyD' prefill:decode replica counts."""

    model_config = ConfigDict(extra="forbid")

    gpus: list[str] = Field(default_factory=lambda: ["h100-sxm"], min_length=1)
    tp: list[Positive] = Field(default_factory=lambda: [1], min_length=1)
    pp: list[Positive] = Field(default_factory=lambda: [1], min_length=1)
    ep: list[Positive] = Field(default_factory=lambda: [1], min_length=1, description="expert parallel sizes (MoE)")
    replicas: list[Positive] = Field(default_factory=lambda: [1], min_length=1)
    schedulers: list[str] = Field(default_factory=lambda: ["vllm"], min_length=1)
    max_num_seqs: list[Positive] = Field(default_factory=lambda: [256], min_length=1)
    max_num_batched_tokens: list[Positive] = Field(default_factory=lambda: [8192], min_length=1)
    pd: list[str] = Field(default_factory=list, description="e.g. ['1P1D', '2P1D']")
    power_caps: list[Annotated[float, Field(gt=0)]] = Field(
        default_factory=list, description="per-GPU power caps to try, W, beside uncapped (energy-optimal settings)")


def _split(text: str) -> list[str]:
    return [x for x in text.replace(" ", "").split(",") if x]


def name_list(text: str, flag: str) -> list[str]:
    names = _split(text)
    if not names:
        raise ServesimError(f"{flag} '{text}' names nothing; give a comma-separated list")
    return names


def int_list(text: str, flag: str) -> list[int]:
    """A comma list of positive integers, or one clear line."""
    try:
        values = [int(x) for x in _split(text)]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise ServesimError(f"{flag} '{text}' must be a comma-separated list of positive integers, e.g. 1,2,4")
    return values


def space_from(section: dict, **flags: str | None) -> SearchSpace:
    """The search space of a [search] table, with comma-list flags (given ones) taking precedence."""
    data = dict(section)
    for name, text in flags.items():
        if text is None:
            continue
        kind = SearchSpace.model_fields[name].annotation
        if kind == list[str]:
            data[name] = name_list(text, "--" + name.replace("_", "-"))
            continue
        if name == "power_caps":
            data[name] = parse_numbers(text, "--power-caps")
            continue
        data[name] = int_list(text, "--" + name.replace("_", "-"))
    try:
        return SearchSpace.model_validate(data)
    except ValidationError as e:
        raise ServesimError(validation_message(e, "search space")) from None


@dataclass(frozen=True)
class Candidate:
    gpu: str
    tp: int
    pp: int
    replicas: int  # co-located replicas; with pd, the prefill and decode counts below
    scheduler: str
    max_num_seqs: int
    max_num_batched_tokens: int
    prefill: int = 0
    decode: int = 0
    ep: int = 1
    power_cap: float | None = None  # per-GPU, W (None: the base scenario's)

    @property
    def disaggregated(self) -> bool:
        return self.prefill > 0

    @property
    def layout(self) -> Layout:
        return Layout(self.tp, self.pp, self.ep)

    @property
    def gpus(self) -> int:
        count = self.prefill + self.decode if self.disaggregated else self.replicas
        return count * self.layout.gpus

    @property
    def base(self) -> Candidate:
        """The same deployment with one replica: its capacity seeds the search of this one."""
        return Candidate(self.gpu, self.tp, self.pp, 1, self.scheduler, self.max_num_seqs, self.max_num_batched_tokens,
                         ep=self.ep, power_cap=self.power_cap)  # fmt: skip

    def label(self) -> str:
        count = f"{self.prefill}P{self.decode}D" if self.disaggregated else f"x{self.replicas}"
        cap = f" cap={self.power_cap:g}W" if self.power_cap is not None else ""
        return (
            f"{self.gpu} {self.layout.label()} {count} {self.scheduler} seqs={self.max_num_seqs} "
            f"tokens={self.max_num_batched_tokens}{cap}"
        )

    def key(self, context: dict) -> str:
        """Stable identity of this evaluation: the candidate plus everything else that shapes its result."""
        blob = json.dumps({"candidate": asdict(self), "context": context}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()[:32]

    def scenario(self, base: Scenario) -> Scenario:
        engine = base.engine.model_copy(
            update=dict(
                tp=self.tp,
                pp=self.pp,
                ep=self.ep,
                scheduler=self.scheduler,
                max_num_seqs=self.max_num_seqs,
                max_num_batched_tokens=self.max_num_batched_tokens,
            )
        )
        engine = EngineConfig.model_validate(engine.model_dump())
        update: dict = {"gpu": self.gpu, "engine": engine, "replicas": self.replicas}
        if self.power_cap is not None:
            update["power"] = base.power.model_copy(update={"cap_w": self.power_cap})
        if self.disaggregated:  # each pool has its own replicas and router
            update["router"] = None
            update["prefill"] = PoolConfig(gpu=self.gpu, replicas=self.prefill, engine=engine)
            update["decode"] = PoolConfig(gpu=self.gpu, replicas=self.decode, engine=engine)
        return base.model_copy(update=update)


def _pd(text: str) -> tuple[int, int]:
    t = text.upper().replace(" ", "")
    p, _, d = t.partition("P")
    try:
        if not d.endswith("D") or int(p) < 1 or int(d[:-1]) < 1:
            raise ValueError
        return int(p), int(d[:-1])
    except ValueError:
        msg = f"disaggregation '{text}' must look like 2P1D (prefill:decode replicas, each at least 1)"
        raise ServesimError(msg) from None


def expand(space: SearchSpace) -> list[Candidate]:
    cands = []
    choices = (space.gpus, space.tp, space.pp, space.ep, space.schedulers, space.max_num_seqs,
               space.max_num_batched_tokens, [None, *space.power_caps])  # fmt: skip
    for gpu, tp, pp, ep, sched, seqs, tokens, cap in itertools.product(*choices):
        if tokens < seqs:
            continue  # vLLM requires max_num_batched_tokens >= max_num_seqs
        cands += [Candidate(gpu, tp, pp, r, sched, seqs, tokens, ep=ep, power_cap=cap) for r in space.replicas]
        cands += [Candidate(gpu, tp, pp, 1, sched, seqs, tokens, *_pd(x), ep=ep, power_cap=cap) for x in space.pd]
    return cands


def infeasible(cand: Candidate, base: Scenario) -> str | None:
    """Why the candidate cannot run at all, by the rules `simulate` applies (sim/deployment.py)."""
    try:
        sc = cand.scenario(base)
    except ValidationError as e:  # the derived engine settings
        return validation_message(e)
    return deployment_infeasible(sc)
