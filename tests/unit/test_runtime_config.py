"""The functions' configuration refuses what the template's parameters refuse."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from rostersync.config import RuntimeConfig


def _config(monkeypatch: pytest.MonkeyPatch, match_partitions: str) -> RuntimeConfig:
    names = {"DIRECTORY_TABLE": "d", "SYNC_STATE_TABLE": "s", "SYNC_BUCKET": "b", "MATCH_PARTITIONS": match_partitions}
    for name, value in names.items():
        monkeypatch.setenv(name, value)
    return RuntimeConfig()  # type: ignore[call-arg]


@pytest.mark.parametrize("partitions", ["1", "4", "16", "64"])
def test_match_partitions_that_divide_the_index_buckets_are_taken(
    monkeypatch: pytest.MonkeyPatch, partitions: str
) -> None:
    assert _config(monkeypatch, partitions).match_partitions == int(partitions)


@pytest.mark.parametrize("partitions", ["0", "3", "12", "128"])
def test_match_partitions_that_would_split_a_bucket_are_refused_by_name(
    monkeypatch: pytest.MonkeyPatch, partitions: str
) -> None:
    # a partition reads whole buckets of the ByMatchBucket index: 3 would leave a bucket read by two, 128 by none
    with pytest.raises(ValidationError, match="MATCH_PARTITIONS|less than or equal|greater than or equal"):
        _config(monkeypatch, partitions)
