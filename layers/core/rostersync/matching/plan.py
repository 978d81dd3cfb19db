"""Turn a fetched roster into a plan of directory writes.

``SyncPlanner.plan`` reads the snapshot one collection at a time: a few cheap passes first gather what
later decisions need (a section's first teacher, which students will sync, teachers' emails), then it
plans in dependency order (schools, classrooms, people, guardians, enrollments, guardian links) and
decides for each record: create, update (``linked`` when it takes over an existing product record),
restore, unchanged, skipped or error — by the district's settings, and finding the product account of
a person without a provider link (``matching.people``). It keeps only small maps (provider id →
directory id, digests), never the records themselves, so a district's size bounds its memory only
through those maps.

The planner does no I/O: writes, report lines and errors go to the sinks it is given.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

from rostersync.directory.keys import COLLECTION_OF_KIND, synced_record_id
from rostersync.directory.repository import DirectoryRecord, IndexEntry, PackedIndex, edit_digest
from rostersync.domain.records import (
    ClassroomRecord,
    DeletedRecord,
    EnrollmentRecord,
    GuardianLinkRecord,
    Kind,
    PersonRecord,
    RecordError,
    Role,
    RosterRecord,
    SchoolRecord,
    content_hash,
    district_id_of,
)
from rostersync.matching.people import (
    STUDENT_IDS,
    Candidate,
    CandidateIndex,
    digest,
    normal_email,
    normal_name,
    normal_phone,
)
from rostersync.matching.rekey import classroom_key
from rostersync.reports.details import line_details, roster_details
from rostersync.settings import SyncSettings

WriteOp = Literal["create", "update", "restore"]
EMPTIED_SCHOOL_MIN_STUDENTS = 5
_UNREAD = "names someone not in the part of the roster that could be read (the fetch did not complete)"
COUNT_FIELDS = (
    "created",
    "updated",
    "linked",
    "archived",
    "restored",
    "unchanged",
    "skipped",
    "errors",
    "edits_kept",
    "edits_overwritten",
)


@dataclass(frozen=True)
class PlannedWrite:
    """One write Upsert will make. ``create`` puts a new item; ``update``/``restore`` update in place."""

    op: WriteOp
    record: DirectoryRecord
    # product edits the roster's values replace (settings: update_edited_contact_details = always)
    clear_edits: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        r = self.record
        return {
            "op": self.op,
            "clear_edits": list(self.clear_edits),
            "record": {
                "id": r.id,
                "kind": r.kind.value,
                "status": r.status,
                "managed_by_sync": r.managed_by_sync,
                "provider_ids": r.provider_ids,
                "fields": r.fields,
                "content_hash": r.content_hash,
                "parent_id": r.parent_id,
            },
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> PlannedWrite:
        r = data["record"]
        return cls(
            op=data["op"],
            record=DirectoryRecord(
                id=r["id"],
                kind=Kind(r["kind"]),
                status=r["status"],
                managed_by_sync=r["managed_by_sync"],
                provider_ids=r["provider_ids"],
                fields=r["fields"],
                content_hash=r["content_hash"],
                parent_id=r.get("parent_id", ""),
            ),
            clear_edits=tuple(data.get("clear_edits") or ()),
        )


@dataclass(frozen=True)
class PlanLine:
    """A line of the report: what happened to one record and why, with the district's id of it, its school
    and grade (``reports.details``); ``changes`` (before → after) is added by Match, which reads the
    before-images."""

    kind: Kind
    action: str
    id: str
    provider_id: str
    name: str = ""
    reason: str = ""
    sis_id: str = ""
    school: str = ""
    grade: str = ""
    changes: tuple[dict[str, str], ...] = ()

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": self.kind.value,
            "action": self.action,
            "id": self.id,
            "provider_id": self.provider_id,
            "name": self.name,
            "reason": self.reason,
        }
        # Only what a line has: the plan's lines of a million-record first sync stay small.
        for name in ("sis_id", "school", "grade"):
            if getattr(self, name):
                data[name] = getattr(self, name)
        if self.changes:
            data["changes"] = list(self.changes)
        return data


@dataclass(frozen=True)
class ArchiveCandidate:
    """A sync-managed record that is no longer in the roster."""

    kind: Kind
    id: str
    provider_id: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "id": self.id, "provider_id": self.provider_id}


@dataclass
class PlanSummary:
    """Counts per kind, the would-be archive list size and the managed totals the threshold needs."""

    counts: dict[Kind, Counter[str]] = field(default_factory=lambda: {k: Counter() for k in Kind})
    managed: Counter[Kind] = field(default_factory=Counter)
    archive_candidates: Counter[Kind] = field(default_factory=Counter)
    # school id → how many students it would lose, for schools the roster would empty entirely
    emptied_schools: dict[str, int] = field(default_factory=dict)
    # emptied school id → {"name", "held": {kind: records of that school held back from archiving}}
    held_schools: dict[str, dict[str, Any]] = field(default_factory=dict)
    # kind → records not archived because the roster had unreadable records of their collection
    held_unreadable: dict[str, int] = field(default_factory=dict)
    # school id → {"students", "teachers", "classrooms": synced records of the school, "changed": those this
    # run writes} (a person counts in each of their schools), for the district's index page
    schools: dict[str, Counter[str]] = field(default_factory=dict)
    # a provider re-key: records linked to their existing record by district ids, and those held for review
    rekey: Counter[str] = field(default_factory=Counter)
    findings: Findings = field(default_factory=lambda: Findings())
    # a full reconcile after incremental runs: what it wrote or would archive that tonight's changes did not
    # name, per kind and action (created, updated, restored, linked, to_archive)
    reconcile_caught: dict[Kind, Counter[str]] | None = None
    # an incremental run (Clever events): records absent from the roster left unarchived because no change
    # named them; the next reconcile decides
    untouched_absent: Counter[Kind] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        return {
            "counts": {k.value: {f: self.counts[k][f] for f in COUNT_FIELDS} for k in Kind},
            "managed": {k.value: self.managed[k] for k in Kind},
            "archive_candidates": {k.value: self.archive_candidates[k] for k in Kind},
            "emptied_schools": self.emptied_schools,
            "held_schools": self.held_schools,
            "held_unreadable": self.held_unreadable,
            "schools": {school: dict(counts) for school, counts in self.schools.items()},
            "rekey": dict(self.rekey),
            "findings": self.findings.to_json(),
            "reconcile_caught": None
            if self.reconcile_caught is None
            else {k.value: dict(c) for k, c in self.reconcile_caught.items() if c},
            "untouched_absent": {k.value: n for k, n in self.untouched_absent.items() if n},
        }


@dataclass
class Findings:
    """What the self-check lists for the admin to act on before (and after) the first sync."""

    unmatched_provider_schools: list[dict[str, str]] = field(default_factory=list)
    out_of_scope_schools: list[dict[str, str]] = field(default_factory=list)
    unlinked_product_schools: list[dict[str, str]] = field(default_factory=list)
    sections_without_teacher: int = 0
    students_without_section: int = 0
    unlinked_sections: Counter[str] = field(default_factory=Counter)  # "create" | "skip"
    guardians_skipped: Counter[str] = field(default_factory=Counter)  # reason → guardians
    duplicate_candidates: int = 0
    ambiguous_matches: int = 0
    multi_role: Counter[str] = field(default_factory=Counter)  # "merged" | "separate"
    edits_kept: int = 0
    edits_overwritten: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "unmatched_provider_schools": self.unmatched_provider_schools,
            "out_of_scope_schools": self.out_of_scope_schools,
            "unlinked_product_schools": self.unlinked_product_schools,
            "sections_without_teacher": self.sections_without_teacher,
            "students_without_section": self.students_without_section,
            "unlinked_sections": {"create": self.unlinked_sections["create"], "skip": self.unlinked_sections["skip"]},
            "guardians_skipped": dict(self.guardians_skipped),
            "duplicate_candidates": self.duplicate_candidates,
            "ambiguous_matches": self.ambiguous_matches,
            "multi_role": {"merged": self.multi_role["merged"], "separate": self.multi_role["separate"]},
            "edits_kept": self.edits_kept,
            "edits_overwritten": self.edits_overwritten,
        }


Index = dict[str, IndexEntry]  # provider id → entry, one per directory collection


def index_by_provider_id(entries: Iterable[IndexEntry], provider: str) -> Index:
    """Key a collection's index by this provider's ids (records without a link are not matchable)."""
    return {e.provider_ids[provider]: e for e in entries if provider in e.provider_ids}


def _display_name(record: Any) -> str:
    if isinstance(record, PersonRecord):
        return " ".join(p for p in (record.given_name, record.family_name) if p)
    return getattr(record, "name", "")


# Synced fields that are contact details: the settings decide whether a product edit of one survives.
CONTACT_FIELDS = frozenset({"email", "phone", "sms_phone", "home_phone"})

GUARDIANS_OFF = "guardians are not synced (settings: guardians.manage is off)"
NO_STUDENT_SYNCED = "none of their students is synced"
LINKS_EXCLUDED = "their links to synced students are all of contact types or relationships the settings leave out"
NO_REACH = "no email of their own and no SMS-capable phone: the product could not reach them"
AMBIGUOUS = "several product accounts match"
NEEDS_REVIEW = "needs_review"

_ACTIONS = {"create": "created", "update": "updated", "restore": "restored"}
_PER_SCHOOL = {Kind.STUDENTS: "students", Kind.TEACHERS: "teachers", Kind.CLASSROOMS: "classrooms"}
NAMES_KEPT = 500_000
"""People and classrooms whose names the planner keeps to name enrollments and guardian links (about 100 bytes
each): a district past it gets those lines named for the first ones only; the ids are always there."""


UNREADABLE_HELD = (
    "held: the roster had records of this kind that could not be read (see errors.csv), so nothing of it is "
    "archived this run"
)


def emptied_school_reason(school_label: str) -> str:
    return (
        f"held: every student of school {school_label} left the roster at once, which looks like a broken export; "
        "nothing of that school was archived"
    )


def school_label(school_id: str, name: str) -> str:
    return f"{name} ({school_id})" if name else school_id


_SEPARATOR = re.compile(r"^[-–—|/:,·]+$")


def render_name(template: str, values: dict[str, str]) -> str:
    """Fill a classroom name template; a blank placeholder takes the text glued to it along
    (``P{period}``, ``({teacher})``) and the separators left dangling, so "Biology – P ()" reads "Biology"."""
    pieces: list[str] = []
    strip_next = False
    for literal, name, _, _ in string.Formatter().parse(template):
        if strip_next:
            literal = re.sub(r"^\S+", "", literal)
            strip_next = False
        value = str(values.get(name, "") or "").strip() if name is not None else None
        if value == "":
            literal = re.sub(r"\S+$", "", literal)
            strip_next = True
        pieces.append(literal + (value or ""))
    words = "".join(pieces).split()
    kept: list[str] = []
    for word in words:
        if _SEPARATOR.match(word) and (not kept or _SEPARATOR.match(kept[-1])):
            continue
        kept.append(word)
    while kept and _SEPARATOR.match(kept[-1]):
        kept.pop()
    return " ".join(kept)


class SyncPlanner:
    """Decides the writes of one run.

    Parameters
    ----------
    district_id, provider:
        Whose roster, from which provider (``"clever"``, ``"oneroster"``).
    index:
        The directory's matching index per collection, keyed by this provider's ids.
    write, line, error:
        Sinks for planned writes, report lines and record errors.
    delta:
        The snapshot holds only what changed: nothing is archived for being absent, only records the
        provider marked deleted.
    complete:
        False when some pages could not be read: a reference to someone not in the snapshot is then
        skipped (they may be on an unread page), not reported as an error.
    settings:
        The district's sync settings, at the version the run recorded.
    candidates:
        Product people without a link to this provider, which person matching may link.
    product_schools:
        Product schools (id → name) without a link to this provider, listed for the admin to match.
    school_names:
        Every product school's name by id, to name a school the roster left out in the report.
    rekey_people, rekey_classrooms:
        Set when Match found a provider re-key (``matching.rekey``): the records about to be archived, by
        district ids, that a new id is linked to instead of being created.
    touched:
        People and sections (provider ids, by collection) the provider's change feed named in this run.
    touched_only:
        The snapshot is the whole roster rebuilt from the changes (Clever events): a record absent from it
        is archived only when ``touched`` names it (or the person or section it hangs from).
    tonight_known:
        A full read (a reconcile) for which ``touched`` holds what tonight's changes named: what it writes or
        archives outside of them is counted in ``summary.reconcile_caught``.
    """

    def __init__(
        self,
        district_id: str,
        provider: str,
        index: dict[str, Index],
        write: Callable[[PlannedWrite], None],
        line: Callable[[PlanLine], None],
        error: Callable[[RecordError], None],
        delta: bool = False,
        complete: bool = True,
        settings: SyncSettings | None = None,
        candidates: CandidateIndex | None = None,
        product_schools: dict[str, str] | None = None,
        school_names: dict[str, str] | None = None,
        rekey_people: CandidateIndex | None = None,
        rekey_classrooms: dict[str, list[IndexEntry]] | None = None,
        touched: dict[str, set[str]] | None = None,
        touched_only: bool = False,
        tonight_known: bool = False,
        guardians_of_touched: set[str] | None = None,
    ) -> None:
        self.district_id = district_id
        self._touched = {c: set(ids) for c, ids in (touched or {}).items()}
        self.touched_only = touched_only
        # Given when the guardian links' index is not in ``index`` (partitioned Match: the people phase).
        self._guardians_of_touched: set[str] | None = guardians_of_touched
        # Partitioned Match (``matching.partition``): set on the people phase, whose index holds no enrollments
        # or guardian links; the guardians an emptied school's links would hold are decided by Combine.
        self.pairs_elsewhere = False
        self.deferred_guardians: list[ArchiveCandidate] = []
        # Set on a partition: what the people phase found about emptied schools (their people's and
        # classrooms' directory ids → school, their people's provider ids → school).
        self.emptied_school_of: dict[str, str] | None = None
        self.emptied_people_pids: dict[str, str] | None = None
        # guardian provider id → the emptied school whose held link reaches them (a partition's finding)
        self.guardian_school: dict[str, str] = {}

        self.delta = delta
        self.complete = complete
        self.settings = settings or SyncSettings()
        self._candidates = candidates or CandidateIndex()
        self._product_schools = dict(product_schools or {})
        # product school id → name, to name a school in the report (the roster may no longer have it)
        self._school_names = dict(school_names or {})
        self._rekey_people = rekey_people
        self._rekey_classrooms = rekey_classrooms
        self._rekey_claimed: set[str] = set()
        self._rekey_parts: dict[str, dict[tuple[str, str], tuple[str, IndexEntry]]] | None = None
        self._deleted: dict[str, set[str]] = {c: set() for c in index}
        self.provider = provider
        self._index = index
        self._write = write
        self._line = line
        self._error = error
        self.summary = PlanSummary()
        # directory id → name of people and classrooms, to name enrollments and guardian links in the report
        # (bounded: past NAMES_KEPT, lines of later records name ids only)
        self._names: dict[str, str] = {}
        self._provider_school_names: dict[str, str] = {}  # provider school id → name (skipped people's schools)
        if tonight_known:
            self.summary.reconcile_caught = {k: Counter() for k in Kind}
        self._ids: dict[str, dict[str, str]] = {c: {} for c in ("schools", "classrooms", "people")}
        self._seen: dict[str, set[str]] = {c: set() for c in index}
        self._held_collections: set[str] = set()  # nothing of these is archived (``RecordError.holds_archive``)
        self._skipped_people: set[str] = set()
        self._guardians_wanted: set[str] = set()
        self._scope = set(self.settings.schools_in_scope)
        # Gathered by the passes that precede planning (``note_*``).
        self._section_teachers: dict[str, str] = {}  # section → its first teacher's provider id
        self._enrolled_students: set[str] = set()
        self._noted_enrollments = False
        self._teacher_names: dict[str, str] = {}
        self._syncable_students: set[str] = set()
        self._staff_by_email: dict[bytes, tuple[str, str, str]] = {}  # email digest → (provider id, name, phone)
        self._guardian_email_count: Counter[bytes] = Counter()
        self._excluded_links_of: set[str] = set()  # guardians with a synced student reached only by excluded links
        self._merged_into: dict[str, str] = {}  # guardian provider id → staff provider id (one account)
        self._guardian_role_of: dict[str, str] = {}  # staff provider id → guardian provider id
        self._separate: dict[str, str] = {}  # guardian provider id → staff provider id sharing the email
        for entries in index.values():
            if isinstance(entries, PackedIndex):  # the people's index: counted from its packed flags
                self.summary.managed.update(entries.managed_active())
                continue
            for entry in entries.values():
                if entry.managed_by_sync and entry.status == "active":
                    self.summary.managed[entry.kind] += 1

    # -- the whole roster, in dependency order ---------------------------------------------------

    def plan(self, records: Callable[[str], Iterable[Any]]) -> list[ArchiveCandidate]:
        """Plan a whole roster; ``records(collection)`` streams a snapshot collection (it is read more
        than once: a few passes gather what later decisions need, e.g. a section's teacher for its name)."""
        self.plan_people_phase(records)
        self.plan_enrollments(records("enrollments"))
        self.plan_guardian_links(records("guardian_links"))
        return self.archive_candidates()

    def plan_people_phase(self, records: Callable[[str], Iterable[Any]]) -> None:
        """Everything but enrollments and guardian links: schools, classrooms, people, guardians (and the
        passes they need). A partitioned Match plans the rest per partition (``matching.partition``)."""
        self.plan_schools(records("schools"))
        self.note_enrollments(records("enrollments"))
        self.note_people(records("people"))
        self.plan_classrooms(records("classrooms"))
        self.want_guardians_of(records("guardian_links"))
        self.note_guardians(records("guardians"))
        self.plan_people(records("people"))
        self.plan_guardians(records("guardians"))

    def pair_context(self, record: EnrollmentRecord | GuardianLinkRecord) -> dict[str, Any]:
        """What planning an enrollment or guardian link needs from the people phase: the directory ids its
        section and people resolve to (``_resolve``), which of them were skipped, and their names (for the
        report line) — a few ids, so a partition resolves references without the district's maps."""
        if isinstance(record, EnrollmentRecord):
            refs = (("classrooms", record.classroom), ("people", record.person))
        else:
            refs = (("people", record.guardian), ("people", record.student))
        ids: dict[str, dict[str, str]] = {}
        names: dict[str, str] = {}
        skipped: list[str] = []
        for collection, pid in refs:
            found = self._resolve(collection, pid)
            if found is not None:
                ids.setdefault(collection, {})[pid] = found
                if found in self._names:
                    names[found] = self._names[found]
            elif collection == "people" and pid in self._skipped_people:
                skipped.append(pid)
        return {"ids": ids, "names": names, "skipped": skipped}

    def take_pair_context(self, context: dict[str, Any]) -> None:
        """A partition learns one record's references (``pair_context``) before planning it."""
        for collection, ids in context.get("ids", {}).items():
            self._ids[collection].update(ids)
        self._names.update(context.get("names", {}))
        self._skipped_people.update(context.get("skipped", ()))

    def mark_seen(self, collection: str, provider_id: str) -> None:
        """A record the provider sent broken (counted elsewhere): not archived for being absent."""
        self._seen.setdefault(collection, set()).add(provider_id)

    @property
    def held_collections(self) -> set[str]:
        return set(self._held_collections)

    def hold_collections(self, collections: Iterable[str]) -> None:
        self._held_collections.update(collections)

    def emptied_school_maps(self) -> tuple[dict[str, str], dict[str, str]]:
        """The people and classrooms of the emptied schools: directory id → school, and people's provider
        id → school (what a partition needs to hold their enrollments and guardian links)."""
        emptied = set(self.summary.emptied_schools)
        school_of: dict[str, str] = {}
        people_pids: dict[str, str] = {}
        if not emptied:
            return school_of, people_pids
        for pid, e in self._index.get("people", {}).items():
            if e.parent_id in emptied and e.kind != Kind.GUARDIANS:
                school_of[e.id] = e.parent_id
                people_pids[pid] = e.parent_id
        for e in self._index.get("classrooms", {}).values():
            if e.parent_id in emptied:
                school_of[e.id] = e.parent_id
        return school_of, people_pids

    # -- the decision every record goes through ------------------------------------------------

    def _reconcile(
        self,
        kind: Kind,
        provider_id: str,
        fields: dict[str, Any],
        name: str,
        parent_id: str,
        entry: IndexEntry | None = None,
        linked_by: str = "",
    ) -> str:
        """Plan one record that belongs in the directory; return its directory id.

        ``entry`` is the existing account person matching found (``linked_by`` says how); otherwise the
        record's own provider link finds it, or it is new.
        """
        collection = COLLECTION_OF_KIND[kind]
        if entry is None:
            entry = self._index[collection].get(provider_id)
        digest = content_hash(fields)
        self._seen[collection].add(provider_id)
        record_id = entry.id if entry else synced_record_id(self.district_id, collection, self.provider, provider_id)
        if kind is Kind.CLASSROOMS or collection == "people":
            if len(self._names) < NAMES_KEPT:
                self._names[record_id] = fields.get("name") or name
        if kind is Kind.ENROLLMENTS:
            name = name or self._pair_name(fields.get("person"), "in", fields.get("classroom"))
        elif kind is Kind.GUARDIAN_LINKS:
            name = name or self._pair_name(fields.get("guardian"), "guardian of", fields.get("student"))
        clear = self._edits(kind, record_id, provider_id, name, fields, entry) if entry and entry.edited else ()
        action = ""
        if entry is None:
            op: WriteOp | None = "create"
        elif entry.status == "archived":
            op = "restore"
        elif linked_by or not entry.managed_by_sync:
            # An existing product record the sync takes over: matched now, or linked by the admin.
            op, action = "update", "linked"
            linked_by = linked_by or f"its {self.provider} id, stored on the product record"
        elif entry.content_hash != digest or entry.kind != kind or clear:
            op = "update"
        else:
            op = None
        if kind in _PER_SCHOOL:
            ids = fields.get("schools") if kind is not Kind.CLASSROOMS else [fields.get("school")]
            for school in ids or ():
                counts = self.summary.schools.setdefault(str(school), Counter())
                counts[_PER_SCHOOL[kind]] += 1
                counts["changed"] += op is not None
        if op is None:
            self.summary.counts[kind]["unchanged"] += 1
            return record_id
        record = DirectoryRecord(
            id=record_id,
            kind=kind,
            status="active",
            managed_by_sync=True,
            provider_ids={**(entry.provider_ids if entry else {}), self.provider: provider_id},
            fields=fields,
            content_hash=digest,
            parent_id=parent_id,
        )
        self._write(PlannedWrite(op, record, tuple(clear)))
        action = action or _ACTIONS[op]
        self.summary.counts[kind][action] += 1
        if self.summary.reconcile_caught is not None and not self.is_touched(collection, provider_id):
            self.summary.reconcile_caught[kind][action] += 1
        reason = f"matched by {linked_by}" if linked_by else ""
        details = line_details(kind, fields, self._school_names)
        self._line(PlanLine(kind, action, record_id, provider_id, name, reason, **details))
        return record_id

    def _pair_name(self, first: Any, word: str, second: Any) -> str:
        """``Ava Li in Algebra 1``; empty when either name is not kept."""
        one, two = self._names.get(str(first or "")), self._names.get(str(second or ""))
        return f"{one} {word} {two}" if one and two else ""

    def _edits(
        self, kind: Kind, record_id: str, provider_id: str, name: str, fields: dict[str, Any], entry: IndexEntry
    ) -> list[str]:
        """Weigh the product's edits of this record against the roster: keep them, or (contact details,
        when the settings say so) let the roster's value replace them. Returns the edits to clear."""
        differing = [f for f, d in sorted(entry.edited.items()) if f in fields and edit_digest(fields[f]) != d]
        overwrite = self.settings.update_edited_contact_details == "always"
        cleared = [f for f in differing if overwrite and f in CONTACT_FIELDS]
        kept = [f for f in differing if f not in cleared]
        if kept:
            self.summary.counts[kind]["edits_kept"] += len(kept)
            self.summary.findings.edits_kept += len(kept)
            self._line(
                PlanLine(
                    kind,
                    "edit_kept",
                    record_id,
                    provider_id,
                    name,
                    f"edited in the product, kept over the roster's value: {', '.join(kept)}",
                )
            )
        if cleared:
            self.summary.counts[kind]["edits_overwritten"] += len(cleared)
            self.summary.findings.edits_overwritten += len(cleared)
            self._line(
                PlanLine(
                    kind,
                    "edit_overwritten",
                    record_id,
                    provider_id,
                    name,
                    f"edited in the product, replaced by the roster's value (settings: update_edited_contact_details "
                    f"= always): {', '.join(cleared)}",
                )
            )
        return cleared

    def _skip(
        self,
        kind: Kind,
        provider_id: str,
        name: str,
        reason: str,
        action: str = "skipped",
        person: PersonRecord | None = None,
    ) -> None:
        self.summary.counts[kind]["skipped"] += 1
        details = roster_details(person, self._provider_school_names) if person is not None else {}
        self._line(PlanLine(kind, action, "", provider_id, name, reason, **details))

    def record_error(self, error: RecordError) -> None:
        """Count and pass on an error found while fetching or planning; the run goes on."""
        self.summary.counts[error.kind]["errors"] += 1
        self._held_collections.update(error.holds_archive)
        if error.provider_id:
            collection = COLLECTION_OF_KIND[error.kind]
            # A record the provider still has but sent broken is not archived for it.
            self._seen.setdefault(collection, set()).add(error.provider_id)
        self._error(error)

    def _resolve(self, collection: str, provider_id: str) -> str | None:
        """The directory id of a referenced record synced in this run; in a delta, also one already in
        the directory (a delta does not resend what did not change)."""
        found = self._ids[collection].get(provider_id)
        if found is None and self.delta:
            entry = self._index[collection].get(provider_id)
            if entry is not None and entry.status == "active":
                found = entry.id
        return found

    def record_deleted(self, deleted: DeletedRecord) -> None:
        """The provider says this record is gone: archive it (subject to the threshold)."""
        self._deleted.setdefault(COLLECTION_OF_KIND[deleted.kind], set()).add(deleted.provider_id)

    def _first_time(self, collection: str, record: RosterRecord, seen: set[str]) -> bool:
        provider_id = record.provider_id
        if provider_id in seen:
            self.record_error(
                RecordError(
                    kind=record.kind,
                    provider_id=provider_id,
                    reason=f"duplicate id {provider_id}: it appears more than once in the roster; the first was used",
                    sis_id=district_id_of(record.model_dump()),
                )
            )
            return False
        seen.add(provider_id)
        return True

    # -- passes that gather what planning needs ---------------------------------------------------

    def note_enrollments(self, enrollments: Iterable[EnrollmentRecord]) -> None:
        """Each section's first teacher (for its name and the self-check) and the students in a section."""
        self._noted_enrollments = True
        for enrollment in enrollments:
            if enrollment.role == "teacher":
                self._section_teachers.setdefault(enrollment.classroom, enrollment.person)
            else:
                self._enrolled_students.add(enrollment.person)

    def note_people(self, people: Iterable[PersonRecord]) -> None:
        """Teachers' names (classroom names), students who will be synced (which guardians are wanted),
        and the emails of synced teachers and staff (a guardian may be one of them)."""
        linked = bool(self._candidates)  # with no candidate, no key can be another account's too
        for person in people:
            if linked and person.provider_id in self._index["people"]:
                self._candidates.note_linked(self._account_keys(person), frozenset(person.roles))
            if not self._syncable(person):
                continue
            if Role.STUDENT in person.roles:
                self._syncable_students.add(person.provider_id)
            elif Role.TEACHER in person.roles or Role.STAFF in person.roles:
                if Role.TEACHER in person.roles:
                    self._teacher_names[person.provider_id] = _display_name(person)
                email = normal_email(person.email)
                if email:
                    self._staff_by_email.setdefault(
                        digest("email", email),
                        (
                            person.provider_id,
                            normal_name(person.given_name, person.family_name),
                            normal_phone(person.phone),
                        ),
                    )

    def _account_keys(self, person: PersonRecord) -> list[bytes]:
        """The match keys the account of a roster person linked in an earlier run holds, as the person's
        fields give them (the account's synced fields are theirs), of those ``_unique`` looks up for their
        roles: a teacher's, staff member's or guardian's email, a guardian's phone, a student's id the
        settings match by."""
        keys = []
        roles = set(person.roles)
        email = normal_email(person.email) if roles & {Role.TEACHER, Role.STAFF, Role.GUARDIAN} else ""
        if email:
            keys.append(digest("email", email))
        phone = normal_phone(person.phone) if Role.GUARDIAN in roles else ""
        if phone:
            keys.append(digest("sms", phone))
        id_field = self.settings.student_match_id.value
        if Role.STUDENT in roles and id_field != "provider_id":
            value = str(getattr(person, id_field, "") or "").strip()
            if value:
                keys.append(digest(id_field, value))
        return keys

    def want_guardians_of(self, links: Iterable[GuardianLinkRecord]) -> None:
        """First pass over guardian links: a guardian is synced when one of their students is, through a
        link of a contact type and relationship the settings include."""
        if not self.settings.guardians.manage:
            return
        for link in links:
            student_synced = link.student in self._syncable_students or self._resolve("people", link.student)
            if not student_synced:
                continue
            if self._link_included(link):
                self._guardians_wanted.add(link.guardian)
            else:
                self._excluded_links_of.add(link.guardian)

    def _link_included(self, link: GuardianLinkRecord) -> bool:
        wanted = self.settings.guardians
        types = {t.casefold() for t in wanted.contact_types}
        relationships = {r.casefold() for r in wanted.relationships}
        return (not types or link.contact_type.casefold() in types) and (
            not relationships or link.relationship.casefold() in relationships
        )

    def note_guardians(self, guardians: Iterable[PersonRecord]) -> None:
        """Count guardians' emails (an email two guardians share reaches neither alone) and decide which
        wanted guardians are a synced teacher or staff member: one account when name, email and phone
        agree (a phone missing on one side does not disagree), separate accounts otherwise."""
        linked = bool(self._candidates)
        for guardian in guardians:
            if linked and guardian.provider_id in self._index["people"]:
                self._candidates.note_linked(self._account_keys(guardian), frozenset(guardian.roles))
            email = normal_email(guardian.email)
            if not email:
                continue
            key = digest("email", email)
            self._guardian_email_count[key] += 1
            staff = self._staff_by_email.get(key)
            if staff is None or guardian.provider_id not in self._guardians_wanted:
                continue
            staff_id, staff_name, staff_phone = staff
            phone = normal_phone(guardian.phone)
            agree = staff_name == normal_name(guardian.given_name, guardian.family_name) and (
                not phone or not staff_phone or phone == staff_phone
            )
            if agree and staff_id not in self._guardian_role_of:
                self._merged_into[guardian.provider_id] = staff_id
                self._guardian_role_of[staff_id] = guardian.provider_id
            else:
                self._separate[guardian.provider_id] = staff_id

    # -- collections, in dependency order -------------------------------------------------------

    def _in_scope(self, school: SchoolRecord, entry: IndexEntry | None) -> bool:
        return not self._scope or school.provider_id in self._scope or bool(entry and entry.id in self._scope)

    def plan_schools(self, schools: Iterable[SchoolRecord]) -> None:
        """Schools are matched only through the provider id a product school carries (`rostersync schools
        match` stores it), and synced only when in the settings' scope."""
        seen: set[str] = set()
        findings = self.summary.findings
        for school in schools:
            if not self._first_time("schools", school, seen):
                continue
            entry = self._index["schools"].get(school.provider_id)
            self._provider_school_names[school.provider_id] = school.name
            if entry is None:
                findings.unmatched_provider_schools.append({"provider_id": school.provider_id, "name": school.name})
                self._skip(
                    Kind.SCHOOLS,
                    school.provider_id,
                    school.name,
                    f"no product school carries this {self.provider} id: match it (rostersync schools match) to "
                    "sync it; nothing of this school was written",
                )
                continue
            if not self._in_scope(school, entry):
                self._seen["schools"].add(school.provider_id)
                findings.out_of_scope_schools.append({"provider_id": school.provider_id, "name": school.name})
                self._skip(
                    Kind.SCHOOLS,
                    school.provider_id,
                    school.name,
                    "not in the schools in scope (settings: schools_in_scope); nothing of this school was written",
                )
                continue
            self._ids["schools"][school.provider_id] = self._reconcile(
                Kind.SCHOOLS, school.provider_id, school.synced_fields(), school.name, ""
            )
            self._school_names.setdefault(entry.id, school.name)
        findings.unlinked_product_schools = [
            {"id": school_id, "name": name} for school_id, name in sorted(self._product_schools.items())
        ]
        for provider_id, entry in self._index["schools"].items():
            if not self.delta and provider_id not in seen and entry.status == "active":
                self.record_error(
                    RecordError(
                        kind=Kind.SCHOOLS,
                        provider_id=provider_id,
                        reason=f"school {entry.id} is no longer shared by {self.provider}; schools are never "
                        "archived by sync: check the sharing rules, or archive it by hand",
                    )
                )

    def _classroom_name(self, section: ClassroomRecord) -> str:
        teacher = self._teacher_names.get(self._section_teachers.get(section.provider_id, ""), "")
        values = {
            "name": section.name,
            "course": section.course or section.name,
            "period": section.period,
            "teacher": teacher,
            "subject": section.subject,
            "grade": section.grade,
            "term": section.term,
            "section_number": section.sis_id,
        }
        name = render_name(self.settings.classrooms.name_template, values)
        return name or section.name

    def plan_classrooms(self, classrooms: Iterable[ClassroomRecord]) -> None:
        """Sections linked to a product classroom update it; the others become new classrooms, or are
        skipped, as the settings say. Names follow the settings' template."""
        seen: set[str] = set()
        rules = self.settings.classrooms
        findings = self.summary.findings
        for section in classrooms:
            if not self._first_time("classrooms", section, seen):
                continue
            school_id = self._resolve("schools", section.school)
            if school_id is None:
                self._skip(
                    Kind.CLASSROOMS,
                    section.provider_id,
                    section.name,
                    f"its school {section.school} is not matched to a product school, or not in scope",
                )
                continue
            entry = self._index["classrooms"].get(section.provider_id)
            relinked_by = ""
            if entry is None and self._rekey_classrooms is not None:
                entry, relinked_by = self._relink_classroom(section, school_id)
                if relinked_by == NEEDS_REVIEW:
                    continue
            if entry is None:
                if not rules.create_for_unlinked_sections:
                    findings.unlinked_sections["skip"] += 1
                    self._skip(
                        Kind.CLASSROOMS,
                        section.provider_id,
                        section.name,
                        "no product classroom is linked to this section and creating classrooms is off (settings: "
                        "classrooms.create_for_unlinked_sections); link one with rostersync classrooms match",
                    )
                    continue
                findings.unlinked_sections["create"] += 1
            elif entry.status == "archived" and entry.managed_by_sync and not rules.unarchive_reappearing:
                self._seen["classrooms"].add(section.provider_id)
                self._skip(
                    Kind.CLASSROOMS,
                    section.provider_id,
                    section.name,
                    "this classroom was archived and is back in the roster; it stays archived (settings: "
                    "classrooms.unarchive_reappearing is off)",
                )
                continue
            if self._noted_enrollments and not self.delta and section.provider_id not in self._section_teachers:
                findings.sections_without_teacher += 1
            fields = {**section.synced_fields(), "name": self._classroom_name(section), "school": school_id}
            self._ids["classrooms"][section.provider_id] = self._reconcile(
                Kind.CLASSROOMS, section.provider_id, fields, section.name, school_id, entry, relinked_by
            )

    def _syncable(self, person: PersonRecord) -> bool:
        if any(self._resolve("schools", s) for s in person.schools):
            return True
        return not person.schools and person.kind == Kind.STAFF

    def _person_fields(self, person: PersonRecord, school_ids: list[str]) -> dict[str, Any]:
        fields = {**person.synced_fields(), "schools": school_ids}
        phones = self.settings.phones
        phone_type = person.phone_type.strip().casefold()
        sms_types = {t.casefold() for t in phones.sms_phone_types}
        fields["sms_phone"] = person.phone if person.phone and ("any" in sms_types or phone_type in sms_types) else ""
        home_types = {t.casefold() for t in phones.home_phone_types}
        fields["home_phone"] = person.phone if person.phone and phone_type in home_types else ""
        if not self.settings.home_language_from_roster:
            fields.pop("home_language", None)
        return fields

    def plan_people(self, people: Iterable[PersonRecord]) -> None:
        """Students, teachers and staff: synced when one of their schools is matched and in scope.

        Staff the roster names no school for (district admins) belong to the district and are synced. A
        person without a provider link is first looked for among the product's accounts
        (``matching.people``).
        """
        seen: set[str] = set()
        for person in people:
            if not self._first_time("people", person, seen):
                continue
            school_ids = [i for i in (self._resolve("schools", s) for s in person.schools) if i]
            district_staff = not person.schools and person.kind == Kind.STAFF
            name = _display_name(person)
            if not school_ids and not district_staff:
                self._skipped_people.add(person.provider_id)
                reason = (
                    "none of their schools is matched to a product school, or in scope"
                    if person.schools
                    else "the roster names no school for them"
                )
                self._skip(person.kind, person.provider_id, name, reason, person=person)
                continue
            fields = self._person_fields(person, school_ids)
            guardian_id = self._guardian_role_of.get(person.provider_id)
            if guardian_id:
                fields["roles"] = [*fields["roles"], Role.GUARDIAN.value]
                fields["guardian_provider_id"] = guardian_id
            entry, how, duplicate = None, "", None
            if person.provider_id not in self._index["people"]:
                entry, how, duplicate = self._match_person(person, school_ids, fields)
                if how == AMBIGUOUS:
                    self._skipped_people.add(person.provider_id)
                    continue
                if entry is None and self._rekey_people is not None:
                    entry, how = self._relink_person(person, name)
                    if how == NEEDS_REVIEW:
                        continue
                    duplicate = None
            record_id = self._reconcile(
                person.kind, person.provider_id, fields, name, school_ids[0] if school_ids else "", entry, how
            )
            self._ids["people"][person.provider_id] = record_id
            if person.kind == Kind.STUDENTS and self._noted_enrollments and not self.delta:
                if person.provider_id not in self._enrolled_students:
                    self.summary.findings.students_without_section += 1
            if duplicate is not None:
                self.summary.findings.duplicate_candidates += 1
                self._line(
                    PlanLine(
                        person.kind,
                        "possible_duplicate",
                        record_id,
                        person.provider_id,
                        name,
                        f"same name and date of birth as product student {duplicate.entry.id} in the same school; "
                        "not merged: if they are the same child, link them before the first sync "
                        f"(rostersync people link --confirm {duplicate.entry.id}={person.provider_id})",
                    )
                )

    def _match_person(
        self, person: PersonRecord, school_ids: list[str], fields: dict[str, Any]
    ) -> tuple[IndexEntry | None, str, Candidate | None]:
        """Look for the product account of a student, teacher or staff member without a provider link.

        Returns (the account, how it matched, a name+birth-date candidate for review); ``how`` is
        ``AMBIGUOUS`` when several accounts match (the person is then skipped and reported).
        """
        if person.kind == Kind.STUDENTS:
            id_field = self.settings.student_match_id.value
            value = str(getattr(person, id_field, "") or "").strip() if id_field != "provider_id" else ""
            if value:
                found = self._unique(person, digest(id_field, value), (Role.STUDENT,), id_field)
                if found is not None:
                    return found
            name_key = normal_name(person.given_name, person.family_name)
            if name_key and person.birth_date:
                for school in school_ids:
                    candidates = self._candidates.find(
                        digest("namedob", school, name_key, person.birth_date), (Role.STUDENT,)
                    )
                    if candidates:
                        return None, "", candidates[0]
            return None, "", None
        email = normal_email(person.email)
        if email:
            found = self._unique(person, digest("email", email), (Role.TEACHER, Role.STAFF), "email")
            if found is not None:
                return found
        return None, "", None

    def _unique(
        self, person: PersonRecord, key: bytes, roles: tuple[Role, ...], how: str
    ) -> tuple[IndexEntry | None, str, None] | None:
        """The one account under ``key``, unclaimed, with no other account under it that is already another
        roster person's (``CandidateIndex.claimed_under``); (None, AMBIGUOUS, None) when there are several
        (reported and skipped); None when there is none."""
        found = self._candidates.find(key, roles)
        taken = self._candidates.claimed_under(key, roles)
        if len(found) == 1 and not taken:
            self._candidates.claimed.add(found[0].entry.id)
            return found[0].entry, how.replace("_", " "), None
        if found or taken:
            taken_note = "" if len(found) > 1 else " (one of them already matched another roster person)"
            self.summary.findings.ambiguous_matches += 1
            self._skip(
                person.kind,
                person.provider_id,
                _display_name(person),
                f"{AMBIGUOUS} by {how.replace('_', ' ')}{taken_note}: link the right one by hand (rostersync people "
                f"link --confirm PRODUCT_ID={person.provider_id}); nothing was written for them",
                action="ambiguous",
            )
            return None, AMBIGUOUS, None
        return None

    def plan_guardians(self, guardians: Iterable[PersonRecord]) -> None:
        seen = self._seen_people_guard()
        findings = self.summary.findings
        for guardian in guardians:
            if not self._first_time("people", guardian, seen):
                continue
            name = _display_name(guardian)
            reason = ""
            if not self.settings.guardians.manage:
                reason = GUARDIANS_OFF
            elif guardian.provider_id not in self._guardians_wanted:
                reason = LINKS_EXCLUDED if guardian.provider_id in self._excluded_links_of else NO_STUDENT_SYNCED
            if reason:
                self._skipped_people.add(guardian.provider_id)
                findings.guardians_skipped[reason] += 1
                self._skip(guardian.kind, guardian.provider_id, name, reason)
                continue
            staff_id = self._merged_into.get(guardian.provider_id)
            if staff_id is not None and staff_id in self._ids["people"]:
                # One person, two roles: the guardian is the teacher's (or staff member's) account.
                self._ids["people"][guardian.provider_id] = self._ids["people"][staff_id]
                self._seen["people"].add(guardian.provider_id)
                findings.multi_role["merged"] += 1
                self._line(
                    PlanLine(
                        guardian.kind,
                        "merged",
                        self._ids["people"][staff_id],
                        guardian.provider_id,
                        name,
                        f"one account with {staff_id}: name, email and phone agree, so the account has both roles",
                    )
                )
                continue
            fields = self._person_fields(guardian, [])
            email = normal_email(guardian.email)
            email_key = digest("email", email) if email else b""
            # An email is the guardian's own when no other guardian, nor a teacher with a separate
            # account, has it: the product invites and logs people in by it.
            unique_email = (
                bool(email)
                and self._guardian_email_count[email_key] == 1
                and guardian.provider_id not in self._separate
            )
            sms = normal_phone(fields["sms_phone"])
            if not unique_email and not sms:
                self._skipped_people.add(guardian.provider_id)
                findings.guardians_skipped[NO_REACH] += 1
                self._skip(guardian.kind, guardian.provider_id, name, NO_REACH)
                continue
            entry, how = None, ""
            if guardian.provider_id not in self._index["people"]:
                found = None
                if unique_email:
                    found = self._unique(guardian, email_key, (Role.GUARDIAN,), "email")
                if found is None and sms:
                    found = self._unique(guardian, digest("sms", sms), (Role.GUARDIAN,), "SMS phone")
                if found is not None:
                    entry, how, _ = found
                    if how == AMBIGUOUS:
                        self._skipped_people.add(guardian.provider_id)
                        findings.guardians_skipped[AMBIGUOUS] += 1
                        continue
                if entry is None and self._rekey_people is not None:
                    entry, how = self._relink_person(guardian, name)
                    if how == NEEDS_REVIEW:
                        continue
            record_id = self._reconcile(guardian.kind, guardian.provider_id, fields, name, "", entry, how)
            self._ids["people"][guardian.provider_id] = record_id
            if guardian.provider_id in self._separate:
                findings.multi_role["separate"] += 1
                self._line(
                    PlanLine(
                        guardian.kind,
                        "separate_account",
                        record_id,
                        guardian.provider_id,
                        name,
                        f"shares an email with {self._separate[guardian.provider_id]} but their names or phones "
                        "differ: kept as a separate account",
                    )
                )

    def _seen_people_guard(self) -> set[str]:
        # Guardians share the people collection: a guardian id that is also a student id is a duplicate.
        return set(self._ids["people"]) | self._skipped_people

    def plan_enrollments(self, enrollments: Iterable[EnrollmentRecord]) -> None:
        seen: set[str] = set()
        for enrollment in enrollments:
            if not self._first_time("enrollments", enrollment, seen):
                continue
            classroom_id = self._resolve("classrooms", enrollment.classroom)
            person_id = self._resolve("people", enrollment.person)
            if classroom_id is None:
                self._skip(Kind.ENROLLMENTS, enrollment.provider_id, "", "its section is not synced")
                continue
            if person_id is None:
                if enrollment.person in self._skipped_people:
                    self._skip(Kind.ENROLLMENTS, enrollment.provider_id, "", f"{enrollment.role} is not synced")
                elif not self.complete:
                    self._skip(Kind.ENROLLMENTS, enrollment.provider_id, "", _UNREAD)
                else:
                    self.record_error(
                        RecordError(
                            kind=Kind.ENROLLMENTS,
                            provider_id=enrollment.provider_id,
                            reason=f"section {enrollment.classroom} names {enrollment.role} {enrollment.person}, "
                            "who is not in the roster",
                        )
                    )
                continue
            fields = {"classroom": classroom_id, "person": person_id, "role": enrollment.role}
            entry, how = self._relinked_part("enrollments", enrollment.provider_id, classroom_id, person_id)
            self._reconcile(Kind.ENROLLMENTS, enrollment.provider_id, fields, "", classroom_id, entry, how)

    def plan_guardian_links(self, links: Iterable[GuardianLinkRecord]) -> None:
        seen: set[str] = set()
        for link in links:
            if not self._first_time("guardian_links", link, seen):
                continue
            if not self.settings.guardians.manage:
                self._skip(Kind.GUARDIAN_LINKS, link.provider_id, "", GUARDIANS_OFF)
                continue
            if not self._link_included(link):
                self._skip(
                    Kind.GUARDIAN_LINKS,
                    link.provider_id,
                    "",
                    f"contact type {link.contact_type or '(none)'} / relationship {link.relationship or '(none)'} "
                    "is left out by the settings (guardians.contact_types, guardians.relationships)",
                )
                continue
            guardian_id = self._resolve("people", link.guardian)
            student_id = self._resolve("people", link.student)
            if guardian_id is None or student_id is None:
                missing = link.guardian if guardian_id is None else link.student
                if missing in self._skipped_people:
                    self._skip(Kind.GUARDIAN_LINKS, link.provider_id, "", "the guardian or student is not synced")
                elif not self.complete:
                    self._skip(Kind.GUARDIAN_LINKS, link.provider_id, "", _UNREAD)
                else:
                    who = "guardian" if guardian_id is None else "student"
                    self.record_error(
                        RecordError(
                            kind=Kind.GUARDIAN_LINKS,
                            provider_id=link.provider_id,
                            reason=f"contact {link.guardian} is linked to {who} {missing}, who is not in the roster",
                        )
                    )
                continue
            fields = {
                "guardian": guardian_id,
                "student": student_id,
                "relationship": link.relationship,
                "contact_type": link.contact_type,
            }
            entry, how = self._relinked_part("guardian_links", link.provider_id, guardian_id, student_id)
            self._reconcile(Kind.GUARDIAN_LINKS, link.provider_id, fields, "", student_id, entry, how)

    # -- a provider re-key (``matching.rekey``) ------------------------------------------------------

    def _needs_review(self, kind: Kind, provider_id: str, name: str, why: str, holds: list[str]) -> None:
        self.summary.rekey["needs_review"] += 1
        self._held_collections.update(holds)
        self._skip(
            kind,
            provider_id,
            name,
            f"needs review: the provider changed its ids (a re-key) and {why}; nothing was written for it and "
            "nothing of its kind is archived until it is resolved (link it by hand: rostersync people link, "
            "rostersync classrooms match)",
        )

    def _relinked(self, collection: str, entry: IndexEntry) -> str:
        old = entry.provider_ids.get(self.provider, "")
        self._seen[collection].add(old)
        self._rekey_claimed.add(entry.id)
        self.summary.rekey["relinked"] += 1
        return f"its district ids: the provider re-keyed it (its old id was {old})"

    def _relink_person(self, person: PersonRecord, name: str) -> tuple[IndexEntry | None, str]:
        """The record about to be archived that a re-keyed person is, by their district ids."""
        assert self._rekey_people is not None
        keys = [digest(n, v) for n in STUDENT_IDS if (v := str(getattr(person, n, "") or "").strip())]
        email = normal_email(person.email)
        if email and Role.STUDENT not in person.roles:
            keys.append(digest("email", email))
        if Role.GUARDIAN in person.roles and (sms := normal_phone(person.phone)):
            keys.append(digest("sms", sms))
        found: dict[str, IndexEntry] = {}
        for key in keys:
            for candidate in self._rekey_people.find(key, person.roles):
                if candidate.entry.id not in self._rekey_claimed:
                    found[candidate.entry.id] = candidate.entry
        if len(found) == 1:
            entry = next(iter(found.values()))
            return entry, self._relinked("people", entry)
        self._skipped_people.add(person.provider_id)
        why = (
            "several existing records carry its district ids"
            if found
            else "no existing record carries its district ids"
        )
        self._needs_review(person.kind, person.provider_id, name, why, ["people", "enrollments", "guardian_links"])
        return None, NEEDS_REVIEW

    def _relink_classroom(self, section: ClassroomRecord, school_id: str) -> tuple[IndexEntry | None, str]:
        assert self._rekey_classrooms is not None
        key = classroom_key(school_id, section.sis_id, section.name)
        found = [e for e in self._rekey_classrooms.get(key, []) if e.id not in self._rekey_claimed]
        if len(found) == 1:
            return found[0], self._relinked("classrooms", found[0])
        why = "several existing classrooms match it" if found else "no existing classroom has its section number"
        self._needs_review(Kind.CLASSROOMS, section.provider_id, section.name, why, ["classrooms", "enrollments"])
        return None, NEEDS_REVIEW

    def _relinked_part(
        self, collection: str, provider_id: str, first: str, second: str
    ) -> tuple[IndexEntry | None, str]:
        """In a re-key, the existing enrollment (classroom, person) or guardian link (guardian, student)
        a new id stands for, found through the records its old id was made of."""
        if self._rekey_people is None and self._rekey_classrooms is None:
            return None, ""
        if provider_id in self._index[collection]:
            return None, ""
        if self._rekey_parts is None:
            self._rekey_parts = {"enrollments": {}, "guardian_links": {}}
            people, classrooms = self._index["people"], self._index["classrooms"]
            for name, parents in (("enrollments", classrooms), ("guardian_links", people)):
                for pid, entry in self._index[name].items():
                    left, _, right = pid.partition(":")
                    a, b = parents.get(left), people.get(right)
                    if a is not None and b is not None:
                        self._rekey_parts[name].setdefault((a.id, b.id), (pid, entry))
        hit = self._rekey_parts[collection].get((first, second))
        if hit is None or hit[1].id in self._rekey_claimed:
            return None, ""
        return hit[1], self._relinked(collection, hit[1])

    # -- what a change feed named ----------------------------------------------------------------

    def is_touched(self, collection: str, provider_id: str) -> bool:
        """Whether tonight's changes named this record, the person or section it hangs from, or (a guardian)
        one of their students; a classroom also through its teacher (its name carries theirs)."""
        people = self._touched.get("people", set())
        sections = self._touched.get("classrooms", set())
        if collection == "people":
            if self._guardians_of_touched is None:
                self._guardians_of_touched = {
                    pid.partition(":")[0]
                    for pid in self._index.get("guardian_links", {})
                    if pid.partition(":")[2] in people
                }
            return provider_id in people or provider_id in self._guardians_of_touched
        if collection == "classrooms":
            return provider_id in sections or self._section_teachers.get(provider_id, "") in people
        if collection in ("enrollments", "guardian_links"):
            first, _, second = provider_id.partition(":")
            return (first in sections or first in people) or second in people
        return False

    # -- deprovisioning -------------------------------------------------------------------------

    def _cascade_deletions(self) -> None:
        """In a delta, the enrollments and guardian links of a person or classroom the provider deleted go
        with them: the provider has no deletion of their own to send (``<section>:<person>``,
        ``<guardian>:<student>``)."""
        people = self._deleted.get("people", set())
        classrooms = self._deleted.get("classrooms", set())
        if not people and not classrooms:
            return
        for provider_id in self._index["enrollments"]:
            classroom, _, person = provider_id.partition(":")
            if classroom in classrooms or person in people:
                self._deleted.setdefault("enrollments", set()).add(provider_id)
        for provider_id in self._index["guardian_links"]:
            guardian, _, student = provider_id.partition(":")
            if guardian in people or student in people:
                self._deleted.setdefault("guardian_links", set()).add(provider_id)

    def archive_candidates(self) -> list[ArchiveCandidate]:
        """Sync-managed, active records no longer in the roster: managed ids minus snapshot ids (a full
        snapshot), plus those the provider marked deleted (a delta mentions only those).

        Schools are never archived by sync (they belong to the product); they are reported instead.
        """
        candidates: list[ArchiveCandidate] = []
        self.summary.archive_candidates.clear()
        if self.delta:
            self._cascade_deletions()
        students_of: Counter[str] = Counter()
        leaving_from: Counter[str] = Counter()
        for collection, entries in self._index.items():
            if collection == "schools":
                continue
            seen = self._seen.get(collection, set())
            deleted = self._deleted.get(collection, set())
            for provider_id, entry in entries.items():
                gone = provider_id in deleted or (not self.delta and provider_id not in seen)
                if not (entry.managed_by_sync and entry.status == "active"):
                    continue
                if entry.kind == Kind.STUDENTS:
                    students_of[entry.parent_id] += 1
                if gone and self.touched_only and provider_id not in deleted:
                    if not self.is_touched(collection, provider_id):
                        # Absent, but no change named it: the next full reconcile decides.
                        self.summary.untouched_absent[entry.kind] += 1
                        gone = False
                if gone:
                    candidates.append(ArchiveCandidate(entry.kind, entry.id, provider_id))
                    self.summary.archive_candidates[entry.kind] += 1
                    if self.summary.reconcile_caught is not None and not self.is_touched(collection, provider_id):
                        self.summary.reconcile_caught[entry.kind]["to_archive"] += 1
                    if entry.kind == Kind.STUDENTS:
                        leaving_from[entry.parent_id] += 1
        # A roster that takes every student of a school away is far likelier a broken export than a
        # closed school: nothing of that school is archived, whatever the district-wide share.
        if self.emptied_school_of is None:
            self.summary.emptied_schools = {
                school: count
                for school, count in leaving_from.items()
                if school and count == students_of[school] and count >= EMPTIED_SCHOOL_MIN_STUDENTS
            }
        if self.summary.emptied_schools:
            candidates = self._hold_emptied_schools(candidates)
        if self.pairs_elsewhere and self.summary.emptied_schools:
            # Guardians reached only through an emptied school's links: the links are in the partitions.
            self.deferred_guardians = [c for c in candidates if c.kind == Kind.GUARDIANS]
            candidates = [c for c in candidates if c.kind != Kind.GUARDIANS]
        if self._held_collections:
            candidates = self._hold_unreadable(candidates)
        return candidates

    def _hold_unreadable(self, candidates: list[ArchiveCandidate]) -> list[ArchiveCandidate]:
        """Records of a collection the roster could not be read whole for (a corrupted id, rows a broken
        file swallowed) may still be in the roster: none is archived; each is a ``would_archive`` line."""
        kept: list[ArchiveCandidate] = []
        for candidate in candidates:
            if COLLECTION_OF_KIND[candidate.kind] not in self._held_collections:
                kept.append(candidate)
                continue
            self.summary.held_unreadable[candidate.kind.value] = (
                self.summary.held_unreadable.get(candidate.kind.value, 0) + 1
            )
            self._hold(candidate, UNREADABLE_HELD)
        return kept

    def _hold(self, candidate: ArchiveCandidate, reason: str) -> None:
        """Keep an archive candidate: it leaves the archive count and becomes a ``would_archive`` line."""
        self.summary.archive_candidates[candidate.kind] -= 1
        self._line(PlanLine(candidate.kind, "would_archive", candidate.id, candidate.provider_id, "", reason))

    def _hold_emptied_schools(self, candidates: list[ArchiveCandidate]) -> list[ArchiveCandidate]:
        """Take everything of an emptied school out of the archive candidates: its people (students,
        teachers, staff whose school it is), its classrooms, their enrollments, the guardian links of its
        students and the guardians reached only through them. Each held record is a ``would_archive``
        line naming the school; ``summary.held_schools`` counts them per school and kind."""
        emptied = set(self.summary.emptied_schools)
        entries = {c: {e.id: (pid, e) for pid, e in es.items()} for c, es in self._index.items()}
        # directory id → the emptied school it belongs to; provider id of a held person → school
        if self.emptied_school_of is not None and self.emptied_people_pids is not None:
            school_of, people_pids = dict(self.emptied_school_of), self.emptied_people_pids
        else:
            school_of, people_pids = self.emptied_school_maps()
        for record_id, (pid, e) in entries.get("enrollments", {}).items():
            person = pid.partition(":")[2]
            school = school_of.get(e.parent_id) or people_pids.get(person)
            if school:
                school_of[record_id] = school
        guardian_school: dict[str, str] = {}
        for record_id, (pid, e) in entries.get("guardian_links", {}).items():
            guardian, _, student = pid.partition(":")
            school = school_of.get(e.parent_id) or people_pids.get(student)
            if school:
                school_of[record_id] = school
                guardian_school.setdefault(guardian, school)
        self.guardian_school = guardian_school
        for record_id, (pid, e) in entries.get("people", {}).items():
            if e.kind == Kind.GUARDIANS and pid in guardian_school:
                school_of.setdefault(record_id, guardian_school[pid])
        # A guardian who also has a child in a school still in the roster keeps their links there; only
        # absent guardians reach this point, so holding them loses nothing.
        kept: list[ArchiveCandidate] = []
        held: dict[str, Counter[str]] = {school: Counter() for school in emptied}
        for candidate in candidates:
            school = school_of.get(candidate.id)
            if school is None:
                kept.append(candidate)
                continue
            held[school][candidate.kind.value] += 1
            self._hold(candidate, emptied_school_reason(self._school_label(school)))
        self.summary.held_schools = {
            school: {"name": self._school_names.get(school, ""), "held": dict(sorted(counts.items()))}
            for school, counts in sorted(held.items())
        }
        return kept

    def _school_label(self, school_id: str) -> str:
        return school_label(school_id, self._school_names.get(school_id, ""))
