"""OneRoster 1.1 objects (REST JSON shape) to canonical records, shared by the REST and CSV providers.

Both OneRoster providers hand :func:`map_roster` a ``collection(name)`` callable that returns the
objects of one collection as REST-shaped dicts (``sourcedId``, ``status``, ``dateLastModified``,
references as ``{"sourcedId": …, "type": …}`` GUIDRefs or lists of them). The CSV provider converts
its rows to that shape first, so one mapping serves both.

Decisions where the specification leaves room:

- ``enabledUser: false`` only means the user may not log in to systems; they are still in the roster
  (a student whose login is disabled still has guardians to reach), so they are synced like anyone
  else. Only ``status: tobedeleted`` removes a record.
- Orgs of type ``school`` become schools; districts, states, departments and other orgs are not
  schools and are skipped silently, and a user's reference to one is not a school of theirs.
- Guardian links come from ``agents`` on the guardian (parent, guardian, relative) and on the student;
  a link named from both sides is yielded once. A student's agent who turns out not to be a guardian
  (a teacher, another student) is not a guardian link.
- ``sms`` is preferred as the phone (``phone_type`` "Cell": a number that takes texts), else ``phone``.
- Grades (CEDS codes: ``KG``, ``01`` … ``13``, ``PK``, …) are named as Clever names them
  (``Kindergarten``, ``1`` … ``13``, ``PreKindergarten``, …), so a district's grades read the same from
  either provider; other values pass through.
- In a full roster a reference to an id the roster does not hold is reported per record: a class's
  school or an enrollment's class or user (the record is skipped), a class's course or term or a
  user's org (the record is kept without it, and the report says so). A delta names only what
  changed, so its references are not checked; nor are references into a collection the provider
  did not send at all (no courses file, no orgs endpoint).
- Users and enrollments are streamed; the ids seen so far are kept (to catch duplicates and check
  references), and so are guardians' roles and the guardian links, to join the two directions.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, Literal

from pydantic import ValidationError

from rostersync.domain.ids import id_problem
from rostersync.domain.records import (
    ClassroomRecord,
    DeletedRecord,
    EnrollmentRecord,
    GuardianLinkRecord,
    Kind,
    PersonRecord,
    RecordError,
    Role,
    SchoolRecord,
    SnapshotItem,
    district_id_of,
    kind_of_roles,
    unclean_id_error,
)
from rostersync.providers.base import FetchOutcome, iso_date

logger = logging.getLogger(__name__)

PROVIDER = "oneroster"
COLLECTIONS = ("orgs", "academicSessions", "courses", "classes", "users", "enrollments", "demographics")

# OneRoster 1.1 user roles, plus the 1.2 additions, to the product's roles.
USER_ROLES = {
    "student": Role.STUDENT,
    "teacher": Role.TEACHER,
    "administrator": Role.STAFF,
    "aide": Role.STAFF,
    "proctor": Role.STAFF,
    # OneRoster 1.2
    "districtadministrator": Role.STAFF,
    "siteadministrator": Role.STAFF,
    "systemadministrator": Role.STAFF,
    "principal": Role.STAFF,
    "counselor": Role.STAFF,
    "parent": Role.GUARDIAN,
    "guardian": Role.GUARDIAN,
    "relative": Role.GUARDIAN,
}
ENROLLMENT_ROLES: dict[str, Literal["student", "teacher"]] = {"student": "student", "teacher": "teacher"}
# A guardian's role as the relationship of their links, one string each: the mapping keeps every
# guardian's until the users are mapped (NYC: 2 M guardians).
_RELATIONSHIPS = {name: name.capitalize() for name, role in USER_ROLES.items() if role is Role.GUARDIAN}

# ``userIds`` entries are tagged by a free-text type; these spellings (lower case, letters and digits
# only) name the identifiers the directory keeps.
_STUDENT_NUMBER_TYPES = {"studentnumber", "studentid", "localid", "localstudentid", "studentno"}
_STATE_ID_TYPES = {"stateid", "state", "statestudentid", "ssid", "sasid", "stateidentifier"}
_TEACHER_NUMBER_TYPES = {"teachernumber", "teacherid", "staffid", "staffnumber", "employeeid"}


def map_roster(collection: Callable[[str], Iterable[dict[str, Any]]], outcome: FetchOutcome) -> Iterator[SnapshotItem]:
    """Stream a OneRoster roster as canonical records, record errors and deletions.

    Parameters
    ----------
    collection
        Returns the objects of one of :data:`COLLECTIONS` (REST-shaped dicts), empty when the
        provider has none. Called once per name, except that nothing stops a caller's callable from
        being re-entrant; small collections (academicSessions, courses, demographics) are read into
        lookups first, users and enrollments are streamed.
    outcome
        ``outcome.delta`` says the provider sent only what changed: references are then not checked
        against the collections (they may point at records sent before).

    Yields
    ------
    SchoolRecord, ClassroomRecord, PersonRecord, GuardianLinkRecord, EnrollmentRecord, RecordError,
    DeletedRecord. Never raises for a bad record: each becomes a ``RecordError`` with its reason.
    """
    mapper = _RosterMapper(check_references=not outcome.delta)
    terms = _titles(collection("academicSessions"), "academicSessions")
    courses = _titles(collection("courses"), "courses")
    yield from mapper.orgs(collection("orgs"))
    yield from mapper.classes(collection("classes"), courses=courses, terms=terms)
    del courses, terms
    birth_dates = _birth_dates(collection("demographics"))
    yield from mapper.users(collection("users"), birth_dates=birth_dates)
    del birth_dates
    yield from mapper.enrollments(collection("enrollments"))


class _RosterMapper:
    """What one mapping run remembers between collections: the ids it has seen and the org types."""

    def __init__(self, check_references: bool) -> None:
        self.check_references = check_references
        self.org_types: dict[str, str] = {}
        self.classes_seen: set[str] = set()
        self.users_seen: set[str] = set()
        # Guardian id → relationship (their OneRoster role), to name links found on the student's side.
        self.guardian_roles: dict[str, str] = {}
        self.links_yielded: set[str] = set()
        # Links a student named before their guardian was read: ``guardian:student``.
        self.links_pending: set[str] = set()

    # -- orgs ------------------------------------------------------------------------------------

    def orgs(self, objects: Iterable[Any]) -> Iterator[SnapshotItem]:
        seen: set[str] = set()
        skipped = 0
        for entry in _unique(objects, "org", seen, lambda _obj: Kind.SCHOOLS):
            if isinstance(entry, RecordError):
                yield entry
                continue
            org_id, obj = entry
            org_type = _text(obj.get("type")).strip()
            self.org_types[org_id] = org_type.lower()
            if org_type and org_type.lower() != "school":
                skipped += 1
                continue
            if _deleted(obj):
                yield DeletedRecord(kind=Kind.SCHOOLS, provider_id=org_id)
            elif not org_type:
                yield RecordError(
                    kind=Kind.SCHOOLS,
                    provider_id=org_id,
                    reason="org has no type, so it is not known to be a school; skipped",
                    sis_id=raw_district_id("org", obj),
                )
            else:
                yield from _mapped(Kind.SCHOOLS, org_id, "org", obj, partial(_school, org_id, obj))
        if skipped:
            logger.info("Skipped %d OneRoster orgs that are not schools (districts, departments, …)", skipped)

    # -- classes ---------------------------------------------------------------------------------

    def classes(self, objects: Iterable[Any], courses: dict[str, str], terms: dict[str, str]) -> Iterator[SnapshotItem]:
        for entry in _unique(objects, "class", self.classes_seen, lambda _obj: Kind.CLASSROOMS):
            if isinstance(entry, RecordError):
                yield entry
                continue
            class_id, obj = entry
            if _deleted(obj):
                yield DeletedRecord(kind=Kind.CLASSROOMS, provider_id=class_id)
                continue
            yield from _mapped(
                Kind.CLASSROOMS, class_id, "class", obj, partial(self._classroom, class_id, obj, courses, terms)
            )

    def _classroom(
        self, class_id: str, obj: dict[str, Any], courses: dict[str, str], terms: dict[str, str]
    ) -> list[SnapshotItem]:
        ids = _class_ids(obj)
        sis_id = district_id_of(ids)
        school = _ref_id(obj.get("school"))
        if not school:
            reason = "class has no school, so it cannot become a classroom"
            return [_error(Kind.CLASSROOMS, class_id, reason, sis_id)]
        if self.check_references and self.org_types and self.org_types.get(school) != "school":
            known = "is not a school" if school in self.org_types else "is not in the roster's orgs"
            return [_error(Kind.CLASSROOMS, class_id, f"class names school {school}, which {known}", sis_id)]
        items: list[SnapshotItem] = []
        course_id = _ref_id(obj.get("course"))
        if course_id and course_id not in courses and self.check_references and courses:
            items.append(
                _error(
                    Kind.CLASSROOMS,
                    class_id,
                    f"class names course {course_id}, which is not in the roster; synced without a course",
                    sis_id,
                )
            )
        term_ids = _ref_ids(obj.get("terms"))
        missing_terms = [term for term in term_ids if term not in terms]
        if missing_terms and self.check_references and terms:
            items.append(
                _error(
                    Kind.CLASSROOMS,
                    class_id,
                    f"class names term {', '.join(missing_terms)}, which is not in the roster's academic "
                    "sessions; synced without it",
                    sis_id,
                )
            )
        items.insert(
            0,
            ClassroomRecord(
                provider=PROVIDER,
                provider_id=class_id,
                school=school,
                name=_text(obj.get("title")),
                period=", ".join(_texts(obj.get("periods"))),
                grade=", ".join(_grade(grade) for grade in _texts(obj.get("grades"))),
                subject=", ".join(_texts(obj.get("subjects"))),
                course=courses.get(course_id, ""),
                term=", ".join(terms[term] for term in term_ids if terms.get(term)),
                sis_id=ids["sis_id"],
            ),
        )
        return items

    # -- users -----------------------------------------------------------------------------------

    def users(self, objects: Iterable[Any], birth_dates: dict[str, str]) -> Iterator[SnapshotItem]:
        records = errors = 0
        for entry in _unique(objects, "user", self.users_seen, _user_kind):
            if isinstance(entry, RecordError):
                errors += 1
                yield entry
                continue
            user_id, obj = entry
            roles, unknown = _user_roles(obj)
            if _deleted(obj):
                kind = kind_of_roles(roles) if roles else Kind.STAFF
                yield DeletedRecord(kind=kind, provider_id=user_id)
                continue
            if not roles:
                errors += 1
                reason = (
                    f"user role {', '.join(repr(role) for role in unknown)} is not one rostersync syncs"
                    if unknown
                    else "user has no role"
                )
                yield _error(Kind.STAFF, user_id, reason, raw_district_id("user", obj))
                continue
            build = partial(self._person, user_id, obj, roles, birth_dates)
            for item in _mapped(kind_of_roles(roles), user_id, "user", obj, build):
                errors += isinstance(item, RecordError)
                records += not isinstance(item, RecordError)
                yield item
        yield from self._pending_links()
        logger.info("Mapped OneRoster users: %d records, %d record errors", records, errors)

    def _person(
        self, user_id: str, obj: dict[str, Any], roles: list[Role], birth_dates: dict[str, str]
    ) -> list[SnapshotItem]:
        items: list[SnapshotItem] = []
        ids = _person_ids(obj, roles)
        schools: list[str] = []
        missing_orgs: list[str] = []
        # Guardians' schools follow their students, as with every provider: their orgs are not read.
        guardian_only = roles == [Role.GUARDIAN]
        for org in [] if guardian_only else _user_orgs(obj):
            org_type = self.org_types.get(org)
            if org_type == "school" or (org_type is None and not (self.check_references and self.org_types)):
                schools.append(org)
            elif org_type is None:
                missing_orgs.append(org)
        if missing_orgs:
            items.append(
                _error(
                    kind_of_roles(roles),
                    user_id,
                    f"user names org {', '.join(missing_orgs)}, which is not in the roster's orgs"
                    + ("; synced with their other schools" if schools else "; they have no school in the roster"),
                    district_id_of(ids),
                )
            )
            if not schools:
                return items
        sms, phone = _text(obj.get("sms")).strip(), _text(obj.get("phone")).strip()
        grades = _texts(obj.get("grades"))
        person = PersonRecord(
            provider=PROVIDER,
            provider_id=user_id,
            roles=roles,
            given_name=_text(obj.get("givenName")),
            middle_name=_text(obj.get("middleName")),
            family_name=_text(obj.get("familyName")),
            email=_text(obj.get("email")).strip(),
            phone=sms or phone,
            phone_type="Cell" if sms else "",
            schools=list(dict.fromkeys(schools)),
            grade=_grade(grades[0]) if grades and Role.STUDENT in roles else "",
            sis_id=ids["sis_id"],
            student_number=ids["student_number"],
            state_id=ids["state_id"],
            teacher_number=ids["teacher_number"],
            birth_date=birth_dates.get(user_id, ""),
        )
        items.insert(0, person)
        items += self._links_of(user_id, obj, roles)
        return items

    def _links_of(self, user_id: str, obj: dict[str, Any], roles: list[Role]) -> list[SnapshotItem]:
        agents = _ref_ids(obj.get("agents"))
        items: list[SnapshotItem] = []
        if Role.GUARDIAN in roles:
            relationship = _guardian_relationship(obj)
            self.guardian_roles[user_id] = relationship
            for student in agents:
                link = f"{user_id}:{student}"
                self.links_pending.discard(link)
                if link not in self.links_yielded:
                    self.links_yielded.add(link)
                    items.append(_link(user_id, student, relationship))
        if Role.STUDENT in roles:
            for guardian in agents:
                link = f"{guardian}:{user_id}"
                if link in self.links_yielded:
                    continue
                if guardian in self.guardian_roles:
                    # The guardian was read already and did not name this student: the student's side counts.
                    self.links_yielded.add(link)
                    items.append(_link(guardian, user_id, self.guardian_roles[guardian]))
                elif guardian not in self.users_seen:
                    self.links_pending.add(link)
                # else: an agent who is not a guardian (a teacher, a sibling) is not a guardian link.
        return items

    def _pending_links(self) -> Iterator[SnapshotItem]:
        """Links students named for guardians read after them, or for agents the roster lacks."""
        not_guardians = 0
        for link in sorted(self.links_pending):
            guardian, student = link.split(":", 1) if ":" in link else (link, "")
            if guardian in self.guardian_roles:
                yield _link(guardian, student, self.guardian_roles[guardian])
            elif guardian in self.users_seen:
                not_guardians += 1
            elif self.check_references:
                yield _error(
                    Kind.GUARDIAN_LINKS,
                    link,
                    f"student {student} names agent {guardian}, who is not in the roster",
                )
            # else: a delta re-sending the student but not the guardian. The link is unchanged (a new or
            # changed one comes with the guardian's record); yielded without the guardian's role, it would
            # blank the stored relationship.
        if not_guardians:
            logger.info("Ignored %d OneRoster student agents who are not guardians", not_guardians)
        # The links are all out: what joined their two sides is not needed for the enrollments.
        self.links_pending.clear()
        self.links_yielded.clear()
        self.guardian_roles.clear()

    # -- enrollments -----------------------------------------------------------------------------

    def enrollments(self, objects: Iterable[Any]) -> Iterator[SnapshotItem]:
        seen: set[str] = set()
        records = errors = 0
        for entry in _unique(objects, "enrollment", seen, lambda _obj: Kind.ENROLLMENTS):
            if isinstance(entry, RecordError):
                errors += 1
                yield entry
                continue
            enrollment_id, obj = entry
            for item in _mapped(
                Kind.ENROLLMENTS, enrollment_id, "enrollment", obj, partial(self._enrollment, enrollment_id, obj)
            ):
                errors += isinstance(item, RecordError)
                records += isinstance(item, EnrollmentRecord)
                yield item
        logger.info("Mapped OneRoster enrollments: %d records, %d record errors", records, errors)

    def _enrollment(self, enrollment_id: str, obj: dict[str, Any]) -> list[SnapshotItem]:
        class_id, user_id = _ref_id(obj.get("class")), _ref_id(obj.get("user"))
        missing = [name for name, value in (("class", class_id), ("user", user_id)) if not value]
        if missing:
            reason = f"enrollment {enrollment_id} has no {' and no '.join(missing)}"
            return [_error(Kind.ENROLLMENTS, enrollment_id, reason)]
        provider_id = f"{class_id}:{user_id}"
        if _deleted(obj):
            return [DeletedRecord(kind=Kind.ENROLLMENTS, provider_id=provider_id)]
        role_text = _text(obj.get("role")).strip()
        role = ENROLLMENT_ROLES.get(role_text.lower())
        if role is None:
            reason = f"enrollment role {role_text!r} is not synced" if role_text else "enrollment has no role"
            return [_error(Kind.ENROLLMENTS, provider_id, reason)]
        if self.check_references and self.classes_seen and class_id not in self.classes_seen:
            reason = f"enrollment names class {class_id}, which is not in the roster"
            return [_error(Kind.ENROLLMENTS, provider_id, reason)]
        if self.check_references and self.users_seen and user_id not in self.users_seen:
            reason = f"enrollment names user {user_id}, who is not in the roster"
            return [_error(Kind.ENROLLMENTS, provider_id, reason)]
        return [
            EnrollmentRecord(provider=PROVIDER, provider_id=provider_id, classroom=class_id, person=user_id, role=role)
        ]


# ---------------------------------------------------------------------------------------------------
# Per-record helpers: plain dicts in, canonical records out. Every field is read leniently.
# ---------------------------------------------------------------------------------------------------


def _unique(
    objects: Iterable[Any], noun: str, seen: set[str], kind_of: Callable[[dict[str, Any]], Kind]
) -> Iterator[tuple[str, dict[str, Any]] | RecordError]:
    """Objects with a sourcedId seen for the first time; report the others."""
    for position, obj in enumerate(objects, start=1):
        if not isinstance(obj, dict):
            yield RecordError(kind=kind_of({}), reason=f"{noun} number {position} is not an object; skipped")
            continue
        sourced_id = _text(obj.get("sourcedId")).strip()
        if not sourced_id:
            yield RecordError(kind=kind_of(obj), reason=f"{noun} number {position} has no sourcedId; skipped")
            continue
        problem = id_problem(sourced_id)
        if problem:
            yield unclean_id_error(kind_of(obj), noun, position, sourced_id, problem, raw_district_id(noun, obj))
            continue
        if sourced_id in seen:
            yield RecordError(
                kind=kind_of(obj),
                provider_id=sourced_id,
                reason=f"duplicate sourcedId {sourced_id}: this {noun} appears more than once; the first was used",
                sis_id=raw_district_id(noun, obj),
            )
            continue
        seen.add(sourced_id)
        yield sourced_id, obj


def _mapped(
    kind: Kind, record_id: str, noun: str, obj: dict[str, Any], build: Callable[[], list[SnapshotItem]]
) -> list[SnapshotItem]:
    """Run one record's mapping; any problem becomes a RecordError so one odd record never fails a run."""
    try:
        return build()
    except ValidationError as exc:
        # Field locations only: the error's input values may hold personal data.
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        reason = f"could not read this {noun} from OneRoster: invalid {', '.join(fields)}"
    except Exception as exc:  # one unexpected record must not stop the sync of the district
        reason = f"could not read this {noun} from OneRoster ({type(exc).__name__})"
    logger.warning("Could not map OneRoster %s %s", noun, record_id)
    return [RecordError(kind=kind, provider_id=record_id, reason=reason, sis_id=raw_district_id(noun, obj))]


