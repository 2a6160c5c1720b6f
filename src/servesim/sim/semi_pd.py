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
- while both run they contend (`contention = "measured"`, the default): each worker's GPU
  seconds are stretched as a measured pair of green contexts on one H100 stretched a GEMM
  and GEMVs launched together (`PairContention`: processor sharing fitted to the pair; 2 -
  h times longer while the other runs throughout, h = 0.07-0.09 of the shorter hidden at
  most splits). Which iterations overlap is measured on the simulated timeline: every
  interval the controller takes, for each worker, the fraction of its busy time in the last
  interval during which the other was busy too, and prices the next interval's iterations
  with it (a lag of one interval, and the first is priced as if alone; a stream that hands
  steps' logs out mid-interval loses that interval's overlap). `contention = "none"` is the
  assumption this replaced: each worker at its share's full speed as if alone, both drawing
  nearly the whole memory bandwidth at once.
`SemiPDController` is the paper's SLO-aware split (`adaptive`): every interval it compares
each phase's latency with its SLO (the prefill queue's expected wait for TTFT, the decode
worker's current iteration for TPOT) and moves `step` of the SMs toward the phase further
over.
"""

from __future__ import annotations

from servesim.config import SemiPDConfig
from servesim.perf.batch import Batch
from servesim.perf.sm_share import PairContention
from servesim.sim.controller import Controller

DEFAULT_TTFT_S, DEFAULT_TPOT_S = 1.0, 0.1  # targets the controller balances when the scenario sets no SLO
LOW, HIGH = 0.1, 0.9  # the prefill worker's share stays within these


def split_blocks(total: int, cfg: SemiPDConfig, min_blocks: int) -> tuple[int, int]:
    """KV blocks of the prefill and decode workers out of one replica's `total`."""
    prefill = max(int(total * cfg.prefill_kv), min_blocks)
    return prefill, total - prefill


def busy(rep, t0: float, t: float) -> list[tuple[float, float]]:
    """A replica's busy spans within [t0, t], in order, from its step log."""
    spans = []
    for row in reversed(rep.meter.log.rows):  # (start, end, ...), in time order
        if row[1] <= t0:
            break
        if row[0] < t:
            spans.append((max(row[0], t0), min(row[1], t)))
    return spans[::-1]


def together(a: list[tuple[float, float]], b: list[tuple[float, float]]) -> float:
    """Seconds in both of two ordered lists of disjoint spans."""
    i = j = 0
    both = 0.0
    while i < len(a) and j < len(b):
        both += max(0.0, min(a[i][1], b[j][1]) - max(a[i][0], b[j][0]))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return both


class SemiPDController(Controller):
    """Every `interval_s`: prices the next interval's contention between each pair's workers (measured
    contention), then moves each pair's split toward the phase further over its SLO (`adaptive`)."""

    def __init__(self, cfg: SemiPDConfig, ttft_s: float | None, tpot_s: float | None):
        self.cfg = cfg
        self.ttft_s, self.tpot_s = ttft_s or DEFAULT_TTFT_S, tpot_s or DEFAULT_TPOT_S
        self.moves = 0
        self.shares: list[tuple[float, float]] = []  # (time, mean prefill share) after each look
        self.contention: PairContention | None = None  # (from the workers' profile, at the first look)
        self.last = 0.0  # the previous look
        # per role: busy seconds, busy seconds with the other worker busy, slowdown x busy seconds
        self.sums = {"prefill": [0.0, 0.0, 0.0], "decode": [0.0, 0.0, 0.0]}

    @property
    def interval_s(self) -> float:
        return self.cfg.interval_s

    def first_check(self, t0: float) -> float:
        self.last = t0
        return t0 + self.cfg.interval_s

    def _contend(self, p, d, t: float) -> None:
        """Price the pair's next interval from how much its workers overlapped in the last one."""
        spans = {"prefill": busy(p, self.last, t), "decode": busy(d, self.last, t)}
        both = together(spans["prefill"], spans["decode"])
        for role, rep, other in (("prefill", p, "decode"), ("decode", d, "prefill")):
            own = sum(b - a for a, b in spans[role])
            # (idle in the last interval: the chance that the other is busy when it starts)
            overlap = both / own if own else sum(b - a for a, b in spans[other]) / (t - self.last)
            sums = self.sums[role]
            sums[0], sums[1], sums[2] = sums[0] + own, sums[1] + both, sums[2] + own * rep.perf.slowdown
            rep.perf.contend(self.contention.slowdown(p.perf.share, overlap))

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
        if self.cfg.contention == "measured":
            if self.contention is None:
                self.contention = PairContention.for_profile(getattr(pairs[0][0].perf, "profile", None))
            for p, d in pairs:
                self._contend(p, d, t)
        self.last = t
        if self.cfg.adaptive:
            self._move(pairs)
        self.shares.append((t, sum(p.perf.share for p, _ in pairs) / len(pairs)))

    def _move(self, pairs) -> None:
        """Move each pair's split a step toward the phase further over its SLO."""
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

    def _slowdowns(self) -> dict[str, tuple[float, float]]:
        """Per role: (share of its busy time with the other worker busy, its mean slowdown over its busy time)."""
        return {role: (both / own, slow / own) if own else (0.0, 1.0) for role, (own, both, slow) in self.sums.items()}

    def report(self, end: float) -> dict:
        mean = sum(s for _, s in self.shares) / len(self.shares) if self.shares else None
        figures = {"contention": self.cfg.contention, "share_moves": self.moves, "mean_prefill_share": mean}
        if self.contention is not None:
            figures.update({f"{role}_{name}": v for role, pair in self._slowdowns().items()
                            for name, v in zip(("overlap", "slowdown"), pair, strict=True)})  # fmt: skip
        return {"semi_pd": figures}

    def notes(self) -> list[str]:
        if not self.shares:
            return []
        notes = []
        if self.cfg.adaptive:
            mean = sum(s for _, s in self.shares) / len(self.shares)
            notes.append(f"semi-PD: the prefill worker's SM share moved {self.moves} times (mean {mean:.2f}, last "
                         f"{self.shares[-1][1]:.2f})")  # fmt: skip
        if self.contention is not None:
            (po, ps), (do, ds) = self._slowdowns().values()
            notes.append(f"semi-PD contention ({self.contention.source}): the workers ran together {po:.0%} of the "
                         f"prefill worker's busy time and {do:.0%} of the decode worker's, slowed {ps:.2f}x and "
                         f"{ds:.2f}x on average")  # fmt: skip
        else:
            notes.append("semi-PD: no contention priced (assumed): each worker ran at its SM share's full speed "
                         "while the other ran")  # fmt: skip
        return notes
