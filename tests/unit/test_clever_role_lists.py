"""Clever's users read by role (``/users?role=...``): which list keeps a user, how positions are named, and
the client keeping the role on every page."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from rostersync.domain.records import Kind, RecordError
from rostersync.providers.base import RetryPolicy
from rostersync.providers.clever import USER_ROLES, CleverClient, CleverProvider, map_users, user_listed_here

BASE = "https://clever.test"


def user(user_id: str, *roles: str) -> dict[str, Any]:
    return {"data": {"id": user_id, "name": {"first": "A", "last": "B"}, "roles": {role: {} for role in roles}}}


def test_a_user_of_several_roles_is_kept_by_the_list_of_its_first_role_only() -> None:
    # Given a teacher who is also a contact, a district admin who is staff too, and a contact
    cases = {
        "teacher and contact": (user("u1", "contact", "teacher"), "teacher"),
        "admin and staff": (user("u2", "staff", "district_admin"), "district_admin"),
        "contact only": (user("u3", "contact"), "contact"),
    }
    for name, (item, first) in cases.items():
        # Then exactly one of the five lists keeps each: its first role's, in USER_ROLES order
        kept = [role for role in USER_ROLES if user_listed_here(item, role)]
        assert kept == [first], name


def test_an_item_naming_none_of_the_five_roles_stays_in_every_list_that_lists_it() -> None:
    # Given items a list might send that name no role of the five: not a record, roles unreadable, a role
    # Clever does not have
    items = [None, {"data": None}, {"data": {"id": "u1", "roles": None}}, user("u2", "custodian")]

    # Then no list drops them (their mapping reports them), whichever list sent them
    assert all(user_listed_here(item, role) for item in items for role in USER_ROLES)


def test_positions_in_a_role_list_name_the_role() -> None:
    # Given a contacts list whose second item is not a record and whose third has an id that breaks the rule
    items = [user("5a25ff950a5f621109000001", "contact"), {"junk": True}, user("bad id\n", "contact")]

    # When it is mapped as Clever's list of contacts
    errors = [item for item in map_users(items, role="contact") if isinstance(item, RecordError)]

    # Then the positions say which list they count in
    assert errors[0] == RecordError(
        kind=Kind.STAFF,
        reason="contact user number 2 in Clever's list is not a record (no data object); skipped",
    )
    assert errors[1].reason.startswith("contact user number 3: its id")


class _Answer:
    def __init__(self, body: dict[str, Any]) -> None:
        self.status_code = 200
        self.headers: dict[str, str] = {}
        self._body = json.dumps(body)

    def json(self) -> Any:
        return json.loads(self._body)


class _PagesWithoutRole(CleverClient):
    """Two pages of students whose first page's next link (wrongly) drops the role filter."""

    def __init__(self) -> None:
        super().__init__(BASE, "token", page_limit=1, retry=RetryPolicy(base_delay=0))
        self.asked: list[dict[str, list[str]]] = []

    def get(self, url: str, params: Any = None) -> requests.Response:
        query = parse_qs(urlsplit(url).query) | {k: [str(v)] for k, v in (params or {}).items()}
        self.asked.append(query)
        if "starting_after" not in query:
            links = [{"rel": "next", "uri": "/v3.0/users?limit=1&starting_after=u1"}]
            return _Answer({"data": [user("u1", "student")], "links": links})  # type: ignore[return-value]
        return _Answer({"data": [user("u2", "student")], "links": []})  # type: ignore[return-value]


def test_the_client_keeps_the_role_on_every_page() -> None:
    # Given a list of students whose next link does not carry the role
    client = _PagesWithoutRole()

    # When the students' list is read
    pages = list(client.iter_pages("/v3.0/users", role="student"))

    # Then both pages were asked for with the role, and the items are the two students
    assert [query.get("role") for query in client.asked] == [["student"], ["student"]]
    assert [item["data"]["id"] for page in pages for item in page.items] == ["u1", "u2"]


def test_a_provider_is_refused_roles_clever_does_not_have() -> None:
    with pytest.raises(ValueError, match=r"unknown Clever user roles \['parent'\]"):
        CleverProvider(CleverClient("http://clever.invalid", "token"), user_roles=("teacher", "parent"))
