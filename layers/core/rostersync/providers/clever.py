"""Clever Data API v3.0: the HTTP client and the mapping of Clever records to canonical records.

Clever lists come as ``{"data": [{"data": {...}, "uri": ...}], "links": [{"rel": "next", "uri": ...}]}``;
the client follows ``rel=next`` links page by page and the mapping functions turn the items into
canonical records. The mapping functions work on plain dicts, so they are tested without a network.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any
from urllib.parse import parse_qs, quote, urljoin, urlsplit

import requests
from pydantic import ValidationError

from rostersync.domain.ids import id_problem
from rostersync.domain.records import (
    ClassroomRecord,
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
from rostersync.errors import ProviderAuthError, ProviderRequestError
from rostersync.providers.base import FetchOutcome, ListPage, RetryPolicy, iso_date
from rostersync.providers.http import (
    RequestPacer,
    paged,
    rate_limit_reset_seconds,
    retry_after_seconds,
    send_with_retries,
    unreadable_page,
)
from rostersync.providers.seen_ids import SeenIds, id_key

logger = logging.getLogger(__name__)

PROVIDER = "clever"
MAX_PAGE_LIMIT = 10_000

SCHOOLS_PATH = "/v3.0/schools"
TERMS_PATH = "/v3.0/terms"
COURSES_PATH = "/v3.0/courses"
SECTIONS_PATH = "/v3.0/sections"
USERS_PATH = "/v3.0/users"

# Clever's users by role (``/users?role=...``: the five roles the endpoint lists), in the order Fetch reads
# and combines them. A user with several roles is in several of these lists; it is kept in the first of its
# roles' lists only (``user_listed_here``), so each user is mapped once, with all its roles. The long lists
# come last: a teacher who is also a contact is the teachers' list's, not the contacts'.
USER_ROLES = ("district_admin", "staff", "teacher", "student", "contact")

# A module-level default rather than ``RetryPolicy()`` in the signature (ruff B008); the policy is frozen.
_DEFAULT_RETRY = RetryPolicy()


class CleverClient:
    """A Clever Data API client for one district token.

    Parameters
    ----------
    base_url
        Scheme and host of the API, e.g. ``https://api.clever.com``.
    token
        The district's bearer token. It is sent in a header and never appears in logs or errors.
    page_limit
        Records per page, 1 to 10,000 (Clever's maximum).
    retry
        How 429, 5xx and connection errors are retried; ``retry.sleep`` does the waiting.
    timeout
        Seconds to wait for each HTTP answer.
    pacer
        Spaces the requests (this reader's share of the district's rate limit); none by default.
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        page_limit: int = MAX_PAGE_LIMIT,
        retry: RetryPolicy = _DEFAULT_RETRY,
        timeout: float = 30,
        pacer: RequestPacer | None = None,
    ) -> None:
        if not 1 <= page_limit <= MAX_PAGE_LIMIT:
            raise ValueError(
                f"page_limit must be between 1 and {MAX_PAGE_LIMIT:,} (Clever's maximum), not {page_limit}"
            )
        self.base_url = base_url.rstrip("/")
        self.page_limit = page_limit
        self.retry = retry
        self.timeout = timeout
        self._session = requests.Session()
        self._session.headers.update({"Authorization": f"Bearer {token}", "Accept": "application/json"})
        # Spaces requests within the branch's share of the district's rate limit (no pacing by default).
        self.pacer = pacer or RequestPacer()

    def get(self, url: str, params: Any = None) -> requests.Response:
        """Send one GET with the district's token, paced (every attempt, retries included)."""
        self.pacer.wait()
        return self._session.get(url, params=params, timeout=self.timeout)

    def close(self) -> None:
        """Close the HTTP connections."""
        self._session.close()

    def iter_records(self, path: str, outcome: FetchOutcome | None = None, role: str | None = None) -> Iterator[Any]:
        """Stream the items of every page of a Clever list, one page in memory at a time.

        Parameters
        ----------
        path
            The list's path, e.g. ``/v3.0/users``.
        outcome
            Where a page that cannot be read is recorded; the endpoint then stops early. Without an
            outcome such a page raises ``ProviderUnavailableError`` instead, so it is never lost.
        role
            The users of one role only (``/users?role=...``, one of ``USER_ROLES``).

        Yields
        ------
        Each element of each page's ``data`` list, as sent (normally ``{"data": {...}, "uri": ...}``).

        Raises
        ------
        ProviderAuthError, ProviderRequestError, ProviderUnavailableError
        """
        for page in self.iter_pages(path, role=role):
            yield from page.items
            if page.problem:
                self._unreadable_page(page.problem, path, outcome)
                return

    def iter_pages(
        self,
        path: str,
        start_url: str | None = None,
        first_page: int = 1,
        role: str | None = None,
        *,
        limit: int | None = None,
        ahead: Callable[[ListPage], bool] | None = None,
    ) -> Iterator[ListPage]:
        """The pages of a Clever list from its first page, or from ``start_url`` (a next link an earlier
        slice stopped at, numbered ``first_page``), one page in memory at a time. ``role``: the users of
        one role (``/users?role=...``, one of ``USER_ROLES``); every next link keeps the filter. ``limit``:
        records per page, at most the client's ``page_limit`` (a list whose records are heavier asks for
        fewer; a next link keeps the limit it was asked with). ``ahead``: read the list ahead (``paged``:
        the next page asked for while the caller handles this one, for as long as ``ahead(page)``).

        A page that cannot be read is yielded with its ``problem`` and no next link (the list stops
        there); the caller records it. Stop iterating after any page to stop reading.
        """
        params: dict[str, int | str] | None = None
        if not start_url:
            params = {"limit": min(limit or self.page_limit, self.page_limit), **({"role": role} if role else {})}
        named = f"{path}?role={role}" if role else path  # as problems and logs name the list

        def answer(request: tuple[str, dict[str, int | str] | None, int]) -> requests.Response:
            url, params, page = request
            return self._get(url, params, named, page)

        def page_of(
            response: requests.Response, request: tuple[str, dict[str, int | str] | None, int]
        ) -> tuple[ListPage, tuple[str, None, int] | None]:
            url, _, page = request
            try:
                body = response.json()
            except RecursionError:
                return ListPage([], None, f"page {page} of {named} is nested too deep to read"), None
            except ValueError:
                return ListPage([], None, f"page {page} of {named} was not valid JSON"), None
            if not isinstance(body, dict) or not isinstance(body.get("data"), list):
                return ListPage([], None, f"page {page} of {named} has no data list"), None
            items: list[Any] = body["data"]
            next_url, problem = self._next_url(body, url)
            if role and next_url and "role" not in parse_qs(urlsplit(next_url).query):
                next_url = f"{next_url}&role={role}" if urlsplit(next_url).query else f"{next_url}?role={role}"
            logger.debug("Clever page %d of %s: %d items", page, named, len(items))
            if problem:
                return ListPage(items, None, f"page {page} of {named} {problem}"), None
            # the next link already carries limit and starting_after
            return ListPage(items, next_url), (next_url, None, page + 1) if next_url else None

        return paged((start_url or f"{self.base_url}{path}", params, first_page), answer, page_of, ahead)

    def _next_url(self, body: dict[str, Any], current_url: str) -> tuple[str | None, str | None]:
        """Return (absolute next URL or None, problem or None) from a page's ``links``."""
        links = body.get("links", [])
        if not isinstance(links, list):
            return None, "has a links field that is not a list"
        next_links = [link for link in links if isinstance(link, dict) and link.get("rel") == "next"]
        if not next_links:
            return None, None
        uri = next_links[0].get("uri")
        if not isinstance(uri, str) or not uri:
            return None, "has a next link without a uri"
        # Next links are paths on Clever's host. Never follow one elsewhere: it would carry our token.
        next_url = urljoin(self.base_url, uri)
        base, target = urlsplit(self.base_url), urlsplit(next_url)
        if (target.scheme, target.netloc) != (base.scheme, base.netloc):
            return None, "has a next link to another host, which was not followed"
        if next_url == current_url:
            return None, "has a next link to itself"
        return next_url, None

    def _unreadable_page(self, problem: str, path: str, outcome: FetchOutcome | None) -> None:
        unreadable_page("Clever", problem, path, outcome, logger)

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """One user by id (``/users/{id}``), as its item in the users list (``{"data": {...}}``); None when
        Clever has no such user for this district (HTTP 404)."""
        path = f"{USERS_PATH}/{{id}}"
        response = self._send(f"{self.base_url}{USERS_PATH}/{quote(user_id, safe='')}", None, path, 1)
        if response.status_code == 404:
            return None
        body = self._checked(response, path, 1).json()
        return body if isinstance(body, dict) and isinstance(body.get("data"), dict) else None

    def _get(self, url: str, params: dict[str, int | str] | None, path: str, page: int) -> requests.Response:
        """GET with retries on 429, 5xx and connection errors; raise a domain error otherwise."""
        return self._checked(self._send(url, params, path, page), path, page)

    def _send(self, url: str, params: dict[str, int | str] | None, path: str, page: int) -> requests.Response:
        """GET with retries on 429, 5xx and connection errors; the answer as it came otherwise."""
        return send_with_retries(
            lambda: self.get(url, params),
            self.retry,
            what=path,
            rate_limit_wait=_rate_limit_wait,
            unavailable=lambda attempts, problem: (
                f"Clever did not answer after {attempts} attempts ({problem}, page {page}); Clever may be "
                "down or rate-limiting this district: run the sync again later, and check status.clever.com if "
                "it keeps failing"
            ),
            log=logger,
            provider="Clever",
            log_detail=f", page {page}",
        )

    def _checked(self, response: requests.Response, path: str, page: int) -> requests.Response:
        """The answer if it succeeded; else the domain error an admin can act on."""
        status = response.status_code
        if 200 <= status < 300:
            return response
        if status in (401, 403):
            raise ProviderAuthError(
                f"Clever refused the district token (HTTP {status}): reconnect the rostersync app in "
                "Clever (or check that the district still shares data with it), then run the sync again"
            )
        raise ProviderRequestError(
            f"Clever rejected the request for page {page} of {path} (HTTP {status}"
            f"{_error_message(response)}); check the connection's base URL, or report this as a "
            "rostersync bug"
        )


