"""The product's own records: what the district admin set up before the first sync (steps 2 and 3 of their
path). Linking them to Clever hands their synced fields to the sync; the rest stays the product's."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.e2e


@pytest.fixture
def linked(district: Any, synthetic: Any, make_product: Any) -> Any:
    """A product school, classroom and teacher, each with a field of the product's own, linked by Clever id;
    and a product classroom that is not linked."""
    section = synthetic.sections()[0]
    teacher = synthetic.users("teacher")[0]
    product = make_product(synthetic).model_dump(mode="json")
    school = product["schools"][0]
    school["timezone"] = "America/Chicago"
    product["classrooms"] = [
        {"id": "cls-own", "name": "Room 12", "school_id": school["id"], "color": "teal",
         "provider_ids": {"clever": section["id"]}},
        {"id": "cls-chess", "name": "Chess Club", "school_id": school["id"], "color": "red", "provider_ids": {}},
    ]  # fmt: skip
    product["people"] = [
        {"id": "per-own", "roles": ["teacher"], "school_ids": [school["id"]], "preferred_language": "es",
         "provider_ids": {"clever": teacher["id"]}},
    ]  # fmt: skip
    d = district(synthetic, product=make_product(synthetic, **product))
    before = d.export()
    run = d.sync()
    assert run.status == "succeeded", run.execution.get("cause")
    return {"before": before, "run": run, "section": section["id"], "teacher": teacher["id"],
            "school": synthetic.schools()[0]["id"]}  # fmt: skip


def test_linked_product_records_keep_their_ids_and_become_sync_managed(linked: dict[str, Any]) -> None:
    run = linked["run"]
    classroom = run.by_clever_id("classrooms")[linked["section"]]
    teacher = run.by_clever_id("people")[linked["teacher"]]
    assert (classroom["id"], classroom["managed_by_sync"], classroom["status"]) == ("cls-own", True, "active")
    assert (teacher["id"], teacher["managed_by_sync"]) == ("per-own", True)
    assert run.counts("classrooms")["linked"] == 1 and run.counts("teachers")["linked"] == 1
    # and no second record was created for what was linked
    assert sum(1 for c in run.records("classrooms") if c["provider_ids"].get("clever") == linked["section"]) == 1
    # the unlinked product classroom is left exactly as it was
    (chess,) = [c for c in run.records("classrooms") if c["id"] == "cls-chess"]
    assert chess == next(c for c in linked["before"]["classrooms"] if c["id"] == "cls-chess")


def test_linking_product_records_keeps_the_products_own_fields(linked: dict[str, Any]) -> None:
    run = linked["run"]
    assert run.by_clever_id("schools")[linked["school"]].get("timezone") == "America/Chicago"
    assert run.by_clever_id("classrooms")[linked["section"]].get("color") == "teal"
    assert run.by_clever_id("people")[linked["teacher"]].get("preferred_language") == "es"
