"""A provider re-key: the district re-rostered and the provider sent every record under a new id.

Matched by provider id alone, such a roster would create everyone again while the old records wait to
be archived (held back by the deletion threshold): everyone twice in the directory. So Match looks at
the ids before planning: when a large share of a collection's sync-managed ids are gone and about as
many new ids came, the run is a re-key. The planner then links each new id to the record about to be
archived that carries the same district ids (students: SIS id, student number, state id; adults:
email, SIS id; classrooms: school and section number, or school and name), and what it cannot tell
apart is held for review: nothing written for it, nothing of its kind archived, the run ends
``needs_review``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

# A re-key when at least this share of a collection's managed records are gone, with at least half as
# many new ids arriving, in a collection of at least REKEY_MIN_RECORDS records: a few leavers and
# newcomers are a normal night.
REKEY_SHARE = 0.5
REKEY_MIN_RECORDS = 10


@dataclass(frozen=True)
class IdChange:
    """How a collection's ids changed between the directory and the roster."""

    managed: int
    gone: int
    new: int

    def is_rekey(self, share: float = REKEY_SHARE) -> bool:
        return self.managed >= REKEY_MIN_RECORDS and self.gone >= share * self.managed and self.new * 2 >= self.gone


def id_change(managed_ids: set[str], roster_ids: set[str], known_ids: set[str]) -> IdChange:
    """``managed_ids``: active sync-managed provider ids; ``roster_ids``: the roster's; ``known_ids``:
    every provider id the directory knows (a known id is not new)."""
    return IdChange(
        managed=len(managed_ids),
        gone=len(managed_ids - roster_ids),
        new=len(roster_ids - known_ids),
    )


def counted_id_change(
    managed: int, roster_ids: Iterable[str], is_managed: Callable[[str], bool], is_known: Callable[[str], bool]
) -> IdChange:
    """``id_change`` counted as the roster's ids pass, without holding them or the directory's as sets:
    ``managed`` active sync-managed ids; ``is_managed`` / ``is_known`` ask the directory about one id.
    The roster gives each id once (Fetch's duplicate check keeps the first of a repeated id)."""
    kept = new = 0
    for roster_id in roster_ids:
        if is_managed(roster_id):
            kept += 1
        elif not is_known(roster_id):
            new += 1
    return IdChange(managed=managed, gone=managed - kept, new=new)


def classroom_key(school_id: str, sis_id: str, name: str) -> str:
    """How a re-keyed section is recognised: its school and section number, or its school and name."""
    sis = " ".join(str(sis_id or "").split()).casefold()
    if sis:
        return f"{school_id}\x1fsis\x1f{sis}"
    return f"{school_id}\x1fname\x1f{' '.join(str(name or '').split()).casefold()}"
