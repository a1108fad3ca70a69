from __future__ import annotations

from recbole_hnlm.llm.cache import RequestCache, request_key


def test_key_is_canonical():
    assert request_key(a=1, b={"x": 1, "y": 2}) == request_key(b={"y": 2, "x": 1}, a=1)
    assert request_key(a=1) != request_key(a=2)


def test_append_dedupe_and_partial_line(tmp_path):
    path = tmp_path / "c.jsonl"
    with RequestCache(path) as cache:
        assert cache.put("k1", {"v": 1})
        assert not cache.put("k1", {"v": 99})  # first wins, nothing written
        assert cache.put("k2", {"v": 2})
    # a kill mid-write leaves a partial last line; a duplicated line may also exist from an old run
    with open(path, "ab") as handle:
        handle.write(b'{"key":"k1","value":{"v":7}}\n{"key":"k3","val')
    with RequestCache(path) as cache:
        assert cache.dropped_partial == 1
        assert len(cache) == 2 and cache.get("k1") == {"v": 1} and cache.get("k3") is None
        cache.put("k3", {"v": 3})
    lines = path.read_text().splitlines()
    assert lines[-1] == '{"key":"k3","value":{"v":3}}'
    assert len(RequestCache(path)) == 3


def test_only_a_superseding_line_replaces_an_entry(tmp_path):
    path = tmp_path / "c.jsonl"
    with RequestCache(path) as cache:
        assert cache.put("k", {"status": "failed"})
        assert not cache.put("k", {"status": "ok", "n": 1})  # a plain repeat never replaces
        assert cache.put("k", {"status": "ok", "n": 2}, supersede=True)
        assert cache.get("k") == {"status": "ok", "n": 2}
    reread = RequestCache(path)
    assert reread.get("k") == {"status": "ok", "n": 2} and len(reread) == 1
    reread.close()
