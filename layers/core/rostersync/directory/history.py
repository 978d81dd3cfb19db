"""The product's own items about students, and whole-item access for clean-ups and merges.

History items (announcements, backpack items, interaction logs, student attributes) are the product's:
the sync never reads or writes them. They live in the directory table beside the roster's records, in
collections of their own (``<district>#<collection>#<shard>``, sharded like the rest), so the sync's
scans of ``schools``/``people``/… never meet them:

- an announcement names its recipients (``fields.recipient_ids``) and has no parent;
- a backpack item, an interaction log and a student attribute belong to one student
  (``fields.student_id``) and carry ``parent_key = <district>#<student id>``, so a student's history
  is one ``ByParent`` query (which also answers the student's guardian links).

``DirectoryItems`` reads and writes whole items (every attribute, the product's included), which a
merge needs to move an item and to put it back exactly on undo, and which the clean-up's conditional
archive uses. Like the other repositories it is bound to one district and builds every key itself.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from rostersync.directory.keys import SHARDS, parent_key, partition_key, shard_of
from rostersync.directory.repository import _from_item, _to_item, query_items

HISTORY_COLLECTIONS = ("announcements", "backpack_items", "interaction_logs", "student_attributes")
# Every student-owned history collection but announcements, whose items name several students.
SINGLE_STUDENT_COLLECTIONS = ("backpack_items", "interaction_logs", "student_attributes")

# DynamoDB's bound on one TransactWriteItems (and on the embedded stack, which refuses more as AWS does).
MAX_TRANSACTION_ITEMS = 100


class TransactionConflictError(Exception):
    """A transaction's condition failed: an item changed since it was read; nothing was written."""


