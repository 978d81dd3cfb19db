"""A Clever full read takes the users list by role, a Map item each, and keeps each user once.

Clever's ``/users?role=...`` lists the users of one role; a user with two roles (a teacher who is also a
contact of a student) is in two of them. Fetch keeps such a user in the list of its first role
(``USER_ROLES`` order) and maps it once, with all its roles; the mirror the next events night reads holds
it once too. The snapshot must be the one the whole users list gives (``CleverProvider`` reading
``/users`` page after page).
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

from rostersync import aws
from rostersync.providers.base import FetchOutcome, RetryPolicy
from rostersync.providers.clever import USER_ROLES, CleverClient, CleverProvider

pytestmark = pytest.mark.e2e


def s3_json(run: Any, name: str) -> Any:
    key = f"runs/{run.district_id}/{run.run_id}/{name}"
    return json.loads(aws.client("s3").get_object(Bucket=run.bucket, Key=key)["Body"].read())


def snapshot_ids(run: Any) -> dict[str, list[str]]:
    """Each snapshot collection's provider ids (an error line: its reason)."""
    s3 = aws.client("s3")
    ids: dict[str, list[str]] = {}
    for collection, keys in s3_json(run, "snapshot/manifest.json").items():
        ids[collection] = [
            record.get("provider_id") or record.get("reason", "")
            for key in keys
            for record in map(
                json.loads, gzip.decompress(s3.get_object(Bucket=run.bucket, Key=key)["Body"].read()).splitlines()
            )
        ]
    return ids


def mirror_user_ids(run: Any, keys: list[str]) -> list[str]:
    s3 = aws.client("s3")
    return [
        json.loads(line)["data"]["id"]
        for key in keys
        for line in gzip.decompress(s3.get_object(Bucket=run.bucket, Key=key)["Body"].read()).splitlines()
    ]


def test_users_read_by_role_keep_a_user_of_two_roles_once(district: Any, synthetic: Any, tmp_path: Path) -> None:
    # Given a synthetic district whose first teacher is also the contact of a student (Clever lists them
    # under both roles) and whose first district admin is staff too, read in pages of 20, a page a slice
    teacher = synthetic.users("teacher")[0]
    admin = synthetic.users("district_admin")[0]
    student = synthetic.users("student")[3]
    relationship = {"relationship": "Parent", "student": student["id"], "type": "parent"}
    synthetic.edit_users(
        lambda user: user["roles"].update(contact={"phone": "", "student_relationships": [relationship]}),
        {teacher["id"]},
    )
    synthetic.edit_users(lambda user: user["roles"].update(staff={"title": "Principal"}), {admin["id"]})
    d = district(synthetic, page_limit=20)
    connection = d.state.get_item("CONNECTION")
    d.state.put_item("CONNECTION", {**connection, "max_pages_per_slice": 1, "mirror_chunks_per_part": 2})

    first = d.sync()

    # Then the plan read users as five lists, one a role, each request asking Clever for its role
    assert first.status == "succeeded", first.execution.get("cause")
    plan = s3_json(first, "fetch/plan.json")
    roles = [f"users-{role}" for role in USER_ROLES]
    assert plan["parts"] == {"users": roles} and "users" not in plan["lists"]
    asked = [parse_qs(query) for path, query in d.simulator.requests_seen if path == "/v3.0/users"]
    assert asked and all(len(query.get("role", [])) == 1 for query in asked)
    assert {query["role"][0] for query in asked} == set(USER_ROLES)
    # and each user of two roles was left by the later list to the first (counted, not kept)
    elsewhere = {r: s3_json(first, f"fetch/{r}/checkpoint.json").get("listed_elsewhere") for r in roles}
    assert elsewhere == {
        "users-district_admin": 0,
        "users-staff": 1,
        "users-teacher": 0,
        "users-student": 0,
        "users-contact": 1,
    }
    # and the snapshot holds every user once, the teacher with both roles, with no error about either
    ids = snapshot_ids(first)
    people = ids["people"] + ids["guardians"]
    assert [pid for pid, n in Counter(people).items() if n > 1] == []
    assert teacher["id"] in ids["people"] and teacher["id"] not in ids["guardians"]
    assert not [e for e in first.report["errors"] if e.get("provider_id") in (teacher["id"], admin["id"])]
    synced = first.by_clever_id("people")[teacher["id"]]
    assert {"teacher", "guardian"} <= set(synced["roles"])
    # and it is what Clever's whole users list gives, read page after page
    client = CleverClient(d.simulator.base_url, d.simulator.token, page_limit=20, retry=RetryPolicy(base_delay=0))
    whole = list(CleverProvider(client).fetch(FetchOutcome()))
    expected = sorted(r.provider_id for r in whole if getattr(r, "record_type", "") == "person")
    assert sorted(people) == expected
    links = [r for r in whole if getattr(r, "record_type", "") == "guardian_link"]
    assert len(ids["guardian_links"]) == len(links)
    # and the mirror keeps the role lists' chunks in their order, each user once, and says it is clean
    mirror = s3_json(first, "mirror/manifest.json")
    read = [k for r in roles for keys in s3_json(first, f"fetch/{r}/checkpoint.json")["slices"] for k in keys]
    assert mirror["collections"]["users"] == read and mirror["clean"]["users"] is True
    held = mirror_user_ids(first, read)
    assert sorted(held) == sorted(u["id"] for u in synthetic.users())

    # When the next night has events (the teacher renamed), read from that mirror in parts
    two = synthetic.copy(tmp_path / "night-2")
    two.edit_users(lambda user: user["name"].update(last="Renamed"), {teacher["id"]})
    d.serve(two)
    night = d.sync()

    # Then it is an events night whose users list came in parts, the teacher renamed once, nothing duplicated
    assert night.status == "succeeded", night.execution.get("cause")
    assert night.report["sync"]["kind"] == "events"
    assert len(s3_json(night, "fetch/plan.json")["parts"]["users"]) > 1
    assert not [e for e in night.report["errors"] if e["reason"].startswith("duplicate id")]
    assert night.by_clever_id("people")[teacher["id"]]["family_name"] == "Renamed"
    ids = snapshot_ids(night)
    assert [pid for pid, n in Counter(ids["people"] + ids["guardians"]).items() if n > 1] == []


