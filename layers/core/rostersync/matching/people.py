"""Finding the product account of a roster person who has no provider link yet (issue 4, item 4).

The rules, in the order the planner applies them:

- students by the student id the district chose (``SyncSettings.student_match_id``); then, only as a
  *candidate* flagged for review, the same name and date of birth in the same school — never merged;
- teachers and staff by email, case-insensitive and trimmed;
- guardians by email, or by SMS phone.

A match must be unique: two product accounts with the same key match nobody (the report says so), and
an account already matched to one roster person is not matched to another.

Keys are kept as short digests, so the index holds no email, phone or birth date in the clear.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from rostersync.directory.repository import DirectoryRecord, IndexEntry
from rostersync.domain.records import Role

STUDENT_IDS = ("sis_id", "student_number", "state_id")


def normal_email(value: object) -> str:
    """Emails compare case-insensitively, surrounding spaces ignored."""
    return str(value or "").strip().casefold()


def normal_phone(value: object) -> str:
    """Digits only; a US number's leading country code 1 dropped. Fewer than 7 digits is no phone."""
    digits = re.sub(r"\D", "", str(value or ""))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else ""


def normal_name(given: object, family: object) -> str:
    return " ".join(f"{given or ''} {family or ''}".casefold().split())


def digest(*parts: str) -> str:
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:20]


def _roles(fields: dict[str, object]) -> frozenset[Role]:
    roles = fields.get("roles") or []
    if not isinstance(roles, list):
        return frozenset()
    known = {r.value for r in Role}
    return frozenset(Role(r) for r in roles if r in known)


@dataclass(frozen=True)
class Candidate:
    """An existing product account matching may link: its index entry and its roles."""

    entry: IndexEntry
    roles: frozenset[Role]
    schools: tuple[str, ...]


@dataclass
class CandidateIndex:
    """Product people without a link to this run's provider, by digested match key."""

    _by_key: dict[str, list[str]] = field(default_factory=dict)
    _candidates: dict[str, Candidate] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)

    @classmethod
    def from_records(cls, records: Iterable[DirectoryRecord]) -> CandidateIndex:
        index = cls()
        for record in records:
            index.add(record)
        return index

    def add(self, record: DirectoryRecord) -> None:
        shown = record.effective_fields()
        if shown.get("merged_into"):
            return  # merged into another student (rostersync duplicates merge): never matched again
        schools = tuple(str(s) for s in (record.fields.get("schools") or shown.get("school_ids") or []))
        self._candidates[record.id] = Candidate(record.index_entry(), _roles(shown), schools)
        keys: list[str] = []
        email = normal_email(shown.get("email"))
        if email:
            keys.append(digest("email", email))
        for name in ("sms_phone", "phone"):
            phone = normal_phone(shown.get(name))
            if phone:
                keys.append(digest("sms", phone))
                break
        for name in STUDENT_IDS:
            value = str(shown.get(name) or "").strip()
            if value:
                keys.append(digest(name, value))
        name_key = normal_name(shown.get("given_name"), shown.get("family_name"))
        birth = str(shown.get("birth_date") or "").strip()
        if name_key and birth:
            for school in schools:
                keys.append(digest("namedob", school, name_key, birth))
        for key in dict.fromkeys(keys):
            self._by_key.setdefault(key, []).append(record.id)

    def __len__(self) -> int:
        return len(self._candidates)

    def not_in_sync(self, synced_schools: set[str]) -> tuple[int, int]:
        """Active product students of synced schools that no roster record matched this run (students
        not in the sync: ``rostersync cleanup archive-unmanaged``), and how many schools they are in."""
        students, schools = 0, set()
        for record_id, candidate in self._candidates.items():
            if record_id in self.claimed or candidate.entry.status != "active" or Role.STUDENT not in candidate.roles:
                continue
            mine = synced_schools.intersection(candidate.schools)
            if mine:
                students += 1
                schools |= mine
        return students, len(schools)

    def find(self, key: str, roles: Iterable[Role]) -> list[Candidate]:
        """Unclaimed candidates under ``key`` holding one of ``roles``."""
        wanted = set(roles)
        found = []
        for record_id in self._by_key.get(key, []):
            candidate = self._candidates[record_id]
            if record_id not in self.claimed and candidate.roles & wanted:
                found.append(candidate)
        return found

    def claimed_under(self, key: str, roles: Iterable[Role]) -> bool:
        """Whether a candidate under ``key`` with one of ``roles`` was already matched this run."""
        wanted = set(roles)
        return any(
            record_id in self.claimed and self._candidates[record_id].roles & wanted
            for record_id in self._by_key.get(key, [])
        )
