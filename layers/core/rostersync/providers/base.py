"""What every provider offers the Fetch step."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from rostersync.domain.records import SnapshotItem


@dataclass(frozen=True)
class RetryPolicy:
    """How a provider client backs off on 429 and 5xx answers.

    ``sleep`` is injectable so tests never wait; ``base_delay`` 0 also disables waiting.
    """

    max_attempts: int = 6
    base_delay: float = 1.0
    max_delay: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def backoff(self, attempt: int) -> float:
        """Full-jitter exponential backoff for the given (1-based) attempt."""
        if self.base_delay <= 0:
            return 0.0
        return random.uniform(0, min(self.max_delay, self.base_delay * 2 ** (attempt - 1)))


@dataclass
class FetchOutcome:
    """Filled in by a provider while it streams.

    ``complete``: every page of every endpoint was read (otherwise the run archives nothing).
    ``delta``: the provider sent only what changed (a OneRoster delta bundle or a
    ``dateLastModified`` filter): records it does not mention are not archived; only
    ``DeletedRecord``s are.
    ``cursor``: the provider's new high-water mark, stored once the run has succeeded.
    ``sync_kind``: ``full``, ``delta`` (OneRoster) or ``events`` (Clever); ``full_reason`` says why a
    provider that can send changes read everything.
    ``touched_only``: the snapshot is the whole roster rebuilt from the changes (Clever events): only the
    records ``TouchedRecord``s name may be archived.
    ``tonight_known``: a full read that also named what tonight's changes touched (a reconcile), so the
    planner can tell what the reconcile caught that the changes missed.
    ``changes``: how many objects the change feed named (the quietest night is the one with fewest).
    """

    complete: bool = True
    problems: list[str] = field(default_factory=list)
    delta: bool = False
    cursor: str | None = None
    sync_kind: str = "full"
    full_reason: str = ""
    touched_only: bool = False
    tonight_known: bool = False
    changes: int | None = None

    def mark_incomplete(self, problem: str) -> None:
        self.complete = False
        self.problems.append(problem)


@dataclass(frozen=True)
class ListPage:
    """One page of a provider's list: its items, the next page's cursor (None: it was the last page) and,
    for a page that could not be read to its end, the problem (the list stops there). ``total``: how many
    records the server counted in the whole list as it answered (OneRoster's ``X-Total-Count``), if it said.
    ``moved``: the page did not start where the page before it ended (OneRoster's offset paging: records
    before it were deleted while the list was read, so one may have moved across the boundary unread).
    ``before``: the id of the record just before the page, for the first page of a part of a list read in
    parts (asked from one record back: the part before it must have ended with that record)."""

    items: list[Any]
    next: Any
    problem: str = ""
    total: int | None = None
    moved: bool = False
    before: str | None = None


class RosterProvider(Protocol):
    """A source of canonical roster records for one district."""

    name: str

    def fetch(self, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        """Stream the district's roster: records and per-record errors, in any order.

        Raises ``ProviderAuthError`` / ``ProviderUnavailableError`` when the fetch cannot proceed at
        all; a page that cannot be read is recorded in ``outcome`` (the fetch is then incomplete and
        the run will not archive).
        """
        ...


_US_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")


def iso_date(text: str) -> str:
    """A date as ``YYYY-MM-DD`` when it is a US-style ``M/D/YYYY`` date; otherwise as given, stripped.

    A US date that is not a real day (13/40/2010) is kept as given rather than guessed at.
    """
    text = text.strip()
    match = _US_DATE.fullmatch(text)
    if match is None:
        return text
    month, day, year = (int(part) for part in match.groups())
    try:
        return date(year, month, day).isoformat()
    except ValueError:
        return text
