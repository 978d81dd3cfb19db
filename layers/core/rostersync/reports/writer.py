"""Render a sync report: ``report.json``, one CSV per kind plus ``errors.csv``.

No S3 here: the CSVs go to a ``ReportSink`` the caller gives (``storage.S3ReportSink`` streams them to S3
as multipart uploads; ``MemorySink``, the default, keeps them in memory for tests and small uses).
``report.html`` is rendered by ``reports.html``.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Protocol

from rostersync.domain.records import Kind
from rostersync.reports.model import (
    LIST_SHOWN,
    MAX_JSON_ERRORS,
    FieldChange,
    LineAction,
    ReportError,
    ReportLine,
    SyncReport,
)

ERRORS_FILE = "errors.csv"
# The admin's columns first (who, the district's own id, where, why, what changed), the ids to trace last.
LINE_COLUMNS = ("action", "name", "sis_id", "school", "grade", "reason", "changes", "id", "provider_id")
ERROR_COLUMNS = ("kind", "provider_id", "sis_id", "file", "row", "reason", "fix")
HTML_ERRORS_SHOWN = 50

LINE_ORDER: tuple[LineAction, ...] = (
    # what the admin reviews first: the sync would not (or should not) act on these unasked
    LineAction.POSSIBLE_DUPLICATE,
    LineAction.AMBIGUOUS,
    LineAction.EDIT_OVERWRITTEN,
    LineAction.SKIPPED,
    LineAction.ERROR,
    LineAction.WOULD_ARCHIVE,
    # then what the sync does, in the report's column order
    LineAction.ARCHIVED,
    LineAction.CREATED,
    LineAction.LINKED,
    LineAction.UPDATED,
    LineAction.RESTORED,
    # then what it decided on the way, for the record
    LineAction.MERGED,
    LineAction.SEPARATE_ACCOUNT,
    LineAction.EDIT_KEPT,
)
"""The order of a kind's CSV rows, grouped by action: lines to review first, so an admin opening a
self-check's ``students.csv`` sees the possible duplicates before 20,000 ``created`` lines."""

DEFAULT_REASONS: dict[LineAction, str] = {
    LineAction.POSSIBLE_DUPLICATE: "Same name and date of birth as a product person with no roster link; not merged. "
    "Link them with rostersync people link if they are the same person",
    LineAction.AMBIGUOUS: "Matches more than one product person; none was linked. Link the right one with "
    "rostersync people link",
}
"""The reason a review line gets when the planner gave none, so the CSV says what to do about it."""
_LINE_RANK = {action: rank for rank, action in enumerate(LINE_ORDER)}

# OWASP "CSV injection": a cell starting with one of these is read as a formula by spreadsheets.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_file_name(kind: Kind) -> str:
    """Return the name of a kind's CSV file, e.g. ``guardian_links.csv``."""
    return f"{kind.value}.csv"


# Spreadsheets skip these before looking for a formula: spaces, and characters that show as nothing
# (zero-width space, joiners, word joiner, BOM, soft hyphen).
_INVISIBLE = "\u200b\u200c\u200d\u2060\ufeff\u00ad"


# A cell that starts with one of these shows it first and is no formula: nearly every cell (a name, an id).
_PLAIN_START = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")


def neutralise_formula(cell: str) -> str:
    """Return the cell with a leading ``'`` if a spreadsheet would read it as a formula.

    The first character that shows is what counts: leading spaces and invisible characters are looked
    past, and a full-width form (``＝``, ``＋``, ``－``, ``＠``) counts as its ASCII twin (NFKC).
    """
    if not cell or cell[0] in _PLAIN_START:
        return cell
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    shown = cell.lstrip(" \u00a0\u3000\n\v\f" + _INVISIBLE)
    if shown and unicodedata.normalize("NFKC", shown[0]).startswith(_FORMULA_START):
        return "'" + cell
    return cell


def changes_text(changes: Iterable[FieldChange]) -> str:
    """One cell for an update's changes: ``email: a@x.org → b@x.org; grade: 3 → 4`` (empty shows as "(empty)")."""
    if not changes:  # every line but an update's
        return ""
    return "; ".join(f"{c.field}: {c.before or '(empty)'} → {c.after or '(empty)'}" for c in changes)


def render_json(report: SyncReport) -> bytes:
    """Render ``report.json``.

    Parameters
    ----------
    report : SyncReport
        The run's report; its errors are already capped at ``MAX_JSON_ERRORS``.

    Returns
    -------
    bytes
        UTF-8 JSON, indented for people who open it.
    """
    return report.model_dump_json(indent=2).encode("utf-8")


class ReportUpload(Protocol):
    """One file being written, front to back."""

    def write(self, data: bytes | memoryview) -> None: ...

    def complete(self) -> Any: ...

    def abort(self) -> None: ...


