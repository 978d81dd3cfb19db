"""Possible duplicate students, scored by their evidence (pure).

Pairs are found by blocking (two students sharing a district id, a name, or a guardian), never by
comparing everyone with everyone, then scored:

| evidence | points |
|---|---|
| same SIS id / student number / state id (each) | +60 (once) |
| a district id present on both and different | veto |
| same name (given and family, case and spaces ignored) | +25 |
| same name and the same birth date | +40 more |
| birth dates present on both and different | veto |
| a guardian in common (the same guardian record, or guardians with the same name) | +25 |
| same school and grade | +10 |
| a hand-made student and a sync-managed one | +5 |

A pair is listed from 50 points (``medium``; ``high`` from 80). Twins (same family, birth date,
guardians, school and grade; different given names) reach 35 and are not listed. Only pairs with at
least one hand-made student are listed: two sync-managed students are the roster's to fix.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import combinations

from rostersync.directory.repository import DirectoryRecord
from rostersync.matching.people import STUDENT_IDS, normal_name

LISTED_FROM = 50
HIGH_FROM = 80
VETO = -1000


@dataclass(frozen=True)
class DuplicatePair:
    """Two students that may be one child: ``keep`` is who survives a merge (see ``survivor``)."""

    keep: str
    merge: str
    score: int
    confidence: str
    reasons: tuple[str, ...]
    keep_name: str = ""
    merge_name: str = ""
    keep_managed: bool = False
    merge_managed: bool = False


@dataclass
class StudentFacts:
    record: DirectoryRecord
    guardians: set[str] = field(default_factory=set)  # guardian ids
    guardian_names: set[str] = field(default_factory=set)


def _value(record: DirectoryRecord, name: str) -> str:
    return str(record.effective_fields().get(name) or "").strip().casefold()


def _schools(record: DirectoryRecord) -> set[str]:
    shown = record.effective_fields()
    return {str(s) for s in (record.fields.get("schools") or shown.get("school_ids") or [])}


def score_pair(a: StudentFacts, b: StudentFacts) -> tuple[int, list[str]]:
    """Points and reasons for one pair (``VETO`` or less: never the same child)."""
    ra, rb = a.record, b.record
    points, reasons = 0, []
    matched_id = False
    for name in STUDENT_IDS:
        va, vb = _value(ra, name), _value(rb, name)
        if va and vb:
            if va == vb:
                if not matched_id:
                    points += 60
                matched_id = True
                reasons.append(f"same {name.replace('_', ' ')}")
            else:
                return VETO, [f"different {name.replace('_', ' ')}"]
    name_a = normal_name(ra.effective_fields().get("given_name"), ra.effective_fields().get("family_name"))
    name_b = normal_name(rb.effective_fields().get("given_name"), rb.effective_fields().get("family_name"))
    birth_a, birth_b = _value(ra, "birth_date"), _value(rb, "birth_date")
    if birth_a and birth_b and birth_a != birth_b:
        return VETO, ["different birth dates"]
    if name_a and name_a == name_b:
        points += 25
        if birth_a and birth_a == birth_b:
            points += 40
            reasons.append("same name and birth date")
        else:
            reasons.append("same name")
    if (a.guardians & b.guardians) or (a.guardian_names & b.guardian_names):
        points += 25
        reasons.append("a guardian in common")
    grade_a, grade_b = _value(ra, "grade"), _value(rb, "grade")
    if _schools(ra) & _schools(rb) and grade_a and grade_a == grade_b:
        points += 10
        reasons.append("same school and grade")
    if ra.managed_by_sync != rb.managed_by_sync:
        points += 5
        reasons.append("a hand-made student and a sync-managed one")
    return points, reasons


def survivor(a: DirectoryRecord, b: DirectoryRecord) -> tuple[DirectoryRecord, DirectoryRecord]:
    """(keep, merge) as listed: the sync-managed student survives; otherwise the older id first."""
    if b.managed_by_sync and not a.managed_by_sync:
        return b, a
    if a.managed_by_sync and not b.managed_by_sync:
        return a, b
    return (a, b) if a.id <= b.id else (b, a)


def find_duplicates(
    students: Iterable[DirectoryRecord],
    guardian_links: Iterable[DirectoryRecord],
    guardian_names: dict[str, str],
    school: str | None = None,
) -> list[DuplicatePair]:
    """Candidate pairs among active students, best first.

    ``guardian_links`` are the district's active links (``fields.guardian``/``fields.student``);
    ``guardian_names`` maps a guardian id to its normalised name. ``school`` keeps pairs where one of
    the two is in that school.
    """
    facts = {s.id: StudentFacts(s) for s in students if s.status == "active"}
    for link in guardian_links:
        if link.status != "active":
            continue
        student, guardian = str(link.fields.get("student", "")), str(link.fields.get("guardian", ""))
        if student in facts and guardian:
            facts[student].guardians.add(guardian)
            if guardian_names.get(guardian):
                facts[student].guardian_names.add(guardian_names[guardian])
    blocks: dict[str, list[str]] = defaultdict(list)
    for sid, f in facts.items():
        shown = f.record.effective_fields()
        for name in STUDENT_IDS:
            value = _value(f.record, name)
            if value:
                blocks[f"{name}:{value}"].append(sid)
        full = normal_name(shown.get("given_name"), shown.get("family_name"))
        if full:
            blocks[f"name:{full}"].append(sid)
        for g in f.guardians:
            blocks[f"guardian:{g}"].append(sid)
        for g in f.guardian_names:
            blocks[f"guardian-name:{g}"].append(sid)
    seen: set[tuple[str, str]] = set()
    pairs: list[DuplicatePair] = []
    for members in blocks.values():
        if len(members) > 200:  # a key thousands share (a common name) says nothing on its own
            continue
        for x, y in combinations(sorted(set(members)), 2):
            if (x, y) in seen:
                continue
            seen.add((x, y))
            a, b = facts[x], facts[y]
            if a.record.managed_by_sync and b.record.managed_by_sync:
                continue
            if school and school not in (_schools(a.record) | _schools(b.record)):
                continue
            points, reasons = score_pair(a, b)
            if points < LISTED_FROM:
                continue
            keep, merge = survivor(a.record, b.record)
            pairs.append(
                DuplicatePair(
                    keep=keep.id,
                    merge=merge.id,
                    score=points,
                    confidence="high" if points >= HIGH_FROM else "medium",
                    reasons=tuple(reasons),
                    keep_name=_display(keep),
                    merge_name=_display(merge),
                    keep_managed=keep.managed_by_sync,
                    merge_managed=merge.managed_by_sync,
                )
            )
    return sorted(pairs, key=lambda p: (-p.score, p.keep, p.merge))


def _display(record: DirectoryRecord) -> str:
    shown = record.effective_fields()
    return " ".join(str(shown.get(k) or "") for k in ("given_name", "family_name")).strip()
