"""On-disk cache of decoded and preprocessed subjects.

Layout under the cache folder (any folder the user names; it can be shared by several
datasets and worker processes)::

    hashes/<ab>/<key>          content hash of one source file, for one (path, size, mtime_ns, ...)
    entries/<ab>/<key>/        one preprocessed subject: <name>.npy arrays + meta.json

An entry's key hashes the *content* of every source file (streamed blake2b) together with the
preprocessing settings, so a changed file or a changed setting never serves a stale entry.
Hashing a file reads it once; the result is memoised in ``hashes/`` under its path, size,
``mtime_ns``, inode and ``ctime_ns``, so later epochs only ``stat`` the sources. Every write goes to a temporary name
in the same folder and is then moved into place with :func:`os.replace`, so readers (other
workers, a crashed run) never see a partial entry. Arrays are read back memory-mapped
(``np.load(mmap_mode="r")``): nothing is kept in memory between calls.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lightly_topo.data.io import file_digest

#: Bump when the preprocessing code changes the arrays it produces.
CACHE_VERSION = 2


def _key(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


class VolumeCache:
    """A folder of preprocessed subjects keyed by source content and settings.

    Args:
        root: The cache folder (created if needed).

    >>> import tempfile
    >>> cache = VolumeCache(tempfile.mkdtemp())
    >>> key = cache.entry_key({"t1": "0" * 32}, {"spacing": None})
    >>> cache.save(key, {"t1": np.zeros((2, 2, 2), np.float16)}, {"affine": np.eye(4).tolist()})
    >>> arrays, meta = cache.load(key)
    >>> arrays["t1"].shape, meta["affine"][0]
    ((2, 2, 2), [1.0, 0.0, 0.0, 0.0])
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        try:
            (self.root / "hashes").mkdir(parents=True, exist_ok=True)
            (self.root / "entries").mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise OSError(f"cache_dir {self.root}: cannot create the cache folder ({err})") from err

    def __repr__(self) -> str:
        return f"VolumeCache({str(self.root)!r})"

    def content_hash(self, path: str | Path) -> str:
        """Content hash of a file, memoised per (resolved path, size, mtime_ns, inode, ctime_ns).

        The inode and ctime make the memo safe even against a rewrite that keeps the size and
        restores the mtime (``os.utime``): the kernel updates ctime on every write.
        """
        path = Path(path).resolve()
        st = path.stat()
        ident = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{st.st_ino}\0{st.st_ctime_ns}"
        memo = self._shard("hashes", _key(ident))
        try:
            text = memo.read_text().strip()
            if len(text) == 32:
                return text
        except OSError:
            pass
        digest = file_digest(path)
        memo.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=memo.parent, prefix=".tmp-")
        with os.fdopen(fd, "w") as f:
            f.write(digest)
        os.replace(tmp, memo)
        return digest

    @staticmethod
    def entry_key(sources: Mapping[str, str], settings: Mapping[str, Any]) -> str:
        """Key of an entry from its sources' content hashes and the preprocessing settings."""
        payload = {"version": CACHE_VERSION, "sources": dict(sources), "settings": dict(settings)}
        return _key(json.dumps(payload, sort_keys=True, default=str))

    def load(self, key: str) -> tuple[dict[str, np.ndarray], dict[str, Any]] | None:
        """The entry's arrays (memory-mapped, read-only) and metadata, or ``None``."""
        folder = self._shard("entries", key)
        try:
            meta = json.loads((folder / "meta.json").read_text())
            arrays = {
                name: np.load(folder / f"{name}.npy", mmap_mode="r") for name in meta["arrays"]
            }
        except (OSError, ValueError, KeyError):
            return None
        return arrays, meta

    def save(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Write an entry atomically (a temporary folder moved into place)."""
        folder = self._shard("entries", key)
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=".tmp-"))
        try:
            for name, arr in arrays.items():
                np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr))
            full = {**meta, "arrays": list(arrays)}
            (tmp / "meta.json").write_text(json.dumps(full))
            os.replace(tmp, folder)
        except OSError:
            # Another process wrote the same entry first (its content is identical).
            shutil.rmtree(tmp, ignore_errors=True)
            if not (folder / "meta.json").is_file():
                raise

    def _shard(self, kind: str, key: str) -> Path:
        return self.root / kind / key[:2] / key
