"""The prepared-data cache: an image set's official splits as memory-mappable uint8 ``.npy`` files,
written once and shared by every process of a node through the OS page cache.

Layout: ``<root>/<set>/<key>/{train,val,test}.npy``, ``manifest.json`` and ``sources.json``, where
``<root>`` is ``<data_dir>/.funnelrun-cache`` or ``data.cache_dir``, and ``<key>`` a SHA-256 of the
format version, the set's name and image shape and every source file's path (relative to
``data_dir``), size and modification time (:class:`~funnelrun.data.image_files.SourceFiles`). The
arrays are 8-bit (n bits are taken when read), so one cache serves every ``data.bits``.

- **Written once, atomically.** The first process takes an exclusive ``fcntl.flock`` on
  ``<root>/<set>/.lock``, writes into ``<root>/<set>/.building-<pid>-<random>/``, fsyncs, and renames
  that directory to ``<key>``: a reader never sees a partial cache. Processes arriving meanwhile (the
  other ranks of a node, the other jobs of a sweep) wait on the lock and then open what it wrote.
  A build killed half-way leaves a ``.building-*`` directory that the next lock holder removes.
- **Keyed by the sources.** A changed, added or removed source file gives another key: the cache is
  rebuilt, saying which file changed, and the older version removed (processes that still map it keep
  their pages until they exit).
- **Never trusted blindly.** Every open checks the manifest (format, key, each array's shape), each
  file's size and npy header, and the CRC-32 of :data:`SPOT_BLOCKS` blocks of :data:`BLOCK_BYTES`
  spread over each file (its first and last bytes included) against those recorded when it was
  written: a truncated, missing, replaced or partly overwritten file is reported and the cache rebuilt.
  (Bytes changed outside the sampled blocks go unnoticed; such a change takes a disk fault or an edit
  by hand, since nothing else writes there.) The check reads 1 MiB per file, whatever the set's size.
- **Memory-mapped.** :func:`cached_splits` returns ``np.load(mmap_mode="r")`` arrays: pages are read
  on first touch and shared by every process that maps the file, so a node holds one copy of the set.
"""
from __future__ import annotations

import errno
import fcntl
import hashlib
import json
import os
import secrets
import shutil
import sys
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Optional, Sequence, cast

import numpy as np

from funnelrun.data.image_files import ImageSplits, Part, SourceFiles
from funnelrun.errors import FunnelrunError

#: the folder under data.data_dir that holds the caches of its sets, unless data.cache_dir is set
CACHE_FOLDER = ".funnelrun-cache"
#: bumped when the layout or the arrays' meaning changes (an older cache is then rebuilt)
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SOURCES = "sources.json"
LOCK = ".lock"
BUILDING = ".building-"
SPOT_BLOCKS = 16
BLOCK_BYTES = 1 << 16
#: flock errors meaning "this file system has no locks": the cache is then written without one
NO_LOCKS = {errno.ENOLCK, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS}


class CacheUnwritable(FunnelrunError):
    """The cache's folder cannot be written (a read-only ``data_dir``, permissions) and holds no valid cache."""


class CorruptCache(Exception):
    """A cache directory that fails its checks (the reason is the message)."""


def say(message: str) -> None:
    print(f"funnelrun: {message}", file=sys.stderr, flush=True)


def cache_root(sources: SourceFiles, cache_dir: Optional[str | Path]) -> Path:
    return Path(cache_dir).expanduser() if cache_dir is not None else sources.root / CACHE_FOLDER