def _rate_limit_wait(response: requests.Response) -> float | None:
    """Clever says how long to wait in ``Retry-After`` (seconds only), else in ``X-RateLimit-Reset``."""
    seconds = retry_after_seconds(response, http_date=False)
    return seconds if seconds is not None else rate_limit_reset_seconds(response)


def _error_message(response: requests.Response) -> str:
    """Clever's own error message, shortened, for an admin-facing error."""
    try:
        body = response.json()
    except ValueError:
        return ""
    message = body.get("message") if isinstance(body, dict) else None
    return f": {message[:200]}" if isinstance(message, str) and message else ""


class CleverProvider:
    """The district's roster from Clever, as canonical records.

    Parameters
    ----------
    client
        A client holding the district's token.
    user_roles
        Read only the users of these roles (``USER_ROLES``), a list each (``/users?role=...``), instead of
        every user: a roster preview needs only the adults, a few percent of a district's users. A user of
        several of them is in several lists, and so streamed once per list.
    user_ids
        With ``user_roles``: these users too, each asked for by id (``/users/{id}``) after the lists; one
        Clever does not have for the district is left out.
    """

    name = PROVIDER

    def __init__(
        self, client: CleverClient, user_roles: Sequence[str] | None = None, user_ids: Sequence[str] = ()
    ) -> None:
        self._client = client
        self._user_roles = tuple(user_roles) if user_roles is not None else None
        self._user_ids = tuple(user_ids)
        unknown = set(self._user_roles or ()) - set(USER_ROLES)
        if unknown:
            raise ValueError(f"unknown Clever user roles {sorted(unknown)}; known: {', '.join(USER_ROLES)}")

    def fetch(self, outcome: FetchOutcome) -> Iterator[SnapshotItem]:
        """Stream schools, classrooms with their enrollments, and people with their guardian links.

        Terms and courses are read first: they are small and name each section's term and course.
        """
        before = len(outcome.problems)
        courses = names_by_id(self._client.iter_records(COURSES_PATH, outcome))
        terms = names_by_id(self._client.iter_records(TERMS_PATH, outcome))
        yield from _page_errors(outcome, before, Kind.CLASSROOMS)
        read = self._client.iter_records
        yield from self._endpoint(SCHOOLS_PATH, Kind.SCHOOLS, outcome, map_schools(read(SCHOOLS_PATH, outcome)))
        sections = map_sections(read(SECTIONS_PATH, outcome), courses=courses, terms=terms)
        yield from self._endpoint(SECTIONS_PATH, Kind.CLASSROOMS, outcome, sections)
        if self._user_roles is None:
            # A lost users page hits every kind of person; it is reported under the biggest one.
            yield from self._endpoint(USERS_PATH, Kind.STUDENTS, outcome, map_users(read(USERS_PATH, outcome)))
            return
        for role in self._user_roles:
            users = map_users(read(USERS_PATH, outcome, role=role), role=role)
            yield from self._endpoint(USERS_PATH, _ROLE_KINDS[role], outcome, users)
        asked = [item for item in map(self._client.get_user, self._user_ids) if item is not None]
        yield from map_users(asked)

    def _endpoint(
        self, path: str, kind: Kind, outcome: FetchOutcome, mapped: Iterator[SnapshotItem]
    ) -> Iterator[SnapshotItem]:
        """A list's records as ``mapped`` streams them (not started yet), then a line for each page of it
        that could not be read."""
        before = len(outcome.problems)
        records = errors = 0
        for item in mapped:
            if isinstance(item, RecordError):
                errors += 1
            else:
                records += 1
            yield item
        yield from _page_errors(outcome, before, kind)
        logger.info("Read %s from Clever: %d records, %d record errors", path, records, errors)


