"""A chunk is compressed as its lines are written (``storage.ChunkWriter``): what waits for the chunk's
last records is their compressed bytes, and the chunks read back as the lines written."""

from __future__ import annotations

import gzip
import json
import random
import tracemalloc

from rostersync.storage import ChunkWriter


class _Store:
    def __init__(self) -> None:
        self.bodies: dict[str, bytes] = {}

    def put_bytes(self, name: str, body: bytes, content_type: str) -> str:
        self.bodies[name] = body
        return name


def _user_lines(count: int) -> list[bytes]:
    """Clever users as the users list sends them: ObjectIds (random digits), names, an email, roles."""
    rng = random.Random(7)
    return [
        json.dumps(
            {
                "data": {
                    "id": f"{rng.getrandbits(96):024x}",
                    "district": "5a0c91b95c7cc000010d417c",
                    "email": f"student{n}@example.org",
                    "name": {"first": f"First{n % 997}", "last": f"Last{n % 991}"},
                    "roles": {"student": {"school": f"{rng.getrandbits(96):024x}", "grade": str(n % 12 + 1)}},
                },
                "uri": f"/v3.0/users/{n}",
            },
            separators=(",", ":"),
        ).encode()
        for n in range(count)
    ]


def test_chunks_read_back_as_the_lines_written_bounded_by_records() -> None:
    store = _Store()
    writer = ChunkWriter(store, "fetch/users/s00000", 4)  # type: ignore[arg-type]
    lines = _user_lines(10)
    for line in lines:
        writer.write_line(line)
    keys = writer.close()
    assert keys == [f"fetch/users/s00000-{n:05d}.ndjson.gz" for n in range(3)] and writer.count == 10
    assert [gzip.decompress(store.bodies[key]).splitlines() for key in keys] == [lines[:4], lines[4:8], lines[8:]]
    assert writer.close() == keys  # nothing more to flush


def test_a_chunk_waiting_for_its_last_records_holds_them_compressed() -> None:
    # Given 40,000 users (≈ 10 MiB of lines) written into a chunk of 50,000: the chunk is not written yet
    lines = _user_lines(40_000)
    users = [json.loads(line) for line in lines]
    store = _Store()
    writer = ChunkWriter(store, "fetch/users/s00000", 50_000)  # type: ignore[arg-type]
    tracemalloc.start()
    try:
        for user in users:
            writer.write(user)  # serialised here, as a slice writes what it read
        held, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert store.bodies == {}
    # Then what it holds meanwhile is its compressed bytes and one batch (the lines were held whole before)
    raw = sum(len(line) + 1 for line in lines)
    assert held < raw / 2, (held, raw)
    (key,) = writer.close()
    assert gzip.decompress(store.bodies[key]) == b"\n".join(lines) + b"\n"


def test_a_dict_is_written_as_the_compact_json_the_readers_parse() -> None:
    # Given dicts as the planner writes them: nested, with text a district sends (accents, quotes, a tab, an
    # emoji, characters JSON must escape), numbers, booleans and nulls
    records = [
        {
            "op": "update",
            "clear_edits": ["email"],
            "record": {
                "id": "per_0123",
                "provider_ids": {"clever": "5a25ffb0c1bc2a00360003ed"},
                "fields": {"given_name": 'Zoë "Z" O\'Brien', "note": "a\tb\nc\\d/e\u2028\U0001f600\x01", "n": 12},
                "managed_by_sync": True,
                "parent_id": None,
            },
        },
        {"kind": "students", "schools": [], "empty": {}, "count": -3},
    ]
    store = _Store()
    writer = ChunkWriter(store, "plan/writes", 10)  # type: ignore[arg-type]
    for record in records:
        writer.write(record)
    (key,) = writer.close()

    # Then each is one line of the compact JSON json.dumps makes, byte for byte, and reads back as written
    lines = gzip.decompress(store.bodies[key]).splitlines()
    assert lines == [json.dumps(r, separators=(",", ":"), ensure_ascii=False).encode("utf-8") for r in records]
    assert [json.loads(line) for line in lines] == records
