"""Hold the partitioned Match (``matching.partition``) to the single pass: the same planned writes, report
lines, errors, archive candidates and summary, order aside, and the same undo journal once Upsert has
written the plan's chunks. The planner tests call it from their helpers, so every planner test is also a
test of the partitioned flow."""

from __future__ import annotations

import copy
import gzip
import json
from collections import Counter
from collections.abc import Callable, Iterable
from types import SimpleNamespace
from typing import Any

from botocore.exceptions import ClientError

from rostersync.directory.repository import IndexEntry, PackedIndex
from rostersync.matching.partition import plan_partitioned
from rostersync.matching.plan import PlannedWrite
from rostersync.steps.upsert import keep_before_images
from rostersync.storage import ChunkWriter

PARTITIONS = (1, 3, 7)
# records per plan chunk here: small, so a phase's writes take several chunks
CHUNK_RECORDS = 3


class RunFiles:
    """A run's files as S3 keeps them, in memory: what ``ChunkWriter`` and the before-images write."""

    prefix = "runs/d-1/run-1/"

    def __init__(self) -> None:
        self.objects: dict[str, bytes] = {}

    def put_bytes(self, name: str, body: bytes, content_type: str) -> str:
        self.objects[self.prefix + name] = body
        return self.prefix + name

    def put_bytes_if_absent(self, name: str, body: bytes, content_type: str) -> str:
        if self.prefix + name in self.objects:  # If-None-Match: *
            raise ClientError({"Error": {"Code": "PreconditionFailed"}}, "PutObject")
        return self.put_bytes(name, body, content_type)

    def lines(self, key: str) -> list[dict[str, Any]]:
        return [json.loads(line) for line in gzip.decompress(self.objects[key]).splitlines() if line]


def undo_journal(writes_by_folder: dict[str, list[PlannedWrite]]) -> Counter[str]:
    """The records Upsert keeps for undo (``undo/…``) after writing the plan's chunks as Match names them
    (``plan/writes-…`` for the single pass, each phase's folder for the partitioned one): one object per
    chunk, each written once. The directory is empty here: what counts is that every write is there."""
    files = RunFiles()
    chunk_keys: list[str] = []
    for folder, writes in writes_by_folder.items():
        chunks = ChunkWriter(files, f"{folder}/writes", CHUNK_RECORDS)  # type: ignore[arg-type]
        for write in writes:
            chunks.write(write.to_json())
        chunk_keys += chunks.close()
    ctx = SimpleNamespace(store=files, directory=SimpleNamespace(raw_items=lambda wanted: {}))
    for key in chunk_keys:
        keep_before_images(ctx, key, [PlannedWrite.from_json(d) for d in files.lines(key)])  # type: ignore[arg-type]
    return Counter(
        json.dumps(image, sort_keys=True)
        for key in files.objects
        if key.startswith(f"{files.prefix}undo/")
        for image in files.lines(key)
    )


def packed_index(entries: dict[str, IndexEntry], provider: str) -> PackedIndex:
    """``entries`` held as Match's people phase holds the people's index."""
    packed = PackedIndex(provider)
    for provider_id, entry in entries.items():
        packed.add(provider_id, entry)
    return packed


def _bag(items: Iterable[Any], dump: Callable[[Any], Any]) -> Counter[str]:
    return Counter(json.dumps(dump(i), sort_keys=True, default=str) for i in items)


def options_copy(options: dict[str, Any]) -> dict[str, Any]:
    """The planner's options before a run (person matching claims candidates as it goes)."""
    return copy.deepcopy(options)


def assert_same_plan(
    district_id: str,
    provider: str,
    index: dict[str, Any],
    records: Callable[[str], Iterable[Any]],
    options: dict[str, Any],
    single: Any,
    errors: Iterable[Any] = (),
    deleted: Iterable[Any] = (),
) -> None:
    """``single``: the single pass's result (``writes``, ``lines``, ``errors``, ``candidates``, ``planner``);
    ``options``: a copy taken before it ran."""
    rekey = bool(options.get("rekey_people") is not None or options.get("rekey_classrooms") is not None)
    journal = undo_journal({"plan": list(single.writes)})
    assert sum(journal.values()) == len(single.writes), "the single pass: every planned write kept for undo"
    # The people phase holds the people's index packed (``PackedIndex``, as Match reads it): it must plan the same.
    packed = {**index, "people": packed_index(index.get("people", {}), provider)}
    for partitions, held in [*((p, index) for p in PARTITIONS), (3, packed)]:
        got = plan_partitioned(
            district_id,
            provider,
            held,
            records,
            partitions,
            errors=errors,
            deleted=deleted,
            rekey=rekey,
            **options_copy(options),
        )
        where = f"{partitions} partitions" + (", the people's index packed" if held is packed else "")
        assert _bag(got.writes, lambda w: w.to_json()) == _bag(single.writes, lambda w: w.to_json()), where
        assert _bag(got.lines, lambda line: line.to_json()) == _bag(single.lines, lambda line: line.to_json()), where
        assert _bag(got.errors, lambda e: e.model_dump(mode="json")) == _bag(
            single.errors, lambda e: e.model_dump(mode="json")
        ), where
        assert _bag(got.candidates, lambda c: c.to_json()) == _bag(single.candidates, lambda c: c.to_json()), where
        expected = json.loads(json.dumps(single.planner.summary.to_json(), sort_keys=True))
        assert json.loads(json.dumps(got.summary, sort_keys=True)) == expected, where
        assert undo_journal(got.writes_by_folder) == journal, f"{where}: what Upsert keeps for undo"
