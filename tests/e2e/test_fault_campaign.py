"""The fault campaign's bounded subset (issue 9; ``make chaos`` runs the whole of it, bench/chaos.py).

A 20-student synthetic district on the real state machine: a crash at each step (the Lambda dies before,
inside or after its work), provider faults, a roster shrink over the deletion threshold, two runs of one
district at once and three districts at once. After each, the directory must converge to what a clean
run makes (compared normalised: ids derive from the district), with 0 duplicates and nothing lost.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rostersync_tools.local.campaign import (
    CampaignDistrict,
    active_names,
    duplicates,
    foreign_items,
    lost,
    lost_from_roster,
    normalised,
)
from rostersync_tools.local.synthetic import write_synthetic_clever_district

pytestmark = pytest.mark.e2e

STUDENTS = 20


def _leave(night: Path, count: int) -> set[str]:
    """The first ``count`` students leave (from users and sections; contacts left with no student go)."""
    users = json.loads((night / "users.json").read_text())
    gone = {u["data"]["id"] for u in users["data"] if "student" in u["data"].get("roles", {})}
    gone = set(sorted(gone)[:count])
    kept = []
    for item in users["data"]:
        data = item["data"]
        if data["id"] in gone:
            continue
        contact = data.get("roles", {}).get("contact")
        if contact is not None:
            contact["student_relationships"] = [r for r in contact["student_relationships"] if r["student"] not in gone]
            if not contact["student_relationships"]:
                continue
        kept.append(item)
    users["data"] = kept
    (night / "users.json").write_text(json.dumps(users))
    sections = json.loads((night / "sections.json").read_text())
    for item in sections["data"]:
        item["data"]["students"] = [s for s in item["data"]["students"] if s not in gone]
    (night / "sections.json").write_text(json.dumps(sections))
    return gone


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Night 1: a 20-student district; night 2: one student leaves (5 %, under the threshold)."""
    root = tmp_path_factory.mktemp("campaign")
    write_synthetic_clever_district(root / "night-1", students=STUDENTS, seed=11)
    shutil.copytree(root / "night-1", root / "night-2")
    _leave(root / "night-2", 1)
    return root / "night-1", root / "night-2"


@pytest.fixture(scope="module")
def reference(stack: Any, nights: tuple[Path, Path]) -> dict[str, Any]:
    """What clean runs make: the normalised directory and active records after night 1 and night 2."""
    d = CampaignDistrict(stack, nights[0])
    try:
        out: dict[str, Any] = {}
        for n, night in enumerate(nights, start=1):
            d.serve(night)
            assert d.sync().status == "succeeded"
            export = d.export()
            out[f"night-{n}"] = normalised(export, d.id)
            out[f"active-{n}"] = active_names(export, d.id)
        assert duplicates(export) == 0
        return out
    finally:
        d.close()


@pytest.fixture
def campaign_district(stack: Any) -> Iterator[Any]:
    made: list[CampaignDistrict] = []

    def make(dataset: Path) -> CampaignDistrict:
        made.append(CampaignDistrict(stack, dataset))
        return made[-1]

    yield make
    stack.clear_crashes()
    for each in made:
        each.close()


def assert_converged(d: CampaignDistrict, reference: dict[str, Any], night: int) -> None:
    export = d.export()
    assert duplicates(export) == 0
    assert lost(reference[f"active-{night}"], export, d.id) == 0
    assert normalised(export, d.id) == reference[f"night-{night}"]


# -- crashes: each step dies once, then the district syncs again --------------------------------------

# (function, after_writes): 0 before the handler runs, k after its k-th directory write, None after it
# returned (its work done, its answer lost).
FIRST_NIGHT_CRASHES = [
    ("StartRunFunction", 0),
    ("FetchRosterFunction", None),
    ("MatchRosterFunction", None),
    ("UpsertChunkFunction", 3),
    ("WriteReportFunction", None),
    ("FinishRunFunction", 0),
]


@pytest.mark.parametrize(("function", "after_writes"), FIRST_NIGHT_CRASHES)
def test_a_crashed_step_leaves_a_district_that_the_next_run_completes(
    stack: Any, campaign_district: Any, nights: Any, reference: Any, function: str, after_writes: int | None
) -> None:
    # Given a district's first sync, whose step dies once
    d = campaign_district(nights[0])
    crash = stack.inject_crash(function, after_writes=after_writes, district=d.id)

    crashed = d.sync()

    # Then the run did not succeed, and it let its district go (CloseRun expires a lock Finish kept)
    assert crash.fired == 1
    assert crashed.execution["status"] == "FAILED"
    if function not in ("WriteReportFunction", "FinishRunFunction"):  # those died after the report was written
        assert crashed.status == "failed" and crashed.report["status"] == "failed"
        assert crashed.run["run_id"] == crashed.run_id
    assert d.wait_lock_free(), f"the district stayed locked after a crash in {function}"
    assert duplicates(d.export()) == 0

    # When it syncs again, the directory is the one a clean run makes: nothing twice, nothing lost
    again = d.sync()
    assert again.status == "succeeded", (again.execution.get("cause"), again.report and again.report["notes"])
    assert_converged(d, reference, 1)