def test_a_user_whose_roles_change_while_the_lists_are_read_is_kept(
    district: Any, synthetic: Any, tmp_path: Path
) -> None:
    # Given a teacher who is also a student's contact, synced once
    teacher = synthetic.users("teacher")[0]
    relationship = {"relationship": "Parent", "student": synthetic.users("student")[3]["id"], "type": "parent"}
    synthetic.edit_users(
        lambda user: user["roles"].update(contact={"phone": "", "student_relationships": [relationship]}),
        {teacher["id"]},
    )
    d = district(synthetic, page_limit=20)
    first = d.sync()
    assert first.status == "succeeded" and teacher["id"] in first.by_clever_id("people")
    # When, the next night (read in full), they stop teaching while the lists are read: the contacts' list
    # still lists them as a teacher too (and leaves them to the teachers' list), the teachers' list no longer
    # lists them
    d.read_in_full()
    night = synthetic.copy(tmp_path / "night-2")
    night.edit_users(lambda user: user["roles"].pop("teacher"), {teacher["id"]})
    d.serve(night)
    d.simulator.serve_role_from("contact", synthetic.path)

    run = d.sync()

    # Then no list kept them, and the assembly mapped them from the contacts' list's copy: in the snapshot
    # once, in the mirror once, not archived, no error line about them
    assert run.status == "succeeded", run.execution.get("cause")
    contacts = s3_json(run, "fetch/users-contact/checkpoint.json")
    assert contacts["listed_elsewhere"] == 1
    ids = snapshot_ids(run)
    assert (ids["people"] + ids["guardians"]).count(teacher["id"]) == 1
    assert run.by_clever_id("people")[teacher["id"]]["status"] == "active"
    assert all(counts["archived"] == 0 for counts in run.report["counts"].values())
    assert not [e for e in run.report["errors"] if e.get("provider_id") == teacher["id"]]
    mirror = s3_json(run, "mirror/manifest.json")["collections"]["users"]
    assert mirror_user_ids(run, mirror).count(teacher["id"]) == 1
    assert any("/fetch/users/rescued-" in key for key in mirror)