# The kind a lost page of one role's users is reported under.
_ROLE_KINDS = {
    "district_admin": Kind.STAFF,
    "staff": Kind.STAFF,
    "teacher": Kind.TEACHERS,
    "student": Kind.STUDENTS,
    "contact": Kind.GUARDIANS,
}


def _page_errors(outcome: FetchOutcome, before: int, kind: Kind) -> Iterator[RecordError]:
    """A report line for each unreadable page recorded since ``before``."""
    for problem in outcome.problems[before:]:
        yield RecordError(kind=kind, provider_id="", reason=problem)


# ---------------------------------------------------------------------------------------------------
# Mapping: plain dicts in, canonical records out. Clever fields are often null or missing, and enum
# values grow over time, so every field is read leniently and passed through as text.
# ---------------------------------------------------------------------------------------------------

_USER_ROLES = {
    "student": Role.STUDENT,
    "teacher": Role.TEACHER,
    "staff": Role.STAFF,
    "district_admin": Role.STAFF,
    "contact": Role.GUARDIAN,
}


def names_by_id(items: Iterable[Any]) -> dict[str, str]:
    """Map ids to names for a small list such as terms or courses; unusable items are left out."""
    names: dict[str, str] = {}
    skipped = 0
    for item in items:
        data = item.get("data") if isinstance(item, dict) else None
        record_id = field_text(data.get("id")) if isinstance(data, dict) else ""
        if not isinstance(data, dict) or not record_id:
            skipped += 1
            continue
        names.setdefault(record_id, field_text(data.get("name")))
    if skipped:
        logger.warning("Skipped %d Clever terms or courses without an id", skipped)
    return names