def test_a_crash_inside_archive_then_a_rerun_archives_the_rest(
    stack: Any, campaign_district: Any, nights: Any, reference: Any
) -> None:
    # Given night 2 (one student leaves, with their guardians, links and enrollments) and Archive dying
    # after its first directory write
    d = campaign_district(nights[0])
    assert d.sync().status == "succeeded"
    d.serve(nights[1])
    crash = stack.inject_crash("ArchiveUnmanagedFunction", after_writes=1, district=d.id)

    crashed = d.sync()

    assert crash.fired == 1 and crashed.execution["status"] == "FAILED"
    assert d.wait_lock_free()
    again = d.sync()
    assert again.status == "succeeded"
    assert_converged(d, reference, 2)


# -- provider faults ----------------------------------------------------------------------------------


def test_provider_faults_never_archive_on_an_incomplete_fetch(
    stack: Any, campaign_district: Any, nights: Any, reference: Any
) -> None:
    # Given a district synced on night 1, served night 2 (a leaver a complete fetch would archive)
    d = campaign_district(nights[0])
    assert d.sync().status == "succeeded"
    d.serve(nights[1])

    # When a fault stops the fetch (a truncated page of the night's Clever events, the token revoked): the
    # run fails or is marked incomplete, with a reason, and archives nothing
    for fault in ("truncated page", "token revoked"):
        if fault == "truncated page":
            d.simulator.inject_malformed("/v3.0/events", page=1)
        else:
            d.connect("revoked-token")
        run = d.sync()
        d.simulator.clear_faults()
        assert run.archived() == 0, fault
        assert run.status in ("failed", "succeeded_with_errors"), (fault, run.status)
        reason = run.report.get("failure_reason") or " ".join(run.report.get("notes", []))
        assert "Nothing was archived" in reason or "Archiving skipped" in reason, (fault, reason)
        assert d.wait_lock_free()
        assert_converged(d, reference, 1)
    d.connect(d.simulator.token)

    # and a 5xx burst within the client's retries lets the run through: the leaver is archived
    d.simulator.inject("/v3.0/events", 503, times=3)
    burst = d.sync()
    assert burst.status == "succeeded" and burst.archived() > 0
    assert_converged(d, reference, 2)


# -- roster shrinks, locks, districts side by side ------------------------------------------------------


def test_a_roster_shrink_over_the_threshold_archives_nothing_of_that_kind(
    campaign_district: Any, nights: Any, tmp_path: Path
) -> None:
    # Given 15 % of the students (3 of 20) leave
    night = tmp_path / "shrink"
    shutil.copytree(nights[0], night)
    gone = _leave(night, 3)
    d = campaign_district(nights[0])
    assert d.sync().status == "succeeded"
    before = d.export()
    d.serve(night)

    run = d.sync()

    # Then no student is archived, the run says why, and every student of the roster is still there
    assert run.status == "threshold_exceeded"
    assert run.report["threshold"]["students"]["would_archive"] == len(gone)
    assert run.report["counts"]["students"]["archived"] == 0
    export = d.export()
    people = {r["provider_ids"].get("clever"): r["status"] for r in export["people"]}
    assert all(people[s] == "active" for s in gone)
    assert lost_from_roster(night, export, before=before) == 0 and duplicates(export) == 0


def test_two_runs_of_one_district_at_once_exactly_one_proceeds(
    campaign_district: Any, nights: Any, reference: Any
) -> None:
    d = campaign_district(nights[0])

    runs = [d.outcome(arn) for arn in [d.start(), d.start()]]

    statuses = sorted(r.execution["status"] for r in runs)
    assert statuses == ["FAILED", "SUCCEEDED"]
    (refused,) = [r for r in runs if r.execution["status"] == "FAILED"]
    assert refused.error == "LockHeldError" and refused.run is None
    assert_converged(d, reference, 1)


def test_districts_syncing_at_once_write_only_their_own_keys(
    stack: Any, campaign_district: Any, nights: Any, tmp_path: Path
) -> None:
    # Given a district already synced (a bystander), and three others with rosters of their own
    bystander = campaign_district(nights[0])
    assert bystander.sync().status == "succeeded"
    before = bystander.export()
    districts = []
    for n in range(3):
        write_synthetic_clever_district(tmp_path / f"d{n}", students=5, seed=100 + n)
        districts.append(campaign_district(tmp_path / f"d{n}"))

    # When the three sync at once
    runs = [d.outcome(arn) for d, arn in [(d, d.start()) for d in districts]]

    # Then each succeeded, holds its own roster only, and the bystander did not change
    assert [r.status for r in runs] == ["succeeded"] * 3
    assert foreign_items(stack.outputs["DirectoryTableName"], {d.id for d in [bystander, *districts]}) == 0
    for d, run in zip(districts, runs, strict=True):
        export = d.export()
        users = {u["data"]["id"] for u in json.loads((d.dataset / "users.json").read_text())["data"]}
        synced = {r["provider_ids"]["clever"] for r in export["people"] if "clever" in r["provider_ids"]}
        assert synced <= users and duplicates(export) == 0
        assert lost_from_roster(d.dataset, export, report=run.report) == 0
    assert bystander.export() == before
