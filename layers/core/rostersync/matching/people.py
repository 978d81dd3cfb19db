"""Finding the product account of a roster person who has no provider link yet (issue 4, item 4).

The rules, in the order the planner applies them:

- students by the student id the district chose (``SyncSettings.student_match_id``); then, only as a
  *candidate* flagged for review, the same name and date of birth in the same school — never merged;
- teachers and staff by email, case-insensitive and trimmed;
- guardians by email, or by SMS phone.

A match must be unique: two product accounts with the same key match nobody (the report says so), and
an account already matched to one roster person is not matched to another. An account counts among the
two whether it is still unlinked or already another roster person's (matched earlier in the run, or linked
on an earlier night), so a roster person gets the same answer every night, whatever the order they come in.

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


_NOT_DIGIT = re.compile(r"\D")


def normal_phone(value: object) -> str:
    """Digits only; a US number's leading country code 1 dropped. Fewer than 7 digits is no phone."""
    if not value:  # most accounts have no phone: two of them per candidate, 3.1 M candidates at NYC
        return ""
    digits = _NOT_DIGIT.sub("", str(value))
    if len(digits) == 11 and digits.startswith("1"):
        digits = digits[1:]
    return digits if len(digits) >= 7 else ""


def normal_name(given: object, family: object) -> str:
    return " ".join(f"{given or ''} {family or ''}".casefold().split())


def digest(*parts: str) -> bytes:
    """A match key: 80 bits of the parts' SHA-256, as 10 bytes (43 bytes held, where its 20 hex digits took
    69: the people phase keeps one per guardian's email, and one or more per candidate)."""
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()[:10]


_ROLE_OF = {role.value: role for role in Role}
# Each set of roles once: a first sync of a district whose accounts the product already has holds a candidate
# per person (NYC: 3.1 M), nearly all with one of a few sets (a frozenset took 216 bytes a candidate).
_ROLE_SETS: dict[frozenset[Role], frozenset[Role]] = {}


def _roles(fields: dict[str, object]) -> frozenset[Role]:
    roles = fields.get("roles") or []
    if not isinstance(roles, list):
        return frozenset()
    found = frozenset(_ROLE_OF[r] for r in roles if isinstance(r, str) and r in _ROLE_OF)
    return _ROLE_SETS.setdefault(found, found)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An existing product account matching may link: its index entry and its roles."""

    entry: IndexEntry
    roles: frozenset[Role]
    schools: tuple[str, ...]


# A candidate and its match keys, made from its record where the record is read (a reader thread of the
# directory), so that what waits for the index is this, not the whole record (``prepare_candidate``).
PreparedCandidate = tuple[Candidate, tuple[bytes, ...]]


def prepare_candidate(record: DirectoryRecord) -> PreparedCandidate | None:
    """A product account as a matching candidate with its digested keys; None for a student merged into
    another (``rostersync duplicates merge``), who is never matched again."""
    shown = record.effective_fields()
    if shown.get("merged_into"):
        return None
    schools = tuple(map(str, record.fields.get("schools") or shown.get("school_ids") or []))
    keys: list[bytes] = []
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
    return Candidate(record.index_entry(), _roles(shown), schools), tuple(dict.fromkeys(keys))


@dataclass
class CandidateIndex:
    """Product people without a link to this run's provider, by digested match key.

    A key names one record id, or a list of them when more than one record has it (rare: a shared family
    email, a twin's name and birth date): a list for every key took 209 bytes a candidate."""

    _by_key: dict[bytes, str | list[str]] = field(default_factory=dict)
    _candidates: dict[str, Candidate] = field(default_factory=dict)
    claimed: set[str] = field(default_factory=set)
    # Keys that accounts already linked to the provider hold (``note_linked``), with those accounts' roles:
    # only keys a candidate holds too, the only ones a match could trip on.
    _linked: dict[bytes, frozenset[Role]] = field(default_factory=dict)

    @classmethod
    def from_records(cls, records: Iterable[DirectoryRecord]) -> CandidateIndex:
        return cls.from_prepared(prepared for record in records if (prepared := prepare_candidate(record)))

    @classmethod
    def from_prepared(cls, prepared: Iterable[PreparedCandidate]) -> CandidateIndex:
        """From candidates made as their records were read (``prepare_candidate``)."""
        index = cls()
        for candidate in prepared:
            index.add_prepared(candidate)
        return index

    def add_prepared(self, prepared: PreparedCandidate) -> None:
        candidate, keys = prepared
        record_id = candidate.entry.id
        self._candidates[record_id] = candidate
        for key in keys:
            held = self._by_key.get(key)
            if held is None:
                self._by_key[key] = record_id
            elif type(held) is str:
                self._by_key[key] = [held, record_id]
            else:
                held.append(record_id)

    def _ids_under(self, key: bytes) -> tuple[str, ...] | list[str]:
        held = self._by_key.get(key)
        if held is None:
            return ()
        return (held,) if type(held) is str else held

    def __len__(self) -> int:
        return len(self._candidates)

    def note_linked(self, keys: Iterable[bytes], roles: frozenset[Role]) -> None:
        """An account linked to the provider in an earlier run holds these match keys (as its roster person's
        fields give them): a candidate under one of them is then one of two accounts with the key, as it was
        the night the account was matched (``claimed_under``). Without this, the night after a roster
        person took an account, another roster person with its key found the other account under it alone
        and unclaimed, and was linked to it, where the night before they were ambiguous."""
        for key in keys:
            if key in self._by_key:
                held = self._linked.get(key)
                self._linked[key] = roles if held is None else _ROLE_SETS.setdefault(held | roles, held | roles)

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

    def find(self, key: bytes, roles: Iterable[Role]) -> list[Candidate]:
        """Unclaimed candidates under ``key`` holding one of ``roles``."""
        wanted = set(roles)
        found = []
        for record_id in self._ids_under(key):
            candidate = self._candidates[record_id]
            if record_id not in self.claimed and candidate.roles & wanted:
                found.append(candidate)
        return found

    def claimed_under(self, key: bytes, roles: Iterable[Role]) -> bool:
        """Whether an account under ``key`` with one of ``roles`` is already another roster person's: a
        candidate matched this run, or an account linked in an earlier one (``note_linked``)."""
        wanted = set(roles)
        if wanted & self._linked.get(key, frozenset()):
            return True
        return any(
            record_id in self.claimed and self._candidates[record_id].roles & wanted
            for record_id in self._ids_under(key)
        )
