"""The scheduling-policy interface, the mechanics every policy shares, and the policy registry.

Each iteration the replica asks its policy for a plan: the prefill chunks to run beside
the decoding sequences. The base class first reserves the decodes' KV blocks (preempting
when they do not fit) and admits sequences whose KV cache was transferred in; a policy
then chooses prefill chunks from the replica's `ReplicaState`. A policy may also order
the waiting queue (`make_queue`), choose preemption victims (`pick_victim`), keep a
finished call's context (`retention`, `offload`), keep accounts of finished requests
(`finished`) and take options of its own (`Options`, from `engine.scheduler_options`);
the state takes these hooks once, when the policy is made (`ReplicaState.attach`).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from servesim.config import EngineConfig, validation_message
from servesim.errors import ServesimError
from servesim.registry import Registry
from servesim.sim.queue import FCFSQueue, WaitingQueue
from servesim.sim.sequence import Sequence
from servesim.sim.state import ReplicaState

Plan = list[tuple[Sequence, int]]  # an iteration's prefill chunks: (sequence, tokens)
SCHEDULERS = Registry("scheduler", "servesim.sim.policies", "servesim.policies")
register = SCHEDULERS.register
scheduler_names = SCHEDULERS.names


def make_scheduler(name: str, state: ReplicaState, engine: EngineConfig) -> Scheduler:
    return SCHEDULERS.make(name, state, engine)


class Scheduler:
    name = ""
    Options: type[BaseModel] | None = None  # the policy's own settings
    # whether a plan of decodes only stays the plan while they run (else decode runs go one iteration at a time)
    steady = True
    # whether the policy prices its own plans (`plan_batch`), e.g. prompts through part of the layers
    prices_plan = False
    # keep a finished program call's context (`retention`) in the CPU tier instead of pinning it on the GPU
    offload = False
    # a policy keeping accounts of finished requests defines `finished(seq)` (vtc.py); None: not called at all
    finished = None

    def __init__(self, state: ReplicaState, engine: EngineConfig, options: BaseModel | None = None):
        self.state = state
        self.cfg = engine
        self.opts = options if options is not None else self.configure(engine)
        self.preempted = False  # set when the current step preempted a sequence
        state.attach(self)

    # ----- set-up -----
    @classmethod
    def configure(cls, engine: EngineConfig) -> BaseModel | None:
        """Validate `engine.scheduler_options` against the policy's `Options`; one clear line if wrong."""
        given = engine.scheduler_options
        if cls.Options is None:
            if given:
                raise ServesimError(f"scheduler {cls.name} takes no options (got {', '.join(given)})")
            return None
        try:
            opts = cls.Options(**given)
        except ValidationError as e:
            raise ServesimError(validation_message(e, f"scheduler_options of {cls.name}")) from None
        cls.check(engine, opts)
        return opts

    @classmethod
    def check(cls, engine: EngineConfig, opts: BaseModel) -> None:
        """Refuse option values that cannot work with these engine settings."""

    @classmethod
    def check_workload(cls, opts: BaseModel | None, workload) -> None:
        """Refuse option values that cannot work with this workload (e.g. one weight per tenant)."""

    def make_queue(self) -> WaitingQueue:
        """The waiting queue's order: first come, first served unless a policy says otherwise."""
        return FCFSQueue()

    # ----- the policy's part -----
    def schedule(self) -> Plan:
        """Reserve this iteration's decode blocks, then choose prefill chunks."""
        self.preempted = False
        kept = self.state.kept
        if kept.expiry:
            kept.expire(self.state.now)
        self.state.reserve_decodes(self.preempt)  # (preempting the policy's victims while they do not fit)
        self.admit_transferred()
        return self.schedule_prefills()

    def schedule_prefills(self) -> Plan:
        raise NotImplementedError

    def plan_batch(self, plan: Plan, decodes: int, ctx_sum: int):
        """The iteration a plan makes, where the policy prices its own (`prices_plan`)."""
        raise NotImplementedError

    def pick_victim(self) -> Sequence:
        """The running sequence to preempt when blocks run out: the newest, as vLLM does."""
        return self.state.newest()

    def retention(self, seq: Sequence) -> float:
        """Seconds to keep a finished program call's KV pinned for the call after it: none, as vLLM."""
        return 0.0

    def arrivals_matter(self) -> bool:
        """Could a new arrival change the next plan? If not, decode runs skip over arrivals."""
        s = self.state
        if len(s.running) >= self.cfg.max_num_seqs:
            return False
        # behind a blocked head nobody new starts, unless a keyed queue may put the newcomer ahead of it
        return not s.waiting or not isinstance(s.waiting, FCFSQueue)

    # ----- shared mechanics -----
    def preempt(self) -> Sequence | None:
        """Free blocks: let a pinned context go if there is one, else preempt a running sequence."""
        if self.state.kept.expiry and self.state.kept.drop_pin():
            return None
        victim = self.pick_victim()
        self.state.preempt(victim, self.cfg.preemption_mode)
        self.preempted = True
        return victim

    def admit_transferred(self) -> None:
        """Start waiting sequences whose KV cache came with them: they decode from this iteration."""
        s = self.state
        if self.preempted or not s.landed:
            return
        for seq in [q for q in s.waiting if q.kv_ready]:
            if not s.start_decoding(seq):
                return

    def continue_prefill(self, seq: Sequence, budget: int) -> int:
        """Grow a running prefill by up to `budget` tokens, preempting others if needed.

        Returns the chunk scheduled, 0 if `seq` itself had to be preempted.
        """
        chunk = min(seq.target - seq.computed, budget)
        while not self.state.grow(seq, chunk):
            if self.preempt() is seq:
                return 0
        return chunk

    def admit(self, seq: Sequence, budget: int, chunked: bool = True) -> int:
        """Start waiting sequence `seq` with a chunk of up to `budget` tokens; 0 if it does not fit."""
        s = self.state
        chunk = s.admit(seq, budget, chunked)
        while not chunk and not s.running and s.kept.expiry and s.kept.drop_pin():  # an idle engine waits for no pin
            chunk = s.admit(seq, budget, chunked)
        return chunk