def history_item(district_id: str, collection: str, record_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    """A history item as stored (plain values)."""
    item: dict[str, Any] = {
        "pk": partition_key(district_id, collection, shard_of(record_id)),
        "sk": record_id,
        "district_id": district_id,
        "id": record_id,
        "collection": collection,
        "status": "active",
        "managed_by_sync": False,
        "fields": fields,
    }
    student = fields.get("student_id")
    if student:
        item["parent_key"] = parent_key(district_id, str(student))
    return item


class DirectoryItems:
    """Whole items of one district's directory (any collection), for clean-ups and merges."""

    def __init__(self, client: Any, table_name: str, district_id: str, sync_state_table: str = "") -> None:
        self._client = client
        self.table = table_name
        self.sync_state_table = sync_state_table
        self.district_id = district_id

    # -- keys -----------------------------------------------------------------------------------

    def key(self, collection: str, record_id: str) -> dict[str, str]:
        return {"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id}

    def set_parent(self, item: dict[str, Any], parent_id: str) -> None:
        """Point an item's ``ByParent`` key at ``parent_id`` (a student, a classroom)."""
        item["parent_key"] = parent_key(self.district_id, parent_id)

    def owns(self, item: dict[str, Any]) -> bool:
        return str(item.get("pk", "")).startswith(f"{self.district_id}#")

    # -- reads ----------------------------------------------------------------------------------

    def get(self, collection: str, record_id: str) -> dict[str, Any] | None:
        answer = self._client.get_item(
            TableName=self.table, Key=_to_item(self.key(collection, record_id)), ConsistentRead=True
        )
        return _from_item(answer["Item"]) if "Item" in answer else None

    def children(self, parent_id: str) -> list[dict[str, Any]]:
        """Items whose parent is ``parent_id`` (a student's guardian links and single-student history)."""
        items = query_items(
            self._client,
            TableName=self.table,
            IndexName="ByParent",
            KeyConditionExpression="parent_key = :k",
            ExpressionAttributeValues={":k": {"S": parent_key(self.district_id, parent_id)}},
        )
        return [_from_item(i) for i in items]

    def collection(self, collection: str) -> Iterator[dict[str, Any]]:
        """Every item of a collection (its shards read in parallel, each reader in a copy of the caller's
        context, so it sees the invocation's credentials)."""

        def shard_items(shard: int) -> list[dict[str, Any]]:
            items = query_items(
                self._client,
                TableName=self.table,
                KeyConditionExpression="pk = :pk",
                ExpressionAttributeValues={":pk": {"S": partition_key(self.district_id, collection, shard)}},
            )
            return [_from_item(i) for i in items]

        contexts = [contextvars.copy_context() for _ in range(SHARDS)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            for items in pool.map(lambda ctx, shard: ctx.run(shard_items, shard), contexts, range(SHARDS)):
                yield from items

    def enrollments_of(self, person_ids: Iterable[str]) -> list[dict[str, Any]]:
        """The enrollments (classroom memberships) of some people: a filtered read of the collection
        (an enrollment's parent is its classroom, so there is no index by person)."""
        wanted = set(person_ids)
        return [i for i in self.collection("enrollments") if (i.get("fields") or {}).get("person") in wanted]

    def announcements_to(self, student_ids: Iterable[str]) -> list[dict[str, Any]]:
        wanted = set(student_ids)
        return [
            i
            for i in self.collection("announcements")
            if wanted & set((i.get("fields") or {}).get("recipient_ids") or [])
        ]

    # -- writes ---------------------------------------------------------------------------------

    def put_new(self, items: Iterable[dict[str, Any]]) -> int:
        """Write items (an import of the product's history): BatchWriteItem, 25 a request."""
        batch: list[dict[str, Any]] = []
        written = 0
        for item in items:
            batch.append({"PutRequest": {"Item": _to_item(item)}})
            if len(batch) == 25:
                written += self._batch(batch)
                batch = []
        if batch:
            written += self._batch(batch)
        return written

    def _batch(self, batch: list[dict[str, Any]]) -> int:
        pending = batch
        for _ in range(9):
            answer = self._client.batch_write_item(RequestItems={self.table: pending})
            pending = answer.get("UnprocessedItems", {}).get(self.table, [])
            if not pending:
                return len(batch)
        raise RuntimeError(f"DynamoDB left {len(pending)} writes to {self.table} unprocessed")

    def transact(self, writes: list[dict[str, Any]]) -> None:
        """One TransactWriteItems: all of ``writes`` or none.

        Each write is ``{"put": item, "expect": {attr: value|None}}`` (the stored item must hold those
        values; None: the attribute is absent) or ``{"update": (collection, id), ...}`` in the raw
        ``TransactItems`` form under ``"raw"``. ``TransactionConflictError`` when a condition failed.
        """
        if len(writes) > MAX_TRANSACTION_ITEMS:
            raise ValueError(f"{len(writes)} writes in one transaction; DynamoDB takes {MAX_TRANSACTION_ITEMS}")
        items = [self._transact_item(w) for w in writes]
        try:
            self._client.transact_write_items(TransactItems=items)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "TransactionCanceledException":
                raise TransactionConflictError(str(exc)) from exc
            raise

    def _transact_item(self, write: dict[str, Any]) -> dict[str, Any]:
        if "raw" in write:
            return dict(write["raw"])
        item = write["put"]
        table = write.get("table", self.table)
        put: dict[str, Any] = {"TableName": table, "Item": _to_item(item)}
        expect: dict[str, Any] | None = write.get("expect")
        if expect is not None:
            conditions, names, values = [], {}, {}
            for n, (attr, value) in enumerate(expect.items()):
                names[f"#c{n}"] = attr
                if value is None:
                    conditions.append(f"attribute_not_exists(#c{n})")
                else:
                    conditions.append(f"#c{n} = :c{n}")
                    values[f":c{n}"] = value
            put["ConditionExpression"] = " AND ".join(conditions) if conditions else "attribute_exists(pk)"
            put["ExpressionAttributeNames"] = names
            if values:
                put["ExpressionAttributeValues"] = _to_item(values)
        return {"Put": put}


def plain_items(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Items as JSON-safe dicts (what the audit keeps)."""
    return [dict(i) for i in items]


__all__ = [
    "HISTORY_COLLECTIONS",
    "MAX_TRANSACTION_ITEMS",
    "SINGLE_STUDENT_COLLECTIONS",
    "DirectoryItems",
    "TransactionConflictError",
    "history_item",
]
