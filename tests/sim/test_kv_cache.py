from servesim.sim.kv_cache import KVCache


def test_allocate_and_release():
    kv = KVCache(10, 16)
    assert kv.allocate(6) and kv.free() == 4
    assert not kv.allocate(5) and kv.used == 6
    kv.release(6)
    assert kv.free() == 10


def test_prefix_match_needs_the_chain():
    kv = KVCache(100, 16, prefix_caching=True, unit_blocks=4)
    assert kv.allocate(8)
    assert kv.insert(["a", "b"]) == ["a", "b"]
    assert kv.insert(["a"]) == []  # cached already
    hit = kv.match(["a", "b", "c"], 3)
    assert hit == ["a", "b"] and kv.used == 8  # shared: no new memory
    assert kv.match(["x", "b"], 2) == []  # b alone is not a prefix
    assert kv.match(["a", "b"], 1) == ["a"]  # capped


def test_unreferenced_entries_are_free_and_evicted_lru():
    kv = KVCache(12, 16, prefix_caching=True, unit_blocks=4)
    kv.allocate(12)
    kv.insert(list("abc"))
    kv.unref(["a", "b", "c"])  # tail released first: c is least recently used
    assert kv.used == 0 and kv.evictable == 12 and kv.free() == 12
    assert kv.match(["a"], 1) == ["a"] and kv.used == 4 and kv.evictable == 8
    assert kv.allocate(4)  # must evict one unit: c goes first
    assert "c" not in kv._refs and "b" in kv._refs
    assert kv.used + kv.evictable <= kv.total


def test_hit_statistics():
    kv = KVCache(100, 16, prefix_caching=True, unit_blocks=2)
    kv.allocate(2)
    kv.insert([1])
    kv.match([1, 2], 2)
    assert kv.query_blocks == 4 and kv.hit_blocks == 2
    assert KVCache(10, 16).match([1], 1) == []  # caching off


def test_references_counted_whole_lists_at_a_time():
    kv = KVCache(40, 16, prefix_caching=True, unit_blocks=2)
    kv.allocate(8)
    kv.insert(range(4))
    assert kv.match(range(10), 10) == [0, 1, 2, 3] and kv._refs == {0: 2, 1: 2, 2: 2, 3: 2}
    kv.ref([0, 1])
    kv.unref([0, 1, 2, 3])
    kv.unref([0, 1, 2, 3])
    assert kv._refs == {0: 1, 1: 1, 2: 0, 3: 0} and list(kv._lru) == [3, 2]  # the tail first
    assert kv.used == 4 and kv.evictable == 4
    assert kv.allocate(36)  # room for all but... evicts 2 units, the least recently used first
    assert list(kv._lru) == [] and 3 not in kv._refs and 2 not in kv._refs


def test_segments_are_matched_counted_and_evicted_whole():
    kv = KVCache(100, 16, prefix_caching=True, unit_blocks=1)
    kv.allocate(30)
    assert kv.insert(["p", "a"], [20, 10]) == ["p", "a"]
    kv.unref(["p", "a"])  # "a" (the tail) goes to the LRU list first
    assert kv.used == 0 and kv.evictable == 30
    assert kv.match(["p", "a", "x"], 3, query_units=31) == ["p", "a"]
    assert kv.used == 30 and kv.hit_blocks == 30 and kv.query_blocks == 31
    kv.unref(["p", "a"])
    assert kv.allocate(75)  # needs 5 of the 30 cached: the whole least recently used segment goes
    assert "a" not in kv._refs and "p" in kv._refs and kv.evictable == 20 and kv.used == 75
    assert kv.cached_prefix_units(["p", "a"], [20, 30]) == 20
