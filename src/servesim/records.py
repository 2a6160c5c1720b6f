"""Columns of equal length held as numpy arrays: a light table for the paths that must not import pandas."""

from __future__ import annotations

import numpy as np


class Records(dict):
    """Equal-length columns (numpy arrays) read as attributes: what `pandas.DataFrame(records)` would hold,
    without importing pandas on the command line's path."""

    def __getattr__(self, name: str) -> np.ndarray:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None

    @property
    def rows(self) -> int:
        return len(next(iter(self.values()))) if self else 0

    def select(self, mask: np.ndarray) -> Records:
        return Records({k: v[mask] for k, v in self.items()})
