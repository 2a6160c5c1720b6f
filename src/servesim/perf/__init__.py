"""Performance models: the time of one engine iteration from a batch description."""

from servesim.perf.base import OpCost, PerfModel
from servesim.perf.batch import Batch
from servesim.perf.roofline import RooflineModel, RooflineParams

__all__ = ["Batch", "OpCost", "PerfModel", "RooflineModel", "RooflineParams"]
