"""Clean-up batches: what the clean-up state machine's steps do, where they keep things, and undo.

A confirmed clean-up is a batch (``cln-<time>-<hex>``). The CLI writes its plan to the sync bucket and
starts ``CleanupStateMachine`` (statemachine/cleanup.asl.json), which archives school by school (one
Map item per school) and writes the report. Layout, under ``cleanups/<district>/<batch>/``:

- ``plan/manifest.json``: ``[{"district_id", "batch_id", "school_key"}]`` (the Map's items);
- ``plan/school-NNN.json``: one school's students to archive (id, name, stamp);
- ``result/school-NNN.json``: what the step did for that school (archived, skipped with the reason);
- ``report/report.json``, ``report.html``, ``students.csv``: the batch's report.

The batch record is ``CLEANUP#<batch>`` in the sync-state table (scope, who, when, status, counts, report
key). A student the batch archives gets ``cleanup_batch`` and, to be put back exactly,
``cleanup_previous_changed_at`` (its ``status_changed_at`` before, or ``""``); undo restores those
students only while they still carry that batch and are still archived, and lists the others.
"""

from __future__ import annotations

import csv
import html
import io
import json
import uuid
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field

from rostersync.directory.keys import partition_key, shard_of
from rostersync.directory.repository import _from_item, _to_item
from rostersync.reports.writer import neutralise_formula


class CleanupMapItem(BaseModel):
    """One school of a clean-up: what a child of the Map receives."""

    model_config = ConfigDict(extra="forbid")

    district_id: str = Field(min_length=1)
    batch_id: str = Field(pattern=r"^cln-[0-9A-Za-z-]+$")
    school_key: str


class CleanupReportRequest(BaseModel):
    """What the report step receives: the execution's input, and the error when a state failed."""

    model_config = ConfigDict(extra="ignore")

    district_id: str = Field(min_length=1)
    batch_id: str = Field(pattern=r"^cln-[0-9A-Za-z-]+$")
    manifest_key: str
    error: dict[str, Any] | None = None


class CleanupReportResult(BaseModel):
    status: str
    report_key: str
    archived: int
    skipped: int


def new_batch_id(now: datetime | None = None) -> str:
    return f"cln-{(now or datetime.now(UTC)).strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:6]}"


def batch_prefix(district_id: str, batch_id: str) -> str:
    return f"cleanups/{district_id}/{batch_id}/"


def _owns(district_id: str, batch_id: str, key: str) -> None:
    if not key.startswith(batch_prefix(district_id, batch_id)):
        raise ValueError(f"{key} is outside clean-up {batch_id} of district {district_id}")


def _get_json(s3: Any, bucket: str, key: str) -> Any:
    return json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())


def _put(s3: Any, bucket: str, key: str, body: bytes, content_type: str) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)


def write_plan(s3: Any, bucket: str, district_id: str, batch_id: str, preview: dict[str, Any]) -> str:
    """Write a confirmed preview as the batch's plan; return the manifest's key."""
    prefix = batch_prefix(district_id, batch_id)
    manifest = []
    for n, school in enumerate(preview["schools"]):
        if not school["to_archive"]:
            continue
        key = f"{prefix}plan/school-{n:03d}.json"
        body = {
            "school_id": school["school_id"],
            "school_name": school["school_name"],
            "students": school["to_archive"],
        }
        _put(s3, bucket, key, json.dumps(body).encode(), "application/json")
        manifest.append({"district_id": district_id, "batch_id": batch_id, "school_key": key})
    key = f"{prefix}plan/manifest.json"
    _put(s3, bucket, key, json.dumps(manifest).encode(), "application/json")
    return key


# -- the Map's step: archive one school's students ------------------------------------------------------