def map_schools(items: Iterable[Any], seen: SeenIds | None = None, start: int = 1) -> Iterator[SnapshotItem]:
    """Turn Clever school list items into ``SchoolRecord``s (``seen``, ``start``: see ``map_users``)."""
    for entry in _unique_records(items, "school", lambda _data: Kind.SCHOOLS, seen, start):
        if isinstance(entry, RecordError):
            yield entry
            continue
        school_id, data = entry
        yield from _mapped(Kind.SCHOOLS, school_id, "school", data, partial(_school, school_id, data))


def map_sections(
    items: Iterable[Any],
    courses: Mapping[str, str],
    terms: Mapping[str, str],
    seen: SeenIds | None = None,
    start: int = 1,
) -> Iterator[SnapshotItem]:
    """Turn Clever section list items into a ``ClassroomRecord`` each, followed by its enrollments.

    Parameters
    ----------
    items
        Section list items (``{"data": {...}}``).
    courses, terms
        Names by id, to name each classroom's course and term ("" when unknown); ``IDS_AS_NAMES`` keeps
        the ids instead, for a caller that names them later (``name_classroom``).
    seen, start
        See ``map_users``.
    """
    for entry in _unique_records(items, "section", lambda _data: Kind.CLASSROOMS, seen, start):
        if isinstance(entry, RecordError):
            yield entry
            continue
        section_id, data = entry
        build = partial(_section, section_id, data, courses, terms)
        yield from _mapped(Kind.CLASSROOMS, section_id, "section", data, build)


