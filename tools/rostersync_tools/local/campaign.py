"""The fault campaign's parts (issue 9): districts on the embedded stack, and what a run must leave.

Shared by ``tests/e2e/test_fault_campaign.py`` (a bounded subset) and ``bench/chaos.py`` (``make chaos``,
the whole campaign). A ``CampaignDistrict`` is a product district connected to a Clever simulator of its
own, on an ``EmbeddedStack``; ``normalised`` turns a directory export into a form that two districts
synced from the same roster share (ids are derived from the district, so they differ), and
``duplicates`` / ``lost`` count what must be 0 after any fault.
"""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.keys import COLLECTIONS
from rostersync.directory.product import ProductDirectory, export_directory, import_product_directory
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync_tools.local.simulator import ProviderSimulator
from rostersync_tools.local.stack import EmbeddedStack
from rostersync_tools.local.synthetic import connect_clever_simulator

RUN_TIMEOUT_SECONDS = 600  # a bound, not a guess: generous on a loaded machine


class CampaignDistrict:
    """A fresh district of the product whose schools carry the dataset's Clever ids, connected to a Clever
    simulator of its own (``close()`` stops it) at the rate the simulator allows: one without a limit is
    not paced."""

    def __init__(self, stack: EmbeddedStack, dataset: Path, district_id: str | None = None) -> None:
        self.stack = stack
        self.dataset = dataset
        self.id = district_id or f"chaos-{uuid.uuid4().hex[:8]}"
        config = runtime_config()
        dynamodb = aws.client("dynamodb")
        self.directory = DirectoryRepository(dynamodb, config.directory_table, self.id)
        self.state = SyncStateRepository(dynamodb, config.sync_state_table, self.id)
        self.simulator = ProviderSimulator(dataset, token=f"token-{uuid.uuid4().hex[:12]}").start()  # noqa: S106
        schools = json.loads((dataset / "schools.json").read_text(encoding="utf-8"))["data"]
        product = ProductDirectory.model_validate(
            {
                "district": {"id": self.id, "name": "Campaign District", "plan": "premium"},
                "schools": [
                    {"id": f"sch-{self.id}-{n}", "name": s["data"]["name"], "provider_ids": {"clever": s["data"]["id"]}}
                    for n, s in enumerate(schools)
                ],
            }
        )
        import_product_directory(product, self.directory, self.state)
        self.connect(self.simulator.token)

    def connect(self, token: str) -> None:
        """Store (or replace) the district's Clever connection with ``token``."""
        connect_clever_simulator(self.state, self.simulator, token, stack=self.stack.stack_name)

    def serve(self, dataset: Path) -> None:
        self.dataset = dataset
        self.simulator.set_dataset(dataset)

    def start(self) -> str:
        return self.stack.start_sync(self.id, trigger="manual")

    def outcome(self, execution_arn: str) -> RunResult:
        """Wait for an execution of this district and gather its run record and report."""
        execution = self.stack.wait(execution_arn, timeout=RUN_TIMEOUT_SECONDS)
        run_id = execution_arn.rsplit(":", 1)[1]
        record = self.state.get_run(run_id)
        report = None
        if record and record.get("report_key"):
            body = aws.client("s3").get_object(Bucket=runtime_config().sync_bucket, Key=record["report_key"])
            report = json.loads(body["Body"].read())
        return RunResult(run_id, execution, record, report)

    def sync(self) -> RunResult:
        return self.outcome(self.start())

    def export(self) -> dict[str, Any]:
        return export_directory(self.directory, self.state)

    def wait_lock_free(self, seconds: float = RUN_TIMEOUT_SECONDS) -> bool:
        """Wait (a bounded poll) until no live lock holds the district: a run that died past every Catch has
        its lock expired by CloseRun, which EventBridge invokes in the background."""
        deadline = time.monotonic() + seconds
        while True:
            holder = self.state.lock_holder()
            if holder is None or float(holder.get("expires_at", 0)) < time.time():
                return True
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)

    def close(self) -> None:
        self.simulator.stop()


class RunResult:
    """One run: its execution's description, its run record and its report (None when absent)."""

    def __init__(
        self, run_id: str, execution: dict[str, Any], run: dict[str, Any] | None, report: dict[str, Any] | None
    ) -> None:
        self.run_id, self.execution, self.run, self.report = run_id, execution, run, report

    @property
    def status(self) -> str | None:
        return None if self.run is None else self.run.get("status")

    @property
    def error(self) -> str | None:
        return self.execution.get("error")

    def archived(self) -> int:
        """How many records the run archived (its report's counts)."""
        if not self.report:
            return 0
        return sum(counts.get("archived", 0) for counts in self.report["counts"].values())


