"""What a run wrote to the directory, record by record, with the item as it was before the write.

Undo (``rostersync runs undo``) reads it back; so may a report showing "before → after". It lives in S3
with the run (``runs/<district>/<run>/undo/…``, gzipped NDJSON, one object per plan chunk or archive
batch), never in logs, and expires with the run's other artefacts.

Writers: Upsert (one object per plan chunk: creates, updates, links, restores) and Archive (one object per
archive batch). The object for a chunk is written once, before the chunk's first directory write, with
``If-None-Match: *``: a retried chunk finds it there and keeps it, so the images are of the directory
before the run, not before the retry.

Reader API (stable, for other modules):

- ``written_records(store)`` → every ``WrittenRecord`` of a run (``store``: the run's ``RunStore``);
- ``WrittenRecord.before``: the whole directory item before the run (``None`` for a create);
- ``WrittenRecord.after_state``: ``state_digest`` of the item right after the run's write, so a later
  change (by another run or in the product) can be told by comparing ``state_digest(current item)``.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from botocore.exceptions import ClientError

from rostersync.directory.keys import COLLECTION_OF_KIND
from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind, content_hash
from rostersync.storage import RunStore

PREFIX = "undo/"
WrittenOp = Literal["create", "update", "restore", "archive"]


def state_digest(item: dict[str, Any] | None) -> str:
    """The parts of a directory item that a sync, an undo or the product changes, as one digest
    (``""`` for no item): status, management, provider links, the synced content, the product's fields
    and edits."""
    if item is None:
        return ""
    return content_hash(
        {
            "status": item.get("status", "active"),
            "managed_by_sync": bool(item.get("managed_by_sync", False)),
            "provider_ids": dict(item.get("provider_ids") or {}),
            "content_hash": item.get("content_hash", ""),
            "product_fields": dict(item.get("product_fields") or {}),
            "product_edits": dict(item.get("product_edits") or {}),
        }
    )


@dataclass(frozen=True)
class WrittenRecord:
    """One record a run wrote: how, the item before (None: the run created it) and the state after."""

    kind: Kind
    id: str
    op: WrittenOp
    before: dict[str, Any] | None
    after_state: str

    @property
    def collection(self) -> str:
        return COLLECTION_OF_KIND[self.kind]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "id": self.id, "op": self.op, "before": self.before, "after": self.after_state}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> WrittenRecord:
        return cls(
            kind=Kind(data["kind"]), id=data["id"], op=data["op"], before=data.get("before"), after_state=data["after"]
        )


def after_update(before: dict[str, Any] | None, record: DirectoryRecord, clear_edits: Iterable[str] = ()) -> str:
    """The state an ``update_synced`` (or a create's put) leaves: the record's synced part over the item."""
    cleared = set(clear_edits)
    kept = before or {}
    return state_digest(
        {
            "status": record.status,
            "managed_by_sync": record.managed_by_sync,
            "provider_ids": record.provider_ids,
            "content_hash": record.content_hash,
            "product_fields": kept.get("product_fields") or {},
            "product_edits": {k: v for k, v in (kept.get("product_edits") or {}).items() if k not in cleared},
        }
    )


def with_status(item: dict[str, Any], status: str) -> str:
    """The state of ``item`` with only its status changed (an archive or a restore by status)."""
    return state_digest({**item, "status": status})


def write_once(store: RunStore, name: str, records: Iterable[WrittenRecord]) -> bool:
    """Write ``undo/<name>.ndjson.gz`` unless it exists already (a retried chunk keeps the first
    attempt's images); True when written."""
    lines = [json.dumps(r.to_json(), separators=(",", ":"), ensure_ascii=False, default=str) for r in records]
    body = gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), compresslevel=5)
    try:
        store.put_bytes_if_absent(f"{PREFIX}{name}.ndjson.gz", body, "application/x-ndjson")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
            return False
        raise
    return True


def written_records(store: RunStore) -> Iterator[WrittenRecord]:
    """Every record the run wrote, as the run's before-image objects hold them (creates, updates and
    links, restores, archives), in the order they were written per object."""
    for key in store.list_keys(PREFIX):
        for data in store.read_ndjson(key):
            yield WrittenRecord.from_json(data)
