"""Workloads: arrival processes, length distributions and trace replay."""

from servesim.workload.arrivals import arrival_times
from servesim.workload.generate import generate, generate_chunks
from servesim.workload.lengths import sample_lengths
from servesim.workload.traces import Trace, read_trace

__all__ = ["Trace", "arrival_times", "generate", "generate_chunks", "read_trace", "sample_lengths"]
