"""Output-length predictors for length-aware policies: what a scheduler believes a request will generate.

Length-aware schedulers (Fu et al., "Efficient LLM Scheduling by Learning to Rank", NeurIPS
2024; Zheng et al., "Response Length Perception and Sequence Scheduling", NeurIPS 2023;
TetriInfer) act on a prediction, never on the true length. The simulator knows the true
length, so a predictor here is the truth degraded the way real predictors are judged:

* `oracle`: the true output length (the upper bound these papers compare against).
* `noisy`: a ranker of a chosen quality. Learning-to-rank papers report Kendall's tau
  between predicted and true order; here log(predicted) = m + rho (log(true) - m) +
  sqrt(1 - rho^2) s e, with e standard normal per request and m, s the mean and spread of
  log lengths (estimated from the requests seen so far), so that when log lengths are
  normal the two correlate by rho and tau comes out as asked (rho = sin(pi tau / 2),
  Greiner's relation).
* `buckets`: a classifier into length ranges (Zheng et al.'s bucketed perception,
  TetriInfer's classes) that names the right bucket with probability `accuracy` and a
  neighbouring one otherwise; its prediction is the bucket's geometric middle.

Each request's draw depends only on the seed and its id, so a prediction is the same
wherever it is asked for (a noisy one up to the running spread estimate, which settles
after the first few hundred requests).
"""

from __future__ import annotations

import math
import random
from bisect import bisect_right
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from servesim.sim.request import Request


class PredictorConfig(BaseModel):
    """How a length-aware policy predicts output lengths."""

    model_config = ConfigDict(extra="forbid")
    predictor: Literal["oracle", "noisy", "buckets"] = "oracle"
    tau: float = Field(0.6, ge=0, le=1, description="noisy: Kendall's tau of predicted against true lengths")
    buckets: list[int] = Field([64, 256, 1024], description="buckets: upper edges of the length ranges but the last")
    accuracy: float = Field(0.8, ge=0, le=1, description="buckets: chance the right bucket is named")
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _edges(self):
        if not self.buckets or any(b <= a for a, b in zip([0] + self.buckets, self.buckets, strict=False)):
            raise ValueError("buckets must be increasing positive token counts, e.g. [64, 256, 1024]")
        return self


def _normal(seed: int, req_id: int) -> float:
    return random.Random(seed * 1_000_003 + req_id).gauss(0.0, 1.0)


class Predictor:
    """Predicted output length of a request (tokens, positive; a noisy ranker's may fall below one)."""

    def __init__(self, cfg: PredictorConfig):
        self.cfg = cfg
        self._n, self._mean, self._m2 = 0, 0.0, 0.0  # running moments of log true lengths
        self._rho = math.sin(math.pi * cfg.tau / 2)
        self._mix = math.sqrt(max(1 - self._rho**2, 0.0))
        edges = [0, *cfg.buckets]
        last = cfg.buckets[-1]
        self._mids = [math.sqrt(max(a, 1) * b) for a, b in zip(edges, cfg.buckets, strict=False)] + [2.0 * last]

    def __call__(self, req: Request) -> float:
        kind = self.cfg.predictor
        if kind == "oracle":
            return float(req.output_len)
        if kind == "buckets":
            return self._bucket(req)
        x = math.log(req.output_len)
        self._n += 1  # Welford: the spread of log lengths seen so far
        d = x - self._mean
        self._mean += d / self._n
        self._m2 += d * (x - self._mean)
        s = math.sqrt(self._m2 / (self._n - 1)) if self._n > 1 and self._m2 > 0 else 1.0
        # the same ranks as log(true) + sigma e, scaled back to the spread of the lengths: bounded at any tau
        score = self._rho * (x - self._mean) + self._mix * s * _normal(self.cfg.seed, req.id)
        return math.exp(min(self._mean + score, 25.0))

    def _bucket(self, req: Request) -> float:
        true = bisect_right(self.cfg.buckets, req.output_len - 1)
        rng = random.Random(self.cfg.seed * 1_000_003 + req.id)
        named = true
        if rng.random() >= self.cfg.accuracy:
            neighbours = [b for b in (true - 1, true + 1) if 0 <= b < len(self._mids)]
            named = rng.choice(neighbours)
        return self._mids[named]
