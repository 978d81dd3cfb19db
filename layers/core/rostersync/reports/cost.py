"""What a run cost: its steps' meters (``rostersync.metering``) summed and priced. Pure: no I/O here.

The one table of prices is ``PRICES``: AWS's public on-demand list prices for us-east-1 (N. Virginia),
as published in November 2025, with no free tier and no savings plan. Change them here, and only here.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from pydantic import BaseModel, Field

PRICES_REGION = "us-east-1"
PRICES_AS_OF = "2025-11"
PRICES: dict[str, float] = {
    # AWS Lambda, arm64 (Graviton): per GB-second of duration (first pricing tier) and per request
    "lambda_gb_second": 0.0000133334,
    "lambda_request": 0.20 / 1_000_000,
    # Amazon DynamoDB on-demand (Standard table class, after the November 2024 price cut)
    "dynamodb_write_unit": 0.625 / 1_000_000,
    "dynamodb_read_unit": 0.125 / 1_000_000,
    # Amazon S3 Standard: PUT, COPY, POST, LIST requests; GET and every other request; DELETE is free;
    # storage per GB-month (the run's files are kept RUN_FILES_MONTHS)
    "s3_put_request": 0.005 / 1_000,
    "s3_get_request": 0.0004 / 1_000,
    "s3_gb_month": 0.023,
    # AWS Step Functions Standard workflows: per state transition (a Distributed Map's children too)
    "state_transition": 0.025 / 1_000,
    # AWS Secrets Manager: per API call (the provider's token)
    "secrets_request": 0.05 / 10_000,
}
RUN_FILES_MONTHS = 3  # runs/<district>/<run>/ expires after 90 days
_S3_FREE = {"DeleteObject", "AbortMultipartUpload"}
_S3_PUT_CLASS = {
    "PutObject",
    "CopyObject",
    "CreateMultipartUpload",
    "UploadPart",
    "UploadPartCopy",
    "CompleteMultipartUpload",
    "ListObjectsV2",
    "ListObjects",
    "DeleteObjects",
}


class StepCost(BaseModel):
    """One step's figures, summed over its invocations (Upsert: one per plan chunk)."""

    invocations: int = 0
    seconds: float = 0.0
    max_seconds: float = 0.0
    gb_seconds: float = 0.0
    memory_mb: int = 0
    requests: dict[str, int] = Field(default_factory=dict)
    s3_bytes_up: int = 0
    s3_bytes_down: int = 0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    provider_requests: int = 0


class RunCost(BaseModel):
    """``cost`` in report.json: what was counted, and its price per service and in all (USD)."""

    region: str = PRICES_REGION
    prices_as_of: str = PRICES_AS_OF
    steps: dict[str, StepCost] = Field(default_factory=dict)
    lambda_invocations: int = 0
    lambda_gb_seconds: float = 0.0
    dynamodb_read_units: float = 0.0
    dynamodb_write_units: float = 0.0
    s3_put_requests: int = 0
    s3_get_requests: int = 0
    s3_bytes_up: int = 0
    s3_bytes_down: int = 0
    state_transitions: int = 0
    secrets_requests: int = 0
    provider_requests: int = 0
    usd: dict[str, float] = Field(default_factory=dict)
    total_usd: float = 0.0
    not_counted: str = (
        "Write report's own last writes and Release lock (they run after the sum), CloudWatch logs and "
        "metrics, EventBridge, SES, data transfer (none leaves the region but the provider's answers, which "
        "are inbound and free)"
    )


def sum_meters(meters: Iterable[dict[str, Any]]) -> dict[str, StepCost]:
    """Each step's meters summed (invocations, seconds, GB-seconds, requests, bytes, units)."""
    steps: dict[str, StepCost] = {}
    for meter in meters:
        step = steps.setdefault(str(meter["step"]), StepCost())
        step.invocations += int(meter.get("invocations", 1))
        seconds = float(meter.get("seconds", 0))
        step.seconds += seconds
        step.max_seconds = max(step.max_seconds, seconds)
        step.gb_seconds += float(meter.get("gb_seconds", 0))
        step.memory_mb = max(step.memory_mb, int(meter.get("memory_mb", 0)))
        requests = Counter(step.requests)
        requests.update({str(k): int(v) for k, v in (meter.get("requests") or {}).items()})
        step.requests = dict(sorted(requests.items()))
        step.s3_bytes_up += int(meter.get("s3_bytes_up", 0))
        step.s3_bytes_down += int(meter.get("s3_bytes_down", 0))
        step.dynamodb_read_units += float(meter.get("dynamodb_read_units", 0))
        step.dynamodb_write_units += float(meter.get("dynamodb_write_units", 0))
        step.provider_requests += int(meter.get("provider_requests", 0))
    return steps


