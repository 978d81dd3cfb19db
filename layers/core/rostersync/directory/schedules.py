"""The districts whose sync runs on a schedule: one item each under the sync-state table's SCHEDULES partition.

The one store that spans districts, so that the schedule tick finds the due ones with a single query
instead of reading every district's settings every 15 minutes. An item exists once a district's sync was
enabled (its first ``enabled`` run succeeded); ``next_run_at`` is absent while its schedule is off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from rostersync.directory.repository import query_items

SCHEDULES_PK = "SCHEDULES"

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _value(value: Any) -> dict[str, Any]:
    return _serializer.serialize(value)


def instant(moment: datetime) -> str:
    """A UTC instant as stored: fixed width, so string order is time order (``2026-11-29T07:00:00Z``)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class ScheduledDistrict:
    district_id: str
    next_run_at: str | None  # ``instant()``; None while the district's schedule is off


class ScheduleRepository:
    """Read and move districts' next scheduled runs."""

    def __init__(self, client: Any, table_name: str) -> None:
        self._client = client
        self._table = table_name

    def _key(self, district_id: str) -> dict[str, Any]:
        return {"pk": _value(SCHEDULES_PK), "sk": _value(district_id)}

    def get(self, district_id: str) -> ScheduledDistrict | None:
        answer = self._client.get_item(TableName=self._table, Key=self._key(district_id), ConsistentRead=True)
        return _scheduled(answer["Item"]) if "Item" in answer else None

    def put(self, district_id: str, next_run_at: datetime | None, now: datetime) -> None:
        """Schedule the district (create or replace its item)."""
        item = {**self._key(district_id), "district_id": _value(district_id), "updated_at": _value(instant(now))}
        if next_run_at is not None:
            item["next_run_at"] = _value(instant(next_run_at))
        self._client.put_item(TableName=self._table, Item=item)

    def move_if_scheduled(self, district_id: str, next_run_at: datetime | None, now: datetime) -> bool:
        """Set the next run of a district that is on the schedule; False (nothing written) if it is not."""
        return self._update(
            district_id, next_run_at, now, "attribute_exists(pk) AND attribute_not_exists(disabled_at)", {}
        )

    def unschedule(self, district_id: str, now: datetime) -> bool:
        """Take a district off the schedule (its sync was disabled): no next run, and settings changes do not
        bring one back until it is enabled again (``put``). False if it was not on the schedule."""
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(district_id),
                UpdateExpression="SET updated_at = :now, disabled_at = :now REMOVE next_run_at",
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": _value(instant(now))},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def advance(self, district_id: str, expected: str, next_run_at: datetime | None, now: datetime) -> bool:
        """Move the next run on from ``expected``; False if it is no longer ``expected`` (another tick, or a
        settings change, moved it first): whoever moves it starts the run, so a run starts once."""
        return self._update(district_id, next_run_at, now, "next_run_at = :expected", {":expected": _value(expected)})

    def _update(
        self, district_id: str, next_run_at: datetime | None, now: datetime, condition: str, values: dict[str, Any]
    ) -> bool:
        values = {**values, ":now": _value(instant(now))}
        if next_run_at is None:
            expression = "SET updated_at = :now REMOVE next_run_at"
        else:
            expression = "SET updated_at = :now, next_run_at = :next"
            values[":next"] = _value(instant(next_run_at))
        try:
            self._client.update_item(
                TableName=self._table,
                Key=self._key(district_id),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def due(self, now: datetime) -> list[ScheduledDistrict]:
        """The districts whose next run is at or before ``now``."""
        items = query_items(
            self._client,
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            FilterExpression="next_run_at <= :now",
            ExpressionAttributeValues={":pk": _value(SCHEDULES_PK), ":now": _value(instant(now))},
            ConsistentRead=True,
        )
        return [_scheduled(item) for item in items]


def _scheduled(item: dict[str, Any]) -> ScheduledDistrict:
    plain = {k: _deserializer.deserialize(v) for k, v in item.items()}
    next_run_at = plain.get("next_run_at")
    return ScheduledDistrict(district_id=str(plain["sk"]), next_run_at=str(next_run_at) if next_run_at else None)
