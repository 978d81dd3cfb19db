"""Repositories over the directory table and the sync-state table."""

from __future__ import annotations

import contextvars
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, ItemsView, Iterable, Iterator, Mapping, ValuesView
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypeVar

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from rostersync.directory.keys import (
    COLLECTION_OF_KIND,
    COLLECTIONS,
    PAIR_COLLECTIONS,
    SHARDS,
    buckets_of_partition,
    match_bucket,
    match_bucket_key,
    match_bucket_of,
    parent_key,
    partition_key,
    provider_key,
    shard_of,
)
from rostersync.domain.records import Kind, content_hash
from rostersync.errors import DirectoryThrottledError, LinkError, LockHeldError
from rostersync.settings import (
    SettingsConflictError,
    SettingsVersion,
    SettingsVersionNotFoundError,
    SyncSettings,
)

if TYPE_CHECKING:
    from rostersync.directory.history import DirectoryItems

# DynamoDB's answers to a table or account over its throughput: botocore retried them already (standard
# mode), so one that still reaches us ends the chunk with DirectoryThrottledError, which the state
# machine retries with backoff (the writes are idempotent).
THROTTLING_CODES = frozenset(
    {
        "ProvisionedThroughputExceededException",
        "ThrottlingException",
        "RequestLimitExceeded",
        "LimitExceededException",
    }
)
# BatchWriteItem's UnprocessedItems: resent with exponential backoff and full jitter, at most this many
# times, then DirectoryThrottledError (the step fails and the state machine retries the whole chunk).
UNPROCESSED_MAX_RETRIES = 8
UNPROCESSED_BASE_SECONDS = 0.05
UNPROCESSED_MAX_SECONDS = 5.0

# What matching reads of an item (``IndexEntry``); the ByMatchBucket index projects exactly these.
INDEX_PROJECTION = "id, kind, #s, managed_by_sync, content_hash, provider_ids, parent_key, product_edits"
# The share of a collection up to which its records without a provider link are read by key rather than
# by a filtered Query of every shard (``DirectoryRepository.unlinked_of`` says why an eighth).
UNLINKED_BY_KEY = 0.125
# Unlinked index entries Match holds for that read by key (their kind and id); past this many (a first sync,
# when every account is unlinked: NYC's 3.1 M people, 1.5 GB held as whole entries) it holds none and reads
# them with the Query, as it would have anyway unless the collection had eight times as many linked.
UNLINKED_HELD_MAX = 200_000

_Read = TypeVar("_Read")  # what a shard reader turns each item into (``DirectoryRepository._scan_collection``)
_Work = TypeVar("_Work")  # one request's worth of work (``DirectoryRepository._in_parallel``)
_Done = TypeVar("_Done")  # what doing it gave

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _to_item(value: dict[str, Any]) -> dict[str, Any]:
    return {k: _serializer.serialize(v) for k, v in value.items() if v is not None}


def _from_item(item: dict[str, Any]) -> dict[str, Any]:
    """An item of DynamoDB's answer as plain values: what boto3's ``TypeDeserializer`` then ``_plain`` make of
    it, value for value."""
    return {k: _from_wire(v) for k, v in item.items()}


def _from_wire(value: dict[str, Any]) -> Any:
    """One attribute value: strings, booleans, maps, lists, whole numbers and nulls (every value the sync
    writes) read from their one type key, 3-4 x faster than the generic deserialiser (a product account
    31-64 -> 9-18 us, interleaved; a first sync into a product that has NYC's people reads 3.1 M of them);
    any other value (sets, binary, a number with a fraction or an exponent) the generic way."""
    if len(value) == 1:
        ((kind, data),) = value.items()
        if kind == "S" or kind == "BOOL":
            return data
        if kind == "M":
            return {k: _from_wire(v) for k, v in data.items()}
        if kind == "L":
            return [_from_wire(v) for v in data]
        if kind == "N" and data.isascii() and (data[1:] if data[:1] == "-" else data).isdigit():
            return int(data)
        if kind == "NULL":
            return None
    return _plain(_deserializer.deserialize(value))