def archive_school_students(
    item: CleanupMapItem, dynamodb: Any, directory_table: str, s3: Any, bucket: str, now: datetime | None = None
) -> dict[str, int]:
    """Archive the school's planned students that are still active and not sync-managed (conditional
    updates: a student the sync took over meanwhile is skipped, never archived); write the result.

    Idempotent: a student this batch archived already counts as archived again, unchanged."""
    _owns(item.district_id, item.batch_id, item.school_key)
    plan = _get_json(s3, bucket, item.school_key)
    at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
    archived, skipped = [], []
    for student in plan["students"]:
        key = {"pk": partition_key(item.district_id, "people", shard_of(student["id"])), "sk": student["id"]}
        found = dynamodb.get_item(TableName=directory_table, Key=_to_item(key), ConsistentRead=True).get("Item")
        current = _from_item(found) if found else None
        if current is None:
            skipped.append({"id": student["id"], "reason": "no longer in the directory"})
            continue
        if current.get("cleanup_batch") == item.batch_id and current.get("status") == "archived":
            archived.append({"id": student["id"], "name": student.get("name", "")})
            continue
        if current.get("managed_by_sync"):
            skipped.append({"id": student["id"], "reason": "sync-managed since the preview: never archived this way"})
            continue
        if current.get("status") != "active":
            skipped.append({"id": student["id"], "reason": f"{current.get('status')} since the preview"})
            continue
        previous = current.get("status_changed_at")
        condition = "#s = :active AND managed_by_sync = :false AND " + (
            "status_changed_at = :prev" if previous else "attribute_not_exists(status_changed_at)"
        )
        values: dict[str, Any] = {
            ":active": "active",
            ":false": False,
            ":archived": "archived",
            ":now": at,
            ":batch": item.batch_id,
            ":previous": previous or "",
        }
        if previous:
            values[":prev"] = previous
        try:
            dynamodb.update_item(
                TableName=directory_table,
                Key=_to_item(key),
                UpdateExpression="SET #s = :archived, status_changed_at = :now, cleanup_batch = :batch, "
                "cleanup_previous_changed_at = :previous",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=_to_item(values),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            skipped.append({"id": student["id"], "reason": "changed while archiving (taken over by a sync?)"})
            continue
        archived.append({"id": student["id"], "name": student.get("name", "")})
    result = {
        "school_id": plan["school_id"],
        "school_name": plan.get("school_name", plan["school_id"]),
        "archived": archived,
        "skipped": skipped,
    }
    _put(s3, bucket, item.school_key.replace("/plan/", "/result/"), json.dumps(result).encode(), "application/json")
    return {"archived": len(archived), "skipped": len(skipped)}


# -- the report step ------------------------------------------------------------------------------------


def write_cleanup_report(
    request: CleanupReportRequest, dynamodb: Any, sync_state_table: str, s3: Any, bucket: str
) -> CleanupReportResult:
    """report.json, report.html and students.csv of the batch; the batch record's final status."""
    _owns(request.district_id, request.batch_id, request.manifest_key)
    prefix = batch_prefix(request.district_id, request.batch_id)
    manifest = _get_json(s3, bucket, request.manifest_key)
    schools, rows = [], []
    for entry in manifest:
        try:
            result = _get_json(s3, bucket, entry["school_key"].replace("/plan/", "/result/"))
        except ClientError:
            plan = _get_json(s3, bucket, entry["school_key"])
            result = {
                "school_id": plan["school_id"],
                "school_name": plan.get("school_name"),
                "archived": [],
                "skipped": [],
            }
            result["not_done"] = len(plan["students"])
        schools.append(
            {
                "school_id": result["school_id"],
                "school_name": result.get("school_name") or result["school_id"],
                "archived": len(result["archived"]),
                "skipped": len(result["skipped"]),
                "not_done": result.get("not_done", 0),
            }
        )
        for s in result["archived"]:
            rows.append([result["school_id"], s["id"], s.get("name", ""), "archived", "not sync-managed"])
        for s in result["skipped"]:
            rows.append([result["school_id"], s["id"], "", "skipped", s["reason"]])
    archived = sum(s["archived"] for s in schools)
    skipped = sum(s["skipped"] for s in schools)
    status = "failed" if request.error else "succeeded"
    report = {
        "batch_id": request.batch_id,
        "district_id": request.district_id,
        "status": status,
        "failure_reason": str((request.error or {}).get("Cause", ""))[:2000] if request.error else "",
        "counts": {"archived": archived, "skipped": skipped},
        "schools": schools,
        "undo": f"rostersync cleanup undo {request.batch_id} --district {request.district_id}",
    }
    report_key = f"{prefix}report/report.json"
    _put(s3, bucket, report_key, json.dumps(report, indent=1).encode(), "application/json")
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["school_id", "student_id", "name", "action", "reason"])
    for row in rows:
        writer.writerow([neutralise_formula(str(v)) for v in row])
    _put(s3, bucket, f"{prefix}report/students.csv", buffer.getvalue().encode(), "text/csv")
    _put(s3, bucket, f"{prefix}report/report.html", _html(report).encode(), "text/html; charset=utf-8")
    dynamodb.update_item(
        TableName=sync_state_table,
        Key=_to_item({"pk": request.district_id, "sk": f"CLEANUP#{request.batch_id}"}),
        UpdateExpression="SET #s = :s, report_key = :k, archived = :a, skipped = :sk, finished_at = :at",
        ConditionExpression="attribute_exists(pk)",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=_to_item(
            {
                ":s": status,
                ":k": report_key,
                ":a": archived,
                ":sk": skipped,
                ":at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        ),
    )
    return CleanupReportResult(status=status, report_key=report_key, archived=archived, skipped=skipped)


def _html(report: dict[str, Any]) -> str:
    e = html.escape
    rows = "".join(
        f"<tr><td>{e(s['school_name'])}</td><td>{s['archived']}</td><td>{s['skipped']}</td></tr>"
        for s in report["schools"]
    )
    failure = f"<p><strong>Failed:</strong> {e(report['failure_reason'])}</p>" if report["failure_reason"] else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>Clean-up "
        f"{e(report['batch_id'])}</title></head><body>"
        f"<h1>Students not in the sync: clean-up {e(report['batch_id'])}</h1>"
        f"<p>Status: {e(report['status'])}. Archived {report['counts']['archived']}, skipped "
        f"{report['counts']['skipped']} (see students.csv). Nothing was deleted.</p>{failure}"
        "<table><tr><th>School</th><th>Archived</th><th>Skipped</th></tr>"
        f"{rows}</table><p>Undo: <code>{e(report['undo'])}</code></p></body></html>"
    )


# -- undo (the CLI's, not a state) -------------------------------------------------------------------------


def undo_batch(
    district_id: str, batch_id: str, dynamodb: Any, directory_table: str, s3: Any, bucket: str
) -> tuple[list[str], list[str]]:
    """Restore the students the batch archived that still carry it and are still archived; return
    (restored, changed since: "id: why")."""
    prefix = batch_prefix(district_id, batch_id)
    manifest = _get_json(s3, bucket, f"{prefix}plan/manifest.json")
    restored, changed = [], []
    for entry in manifest:
        try:
            result = _get_json(s3, bucket, entry["school_key"].replace("/plan/", "/result/"))
        except ClientError:
            continue
        for student in result["archived"]:
            key = {"pk": partition_key(district_id, "people", shard_of(student["id"])), "sk": student["id"]}
            found = dynamodb.get_item(TableName=directory_table, Key=_to_item(key), ConsistentRead=True).get("Item")
            current = _from_item(found) if found else {}
            if current.get("cleanup_batch") != batch_id or current.get("status") != "archived":
                why = "restored or changed since" if current.get("status") == "active" else "changed since"
                if current.get("managed_by_sync"):
                    why = "taken over by the sync since"
                changed.append(f"{student['id']}: {why}")
                continue
            previous = current.get("cleanup_previous_changed_at") or ""
            expression = "SET #s = :active" + (", status_changed_at = :prev" if previous else "")
            expression += " REMOVE cleanup_batch, cleanup_previous_changed_at" + (
                "" if previous else ", status_changed_at"
            )
            values: dict[str, Any] = {":active": "active", ":archived": "archived", ":batch": batch_id}
            if previous:
                values[":prev"] = previous
            try:
                dynamodb.update_item(
                    TableName=directory_table,
                    Key=_to_item(key),
                    UpdateExpression=expression,
                    ConditionExpression="#s = :archived AND cleanup_batch = :batch",
                    ExpressionAttributeNames={"#s": "status"},
                    ExpressionAttributeValues=_to_item(values),
                )
            except ClientError as exc:
                if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                    raise
                changed.append(f"{student['id']}: changed while undoing")
                continue
            restored.append(student["id"])
    return restored, changed
