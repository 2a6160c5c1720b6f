"""What a request's run recorded: when it arrived, was first scheduled, made its first token and finished;
the iterations that made its tokens; preemptions, migrations, the KV transfer; its energy and cost.

Its writers, each for its own part: the `ReplicaState` serving it (times, cached prefix,
preemptions, migrations, token segments), the replica's `Meter` (energy and cost) and the
`Cluster` (admission's refusal, the KV transfer's delay). The metrics read it
(`metrics/summary.py`), never the replicas.
"""

from __future__ import annotations


class Slotted:
    """Pickled as a tuple of its slots, not a dict of slot names: partitions send many requests back."""

    __slots__ = ()

    def __getstate__(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class Record(Slotted):
    __slots__ = (
        "arrival", "first_scheduled", "first_token", "finish", "cached_tokens", "preemptions", "migrations",
        "rejected", "transfer_s", "segments", "prefill_j", "decode_j", "prefill_usd", "decode_usd",
    )  # fmt: skip

    def __init__(self, arrival: float):
        self.arrival = arrival  # when it came to the service (a program's later call: when it was released)
        self.first_scheduled: float | None = None
        self.first_token: float | None = None
        self.finish: float | None = None
        self.cached_tokens = 0  # its prompt's prefix found cached when it was first scheduled
        self.preemptions = 0
        self.migrations = 0
        self.rejected = False  # refused at admission (longer than max_model_len), or its program was
        self.transfer_s: float | None = None  # its KV cache's trip to the decode pool
        self.segments: list[tuple[int, int, int]] = []  # (replica, first, last) iterations that made its tokens
        # energy and GPU cost of the iterations it took part in, shared among their tokens
        self.prefill_j = self.decode_j = self.prefill_usd = self.decode_usd = 0.0

    def __repr__(self) -> str:
        return f"Record(arrival={self.arrival}, first_token={self.first_token}, finish={self.finish})"
