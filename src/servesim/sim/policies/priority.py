"""Priority scheduling: the most important waiting request first, and it may take a running one's place.

vLLM's `--scheduling-policy priority`: the waiting queue is ordered by (priority, arrival),
lower first, and when blocks run out the victim is the least important running request
(the latest-arrived among equals). With `preempt_for_waiting` (FastSwitch's setting, Shen
et al., arXiv 2411.18424) a waiting request that cannot start for want of blocks or of a
sequence slot preempts running requests of lower priority until it can; it starts at the
next iteration (a step that preempted admits nobody new). What a preemption costs is the
engine's `preemption_mode`: recompute, or swap to the CPU tier and back (`kv_swap.py`),
block by block as vLLM copies or in contiguous groups (`swap_group_blocks`) as FastSwitch does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from servesim.sim.policies.vllm import VLLMScheduler
from servesim.sim.queue import KeyedQueue
from servesim.sim.scheduler import Plan, register
from servesim.sim.sequence import Sequence


class PriorityOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    preempt_for_waiting: bool = Field(True, description="a blocked waiting request preempts less important ones")


def rank(seq: Sequence) -> tuple[int, float]:
    return seq.req.priority, seq.arrival


@register
class PriorityScheduler(VLLMScheduler):
    name = "priority"
    Options = PriorityOptions

    def make_queue(self) -> KeyedQueue:
        return KeyedQueue(rank)

    def pick_victim(self) -> Sequence:
        return max(self.state.running.values(), key=rank)

    def admit_transferred(self) -> None:
        """Resume swapped-out requests in priority order, none ahead of a more important one still waiting."""
        s = self.state
        if self.preempted or not s.landed:
            return
        for seq in list(s.waiting):  # (in rank order)
            if not seq.kv_ready or not s.start_decoding(seq):
                return

    def schedule_prefills(self) -> Plan:
        if self.opts.preempt_for_waiting and not self.preempted:
            self.make_room()
        return super().schedule_prefills()

    def make_room(self) -> None:
        """Preempt less important running requests while the most important waiting one is blocked."""
        s = self.state
        while s.waiting and s.running:
            head = s.waiting.peek()
            need = 1 if head.kv_ready else min(head.target, self.token_budget() - s.dec.n)
            blocked = len(s.running) >= self.cfg.max_num_seqs or s.kv.free() < s.blocks_for(need)
            victim = self.pick_victim()
            if not blocked or rank(victim) <= rank(head):
                return
            self.preempt()
