"""The stores a step works with, bound to one district."""

from __future__ import annotations

from dataclasses import dataclass

from rostersync import aws
from rostersync.config import RuntimeConfig, runtime_config
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync.storage import RunStore


@dataclass
class DistrictContext:
    """Repositories and the run store of one district's run; nothing here reaches another district."""

    config: RuntimeConfig
    directory: DirectoryRepository
    state: SyncStateRepository
    store: RunStore

    @classmethod
    def for_run(cls, district_id: str, run_id: str) -> DistrictContext:
        config = runtime_config()
        dynamodb = aws.client("dynamodb")
        return cls(
            config=config,
            directory=DirectoryRepository(dynamodb, config.directory_table, district_id, config.io_threads),
            state=SyncStateRepository(dynamodb, config.sync_state_table, district_id),
            store=RunStore(
                aws.client("s3"), config.sync_bucket, district_id, run_id, signer=lambda: aws.client("s3-links")
            ),
        )
