"""Merging a duplicate student into the one that stays, with everything the product holds about them.

The rules (``plan_merge``, pure):

- the survivor is the sync-managed student when one is (two sync-managed students are refused: the
  roster must be fixed); otherwise the one the admin keeps;
- every item of the merged student moves to the survivor: classroom memberships (an enrollment in a
  classroom the survivor is already in is archived instead: one membership stays), guardian links (the
  same: one link per guardian), backpack items, interaction logs, announcements (the survivor replaces
  them among the recipients, once), student attributes (a key both have: the survivor's value wins, the
  other item is archived and its value kept in the audit);
- the merged student is archived with ``merged_into`` (a product field) and never comes back through a
  sync (matching skips merged records);
- every item a merge writes carries ``merged_by = <merge id>``; the audit (``MERGE#<id>`` in the sync-state
  table: who, when, what moved, the conflicts) points at the items' exact before and after states in S3.

Applying (``MergeService``): a merge of up to 97 items is one ``TransactWriteItems`` (the items, the
merged student, a condition on the survivor, the audit): all or nothing. A larger one is a resumable
sequence: the audit is written ``in_progress`` first, the items move in transactions of at most 97 (each
conditional on the item not being merged yet, so a repeat skips it), and the last transaction archives
the merged student and marks the audit ``merged``; running the same merge again resumes it. Undo puts
every item back exactly as it was, unless one changed since (then it lists them and writes nothing).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rostersync.directory.history import MAX_TRANSACTION_ITEMS, DirectoryItems, TransactionConflictError
from rostersync.directory.keys import partition_key, shard_of

# Room in one transaction for the moved items: the merged student, the survivor's condition and the audit.
ITEMS_PER_TRANSACTION = MAX_TRANSACTION_ITEMS - 3


class MergeRefusedError(Exception):
    """The merge cannot be done as asked; the message says why (nothing was written)."""


class MergeChangedError(Exception):
    """Items changed since they were read (a merge) or since the merge (an undo): nothing was written."""

    def __init__(self, message: str, changed: list[str]) -> None:
        super().__init__(message)
        self.changed = changed


@dataclass
class ItemChange:
    collection: str
    id: str
    before: dict[str, Any]
    after: dict[str, Any]
    what: str  # moved | deduplicated | conflict | merged


@dataclass
class MergePlan:
    merge_id: str
    district_id: str
    keep: str
    merged: str
    by: str
    at: str
    swapped: bool
    changes: list[ItemChange] = field(default_factory=list)
    conflicts: list[dict[str, Any]] = field(default_factory=list)

    def moved(self) -> dict[str, dict[str, int]]:
        counts: dict[str, dict[str, int]] = {}
        for c in self.changes:
            if c.collection == "people":
                continue
            counts.setdefault(c.collection, {}).setdefault(c.what, 0)
            counts[c.collection][c.what] += 1
        return counts

    def audit(self, changes_key: str, status: str) -> dict[str, Any]:
        return {
            "merge_id": self.merge_id,
            "keep": self.keep,
            "merged": self.merged,
            "by": self.by,
            "at": self.at,
            "status": status,
            "moved": self.moved(),
            "conflicts": self.conflicts,
            "changes_key": changes_key,
            "items": len(self.changes),
        }


def new_merge_id(now: datetime | None = None) -> str:
    at = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S")
    return f"mrg-{at}-{uuid.uuid4().hex[:6]}"


def item_digest(item: dict[str, Any] | None) -> str:
    return hashlib.sha256(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _is_student(item: dict[str, Any]) -> bool:
    return item.get("kind") == "students" or "student" in ((item.get("fields") or {}).get("roles") or [])


def choose_survivor(keep: dict[str, Any], merge: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], bool]:
    """(survivor, merged, swapped): the sync-managed student survives whatever the admin typed."""
    if keep.get("managed_by_sync") and merge.get("managed_by_sync"):
        raise MergeRefusedError(
            f"{keep['id']} and {merge['id']} are both sync-managed: the roster holds two records for one child; "
            "fix it in the roster (the next sync archives the one it no longer sends)"
        )
    if merge.get("managed_by_sync") and not keep.get("managed_by_sync"):
        return merge, keep, True
    return keep, merge, False


def check_pair(
    district_id: str, keep: dict[str, Any] | None, merge: dict[str, Any] | None, ids: tuple[str, str]
) -> None:
    if ids[0] == ids[1]:
        raise MergeRefusedError(f"--keep {ids[0]} --merge {ids[1]}: a student cannot be merged into itself")
    for given, item, flag in ((ids[0], keep, "--keep"), (ids[1], merge, "--merge")):
        if item is None:
            raise MergeRefusedError(f"{flag} {given}: no such person in district {district_id}")
        if not _is_student(item):
            raise MergeRefusedError(f"{flag} {given}: not a student (only students are merged)")


def plan_merge(
    district_id: str,
    survivor: dict[str, Any],
    merged: dict[str, Any],
    enrollments: list[dict[str, Any]],
    children: list[dict[str, Any]],
    announcements: list[dict[str, Any]],
    merge_id: str,
    by: str,
    at: str,
    swapped: bool = False,
) -> MergePlan:
    """What a merge writes (pure). ``enrollments``, ``children`` (guardian links and single-student history
    of either student) and ``announcements`` (to either) are whole items as stored."""
    keep_id, gone_id = survivor["id"], merged["id"]
    plan = MergePlan(merge_id, district_id, keep_id, gone_id, by, at, swapped)

    def change(item: dict[str, Any], what: str, edit: Any) -> None:
        after = json.loads(json.dumps(item, default=str))
        edit(after)
        after["merged_by"] = merge_id
        plan.changes.append(ItemChange(_collection(item), item["id"], item, after, what))

    def archive(after: dict[str, Any]) -> None:
        after["status"] = "archived"
        after["status_changed_at"] = at

    active = [e for e in enrollments if e.get("status", "active") == "active"]
    survivor_classrooms = {(e.get("fields") or {}).get("classroom") for e in active if _person(e) == keep_id}
    for e in active:
        if _person(e) != gone_id:
            continue
        if (e.get("fields") or {}).get("classroom") in survivor_classrooms:
            change(e, "deduplicated", archive)
        else:
            change(e, "moved", lambda a: a["fields"].__setitem__("person", keep_id))
    links = [c for c in children if _collection(c) == "guardian_links" and c.get("status", "active") == "active"]
    survivor_guardians = {(g.get("fields") or {}).get("guardian") for g in links if _student(g) == keep_id}
    for g in links:
        if _student(g) != gone_id:
            continue
        if (g.get("fields") or {}).get("guardian") in survivor_guardians:
            change(g, "deduplicated", archive)
        else:
            change(g, "moved", lambda a: _repoint(a, district_id, "student", keep_id))
    history = [c for c in children if _collection(c) != "guardian_links" and c.get("status", "active") == "active"]
    survivor_attributes = {
        (h.get("fields") or {}).get("key"): h
        for h in history
        if _collection(h) == "student_attributes" and _student_id(h) == keep_id
    }
    for h in sorted(history, key=lambda i: i["id"]):
        if _student_id(h) != gone_id:
            continue
        fields = h.get("fields") or {}
        if _collection(h) == "student_attributes" and fields.get("key") in survivor_attributes:
            kept = survivor_attributes[fields["key"]]
            same = (kept.get("fields") or {}).get("value") == fields.get("value")
            if not same:
                plan.conflicts.append(
                    {
                        "key": fields.get("key"),
                        "kept": (kept.get("fields") or {}).get("value"),
                        "kept_item": kept["id"],
                        "dropped": fields.get("value"),
                        "dropped_item": h["id"],
                        "rule": "the survivor's value wins",
                    }
                )
            change(h, "deduplicated" if same else "conflict", archive)
        else:
            change(h, "moved", lambda a: _repoint(a, district_id, "student_id", keep_id))
    for a in sorted(announcements, key=lambda i: i["id"]):
        recipients = list((a.get("fields") or {}).get("recipient_ids") or [])
        if gone_id not in recipients:
            continue
        replaced = list(dict.fromkeys(keep_id if r == gone_id else r for r in recipients))
        change(a, "moved", lambda x, r=replaced: x["fields"].__setitem__("recipient_ids", r))

    def retire(after: dict[str, Any]) -> None:
        archive(after)
        after["product_fields"] = {**(after.get("product_fields") or {}), "merged_into": keep_id}

    change(merged, "merged", retire)
    return plan


def _collection(item: dict[str, Any]) -> str:
    if item.get("collection"):
        return str(item["collection"])
    return str(item["pk"]).split("#")[1]


def _person(item: dict[str, Any]) -> Any:
    return (item.get("fields") or {}).get("person")


def _student(item: dict[str, Any]) -> Any:
    return (item.get("fields") or {}).get("student")


def _student_id(item: dict[str, Any]) -> Any:
    return (item.get("fields") or {}).get("student_id")


def _repoint(after: dict[str, Any], district_id: str, name: str, keep_id: str) -> None:
    after["fields"][name] = keep_id
    after["parent_key"] = f"{district_id}#{keep_id}"


# -- applying and undoing ---------------------------------------------------------------------------------


class MergeService:
    """Merges of one district: reads, transactions, the audit (sync-state table) and the changes (S3)."""

    def __init__(self, items: DirectoryItems, dynamodb: Any, sync_state_table: str, s3: Any, bucket: str) -> None:
        self.items = items
        self.district_id = items.district_id
        self._dynamodb = dynamodb
        self._state_table = sync_state_table
        self._s3 = s3
        self._bucket = bucket

    def person(self, person_id: str) -> dict[str, Any] | None:
        return self.items.get("people", person_id)

    def check(self, keep_id: str, merge_id_student: str) -> tuple[dict[str, Any], dict[str, Any], bool] | str:
        """Check a pair (``MergeRefusedError`` with the reason); (survivor, merged, swapped), or the id of the
        merge that did it already."""
        keep, merge = self.person(keep_id), self.person(merge_id_student)
        check_pair(self.district_id, keep, merge, (keep_id, merge_id_student))
        assert keep is not None and merge is not None
        for item in (keep, merge):
            into = (item.get("product_fields") or {}).get("merged_into")
            if item.get("status") != "active" and into:
                other = merge_id_student if item is keep else keep_id
                if into == other:
                    return str(item.get("merged_by", ""))
                raise MergeRefusedError(f"{item['id']} was merged into {into} already (merge {item.get('merged_by')})")
        survivor, merged, swapped = choose_survivor(keep, merge)
        for item in (survivor, merged):
            if item.get("status") != "active":
                raise MergeRefusedError(f"{item['id']} is {item.get('status')}: restore it before merging")
        return survivor, merged, swapped

    def prepare(self, keep_id: str, merge_id_student: str, by: str, now: datetime | None = None) -> MergePlan | str:
        """The plan of a merge (read now: prepare each merge right before applying it), or the id of the
        merge that already did it (idempotent)."""
        checked = self.check(keep_id, merge_id_student)
        if isinstance(checked, str):
            return checked
        survivor, merged, swapped = checked
        pending = self.pending_for(survivor["id"], merged["id"])
        if pending:
            return self.load_plan(pending)
        ids = [survivor["id"], merged["id"]]
        children = [c for i in ids for c in self.items.children(i)]
        at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        return plan_merge(
            self.district_id,
            survivor,
            merged,
            self.items.enrollments_of(ids),
            children,
            self.items.announcements_to(ids),
            new_merge_id(now),
            by,
            at,
            swapped,
        )

    # -- the audit ------------------------------------------------------------------------------------

    def _audit_key(self, merge_id: str) -> dict[str, Any]:
        return {"pk": {"S": self.district_id}, "sk": {"S": f"MERGE#{merge_id}"}}

    def audit(self, merge_id: str) -> dict[str, Any] | None:
        from rostersync.directory.repository import _from_item

        answer = self._dynamodb.get_item(
            TableName=self._state_table, Key=self._audit_key(merge_id), ConsistentRead=True
        )
        return _from_item(answer["Item"]) if "Item" in answer else None

    def audits(self) -> list[dict[str, Any]]:
        from rostersync.directory.repository import _from_item, query_items

        items = query_items(
            self._dynamodb,
            TableName=self._state_table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :m)",
            ExpressionAttributeValues={":pk": {"S": self.district_id}, ":m": {"S": "MERGE#"}},
        )
        return [_from_item(i) for i in items]

    def pending_for(self, keep: str, merged: str) -> str | None:
        for audit in self.audits():
            if audit.get("status") == "in_progress" and audit.get("keep") == keep and audit.get("merged") == merged:
                return str(audit["merge_id"])
        return None

    def _changes_key(self, merge_id: str) -> str:
        return f"merges/{self.district_id}/{merge_id}/changes.json"

    def _save_changes(self, plan: MergePlan) -> str:
        key = self._changes_key(plan.merge_id)
        body = {
            "merge_id": plan.merge_id,
            "keep": plan.keep,
            "merged": plan.merged,
            "by": plan.by,
            "at": plan.at,
            "swapped": plan.swapped,
            "conflicts": plan.conflicts,
            "changes": [c.__dict__ for c in plan.changes],
        }
        self._s3.put_object(Bucket=self._bucket, Key=key, Body=json.dumps(body, default=str).encode())
        return key

    def load_plan(self, merge_id: str) -> MergePlan:
        body = json.loads(self._s3.get_object(Bucket=self._bucket, Key=self._changes_key(merge_id))["Body"].read())
        plan = MergePlan(
            body["merge_id"], self.district_id, body["keep"], body["merged"], body["by"], body["at"], body["swapped"]
        )
        plan.changes = [ItemChange(**c) for c in body["changes"]]
        plan.conflicts = body["conflicts"]
        return plan

    def _audit_put(self, plan: MergePlan, status: str, expect_status: str | None) -> dict[str, Any]:
        from rostersync.directory.repository import _to_item

        item = {
            "pk": self.district_id,
            "sk": f"MERGE#{plan.merge_id}",
            **plan.audit(self._changes_key(plan.merge_id), status),
        }
        put: dict[str, Any] = {"TableName": self._state_table, "Item": _to_item(item)}
        if expect_status is None:
            put["ConditionExpression"] = "attribute_not_exists(pk)"
        else:
            put["ConditionExpression"] = "#s = :s"
            put["ExpressionAttributeNames"] = {"#s": "status"}
            put["ExpressionAttributeValues"] = {":s": {"S": expect_status}}
        return {"raw": {"Put": put}}

    def _survivor_check(self, plan: MergePlan) -> dict[str, Any]:
        key = {"pk": partition_key(self.district_id, "people", shard_of(plan.keep)), "sk": plan.keep}
        return {
            "raw": {
                "ConditionCheck": {
                    "TableName": self.items.table,
                    "Key": {"pk": {"S": key["pk"]}, "sk": {"S": key["sk"]}},
                    "ConditionExpression": "#s = :active",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":active": {"S": "active"}},
                }
            }
        }

    @staticmethod
    def _move(change: ItemChange) -> dict[str, Any]:
        # Only if the item is as read: same status, same last merge (none, or an earlier one).
        expect = {"status": change.before.get("status", "active"), "merged_by": change.before.get("merged_by")}
        return {"put": change.after, "expect": expect}

    def apply(self, plan: MergePlan) -> None:
        """Write the merge (see the module's docstring); ``MergeChangedError`` if something changed meanwhile."""
        self._save_changes(plan)
        retire = [c for c in plan.changes if c.what == "merged"]
        moves = [c for c in plan.changes if c.what != "merged"]
        try:
            if len(moves) <= ITEMS_PER_TRANSACTION and self.audit(plan.merge_id) is None:
                writes = [self._move(c) for c in moves + retire]
                self.items.transact([*writes, self._survivor_check(plan), self._audit_put(plan, "merged", None)])
                return
            if self.audit(plan.merge_id) is None:
                self.items.transact([self._survivor_check(plan), self._audit_put(plan, "in_progress", None)])
            for start in range(0, len(moves), ITEMS_PER_TRANSACTION):
                chunk = moves[start : start + ITEMS_PER_TRANSACTION]
                todo = [
                    c for c in chunk if (self.items.get(c.collection, c.id) or {}).get("merged_by") != plan.merge_id
                ]
                if todo:
                    self.items.transact([self._move(c) for c in todo])
            self.items.transact(
                [
                    *[self._move(c) for c in retire],
                    self._survivor_check(plan),
                    self._audit_put(plan, "merged", "in_progress"),
                ]
            )
        except TransactionConflictError as exc:
            raise MergeChangedError(
                f"merge of {plan.merged} into {plan.keep}: a record changed while merging; nothing of this step was "
                "written: run the same command again",
                [],
            ) from exc

    def undo(self, merge_id: str, by: str, now: datetime | None = None) -> MergePlan:
        """Put back every item exactly as before the merge; ``MergeChangedError`` listing what changed since."""
        audit = self.audit(merge_id)
        if audit is None:
            raise MergeRefusedError(f"no merge {merge_id} in district {self.district_id}")
        if audit.get("status") == "undone":
            raise MergeRefusedError(f"merge {merge_id} was undone already ({audit.get('undone_at')})")
        plan = self.load_plan(merge_id)
        changed, puts = [], []
        for c in plan.changes:
            current = self.items.get(c.collection, c.id)
            if item_digest(current) == item_digest(c.after):
                puts.append({"put": c.before, "expect": {"merged_by": merge_id}})
            elif audit.get("status") == "in_progress" and item_digest(current) == item_digest(c.before):
                continue  # never moved: nothing to put back
            else:
                changed.append(f"{c.collection} {c.id}")
        if changed:
            raise MergeChangedError(
                f"merge {merge_id}: {len(changed)} record(s) changed since the merge; nothing was undone: "
                + ", ".join(changed[:20]),
                changed,
            )
        at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        audit_done = self._audit_update_undone(merge_id, by, at)
        try:
            for start in range(0, len(puts), ITEMS_PER_TRANSACTION):
                chunk = puts[start : start + ITEMS_PER_TRANSACTION]
                last = start + ITEMS_PER_TRANSACTION >= len(puts)
                self.items.transact([*chunk, audit_done] if last else chunk)
            if not puts:
                self.items.transact([audit_done])
        except TransactionConflictError as exc:
            raise MergeChangedError(f"merge {merge_id}: a record changed while undoing; run undo again", []) from exc
        return plan

    def _audit_update_undone(self, merge_id: str, by: str, at: str) -> dict[str, Any]:
        return {
            "raw": {
                "Update": {
                    "TableName": self._state_table,
                    "Key": self._audit_key(merge_id),
                    "UpdateExpression": "SET #s = :undone, undone_at = :at, undone_by = :by",
                    "ConditionExpression": "#s <> :undone",
                    "ExpressionAttributeNames": {"#s": "status"},
                    "ExpressionAttributeValues": {":undone": {"S": "undone"}, ":at": {"S": at}, ":by": {"S": by}},
                }
            }
        }