def map_users(
    items: Iterable[Any], seen: SeenIds | None = None, start: int = 1, role: str | None = None
) -> Iterator[SnapshotItem]:
    """Turn Clever user list items into ``PersonRecord``s and, for contacts, ``GuardianLinkRecord``s.

    ``items`` may be one part of the list (a slice of its pages): ``seen`` then holds the ids of the
    parts before it (``SeenIds``; the ids of this part are added) and ``start`` is the position of its
    first item in the whole list, so duplicates and positions are what the whole list gives. ``role``:
    the items are Clever's list of that role's users (``USER_ROLES``), which report lines' positions name.
    """
    for entry in _unique_records(items, "user", _user_kind, seen, start, f"{role} user" if role else ""):
        if isinstance(entry, RecordError):
            yield entry
            continue
        user_id, data = entry
        yield from _mapped(_user_kind(data), user_id, "user", data, partial(_user, user_id, data))


class _IdsAsNames(dict[str, str]):
    """A names-by-id lookup that answers every id with the id itself (``map_sections``)."""

    def get(self, key: str, default: Any = None) -> str:  # type: ignore[override]
        return key


IDS_AS_NAMES: Mapping[str, str] = _IdsAsNames()


def name_classroom(classroom: ClassroomRecord, courses: Mapping[str, str], terms: Mapping[str, str]) -> ClassroomRecord:
    """A classroom mapped with ``IDS_AS_NAMES``, with its course and term named as ``map_sections`` names them."""
    return classroom.model_copy(
        update={"course": courses.get(classroom.course, ""), "term": terms.get(classroom.term, "")}
    )


def _unique_records(
    items: Iterable[Any],
    noun: str,
    kind_of: Callable[[dict[str, Any]], Kind],
    seen: SeenIds | None = None,
    start: int = 1,
    counted: str = "",
) -> Iterator[tuple[str, dict[str, Any]] | RecordError]:
    """Unwrap list items to (id, data); report items without data or id, and repeated ids. ``counted``:
    what a position counts ("contact user number 12"), when not every ``noun`` of the list."""
    counted = counted or noun
    # Holds every id of the list (the price of catching duplicates): 12 bytes an id, see SeenIds.
    seen = SeenIds() if seen is None else seen
    for position, item in enumerate(items, start=start):
        data = item.get("data") if isinstance(item, dict) else None
        if not isinstance(data, dict):
            yield RecordError(
                kind=kind_of({}),
                reason=f"{counted} number {position} in Clever's list is not a record (no data object); skipped",
            )
            continue
        record_id = field_text(data.get("id"))
        if not record_id:
            yield RecordError(kind=kind_of(data), reason=f"{noun} record has no id")
            continue
        problem = id_problem(record_id)
        if problem:
            yield unclean_id_error(kind_of(data), counted, position, record_id, problem, raw_district_id(noun, data))
            continue
        key = id_key(record_id)
        if key in seen:
            yield RecordError(
                kind=kind_of(data),
                provider_id=record_id,
                reason=f"duplicate id {record_id}: this {noun} appears more than once in Clever; the first was used",
                sis_id=raw_district_id(noun, data),
            )
            continue
        seen.add(key)
        yield record_id, data


def _mapped(
    kind: Kind, record_id: str, noun: str, data: dict[str, Any], build: Callable[[], list[SnapshotItem]]
) -> list[SnapshotItem]:
    """Run one record's mapping; any problem becomes a RecordError so one odd record never fails a run."""
    try:
        return build()
    except ValidationError as exc:
        # Field locations only: the error's input values may hold personal data.
        fields = sorted({".".join(str(part) for part in error["loc"]) for error in exc.errors()})
        reason = f"could not read this {noun} from Clever: invalid {', '.join(fields)}"
    except Exception as exc:  # one unexpected record must not stop the sync of the district
        reason = f"could not read this {noun} from Clever ({type(exc).__name__})"
    logger.warning("Could not map Clever %s %s", noun, record_id)
    return [RecordError(kind=kind, provider_id=record_id, reason=reason, sis_id=raw_district_id(noun, data))]


# The district's own ids of a Clever record, under the canonical records' field names: what the mapping
# below fills, and what ``raw_district_id`` names a record by when it could not be used.


def _school_ids(data: dict[str, Any]) -> dict[str, str]:
    return {
        "sis_id": field_text(data.get("sis_id")),
        "school_number": field_text(data.get("school_number")),
        "state_id": field_text(data.get("state_id")),
    }


def _section_ids(data: dict[str, Any]) -> dict[str, str]:
    return {"sis_id": field_text(data.get("sis_id"))}