def normalised(export: dict[str, Any], district_id: str) -> dict[str, Any]:
    """A directory export with every directory id replaced by what names the record across districts.

    Records the sync made carry ids derived from the district and the provider id; the product's schools
    carry ``sch-<district>-n``. Each record is named by its collection and provider ids instead (or by its
    id with the district left out), and every reference to a record is replaced by that name.
    """
    names: dict[str, str] = {}
    for collection in COLLECTIONS:
        for row in export.get(collection, []):
            links = ",".join(f"{p}:{i}" for p, i in sorted(row["provider_ids"].items()))
            own = row["id"].replace(district_id, "D")
            names[row["id"]] = f"{collection}/{links}" if links else f"{collection}/{own}"

    def named(value: Any) -> Any:
        if isinstance(value, str):
            return names.get(value, value.replace(district_id, "D"))
        if isinstance(value, list):
            return sorted((named(v) for v in value), key=json.dumps)
        if isinstance(value, dict):
            return {k: named(v) for k, v in value.items()}
        return value

    out: dict[str, Any] = {"district": named(export.get("district", {}))}
    for collection in COLLECTIONS:
        rows = [named(row) for row in export.get(collection, [])]
        out[collection] = sorted(rows, key=lambda r: r["id"])
    return out


def duplicates(export: dict[str, Any]) -> int:
    """Active records beyond the first that carry the same provider id in one collection (must be 0)."""
    extra = 0
    for collection in COLLECTIONS:
        seen: Counter[tuple[str, str]] = Counter(
            (provider, provider_id)
            for row in export.get(collection, [])
            if row["status"] == "active"
            for provider, provider_id in row["provider_ids"].items()
        )
        extra += sum(n - 1 for n in seen.values() if n > 1)
    return extra


def active_names(export: dict[str, Any], district_id: str) -> set[str]:
    """The names (``normalised``) of a district's active records."""
    norm = normalised(export, district_id)
    return {row["id"] for collection in COLLECTIONS for row in norm[collection] if row["status"] == "active"}


def lost(expected: set[str], export: dict[str, Any], district_id: str) -> int:
    """How many records that must be active (``expected``, from ``active_names``) are not."""
    return len(expected - active_names(export, district_id))


def roster_ids(dataset: Path) -> dict[str, set[str]]:
    """The Clever ids a dataset's roster holds, per directory collection (schools, classrooms, people)."""

    def ids(name: str) -> set[str]:
        path = dataset / f"{name}.json"
        if not path.is_file():
            return set()
        return {item["data"]["id"] for item in json.loads(path.read_text(encoding="utf-8"))["data"]}

    return {"schools": ids("schools"), "classrooms": ids("sections"), "people": ids("users")}


KINDS_OF = {
    "schools": ("schools",),
    "classrooms": ("classrooms",),
    "people": ("students", "teachers", "staff", "guardians"),
}


def _active_clever_ids(export: dict[str, Any], collection: str) -> set[str]:
    return {row["provider_ids"].get("clever", "") for row in export.get(collection, []) if row["status"] == "active"}


def lost_from_roster(
    dataset: Path, export: dict[str, Any], before: dict[str, Any] | None = None, report: dict[str, Any] | None = None
) -> int:
    """Roster records (``roster_ids``) not active in the directory export, that should be (must be 0).

    With ``before`` (the export before the run): those that were active then. With ``report`` (a first
    sync): beyond those the run reported as skipped or in error (a guardian without contact details...).
    """
    missing = 0
    for collection, wanted in roster_ids(dataset).items():
        gone = wanted - _active_clever_ids(export, collection)
        if before is not None:
            gone &= _active_clever_ids(before, collection)
            missing += len(gone)
        elif report is not None:
            counts = report.get("counts", {})
            told = sum(counts.get(k, {}).get(a, 0) for k in KINDS_OF[collection] for a in ("skipped", "errors"))
            missing += max(0, len(gone) - told)
        else:
            missing += len(gone)
    return missing


def foreign_items(table: str, district_ids: set[str]) -> int:
    """Directory items of the given districts whose keys or attributes name another district (must be 0).

    Every item's partition key starts with its district, its ``district_id`` says the same, and its index
    keys (``provider_key``, ``parent_key``, and on enrollments and guardian links ``match_bucket``) too.
    """
    dynamodb = aws.client("dynamodb")
    wrong = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        for item in page["Items"]:
            owner = item["pk"]["S"].split("#", 1)[0]
            if owner not in district_ids:
                continue
            for name in ("district_id", "provider_key", "parent_key", "match_bucket"):
                value = item.get(name, {}).get("S")
                if value is not None and value != owner and not value.startswith(f"{owner}#"):
                    wrong += 1
                    break
    return wrong
