"""A deterministic mix of report lines and errors, for the streamed report's tests.

Kinds and actions interleave the way the planner's lines arrive; cells carry accents, formula starts,
commas, quotes and line breaks, so the CSV quoting and the formula neutralisation are exercised.
"""

from __future__ import annotations

from collections.abc import Iterator

from rostersync.domain.records import Kind
from rostersync.reports.model import FieldChange, LineAction, ReportError, ReportLine

_NAMES = ("Zoë Ålvarez", "=HYPERLINK(x)", 'Li, "Ava"', "+1 555", "Ngozi\nOkafor", "@me", "-3", "Ana María")
_KINDS = tuple(Kind)
_ACTIONS = tuple(LineAction)


def mixed_lines(n: int) -> Iterator[ReportLine]:
    """``n`` lines over every kind and action, interleaved, some with changes."""
    for i in range(n):
        action = _ACTIONS[(i * 5 + i // 8) % len(_ACTIONS)]
        yield ReportLine(
            kind=_KINDS[i % len(_KINDS)],
            action=action,
            id=f"id-{i:08d}",
            provider_id=f"prov-{i * 31 % 100_003:06d}",
            name=_NAMES[i % len(_NAMES)],
            sis_id=str(100_000 + i) if i % 3 else "",
            school="Summit High School; Lincoln Middle" if i % 5 == 0 else "Summit High School",
            grade=str(i % 12 + 1),
            reason="" if i % 4 else "no longer in the roster",
            changes=[FieldChange(field="email", before=f"a{i}@x.org", after=f"b{i}@x.org")] if i % 6 == 0 else [],
        )


def mixed_errors(n: int) -> Iterator[ReportError]:
    """``n`` errors, some naming an uploaded file's row and a fix."""
    for i in range(n):
        yield ReportError(
            kind=_KINDS[i % len(_KINDS)],
            provider_id=f"bad-{i:06d}",
            reason=f"users.csv line {i + 2}: no school; not synced. Fix the id in the export"
            if i % 2
            else "=cmd|' /C calc'!A0 has no name",
        )