def _user_ids(data: dict[str, Any]) -> dict[str, str]:
    by_role = field_object(data.get("roles"))
    student, teacher, staff, contact = (
        field_object(by_role.get(key)) for key in ("student", "teacher", "staff", "contact")
    )
    return {
        "sis_id": first_field_text(
            student.get("sis_id"), teacher.get("sis_id"), staff.get("staff_id"), contact.get("sis_id")
        ),
        "student_number": field_text(student.get("student_number")),
        "state_id": first_field_text(student.get("state_id"), teacher.get("state_id")),
        "teacher_number": field_text(teacher.get("teacher_number")),
    }


_IDS_OF = {"school": _school_ids, "section": _section_ids, "user": _user_ids}


def raw_district_id(noun: str, data: dict[str, Any]) -> str:
    """The district's own id of a Clever school, section or user as listed (``data``), chosen as report
    lines choose it (``district_id_of``); "" when it has none. Names a record the sync could not use."""
    ids_of = _IDS_OF.get(noun)
    return district_id_of(ids_of(data)) if ids_of else ""


def _school(school_id: str, data: dict[str, Any]) -> list[SnapshotItem]:
    ids = _school_ids(data)
    return [
        SchoolRecord(
            provider=PROVIDER,
            provider_id=school_id,
            name=field_text(data.get("name")),
            school_number=ids["school_number"],
            nces_id=field_text(data.get("nces_id")),
            state_id=ids["state_id"],
            sis_id=ids["sis_id"],
            low_grade=field_text(data.get("low_grade")),
            high_grade=field_text(data.get("high_grade")),
            phone=field_text(data.get("phone")),
        )
    ]


def _section(
    section_id: str, data: dict[str, Any], courses: Mapping[str, str], terms: Mapping[str, str]
) -> list[SnapshotItem]:
    ids = _section_ids(data)
    school = field_text(data.get("school"))
    if not school:
        return [
            RecordError(
                kind=Kind.CLASSROOMS,
                provider_id=section_id,
                reason="section has no school in Clever, so it cannot become a classroom (nor its enrollments)",
                sis_id=district_id_of(ids),
            )
        ]
    items: list[SnapshotItem] = [
        ClassroomRecord(
            provider=PROVIDER,
            provider_id=section_id,
            school=school,
            name=field_text(data.get("name")),
            period=field_text(data.get("period")),
            grade=field_text(data.get("grade")),
            subject=field_text(data.get("subject")),
            course=courses.get(field_text(data.get("course")), ""),
            term=terms.get(field_text(data.get("term_id")), ""),
            sis_id=ids["sis_id"],
        )
    ]
    teachers = data.get("teachers")
    # ``teachers`` lists every teacher, the primary ``teacher`` included; older records only have ``teacher``.
    teacher_ids = field_ids([*(teachers if isinstance(teachers, list) else []), data.get("teacher")])
    enrolled: set[str] = set()
    for role, people in (("student", field_ids(data.get("students"))), ("teacher", teacher_ids)):
        for person in people:
            if person in enrolled:
                items.append(
                    RecordError(
                        kind=Kind.ENROLLMENTS,
                        provider_id=f"{section_id}:{person}",
                        reason="user is listed as both a student and a teacher of this section; enrolled as a student",
                    )
                )
                continue
            enrolled.add(person)
            items.append(
                EnrollmentRecord(
                    provider=PROVIDER,
                    provider_id=f"{section_id}:{person}",
                    classroom=section_id,
                    person=person,
                    role=role,
                )
            )
    return items


def user_listed_here(item: Any, role: str) -> bool:
    """Whether a user Clever listed under ``role`` (``/users?role=...``) is that list's to map: the first
    of its roles in ``USER_ROLES`` order is ``role``. A user with several roles is in several lists and
    is mapped once, from the first. An item that names none of the five roles (not a record, or roles
    unreadable) stays in every list that lists it: its mapping reports it, never skipped unseen."""
    data = item.get("data") if isinstance(item, dict) else None
    roles = data.get("roles") if isinstance(data, dict) else None
    if not isinstance(roles, dict):
        return True
    first = next((name for name in USER_ROLES if name in roles), None)
    return first is None or first == role


def _user_kind(data: dict[str, Any]) -> Kind:
    roles = _known_roles(data)
    # A user with no role rostersync syncs is reported under staff, the catch-all of people.
    return kind_of_roles(roles) if roles else Kind.STAFF


