"""`simulate_pipeline(config)`: one training step of a schedule, its timeline and figures; and a search."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from servesim.errors import ServesimError
from servesim.hardware import get_gpu
from servesim.pipeline.config import PipelineConfig
from servesim.pipeline.costs import StageCosts, stage_costs
from servesim.pipeline.executor import Timeline, execute
from servesim.pipeline.schedule import SCHEDULES

GIB = 2**30


@dataclass
class PipelineResult:
    config: PipelineConfig
    schedule: str
    chunks: int
    costs: StageCosts
    timeline: Timeline

    def _optimizer(self) -> np.ndarray:
        return np.array([sum(self.costs.optimizer_s[k] for k in self._stages(d)) for d in range(self.timeline.devices)])

    @property
    def step_s(self) -> float:
        """Steady-state time per step: each device's span plus its optimizer step, the longest (see
        Timeline.period). Zero Bubble's post-update validation lets a device step as soon as it is done."""
        return float((self.timeline.spans() + self._optimizer()).max(initial=0.0))

    @property
    def flush_step_s(self) -> float:
        """One step with a global flush before the optimizer: makespan plus the slowest optimizer step."""
        return self.timeline.makespan + float(self._optimizer().max(initial=0.0))

    def _stages(self, d: int) -> list[int]:
        return [k for k, dev in enumerate(self.timeline.placement) if dev == d]

    def memory_gib(self) -> np.ndarray:
        """Peak memory per device: weights, gradients and optimizer states, plus peak activations."""
        static = [sum(self.costs.static_bytes[k] for k in self._stages(d)) for d in range(self.timeline.devices)]
        return (np.array(static) + self.timeline.peak_act) / GIB

    def summary(self) -> dict:
        c, tl, cfg = self.costs, self.timeline, self.config
        gpus = cfg.pp * cfg.tp
        tokens = c.tokens_per_mb * cfg.micro_batches
        bubble = tl.bubble()
        return {
            "model": cfg.model, "gpu": cfg.gpu, "pp": cfg.pp, "tp": cfg.tp, "gpus": gpus,
            "schedule": self.schedule, "chunks": self.chunks, "micro_batches": cfg.micro_batches,
            "micro_batch_size": cfg.micro_batch_size, "seq_len": cfg.seq_len, "perf_model": c.perf_model,
            "step_s": self.step_s, "flush_step_s": self.flush_step_s, "tokens_per_s": tokens / self.step_s,
            "mfu": c.flops_per_step / (self.step_s * gpus * c.peak_flops),
            "bubble_fraction": float(bubble.mean()), "bubble_per_stage": [float(x) for x in bubble],
            "peak_activation_gib": [float(x) for x in tl.peak_act / GIB],
            "peak_memory_gib": [float(x) for x in self.memory_gib()],
            "pass_ms": {"F": 1e3 * float(c.f.mean()), "B": 1e3 * float(c.b.mean()), "W": 1e3 * float(c.w.mean())},
        }  # fmt: skip


def simulate_pipeline(cfg: PipelineConfig | None = None, costs: StageCosts | None = None) -> PipelineResult:
    """Time one step of `cfg.schedule`; `costs` replaces the priced ones (tests, what-ifs)."""
    cfg = cfg or PipelineConfig()
    sched = SCHEDULES.get(cfg.schedule)()
    v = cfg.chunks or sched.chunks
    if sched.fixed_chunks and v != sched.chunks:
        raise ServesimError(f"schedule {sched.name} runs {sched.chunks} chunk(s) per device, not {v}; drop --chunks")
    sched.check(cfg.pp, v, cfg.micro_batches)
    costs = costs or stage_costs(cfg, v)
    if costs.stages != cfg.pp * v:
        raise ServesimError(f"costs for {costs.stages} virtual stages; {sched.name} needs pp x chunks = {cfg.pp * v}")
    placement = sched.placement(cfg.pp, v)
    orders = sched.orders(cfg.pp, v, cfg.micro_batches, costs)
    return PipelineResult(cfg, sched.name, v, costs, execute(orders, placement, costs, cfg.micro_batches))


def search_pipeline(cfg: PipelineConfig, pps: list[int], tps: list[int], mbss: list[int],
                    schedules: list[str]) -> list[dict]:  # fmt: skip
    """Every (pp, tp, micro-batch size, schedule) for the same global batch, ranked by throughput; each row says
    whether it fits the per-GPU memory limit (and why not)."""
    limit = cfg.memory_limit_gib or get_gpu(cfg.gpu, cfg.gpu_file).memory_gib
    global_batch = cfg.micro_batches * cfg.micro_batch_size
    rows = []
    for pp, tp, mbs, name in itertools.product(pps, tps, mbss, schedules):
        if global_batch % mbs:
            continue
        trial = cfg.model_copy(update=dict(pp=pp, tp=tp, micro_batch_size=mbs, micro_batches=global_batch // mbs,
                                           schedule=name, chunks=None))  # fmt: skip
        label = f"{name} pp{pp} tp{tp} mbs{mbs}"
        try:
            s = simulate_pipeline(trial).summary()
        except ServesimError as e:
            rows.append({"label": label, "fits": False, "reason": str(e), "tokens_per_s": 0.0})
            continue
        peak = max(s["peak_memory_gib"])
        fits = peak <= limit
        reason = "" if fits else f"needs {peak:.1f} GiB per GPU > {limit:g} GiB"
        rows.append({"label": label, "fits": fits, "reason": reason, **s})
    return sorted(rows, key=lambda r: (not r["fits"], -r["tokens_per_s"]))
