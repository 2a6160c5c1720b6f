"""Deployment search: which GPUs, parallelism, replicas and engine limits serve a workload best."""

from servesim.search.capacity import SLOTarget, find_capacity, parse_targets
from servesim.search.runner import run_search
from servesim.search.space import Candidate, SearchSpace

__all__ = ["Candidate", "SLOTarget", "SearchSpace", "find_capacity", "parse_targets", "run_search"]
