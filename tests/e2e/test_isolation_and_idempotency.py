"""A run reads and writes only its own district's keys (DESIGN §4); every step is idempotent (§5)."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

import pytest

from rostersync import aws

pytestmark = pytest.mark.e2e


def test_a_district_never_touches_another_districts_records(
    district: Any, synthetic: Any, tmp_path: Any, stack: Any
) -> None:
    # Given two product districts rostered from the very same Clever data (same Clever ids)
    a, b = district(synthetic), district(synthetic)
    first_a = a.sync(export=False)
    assert first_a.status == "succeeded"
    before = a.export()

    # When the second district syncs twice, the second time with leavers and a change
    assert b.sync(export=False).status == "succeeded"
    night = synthetic.copy(tmp_path / "night-2")
    night.remove_students({u["id"] for u in night.users("student")[:3]})
    night.edit_users(lambda u: u["name"].update(last="Changed"))
    b.serve(night)
    second_b = b.sync()
    assert second_b.status == "succeeded"
    assert second_b.counts("students")["archived"] == 3 and second_b.counts("students")["updated"] == 57

    # Then the first district's directory is exactly as it was
    assert a.export() == before
    # and the two share no record
    ids_a = {r["id"] for records in before.values() if isinstance(records, list) for r in records}
    ids_b = {r["id"] for records in second_b.directory.values() if isinstance(records, list) for r in records}
    assert ids_a and ids_b and not ids_a & ids_b

    # and every item of the directory, of every district on this stack, carries its district in every key
    items = _scan(stack.outputs["DirectoryTableName"])
    assert {a.id, b.id} <= {item["district_id"]["S"] for item in items}
    for item in items:
        prefix = item["district_id"]["S"] + "#"
        for key in ("pk", "provider_key", "parent_key", "match_bucket"):
            if key in item:
                assert item[key]["S"].startswith(prefix), (key, item[key], prefix)


def _scan(table: str) -> list[dict[str, Any]]:
    client = aws.client("dynamodb")
    kwargs: dict[str, Any] = {
        "TableName": table,
        "ProjectionExpression": "pk, district_id, provider_key, parent_key, match_bucket",
    }
    items: list[dict[str, Any]] = []
    while True:
        page = client.scan(**kwargs)
        items.extend(page.get("Items", []))
        if "LastEvaluatedKey" not in page:
            return items
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def test_upserting_the_same_plan_chunk_again_changes_nothing(
    district: Any, synthetic: Any, stack: Any, directory_writes: Any
) -> None:
    # Given a district after its first sync, and that run's plan chunks in S3
    d = district(synthetic)
    first = d.sync()
    assert first.status == "succeeded"
    s3 = aws.client("s3")
    manifest_key = f"runs/{d.id}/{first.run_id}/plan/manifest.json"
    manifest = json.loads(s3.get_object(Bucket=first.bucket, Key=manifest_key)["Body"].read())
    assert manifest, "the first run planned no writes"

    # When the Upsert Lambda is invoked again with each chunk (as a Step Functions retry would)
    lam = stack.client("lambda")
    # (named as the embedded stack names the template's functions; moto's signature check refuses Lambda's
    # read calls such as ListFunctions under IAM enforcement, and rostersync never makes them)
    function = f"{stack.stack_name}-UpsertChunkFunction"
    with directory_writes() as writes:
        for entry in manifest:
            answer = lam.invoke(
                FunctionName=function,
                Payload=json.dumps({"district_id": d.id, "run_id": first.run_id, "chunk_key": entry["chunk_key"]}),
            )
            result = json.loads(answer["Payload"].read())
            assert "FunctionError" not in answer, result
            assert result["written"] > 0
    assert writes() > 0  # the chunks really were written a second time

    # Then the directory is exactly the same: no duplicates, nothing changed
    after = d.export()
    assert after == first.directory
    clever_ids = Counter(
        (collection, r["provider_ids"]["clever"])
        for collection, records in after.items()
        if isinstance(records, list)
        for r in records
        if "clever" in r["provider_ids"]
    )
    assert max(clever_ids.values()) == 1
    # and the next run finds nothing to do
    again = d.sync(export=False)
    assert again.directory_writes == 0
    assert all(c["created"] == c["updated"] == 0 for c in again.report["counts"].values())