def _error(kind: Kind, provider_id: str, reason: str, sis_id: str = "") -> RecordError:
    return RecordError(kind=kind, provider_id=provider_id, reason=reason, sis_id=sis_id)


# The district's own ids of a OneRoster record, under the canonical records' field names: what the mapping
# fills, and what ``raw_district_id`` names a record by when it could not be used.


def _org_ids(obj: dict[str, Any]) -> dict[str, str]:
    identifier = _text(obj.get("identifier")).strip()
    metadata = _metadata(obj)
    # OneRoster 1.1 has no state id of a school; some exports put it in metadata.
    state_id = _first_text(*(metadata.get(key) for key in ("stateid", "stateschoolid")))
    return {"sis_id": identifier, "school_number": identifier, "state_id": state_id}


def _class_ids(obj: dict[str, Any]) -> dict[str, str]:
    return {"sis_id": _text(obj.get("classCode"))}


def _person_ids(obj: dict[str, Any], roles: list[Role]) -> dict[str, str]:
    """``identifier`` is the SIS id; ``userIds`` hold the student, state and teacher numbers."""
    ids = _user_ids(obj.get("userIds"))
    return {
        "sis_id": _text(obj.get("identifier")),
        "student_number": _first_id(ids, _STUDENT_NUMBER_TYPES) if Role.STUDENT in roles else "",
        "state_id": _first_id(ids, _STATE_ID_TYPES),
        "teacher_number": _first_id(ids, _TEACHER_NUMBER_TYPES) if Role.TEACHER in roles else "",
    }


