"""The ids a Clever list has given so far, for its duplicate check: exact, and 12 bytes an id.

Clever sends every list sorted by ascending id ("Elements are returned sorted with ascending IDs", Clever's
paging documentation), and its ids are 24-hex ObjectIds: 96 bits. So an id above every id before it is new
without a lookup, and is appended to a sorted array of the list's ids (two ``array`` columns: the high 64
bits and the low 32). Only an id that is not above them (a list out of order) is looked up, by bisection,
and kept apart in a set, as is an id that is not an ObjectId. A Python set of the ids as ints took 83 bytes
an id (measured): at NYC's 3.1 M users, 288 MiB against 37 MiB.

A list may also come as a few ascending runs one after another: an events night reads the users mirror a
full read wrote by role, each role's users ascending. So an id below the last one, after a run of at least
``RUN_MIN`` ids, closes that run and starts the next (at most ``RUNS_MAX`` runs; later ids out of order go
to the set): 12 bytes an id for a list of a few runs, where the set took 81.

A list read in slices (``steps.fetch``) carries the check from slice to slice: each slice writes the ids
it added (``slice_bytes``), and the next one loads every earlier slice's (``load``) before reading on.
"""

from __future__ import annotations

import gzip
import io
import re
import struct
import sys
from array import array
from bisect import bisect_left

_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
_LOW_BITS = 32
_LOW_MASK = (1 << _LOW_BITS) - 1
# The 32-bit unsigned typecode of this platform (``I`` on every platform Lambda runs).
_U32 = next(code for code in "IL" if array(code).itemsize == 4)
_MAGIC = b"rostersync-seen-ids 1\n"
_COUNT = struct.Struct("<Q")
_PIECE = 1 << 20
RUN_MIN = 4_096  # a run shorter than this is not closed: ids out of order after it go to the set
RUNS_MAX = 16
# The columns are written and read as the machine holds them: little-endian, as every platform Lambda runs.
if sys.byteorder != "little":
    raise ImportError("rostersync.providers.seen_ids writes little-endian columns: run it on x86_64 or arm64")


def id_key(record_id: str) -> int | str:
    """A compact, exact key for the duplicate check: a 24-hex Clever id as its int, any other id as itself
    (an int never equals a str)."""
    return int(record_id, 16) if _OBJECT_ID.fullmatch(record_id) else record_id


