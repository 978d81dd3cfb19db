"""The functions' configuration refuses what the template's parameters refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rostersync.config import RuntimeConfig

TABLES = {"DIRECTORY_TABLE": "d", "SYNC_STATE_TABLE": "s", "SYNC_BUCKET": "b"}


@pytest.mark.parametrize("partitions", ["1", "4", "16", "64"])
def test_match_partitions_that_divide_the_index_buckets_are_taken(
    monkeypatch: pytest.MonkeyPatch, partitions: str
) -> None:
    for name, value in {**TABLES, "MATCH_PARTITIONS": partitions}.items():
        monkeypatch.setenv(name, value)
    assert RuntimeConfig().match_partitions == int(partitions)  # type: ignore[call-arg]


@pytest.mark.parametrize("partitions", ["0", "3", "12", "128"])
def test_match_partitions_that_would_split_a_bucket_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, partitions: str
) -> None:
    # a partition reads whole buckets of the ByMatchBucket index: 3 would leave a bucket read by two, 128 by none
    for name, value in {**TABLES, "MATCH_PARTITIONS": partitions}.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match="MATCH_PARTITIONS|less than or equal|greater than or equal"):
        RuntimeConfig()  # type: ignore[call-arg]
