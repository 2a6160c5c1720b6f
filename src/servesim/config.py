"""Everything a user writes: the scenario and its parts, as validated pydantic models.

A scenario file is TOML with top-level `model`, `gpu` and tables [engine], [workload],
[slo]; every CLI flag of `servesim run` sets one of these fields.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from servesim.errors import ServesimError
from servesim.files import read_structured


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, allow_inf_nan=False)


class SpeculativeConfig(_Strict):
    """Speculative decoding (vLLM's speculative_config): draft k tokens, verify them in one target pass
    (perf/speculative.py)."""

    method: Literal["draft_model", "eagle", "ngram"] = Field(
        "eagle", description="draft_model: a smaller catalog model drafts; eagle: a one-layer head on the target's "
        "hidden states (EAGLE, Medusa-style); ngram: prompt lookup, no GPU work")  # fmt: skip
    num_speculative_tokens: int = Field(3, ge=1, le=16, description="k, tokens drafted per step")
    acceptance_rate: float = Field(0.7, gt=0, lt=1, description="alpha: chance the target accepts a drafted "
                                   "token given all before it were accepted")  # fmt: skip
    acceptance_decay: float = Field(1.0, gt=0, le=1, description="position i's rate is alpha x decay^i (1: the "
                                    "i.i.d. model of Leviathan et al. 2023)")  # fmt: skip
    draft_model: str | None = Field(None, description="draft_model: its catalog name (e.g. llama-3.2-1b)")

    @model_validator(mode="after")
    def _draft(self):
        if self.method == "draft_model" and not self.draft_model:
            raise ValueError("method draft_model needs draft_model (a catalog name, e.g. llama-3.2-1b)")
        if self.method != "draft_model" and self.draft_model:
            raise ValueError(f"draft_model is for method draft_model, not {self.method}")
        return self


class OffloadConfig(_Strict):
    """Weights and KV cache kept in a slower memory tier and streamed in as layers run (offload/)."""

    policy: str = Field("stream", description="how weights are brought in (`servesim policies` lists them): stream "
                        "(layer by layer, prefetched), flexgen (FlexGen's block schedule over micro-batches), "
                        "sparse (only the predicted-active FFN rows, LLM in a flash / PowerInfer)")  # fmt: skip
    weights: str | None = Field("host", description="tier holding the weights that are not resident (a tier of "
                                "the device: host, ssd, flash); none: weights stay on the device")  # fmt: skip
    resident: float | None = Field(None, ge=0, le=1, description="fraction of the decoder layers' weights kept on "
                                   "the device; default: as much as fits")  # fmt: skip
    kv: str | None = Field(None, description="tier holding the KV cache (the device holds only the layer being "
                           "read); default: the device's own memory")  # fmt: skip
    attention: Literal["device", "near"] = Field(
        "device", description="where attention over an offloaded KV cache runs: device (the KV is streamed in) or "
        "near (next to the KV: the host CPU for host memory, the drive for a computational SSD as in InstInfer)")
    prefetch: bool = Field(True, description="load layer l+1 while layer l computes (off: load, then compute)")
    chunk_kib: float | None = Field(None, gt=0, le=2**20, description="size of each read from the tier, KiB "
                                    "(default: whole layers, sequential)")  # fmt: skip
    gpu_batch: int | None = Field(None, ge=1, description="flexgen: requests per micro-batch (the block is "
                                  "max_num_seqs)")  # fmt: skip
    sparsity: float | None = Field(None, ge=0, lt=1, description="sparse: fraction of FFN neurons inactive for a "
                                   "token (default: the policy's cited figure)")  # fmt: skip
    reuse: float | None = Field(None, ge=0, lt=1, description="sparse: fraction of a token's active neurons "
                                "already in memory from the last tokens (LLM in a flash's window)")  # fmt: skip

    @field_validator("weights", "kv", mode="before")
    @classmethod
    def _none(cls, v):
        return None if isinstance(v, str) and v.strip().lower() in ("none", "") else v

    @model_validator(mode="after")
    def _tiers(self):
        if self.weights is None and self.kv is None:
            raise ValueError("offload has no tier to offload to: set weights (host, ssd, flash) or kv")
        if self.attention == "near" and self.kv is None:
            raise ValueError("attention = near runs attention next to an offloaded KV cache; set kv (e.g. host)")
        return self


class EngineConfig(_Strict):
    """Engine settings, named as vLLM names them."""

    scheduler: str = Field("vllm", description="scheduling policy (`servesim policies` lists them)")
    scheduler_options: dict[str, Any] = Field(
        default_factory=dict, description="the policy's own settings, e.g. {chunk_size = 512} for sarathi"
    )
    tp: int = Field(1, ge=1, description="tensor parallel size")
    pp: int = Field(1, ge=1, description="pipeline parallel size (stages over layers)")
    ep: int = Field(1, ge=1, description="expert parallel size (MoE experts spread whole over ep GPUs)")
    dp: int = Field(1, ge=1, description="data-parallel attention ranks of a replica (MoE: vLLM's "
                    "--data-parallel-size with --enable-expert-parallel, SGLang's --enable-dp-attention): each "
                    "runs attention for its own requests on tp GPUs, the MoE layers span all dp x tp GPUs")
    expert_skew: float = Field(1.0, ge=1, le=64, description="busiest GPU's routed-expert load over the mean (EP; "
                               "at most the EP size, 64 experts' groups)")  # fmt: skip
    max_num_seqs: int = Field(256, ge=1)
    max_num_batched_tokens: int = Field(8192, ge=1)
    block_size: int = Field(16, ge=1)
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1)
    enable_prefix_caching: bool = True
    max_model_len: int | None = Field(None, ge=1, description="default: the model's context")
    dtype: Literal["bf16", "fp16", "fp8"] = "bf16"
    kv_cache_dtype: Literal["auto", "bf16", "fp16", "fp8"] = "auto"
    preemption_mode: Literal["recompute", "swap"] = Field(
        "recompute", description="a preempted request recomputes its KV, or swaps it to the CPU tier and back"
    )
    swap_space: float = Field(4.0, ge=0, le=65536, description="CPU memory for swapped KV per GPU, GiB (vLLM's "
                              "--swap-space)")  # fmt: skip
    swap_group_blocks: int = Field(
        1, ge=1, description="blocks one host copy moves: 1 as vLLM copies, more for FastSwitch's contiguous groups"
    )
    activation_reserve_gib: float | None = Field(
        None, ge=0, description="memory kept for activations and runtime; default: estimated"
    )
    quantization: Literal["awq", "gptq", "awq_marlin", "gptq_marlin", "fp8"] | None = Field(
        None, description="weight quantization as vLLM's --quantization: awq/gptq are weight-only (W4A16, or W8A16 "
        "with quantization_bits 8); fp8 is W8A8 (the same as dtype fp8)")  # fmt: skip
    quantization_bits: Literal[4, 8] = Field(4, description="bits of an awq/gptq checkpoint's weights")
    speculative: SpeculativeConfig | None = Field(None, description="speculative decoding")
    offload: OffloadConfig | None = Field(None, description="weights and KV in host memory, SSD or flash (offload/)")
    nano_batches: int = Field(1, ge=1, le=8, description="NanoFlow: split each iteration into this many nano-batches "
                              "whose compute- and memory-bound operators overlap (1: sequential)")  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _fp8(cls, data):
        if isinstance(data, dict) and data.get("quantization") == "fp8":
            if data.get("dtype") == "fp16":
                raise ValueError("quantization fp8 runs fp8 weights with bf16 activations; drop dtype fp16")
            data = {**data, "dtype": "fp8"}
        return data

    @model_validator(mode="after")
    def _budgets(self):
        if self.quantization in ("awq", "awq_marlin") and self.quantization_bits != 4:
            raise ValueError("AWQ checkpoints are 4-bit; use quantization gptq for 8-bit weights")
        if self.quantization in ("awq", "gptq", "awq_marlin", "gptq_marlin") and self.dtype == "fp8":
            raise ValueError(f"quantization {self.quantization} keeps bf16 activations; drop dtype fp8")
        if self.max_num_batched_tokens < self.max_num_seqs:
            raise ValueError(
                f"max_num_batched_tokens ({self.max_num_batched_tokens}) must be >= "
                f"max_num_seqs ({self.max_num_seqs}), as vLLM requires"
            )
        return self


class LengthDist(_Strict):
    """Token lengths: fixed (= mean), uniform in [min, max], or lognormal with `mean` and `sigma`."""

    dist: Literal["fixed", "uniform", "lognormal"] = "lognormal"
    mean: float = Field(256, gt=0)
    sigma: float = Field(1.0, ge=0, le=10, description="lognormal shape (std of the log)")
    min: int = Field(1, ge=1)
    max: int = Field(4096, ge=1)

    @model_validator(mode="after")
    def _range(self):
        if self.min > self.max:
            raise ValueError(f"min ({self.min}) must be <= max ({self.max})")
        return self


# Defaults shaped like ShareGPT chat turns: short, heavy-tailed prompts and answers.
# Approximate; replay a trace for real traffic.
SHAREGPT_INPUT = LengthDist(dist="lognormal", mean=250, sigma=1.0, min=4, max=4096)
SHAREGPT_OUTPUT = LengthDist(dist="lognormal", mean=220, sigma=0.9, min=1, max=2048)


class Duration(_Strict):
    """Seconds: fixed (= mean_s), exponential, uniform in [min_s, max_s], or lognormal with `sigma`."""

    dist: Literal["fixed", "exponential", "uniform", "lognormal"] = "exponential"
    mean_s: float = Field(1.0, ge=0)
    sigma: float = Field(1.0, ge=0, description="lognormal shape (std of the log)")
    min_s: float = Field(0.0, ge=0)
    max_s: float = Field(3600.0, ge=0)

    @model_validator(mode="after")
    def _range(self):
        if self.min_s > self.max_s:
            raise ValueError(f"min_s ({self.min_s}) must be <= max_s ({self.max_s})")
        return self


class ProgramConfig(_Strict):
    """Multi-turn sessions and agent programs: LLM calls that wait for each other (workload/programs.py).

    The workload's arrivals, `num_requests` and `rate` are then programs; its input lengths are
    each program's first prompt, its output lengths every call's answer. Each later call's
    prompt is the context so far plus `new_input` tokens (the user's next message, a tool's
    result), and it arrives `gap` after the call it waits for finished.
    """

    shape: Literal["chain", "dag"] = Field("chain", description="chain: one call after another (a chat session, "
                                           "a ReAct agent); dag: stages of `fanout` parallel calls, each stage "
                                           "waiting for all of the one before")  # fmt: skip
    calls: LengthDist = Field(default_factory=lambda: LengthDist(dist="fixed", mean=4, max=1024),
                              description="calls per program (dag: stages); a number: exactly that many")  # fmt: skip
    fanout: int = Field(1, ge=1, le=1024, description="dag: parallel calls in each stage after the first")
    new_input: LengthDist = Field(default_factory=lambda: LengthDist(dist="lognormal", mean=100, sigma=1.0),
                                  description="tokens each later call adds to the context")  # fmt: skip
    gap: Duration = Field(default_factory=Duration, description="think time (sessions) or tool-call time (agents) "
                          "between a call's last token and the next call's arrival")  # fmt: skip

    @model_validator(mode="before")
    @classmethod
    def _fixed_calls(cls, data):
        if isinstance(data, dict) and isinstance(data.get("calls"), int):  # calls = 5: exactly five
            data = {**data, "calls": {"dist": "fixed", "mean": data["calls"], "max": max(data["calls"], 1)}}
        return data


MAX_QUESTION_CALLS = 1 << 16  # calls of one strategy's question (its prefix-cache stream ids leave room for this many)


class StrategyConfig(_Strict):
    """A test-time scaling strategy: each arriving question runs as a program of calls (`tts/strategies.py`).

    The workload's input lengths are the questions, its output lengths each sample's or attempt's answer.
    `n` is the strategy's width: samples (best_of_n, majority_vote), beams (beam_search), attempts
    (sequential_revision), queries per pre-processed context (sleep_time); budget_forced takes `budget`
    thinking tokens instead. A verifier or reward model is the served model itself, on the same replicas."""

    name: Literal["best_of_n", "majority_vote", "beam_search", "sequential_revision", "budget_forced",
                  "sleep_time"] = "best_of_n"  # fmt: skip
    n: int = Field(8, ge=1, le=4096, description="samples, beams, attempts or queries (see above)")
    verifier: bool = Field(False, description="best_of_n: an outcome reward model scores every sample")
    score_tokens: int = Field(16, ge=1, le=4096, description="a verifier's or PRM's prompt around what it scores")
    step_tokens: int = Field(256, ge=1, le=1_000_000, description="beam_search: tokens of one reasoning step")
    steps: int = Field(8, ge=1, le=1024, description="beam_search: reasoning steps")
    expand: int = Field(4, ge=1, le=256, description="beam_search: candidates per beam at each step")
    budget: int = Field(4096, ge=1, le=10_000_000, description="budget_forced: thinking tokens; sleep_time: the "
                        "pre-processed context's tokens")  # fmt: skip
    revise_tokens: int = Field(32, ge=1, le=1_000_000, description="sequential_revision: the instruction added to "
                               "each attempt's context; sleep_time: each query's tokens")  # fmt: skip

    USES: ClassVar[dict[str, set[str]]] = {"best_of_n": {"n", "verifier", "score_tokens"}, "majority_vote": {"n"},
            "beam_search": {"n", "score_tokens", "step_tokens", "steps", "expand"},
            "sequential_revision": {"n", "revise_tokens"}, "budget_forced": {"budget"},
            "sleep_time": {"n", "budget", "revise_tokens"}}  # fmt: skip

    @model_validator(mode="after")
    def _used(self):
        idle = sorted(self.model_fields_set - {"name"} - self.USES[self.name])
        if idle:
            uses = ", ".join(sorted(self.USES[self.name]))
            raise ValueError(f"{', '.join(idle)} cannot act in {self.name}, which uses {uses}; drop "
                             f"{'them' if len(idle) > 1 else 'it'}")  # fmt: skip
        # (counted in closed form: a list of them could be billions long)
        calls = {"best_of_n": self.n * (1 + self.verifier), "beam_search": 2 * self.n * self.expand * self.steps,
                 "sleep_time": self.n + 1, "budget_forced": 1}.get(self.name, self.n)  # fmt: skip
        if calls > MAX_QUESTION_CALLS:
            raise ValueError(f"{self.name} makes {calls:,} calls per question, more than {MAX_QUESTION_CALLS:,}; lower "
                             "n, steps or expand")  # fmt: skip
        return self


class TenantConfig(_Strict):
    """One tenant (client, application) of a shared deployment: its own stream, priority and fair-share weight."""

    name: str
    rate: float = Field(gt=0, description="its requests per second")
    num_requests: int | None = Field(None, ge=1, description="default: the workload's, shared by rate")
    arrival: Literal["poisson", "gamma", "constant"] = "poisson"
    burstiness: float = Field(1.0, gt=0, description="gamma shape; 1 is Poisson, <1 burstier")
    start_s: float = Field(0.0, ge=0, description="when it starts sending")
    input: LengthDist | None = Field(None, description="default: the workload's")
    output: LengthDist | None = Field(None, description="default: the workload's")
    priority: int = Field(0, description="lower is served first (vLLM's priority scheduling)")
    weight: float = Field(1.0, gt=0, description="fair-share weight: the summary's fairness divides service by "
                          "it (give the vtc scheduler the same list as its `weights` option)")  # fmt: skip


class WorkloadConfig(_Strict):
    """The request stream: arrival process, lengths, or a trace to replay."""

    num_requests: int | None = Field(1000, ge=1, le=10**9, description="default with a trace: all rows")
    rate: float = Field(10.0, ge=1e-6, allow_inf_nan=True, description="requests per second (at least 1e-6: one in "
                        "12 days); inf sends all at once")  # fmt: skip
    arrival: Literal["poisson", "gamma", "constant", "burst", "trace"] = "poisson"
    burstiness: float = Field(1.0, gt=0, description="gamma shape; 1 is Poisson, <1 burstier")
    rate_shape: list[float] | None = Field(
        None, description="relative rates over equal slices of rate_period_s, repeated (e.g. 24 hourly values); "
        "`rate` is their mean"
    )  # fmt: skip
    rate_period_s: float = Field(86400.0, gt=0, description="the period rate_shape covers (default one day)")
    input: LengthDist = Field(default_factory=lambda: SHAREGPT_INPUT.model_copy())
    output: LengthDist = Field(default_factory=lambda: SHAREGPT_OUTPUT.model_copy())
    trace: Path | None = Field(None, description="Azure CSV or Mooncake JSONL; gives lengths")
    trace_format: Literal["auto", "azure", "mooncake", "sessions"] = Field(
        "auto", description="sessions: a JSONL of conversation turns (session_id, turn, lengths), replayed as programs"
    )
    trace_sample: Literal["head", "random"] = "head"
    time_scale: float = Field(1.0, ge=1e-6, le=1e6, description="with arrival=trace: divide gaps by this")
    hash_block_tokens: int | None = Field(
        None, ge=1, description="tokens per prefix-cache hash unit; default: 512 (Mooncake's) for traces, "
        "block_size for programs"
    )  # fmt: skip
    programs: ProgramConfig | None = Field(None, description="sessions or agent programs instead of single requests")
    strategy: StrategyConfig | None = Field(None, description="questions answered by a test-time scaling strategy "
                                            "(tts/strategies.py) instead of single requests")  # fmt: skip
    n: int = Field(1, ge=1, le=1024, description="parallel samples per prompt (vLLM's SamplingParams.n): each has "
                   "its own output length; they share the prompt's KV blocks through the prefix cache")  # fmt: skip
    tenants: list[TenantConfig] | None = Field(
        None, description="streams of several tenants, each with its rate, lengths and priority, merged"
    )
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _trace(self):
        if self.arrival == "trace" and self.trace is None:
            raise ValueError("arrival = 'trace' needs a trace file (workload.trace / --trace)")
        if self.tenants is not None:
            if not self.tenants:
                raise ValueError("tenants needs at least one [[workload.tenants]] entry")
            if self.trace is not None or self.programs is not None:
                raise ValueError("tenants have streams of their own; drop the trace or programs")
            names = [t.name for t in self.tenants]
            if len(set(names)) < len(names):
                raise ValueError(f"tenant names must differ: {', '.join(names)}")
        if self.strategy is not None and (self.programs is not None or self.trace is not None or self.n > 1
                                          or self.tenants):  # fmt: skip
            raise ValueError("a strategy makes each question's calls itself; drop workload.programs, the trace, n and "
                             "tenants")  # fmt: skip
        if self.n > 1 and self.programs is not None:
            raise ValueError("parallel samples (n > 1) of program calls are not modelled; use n = 1 with programs")
        if self.programs is not None and self.trace is not None:
            raise ValueError("programs are generated; a trace gives single requests (drop workload.programs or the "
                             "trace)")  # fmt: skip
        if self.rate_shape is not None:
            if self.arrival in ("trace", "burst"):
                raise ValueError(f"rate_shape shapes a rate over time; arrival = '{self.arrival}' has none")
            if not self.rate_shape or min(self.rate_shape) < 0 or max(self.rate_shape) <= 0:
                raise ValueError("rate_shape needs non-negative relative rates, at least one above zero")
        return self

    @property
    def all_at_once(self) -> bool:
        return self.arrival == "burst" or math.isinf(self.rate)

    @property
    def sessions(self) -> bool:
        """The trace is one of conversation sessions (replayed as programs)."""
        if self.trace is None:
            return False
        from servesim.workload.traces import trace_format

        return trace_format(self.trace, self.trace_format) == "sessions"

    @property
    def grouped(self) -> bool:
        """Requests come in groups that stay on one replica and are refused whole: programs, sessions, samples,
        a strategy's questions."""
        return self.programs is not None or self.n > 1 or self.sessions or self.strategy is not None

    def unit_tokens(self, block_size: int) -> int:
        """Tokens per prefix-cache hash unit: as set, else one block where requests share context they make
        themselves (programs, sessions, samples, strategies), else Mooncake's 512."""
        if self.hash_block_tokens is not None:
            return self.hash_block_tokens
        made = self.programs is not None or self.sessions or self.strategy is not None or (self.n > 1 and
                                                                                            self.trace is None)
        return block_size if made else 512


class SLO(_Strict):
    """Latency targets in milliseconds, as `vllm bench serve --goodput` takes them."""

    ttft_ms: float | None = Field(None, gt=0)
    tpot_ms: float | None = Field(None, gt=0)
    e2el_ms: float | None = Field(None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _units(cls, data):
        if isinstance(data, dict):
            for key in ("ttft", "tpot", "e2el"):
                if key in data:
                    raise ValueError(f"'{key}' has no unit; write {key}_ms = {data[key]} (milliseconds)")
        return data

    @property
    def any(self) -> bool:
        return any(v is not None for v in (self.ttft_ms, self.tpot_ms, self.e2el_ms))

    @classmethod
    def parse(cls, items: list[str]) -> SLO:
        """Parse `ttft:MS tpot:MS e2el:MS` items."""
        values = {}
        for item in items:
            for part in item.replace(",", " ").split():
                key, sep, val = part.partition(":")
                key = key.strip().lower()
                if not sep or key not in ("ttft", "tpot", "e2el"):
                    raise ServesimError(f"goodput item '{part}' must be ttft:MS, tpot:MS or e2el:MS (milliseconds)")
                scale, num = (1000.0, val[:-1]) if val.endswith("s") and not val.endswith("ms") else (1.0, val)
                try:
                    ms = float(num.removesuffix("ms")) * scale
                except ValueError:
                    raise ServesimError(
                        f"goodput item '{part}': '{val}' is not a duration (500 or 500ms or 0.5s)"
                    ) from None
                if ms <= 0:
                    raise ServesimError(f"goodput item '{part}': the target must be positive")
                values[f"{key}_ms"] = ms
        if not values:
            raise ServesimError("--goodput names no target; give e.g. 'ttft:500 tpot:50' (ms), or drop it")
        return cls(**values)


class PoolConfig(_Strict):
    """One pool of a disaggregated deployment: its GPUs, replica count, router and engine."""

    gpu: str | None = Field(None, description="default: the scenario's gpu")
    replicas: int = Field(1, ge=1, le=100_000)
    router: str = "least_tokens"
    engine: EngineConfig = Field(default_factory=EngineConfig)
    power_priority: int = Field(0, description="under a power budget, pools of lower priority are capped first "
                                "(e.g. decode 0, prefill 1: decode capped first)")  # fmt: skip


class ServicePool(_Strict):
    """One pool of a co-located service: replicas of one GPU type and engine, behind the scenario's router with
    every other pool's (a heterogeneous fleet)."""

    name: str | None = Field(None, description="default: its GPU, numbered where two pools share one")
    gpu: str
    replicas: int = Field(1, ge=1, le=100_000)
    engine: EngineConfig | None = Field(None, description="default: the scenario's engine")
    power_cap_w: float | None = Field(None, gt=0, description="per-GPU power cap; default: power.cap_w")
    price_per_gpu_hour: float | None = Field(None, ge=0, description="USD; default: power.price_per_gpu_hour, else "
                                             "the GPU catalog's")  # fmt: skip
    power_priority: int = Field(0, description="under a power budget, pools of lower priority are capped first")
    role: Literal["prefill", "decode"] | None = Field(
        None, description="disaggregated: prefill pools hand each request on to the decode pools (all or no roles)")
    power_budget_w: float | None = Field(None, gt=0, description="this pool's own power budget (its GPUs and their "
                                         "hosts' share), kept by its own controller")  # fmt: skip

    @staticmethod
    def parse(text: str) -> tuple[str, int, int | None]:
        """`GPU:REPLICAS[:tpN]` (the --pool flag), e.g. h100-sxm:2 or a100:3:tp2: (gpu, replicas, tp or None)."""
        parts = text.split(":")
        try:
            if len(parts) not in (2, 3) or (len(parts) == 3 and not parts[2].startswith("tp")):
                raise ValueError
            replicas, tp = int(parts[1]), (int(parts[2][2:]) if len(parts) == 3 else None)
            if not parts[0] or replicas < 1 or (tp is not None and tp < 1):
                raise ValueError
        except ValueError:
            raise ServesimError(f"--pool '{text}' must be GPU:REPLICAS or GPU:REPLICAS:tpN with whole numbers of at "
                                "least 1, e.g. h100-sxm:2 or a100:3:tp2") from None  # fmt: skip
        return parts[0], replicas, tp


class AutoscaleConfig(_Strict):
    """Replicas started and stopped during the run (a co-located deployment; `replicas` is the starting count):
    a scaling policy, its bounds and check interval, and what a start costs."""

    policy: str | None = Field(None, description="reactive | predictive | scale_to_zero (`servesim policies`); "
                               "none: a fixed fleet")  # fmt: skip
    min_replicas: int = Field(1, ge=0, le=100_000)
    max_replicas: int | None = Field(None, ge=1, le=100_000, description="required with a policy")
    interval_s: float = Field(5.0, ge=0.01, le=3600, description="how often the policy looks")
    load_gbs: float = Field(2.0, ge=0.01, description="weights loaded per GPU at a start, GB/s (about 2 from local "
                            "NVMe, 0.5-1 from a remote object store, 10-20 from a host-memory cache)")  # fmt: skip
    warmup_s: float = Field(34.0, ge=0, le=3600, description="engine start after the weights (profiling, KV "
                            "allocation, CUDA-graph capture): 34 s as vLLM logged it in "
                            "vllm-project/vllm#20264")  # fmt: skip
    options: dict[str, Any] = Field(default_factory=dict, description="the policy's settings")

    @model_validator(mode="after")
    def _bounds(self):
        if self.policy is not None:
            if self.max_replicas is None:
                raise ValueError("an autoscaling policy needs max_replicas (--max-replicas)")
            if self.min_replicas > self.max_replicas:
                raise ValueError(f"min_replicas {self.min_replicas} exceeds max_replicas {self.max_replicas}")
        return self


class KVTransferConfig(_Strict):
    """The network that carries KV caches from prefill to decode replicas."""

    bandwidth_gbs: float = Field(50.0, ge=1e-3, description="per GPU, GB/s (400 Gb/s NIC = 50)")
    latency_us: float = Field(10.0, ge=0)
    mode: Literal["layerwise", "whole"] = Field(
        "layerwise", description="layerwise overlaps the transfer with the prefill; whole sends after it"
    )


class NodeConfig(_Strict):
    """How GPUs are grouped into servers: collectives inside a node use the GPU's link (NVLink),
    across nodes the network."""

    gpus_per_node: int = Field(8, ge=1)
    network_gbs: float = Field(50.0, gt=0, description="inter-node bandwidth per GPU, GB/s (400 Gb/s = 50)")
    network_latency_us: float = Field(5.0, ge=0)


class PowerConfig(_Strict):
    """Power limits and prices: a static per-GPU cap, and a POLCA-style cluster budget with a controller."""

    cap_w: float | None = Field(None, gt=0, description="per-GPU power cap for every replica")
    host_w_per_node: float = Field(
        1200.0, ge=0, description="CPUs, memory, NICs and fans of one node; a deployment pays its GPUs' share"
    )
    price_per_gpu_hour: float | None = Field(None, ge=0, description="USD; default: the GPU catalog's price")
    budget_w: float | None = Field(None, gt=0, description="cluster power budget (GPUs and hosts)")
    throttle_cap_w: float = Field(450.0, gt=0, description="per-GPU cap the controller applies")
    high: float = Field(0.95, gt=0, le=1.5, description="cap one more replica above this fraction of the budget")
    low: float = Field(0.85, gt=0, le=1.5, description="lift one cap below this fraction of the budget")
    interval_s: float = Field(0.5, gt=0, description="how often the controller reads cluster power")
    reaction_s: float = Field(1.0, ge=0, description="how long power must stay high before it acts")

    @model_validator(mode="after")
    def _band(self):
        if self.low >= self.high:
            raise ValueError(f"power.low ({self.low}) must be below power.high ({self.high})")
        return self


class MigrationConfig(_Strict):
    """Live migration of decoding requests between replicas (Llumnix, OSDI 2024)."""

    enabled: bool = False
    interval_s: float = Field(0.1, gt=0, description="how often the imbalance is checked")
    threshold: float = Field(0.2, gt=0, le=1, description="KV-load gap (fraction of the cache) that triggers a move")
    mode: Literal["live", "stop"] = Field(
        "live", description="live: copy while decoding, pause for the last blocks; stop: pause for the whole copy"
    )


class SemiPDConfig(_Strict):
    """semi-PD (Hong et al., 2025): each replica's GPUs run a prefill worker and a decode worker at once, on
    their own shares of the SMs, over one KV cache (sim/semi_pd.py)."""

    enabled: bool = False
    prefill_sm: float = Field(0.5, gt=0, lt=1, description="the prefill worker's starting share of the SMs")
    adaptive: bool = Field(True, description="move the split toward the phase that is further from its SLO")
    interval_s: float = Field(0.5, gt=0, description="how often the controller looks")
    step: float = Field(0.1, gt=0, lt=1, description="share moved per adjustment")
    prefill_kv: float = Field(0.1, gt=0, lt=1, description="share of the KV blocks the prefill worker may "
                              "hold for prompts in progress (at least one max_model_len prompt)")  # fmt: skip
    contention: Literal["measured", "none"] = Field(
        "measured",
        description="how the workers' iterations are priced while both run. measured: slowed as a "
        "GEMM and GEMVs in two green contexts on one H100 slowed each other (perf/sm_share.py); none: an "
        "assumption, each at its SM share's speed alone, both drawing nearly all the memory bandwidth at once",
    )


class Scenario(_Strict):
    """One simulation: a model on GPUs with engine settings, serving a workload."""

    model: str = "llama-3.1-8b"
    gpu: str = "h100-sxm"
    gpu_file: Path | None = None
    replicas: int = Field(1, ge=0, le=100_000, description="identical engine replicas behind the router (with "
                          "autoscaling: at the start, 0 allowed)")  # fmt: skip
    router: str | None = Field(None, description="routing policy of co-located replicas (`servesim policies`); "
                               "default round_robin")
    partitions: int = Field(1, ge=1, le=100_000, description="independent groups of replicas, simulated in parallel: "
                            "arrivals are dealt to them in turn and each routes on its own (partition.py)")
    perf_model: Literal["auto", "profiled", "roofline"] = Field(
        "auto", description="auto: the GPU's measured profile if there is one, else the roofline"
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    workload: WorkloadConfig = Field(default_factory=WorkloadConfig)
    slo: SLO = Field(default_factory=SLO)
    pools: list[ServicePool] | None = Field(None, description="a co-located service of several pools (GPU types, "
                                            "engines) behind `router`; instead of gpu and replicas")  # fmt: skip
    prefill: PoolConfig | None = Field(None, description="with decode: disaggregated prefill pool")
    decode: PoolConfig | None = Field(None, description="with prefill: disaggregated decode pool")
    kv_transfer: KVTransferConfig = Field(default_factory=KVTransferConfig)
    migration: MigrationConfig = Field(default_factory=MigrationConfig)
    semi_pd: SemiPDConfig = Field(default_factory=SemiPDConfig)
    node: NodeConfig = Field(default_factory=NodeConfig)
    power: PowerConfig = Field(default_factory=PowerConfig)
    autoscale: AutoscaleConfig = Field(default_factory=AutoscaleConfig)

    @model_validator(mode="after")
    def _pools(self):
        if (self.prefill is None) != (self.decode is None):
            raise ValueError(
                "disaggregation needs both a prefill and a decode pool ([prefill] and [decode] tables, "
                "or --prefill-replicas and --decode-replicas)"
            )
        if self.replicas == 0 and self.autoscale.policy is None:
            raise ValueError("replicas must be at least 1 (0 only with an autoscaling policy that starts them)")
        if self.pools is not None:
            if not self.pools:
                raise ValueError("pools is empty; give at least one [[pools]] table (gpu, replicas) or drop it")
            if self.prefill is not None:
                raise ValueError("pools make a co-located service; disaggregated [prefill]/[decode] pools are the "
                                 "other shape: use one of the two")  # fmt: skip
            if self.replicas != 1:
                raise ValueError("with pools, each pool sets its replicas ([[pools]] replicas, --pool GPU:N); drop "
                                 "replicas")  # fmt: skip
            roles = [p.role for p in self.pools]
            if any(roles) and (None in roles or {"prefill", "decode"} - set(roles)):
                raise ValueError("with pool roles, every pool is a prefill or a decode pool and there is at least one "
                                 "of each")  # fmt: skip
            names = [p.name for p in self.pools if p.name]
            if len(names) != len(set(names)):
                raise ValueError(f"pool names must differ: {', '.join(sorted(names))}")
        return self

    def pool_names(self) -> list[str]:
        """Each service pool's name: as given, else its GPU (numbered where GPUs repeat)."""
        gpus = [p.gpu for p in self.pools or []]
        return [p.name or (p.gpu if gpus.count(p.gpu) == 1 else f"{p.gpu}-{gpus[:i].count(p.gpu)}")
                for i, p in enumerate(self.pools or [])]  # fmt: skip

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None


def with_pools(scenario: Scenario, pools: list[str]) -> Scenario:
    """The scenario served by the pools of the --pool flags (each with the scenario's engine, its own TP where
    given), checked."""
    data = scenario.model_dump(exclude_none=True)
    data["pools"] = []
    for gpu, replicas, tp in map(ServicePool.parse, pools):
        engine = None if tp is None else {**data["engine"], "tp": tp}
        data["pools"].append({"gpu": gpu, "replicas": replicas, **({"engine": engine} if engine else {})})
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ServesimError(validation_message(e)) from None


def validation_message(err: ValidationError, origin: str = "") -> str:
    """One line from a pydantic error: where, and what is wrong."""
    e = err.errors()[0]
    loc = ".".join(str(x) for x in e["loc"] if not str(x).startswith("function-"))
    msg = e["msg"].removeprefix("Value error, ")
    where = f"{origin}: " if origin else ""
    return f"{where}{loc}: {msg}" if loc else f"{where}{msg}"


def scenario_from_data(data: dict, origin: str = "", base_dir: Path | None = None) -> Scenario:
    """Validate a scenario mapping; relative paths in it are taken from `base_dir`."""
    if data.get("pools") is not None and "gpu" in data:
        where = f"{origin}: " if origin else ""
        raise ServesimError(f"{where}with [[pools]], each pool names its gpu; drop the top-level gpu")
    try:
        scenario = Scenario(**data)
    except ValidationError as e:
        raise ServesimError(validation_message(e, origin)) from None
    wl = scenario.workload
    if base_dir is not None and wl.trace is not None and not wl.trace.is_absolute():
        wl.trace = base_dir / wl.trace
    if base_dir is not None and scenario.gpu_file is not None and not scenario.gpu_file.is_absolute():
        scenario.gpu_file = base_dir / scenario.gpu_file
    return scenario


def load_scenario(path: str | Path, extra: dict | None = None) -> Scenario:
    """Read a scenario TOML file; its top-level tables named in `extra` (e.g. search) are moved there."""
    p = Path(path)
    data = read_structured(p, "scenario file")
    for key in list(extra or {}):
        extra[key] = data.pop(key, {}) or {}
        if not isinstance(extra[key], dict):
            raise ServesimError(f"{p}: [{key}] must be a table of settings, not a {type(extra[key]).__name__}")
    return scenario_from_data(data, str(p), p.parent)


# ----- command-line flags onto scenario fields -----
# A flag named like a field of the scenario, its engine or its workload sets that field;
# input_X / output_X set the workload's length distributions, prefill_X / decode_X a pool.
# These few are named for what users type rather than for the field they set:
FLAG_ALIASES = {
    "migration": "migration.enabled",
    "power_cap": "power.cap_w",
    "power_budget": "power.budget_w",
    "price_per_gpu_hour": "power.price_per_gpu_hour",
    "kv_transfer": "kv_transfer.mode",
    "kv_bandwidth_gbs": "kv_transfer.bandwidth_gbs",
    "input_dist": "workload.input.dist",
    "output_dist": "workload.output.dist",
    "programs": "workload.programs.shape",
    "calls": "workload.programs.calls",
    "fanout": "workload.programs.fanout",
    "new_input": "workload.programs.new_input.mean",
    "gap_s": "workload.programs.gap.mean_s",
    "gap_dist": "workload.programs.gap.dist",
    "speculative_method": "engine.speculative.method",
    "num_speculative_tokens": "engine.speculative.num_speculative_tokens",
    "acceptance_rate": "engine.speculative.acceptance_rate",
    "draft_model": "engine.speculative.draft_model",
    "semi_pd": "semi_pd.enabled",
    "offload": "engine.offload.policy",
    "offload_tier": "engine.offload.weights",
    "kv_offload": "engine.offload.kv",
    "offload_resident": "engine.offload.resident",
    "offload_attention": "engine.offload.attention",
    "offload_prefetch": "engine.offload.prefetch",
    "gpu_batch": "engine.offload.gpu_batch",
    "sparsity": "engine.offload.sparsity",
    "autoscale": "autoscale.policy",
    "min_replicas": "autoscale.min_replicas",
    "max_replicas": "autoscale.max_replicas",
    "cold_start_load_gbs": "autoscale.load_gbs",
    "warmup_s": "autoscale.warmup_s",
}


def flag_path(name: str) -> str:
    """The dotted scenario field a `servesim run` flag sets."""
    if name in FLAG_ALIASES:
        return FLAG_ALIASES[name]
    for section, model in (("", Scenario), ("engine.", EngineConfig), ("workload.", WorkloadConfig)):
        if name in model.model_fields:
            return section + name
    for prefix in ("input", "output"):
        field = name.removeprefix(prefix + "_")
        if field != name and field in LengthDist.model_fields:
            return f"workload.{prefix}.{field}"
    for pool in ("prefill", "decode"):
        field = name.removeprefix(pool + "_")
        if field != name:
            return f"{pool}.{field}" if field in PoolConfig.model_fields else f"{pool}.engine.{field}"
    raise KeyError(name)


def inert_flags(flags: dict, sc: Scenario, base: Scenario | None = None) -> None:
    """Refuse a `servesim run` flag that cannot act in this run, naming what it needs, and one that would switch
    a feature on by itself (`flags`: those given, by name; `sc`: the scenario they built from `base`)."""
    wl, given = sc.workload, {k for k, v in flags.items() if v is not None}
    base = base or Scenario()
    switches = [  # (flags that tune a feature, the flag that names it, whether the base scenario has it)
        (("calls", "gap_s", "gap_dist", "new_input", "fanout"), "programs", base.workload.programs is not None,
         "--programs chain|dag"),
        (("acceptance_rate", "num_speculative_tokens", "draft_model"), "speculative_method",
         base.engine.speculative is not None, "--speculative-method eagle|draft_model|ngram"),
        (("offload_tier", "kv_offload", "offload_resident", "offload_attention", "offload_prefetch", "gpu_batch",
          "sparsity"), "offload", base.engine.offload is not None, "--offload stream|flexgen|sparse"),
    ]  # fmt: skip
    for names, namer, had, how in switches:
        tuning = [n for n in names if n in given]
        if tuning and namer not in given and not had:
            flag = ", ".join(f"--{n.replace('_', '-')}" for n in tuning)
            raise ServesimError(f"{flag} would switch on a feature by itself; name it with {how}")
    needs = [  # (flags, acts when, what it needs)
        (("time_scale", "trace_sample", "trace_format"), wl.trace is not None, "--trace"),
        (("burstiness",), wl.arrival == "gamma" or bool(wl.tenants), "--arrival gamma"),
        (("rate_period_s",), bool(wl.rate_shape), "--rate-shape"),
        (("workers", "ray_address"), sc.partitions > 1, "--partitions 2 or more"),
        (("quantization_bits",), sc.engine.quantization in ("awq", "gptq", "awq_marlin", "gptq_marlin"),
         "--quantization awq|gptq"),
        (("kv_transfer", "kv_bandwidth_gbs"), sc.disaggregated or any(p.role for p in sc.pools or []),
         "disaggregated pools (--prefill-replicas and --decode-replicas)"),
        (("fanout",), wl.programs is not None and wl.programs.shape == "dag", "--programs dag"),
        (("migration",), not flags.get("migration") or sc.replicas > 1 or (sc.decode and sc.decode.replicas > 1),
         "more than one replica to move requests between"),
        (("expert_skew",), "expert_skew" not in given or _is_moe(sc.model), "a mixture-of-experts model"),
        (("swap_space", "swap_group_blocks"), _uses_cpu_tier(sc),
         "--preemption-mode swap (or a policy that keeps contexts in the CPU tier: continuum with -O offload=true)"),
    ]  # fmt: skip
    for names, acts, what in needs:
        idle = [n for n in names if n in given]
        if idle and not acts:
            flag = ", ".join(f"--{n.replace('_', '-')}" for n in idle)
            raise ServesimError(f"{flag} cannot act in this run: it needs {what}; add that or drop the flag")


def _uses_cpu_tier(sc: Scenario) -> bool:
    """Whether some engine of the scenario copies KV to host memory: swap preemption or offloaded contexts."""
    engines = [sc.engine] + [p.engine for p in (sc.prefill, sc.decode) if p] + [p.engine for p in sc.pools or []
                                                                                 if p.engine]  # fmt: skip
    return any(e.preemption_mode == "swap" or e.scheduler_options.get("offload") for e in engines)


def _is_moe(model: str) -> bool:
    from servesim.models import get_model

    try:
        return get_model(model).is_moe
    except ServesimError:
        return True  # (an unknown model is refused where it is planned, with its own message)


def parse_numbers(text: str, flag: str) -> list[float]:
    """A flag's comma list of numbers."""
    try:
        return [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise ServesimError(f"{flag} takes a comma list of numbers, e.g. 1,2.5,3; not '{text}'") from None


def parse_option(item: str) -> tuple[str, object]:
    """`key=value`, the value read as TOML (numbers, booleans, quoted strings) or else taken as text."""
    key, sep, text = item.partition("=")
    if not sep or not key.strip():
        raise ServesimError(f"scheduler option '{item}' must look like key=value, e.g. chunk_size=512")
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.strip(), value


def apply_flags(scenario: Scenario, flags: dict, options: list[str] | None = None) -> Scenario:
    """The scenario with every flag that was given (not None) set, and the policy's options added."""
    data = scenario.model_dump(exclude_none=True)
    for name, value in flags.items():  # an empty value is a mistake, not "unset"
        if isinstance(value, str) and not value.strip():
            raise ServesimError(f"--{name.replace('_', '-')} is empty; give a value or drop the flag")
    given = [(flag_path(name), value) for name, value in flags.items() if value is not None]
    given.sort(key=lambda item: item[0].startswith(("prefill.", "decode.")))  # pools copy the engine as set
    for path, value in given:
        *parents, leaf = path.split(".")
        node = data
        for part in parents:
            if part in ("prefill", "decode") and part not in node:  # a pool starts from the scenario's engine
                node[part] = {"engine": dict(data["engine"])}
            node = node.setdefault(part, {})
        node[leaf] = value
    if flags.get("trace") is not None and flags.get("num_requests") is None:
        data["workload"]["num_requests"] = None  # a trace replays all its rows unless told otherwise
    for item in options or []:
        key, value = parse_option(item)
        data["engine"].setdefault("scheduler_options", {})[key] = value
    try:
        return Scenario.model_validate(data)
    except ValidationError as e:
        raise ServesimError(validation_message(e)) from None
