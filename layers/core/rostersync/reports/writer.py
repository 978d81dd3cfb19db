"""Render a sync report to bytes: ``report.json``, one CSV per kind plus ``errors.csv``.

Pure: no S3 here. The caller uploads what these functions return, all files under one prefix.
``report.html`` is rendered by ``reports.html``.
"""

from __future__ import annotations

import csv
import io
import tempfile
import unicodedata
from collections.abc import Iterable
from types import TracebackType
from typing import IO, Any

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


def neutralise_formula(cell: str) -> str:
    """Return the cell with a leading ``'`` if a spreadsheet would read it as a formula.

    The first character that shows is what counts: leading spaces and invisible characters are looked
    past, and a full-width form (``＝``, ``＋``, ``－``, ``＠``) counts as its ASCII twin (NFKC).
    """
    if cell.startswith(_FORMULA_START):
        return "'" + cell
    shown = cell.lstrip(" \u00a0\u3000\n\v\f" + _INVISIBLE)
    if shown and unicodedata.normalize("NFKC", shown[0]).startswith(_FORMULA_START):
        return "'" + cell
    return cell


def changes_text(changes: Iterable[FieldChange]) -> str:
    """One cell for an update's changes: ``email: a@x.org → b@x.org; grade: 3 → 4`` (empty shows as "(empty)")."""
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


class CsvReportWriter:
    """Stream report lines into one CSV per kind and every error into ``errors.csv``.

    Rows go to spooled temporary files (in memory up to ``spool_bytes`` each, then on disk), so memory
    does not grow with the district. A kind's rows are grouped by action in ``LINE_ORDER`` (one spool
    per action while writing, joined on ``finish``); within an action they keep their arrival order.
    Only kinds that received a line get a file; ``errors.csv`` is always written. Use as a context
    manager so the temporary files are closed::

        with CsvReportWriter() as writer:
            writer.add_all(lines)
            for name, fileobj in writer.finish().items():
                s3.upload_fileobj(fileobj, bucket, f"{prefix}/{name}")

    The first ``MAX_JSON_ERRORS`` errors and their total are kept for ``SyncReport``.
    """

    def __init__(self, spool_bytes: int = 1 << 20, max_error_lines: int = 10_000) -> None:
        self._spool_bytes = spool_bytes
        self.max_error_lines = max_error_lines
        # file name → action rank → (text stream, csv writer); errors.csv has the one rank 0
        self._parts: dict[str, dict[int, tuple[io.TextIOWrapper, Any]]] = {}
        self._finished: dict[str, IO[bytes]] | None = None
        self.row_counts: dict[str, int] = {}
        self.errors_total = 0
        self.first_errors: list[ReportError] = []
        # The first LIST_SHOWN lines of each kind and action, and every line counted (SyncReport.lists).
        self.lists: dict[Kind, dict[LineAction, list[ReportLine]]] = {}
        self.list_totals: dict[Kind, dict[LineAction, int]] = {}
        self._writer(ERRORS_FILE, 0)

    def _spool(self) -> IO[bytes]:
        return tempfile.SpooledTemporaryFile(max_size=self._spool_bytes, mode="w+b")  # type: ignore[return-value]

    def _writer(self, name: str, rank: int) -> Any:
        parts = self._parts.setdefault(name, {})
        if rank not in parts:
            # utf-8-sig is written once, by the header on finish; the parts are joined after it.
            text = io.TextIOWrapper(self._spool(), encoding="utf-8", newline="")  # type: ignore[arg-type]
            parts[rank] = (text, csv.writer(text))
            self.row_counts.setdefault(name, 0)
        return parts[rank][1]

    def _row(self, name: str, rank: int, cells: Iterable[str]) -> None:
        if self._finished is not None:
            raise RuntimeError("the report writer is finished")
        self._writer(name, rank).writerow([neutralise_formula(cell) for cell in cells])
        self.row_counts[name] += 1

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

    def finish(self) -> dict[str, IO[bytes]]:
        """Close the CSV files for writing and return them for upload.

        Returns
        -------
        dict[str, IO[bytes]]
            File name to a binary file object positioned at its start, kinds in ``Kind`` order, then
            ``errors.csv``. Valid until the writer is closed.
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
            self._finished = {}
            for name in (name for name in order if name in self._parts):
                self._finished[name] = self._join(name, self._parts.pop(name))
        return self._finished

    def _join(self, name: str, parts: dict[int, tuple[io.TextIOWrapper, Any]]) -> IO[bytes]:
        # utf-8-sig: the BOM makes Excel, which most admins open CSVs with, read accented names right.
        header = io.StringIO()
        csv.writer(header).writerow(ERROR_COLUMNS if name == ERRORS_FILE else LINE_COLUMNS)
        files: list[IO[bytes]] = [io.BytesIO(header.getvalue().encode("utf-8-sig"))]
        for rank in sorted(parts):
            text, _ = parts[rank]
            text.flush()
            part = text.detach()
            part.seek(0)
            files.append(part)  # type: ignore[arg-type]
        # Read back to back rather than copied into one file: the largest kind's CSV can be most of /tmp.
        return io.BufferedReader(_JoinedFile(files))  # type: ignore[return-value]

    def close(self) -> None:
        """Close and remove every temporary file."""
        for parts in self._parts.values():
            for text, _ in parts.values():
                text.close()
        for binary in (self._finished or {}).values():
            binary.close()

    def __enter__(self) -> CsvReportWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class _JoinedFile(io.RawIOBase):
    """Binary files read one after the other as one (read-only, forward-only); closing closes them all."""

    def __init__(self, files: list[IO[bytes]]) -> None:
        self._files = files
        self._current = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer).cast("B")
        while self._current < len(self._files):
            data = self._files[self._current].read(len(view))
            if data:
                view[: len(data)] = data
                return len(data)
            self._current += 1
        return 0

    def close(self) -> None:
        for fileobj in self._files:
            fileobj.close()
        super().close()