def price_run(steps: dict[str, StepCost], state_transitions: int) -> RunCost:
    """Price the counted figures with ``PRICES`` (USD, per service and in all)."""
    cost = RunCost(steps=steps, state_transitions=state_transitions)
    for step in steps.values():
        cost.lambda_invocations += step.invocations
        cost.lambda_gb_seconds += step.gb_seconds
        cost.dynamodb_read_units += step.dynamodb_read_units
        cost.dynamodb_write_units += step.dynamodb_write_units
        cost.s3_bytes_up += step.s3_bytes_up
        cost.s3_bytes_down += step.s3_bytes_down
        cost.provider_requests += step.provider_requests
        for name, n in step.requests.items():
            service, operation = name.split(":", 1)
            if service == "s3" and operation not in _S3_FREE:
                if operation in _S3_PUT_CLASS:
                    cost.s3_put_requests += n
                else:
                    cost.s3_get_requests += n
            elif service == "secretsmanager":
                cost.secrets_requests += n
    usd = {
        "lambda": cost.lambda_gb_seconds * PRICES["lambda_gb_second"]
        + cost.lambda_invocations * PRICES["lambda_request"],
        "dynamodb": cost.dynamodb_write_units * PRICES["dynamodb_write_unit"]
        + cost.dynamodb_read_units * PRICES["dynamodb_read_unit"],
        "s3": cost.s3_put_requests * PRICES["s3_put_request"]
        + cost.s3_get_requests * PRICES["s3_get_request"]
        + cost.s3_bytes_up / 1e9 * PRICES["s3_gb_month"] * RUN_FILES_MONTHS,
        "step_functions": state_transitions * PRICES["state_transition"],
        "secrets_manager": cost.secrets_requests * PRICES["secrets_request"],
    }
    cost.usd = {service: round(value, 9) for service, value in usd.items()}
    cost.total_usd = round(sum(usd.values()), 9)
    cost.lambda_gb_seconds = round(cost.lambda_gb_seconds, 4)
    return cost


def state_transitions(
    *,
    action: bool,
    dry_run: bool,
    chunks: int,
    fetch_complete: bool,
    failed: bool,
    fetch_lists: int = 0,
    fetch_slices: int = 0,
    match_partitions: int = 0,
) -> int:
    """The states a sync execution enters (each is one billed transition), by the path this run took.

    Prepare run, Start run, Upload complete?, Entitled?, Sync, undo or approval?; Fetch (Plan the fetch,
    Read the roster's lists, two per slice: the slice and "List read to its end?", one per list: "List
    read", then Fetch roster) and Match (Match roster, Match partitions, one per partition: each child's
    task, Combine match) or Plan undo or approval; Self-check?; unless a dry run: Upsert directory, one per
    plan chunk (each child's task), Undo or approval applied? and, for a sync, Roster complete? and Archive
    unmanaged when it ran;
    then Write report (or Report failure), Release lock, and the end state. A failed run is counted as if
    it failed at Upsert (the states it skipped are not known here; the difference is a few transitions).
    """
    fetched = 2 + 2 * fetch_slices + fetch_lists + 1
    matched = 2 + match_partitions + 1
    entered = 5 + (1 if action else fetched + matched) + 1
    if not dry_run and not failed:
        entered += 1 + chunks + 1
        if not action:
            entered += 1 + (1 if fetch_complete else 0)
    return entered + 3


def describe_cost(cost: RunCost) -> str:
    """One sentence for report.html."""
    parts = ", ".join(f"{name.replace('_', ' ')} ${value:,.4f}" for name, value in cost.usd.items() if value)
    return (
        f"This run cost about ${cost.total_usd:,.4f} on AWS ({parts}), at {cost.region} on-demand list prices of "
        f"{cost.prices_as_of}: {cost.lambda_invocations:,} Lambda invocations ({cost.lambda_gb_seconds:,.1f} "
        f"GB-seconds), {cost.dynamodb_write_units:,.0f} DynamoDB write and {cost.dynamodb_read_units:,.0f} read "
        f"units, {cost.s3_put_requests:,} S3 writes and {cost.s3_get_requests:,} reads, "
        f"{cost.state_transitions:,} state transitions, {cost.provider_requests:,} provider requests."
    )
