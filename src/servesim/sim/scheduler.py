"""The scheduling-policy interface, the mechanics every policy shares, and the policy registry.

Each iteration the replica asks its policy for a plan: the prefill chunks to run beside
the decoding requests. The base class first reserves the decodes' KV blocks (preempting
when they do not fit) and admits requests whose KV cache was transferred in; a policy
then chooses prefill chunks from the replica's `ReplicaState`. A policy may also order
the waiting queue (`make_queue`), choose preemption victims (`pick_victim`) and take
options of its own (`Options`, from `engine.scheduler_options`).
"""

from __future__ import annotations

from pydantic import BaseModel, ValidationError

from servesim.config import EngineConfig, validation_message
from servesim.errors import ServesimError
from servesim.registry import Registry
from servesim.sim.queue import FCFSQueue, WaitingQueue
from servesim.sim.request import Request
from servesim.sim.state import ReplicaState

Plan = list[tuple[Request, int]]
SCHEDULERS = Registry("scheduler", "servesim.sim.policies")
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

    def __init__(self, state: ReplicaState, engine: EngineConfig, options: BaseModel | None = None):
        self.state = state
        self.cfg = engine
        self.opts = options if options is not None else self.configure(engine)
        self.preempted = False  # set when the current step preempted a request

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
    def make_queue(cls, opts: BaseModel | None) -> WaitingQueue:
        """The waiting queue's order: first come, first served unless a policy says otherwise."""
        return FCFSQueue()

    # ----- the policy's part -----
    def schedule(self) -> Plan:
        """Reserve this iteration's decode blocks, then choose prefill chunks."""
        self.preempted = False
        kept = self.state.kept
        if kept.expiry:
            kept.expire(self.state.now)
        self.reserve_decodes()
        self.admit_transferred()
        return self.schedule_prefills()

    def schedule_prefills(self) -> Plan:
        raise NotImplementedError

    def plan_batch(self, plan: Plan, decodes: int, ctx_sum: int):
        """The iteration a plan makes, where the policy prices its own (`prices_plan`)."""
        raise NotImplementedError

    def pick_victim(self) -> Request:
        """The running request to preempt when blocks run out: the newest, as vLLM does."""
        return self.state.newest()

    def finished(self, req: Request) -> None:
        """A request finished here (a policy keeping accounts overrides this)."""

    def retention(self, req: Request) -> float:
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
    def preempt(self) -> Request | None:
        """Free blocks: let a pinned context go if there is one, else preempt a running request."""
        if self.state.kept.expiry and self.state.kept.drop_pin():
            return None
        victim = self.pick_victim()
        self.state.preempt(victim, self.cfg.preemption_mode)
        self.preempted = True
        return victim

    def reserve_decodes(self) -> None:
        s = self.state
        dec, kv = s.dec, s.kv
        need = dec.blocks_needed_at(s.it)
        while need > kv.free():
            self.preempt()  # a decoding victim may have been one of the requests that needed a block
            need = dec.blocks_needed_at(s.it)
        kv.allocate(need)
        s.decodes_reserved = True

    def admit_transferred(self) -> None:
        """Start waiting requests whose KV cache was transferred in: they decode from this iteration."""
        s = self.state
        if self.preempted or not s.landed:
            return
        for req in [q for q in s.waiting if q.kv_ready]:
            if not s.start_decoding(req):
                return

    def continue_prefill(self, req: Request, budget: int) -> int:
        """Grow a running prefill by up to `budget` tokens, preempting others if needed.

        Returns the chunk scheduled, 0 if `req` itself had to be preempted.
        """
        chunk = min(req.target - req.computed, budget)
        while not self.state.grow(req, chunk):
            if self.preempt() is req:
                return 0
        return chunk

    def admit(self, req: Request, budget: int, chunked: bool = True) -> int:
        """Start waiting request `req` with a chunk of up to `budget` tokens; 0 if it does not fit."""
        s = self.state
        chunk = s.admit(req, budget, chunked)
        while not chunk and not s.running and s.kept.expiry and s.kept.drop_pin():  # an idle engine waits for no pin
            chunk = s.admit(req, budget, chunked)
        return chunk
