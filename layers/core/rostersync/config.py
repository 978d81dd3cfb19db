"""Configuration of the Lambda functions, parsed once from the environment (set by template.yaml)."""

from __future__ import annotations

from functools import lru_cache

from botocore.config import Config
from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from rostersync.directory.keys import check_match_partitions

REPORT_LINK_SECONDS = 3600
# Presigned report links are signed with SigV4 (SigV2 is refused by buckets created since June 2020).
REPORT_LINK_CONFIG = Config(signature_version="s3v4")


class RuntimeConfig(BaseSettings):
    """Where state lives and how hard to push; every field comes from an environment variable."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    directory_table: str = Field(validation_alias="DIRECTORY_TABLE")
    sync_state_table: str = Field(validation_alias="SYNC_STATE_TABLE")
    sync_bucket: str = Field(validation_alias="SYNC_BUCKET")
    # Records per plan chunk: one Upsert Map iteration writes one chunk.
    plan_chunk_records: int = Field(default=5_000, validation_alias="PLAN_CHUNK_RECORDS")
    # Partitions of Match's enrollments and guardian links (each one invocation; template: MatchPartitions):
    # a divisor of the ByMatchBucket index's buckets, since a partition reads whole buckets.
    match_partitions: int = Field(default=4, ge=1, validation_alias="MATCH_PARTITIONS")
    # Records per snapshot object written by Fetch.
    snapshot_chunk_records: int = Field(default=10_000, validation_alias="SNAPSHOT_CHUNK_RECORDS")
    # Parallel DynamoDB reads/writes inside one Lambda.
    io_threads: int = Field(default=8, validation_alias="IO_THREADS")
    # A crashed run stops blocking its district after this long.
    lock_ttl_seconds: int = Field(default=6 * 3600, validation_alias="LOCK_TTL_SECONDS")
    # Provider backoff base in seconds; 0 disables waiting (tests).
    provider_retry_base_seconds: float = Field(default=1.0, validation_alias="PROVIDER_RETRY_BASE_SECONDS")
    provider_max_attempts: int = Field(default=6, validation_alias="PROVIDER_MAX_ATTEMPTS")
    # Fetch reads each provider list in slices: a slice stops at a page boundary once this many pages are
    # read, or once less than the margin is left of its invocation's time (the next page and its retries
    # must fit). A connection's ``max_pages_per_slice`` overrides the page bound for its district.
    fetch_max_pages_per_slice: int = Field(default=1_000, ge=1, validation_alias="FETCH_MAX_PAGES_PER_SLICE")
    # 480 of the function's 900 s: a slice stops before half its time is spent (issue 10: no invocation
    # above half of Lambda's limits), and a page and its retries fit in what is left.
    fetch_slice_margin_seconds: float = Field(default=480.0, ge=0, validation_alias="FETCH_SLICE_MARGIN_SECONDS")
    # A Clever events night reads a users list whose last mirror is clean (every item a user with its own
    # id) in parts of this many mirror chunks, side by side (a connection's ``mirror_chunks_per_part``
    # overrides it): 40 chunks of 10,000 users are about half a minute of mapping.
    fetch_mirror_chunks_per_part: int = Field(default=40, ge=1, validation_alias="FETCH_MIRROR_CHUNKS_PER_PART")
    # A OneRoster CSV bundle is read a file per Map item, in pages of this many rows (a slice stops at a page
    # boundary, as a provider list's does; a connection's ``csv_page_rows`` overrides it).
    fetch_csv_page_rows: int = Field(default=10_000, ge=1, validation_alias="FETCH_CSV_PAGE_ROWS")
    # A OneRoster REST collection the server counts above this many records (``X-Total-Count``) is read in
    # parts by offset, side by side (a connection's ``part_records`` overrides it): at New York City's size
    # the enrollments (4 M) would otherwise be 4,000 pages of 1,000 one after another.
    fetch_oneroster_part_records: int = Field(default=250_000, ge=1, validation_alias="FETCH_ONEROSTER_PART_RECORDS")
    # A Clever night with more events than this is read in full (in slices) instead: its events are read in
    # one invocation, and its changed objects are held there and by each list's slices (as their JSON,
    # ≈ 0.74 KB a user and 1.3 KB a section; parsed, 3.8 and 4.7 KB: docs/SCALE.md). 150,000: at most
    # ≈ 0.11–0.2 GB, a tenth of Fetch's 2,048 MB; ≈ 2 % of New York City's roster, twice a 1 % night; 15
    # pages of 10,000 events (a connection's ``night_max_events`` overrides it).
    fetch_night_max_events: int = Field(default=150_000, ge=1, validation_alias="FETCH_NIGHT_MAX_EVENTS")
    # How long a report link (a SigV4 presigned URL) stays valid: an hour by default; SigV4 allows 7 days
    # at most. Reports hold children's data: a link forwarded by mistake should not stay open for long.
    report_link_seconds: int = Field(
        default=REPORT_LINK_SECONDS, ge=1, le=7 * 24 * 3600, validation_alias="REPORT_LINK_SECONDS"
    )
    # The report's CSVs are streamed to S3 in parts of this size (S3 refuses parts under 5 MiB but the last),
    # and wait in memory up to report_buffer_bytes in all before a group of rows is set aside in S3.
    report_part_bytes: int = Field(default=8 << 20, ge=5 << 20, le=5 << 30, validation_alias="REPORT_PART_BYTES")
    report_buffer_bytes: int = Field(default=8 << 20, ge=1 << 16, validation_alias="REPORT_BUFFER_BYTES")
    # The stack's own EventBridge bus, where every run's end is announced (rostersync.lifecycle.announce).
    event_bus_name: str = Field(default="default", validation_alias="EVENT_BUS_NAME")
    # The SES identity notification emails are sent from (only NotifyAdmins is given it).
    notification_sender: str = Field(default="", validation_alias="NOTIFICATION_SENDER")
    # The sync state machine, for the schedule tick that starts runs (only ScheduleTick is given it).
    sync_state_machine_arn: str = Field(default="", validation_alias="SYNC_STATE_MACHINE_ARN")

    @field_validator("match_partitions")
    @classmethod
    def _whole_buckets(cls, value: int) -> int:
        check_match_partitions(value)
        return value


@lru_cache(maxsize=1)
def runtime_config() -> RuntimeConfig:
    """Return the configuration, parsed from the environment on first use."""
    return RuntimeConfig()  # type: ignore[call-arg]