def cache_key(sources: SourceFiles) -> str:
    text = json.dumps([FORMAT_VERSION, sources.name, list(sources.shape), sources.stats], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def cached_splits(sources: SourceFiles, cache_dir: Optional[str | Path] = None) -> ImageSplits:
    """The splits of ``sources`` as read-only memory-mapped arrays, from the cache under ``cache_dir``
    (default ``<data_dir>/.funnelrun-cache``), which is written first if absent, stale or corrupt.

    Raises :class:`CacheUnwritable` when there is no valid cache and its folder cannot be written.
    """
    folder = cache_root(sources, cache_dir) / sources.name
    key = cache_key(sources)
    target = folder / key
    problem = None
    try:
        splits = open_cache(target, key)
        if splits is not None:
            return splits
    except CorruptCache as bad:
        problem = bad  # checked again, reported and rebuilt under the lock
    try:
        _make_folder(folder)
    except CacheUnwritable as exc:
        raise CacheUnwritable(f"{exc}, and the cache there is corrupt ({problem})" if problem else str(exc)) from None
    with _exclusive(folder, sources.name) as locked:
        try:
            splits = open_cache(target, key)
            if splits is not None:
                return splits  # written by the process we waited for
        except CorruptCache as bad:
            say(f"the prepared-data cache {target} is corrupt ({bad}); rebuilding it from the source files")
            _remove(target)
        if locked:
            for stale in folder.glob(f"{BUILDING}*"):
                _remove(stale)  # left by a build that was killed: no build runs while we hold the lock
        older = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")]
        say(f"preparing the cache of {sources.name} in {target} ({_why(sources, older)}); every later launch "
            "memory-maps it")
        _build(sources, folder, key)
        for path in older:
            _remove(path)
    splits = open_cache(target, key)
    if splits is None:
        raise FunnelrunError(f"the prepared-data cache {target} vanished right after it was written; is another "
                             f"program cleaning {folder}?")
    return splits


def open_cache(target: Path, key: str) -> Optional[ImageSplits]:
    """The memory-mapped splits in ``target``; None if there is no such directory; :class:`CorruptCache`
    if it fails a check (module docstring)."""
    if not target.is_dir():
        return None
    try:
        manifest = json.loads((target / MANIFEST).read_text())
    except FileNotFoundError:
        raise CorruptCache(f"{MANIFEST} is missing") from None
    except (OSError, ValueError) as exc:
        raise CorruptCache(f"{MANIFEST} is unreadable ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_VERSION or manifest.get("key") != key:
        raise CorruptCache(f"{MANIFEST} does not describe this cache (format {FORMAT_VERSION}, key {key})")
    arrays = {}
    try:
        for split, entry in manifest["splits"].items():
            arrays[split] = _open_array(target / f"{split}.npy", entry)
    except (KeyError, TypeError, AttributeError) as exc:
        raise CorruptCache(f"{MANIFEST} is malformed ({type(exc).__name__}: {exc})") from None
    if not {"train", "test"} <= arrays.keys():
        raise CorruptCache(f"{MANIFEST} lists the splits {sorted(arrays)}, not train and test")
    return ImageSplits(train=arrays["train"], test=arrays["test"], val=arrays.get("val"))


def _open_array(path: Path, entry: dict[str, Any]) -> np.ndarray:
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise CorruptCache(f"{path.name} is missing") from None
    if size != entry["bytes"]:
        raise CorruptCache(f"{path.name} has {size} bytes, {entry['bytes']} were written (truncated?)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise CorruptCache(f"{path.name} is not a readable .npy file ({exc})") from None
    if array.dtype != np.uint8 or list(array.shape) != entry["shape"]:
        raise CorruptCache(f"{path.name} holds a {array.dtype} array of shape {list(array.shape)}, "
                           f"uint8 of shape {entry['shape']} was written")
    if spot_checksums(path) != entry["spot_crc32"]:
        raise CorruptCache(f"{path.name}: the checksums of its sampled blocks differ from those written")
    return array


def spot_checksums(path: Path) -> list[list[int]]:
    """[offset, CRC-32] of :data:`SPOT_BLOCKS` blocks of :data:`BLOCK_BYTES` evenly spread over the
    file, the first starting at byte 0 and the last ending at its last byte."""
    size = path.stat().st_size
    span = max(size - BLOCK_BYTES, 0)
    offsets = sorted({span * i // (SPOT_BLOCKS - 1) for i in range(SPOT_BLOCKS)})
    fd = os.open(path, os.O_RDONLY)
    try:
        return [[offset, zlib.crc32(os.pread(fd, BLOCK_BYTES, offset))] for offset in offsets]
    finally:
        os.close(fd)


def _why(sources: SourceFiles, older: Sequence[Path]) -> str:
    """Why the cache is written: first use, or which source files changed since the last version."""
    now = {rel: (size, mtime) for rel, size, mtime in sources.stats}
    for path in older:
        try:
            before = {rel: (size, mtime) for rel, size, mtime in json.loads((path / SOURCES).read_text())}
        except (OSError, ValueError, TypeError):
            continue
        changed = []
        for rel in sorted(now.keys() | before.keys()):
            if rel not in before:
                changed.append(f"{rel} is new")
            elif rel not in now:
                changed.append(f"{rel} is gone")
            elif now[rel] != before[rel]:
                changed.append(f"{rel} had size {before[rel][0]} and mtime {before[rel][1]} ns, now {now[rel][0]} and "
                               f"{now[rel][1]} ns")
        if not changed:
            return f"the cache format changed since {path.name} was written"
        more = f", and {len(changed) - 3} more" if len(changed) > 3 else ""
        return f"{len(changed)} source file(s) changed since {path.name} was written: {'; '.join(changed[:3])}{more}"
    return "first use: read once from the source files"


def _size(n: int) -> str:
    return f"{n / 1e9:.2f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def _make_folder(folder: Path) -> None:
    """Create ``folder`` and check that files can be made in it, else :class:`CacheUnwritable`."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".probe-{os.getpid()}-{secrets.token_hex(4)}"
        probe.mkdir()
        probe.rmdir()
    except OSError as exc:
        reason = exc.strerror or exc
        raise CacheUnwritable(f"the prepared-data cache cannot be written in {folder} ({reason})") from None


@contextmanager
def _exclusive(folder: Path, name: str) -> Iterator[bool]:
    """Hold ``folder/.lock`` exclusively (waiting, with a message, while another process holds it);
    yields False where the file system has no locks (the cache is then written without one: the
    rename keeps it atomic, two processes may do the same work)."""
    lock = folder / LOCK
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise CacheUnwritable(f"the prepared-data cache cannot be written in {folder} ({exc.strerror})") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            say(f"waiting for another process that is preparing the cache of {name} in {folder} (it holds {lock})")
            fcntl.flock(fd, fcntl.LOCK_EX)
        locked = True
    except OSError as exc:
        if exc.errno not in NO_LOCKS:
            os.close(fd)
            raise
        say(f"cannot lock {lock} ({exc.strerror}): preparing the cache without a lock (concurrent processes may "
            "each do the work)")
        locked = False
    try:
        yield locked
    finally:
        os.close(fd)  # releases the lock


def _build(sources: SourceFiles, folder: Path, key: str) -> None:
    """Write every split into a temporary directory, then rename it to ``folder/key``."""
    start = time.perf_counter()
    tmp = folder / f"{BUILDING}{os.getpid()}-{secrets.token_hex(4)}"
    tmp.mkdir()
    needed = sum(part.rows or 0 for parts in sources.splits.values() for part in parts) * int(np.prod(sources.shape))
    needed = needed or sum(size for _, size, _ in sources.stats)  # parts of unknown size: about the sources' size
    try:
        splits = {split: _write_split(tmp / f"{split}.npy", parts, sources.shape, sources.name, split)
                  for split, parts in sources.splits.items()}
        _write_durably(tmp / SOURCES, json.dumps(sources.stats).encode())
        manifest = {"format": FORMAT_VERSION, "key": key, "name": sources.name, "shape": list(sources.shape),
                    "source_files": len(sources.stats), "splits": splits}
        _write_durably(tmp / MANIFEST, json.dumps(manifest, indent=1).encode())
        _fsync_dir(tmp)
        os.rename(tmp, folder / key)
        _fsync_dir(folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError) and not isinstance(exc, FunnelrunError):
            raise FunnelrunError(
                f"writing the prepared-data cache of {sources.name} in {folder} failed ({exc.strerror or exc}); it "
                f"needs about {_size(needed)}. "
                "Free space there, or set data.cache_dir=<a writable directory with room>"
            ) from exc
        raise
    images = sum(entry["shape"][0] for entry in splits.values())
    size = sum(entry["bytes"] for entry in splits.values())
    say(f"prepared the cache of {sources.name}: {images:,} images, {_size(size)}, in "
        f"{time.perf_counter() - start:.1f} s")


def _write_split(path: Path, parts: Sequence[Part], shape: tuple[int, ...], name: str, split: str) -> dict[str, Any]:
    """One split as a .npy file, part after part (parts of known size are streamed: memory holds one
    part at a time); its manifest entry."""
    def checked(images: np.ndarray, rows: Optional[int]) -> np.ndarray:
        if images.dtype != np.uint8 or images.shape[1:] != tuple(shape) or (rows is not None and len(images) != rows):
            raise FunnelrunError(
                f"{name} {split} split: a part read as a {images.dtype} array of shape {images.shape}, expected uint8 "
                f"of shape ({rows if rows is not None else 'N'}, {', '.join(map(str, shape))}); did a source file "
                "change while the cache was written? Run again"
            )
        return np.ascontiguousarray(images)

    with open(path, "wb") as f:
        if all(part.rows is not None for part in parts):
            rows = sum(cast(int, part.rows) for part in parts)
            header = {"descr": "|u1", "fortran_order": False, "shape": (rows, *shape)}
            np.lib.format.write_array_header_1_0(f, header)
            for part in parts:
                # numpy's stubs declare ndarray's buffer protocol (__buffer__) for Python 3.12+ only
                f.write(memoryview(checked(part.read(), part.rows)).cast("B"))  # type: ignore[arg-type]
        else:
            images = np.concatenate([checked(part.read(), part.rows) for part in parts])
            rows = len(images)
            np.save(f, images, allow_pickle=False)
        f.flush()
        os.fsync(f.fileno())
    return {"shape": [rows, *shape], "bytes": path.stat().st_size, "spot_crc32": spot_checksums(path)}


def _write_durably(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some file systems cannot sync a directory
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Delete a cache version (renamed aside first, so no reader finds it half deleted)."""
    aside = path.with_name(f"{BUILDING}removed-{path.name}-{secrets.token_hex(4)}")
    try:
        os.rename(path, aside)
    except FileNotFoundError:
        return
    shutil.rmtree(aside, ignore_errors=True)