class ReportSink(Protocol):
    """Where the CSV files go: finished files, and the segments rows wait in until their file is written."""

    def put_segment(self, name: str, body: bytes | bytearray) -> str: ...

    def read_segment(self, ref: str) -> Iterable[bytes]:
        """The segment's rows, a piece at a time (a sink need not hold a whole segment to hand it back)."""
        ...

    def discard_segments(self, refs: list[str]) -> None: ...

    def open_file(self, name: str) -> ReportUpload: ...


class _MemoryUpload:
    def __init__(self) -> None:
        self.body = io.BytesIO()

    def write(self, data: bytes | memoryview) -> None:
        self.body.write(data)

    def complete(self) -> io.BytesIO:
        self.body.seek(0)
        return self.body

    def abort(self) -> None:
        self.body = io.BytesIO()


class MemorySink:
    """A ``ReportSink`` in memory: each file comes back as a ``BytesIO`` at its start (tests, small reports)."""

    def __init__(self) -> None:
        self.segments: dict[str, bytes] = {}

    def put_segment(self, name: str, body: bytes | bytearray) -> str:
        self.segments[name] = bytes(body)
        return name

    def read_segment(self, ref: str) -> Iterable[bytes]:
        return (self.segments[ref],)

    def discard_segments(self, refs: list[str]) -> None:
        for ref in refs:
            self.segments.pop(ref, None)

    def open_file(self, name: str) -> _MemoryUpload:
        return _MemoryUpload()


class _Group:
    """The rows of one file and one action group: spilled segments first, then what is still buffered."""

    __slots__ = ("buffer", "segments")

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.segments: list[str] = []


# What a file is written in: a segment or a group's rows go to the upload a piece at a time, so the upload
# holds at most a part and a piece beside them, not a second copy of them whole.
WRITE_PIECE_BYTES = 1 << 20


def _write_in_pieces(upload: ReportUpload, data: bytes | bytearray) -> None:
    with memoryview(data) as view:
        for start in range(0, len(view), WRITE_PIECE_BYTES):
            upload.write(view[start : start + WRITE_PIECE_BYTES])


