"""Speculative decoding priced per accepted token.

Each step a drafter proposes k tokens per decoding request and the target model verifies
them in one pass of k+1 query tokens per request (the KV cache read once, the GEMMs and LM
head over (k+1) rows per request). With acceptance rate alpha_i at draft position i, a step
yields tau = 1 + sum_i prod_{j<=i} alpha_j tokens on average (Leviathan et al., ICML 2023,
with alpha_i = alpha x decay^(i-1)). The drafter is:
- `draft_model`: a smaller catalog model, k single-token passes on the same GPUs;
- `eagle`: a one-layer head of the target's width on its hidden states (EAGLE, Li et al.
  2024; Medusa-like heads cost about the same), k passes of one layer plus the LM head;
- `ngram`: prompt lookup on the CPU, no GPU work (its acceptance is usually lower).
The draft passes run inside the step without their own scheduling, so their CPU
overhead is not added again.

The engine is simulated per token, as without speculation: a decode iteration here is
1/tau of a step, so KV growth and context stay exact and a request's tokens arrive at the
mean rate, not in bursts of accepted runs (ITL percentiles are therefore smoother than a
real engine's; TPOT, throughput and the batch-size trade-off are what this prices). In a
mixed iteration the prefill chunks cost in full and the decodes' share of the step
(the whole step less the chunks alone) is divided by tau. Acceptance is the same for every
request: per-request acceptance distributions are not modelled.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from servesim.config import SpeculativeConfig
from servesim.models import ModelSpec, get_model
from servesim.perf.base import DecodeCurve, Wrapped
from servesim.perf.batch import Batch


def expected_tokens(cfg: SpeculativeConfig) -> float:
    """tau: tokens one step yields on average (accepted drafts plus the target's own)."""
    tau, run = 1.0, 1.0
    for i in range(cfg.num_speculative_tokens):
        run *= cfg.acceptance_rate * cfg.acceptance_decay**i
        tau += run
    return tau


def draft_spec(target: ModelSpec, cfg: SpeculativeConfig | None) -> ModelSpec | None:
    """The model the drafter runs: a catalog model, the target's width at one layer (eagle), or none."""
    if cfg is None or cfg.method == "ngram":
        return None
    if cfg.method == "eagle":
        return dataclasses.replace(target, name=f"{target.name}-eagle-head", layers=1, dense_layers=min(
            target.dense_layers, 1))  # fmt: skip
    return get_model(cfg.draft_model)


class SpeculativeModel(Wrapped):
    """`target` verifying drafts from `draft` (a perf model of the drafter, None for ngram), per token."""

    def __init__(self, target, draft, cfg: SpeculativeConfig):
        super().__init__(target)
        self.draft, self.cfg = draft, cfg
        self.k = cfg.num_speculative_tokens
        self.tau = expected_tokens(cfg)
        self._curves: dict[int, DecodeCurve] = {}
        self.note = (f"speculative decoding ({cfg.method}, k={self.k}, acceptance {cfg.acceptance_rate:g}: "
                     f"{self.tau:.2f} tokens per step)")  # fmt: skip

    def _draft_cpu(self) -> float:
        return self.draft.p.cpu_overhead_s if self.draft is not None else 0.0

    def _drafting(self, batch: Batch) -> tuple[float, float, float]:
        """The drafter's part of one step: its pass over the batch (prefill chunks and one decode token each),
        then k - 1 more decode passes."""
        if self.draft is None:
            return 0.0, 0.0, 0.0
        cpu = self._draft_cpu()
        c, m, o = self.draft.split(batch)
        parts = [c, m, o - cpu]
        if batch.num_decodes and self.k > 1:
            c, m, o = self.draft.decode_curve(batch.num_decodes).split_at(batch.decode_ctx_sum / batch.num_decodes)
            more = (c, m, o - cpu)
            parts = [a + (self.k - 1) * b for a, b in zip(parts, more, strict=True)]
        return parts[0], parts[1], parts[2]

    def _step(self, batch: Batch) -> tuple[float, float, float]:
        """One whole speculative step: drafting plus the verify pass of k+1 tokens per decode."""
        verify = self.inner.split(dataclasses.replace(batch, decode_q=self.k + 1) if batch.num_decodes else batch)
        return tuple(a + b for a, b in zip(verify, self._drafting(batch), strict=True))

    def split(self, batch: Batch) -> tuple[float, float, float]:
        if not batch.prefill_lens:
            return self.decode_curve(batch.num_decodes).split_at(batch.decode_ctx_sum / batch.num_decodes)
        step = self._step(batch)
        if not batch.num_decodes:
            return step
        chunks = self._step(Batch(prefill_lens=batch.prefill_lens, prefill_ctx=batch.prefill_ctx,
                                  prefill_layers=batch.prefill_layers))  # fmt: skip
        return tuple(p + (s - p) / self.tau for s, p in zip(step, chunks, strict=True))

    def decode_curve(self, n: int) -> DecodeCurve:
        curve = self._curves.get(n)
        if curve is None:
            verify = self.inner.decode_curve(n, self.k + 1)
            parts = [verify]
            if self.draft is not None:
                parts.append(self.draft.decode_curve(n))
            xs = np.unique(np.concatenate([c.xs for c in parts]))
            seconds = verify.times(xs)
            comp, other = verify.comp, verify.other
            if self.draft is not None:
                d, cpu = parts[1], self._draft_cpu()
                seconds = seconds + self.k * (d.times(xs) - cpu)
                comp, other = comp + self.k * d.comp, other + self.k * (d.other - cpu)
            t = self.tau
            curve = self._curves[n] = DecodeCurve(comp / t, other / t, xs, seconds / t)
        return curve
