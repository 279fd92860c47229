"""A large speed group's running jobs in end order: ``(v_finish, job idx, job)`` entries, sorted as tuples are.

Entries sit in blocks of at most ``2 * LOAD``; each block keeps its entries' ``v_finish`` beside them in an
``array('d')`` (contiguous doubles), and the blocks' largest ``v_finish`` in another. A search compares plain
doubles there, where a sorted list of tuples follows two pointers a comparison (the tuple, then its float)
into memory scattered over the run: with ~160,000 running jobs at a million GPUs those were mostly cache misses,
3.7 µs an insert with ``sortedcontainers.SortedList``, against 1.5 µs here (an insert and a pop from the front).
Entries with equal ``v_finish`` stand in ``idx`` order, as tuples would (``idx`` is unique in a group), so the
order is exactly that of ``sorted(entries)``.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from itertools import chain
from typing import Any, Protocol

__all__ = ["LOAD", "RunningJobs"]

LOAD = 512  # entries a block holds after a split (it splits past twice this)

Entry = tuple[float, int, Any]  # (v_finish, job idx, job)


class _Indexed(Protocol):
    """What a job must have here: its row index (unique in a group)."""

    idx: int


class RunningJobs:
    """Running jobs sorted by ``(v_finish, idx)``; see the module docstring."""

    __slots__ = ("_ents", "_keys", "_len", "_maxes")

    def __init__(self, entries: Iterable[Entry] = ()) -> None:
        ents = sorted(entries)
        self._ents: list[list[Entry]] = [ents[i : i + LOAD] for i in range(0, len(ents), LOAD)]
        self._keys: list[array[float]] = [array("d", [e[0] for e in block]) for block in self._ents]
        self._maxes: array[float] = array("d", [keys[-1] for keys in self._keys])
        self._len = len(ents)

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[Entry]:
        return chain.from_iterable(self._ents)

    def __getitem__(self, i: int) -> Entry:
        """The ``i``-th entry (the first at once, the others a walk over the blocks)."""
        if i == 0 and self._len:
            return self._ents[0][0]
        if i < 0:
            i += self._len
        for block in self._ents:
            if i < len(block):
                return block[i]
            i -= len(block)
        raise IndexError("RunningJobs index out of range")

    def _find(self, v: float, idx: int) -> tuple[int, int]:
        """(block, position) where ``(v, idx)`` stands, or where it would be inserted: before the first entry above
        it (at the end of a block rather than the start of the next only when the next one starts above it)."""
        maxes = self._maxes
        nb = len(maxes)
        b = bisect_left(maxes, v)
        if b == nb:  # above every entry: the end of the last block
            return nb - 1, len(self._keys[nb - 1])
        keys, ents = self._keys[b], self._ents[b]
        i = bisect_left(keys, v)
        while True:  # past the entries of equal v_finish and a lower idx (which may run on into the next blocks)
            n = len(keys)
            while i < n and keys[i] == v and ents[i][1] < idx:
                i += 1
            if i == n and b + 1 < nb and self._keys[b + 1][0] == v and self._ents[b + 1][0][1] <= idx:
                b += 1
                keys, ents, i = self._keys[b], self._ents[b], 0
                continue
            return b, i

    def add(self, entry: Entry) -> bool:
        """Insert ``entry``; True if it is now the first."""
        v = entry[0]
        if not self._len:
            self._ents, self._keys, self._maxes = [[entry]], [array("d", [v])], array("d", [v])
            self._len = 1
            return True
        b, i = self._find(v, entry[1])
        keys, ents = self._keys[b], self._ents[b]
        keys.insert(i, v)
        ents.insert(i, entry)
        if i == len(keys) - 1:
            self._maxes[b] = v
        self._len += 1
        if len(keys) > 2 * LOAD:
            self._keys[b : b + 1] = [keys[:LOAD], keys[LOAD:]]
            self._ents[b : b + 1] = [ents[:LOAD], ents[LOAD:]]
            self._maxes[b : b + 1] = array("d", [keys[LOAD - 1], keys[-1]])
        return b == 0 and i == 0

    def remove(self, v_finish: float, job: _Indexed) -> bool:
        """Take out ``job``'s entry (``v_finish`` its key); False if it is not here."""
        if not self._len:
            return False
        b, i = self._find(v_finish, job.idx)
        ents = self._ents[b]
        if i >= len(ents) or ents[i][2] is not job:
            return False
        self._delete(b, i)
        return True

    def _delete(self, b: int, i: int) -> None:
        keys, ents = self._keys[b], self._ents[b]
        del keys[i]
        del ents[i]
        self._len -= 1
        if not ents:
            del self._keys[b], self._ents[b], self._maxes[b]
        elif i == len(keys):
            self._maxes[b] = keys[-1]

    def pop_through(self, limit: float) -> list[Entry]:
        """Take out, in order, the entries whose ``v_finish`` is at most ``limit``."""
        out: list[Entry] = []
        while self._len:
            keys = self._keys[0]
            n = len(keys)
            k = 0
            while k < n and keys[k] <= limit:
                k += 1
            if k == 0:
                break
            ents = self._ents[0]
            out += ents[:k]
            self._len -= k
            if k == n:
                del self._keys[0], self._ents[0], self._maxes[0]
                continue
            del keys[:k]
            del ents[:k]
            break
        return out
