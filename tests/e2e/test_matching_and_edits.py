"""Person matching and manual edits on the real state machine (issue 4 items 4, 5 and 7).

The product already has some of the district's people, without any Clever link: a student who carries
the district's SIS id, a teacher under the same email in other letter case, and a student who only shares
a name and birth date with someone in the roster. The self-check shows what the first sync would do to
them and writes nothing; the sync then links the first two, flags the third without merging, and later
runs keep what people edited in the product unless the settings say otherwise.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from rostersync.domain.records import Kind
from rostersync.providers.base import iso_date
from rostersync.settings import SyncSettings

pytestmark = pytest.mark.e2e


def export_bytes(d: Any) -> bytes:
    return json.dumps(d.export(), sort_keys=True, ensure_ascii=False).encode("utf-8")


def save_settings(d: Any, **changes: Any) -> int:
    current, version = d.state.current_settings()
    settings = SyncSettings.model_validate(current.model_dump(mode="json") | changes)
    return d.state.put_settings(settings, version, updated_by="e2e").version


@pytest.fixture
def matched(district: Any, synthetic: Any, make_product: Any) -> dict[str, Any]:
    students, teachers = synthetic.users("student"), synthetic.users("teacher")
    kid, lookalike, teacher = students[0], students[1], teachers[0]
    product = make_product(synthetic)
    school_of = {s.provider_ids["clever"]: s.id for s in product.schools}  # product school id of each Clever school
    people = [
        {
            "id": "per-own-kid",
            "roles": ["student"],
            "school_ids": [school_of[kid["roles"]["student"]["school"]]],
            "given_name": "Nickname",
            "sis_id": kid["roles"]["student"]["sis_id"],
        },
        {
            "id": "per-own-teacher",
            "roles": ["teacher"],
            "school_ids": [school_of[teacher["roles"]["teacher"]["school"]]],
            "email": f"  {teacher['email'].upper()} ",
        },
        {
            "id": "per-maybe-twin",
            "roles": ["student"],
            "school_ids": [school_of[lookalike["roles"]["student"]["school"]]],
            "given_name": lookalike["name"]["first"],
            "family_name": lookalike["name"]["last"],
            "birth_date": iso_date(lookalike["roles"]["student"]["dob"]),
            "sis_id": "not-in-the-roster",
        },
    ]
    product = product.model_validate(product.model_dump(mode="json") | {"people": people})
    d = district(synthetic, product=product)
    version = save_settings(d, student_match_id="sis_id")
    return {"d": d, "kid": kid, "teacher": teacher, "lookalike": lookalike, "version": version}


def test_a_self_check_shows_the_matches_and_writes_nothing_byte_for_byte(matched: dict[str, Any]) -> None:
    d = matched["d"]
    before = export_bytes(d)

    check = d.sync(dry_run=True, export=False)

    assert check.status == "succeeded" and check.report["dry_run"] is True
    assert export_bytes(d) == before
    assert check.directory_writes == 0
    assert check.run["settings_version"] == matched["version"]
    assert check.counts("students")["linked"] == 1 and check.counts("teachers")["linked"] == 1
    lines = {(r["action"], r["id"]) for r in check.csv_rows("students.csv")}
    assert ("linked", "per-own-kid") in lines
    flagged = [r for r in check.csv_rows("students.csv") if r["action"] == "possible_duplicate"]
    assert [r["provider_id"] for r in flagged] == [matched["lookalike"]["id"]]
    assert "per-maybe-twin" in flagged[0]["reason"]


def test_the_sync_links_by_sis_id_and_email_and_never_merges_a_lookalike(matched: dict[str, Any]) -> None:
    d, kid, teacher, lookalike = matched["d"], matched["kid"], matched["teacher"], matched["lookalike"]

    run = d.sync()

    assert run.status == "succeeded"
    people = {p["id"]: p for p in run.records("people")}
    assert people["per-own-kid"]["provider_ids"] == {"clever": kid["id"]}
    assert people["per-own-kid"]["managed_by_sync"] is True
    assert people["per-own-teacher"]["provider_ids"] == {"clever": teacher["id"]}
    # the lookalike is untouched, and the roster's student has an account of their own
    assert people["per-maybe-twin"]["provider_ids"] == {} and people["per-maybe-twin"]["managed_by_sync"] is False
    (twin,) = [p for p in people.values() if p["provider_ids"].get("clever") == lookalike["id"]]
    assert twin["id"] != "per-maybe-twin"
    # one account per roster person: nobody was created twice for being matched
    clever_ids = [p["provider_ids"].get("clever") for p in people.values() if p["provider_ids"]]
    assert len(clever_ids) == len(set(clever_ids))


def test_edits_made_in_the_product_survive_unless_the_settings_say_always(matched: dict[str, Any]) -> None:
    d, kid = matched["d"], matched["kid"]
    d.sync(export=False)
    d.directory.record_product_edit(Kind.STUDENTS, "per-own-kid", "email", "chosen-by-family@example.org")

    kept = d.sync()

    assert kept.counts("students")["edits_kept"] == 1
    shown = {p["id"]: p for p in kept.records("people")}["per-own-kid"]
    assert shown["email"] == "chosen-by-family@example.org" and shown["edited_fields"] == ["email"]
    assert kept.directory_writes == 0  # keeping an edit writes nothing

    save_settings(d, update_edited_contact_details="always")
    overwritten = d.sync()

    assert overwritten.counts("students")["edits_overwritten"] == 1
    shown = {p["id"]: p for p in overwritten.records("people")}["per-own-kid"]
    assert shown["email"] == kid["email"] and "edited_fields" not in shown
