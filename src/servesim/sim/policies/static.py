"""Static (request-level) batching: a batch is formed only when the engine is idle.

Up to `max_num_seqs` waiting requests are prefilled together, then decoded until the
last of them finishes; nothing joins a batch in flight (FasterTransformer-style).

With `group = true` the batch is chosen by predicted output length, as Zheng et al.'s
sequence scheduling does ("Response Length Perception and Sequence Scheduling", NeurIPS
2023): waiting requests sorted by prediction, the batch is the run of `max_num_seqs`
neighbours with the least spread that holds the longest-waiting request (so nobody
starves), and a batch of similar lengths wastes fewer slots on finished sequences. The
paper also cuts generation at the predicted length and reruns failures; here every
request runs to its true length.
"""

from __future__ import annotations

from itertools import islice

from pydantic import Field

from servesim.sim.predictors import Predictor, PredictorConfig
from servesim.sim.scheduler import Plan, Scheduler, register


class StaticOptions(PredictorConfig):
    group: bool = Field(False, description="batch requests of similar predicted output length")


@register
class StaticScheduler(Scheduler):
    name = "static"
    Options = StaticOptions

    def __init__(self, state, engine, options=None):
        super().__init__(state, engine, options)
        self.predict = Predictor(self.opts)

    def schedule_prefills(self) -> Plan:
        s = self.state
        plan: Plan = []
        if s.running:
            return plan
        for seq in self.candidates():
            chunk = self.admit(seq, seq.target, chunked=False)
            if not chunk:
                break
            plan.append((seq, chunk))
        return plan

    def candidates(self) -> list:
        """The next batch, in the order it is admitted."""
        s, size = self.state, self.cfg.max_num_seqs
        if not self.opts.group or len(s.waiting) <= size:
            return list(islice(s.waiting, size))  # the head only: the queue may hold a whole offline run
        waiting = list(s.waiting)
        predicted = [self.predict(r) for r in waiting]  # once each: a noisy predictor's draw moves its estimates
        order = sorted(range(len(waiting)), key=predicted.__getitem__)
        ranked, lengths = [waiting[i] for i in order], [predicted[i] for i in order]
        oldest = min(range(len(ranked)), key=lambda i: (ranked[i].arrival, ranked[i].id))
        lo = min(range(max(0, oldest - size + 1), min(oldest, len(ranked) - size) + 1),
                 key=lambda i: lengths[i + size - 1] - lengths[i])  # fmt: skip
        batch = ranked[lo : lo + size]
        batch.remove(ranked[oldest])
        return [ranked[oldest], *batch]

    def arrivals_matter(self) -> bool:
        return not self.state.running
