"""Paged KV cache: a pool of blocks, with optional automatic prefix caching.

Blocks are counted, not named. `used` counts blocks that running requests reference
(a prefix block shared by many counts once). Cached blocks nobody references are
`evictable`: they count as free and are evicted, least recently used first, when a
new allocation needs their room. Prefix entries are the trace's hash units
(`unit_blocks` blocks each); a hit needs the whole chain of earlier units.
"""

from __future__ import annotations

from collections import OrderedDict


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
        while overflow > 0:
            self._refs.pop(self._lru.popitem(last=False)[0])
            self.evictable -= self.unit_blocks
            overflow -= self.unit_blocks
        return True

    def release(self, n: int) -> None:
        self.used -= n

    # ----- prefix cache -----
    def match(self, hashes, max_units: int) -> list:
        """Reference the longest cached prefix of `hashes` (at most max_units units)."""
        if not self.prefix_caching or not hashes:
            return []
        self.query_blocks += min(len(hashes), max_units) * self.unit_blocks
        hit = []
        refs = self._refs
        for h in hashes[:max_units]:
            r = refs.get(h)
            if r is None:
                break
            if r == 0:
                del self._lru[h]
                self.evictable -= self.unit_blocks
                self.used += self.unit_blocks
            refs[h] = r + 1
            hit.append(h)
        self.hit_blocks += len(hit) * self.unit_blocks
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

    def insert(self, h) -> bool:
        """Turn one unit of a request's own blocks into a shared cache entry."""
        if h in self._refs:
            return False
        self._refs[h] = 1
        return True

    def unref(self, entries: list) -> None:
        """Drop a request's references, the last unit first so tails are evicted first."""
        refs = self._refs
        for h in reversed(entries):
            r = refs[h] - 1
            refs[h] = r
            if r == 0:
                self.used -= self.unit_blocks
                self.evictable += self.unit_blocks
                self._lru[h] = None

    @property
    def cached_blocks(self) -> int:
        return len(self._refs) * self.unit_blocks
