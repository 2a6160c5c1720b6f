"""Place a request where the least predicted decode work waits (TetriInfer's decode placement).

Hu et al., "Inference without Interference: Disaggregate LLM Inference for Mixed Downstream
Workloads" (TetriInfer, arXiv 2401.11181), predict each request's output-length range
and place decodes so that no instance gathers the heavy ones. Here a replica's load is
the output its requests still have to make, as a bucket predictor sees it (`predictors.py`:
the right length range 80% of the time); the request goes to the least loaded. Meant for
the decode pool of a disaggregated deployment, it works on any pool.
"""

from itertools import chain

from servesim.sim.predictors import Predictor, PredictorConfig
from servesim.sim.router import Router, register


@register
class LengthAware(Router):
    name = "length_aware"
    predictor = PredictorConfig(predictor="buckets", buckets=[128, 512, 2048], accuracy=0.8)

    def __init__(self, seed: int = 0):
        super().__init__(seed)
        self.predict = Predictor(self.predictor.model_copy(update={"seed": seed}))
        self.known: dict[int, float] = {}  # request id -> predicted output length

    def route(self, req, replicas) -> int:
        return min(range(len(replicas)), key=lambda i: (self.work_left(replicas[i]), i))

    def work_left(self, rep) -> float:
        """Output tokens the replica's requests still have to make, as predicted."""
        s, known, total = rep.state, self.known, 0.0
        for r in chain(s.running.values(), s.waiting, s.incoming):
            guess = known.get(r.id)
            if guess is None:
                guess = known[r.id] = self.predict(r)
            total += max(guess - s.made(r), 1.0)
        return total