class CsvReportWriter:
    """Stream report lines into one CSV per kind and every error into ``errors.csv``.

    A kind's rows are grouped by action in ``LINE_ORDER``; within an action they keep their arrival
    order. Rows wait in memory per file and action group, ``buffer_bytes`` in all: past that, the largest
    group is written to the sink as a segment (``put_segment``). ``finish`` writes each file front to
    back into the sink (``open_file``): its header, then each group's segments read back one at a time
    and its buffered rest. Memory therefore holds at most ``buffer_bytes`` of rows, a piece of a segment
    (``read_segment`` hands it back a piece at a time) and what the upload holds (``MultipartUpload``: one
    part), whatever the number of lines; no temporary file is used. Only kinds that received a line get a file;
    ``errors.csv`` is always written. A file that fails is aborted (``ReportUpload.abort``)::

        with CsvReportWriter(sink) as writer:
            writer.add_all(lines)
            written = writer.finish()   # file name → what the sink's upload returned (an S3 key)

    The first ``MAX_JSON_ERRORS`` errors and their total are kept for ``SyncReport``.
    """

    def __init__(
        self, sink: ReportSink | None = None, max_error_lines: int = 10_000, buffer_bytes: int = 8 << 20
    ) -> None:
        self._sink: ReportSink = sink if sink is not None else MemorySink()
        self._buffer_limit = max(1, buffer_bytes)
        self._buffered = 0
        self.max_error_lines = max_error_lines
        # file name → action rank → its rows; errors.csv has the one rank 0
        self._groups: dict[str, dict[int, _Group]] = {}
        self._finished: dict[str, Any] | None = None
        self._row_text = io.StringIO()
        self._row_csv = csv.writer(self._row_text)
        self.row_counts: dict[str, int] = {}
        self.segments_written = 0
        self.errors_total = 0
        self.first_errors: list[ReportError] = []
        # The first LIST_SHOWN lines of each kind and action, and every line counted (SyncReport.lists).
        self.lists: dict[Kind, dict[LineAction, list[ReportLine]]] = {}
        self.list_totals: dict[Kind, dict[LineAction, int]] = {}
        self._group(ERRORS_FILE, 0)

    def _group(self, name: str, rank: int) -> _Group:
        groups = self._groups.setdefault(name, {})
        if rank not in groups:
            groups[rank] = _Group()
            self.row_counts.setdefault(name, 0)
        return groups[rank]

    def _row(self, name: str, rank: int, cells: Iterable[str]) -> None:
        if self._finished is not None:
            raise RuntimeError("the report writer is finished")
        self._row_text.seek(0)
        self._row_text.truncate()
        self._row_csv.writerow([neutralise_formula(cell) for cell in cells])
        data = self._row_text.getvalue().encode("utf-8")
        self._group(name, rank).buffer += data
        self._buffered += len(data)
        self.row_counts[name] += 1
        if self._buffered > self._buffer_limit:
            self._spill_largest()

    def _spill_largest(self) -> None:
        name, rank, group = max(
            ((name, rank, group) for name, groups in self._groups.items() for rank, group in groups.items()),
            key=lambda entry: len(entry[2].buffer),
        )
        # The buffer itself, not a copy of it: the group gets a new one below.
        ref = self._sink.put_segment(f"{name.removesuffix('.csv')}-{rank:02d}-{len(group.segments):05d}", group.buffer)
        group.segments.append(ref)
        self.segments_written += 1
        self._buffered -= len(group.buffer)
        group.buffer = bytearray()

    def add(self, line: ReportLine) -> None:
        """Append one line to its kind's CSV file, in its action's group."""
        name = csv_file_name(line.kind)
        reason = line.reason or DEFAULT_REASONS.get(line.action, "")
        cells = (
            line.action.value,
            line.name,
            line.sis_id,
            line.school,
            line.grade,
            reason,
            changes_text(line.changes),
            line.id,
            line.provider_id,
        )
        self._row(name, _LINE_RANK[line.action], cells)
        totals = self.list_totals.setdefault(line.kind, {})
        totals[line.action] = totals.get(line.action, 0) + 1
        shown = self.lists.setdefault(line.kind, {}).setdefault(line.action, [])
        if len(shown) < LIST_SHOWN:
            shown.append(line if line.reason or not reason else line.model_copy(update={"reason": reason}))

    def add_all(self, lines: Iterable[ReportLine]) -> None:
        """Append lines from any iterable (a generator over millions of lines is fine)."""
        for line in lines:
            self.add(line)

    def add_error(self, error: ReportError) -> None:
        """Append one error to ``errors.csv`` (the first ``max_error_lines``; every error is counted)."""
        if self.errors_total < self.max_error_lines:
            row = "" if error.row is None else str(error.row)
            cells = (error.kind.value, error.provider_id, error.sis_id, error.file, row, error.reason, error.fix)
            self._row(ERRORS_FILE, 0, cells)
        self.errors_total += 1
        if len(self.first_errors) < MAX_JSON_ERRORS:
            self.first_errors.append(error)

    def finish(self) -> dict[str, Any]:
        """Write every CSV file to the sink and return what each upload returned.

        Returns
        -------
        dict[str, Any]
            File name to the sink's result (an S3 key; ``MemorySink``: a ``BytesIO`` at its start), kinds
            in ``Kind`` order, then ``errors.csv``. The segments are discarded once every file is written.
        """
        if self._finished is None:
            left_out = self.errors_total - self.max_error_lines
            if left_out > 0:
                self._row(
                    ERRORS_FILE,
                    0,
                    (
                        "",
                        "",
                        "",
                        "",
                        "",
                        f"… and {left_out:,} more errors ({self.errors_total:,} in all; errors.csv keeps the "
                        f"first {self.max_error_lines:,}: settings limits.max_error_lines)",
                        "",
                    ),
                )
            order = [csv_file_name(kind) for kind in Kind] + [ERRORS_FILE]
            finished: dict[str, Any] = {}
            segments = [ref for groups in self._groups.values() for group in groups.values() for ref in group.segments]
            for name in (name for name in order if name in self._groups):
                finished[name] = self._write_file(name, self._groups.pop(name))
            self._finished = finished
            if segments:
                self._sink.discard_segments(segments)
        return self._finished

    def _write_file(self, name: str, groups: dict[int, _Group]) -> Any:
        upload = self._sink.open_file(name)
        try:
            # utf-8-sig: the BOM makes Excel, which most admins open CSVs with, read accented names right.
            header = io.StringIO()
            csv.writer(header).writerow(ERROR_COLUMNS if name == ERRORS_FILE else LINE_COLUMNS)
            upload.write(header.getvalue().encode("utf-8-sig"))
            for rank in sorted(groups):
                group = groups[rank]
                for ref in group.segments:
                    for piece in self._sink.read_segment(ref):
                        _write_in_pieces(upload, piece)
                _write_in_pieces(upload, group.buffer)
                self._buffered -= len(group.buffer)
                group.buffer = bytearray()
            return upload.complete()
        except BaseException:
            upload.abort()
            raise

    def close(self) -> None:
        """Drop what is still buffered (a writer left unfinished writes nothing)."""
        self._groups.clear()
        self._buffered = 0

    def __enter__(self) -> CsvReportWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