def raw_district_id(noun: str, obj: dict[str, Any]) -> str:
    """The district's own id of a OneRoster org, class or user as sent (``obj``), chosen as report lines
    choose it (``district_id_of``); "" when it has none. Names a record the sync could not use."""
    if noun == "org":
        return district_id_of(_org_ids(obj))
    if noun == "class":
        return district_id_of(_class_ids(obj))
    if noun == "user":
        return district_id_of(_person_ids(obj, _user_roles(obj)[0]))
    return ""


def _deleted(obj: dict[str, Any]) -> bool:
    return _text(obj.get("status")).strip().lower() == "tobedeleted"


def _school(org_id: str, obj: dict[str, Any]) -> list[SnapshotItem]:
    ids = _org_ids(obj)
    metadata = _metadata(obj)
    return [
        SchoolRecord(
            provider=PROVIDER,
            provider_id=org_id,
            name=_text(obj.get("name")),
            school_number=ids["school_number"],
            sis_id=ids["sis_id"],
            # OneRoster 1.1 has no NCES id; some exports put it in metadata.
            nces_id=_first_text(*(metadata.get(key) for key in ("ncesid", "nces", "ncesschoolid"))),
            state_id=ids["state_id"],
            low_grade=_grade(_first_text(metadata.get("lowgrade"))),
            high_grade=_grade(_first_text(metadata.get("highgrade"))),
            phone=_first_text(metadata.get("phone")),
        )
    ]


