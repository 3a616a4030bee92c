from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from lightly_topo.data import cache as cache_module
from lightly_topo.data.cache import VolumeCache


def test_content_hash_is_memoised(tmp_path: Path, monkeypatch) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"hello" * 100)
    cache = VolumeCache(tmp_path / "cache")
    first = cache.content_hash(f)
    calls = []
    monkeypatch.setattr(cache_module, "file_digest", lambda p: calls.append(p) or "x" * 32)
    assert VolumeCache(tmp_path / "cache").content_hash(f) == first  # from the on-disk memo
    assert calls == []


def test_content_hash_sees_same_size_same_mtime_rewrite(tmp_path: Path) -> None:
    f = tmp_path / "a.bin"
    f.write_bytes(b"A" * 64)
    st = f.stat()
    cache = VolumeCache(tmp_path / "cache")
    before = cache.content_hash(f)
    f.write_bytes(b"B" * 64)  # same size ...
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # ... and the old mtime
    assert f.stat().st_size == st.st_size and f.stat().st_mtime_ns == st.st_mtime_ns
    assert cache.content_hash(f) != before


def test_entry_roundtrip_is_memory_mapped_and_keyed(tmp_path: Path) -> None:
    cache = VolumeCache(tmp_path / "cache")
    k1 = cache.entry_key({"t1": "a" * 32}, {"spacing": None})
    assert k1 != cache.entry_key({"t1": "b" * 32}, {"spacing": None})
    assert k1 != cache.entry_key({"t1": "a" * 32}, {"spacing": (1, 1, 1)})
    assert cache.load(k1) is None
    arr = np.arange(27, dtype=np.float16).reshape(3, 3, 3)
    cache.save(k1, {"t1": arr}, {"affine": np.eye(4).tolist()})
    arrays, meta = cache.load(k1)
    assert isinstance(arrays["t1"], np.memmap)
    np.testing.assert_array_equal(arrays["t1"], arr)
    assert meta["arrays"] == ["t1"]
    # A second save of the same key (another worker) keeps the entry and leaves no temp folder.
    cache.save(k1, {"t1": arr}, {"affine": np.eye(4).tolist()})
    leftovers = [p for p in (tmp_path / "cache").rglob(".tmp-*")]
    assert leftovers == []