class SeenIds:
    """A set of id keys (``id_key``) for a list's duplicate check: ``key in seen``, ``seen.add(key)``.

    ``add`` is only given a key not yet in the set (the check comes first). ``slice_bytes`` returns what
    was added since the last call, ``load`` adds what an earlier slice returned.
    """

    def __init__(self) -> None:
        self._high = array("Q")
        self._low = array(_U32)
        self._last = -1  # the largest key in the arrays
        self._strays: set[int] = set()  # ObjectIds that came out of order
        self._others: set[str] = set()  # ids that are not ObjectIds
        self._mark = 0  # the arrays' length when the current slice began
        self._added_apart: list[int | str] = []  # strays and other ids added since then
        # closed runs (high, low, first key, last key), and since the current slice began, each closed run's
        # ids from where the slice found it (written apart, one a line)
        self._runs: list[tuple[array[int], array[int], int, int]] = []
        self._closed: list[tuple[array[int], array[int], int]] = []

    def __len__(self) -> int:
        runs = sum(len(high) for high, _low, _first, _last in self._runs)
        return runs + len(self._high) + len(self._strays) + len(self._others)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            return key in self._others
        if not isinstance(key, int):
            return False
        if key in self._strays or (key <= self._last and _in_arrays(self._high, self._low, key)):
            return True
        return any(first <= key <= last and _in_arrays(high, low, key) for high, low, first, last in self._runs)

    def add(self, key: int | str) -> None:
        if isinstance(key, str):
            self._others.add(key)
            self._added_apart.append(key)
        elif key > self._last:
            self._high.append(key >> _LOW_BITS)
            self._low.append(key & _LOW_MASK)
            self._last = key
        elif len(self._high) >= RUN_MIN and len(self._runs) < RUNS_MAX:
            self._close_run()
            self.add(key)
        else:
            self._strays.add(key)
            self._added_apart.append(key)

    def _close_run(self) -> None:
        """The current run ends (an id below its last after ``RUN_MIN`` ids): keep it, start the next."""
        first = self._high[0] << _LOW_BITS | self._low[0]
        self._runs.append((self._high, self._low, first, self._last))
        self._closed.append((self._high, self._low, self._mark))
        self._high, self._low, self._last, self._mark = array("Q"), array(_U32), -1, 0

    @property
    def added(self) -> bool:
        """Whether anything was added since the last ``slice_bytes`` (or since the start)."""
        closed = any(len(high) > mark for high, _low, mark in self._closed)
        return len(self._high) > self._mark or bool(self._added_apart) or closed

    def slice_bytes(self) -> bytes:
        """What was added since the last call, gzipped: the in-order ids as the two columns (little-endian,
        as on every platform Lambda runs), then one line per id kept apart (an ObjectId as its 24 hex digits)."""
        out = io.BytesIO()
        with gzip.GzipFile(fileobj=out, mode="wb", compresslevel=1) as zipped:
            zipped.write(_MAGIC + _COUNT.pack(len(self._high) - self._mark))
            for column in (self._high, self._low):
                zipped.write(memoryview(column).cast("B")[self._mark * column.itemsize :])
            for key in self._added_apart:
                zipped.write((f"{key:024x}\n" if isinstance(key, int) else f"{key}\n").encode("utf-8"))
            for high, low, mark in self._closed:  # runs closed during this slice: their new ids, one a line
                for position in range(mark, len(high)):
                    zipped.write(f"{high[position] << _LOW_BITS | low[position]:024x}\n".encode())
        self._mark = len(self._high)
        self._added_apart = []
        self._closed = []
        return out.getvalue()

    def load(self, body: bytes) -> None:
        """Add the ids an earlier slice wrote (``slice_bytes``); counted as that slice's, not this one's."""
        with gzip.GzipFile(fileobj=io.BytesIO(body), mode="rb") as unzipped:
            if unzipped.read(len(_MAGIC)) != _MAGIC:
                raise ValueError("not a list of seen ids")
            (count,) = _COUNT.unpack(unzipped.read(_COUNT.size))
            first = array("Q")
            _read_column(unzipped, first, min(count, 1))
            if count and first[0] > self._last >> _LOW_BITS:
                # The slice's ids all lie above these (it read them in order, after them): the arrays go on
                # with them as read, a piece at a time.
                self._high.extend(first)
                _read_column(unzipped, self._high, count - 1)
                _read_column(unzipped, self._low, count)
                self._last = self._high[-1] << _LOW_BITS | self._low[-1]
            elif count:
                high, low = first, array(_U32)
                _read_column(unzipped, high, count - 1)
                _read_column(unzipped, low, count)
                for h, lo in zip(high, low, strict=True):
                    key = h << _LOW_BITS | lo
                    if key not in self:
                        self.add(key)
                del high, low
            self._add_lines(unzipped)

    def load_lines(self, body: bytes) -> None:
        """Add the ids of an earlier slice written one per line (``sNNNNN-ids.txt.gz``, before ``slice_bytes``)."""
        with gzip.GzipFile(fileobj=io.BytesIO(body), mode="rb") as unzipped:
            self._add_lines(unzipped)

    def _add_lines(self, lines: gzip.GzipFile) -> None:
        """Add one id per line (an ObjectId as its hex digits); what was loaded is an earlier slice's."""
        for line in lines:
            if text := line.decode("utf-8").rstrip("\n"):
                key = id_key(text)
                if key not in self:
                    self.add(key)
        self._mark = len(self._high)
        self._added_apart = []
        self._closed = []


def _in_arrays(highs: array[int], lows: array[int], key: int) -> bool:
    """Whether ``key`` is in one sorted run of the two columns (bisection)."""
    high, low = key >> _LOW_BITS, key & _LOW_MASK
    position = bisect_left(highs, high)
    while position < len(highs) and highs[position] == high:
        if lows[position] == low:
            return True
        position += 1
    return False


def _read_column(source: gzip.GzipFile, column: array[int], count: int) -> None:
    """Append ``count`` items of ``column``'s type from ``source``, a piece at a time (no whole copy)."""
    left = count * column.itemsize
    while left:
        piece = source.read(min(left, _PIECE))
        if len(piece) % column.itemsize:
            piece += source.read(column.itemsize - len(piece) % column.itemsize)
        if not piece or len(piece) % column.itemsize:
            raise ValueError("the list of seen ids is cut short")
        column.frombytes(piece)
        left -= len(piece)
