"""A request as the workload describes it (`Request`), and a program of requests that wait for each other.

The workload makes a request whole (`workload/`) and nothing after changes it: a replica
keeps its progress in a `Sequence` of its own (`sequence.py`), and what its run recorded
goes into the request's `Record` (`record.py`). Times are seconds from the start of the run.
"""

from __future__ import annotations

from servesim.sim.record import Record, Slotted


class Request(Slotted):
    """One generation request: its arrival, lengths and prefix-cache names, who it belongs to, and the
    `record` its run fills in.

    A program's later call (`parents` > 0) is released `delay` seconds after its last parent finishes;
    a prompt's first sample releases the others (`samples`) once the prompt is computed.
    """

    __slots__ = ("id", "arrival", "prompt_len", "output_len", "hash_ids", "hash_ends", "tenant", "priority",
                 "program", "children", "parents", "delay", "samples", "record")  # fmt: skip

    def __init__(self, req_id: int, arrival: float, prompt_len: int, output_len: int, hash_ids=None):
        self.id = req_id
        self.arrival = arrival  # a released call: its recorded time, before which it never comes
        self.prompt_len = prompt_len
        self.output_len = output_len
        self.hash_ids = hash_ids
        self.hash_ends: list[int] | None = None  # each hash entry's end in units, where entries are segments
        self.tenant = 0  # index into the workload's tenants
        self.priority = 0  # lower is served first
        self.program: Program | None = None
        self.children: tuple[Request, ...] = ()  # the calls that wait for it
        self.parents = 0  # calls it waits for (0: it arrives on its own)
        self.delay = 0.0  # think or tool time after its parents
        self.samples: tuple[Request, ...] = ()  # parallel samples of its prompt
        self.record = Record(arrival)

    def __repr__(self) -> str:
        return f"Request({self.id}, in={self.prompt_len}, out={self.output_len})"


class Program(Slotted):
    """A session or agent program: LLM calls that depend on each other (`workload/programs.py`), and how far
    it has come.

    `service` is the tokens its finished calls processed (prompt plus output), the attained service
    program-level schedulers rank by; `left` counts calls not yet finished; `waiting` the parents each
    later call still waits for.
    """

    __slots__ = ("id", "arrival", "calls", "left", "service", "finish", "last", "waiting", "sampled")

    def __init__(self, pid: int, calls: list[Request]):
        """The program of `calls` (the first arrives on its own): each call is marked as one of it."""
        self.id = pid
        self.calls = calls
        for req in calls:
            req.program = self
        self.arrival = calls[0].arrival
        self.left = len(calls)
        self.service = 0
        self.finish: float | None = None
        self.last: Request | None = None  # the call whose finish completed the program
        self.waiting: dict[int, int] = {}  # call id -> parents still running (filled as they finish)
        self.sampled = False  # its prompt's other samples were released

    def done(self, req: Request, t: float) -> list[Request]:
        """Call `req` finished at t: the calls it releases (their parents all done)."""
        self.service += req.prompt_len + req.output_len
        self.left -= 1
        if not self.left:
            self.finish, self.last = t, req
        released, waiting = [], self.waiting
        for child in req.children:
            left = waiting.get(child.id, child.parents) - 1
            if left:
                waiting[child.id] = left
            else:
                waiting.pop(child.id, None)
                released.append(child)
        return released

    def release_samples(self, req: Request) -> tuple[Request, ...]:
        """The other samples of `req`'s prompt, the first time its prompt is computed (a recompute releases none)."""
        if self.sampled:
            return ()
        self.sampled = True
        return req.samples