def _metadata(obj: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` keys lower-cased, letters and digits only (``metadata.ncesId`` → ``ncesid``)."""
    metadata = obj.get("metadata")
    if not isinstance(metadata, dict):
        return {}
    return {_key(str(key)): value for key, value in metadata.items()}


def _key(text: str) -> str:
    return re.sub(r"[^0-9a-z]", "", text.lower())


def _user_kind(obj: dict[str, Any]) -> Kind:
    roles, _unknown = _user_roles(obj)
    # A user with no role rostersync syncs is reported under staff, the catch-all of people.
    return kind_of_roles(roles) if roles else Kind.STAFF


def _user_roles(obj: dict[str, Any]) -> tuple[list[Role], list[str]]:
    """(the product roles, the OneRoster roles rostersync does not know) of a user.

    OneRoster 1.1 has one ``role``; 1.2 a ``roles`` list of ``{"role": …, "org": …}``.
    """
    names = [_text(obj.get("role")).strip()] + [_text(entry.get("role")).strip() for entry in _role_entries(obj)]
    found: set[Role] = set()
    unknown: list[str] = []
    for name in filter(None, names):
        role = USER_ROLES.get(name.lower())
        if role is None:
            unknown.append(name)
        else:
            found.add(role)
    return [role for role in Role if role in found], list(dict.fromkeys(unknown))


def _guardian_relationship(obj: dict[str, Any]) -> str:
    """The guardian's own OneRoster role as the link's relationship: Parent, Guardian or Relative.

    Capitalised as Clever's relationships are (``Parent``), so one district's links read the same from
    either provider.
    """
    candidates = [_text(obj.get("role"))] + [_text(entry.get("role")) for entry in _role_entries(obj)]
    for name in candidates:
        if USER_ROLES.get(name.strip().lower()) == Role.GUARDIAN:
            return _RELATIONSHIPS[name.strip().lower()]
    return ""


def _role_entries(obj: dict[str, Any]) -> list[dict[str, Any]]:
    """The OneRoster 1.2 ``roles`` entries of a user that are objects."""
    roles = obj.get("roles")
    return [entry for entry in roles if isinstance(entry, dict)] if isinstance(roles, list) else []


def _user_orgs(obj: dict[str, Any]) -> list[str]:
    """A user's org ids: 1.1 ``orgs``, else the orgs of 1.2 ``roles`` (the primary role's first)."""
    orgs = _ref_ids(obj.get("orgs"))
    entries = _role_entries(obj)
    entries.sort(key=lambda entry: _text(entry.get("roleType")).lower() != "primary")
    orgs += [org for entry in entries if (org := _ref_id(entry.get("org")))]
    return list(dict.fromkeys(orgs))


def _link(guardian: str, student: str, relationship: str) -> GuardianLinkRecord:
    return GuardianLinkRecord(
        provider=PROVIDER,
        provider_id=f"{guardian}:{student}",
        guardian=guardian,
        student=student,
        relationship=relationship,
    )


def _user_ids(value: object) -> list[tuple[str, str]]:
    """``userIds`` as (type key, identifier) pairs."""
    pairs: list[tuple[str, str]] = []
    for entry in value if isinstance(value, list) else []:
        if isinstance(entry, dict):
            identifier = _text(entry.get("identifier")).strip()
            if identifier:
                pairs.append((_key(_text(entry.get("type"))), identifier))
    return pairs


def _first_id(ids: list[tuple[str, str]], types: set[str]) -> str:
    return next((identifier for key, identifier in ids if key in types), "")


# OneRoster grades are CEDS codes (KG, 01, …); the directory keeps Clever's names (Kindergarten, 1, …),
# so one district gives the same grades from either provider. Other values pass through unchanged.
_GRADE_NAMES = {
    "it": "InfantToddler",
    "pr": "Preschool",
    "pk": "PreKindergarten",
    "tk": "TransitionalKindergarten",
    "kg": "Kindergarten",
    **{f"{n:02d}": str(n) for n in range(1, 14)},
    "ps": "PostGraduate",
    "ug": "Ungraded",
    "other": "Other",
}


def _grade(text: str) -> str:
    """A CEDS grade code as the directory's grade name (``KG`` → ``Kindergarten``, ``09`` → ``9``)."""
    return _GRADE_NAMES.get(text.strip().lower(), text)


def _titles(objects: Iterable[Any], noun: str) -> dict[str, str]:
    """Titles by sourcedId for a small collection (terms, courses); the first of a repeated id wins."""
    titles: dict[str, str] = {}
    skipped = 0
    for obj in objects:
        sourced_id = _text(obj.get("sourcedId")).strip() if isinstance(obj, dict) else ""
        if not sourced_id:
            skipped += 1
            continue
        titles.setdefault(sourced_id, _text(obj.get("title")))
    if skipped:
        logger.warning("Skipped %d OneRoster %s without a sourcedId", skipped, noun)
    return titles


def _birth_dates(objects: Iterable[Any]) -> dict[str, str]:
    """Birth dates by user sourcedId (demographics share their user's sourcedId)."""
    dates: dict[str, str] = {}
    for obj in objects:
        if not isinstance(obj, dict) or _deleted(obj):
            continue
        sourced_id = _text(obj.get("sourcedId")).strip()
        birth_date = iso_date(_text(obj.get("birthDate")))
        if sourced_id and birth_date:
            dates.setdefault(sourced_id, birth_date)
    return dates


def _text(value: object) -> str:
    """A field as text: null, missing or structured values become "" and numbers their digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def _first_text(*values: object) -> str:
    return next((text for value in values if (text := _text(value).strip())), "")


def _texts(value: object) -> list[str]:
    """A list of strings (or a comma-separated string) as its non-empty, stripped items."""
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return [text for item in items if (text := _text(item).strip())]


def _ref_id(value: object) -> str:
    """The sourcedId of a GUIDRef (``{"sourcedId": …}``), or of a bare id string."""
    if isinstance(value, dict):
        return _text(value.get("sourcedId")).strip()
    return _text(value).strip()


def _ref_ids(value: object) -> list[str]:
    """The sourcedIds of a list of GUIDRefs (or of bare ids, or a comma-separated string), each once."""
    if isinstance(value, dict):
        value = [value]
    items = value.split(",") if isinstance(value, str) else value if isinstance(value, list) else []
    return list(dict.fromkeys(ref for item in items if (ref := _ref_id(item))))
