"""semi-PD: a prefill worker and a decode worker on the same GPUs, each on its share of the SMs.

semi-PD (Hong et al., arXiv 2504.19867) keeps disaggregation's separation of the two phases
(a long prefill never stalls decoding) without its transfers or its split of memory: both
workers run at once on one GPU group, the prefill worker on a share x of the SMs and the
decode worker on the rest, reading one KV cache. Here each replica becomes two engines:
- the prefill worker prices its iterations on share x, the decode worker on 1 - x
  (`perf/sm_share.py`: compute scales with the share, bandwidth saturates early);
- a finished prefill hands its request to the decode worker of the same GPUs at no cost
  (the KV cache stays where it is);
- the KV cache is one pool in semi-PD; here the prefill worker may hold `prefill_kv` of the
  blocks (at least one max_model_len prompt) for prompts in progress and the decode worker
  the rest, which is close while prompts in progress are few;
- each worker draws its share of the GPU's power and cost (`gpus` = x or 1 - x of the GPUs);
- both workers' memory-bound kernels are assumed to get their share's bandwidth at once;
  the prefill worker is mostly compute-bound, so they rarely compete.
`SemiPDController` is the paper's SLO-aware split: every interval it compares each phase's
latency with its SLO (the prefill queue's expected wait for TTFT, the decode worker's
current iteration for TPOT) and moves `step` of the SMs toward the phase further over.
"""

from __future__ import annotations

from servesim.config import SemiPDConfig
from servesim.perf.batch import Batch
from servesim.sim.controller import Controller

DEFAULT_TTFT_S, DEFAULT_TPOT_S = 1.0, 0.1  # targets the controller balances when the scenario sets no SLO
LOW, HIGH = 0.1, 0.9  # the prefill worker's share stays within these


def split_blocks(total: int, cfg: SemiPDConfig, min_blocks: int) -> tuple[int, int]:
    """KV blocks of the prefill and decode workers out of one replica's `total`."""
    prefill = max(int(total * cfg.prefill_kv), min_blocks)
    return prefill, total - prefill


class SemiPDController(Controller):
    def __init__(self, cfg: SemiPDConfig, ttft_s: float | None, tpot_s: float | None):
        self.cfg = cfg
        self.ttft_s, self.tpot_s = ttft_s or DEFAULT_TTFT_S, tpot_s or DEFAULT_TPOT_S
        self.moves = 0
        self.shares: list[tuple[float, float]] = []  # (time, mean prefill share) after each look

    @property
    def interval_s(self) -> float:
        return self.cfg.interval_s

    def first_check(self, t0: float) -> float:
        return t0 + self.cfg.interval_s

    def _pressure(self, p, d) -> tuple[float, float]:
        """(expected TTFT / its SLO, current TPOT / its SLO) of one pair."""
        s = p.state
        waiting = sum(r.target - r.computed for r in s.waiting) + sum(r.target - r.computed for r in s.prefilling)
        chunk = p.engine.max_num_batched_tokens
        per_token = p.perf.iteration_time(Batch.prefill(chunk)) / chunk
        ttft = waiting * per_token
        n = d.state.dec.n
        tpot = 0.0
        if n:
            x = d.state.dec.ctx_sum(d.state.it) / n
            tpot = float(d.perf.decode_curve(n).times(x))
        return ttft / self.ttft_s, tpot / self.tpot_s

    def step(self, t: float, cluster) -> None:
        pairs = list(zip(cluster.pools[0].replicas, cluster.pools[1].replicas, strict=True))  # on the same GPUs
        for p, d in pairs:
            rp, rd = self._pressure(p, d)
            share = p.perf.share
            if rp > 1.0 and rp > rd:
                share = min(HIGH, share + self.cfg.step)
            elif rd > 1.0 and rd > rp:
                share = max(LOW, share - self.cfg.step)
            if share != p.perf.share:
                p.set_sm_share(share)
                d.set_sm_share(1.0 - share)
                self.moves += 1
        self.shares.append((t, sum(p.perf.share for p, _ in pairs) / len(pairs)))

    def notes(self) -> list[str]:
        if not self.shares:
            return []
        mean = sum(s for _, s in self.shares) / len(self.shares)
        return [f"semi-PD: the prefill worker's SM share moved {self.moves} times (mean {mean:.2f}, last "
                f"{self.shares[-1][1]:.2f})"]  # fmt: skip