def query_items(client: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Every item a Query answers, page after page (as DynamoDB wire items)."""
    while True:
        page = client.query(**kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


@contextmanager
def _throttling_as_domain_error(table: str) -> Iterator[None]:
    """A throttling ``ClientError`` that outlived botocore's retries becomes ``DirectoryThrottledError``."""
    try:
        yield
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in THROTTLING_CODES:
            raise DirectoryThrottledError(f"DynamoDB throttled writes to {table} ({code}) after retries") from exc
        raise


def _plain(value: Any) -> Any:
    """DynamoDB numbers come back as Decimal; the directory only stores ints."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if type(value).__name__ == "Decimal":
        return int(value)
    return value


@dataclass(frozen=True)
class DirectoryRecord:
    """One record of the product's directory, as the sync stores it."""

    id: str
    kind: Kind
    status: str  # "active" | "archived"
    managed_by_sync: bool
    provider_ids: dict[str, str]
    fields: dict[str, Any]
    content_hash: str = ""
    parent_id: str = ""
    # What the product keeps on the record beyond the synced fields (a school's timezone…): written by
    # the product, never by an update from the sync.
    product_fields: dict[str, Any] = field(default_factory=dict)
    # Synced fields a person (or the school) edited in the product: field → the product's value. The
    # product writes them; they win over the synced value, and the sync clears one only when the settings
    # say edited contact details are overwritten.
    product_edits: dict[str, Any] = field(default_factory=dict)

    def effective_fields(self) -> dict[str, Any]:
        """What the product shows: its own fields, the synced fields, and its edits over both."""
        return {**self.product_fields, **self.fields, **self.product_edits}

    def index_entry(self) -> IndexEntry:
        """The record as the matching index holds it (``DirectoryRepository.index`` builds the same from
        projected items)."""
        return IndexEntry(
            id=self.id,
            kind=self.kind,
            status=self.status,
            managed_by_sync=self.managed_by_sync,
            content_hash=self.content_hash,
            provider_ids=self.provider_ids,
            parent_id=self.parent_id,
            edited={name: edit_digest(value) for name, value in self.product_edits.items()}
            if self.product_edits
            else NO_EDITS,
        )

    def to_item(self, district_id: str, provider: str | None = None) -> dict[str, Any]:
        collection = COLLECTION_OF_KIND[self.kind]
        item: dict[str, Any] = {
            "pk": partition_key(district_id, collection, shard_of(self.id)),
            "sk": self.id,
            "district_id": district_id,
            "id": self.id,
            "kind": self.kind.value,
            "status": self.status,
            "managed_by_sync": self.managed_by_sync,
            "provider_ids": self.provider_ids,
            "content_hash": self.content_hash,
            "fields": self.fields,
        }
        if self.product_fields:
            item["product_fields"] = self.product_fields
        if self.product_edits:
            item["product_edits"] = self.product_edits
        primary = provider or next(iter(self.provider_ids), None)
        if primary and primary in self.provider_ids:
            if collection in PAIR_COLLECTIONS:
                # the ByMatchBucket index: a Match partition reads only the buckets of its share. Not in
                # ByProviderId as well: a pair is looked up by its bucket (``find_by_provider_id``), and an
                # entry there would cost a write unit more for each of the district's millions of pairs.
                item["match_bucket"] = match_bucket(district_id, collection, primary, self.provider_ids[primary])
            else:
                item["provider_key"] = provider_key(district_id, collection, primary, self.provider_ids[primary])
        if self.parent_id:
            item["parent_key"] = parent_key(district_id, self.parent_id)
        return item

    @classmethod
    def from_item(cls, item: dict[str, Any]) -> DirectoryRecord:
        return cls(
            id=item["id"],
            kind=Kind(item["kind"]),
            status=item.get("status", "active"),
            managed_by_sync=bool(item.get("managed_by_sync", False)),
            provider_ids=dict(item.get("provider_ids") or {}),
            fields=dict(item.get("fields") or {}),
            content_hash=item.get("content_hash", ""),
            parent_id=(item.get("parent_key") or "").split("#", 1)[-1] if item.get("parent_key") else "",
            product_fields=dict(item.get("product_fields") or {}),
            product_edits=dict(item.get("product_edits") or {}),
        )


def _index_entry(item: dict[str, Any]) -> IndexEntry:
    edits = item.get("product_edits") or {}
    return IndexEntry(
        id=item["id"],
        kind=Kind(item["kind"]),
        # The status and the providers' names are a handful of words the answer spells out in every item:
        # kept once each (the people phase holds an entry per person of the district).
        status=sys.intern(item.get("status", "active")),
        managed_by_sync=bool(item.get("managed_by_sync", False)),
        content_hash=item.get("content_hash", ""),
        provider_ids=_provider_ids(item.get("provider_ids") or {}),
        parent_id=str(item.get("parent_key") or "").split("#", 1)[-1],
        edited={name: edit_digest(value) for name, value in edits.items()} if edits else NO_EDITS,
    )


def _index_entry_from_wire(raw: dict[str, Any]) -> IndexEntry:
    """``_index_entry(_from_item(raw))``, read straight from the answer's item: the index's attributes are
    strings, a boolean and a map of strings, so each is taken from its one type key rather than through the
    generic deserialiser (the people phase reads 3.1 M entries at NYC, a partition 86 k). An item with
    product edits, or a value of another type than those, goes the generic way."""
    edits = raw.get("product_edits")
    if edits is not None and edits != _NO_WIRE_EDITS:
        return _index_entry(_from_item(raw))
    try:
        ids, status, managed = raw.get("provider_ids"), raw.get("status"), raw.get("managed_by_sync")
        content, parent = raw.get("content_hash"), raw.get("parent_key")
        return IndexEntry(
            id=raw["id"]["S"],
            kind=Kind(raw["kind"]["S"]),
            status=sys.intern(status["S"] if status is not None else "active"),
            managed_by_sync=bool(managed["BOOL"]) if managed is not None else False,
            content_hash=content["S"] if content is not None else "",
            provider_ids=_provider_ids({name: value["S"] for name, value in ids["M"].items()} if ids else {}),
            parent_id=(parent["S"] if parent is not None else "").split("#", 1)[-1],
        )
    except (KeyError, TypeError, AttributeError):
        return _index_entry(_from_item(raw))


_NO_WIRE_EDITS: dict[str, Any] = {"M": {}}


class OneProviderId(Mapping[str, str]):
    """A record's provider ids when it has one, as nearly every record has: a read-only mapping of one
    entry in two slots (56 bytes, where a dict of one entry takes 184: the people phase holds one per
    person of the district)."""

    __slots__ = ("_name", "_id")

    def __init__(self, name: str, provider_id: str) -> None:
        self._name = name
        self._id = provider_id

    def __getitem__(self, key: str) -> str:
        if key == self._name:
            return self._id
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter((self._name,))

    def __len__(self) -> int:
        return 1

    def __contains__(self, key: object) -> bool:
        return key == self._name

    def get(self, key: str, default: Any = None) -> Any:
        return self._id if key == self._name else default

    def __repr__(self) -> str:
        return repr({self._name: self._id})


def _provider_ids(ids: dict[str, Any]) -> Mapping[str, str]:
    """An index entry's provider ids, the providers' names kept once each (a handful of words)."""
    if len(ids) == 1:
        [(name, provider_id)] = ids.items()
        return OneProviderId(sys.intern(name), provider_id)
    return {sys.intern(name): provider_id for name, provider_id in ids.items()}


def as_written_now(item: dict[str, Any], district_id: str) -> dict[str, Any]:
    """A whole directory item as ``DirectoryRecord.to_item`` writes it now: an enrollment or guardian link
    linked to a provider carries the ``match_bucket`` its link gives it and no ``provider_key`` (an item kept
    before the ``ByMatchBucket`` index existed had no bucket; one kept before pairs left ``ByProviderId`` had
    the key). Any other item is returned as it is."""
    collection = _pair_collection(item, district_id)
    if collection is None:
        return item
    now = {name: value for name, value in item.items() if name not in ("provider_key", "match_bucket")}
    link = _pair_link(item, district_id, collection)
    if link:
        now["match_bucket"] = match_bucket(district_id, collection, *link)
    return now


def _pair_collection(item: dict[str, Any], district_id: str) -> str | None:
    pk = str(item.get("pk", ""))
    return next((c for c in PAIR_COLLECTIONS if pk.startswith(f"{district_id}#{c}#")), None)


def _pair_link(item: dict[str, Any], district_id: str, collection: str) -> tuple[str, str] | None:
    """The provider link a pair item is bucketed by: the one its ``provider_key`` names (an item written before
    pairs left ``ByProviderId``), else the one its ``match_bucket`` is of (the provider that wrote it), else its
    first, as ``to_item`` takes it."""
    links = [(p, i) for p, i in (item.get("provider_ids") or {}).items() if i]
    prefix = f"{district_id}#{collection}#"
    key = str(item.get("provider_key", ""))
    provider, _, provider_id = key[len(prefix) :].partition(":")
    if key.startswith(prefix) and (provider, provider_id) in links:
        return provider, provider_id
    bucket = item.get("match_bucket")
    return next((link for link in links if match_bucket(district_id, collection, *link) == bucket), None) or next(
        iter(links), None
    )


def edit_digest(value: Any) -> str:
    """The digest matching compares an edited value by, so the index holds no personal data."""
    return content_hash({"value": value})


class _NoEdits(Mapping[str, str]):
    """No edits: empty and read-only, so one serves every entry; a copy of it is itself."""

    def __getitem__(self, key: str) -> str:
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0

    def __copy__(self) -> _NoEdits:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _NoEdits:
        return self

    def __repr__(self) -> str:
        return "{}"


# The edits of an entry the product never edited (most of them): one read-only mapping shared by all.
NO_EDITS: Mapping[str, str] = _NoEdits()


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """What matching needs to know of an existing record: no personal data, a few bytes each (slots, and
    one shared empty ``edited``: the people phase holds one per person of the district)."""

    id: str
    kind: Kind
    status: str
    managed_by_sync: bool
    content_hash: str
    provider_ids: Mapping[str, str]
    parent_id: str = ""
    # field → digest of the product's edited value (``DirectoryRecord.product_edits``)
    edited: Mapping[str, str] = field(default_factory=lambda: NO_EDITS)


_PACKED_KINDS = tuple(Kind)
_PACKED_STATUSES = ("active", "archived")
_PACKED_SEPARATOR = "\x1f"


def pack_entry(provider: str, provider_id: str, entry: IndexEntry) -> bytes | None:
    """``entry`` packed as ``PackedIndex`` holds it under ``provider_id``; None when it is not of the shape
    that packs (it is then held whole)."""
    if (
        entry.edited
        or len(entry.provider_ids) != 1
        or entry.provider_ids.get(provider) != provider_id
        or entry.status not in _PACKED_STATUSES
        or entry.kind not in _PACKED_KINDS
        or type(entry.managed_by_sync) is not bool
    ):
        return None
    text = (entry.id, entry.content_hash, entry.parent_id)
    if any(_PACKED_SEPARATOR in part for part in text):
        return None
    flags = bytes((_PACKED_KINDS.index(entry.kind), _PACKED_STATUSES.index(entry.status), int(entry.managed_by_sync)))
    return flags + _PACKED_SEPARATOR.join(text).encode("utf-8")


class PackedIndex(Mapping[str, IndexEntry]):
    """A collection's index keyed by one provider's ids, each entry held packed in one ``bytes`` and made into
    its ``IndexEntry`` when it is looked up: the people phase holds one per person of the district (NYC:
    3.1 M), where an entry held whole took about 480 bytes (docs/SCALE.md).

    An entry is packed when it is what nearly every entry is: linked to this provider only, under the key it
    is held by, with no product edits, an active or archived status, and no unit separator in its id, hash or
    parent. Any other is held whole, as given. Either way a lookup gives an entry equal to the one added, and
    iteration keeps the order they were added in.
    """

    __slots__ = ("_entries", "_provider")

    def __init__(self, provider: str) -> None:
        self._provider = sys.intern(provider)
        self._entries: dict[str, bytes | IndexEntry] = {}

    def add(self, provider_id: str, entry: IndexEntry) -> None:
        self.add_held(provider_id, pack_entry(self._provider, provider_id, entry) or entry)

    def add_held(self, provider_id: str, held: bytes | IndexEntry) -> None:
        """Add an entry as ``DirectoryRepository.held_index`` gives it: packed (``pack_entry``) or whole."""
        self._entries[provider_id] = held

    def _entry(self, provider_id: str, held: bytes | IndexEntry) -> IndexEntry:
        if type(held) is not bytes:
            return held  # type: ignore[return-value]
        record_id, digest, parent = held[3:].decode("utf-8").split(_PACKED_SEPARATOR)
        return IndexEntry(
            id=record_id,
            kind=_PACKED_KINDS[held[0]],
            status=_PACKED_STATUSES[held[1]],
            managed_by_sync=bool(held[2]),
            content_hash=digest,
            provider_ids=OneProviderId(self._provider, provider_id),
            parent_id=parent,
        )

    def managed_active(self) -> Counter[Kind]:
        """How many entries of each kind are managed by sync and active, read from the packed flags (the
        planner counts them once a run: no entry is unpacked for it)."""
        counts: Counter[Kind] = Counter()
        active = _PACKED_STATUSES.index("active")
        for held in self._entries.values():
            if type(held) is bytes:
                if held[2] and held[1] == active:
                    counts[_PACKED_KINDS[held[0]]] += 1
            elif held.managed_by_sync and held.status == "active":  # type: ignore[union-attr]
                counts[held.kind] += 1  # type: ignore[union-attr]
        return counts

    def __getitem__(self, provider_id: str) -> IndexEntry:
        return self._entry(provider_id, self._entries[provider_id])

    def get(self, provider_id: str, default: Any = None) -> Any:
        held = self._entries.get(provider_id)
        return default if held is None else self._entry(provider_id, held)

    def __contains__(self, provider_id: object) -> bool:
        return provider_id in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def items(self) -> ItemsView[str, IndexEntry]:
        return _PackedItems(self)

    def values(self) -> ValuesView[IndexEntry]:
        return _PackedValues(self)


class _PackedItems(ItemsView[str, IndexEntry]):
    """A ``PackedIndex``'s items, each entry unpacked once as it is passed."""

    _mapping: PackedIndex

    def __iter__(self) -> Iterator[tuple[str, IndexEntry]]:
        index = self._mapping
        return ((pid, index._entry(pid, held)) for pid, held in index._entries.items())


class _PackedValues(ValuesView[IndexEntry]):
    """A ``PackedIndex``'s entries, each unpacked once as it is passed."""

    _mapping: PackedIndex

    def __iter__(self) -> Iterator[IndexEntry]:
        index = self._mapping
        return (index._entry(pid, held) for pid, held in index._entries.items())


def _unlinked_record(item: dict[str, Any], provider: str, convert: Callable[[Any], Any] | None) -> Any:
    """An item read as a record not linked to ``provider``, made into what the caller keeps by ``convert``;
    None when it is linked after all (since the index or the filter was read) or ``convert`` drops it."""
    record = DirectoryRecord.from_item(item)
    if provider in record.provider_ids:
        return None
    return record if convert is None else convert(record)


class DirectoryRepository:
    """The product's directory of one district.

    Parameters
    ----------
    client:
        A boto3 DynamoDB client (thread-safe; shared by the parallel shard readers).
    table_name:
        The directory table.
    district_id:
        Every key read or written starts with it: one district never touches another's records.
    """

    def __init__(
        self,
        client: Any,
        table_name: str,
        district_id: str,
        threads: int = 8,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._client = client
        self._table = table_name
        self.district_id = district_id
        self._threads = threads
        self._sleep = sleep  # injectable, so tests of the backoff never wait
        self.write_requests = 0
        self._counting = threading.Lock()  # writes are sent from a pool (``_in_parallel``)

    @property
    def threads(self) -> int:
        """How many requests it sends at once (the function's ``IO_THREADS``)."""
        return self._threads

    def items(self) -> DirectoryItems:
        """Whole items of this district (history collections, clean-ups and merges)."""
        from rostersync.directory.history import DirectoryItems

        return DirectoryItems(self._client, self._table, self.district_id)

    # -- writes ---------------------------------------------------------------------------------

    def put_records(self, records: Iterable[DirectoryRecord], provider: str | None = None) -> int:
        """Write records with BatchWriteItem, 25 a request, up to ``threads`` requests in flight; return how
        many were written. (A plan chunk's 5,000 creates are 200 requests: sent one after another, an Upsert
        invocation would wait on DynamoDB's answer 200 times, and 20 of them could not offer the table its
        write rate.)"""

        def batches() -> Iterator[list[dict[str, Any]]]:
            batch: list[dict[str, Any]] = []
            for record in records:
                batch.append({"PutRequest": {"Item": _to_item(record.to_item(self.district_id, provider))}})
                if len(batch) == 25:
                    yield batch
                    batch = []
            if batch:
                yield batch

        return sum(self._in_parallel(self._write_batch, batches()))

    def update_many(self, updates: Iterable[tuple[DirectoryRecord, Iterable[str]]], provider: str | None = None) -> int:
        """``update_synced`` of each (record, product edits the roster's values replace), up to ``threads``
        requests in flight (an UpdateItem writes one record: a night that changes many, a new school year's
        grades, would otherwise wait on DynamoDB once per record); return how many were written."""

        def update(one: tuple[DirectoryRecord, Iterable[str]]) -> int:
            record, clear_edits = one
            self.update_synced(record, provider, clear_edits)
            return 1

        return sum(self._in_parallel(update, updates))

    def _in_parallel(self, send: Callable[[_Work], _Done], work: Iterable[_Work]) -> list[_Done]:
        """``send`` each piece of ``work`` (a request's worth) from up to ``threads`` threads, each call in a
        copy of the caller's context (the invocation's credentials, ``rostersync.aws``), taking the next piece
        as a thread frees up; return what the calls returned, in no particular order. The first failure stops
        new pieces being sent: the requests in flight end, then it is raised (the step fails; its reads and
        writes are idempotent, so the state machine's retry finishes them)."""
        if self._threads <= 1:
            return [send(piece) for piece in work]
        results: list[_Done] = []
        failure: BaseException | None = None
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            flying: set[Future[_Done]] = set()

            def settle(done: set[Future[_Done]]) -> None:
                nonlocal failure
                for future in done:
                    error = future.exception()
                    if error is None:
                        results.append(future.result())
                    elif failure is None:
                        failure = error

            for piece in work:
                if len(flying) >= self._threads:
                    done, flying = wait(flying, return_when=FIRST_COMPLETED)
                    settle(done)
                if failure is not None:
                    break
                flying.add(pool.submit(contextvars.copy_context().run, send, piece))
            settle(wait(flying).done)
        if failure is not None:
            raise failure
        return results

    def _count_request(self) -> None:
        with self._counting:
            self.write_requests += 1

    def _write_batch(self, requests: list[dict[str, Any]]) -> int:
        """One BatchWriteItem, resending what DynamoDB leaves unprocessed with backoff and full jitter;
        ``DirectoryThrottledError`` after ``UNPROCESSED_MAX_RETRIES`` resends (or a throttling error).
        Returns how many records it wrote."""
        pending = requests
        for attempt in range(UNPROCESSED_MAX_RETRIES + 1):
            if attempt:
                ceiling = min(UNPROCESSED_MAX_SECONDS, UNPROCESSED_BASE_SECONDS * 2**attempt)
                self._sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not security
            self._count_request()
            with _throttling_as_domain_error(self._table):
                answer = self._client.batch_write_item(RequestItems={self._table: pending})
            pending = answer.get("UnprocessedItems", {}).get(self._table, [])
            if not pending:
                return len(requests)
        raise DirectoryThrottledError(
            f"DynamoDB left {len(pending)} of {len(requests)} writes to {self._table} unprocessed after "
            f"{UNPROCESSED_MAX_RETRIES} resends with backoff: the table is throttled; the chunk will be retried"
        )

    def update_synced(
        self, record: DirectoryRecord, provider: str | None = None, clear_edits: Iterable[str] = ()
    ) -> None:
        """Update a record's synced part in place, keeping what the product owns on the item.

        ``clear_edits`` names product edits the roster's value replaces (the settings allow overwriting
        edited contact details); every other edit stays.
        """
        item = record.to_item(self.district_id, provider)
        synced = {
            name: item[name]
            for name in (
                "kind",
                "status",
                "managed_by_sync",
                "provider_ids",
                "content_hash",
                "fields",
                "provider_key",
                "match_bucket",
                "parent_key",
                "district_id",
                "id",
            )
            if name in item
        }
        names = {f"#a{i}": name for i, name in enumerate(synced)}
        values = {f":v{i}": value for i, value in enumerate(synced.values())}
        expression = "SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(synced)))
        # A record that lost its parent or provider link must leave those indexes too.
        dropped = [name for name in ("provider_key", "match_bucket", "parent_key") if name not in synced]
        removals = []
        for n, name in enumerate(dropped):
            names[f"#r{n}"] = name
            removals.append(f"#r{n}")
        if clear_edits:
            names["#edits"] = "product_edits"
            for n, name in enumerate(clear_edits):
                names[f"#e{n}"] = name
                removals.append(f"#edits.#e{n}")
        if removals:
            expression += " REMOVE " + ", ".join(removals)
        self._count_request()
        with _throttling_as_domain_error(self._table):
            self._client.update_item(
                TableName=self._table,
                Key=_to_item({"pk": item["pk"], "sk": item["sk"]}),
                UpdateExpression=expression,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item(values),
            )

    def set_status(self, kind: Kind, record_id: str, status: str) -> DirectoryRecord | None:
        """Archive or restore one sync-managed record in place (never delete).

        Returns the record as it now stands, or None if it is not (or no longer) sync-managed.
        """
        collection = COLLECTION_OF_KIND[kind]
        self.write_requests += 1
        try:
            answer = self._client.update_item(
                TableName=self._table,
                Key=_to_item({"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id}),
                UpdateExpression="SET #status = :status, status_changed_at = :now",
                ConditionExpression="attribute_exists(pk) AND managed_by_sync = :true",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues=_to_item(
                    {":status": status, ":true": True, ":now": datetime.now(UTC).isoformat()}
                ),
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return DirectoryRecord.from_item(_from_item(answer["Attributes"]))

    # -- provider links (schools match, classrooms match, people link) -------------------------------

    def link_provider_id(
        self, kind: Kind, record_id: str, provider: str, provider_id: str, replace: bool = False
    ) -> bool:
        """Store ``provider_ids[provider] = provider_id`` on an existing record, so the sync matches it.

        Sets ``provider_key`` too (the ``ByProviderId`` index), or for an enrollment or guardian link its
        ``match_bucket`` (the ``ByMatchBucket`` index; a pair is not in ``ByProviderId``). Returns False
        when the record already carried exactly this link (nothing written), True when it was written.
        Raises ``LinkError`` if the record does not exist, if another record of the collection carries this
        provider id, or if the record is linked to another id of this provider (unless ``replace``).
        """
        collection = COLLECTION_OF_KIND[kind]
        current = self.get(kind, record_id)
        if current is None:
            raise LinkError(f"no {collection} record {record_id!r} in district {self.district_id}")
        if current.provider_ids.get(provider) == provider_id:
            return False
        holder = self.find_by_provider_id(kind, provider, provider_id)
        if holder is not None and holder.id != record_id:
            raise LinkError(f"{provider} id {provider_id} is already linked to {collection} record {holder.id}")
        previous = current.provider_ids.get(provider)
        if previous and not replace:
            raise LinkError(
                f"{collection} record {record_id} is already linked to {provider} id {previous}; "
                "unlink it first or replace the link"
            )
        key = _to_item({"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id})
        names = {"#ids": "provider_ids", "#p": provider, "#key": "provider_key"}
        values: dict[str, Any] = {":id": provider_id}
        # Only if the link is still what was read: a concurrent link is refused, not overwritten.
        if previous:
            condition = "attribute_exists(pk) AND #ids.#p = :previous"
            values[":previous"] = previous
        else:
            condition = "attribute_exists(pk) AND attribute_not_exists(#ids.#p)"
        self.write_requests += 1
        if collection in PAIR_COLLECTIONS:  # in the ByMatchBucket index by this link, and not in ByProviderId
            names["#bucket"] = "match_bucket"
            values[":index"] = match_bucket(self.district_id, collection, provider, provider_id)
            index, after = "#bucket = :index", " REMOVE #key"
        else:
            values[":index"] = provider_key(self.district_id, collection, provider, provider_id)
            index, after = "#key = :index", ""
        try:
            if "provider_ids" in self._raw_attributes(key):
                expression = f"SET #ids.#p = :id, {index}{after}"
            else:  # a product item without the map: a nested SET would fail
                expression = f"SET #ids = :ids, {index}{after}"
                values[":ids"] = {provider: values.pop(":id")}
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item(values),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                raise LinkError(f"{collection} record {record_id} changed while linking it; try again") from exc
            raise
        return True

    def unlink_provider_id(self, kind: Kind, record_id: str, provider: str) -> bool:
        """Remove the record's link to ``provider``; False when it had none (nothing written).

        The ``ByProviderId`` entry goes too, or points at the record's remaining provider link.
        """
        collection = COLLECTION_OF_KIND[kind]
        current = self.get(kind, record_id)
        if current is None:
            raise LinkError(f"no {collection} record {record_id!r} in district {self.district_id}")
        if provider not in current.provider_ids:
            return False
        key = _to_item({"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id})
        names = {"#ids": "provider_ids", "#p": provider, "#key": "provider_key"}
        values: dict[str, Any] = {":previous": current.provider_ids[provider]}
        remaining = {p: i for p, i in current.provider_ids.items() if p != provider}
        pair = collection in PAIR_COLLECTIONS
        if pair:
            names["#bucket"] = "match_bucket"
        if remaining and pair:  # in the ByMatchBucket index by the other link (and not in ByProviderId)
            other, other_id = next(iter(remaining.items()))
            expression = "REMOVE #ids.#p, #key SET #bucket = :bucket"
            values[":bucket"] = match_bucket(self.district_id, collection, other, other_id)
        elif remaining:
            other, other_id = next(iter(remaining.items()))
            expression = "REMOVE #ids.#p SET #key = :key"
            values[":key"] = provider_key(self.district_id, collection, other, other_id)
        else:
            expression = "REMOVE #ids.#p, #key" + (", #bucket" if pair else "")
        self.write_requests += 1
        try:
            self._client.update_item(
                TableName=self._table,
                Key=key,
                UpdateExpression=expression,
                ConditionExpression="attribute_exists(pk) AND #ids.#p = :previous",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item(values),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                changed = f"{collection} record {record_id} changed while unlinking it; try again"
                raise LinkError(changed) from exc
            raise
        return True

    def _raw_attributes(self, key: dict[str, Any]) -> set[str]:
        answer = self._client.get_item(TableName=self._table, Key=key, ConsistentRead=True)
        return set(answer.get("Item", {}))

    # -- reads ----------------------------------------------------------------------------------

    def _query_partition(
        self,
        pk: str,
        projection: str | None,
        without_provider: str | None,
        convert: Callable[[dict[str, Any]], _Read],
        wire: bool = False,
    ) -> list[_Read]:
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": pk}},
        }
        if projection:
            kwargs["ProjectionExpression"] = projection
            kwargs["ExpressionAttributeNames"] = {"#s": "status"}
        if without_provider:
            # Only records not linked to this provider come back (the rest are filtered at the table).
            kwargs["FilterExpression"] = "attribute_not_exists(provider_ids.#provider)"
            kwargs.setdefault("ExpressionAttributeNames", {})["#provider"] = without_provider
        if wire:
            return [convert(i) for i in query_items(self._client, **kwargs)]
        return [convert(_from_item(i)) for i in query_items(self._client, **kwargs)]

    def _scan_collection(
        self,
        collection: str,
        convert: Callable[[dict[str, Any]], _Read],
        projection: str | None = None,
        without_provider: str | None = None,
        wire: bool = False,
    ) -> Iterator[_Read]:
        """Query the collection's shards in parallel (one partition each), in shard order. ``convert`` takes
        each item as a plain dict, or (``wire``) as the answer's item.

        Each reader turns its items into what the caller keeps (``convert``) as each page arrives: the
        shards a caller has not reached yet wait as those, never as a whole shard's items as plain dicts
        (readers that ran ahead of the people phase could hold every person of the district so, a few times
        the size of the ``IndexEntry`` the phase keeps of each)."""
        pks = [partition_key(self.district_id, collection, shard) for shard in range(SHARDS)]
        # Each reader runs in a copy of the caller's context, so it sees the invocation's credentials
        # (rostersync.aws.invocation_session) wherever it creates a client.
        contexts = [contextvars.copy_context() for _ in pks]
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            readers = pool.map(
                lambda ctx, pk: ctx.run(self._query_partition, pk, projection, without_provider, convert, wire),
                contexts,
                pks,
            )
            for items in readers:
                yield from items

    def records(self, collection: str) -> Iterator[DirectoryRecord]:
        """Every record of a collection (schools, classrooms, people, enrollments, guardian_links)."""
        return self._scan_collection(collection, DirectoryRecord.from_item)

    def index(self, collection: str) -> Iterator[IndexEntry]:
        """The matching index of a collection: ids, status, hashes and provider links only."""
        return self._scan_collection(collection, _index_entry_from_wire, INDEX_PROJECTION, wire=True)

    def held_index(self, collection: str, provider: str) -> Iterator[tuple[str | None, bytes | IndexEntry]]:
        """The matching index of a collection as ``PackedIndex`` holds it: (the entry's ``provider`` id, the
        entry packed, or whole when it does not pack), or (None, the entry) for one not linked to
        ``provider``. Each shard's reader packs its entries as they arrive, so the shards the caller has
        not reached yet wait packed (the readers run ahead of the caller: held whole, most of the people's
        entries could wait so at once)."""
        provider = sys.intern(provider)

        def held(raw: dict[str, Any]) -> tuple[str | None, bytes | IndexEntry]:
            entry = _index_entry_from_wire(raw)
            provider_id = entry.provider_ids.get(provider)
            if provider_id is None:
                return None, entry
            return provider_id, pack_entry(provider, provider_id, entry) or entry

        return self._scan_collection(collection, held, INDEX_PROJECTION, wire=True)

    def pair_index(self, collection: str, provider: str, partitions: int, partition: int) -> Iterator[IndexEntry]:
        """A Match partition's share of the enrollments' or guardian links' index: the entries linked to
        ``provider`` whose provider id is in one of the partition's buckets (``keys.buckets_of_partition``),
        read from the ``ByMatchBucket`` index, a Query per bucket, in parallel. Nothing of the other
        partitions' shares is read.

        The index is eventually consistent (docs/ARCHITECTURE.md, "Data model" says what a late entry does).
        """
        if collection not in PAIR_COLLECTIONS:
            raise ValueError(f"{collection} is not indexed by match bucket")
        keys = [
            match_bucket_key(self.district_id, collection, provider, b)
            for b in buckets_of_partition(partitions, partition)
        ]

        def read(key: str) -> list[IndexEntry]:
            items = query_items(
                self._client,
                TableName=self._table,
                IndexName="ByMatchBucket",
                KeyConditionExpression="match_bucket = :b",
                ExpressionAttributeValues={":b": {"S": key}},
                ProjectionExpression=INDEX_PROJECTION,
                ExpressionAttributeNames={"#s": "status"},
            )
            return [_index_entry_from_wire(i) for i in items]

        contexts = [contextvars.copy_context() for _ in keys]
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            for entries in pool.map(lambda ctx, key: ctx.run(read, key), contexts, keys):
                yield from entries

    def pair_index_from_table(
        self, collection: str, provider: str, partitions: int, partition: int
    ) -> tuple[list[IndexEntry], int]:
        """The same share as ``pair_index``, read from the table: every shard of the collection, keeping
        the partition's entries (in the readers), for a district whose older items may not carry
        ``match_bucket`` yet. Also returns how many of the share do not carry the bucket ``pair_index``
        would find them in: when no partition finds one, the district can be read from the index."""
        buckets = set(buckets_of_partition(partitions, partition))
        pks = [partition_key(self.district_id, collection, shard) for shard in range(SHARDS)]
        contexts = [contextvars.copy_context() for _ in pks]

        def read(pk: str) -> tuple[list[IndexEntry], int]:
            kwargs: dict[str, Any] = {
                "TableName": self._table,
                "KeyConditionExpression": "pk = :pk",
                "ExpressionAttributeValues": {":pk": {"S": pk}},
                "ProjectionExpression": INDEX_PROJECTION + ", match_bucket",
                "ExpressionAttributeNames": {"#s": "status"},
            }
            kept, unbucketed = [], 0
            for raw in query_items(self._client, **kwargs):
                item = _from_item(raw)
                provider_id = (item.get("provider_ids") or {}).get(provider)
                if provider_id is None or match_bucket_of(provider_id) not in buckets:
                    continue
                kept.append(_index_entry(item))
                if item.get("match_bucket") != match_bucket(self.district_id, collection, provider, provider_id):
                    unbucketed += 1
            return kept, unbucketed

        entries: list[IndexEntry] = []
        missing = 0
        with ThreadPoolExecutor(max_workers=self._threads) as pool:
            for kept, unbucketed in pool.map(lambda ctx, pk: ctx.run(read, pk), contexts, pks):
                entries.extend(kept)
                missing += unbucketed
        return entries, missing

    def bucket_pairs(self) -> int:
        """Give every enrollment and guardian link linked to a provider the ``match_bucket`` its link gives
        it, where it lacks it (items written before the ``ByMatchBucket`` index existed); return how many
        were written. A one-off per district (``rostersync directory index-pairs``); each write is
        conditional on the item's link being what was read, so a record relinked meanwhile is left alone."""
        written = 0
        for collection in PAIR_COLLECTIONS:
            projection = "pk, sk, district_id, provider_ids, provider_key, match_bucket"
            for pk in (partition_key(self.district_id, collection, shard) for shard in range(SHARDS)):
                kwargs: dict[str, Any] = {
                    "TableName": self._table,
                    "KeyConditionExpression": "pk = :pk",
                    "ExpressionAttributeValues": {":pk": {"S": pk}},
                    "ProjectionExpression": projection,
                }
                for raw in query_items(self._client, **kwargs):
                    item = _from_item(raw)
                    link = _pair_link(item, self.district_id, collection)
                    if link is None:
                        continue
                    wanted = match_bucket(self.district_id, collection, *link)
                    if item.get("match_bucket") == wanted:
                        continue
                    self.write_requests += 1
                    try:
                        with _throttling_as_domain_error(self._table):
                            self._client.update_item(
                                TableName=self._table,
                                Key=_to_item({"pk": item["pk"], "sk": item["sk"]}),
                                # and out of ByProviderId, as the sync writes pairs now (``to_item``): in the
                                # same write, as it is made anyway (a pair already bucketed keeps its entry
                                # there until the sync next updates it: harmless, nothing looks pairs up in it)
                                UpdateExpression="SET match_bucket = :b REMOVE provider_key",
                                ConditionExpression="provider_ids.#p = :id",
                                ExpressionAttributeNames={"#p": link[0]},
                                ExpressionAttributeValues=_to_item({":b": wanted, ":id": link[1]}),
                            )
                    except ClientError as exc:
                        if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                            raise
                        continue
                    written += 1
        return written

    def unlinked(
        self, collection: str, provider: str, convert: Callable[[DirectoryRecord], Any] | None = None
    ) -> Iterator[Any]:
        """Records of a collection without a link to ``provider``: the product's own, or another provider's.
        Matching looks among them for a roster record's existing account (by email, student id…); on a
        re-sync, when nearly every record is linked, the table filters almost all of them out.

        ``convert`` makes each record into what the caller keeps (None: nothing), in the shard's reader: on
        a district's first sync every account the product has is unlinked (NYC: 3.1 M people), and readers
        that run ahead of the caller would otherwise hold shards of them as whole records."""

        def kept(item: dict[str, Any]) -> Any:
            return _unlinked_record(item, provider, convert)

        for found in self._scan_collection(collection, kept, without_provider=provider):
            if found is not None:
                yield found

    def unlinked_of(
        self,
        collection: str,
        provider: str,
        unlinked: list[tuple[Kind, str]] | None,
        indexed: int,
        convert: Callable[[DirectoryRecord], Any] | None = None,
    ) -> Iterator[Any]:
        """The records of ``unlinked`` (kind and id of each), each made into what the caller keeps by
        ``convert`` (as ``unlinked`` does; None: nothing): the entries without a link to ``provider`` among
        the ``indexed`` entries of the collection's index just read, or None when there were more than the
        reader held (``UNLINKED_HELD_MAX``). Read by key (BatchGetItem) when they are at most
        ``UNLINKED_BY_KEY`` of the collection, as on a night after the first; else as ``unlinked`` reads
        them, as on a district's first sync, when the product's own accounts are all unlinked.

        Why an eighth: a Query is billed for every item it reads, those its filter drops included, by the
        4 KB of their bytes; BatchGetItem for each item it returns, each rounded up to 4 KB. A person of the
        demo district is 0.3 to 0.7 KB (median 0.6 KB), so reading about a seventh of the people by key
        costs what reading all of them costs. A record linked since the index was read is left out, as
        ``unlinked`` leaves it out.
        """
        if unlinked is None or len(unlinked) > indexed * UNLINKED_BY_KEY:
            yield from self.unlinked(collection, provider, convert)
            return
        items = self.raw_items(unlinked, consistent=False)
        for _kind, record_id in unlinked:
            item = items.get(record_id)
            found = None if item is None else _unlinked_record(item, provider, convert)
            if found is not None:
                yield found

    def record_product_edit(self, kind: Kind, record_id: str, name: str, value: Any) -> None:
        """What the product does when someone edits a synced field (their email, a classroom's name)."""
        collection = COLLECTION_OF_KIND[kind]
        self._client.update_item(
            TableName=self._table,
            Key=_to_item({"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id}),
            UpdateExpression="SET #edits = if_not_exists(#edits, :empty)",
            ConditionExpression="attribute_exists(pk)",
            ExpressionAttributeNames={"#edits": "product_edits"},
            ExpressionAttributeValues=_to_item({":empty": {}}),
        )
        self._client.update_item(
            TableName=self._table,
            Key=_to_item({"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id}),
            UpdateExpression="SET #edits.#name = :value",
            ExpressionAttributeNames={"#edits": "product_edits", "#name": name},
            ExpressionAttributeValues=_to_item({":value": value}),
        )

    def raw_items(self, wanted: Iterable[tuple[Kind, str]], consistent: bool = True) -> dict[str, dict[str, Any]]:
        """The whole items (every attribute, the product's included) of the given records, by id, read
        with BatchGetItem (100 a request, up to ``threads`` requests in flight; strongly consistent unless
        ``consistent`` is false); absent records are absent from the answer."""
        keys = [
            {"pk": partition_key(self.district_id, COLLECTION_OF_KIND[kind], shard_of(rid)), "sk": rid}
            for kind, rid in dict.fromkeys(wanted)
        ]

        def read(batch: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
            items = (_from_item(item) for item in self._batch_get([_to_item(k) for k in batch], consistent))
            return {str(plain["sk"]): plain for plain in items}

        found: dict[str, dict[str, Any]] = {}
        for part in self._in_parallel(read, (keys[start : start + 100] for start in range(0, len(keys), 100))):
            found.update(part)
        return found

    def _batch_get(self, keys: list[dict[str, Any]], consistent: bool) -> list[dict[str, Any]]:
        """The items (as DynamoDB answered them) of up to 100 keys, one BatchGetItem and what DynamoDB leaves
        unprocessed asked again with backoff; ``DirectoryThrottledError`` once the retries are spent."""
        found: list[dict[str, Any]] = []
        pending = keys
        for attempt in range(UNPROCESSED_MAX_RETRIES + 1):
            if attempt:
                ceiling = min(UNPROCESSED_MAX_SECONDS, UNPROCESSED_BASE_SECONDS * 2**attempt)
                self._sleep(random.uniform(0, ceiling))  # noqa: S311 - jitter, not security
            with _throttling_as_domain_error(self._table):
                answer = self._client.batch_get_item(
                    RequestItems={self._table: {"Keys": pending, "ConsistentRead": consistent}}
                )
            found.extend(answer.get("Responses", {}).get(self._table, []))
            pending = answer.get("UnprocessedKeys", {}).get(self._table, {}).get("Keys", [])
            if not pending:
                return found
        raise DirectoryThrottledError(
            f"DynamoDB left {len(pending)} reads of {self._table} unprocessed after "
            f"{UNPROCESSED_MAX_RETRIES} retries with backoff: the table is throttled; the step will be retried"
        )

    def put_item_image(self, item: dict[str, Any]) -> None:
        """Write a whole item back as it was (an undo puts back the before-image a run kept)."""
        if item.get("district_id", self.district_id) != self.district_id or not str(item.get("pk", "")).startswith(
            f"{self.district_id}#"
        ):
            raise ValueError("an item of another district")
        item = as_written_now(item, self.district_id)
        self.write_requests += 1
        with _throttling_as_domain_error(self._table):
            self._client.put_item(TableName=self._table, Item=_to_item(item))

    def get(self, kind: Kind, record_id: str) -> DirectoryRecord | None:
        collection = COLLECTION_OF_KIND[kind]
        answer = self._client.get_item(
            TableName=self._table,
            Key=_to_item({"pk": partition_key(self.district_id, collection, shard_of(record_id)), "sk": record_id}),
        )
        return DirectoryRecord.from_item(_from_item(answer["Item"])) if "Item" in answer else None

    def get_many(self, kind: Kind, record_ids: Iterable[str]) -> dict[str, DirectoryRecord]:
        """Records of one kind by id, 100 a BatchGetItem, up to ``threads`` requests in flight (what DynamoDB
        leaves unprocessed is asked again, with backoff); an id with no record is left out of the answer."""
        collection = COLLECTION_OF_KIND[kind]
        keys = [
            _to_item({"pk": partition_key(self.district_id, collection, shard_of(i)), "sk": i})
            for i in dict.fromkeys(record_ids)
        ]

        def read(batch: list[dict[str, Any]]) -> dict[str, DirectoryRecord]:
            records = (DirectoryRecord.from_item(_from_item(item)) for item in self._batch_get(batch, consistent=False))
            return {record.id: record for record in records}

        found: dict[str, DirectoryRecord] = {}
        for part in self._in_parallel(read, (keys[start : start + 100] for start in range(0, len(keys), 100))):
            found.update(part)
        return found

    def find_by_provider_id(self, kind: Kind, provider: str, provider_id: str) -> DirectoryRecord | None:
        """Look a record up by its provider link: the ``ByProviderId`` index, or for an enrollment or guardian
        link its bucket of the ``ByMatchBucket`` index (a pair is bucketed by its first link: one linked to
        two providers is found by that one's id)."""
        collection = COLLECTION_OF_KIND[kind]
        if collection in PAIR_COLLECTIONS:
            items = list(
                query_items(
                    self._client,
                    TableName=self._table,
                    IndexName="ByMatchBucket",
                    KeyConditionExpression="match_bucket = :k",
                    FilterExpression="provider_ids.#p = :id",
                    ExpressionAttributeNames={"#p": provider},
                    ExpressionAttributeValues=_to_item(
                        {":k": match_bucket(self.district_id, collection, provider, provider_id), ":id": provider_id}
                    ),
                )
            )
        else:
            key = provider_key(self.district_id, collection, provider, provider_id)
            answer = self._client.query(
                TableName=self._table,
                IndexName="ByProviderId",
                KeyConditionExpression="provider_key = :k",
                ExpressionAttributeValues={":k": {"S": key}},
            )
            items = answer.get("Items", [])
        if not items:
            return None
        # The index projects keys only: fetch the record itself.
        found = self._client.get_item(TableName=self._table, Key={"pk": items[0]["pk"], "sk": items[0]["sk"]})
        return DirectoryRecord.from_item(_from_item(found["Item"])) if "Item" in found else None

    def children(self, parent_id: str) -> Iterator[DirectoryRecord]:
        """Records whose parent is ``parent_id``: a classroom's enrollments, a school's students."""
        items = query_items(
            self._client,
            TableName=self._table,
            IndexName="ByParent",
            KeyConditionExpression="parent_key = :k",
            ExpressionAttributeValues={":k": {"S": parent_key(self.district_id, parent_id)}},
        )
        for item in items:
            yield DirectoryRecord.from_item(_from_item(item))


__all__ = ["COLLECTIONS", "DirectoryRecord", "DirectoryRepository", "IndexEntry", "SyncStateRepository"]


class SyncStateRepository:
    """A district's sync state: its lock, run records, provider connection and settings."""

    def __init__(self, client: Any, table_name: str, district_id: str) -> None:
        self._client = client
        self._table = table_name
        self.district_id = district_id

    def _key(self, sk: str) -> dict[str, Any]:
        return _to_item({"pk": f"{self.district_id}", "sk": sk})

    # -- lock -----------------------------------------------------------------------------------

    def acquire_lock(self, run_id: str, ttl_seconds: int, now: float | None = None) -> None:
        """Take the district's lock, or raise ``LockHeldError`` while another run holds it.

        The lock expires after ``ttl_seconds`` so a crashed run does not block the district forever.
        Taking it again with the same run id succeeds (a retried Start is idempotent).
        """
        now = time.time() if now is None else now
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_item(
                    {
                        "pk": self.district_id,
                        "sk": "LOCK",
                        "run_id": run_id,
                        "acquired_at": int(now),
                        "expires_at": int(now + ttl_seconds),
                    }
                ),
                ConditionExpression="attribute_not_exists(pk) OR expires_at < :now OR run_id = :run",
                ExpressionAttributeValues=_to_item({":now": int(now), ":run": run_id}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
            holder = self.lock_holder() or {}
            raise LockHeldError(
                f"A sync for district {self.district_id} is already running (run {holder.get('run_id', '?')}, "
                f"started {_iso(holder.get('acquired_at'))}); this run was not started. It will be possible "
                f"again when that run ends, or after {_iso(holder.get('expires_at'))} if it crashed."
            ) from exc

    def release_lock(self, run_id: str) -> bool:
        """Release the lock if this run holds it; True if it did."""
        try:
            self._client.delete_item(
                TableName=self._table,
                Key=self._key("LOCK"),
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues=_to_item({":run": run_id}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def expire_lock(self, run_id: str, now: float | None = None) -> bool:
        """Let the lock go if this run holds it, by expiring it (True if it did).

        For a run that ended where it could not release its lock itself: the next run's acquire takes an
        expired lock, and no role but Finish's deletes sync-state items.
        """
        now = time.time() if now is None else now
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key("LOCK"),
                UpdateExpression="SET expires_at = :past",
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues=_to_item({":run": run_id, ":past": int(now) - 1}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def lock_holder(self) -> dict[str, Any] | None:
        answer = self._client.get_item(TableName=self._table, Key=self._key("LOCK"), ConsistentRead=True)
        return _from_item(answer["Item"]) if "Item" in answer else None

    # -- runs -----------------------------------------------------------------------------------

    def put_run(self, run_id: str, **attributes: Any) -> None:
        self._client.put_item(
            TableName=self._table,
            Item=_to_item({"pk": self.district_id, "sk": f"RUN#{run_id}", "run_id": run_id, **attributes}),
        )

    def update_run(self, run_id: str, **attributes: Any) -> None:
        attributes = {k: v for k, v in attributes.items() if v is not None}
        if not attributes:
            return
        # The run id too: a run whose Start died before it recorded the run is first written here (by its
        # failure report), and a record without its id would list as a run nobody can name.
        attributes = {**attributes, "run_id": run_id}
        names = {f"#a{i}": k for i, k in enumerate(attributes)}
        values = {f":v{i}": v for i, v in enumerate(attributes.values())}
        self._client.update_item(
            TableName=self._table,
            Key=self._key(f"RUN#{run_id}"),
            UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(attributes))),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=_to_item(values),
        )

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        answer = self._client.get_item(TableName=self._table, Key=self._key(f"RUN#{run_id}"), ConsistentRead=True)
        return _from_item(answer["Item"]) if "Item" in answer else None

    def runs(self) -> list[dict[str, Any]]:
        items = query_items(
            self._client,
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :run)",
            ExpressionAttributeValues=_to_item({":pk": self.district_id, ":run": "RUN#"}),
        )
        return [_from_item(i) for i in items]

    def items_with_prefix(
        self, prefix: str, newest_first: bool = False, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """The district's items whose sort key starts with ``prefix`` (``LIFECYCLE#``…), in key order."""
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :p)",
            "ExpressionAttributeValues": _to_item({":pk": self.district_id, ":p": prefix}),
            "ScanIndexForward": not newest_first,
            "ConsistentRead": True,
        }
        found: list[dict[str, Any]] = []
        for item in query_items(self._client, **kwargs):
            found.append(_from_item(item))
            if limit is not None and len(found) >= limit:
                break
        return found

    def update_run_if(
        self,
        run_id: str,
        condition: str,
        values: dict[str, Any],
        names: dict[str, str] | None = None,
        **attributes: Any,
    ) -> bool:
        """``update_run`` only if ``condition`` holds on the run record (False, nothing written, if not).
        ``values`` and ``names`` are the condition's placeholders (``:value``, ``#name``)."""
        names = {**(names or {}), **{f"#a{i}": k for i, k in enumerate(attributes)}}
        placeholders = {f":v{i}": v for i, v in enumerate(attributes.values())}
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(f"RUN#{run_id}"),
                UpdateExpression="SET " + ", ".join(f"#a{i} = :v{i}" for i in range(len(attributes))),
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=_to_item({**placeholders, **values}),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- enabling -------------------------------------------------------------------------------

    def mark_enabled(self, run_id: str, now: datetime | None = None) -> None:
        """Record that sync is enabled for the district (the "Sync Enabled" run does): from now on its
        uploads sync for real instead of being checked."""
        at = (now or datetime.now(UTC)).isoformat(timespec="seconds")
        self.put_item("ENABLED", {"enabled_at": at, "run_id": run_id})

    def enabled(self) -> dict[str, Any] | None:
        """When and by which run sync was enabled; None while the admin has not enabled it, or since they
        disabled it (``rostersync.lifecycle.district``)."""
        item = self.get_item("ENABLED")
        return item if item is not None and item.get("enabled", True) else None

    # -- connection and settings ----------------------------------------------------------------

    def put_item(self, sk: str, value: dict[str, Any]) -> None:
        self._client.put_item(TableName=self._table, Item=_to_item({"pk": self.district_id, "sk": sk, **value}))

    def get_item(self, sk: str) -> dict[str, Any] | None:
        answer = self._client.get_item(TableName=self._table, Key=self._key(sk), ConsistentRead=True)
        return _from_item(answer["Item"]) if "Item" in answer else None

    def put_item_if(self, sk: str, value: dict[str, Any], condition: str, values: dict[str, Any]) -> bool:
        """Put the item only if ``condition`` holds on the stored one; False (nothing written) if not."""
        try:
            self._client.put_item(
                TableName=self._table,
                Item=_to_item({"pk": self.district_id, "sk": sk, **value}),
                ConditionExpression=condition,
                ExpressionAttributeValues=_to_item(values),
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    # -- settings (versioned) -------------------------------------------------------------------
    # SETTINGS holds the current version; SETTINGS#v000001… one immutable item per saved version, so a run
    # plans with exactly the version its Start recorded even if the admin saves another meanwhile.

    def settings_record(self) -> SettingsVersion:
        """The current settings as stored; the defaults as version 0 when the district never saved any."""
        answer = self._client.get_item(TableName=self._table, Key=self._key("SETTINGS"), ConsistentRead=True)
        if "Item" not in answer:
            return SettingsVersion(0, SyncSettings().model_dump(mode="json"))
        return _settings_version(answer["Item"])

    def current_settings(self) -> tuple[SyncSettings, int]:
        """The current settings and their version (defaults, 0, when never saved); ``InvalidSettingsError``
        naming the field when the stored ones no longer validate."""
        record = self.settings_record()
        return record.validated(self.district_id), record.version

    def settings_at(self, version: int) -> SyncSettings:
        """The settings of one saved version (0: the defaults); ``SettingsVersionNotFoundError`` if never saved."""
        if version == 0:
            return SyncSettings()
        answer = self._client.get_item(TableName=self._table, Key=self._key(_settings_sk(version)), ConsistentRead=True)
        if "Item" not in answer:
            raise SettingsVersionNotFoundError(
                f"district {self.district_id} has no settings version {version} "
                f"(its current version is {self.settings_record().version})"
            )
        return _settings_version(answer["Item"]).validated(self.district_id)

    def settings_history(self) -> list[SettingsVersion]:
        """Every saved version, oldest first."""
        items = query_items(
            self._client,
            TableName=self._table,
            KeyConditionExpression="pk = :pk AND begins_with(sk, :v)",
            ExpressionAttributeValues=_to_item({":pk": self.district_id, ":v": "SETTINGS#v"}),
            ConsistentRead=True,
        )
        return sorted((_settings_version(item) for item in items), key=lambda v: v.version)

    def put_settings(
        self, settings: SyncSettings, expected_version: int, updated_by: str, now: datetime | None = None
    ) -> SettingsVersion:
        """Save ``settings`` as version ``expected_version + 1``, if the current version is still
        ``expected_version`` (optimistic: ``SettingsConflictError`` if someone saved first, nothing written).

        The current item and the version's history item are written in one transaction.
        """
        saved = SettingsVersion(
            version=expected_version + 1,
            settings=settings.model_dump(mode="json"),
            updated_at=(now or datetime.now(UTC)).isoformat(timespec="seconds"),
            updated_by=updated_by,
        )
        value = {
            "pk": self.district_id,
            "settings": _to_dynamo_numbers(saved.settings),
            "version": saved.version,
            "updated_at": saved.updated_at,
            "updated_by": saved.updated_by,
        }
        # A district's first save: no SETTINGS item yet (or one written before settings had versions).
        current = "attribute_not_exists(#version)" if expected_version == 0 else "#version = :expected"
        current_put: dict[str, Any] = {
            "TableName": self._table,
            "Item": _to_item({**value, "sk": "SETTINGS"}),
            "ConditionExpression": current,
            "ExpressionAttributeNames": {"#version": "version"},
        }
        if expected_version:
            current_put["ExpressionAttributeValues"] = _to_item({":expected": expected_version})
        try:
            self._client.transact_write_items(
                TransactItems=[
                    {"Put": current_put},
                    {
                        "Put": {
                            "TableName": self._table,
                            "Item": _to_item({**value, "sk": _settings_sk(saved.version)}),
                            "ConditionExpression": "attribute_not_exists(pk)",
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "TransactionCanceledException":
                raise
            latest = self.settings_record()
            raise SettingsConflictError(
                f"the settings of district {self.district_id} changed since version {expected_version} was read: "
                f"version {latest.version} was saved {latest.updated_at or '?'} by {latest.updated_by or '?'}; "
                "nothing was saved: look at them again (`rostersync settings show`) and repeat the change"
            ) from exc
        return saved


def _settings_sk(version: int) -> str:
    return f"SETTINGS#v{version:06d}"


def _to_dynamo_numbers(value: Any) -> Any:
    """DynamoDB takes no floats: a fractional setting (a threshold of 12.5 %) is stored as a Decimal."""
    if isinstance(value, dict):
        return {k: _to_dynamo_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_to_dynamo_numbers(v) for v in value]
    if isinstance(value, float):
        return Decimal(str(value))
    return value


def _from_dynamo_numbers(value: Any) -> Any:
    """The settings' numbers back as int or float (``_plain`` would cut 12.5 to 12)."""
    if isinstance(value, dict):
        return {k: _from_dynamo_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_from_dynamo_numbers(v) for v in value]
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value


def _settings_version(item: dict[str, Any]) -> SettingsVersion:
    settings = _from_dynamo_numbers(_deserializer.deserialize(item["settings"])) if "settings" in item else {}
    rest = _from_item({k: v for k, v in item.items() if k != "settings"})
    return SettingsVersion(
        version=int(rest.get("version", 0)),
        settings=settings if isinstance(settings, dict) else {},
        updated_at=str(rest.get("updated_at", "")),
        updated_by=str(rest.get("updated_by", "")),
    )


def _iso(epoch: Any) -> str:
    if epoch is None:
        return "?"
    return datetime.fromtimestamp(int(epoch), UTC).strftime("%Y-%m-%d %H:%M UTC")
