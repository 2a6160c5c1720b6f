"""Paged KV cache: a pool of blocks, with optional automatic prefix caching.

Blocks are counted, not named. `used` counts blocks that running requests reference
(a prefix block shared by many counts once). Cached blocks nobody references are
`evictable`: they count as free and are evicted, least recently used first, when a
new allocation needs their room. Prefix entries are the trace's hash units
(`unit_blocks` blocks each); a hit needs the whole chain of earlier units. A request's
hashes name distinct units (a prefix chain names each once): lists are updated whole.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import compress, filterfalse, islice, repeat, takewhile
from operator import add, not_, sub


def _consume(it) -> None:
    deque(it, maxlen=0)


class KVCache:
    def __init__(self, num_blocks: int, block_size: int, prefix_caching: bool = False, unit_blocks: int = 1):
        self.total = num_blocks
        self.block_size = block_size
        self.prefix_caching = prefix_caching
        self.unit_blocks = unit_blocks
        self.used = 0
        self.evictable = 0
        self._refs: dict = {}  # hash -> reference count
        self._lru: OrderedDict = OrderedDict()  # unreferenced cached hashes, oldest first
        self.hit_blocks = 0
        self.query_blocks = 0

    def free(self) -> int:
        return self.total - self.used

    def allocate(self, n: int) -> bool:
        """Take n blocks if they fit (evicting cached blocks as needed)."""
        if n > self.total - self.used:
            return False
        self.used += n
        overflow = self.used + self.evictable - self.total
        if overflow > 0:  # evict the least recently used units, as many as cover the overflow
            victims = list(islice(self._lru, -(-overflow // self.unit_blocks)))
            _consume(map(self._lru.__delitem__, victims))
            _consume(map(self._refs.__delitem__, victims))
            self.evictable -= len(victims) * self.unit_blocks
        return True

    def release(self, n: int) -> None:
        self.used -= n

    # ----- prefix cache -----
    def match(self, hashes, max_units: int) -> list:
        """Reference the longest cached prefix of `hashes` (at most max_units units)."""
        if not self.prefix_caching or not hashes:
            return []
        ub, refs = self.unit_blocks, self._refs
        self.query_blocks += min(len(hashes), max_units) * ub
        hit = list(takewhile(refs.__contains__, islice(hashes, max_units)))
        if hit:  # (whole lists at a time: contexts of thousands of units are matched at C speed)
            counts = list(map(refs.__getitem__, hit))
            idle = list(compress(hit, map(not_, counts)))  # unreferenced: they leave the LRU list
            if idle:
                _consume(map(self._lru.__delitem__, idle))
                self.evictable -= len(idle) * ub
                self.used += len(idle) * ub
            refs.update(zip(hit, map(add, counts, repeat(1)), strict=True))
            self.hit_blocks += len(hit) * ub
        return hit

    def cached_prefix_units(self, hashes) -> int:
        """Length of the cached prefix of `hashes`, in units, without touching the cache."""
        if not self.prefix_caching:
            return 0
        n = 0
        for h in hashes:
            if h not in self._refs:
                break
            n += 1
        return n

    def insert(self, hashes) -> list:
        """Turn units of a request's own blocks into shared cache entries, those not cached yet; returns them."""
        refs = self._refs
        new = list(filterfalse(refs.__contains__, hashes))
        refs.update(zip(new, repeat(1)))
        return new

    def ref(self, entries: list) -> None:
        """Take one more reference on entries that are referenced already (a pin on a finished context)."""
        refs = self._refs
        refs.update(zip(entries, map(add, map(refs.__getitem__, entries), repeat(1)), strict=True))

    def unref(self, entries: list) -> None:
        """Drop a request's references, the last unit first so tails are evicted first."""
        if not entries:
            return
        refs, last_first = self._refs, entries[::-1]
        counts = list(map(sub, map(refs.__getitem__, last_first), repeat(1)))
        refs.update(zip(last_first, counts, strict=True))
        idle = list(compress(last_first, map(not_, counts)))
        if idle:
            self.used -= len(idle) * self.unit_blocks
            self.evictable += len(idle) * self.unit_blocks
            self._lru.update(zip(idle, repeat(None)))

    @property
    def cached_blocks(self) -> int:
        return len(self._refs) * self.unit_blocks
