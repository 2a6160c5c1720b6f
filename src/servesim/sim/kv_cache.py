"""Paged KV cache: a pool of blocks, with optional automatic prefix caching.

Blocks are counted, not named. `used` counts blocks that running requests reference
(a prefix block shared by many counts once). Cached blocks nobody references are
`evictable`: they count as free and are evicted, least recently used first, when a
new allocation needs their room. Prefix entries are the trace's hash units
(`unit_blocks` blocks each); a hit needs the whole chain of earlier units. An entry
may also be a segment of several units (a program's context is a few segments, one
per call's prompt and answer, as a radix tree compresses its edges): its size in
blocks is given when it is inserted, and it is matched and evicted whole.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from itertools import compress, filterfalse, islice, repeat, takewhile
from operator import add, not_


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
        self._big: dict = {}  # entries of other than unit_blocks blocks (segments) -> their blocks
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
        if overflow > 0:  # evict the least recently used entries, as many as cover the overflow
            if self._big:
                victims, freed, big, ub = [], 0, self._big, self.unit_blocks
                for h in self._lru:
                    victims.append(h)
                    freed += big.get(h, ub)
                    if freed >= overflow:
                        break
                _consume(map(big.pop, victims, repeat(None)))
            else:
                victims = list(islice(self._lru, -(-overflow // self.unit_blocks)))
                freed = len(victims) * self.unit_blocks
            _consume(map(self._lru.__delitem__, victims))
            _consume(map(self._refs.__delitem__, victims))
            self.evictable -= freed
        return True

    def blocks_of(self, entries) -> int:
        """Blocks the entries span."""
        if not self._big:
            return len(entries) * self.unit_blocks
        return sum(map(self._big.get, entries, repeat(self.unit_blocks)))

    def release(self, n: int) -> None:
        self.used -= n

    # ----- prefix cache -----
    def match(self, hashes, max_entries: int, query_units: int | None = None) -> list:
        """Reference the longest cached prefix of `hashes` (at most max_entries entries; the query spans
        query_units units, by default one an entry)."""
        hits, _ = self.lookup(hashes, max_entries, query_units)
        self.take(hits)
        return hits

    def lookup(self, hashes, max_entries: int, query_units: int | None = None) -> tuple[list, int]:
        """The longest cached prefix of `hashes` and the blocks of it nobody references (which `take` would move
        from free to used), counted in the hit statistics but not referenced: as in vLLM, a request that
        then does not fit leaves the cache as it was, its LRU order included."""
        if not self.prefix_caching or not hashes:
            return [], 0
        ub, refs, big = self.unit_blocks, self._refs, self._big
        self.query_blocks += (min(len(hashes), max_entries) if query_units is None else query_units) * ub
        hit = list(takewhile(refs.__contains__, islice(hashes, max_entries)))
        if not hit:
            return hit, 0
        counts = list(map(refs.__getitem__, hit))
        if big:
            sizes = list(map(big.get, hit, repeat(ub)))
            self.hit_blocks += sum(sizes)
            return hit, sum(compress(sizes, map(not_, counts)))
        self.hit_blocks += len(hit) * ub
        return hit, counts.count(0) * ub

    def take(self, hits: list) -> None:
        """Reference entries `lookup` found; unreferenced ones leave the LRU list."""
        refs, big, ub = self._refs, self._big, self.unit_blocks
        for h in hits:
            r = refs[h]
            if r == 0:
                del self._lru[h]
                b = big.get(h, ub) if big else ub
                self.evictable -= b
                self.used += b
            refs[h] = r + 1

    def cached_prefix_units(self, hashes, ends: list[int] | None = None) -> int:
        """Length of the cached prefix of `hashes`, in units (`ends`: each entry's end, in units, if not one
        unit each), without touching the cache."""
        if not self.prefix_caching:
            return 0
        n = 0
        for h in hashes:
            if h not in self._refs:
                break
            n += 1
        return ends[n - 1] if ends is not None and n else n

    def insert(self, hashes, blocks: list[int] | None = None) -> list:
        """Turn units (or segments of `blocks` blocks each) of a request's own blocks into shared cache
        entries, those not cached yet; returns them."""
        refs = self._refs
        if blocks is None:
            new = list(filterfalse(refs.__contains__, hashes))
            refs.update(zip(new, repeat(1)))
            return new
        new, big, ub = [], self._big, self.unit_blocks
        for h, b in zip(hashes, blocks, strict=True):
            if h not in refs:
                refs[h] = 1
                if b != ub:
                    big[h] = b
                new.append(h)
        return new

    def ref(self, entries: list) -> None:
        """Take one more reference on entries that are referenced already (a pin on a finished context)."""
        refs = self._refs
        refs.update(zip(entries, map(add, map(refs.__getitem__, entries), repeat(1)), strict=True))

    def unref(self, entries: list) -> None:
        """Drop a request's references, the last entry first so tails are evicted first."""
        refs, big, ub = self._refs, self._big, self.unit_blocks
        for h in reversed(entries):
            r = refs[h] - 1
            refs[h] = r
            if r == 0:
                b = big.get(h, ub) if big else ub
                self.used -= b
                self.evictable += b
                self._lru[h] = None

    @property
    def cached_blocks(self) -> int:
        return self.blocks_of(self._refs)
