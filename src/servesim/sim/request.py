"""A request as the engine sees it: its lengths, its progress and what it recorded."""

from __future__ import annotations


class _Slotted:
    """Pickled as a tuple of its slots, not a dict of slot names: partitions send many requests back."""

    __slots__ = ()

    def __getstate__(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __setstate__(self, state) -> None:
        for name, value in zip(self.__slots__, state, strict=True):
            setattr(self, name, value)


class Request(_Slotted):
    """One generation request. Times are seconds from the start of the run.

    While prefilling, `computed` counts tokens whose KV is cached and `blocks` the blocks
    held. While decoding, both follow from the iteration counter `it`:
    computed = base + it, blocks = ceil(computed / block_size).
    """

    __slots__ = (
        "id", "arrival", "prompt_len", "output_len", "hash_ids", "hash_ends",
        "computed", "generated", "blocks", "shared_blocks", "entries",
        "base", "finish_it", "epoch", "decoding",
        "first_token", "finish", "preemptions", "cached_tokens", "first_scheduled",
        "segments", "seg_start", "rejected", "ready", "kv_ready", "transfer_s", "migrations",
        "j_mark", "usd_mark", "prefill_j", "decode_j", "prefill_usd", "decode_usd",
        "program", "children", "pending", "delay", "tenant", "priority", "swapped", "samples",
    )  # fmt: skip

    def __init__(self, rid: int, arrival: float, prompt_len: int, output_len: int, hash_ids=None):
        self.id = rid
        self.arrival = arrival
        self.prompt_len = prompt_len
        self.output_len = output_len
        self.hash_ids = hash_ids
        self.hash_ends: list[int] | None = None  # each hash entry's end in units, where entries are segments
        self.computed = 0
        self.generated = 0
        self.blocks = 0
        self.shared_blocks = 0  # blocks of `entries`, held through the prefix cache
        self.entries: list = []  # prefix-cache entries this request references
        self.base = 0
        self.finish_it = -1
        self.epoch = 0
        self.decoding = False
        self.first_token: float | None = None
        self.finish: float | None = None
        self.preemptions = 0
        self.cached_tokens = 0
        self.first_scheduled: float | None = None
        self.segments: list[tuple[int, int, int]] = []  # (replica, first, last) iterations that made tokens
        self.seg_start = -1
        self.rejected = False
        self.ready = arrival  # when the replica it is handed to may start it
        self.kv_ready = False  # its KV cache arrives with it (disaggregated decode)
        self.transfer_s: float | None = None
        self.migrations = 0
        self.j_mark = self.usd_mark = 0.0  # the meter's running sums when its decoding stint began
        # energy and GPU cost of the iterations it took part in, shared among their tokens
        self.prefill_j = self.decode_j = self.prefill_usd = self.decode_usd = 0.0
        # an LLM call of a program (session, agent): released `delay` seconds after its last parent finishes
        self.program: Program | None = None
        self.children: tuple[Request, ...] = ()
        self.pending = 0  # parents not yet finished
        self.delay = 0.0  # think or tool time after the parents
        self.tenant = 0  # index into the workload's tenants
        self.priority = 0  # lower is served first
        self.swapped = 0  # blocks of KV waiting in the CPU tier (preempted by swapping)
        self.samples: tuple[Request, ...] = ()  # parallel samples of its prompt, started once the prompt is computed

    @property
    def target(self) -> int:
        """Tokens the prefill must have computed before the next token is sampled."""
        return self.prompt_len + self.generated

    def __repr__(self) -> str:
        return f"Request({self.id}, in={self.prompt_len}, out={self.output_len}, gen={self.generated})"


class Program(_Slotted):
    """A session or agent program: LLM calls that depend on each other (`workload/programs.py`).

    `service` is the tokens its finished calls processed (prompt plus output), the attained
    service program-level schedulers rank by; `left` counts calls not yet finished.
    """

    __slots__ = ("id", "arrival", "calls", "left", "service", "finish", "last")

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

    def done(self, req: Request, t: float) -> None:
        self.service += req.prompt_len + req.output_len
        self.left -= 1
        if not self.left:
            self.finish, self.last = t, req
