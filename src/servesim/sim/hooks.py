"""What is attached to a replica, and by whom: the two protocols, each given once.

`ReplicaHooks` is what the deployment around a replica attaches when the factory builds it
(`pool.make_replica`): where a prompt that is computed goes on to decode (a prefill pool's
hand-off), and where a streamed run collects finished requests. `PolicyHooks` is what a
scheduling policy attaches to its replica's state when it is made (`ReplicaState.attach`,
called by `Scheduler.__init__`). Controllers attach nothing: they act through methods
(`Replica.set_power_cap`, `Replica.set_sm_share`, `ReplicaState.migrate_out`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from servesim.sim.queue import WaitingQueue
    from servesim.sim.request import Request
    from servesim.sim.sequence import Sequence


@dataclass(frozen=True)
class ReplicaHooks:
    # a replica whose requests decode elsewhere: called with (sequence, time, the last iteration's seconds) as a
    # prompt is computed; the request leaves the replica
    hand_on: Callable[[Sequence, float, float], None] | None = None
    # a streamed run: every request that finishes here is appended (and taken off between chunks, `stream.py`)
    done: list[Request] | None = None


NO_HOOKS = ReplicaHooks()


class PolicyHooks(Protocol):
    """What a policy gives its replica's state (`Scheduler` has a default for each)."""

    # keep a finished program call's context in the CPU tier instead of pinning it on the GPU
    offload: bool
    # keep accounts of finished requests (None: the policy keeps none, and is not called)
    finished: Callable[[Sequence], None] | None

    def make_queue(self) -> WaitingQueue:
        """The waiting queue, in the policy's order."""
        ...

    def retention(self, seq: Sequence) -> float:
        """Seconds to keep a finished program call's context for the call after it."""
        ...