def _known_roles(data: dict[str, Any]) -> list[Role]:
    roles = field_object(data.get("roles"))
    found = {_USER_ROLES[key] for key, value in roles.items() if key in _USER_ROLES and isinstance(value, dict)}
    return [role for role in Role if role in found]


def _user(user_id: str, data: dict[str, Any]) -> list[SnapshotItem]:
    roles = _known_roles(data)
    ids = _user_ids(data)
    if not roles:
        keys = ", ".join(sorted(str(key) for key in field_object(data.get("roles")))) or "none"
        return [
            RecordError(
                kind=Kind.STAFF,
                provider_id=user_id,
                reason=f"user has no role rostersync syncs (roles: {keys})",
                sis_id=district_id_of(ids),
            )
        ]
    by_role = field_object(data.get("roles"))
    student, teacher, staff, admin, contact = (
        field_object(by_role.get(key)) for key in ("student", "teacher", "staff", "district_admin", "contact")
    )
    name = field_object(data.get("name"))
    schools: list[str] = []
    for role in (student, teacher, staff):
        schools += field_ids(role.get("schools")) or field_ids([role.get("school")])
    person = PersonRecord(
        provider=PROVIDER,
        provider_id=user_id,
        roles=roles,
        # Contacts often carry their whole name in ``last``: kept as the family name, not split.
        given_name=field_text(name.get("first")),
        middle_name=field_text(name.get("middle")),
        family_name=field_text(name.get("last")),
        email=first_field_text(
            data.get("email"), *(role.get("email") for role in (student, teacher, staff, admin, contact))
        ),
        phone=field_text(contact.get("phone")),
        phone_type=field_text(contact.get("phone_type")),
        schools=list(dict.fromkeys(schools)),  # guardians get none: their schools follow their students
        grade=field_text(student.get("grade")),
        sis_id=ids["sis_id"],
        student_number=ids["student_number"],
        state_id=ids["state_id"],
        teacher_number=ids["teacher_number"],
        title=first_field_text(teacher.get("title"), staff.get("title"), admin.get("title")),
        birth_date=iso_date(field_text(student.get("dob"))),  # Clever sends M/D/YYYY
        home_language=field_text(student.get("home_language")),  # v3.1 only
    )
    items: list[SnapshotItem] = [person]
    if Role.GUARDIAN in roles:
        items += _guardian_links(user_id, contact.get("student_relationships"), district_id_of(ids))
    return items


def _guardian_links(contact_id: str, relationships: object, contact_sis_id: str) -> list[SnapshotItem]:
    items: list[SnapshotItem] = []
    linked: set[str] = set()
    for entry in relationships if isinstance(relationships, list) else []:
        student_id = field_text(entry.get("student")) if isinstance(entry, dict) else ""
        if not student_id:
            items.append(
                RecordError(
                    kind=Kind.GUARDIAN_LINKS,
                    provider_id=contact_id,
                    reason="contact has a student relationship without a student id; skipped",
                    sis_id=contact_sis_id,
                )
            )
            continue
        link_id = f"{contact_id}:{student_id}"
        if student_id in linked:
            items.append(
                RecordError(
                    kind=Kind.GUARDIAN_LINKS,
                    provider_id=link_id,
                    reason="contact lists the same student more than once; the first relationship was used",
                )
            )
            continue
        linked.add(student_id)
        items.append(
            GuardianLinkRecord(
                provider=PROVIDER,
                provider_id=link_id,
                guardian=contact_id,
                student=student_id,
                relationship=field_text(entry.get("relationship")),
                contact_type=field_text(entry.get("type")),
            )
        )
    return items


def field_text(value: object) -> str:
    """A field as text: null, missing or structured values become "" and numbers their digits."""
    if isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    return ""


def first_field_text(*values: object) -> str:
    """The first of the fields that is not empty as text (``field_text``), else ""."""
    return next((text for value in values if (text := field_text(value))), "")


def field_object(value: object) -> dict[str, Any]:
    """A field that should hold an object: the object, else {}."""
    return value if isinstance(value, dict) else {}


def field_ids(value: object) -> list[str]:
    """The non-empty string ids of a list, each once, in order."""
    if not isinstance(value, list):
        return []
    return list(dict.fromkeys(item for item in value if isinstance(item, str) and item))
