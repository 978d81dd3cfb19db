"""The fault campaign (issue 9): crashes, provider faults, roster shrinks, concurrency and generated
records, on the embedded stack; prints a table and exits non-zero if anything was lost or duplicated.

    python bench/chaos.py [--students 20] [--districts 20] [--records 10000] [--seed 7]
    (make chaos)

- Crashes: each step's Lambda dies before its handler runs and after it returned (Start, Fetch, Match,
  Upsert, Archive, Report, Finish; Report also on its failure path), and right after a random k-th
  directory write inside Upsert and Archive (``EmbeddedStack.inject_crash``). Then the district syncs
  again and must hold the directory a clean run makes (compared normalised), 0 duplicates, 0 lost.
- Provider faults on a night with a leaver: 429 storms and 5xx bursts (within and beyond the client's
  retries), a slow provider (held, then released), a truncated page, the token revoked before and during
  the run. The run succeeds with the clean directory, or fails / is marked incomplete with a reason and
  archives nothing; a clean run after it converges.
- Roster shrinks of students, teachers, guardians and classrooms from 11 % to 100 %: nothing of that kind
  archived, the run ``threshold_exceeded``, every roster record still active.
- Two runs of one district at once (exactly one proceeds, the other ``LockHeldError``) and ``--districts``
  districts at once (no item keyed or indexed under another district; bystanders unchanged).
- Generated records: Clever users and sections from Clever's Data API schema and OneRoster users.csv rows
  from the 1.1 CSV binding, through the providers' mapping: no crash, every bad record an error line.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import random
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Part:
    """One line of the table."""

    name: str
    scenarios: int = 0
    runs: int = 0
    tried: int = 0
    lost: int = 0
    duplicated: int = 0
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


PARTS = {
    "crash injections": "crashes",
    "provider faults": "faults",
    "roster shrinks": "shrinks",
    "concurrent runs": "concurrency",
    "generated records": "generated",
}


def leave(night: Path, count: int) -> set[str]:
    """The first ``count`` students leave (users and sections; contacts left with no student go too)."""
    users = json.loads((night / "users.json").read_text())
    students = sorted(u["data"]["id"] for u in users["data"] if "student" in u["data"].get("roles", {}))
    gone = set(students[:count])
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


def shrink(night: Path, kind: str, percent: int) -> tuple[int, int]:
    """Take ``percent`` % (rounded up) of one kind out of the roster; return how many went, of how many
    the roster held (guardians: Clever contacts, some of which link no synced student)."""
    users = json.loads((night / "users.json").read_text())
    sections = json.loads((night / "sections.json").read_text())
    if kind == "students":
        total = sum(1 for u in users["data"] if "student" in u["data"].get("roles", {}))
        return len(leave(night, math.ceil(total * percent / 100))), total
    if kind == "classrooms":
        ids = sorted(s["data"]["id"] for s in sections["data"])
        gone = set(ids[: math.ceil(len(ids) * percent / 100)])
        sections["data"] = [s for s in sections["data"] if s["data"]["id"] not in gone]
        (night / "sections.json").write_text(json.dumps(sections))
        return len(gone), len(ids)
    role = {"teachers": "teacher", "guardians": "contact"}[kind]
    ids = sorted(u["data"]["id"] for u in users["data"] if role in u["data"].get("roles", {}))
    gone = set(ids[: math.ceil(len(ids) * percent / 100)])
    users["data"] = [u for u in users["data"] if u["data"]["id"] not in gone]
    (night / "users.json").write_text(json.dumps(users))
    if kind == "teachers":
        for item in sections["data"]:
            data = item["data"]
            data["teachers"] = [t for t in data.get("teachers", []) if t not in gone]
            if data.get("teacher") in gone:
                data["teacher"] = data["teachers"][0] if data["teachers"] else None
        (night / "sections.json").write_text(json.dumps(sections))
    return len(gone), len(ids)


def roster_size(dataset: Path) -> int:
    from rostersync_tools.local.campaign import roster_ids

    return sum(len(ids) for ids in roster_ids(dataset).values())


def main() -> int:  # noqa: C901 - one campaign, read top to bottom
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--students", type=int, default=20)
    parser.add_argument("--shrink-students", type=int, default=120, help="the district the shrinks start from")
    parser.add_argument("--districts", type=int, default=20)
    parser.add_argument("--records", type=int, default=10_000, help="generated records, at least")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--only",
        default=",".join(PARTS.values()),
        help=f"comma-separated parts (default all: {','.join(PARTS.values())})",
    )
    args = parser.parse_args()
    only = set(args.only.split(","))
    for name in ("werkzeug", "moto", "botocore", "urllib3", "aws_lambda_powertools", "rostersync"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    os.environ["PROVIDER_RETRY_BASE_SECONDS"] = "0"  # the clients retry without waiting

    from rostersync.config import runtime_config
    from rostersync_tools.local.campaign import (
        CampaignDistrict,
        active_names,
        duplicates,
        foreign_items,
        lost,
        lost_from_roster,
        normalised,
    )
    from rostersync_tools.local.stack import EmbeddedStack
    from rostersync_tools.local.synthetic import write_synthetic_clever_district

    began = time.perf_counter()
    rng = random.Random(args.seed)
    workdir = Path(tempfile.mkdtemp(prefix="rostersync-chaos-"))
    night1, night2 = workdir / "night-1", workdir / "night-2"
    write_synthetic_clever_district(night1, students=args.students, seed=args.seed)
    shutil.copytree(night1, night2)
    leave(night2, max(1, args.students // 20))  # about 5 %: under the deletion threshold
    users = json.loads((night2 / "users.json").read_text())
    staying = next(u for u in users["data"] if "student" in u["data"].get("roles", {}))
    staying["data"]["name"]["last"] = "Renamed"  # and one update, so night 2's Upsert has a chunk to write
    (night2 / "users.json").write_text(json.dumps(users))
    # The shrinks start from a larger district, so that 11 % of its teachers is at least one of several.
    shrink_base = workdir / "shrink-base"
    write_synthetic_clever_district(shrink_base, students=args.shrink_students, seed=args.seed + 1)

    runtime_config.cache_clear()
    stack = EmbeddedStack(parameters={"LogLevel": "CRITICAL"}).start()
    runtime_config.cache_clear()
    parts: list[Part] = []
    districts: list[CampaignDistrict] = []

    def district(dataset: Path) -> CampaignDistrict:
        districts.append(CampaignDistrict(stack, dataset))
        return districts[-1]

    def scenario(part: Part, label: str, body: Callable[[], None]) -> None:
        if PARTS[part.name] not in only:
            return
        part.scenarios += 1
        try:
            body()
        except Exception as exc:  # noqa: BLE001 - a failed scenario is a line of the report, not the end
            part.failures.append(f"{label}: {type(exc).__name__}: {exc}"[:400])
            if os.environ.get("CHAOS_TRACEBACK"):
                traceback.print_exc()
        finally:
            stack.clear_crashes()

    def check(part: Part, d: CampaignDistrict, expected: dict[str, Any], night: int, label: str) -> None:
        """The district holds what a clean run makes: counted lost and duplicated, then compared."""
        export = d.export()
        part.tried += len(expected[f"active-{night}"])
        part.lost += lost(expected[f"active-{night}"], export, d.id)
        part.duplicated += duplicates(export)
        if normalised(export, d.id) != expected[f"night-{night}"]:
            raise AssertionError(f"{label}: the directory differs from a clean run's")

    def free(d: CampaignDistrict, label: str) -> None:
        if not d.wait_lock_free():
            raise AssertionError(f"{label}: the district stayed locked")

    try:
        # -- what clean runs make ------------------------------------------------------------------------
        reference: dict[str, Any] = {}
        ref = district(night1)
        for n, night in enumerate((night1, night2), start=1):
            ref.serve(night)
            with_writes = ref.sync()
            if with_writes.status != "succeeded":
                raise SystemExit(f"clean night {n} did not succeed: {with_writes.execution.get('cause')}")
            export = ref.export()
            reference[f"night-{n}"], reference[f"active-{n}"] = normalised(export, ref.id), active_names(export, ref.id)
            reference[f"archived-{n}"] = with_writes.archived()
        upsert_writes = math.ceil(len(reference["active-1"]) / 25)  # BatchWriteItem requests of the first sync
        archive_writes = max(1, reference["archived-2"])  # one conditional update per archived record

        # -- crashes ---------------------------------------------------------------------------------------
        crashes = Part("crash injections")
        started = time.perf_counter()

        def crash_then_rerun(
            function: str, after_writes: int | None, night: int, also: tuple[str, int | None] | None = None
        ) -> None:
            label = f"{function} after_writes={after_writes} night {night}" + (f" and {also}" if also else "")
            d = district(night1)
            if night == 2:
                if d.sync().status != "succeeded":
                    raise AssertionError(f"{label}: night 1 did not succeed")
                d.serve(night2)
                crashes.runs += 1
            crash = stack.inject_crash(function, after_writes=after_writes)
            if also:
                stack.inject_crash(also[0], after_writes=also[1])
            crashed = d.sync()
            crashes.runs += 1
            if crash.fired == 0:
                raise AssertionError(f"{label}: the crash never fired")
            if crashed.execution["status"] != "FAILED":
                raise AssertionError(f"{label}: the execution {crashed.execution['status']} despite the crash")
            free(d, label)
            crashes.duplicated += duplicates(d.export())
            again = d.sync()
            crashes.runs += 1
            if again.status != "succeeded":
                raise AssertionError(f"{label}: the run after the crash ended {again.status}")
            check(crashes, d, reference, night, label)

        steps = ["StartRunFunction", "FetchRosterFunction", "MatchRosterFunction", "UpsertChunkFunction"]
        steps += ["WriteReportFunction", "FinishRunFunction"]
        for function in steps:
            for after in (0, None):
                scenario(crashes, function, lambda f=function, a=after: crash_then_rerun(f, a, 1))
        for function in ("UpsertChunkFunction", "ArchiveUnmanagedFunction"):
            for after in (0, None):
                scenario(crashes, function, lambda f=function, a=after: crash_then_rerun(f, a, 2))
        # A step dies, then its failure report too: CloseRun (on the execution's FAILED event) reports the run.
        for function in ("FetchRosterFunction", "UpsertChunkFunction"):
            scenario(
                crashes,
                f"{function} and its report",
                lambda f=function: crash_then_rerun(f, None, 1, also=("WriteReportFunction", 0)),
            )
        for k in sorted(rng.sample(range(1, upsert_writes + 1), min(6, upsert_writes))):
            scenario(crashes, f"upsert {k}", lambda k=k: crash_then_rerun("UpsertChunkFunction", k, 1))
        for k in sorted({rng.randint(1, archive_writes) for _ in range(4)}):
            scenario(crashes, f"archive {k}", lambda k=k: crash_then_rerun("ArchiveUnmanagedFunction", k, 2))
        crashes.seconds = time.perf_counter() - started
        parts.append(crashes)

        # -- provider faults -------------------------------------------------------------------------------
        faults = Part("provider faults")
        started = time.perf_counter()

        def fault_run(label: str, arm: Callable[[CampaignDistrict], Callable[[], None]]) -> None:
            d = district(night1)
            if d.sync().status != "succeeded":
                raise AssertionError(f"{label}: night 1 did not succeed")
            d.serve(night2)
            during = arm(d)
            arn = d.start()
            during()
            run = d.outcome(arn)
            faults.runs += 2
            d.simulator.clear_faults()
            d.connect(d.simulator.token)
            free(d, label)
            if run.status == "succeeded":
                check(faults, d, reference, 2, label)
            else:
                if run.archived():
                    raise AssertionError(f"{label}: {run.archived()} archived by a run that ended {run.status}")
                report = run.report or {}
                reason = report.get("failure_reason") or " ".join(report.get("notes", []))
                if not reason:
                    raise AssertionError(f"{label}: the run ended {run.status} without a reason")
                check(faults, d, reference, 1, label)
                again = d.sync()
                faults.runs += 1
                if again.status != "succeeded":
                    raise AssertionError(f"{label}: the clean run after the fault ended {again.status}")
                check(faults, d, reference, 2, label)

        def nothing() -> None:
            return None

        def inject(status: int, times: int) -> Callable[[CampaignDistrict], Callable[[], None]]:
            def arm(d: CampaignDistrict) -> Callable[[], None]:
                d.simulator.inject("/v3.0/", status, times=times)
                return nothing

            return arm

        # Night 2 is read from Clever's events (a full read would read users): faults aim at /v3.0/events.
        def slow(d: CampaignDistrict) -> Callable[[], None]:
            arrived, release = d.simulator.hold("/v3.0/events")

            def during() -> None:
                if not arrived.wait(300):
                    raise AssertionError("slow provider: Fetch never asked for the events")
                release.set()

            return during

        def truncated(d: CampaignDistrict) -> Callable[[], None]:
            d.simulator.inject_malformed("/v3.0/events", page=1)
            return nothing

        def revoked_before(d: CampaignDistrict) -> Callable[[], None]:
            d.connect("revoked-token")
            return nothing

        def revoked_during(d: CampaignDistrict) -> Callable[[], None]:
            arrived, release = d.simulator.hold("/v3.0/events")
            token = d.simulator.token

            def during() -> None:
                if not arrived.wait(300):
                    raise AssertionError("revoked token: Fetch never asked for the events")
                d.simulator.token = "revoked-" + token  # noqa: S105 - the provider stops accepting it
                release.set()

            return during  # the clean run after it connects the simulator's new token

        for label, arm in [
            ("429 storm within retries", inject(429, 5)),
            ("429 storm beyond retries", inject(429, 60)),
            ("5xx burst within retries", inject(503, 5)),
            ("5xx burst beyond retries", inject(500, 60)),
            ("slow provider", slow),
            ("truncated page", truncated),
            ("token revoked before the run", revoked_before),
            ("token revoked mid-run", revoked_during),
        ]:
            scenario(faults, label, lambda label=label, arm=arm: fault_run(label, arm))
        faults.seconds = time.perf_counter() - started
        parts.append(faults)

        # -- roster shrinks --------------------------------------------------------------------------------
        shrinks = Part("roster shrinks")
        started = time.perf_counter()
        for kind in ("students", "teachers", "guardians", "classrooms"):
            for percent in (11, 25, 50, 100):

                def shrunk(kind: str = kind, percent: int = percent) -> None:
                    label = f"{kind} -{percent}%"
                    night = workdir / f"shrink-{kind}-{percent}"
                    shutil.copytree(shrink_base, night)
                    gone, in_roster = shrink(night, kind, percent)
                    d = district(shrink_base)
                    if d.sync().status != "succeeded":
                        raise AssertionError(f"{label}: night 1 did not succeed")
                    before = d.export()
                    d.serve(night)
                    run = d.sync()
                    shrinks.runs += 2
                    export = d.export()
                    shrinks.tried += roster_size(night) + gone
                    shrinks.lost += lost_from_roster(night, export, before=before)
                    shrinks.duplicated += duplicates(export)
                    held = run.report["counts"][kind].get("would_archive", 0)
                    line = f"{gone} of {in_roster} {kind} left the roster, {held} held, run {run.status}"
                    print(f"  shrink {label}: {line}")
                    if run.status != "threshold_exceeded":
                        raise AssertionError(f"{label} ({gone} records): the run ended {run.status}")
                    archived = run.report["counts"][kind]["archived"]
                    if archived:
                        raise AssertionError(f"{label}: {archived} {kind} archived over the threshold")
                    said = json.dumps([run.report["threshold"], run.report["notes"]])
                    if kind not in said:
                        raise AssertionError(f"{label}: the report does not say {kind} were held back")

                scenario(shrinks, f"{kind} {percent}", shrunk)
        shrinks.seconds = time.perf_counter() - started
        parts.append(shrinks)

        # -- concurrency -----------------------------------------------------------------------------------
        together = Part("concurrent runs")
        started = time.perf_counter()

        def two_at_once() -> None:
            d = district(night1)
            runs = [d.outcome(arn) for arn in [d.start(), d.start()]]
            together.runs += 2
            statuses = sorted(r.execution["status"] for r in runs)
            if statuses != ["FAILED", "SUCCEEDED"]:
                raise AssertionError(f"two runs at once ended {statuses}")
            (refused,) = [r for r in runs if r.execution["status"] == "FAILED"]
            if refused.error != "LockHeldError":
                raise AssertionError(f"the second run failed with {refused.error}, not LockHeldError")
            check(together, d, reference, 1, "two at once")

        for n in range(3):
            scenario(together, f"two at once {n}", two_at_once)

        def many_at_once() -> None:
            bystanders = [district(night1) for _ in range(2)]
            for b in bystanders:
                if b.sync().status != "succeeded":
                    raise AssertionError("a bystander's sync did not succeed")
            before = [b.export() for b in bystanders]
            crowd = []
            for n in range(args.districts):
                path = workdir / f"crowd-{n}"
                write_synthetic_clever_district(path, students=5, seed=1000 + n)
                crowd.append(district(path))
            arns = [(d, d.start()) for d in crowd]
            results = [d.outcome(arn) for d, arn in arns]
            together.runs += len(results) + len(bystanders)
            bad = [r.status for r in results if r.status != "succeeded"]
            if bad:
                raise AssertionError(f"{len(bad)} of {len(results)} districts did not succeed: {bad[:3]}")
            wrong = foreign_items(stack.outputs["DirectoryTableName"], {d.id for d in [*bystanders, *crowd]})
            if wrong:
                raise AssertionError(f"{wrong} items name another district")
            for d, run in zip(crowd, results, strict=True):
                export = d.export()
                together.tried += roster_size(d.dataset)
                together.lost += lost_from_roster(d.dataset, export, report=run.report)
                together.duplicated += duplicates(export)
                users = {u["data"]["id"] for u in json.loads((d.dataset / "users.json").read_text())["data"]}
                synced = {r["provider_ids"].get("clever") for r in export["people"]}
                if not synced <= users:
                    raise AssertionError(f"district {d.id} holds people not of its roster")
            if [b.export() for b in bystanders] != before:
                raise AssertionError("a bystander's directory changed while others synced")

        scenario(together, f"{args.districts} districts at once", many_at_once)
        together.seconds = time.perf_counter() - started
        parts.append(together)
    finally:
        for d in districts:
            d.close()
        stack.stop()
        shutil.rmtree(workdir, ignore_errors=True)

    # -- generated records (in-process, no stack) ----------------------------------------------------------
    if "generated" in only:
        parts.append(generated_records(args.records))

    # -- the table --------------------------------------------------------------------------------------------
    print()
    header = f"{'part':<20} {'scenarios':>9} {'runs':>5} {'records tried':>13} {'lost':>5} {'duplicated':>10} "
    header += f"{'failed':>6} {'seconds':>8}"
    print(header)
    print("-" * len(header))
    for p in parts:
        print(
            f"{p.name:<20} {p.scenarios:>9} {p.runs:>5} {p.tried:>13,} {p.lost:>5} {p.duplicated:>10} "
            f"{len(p.failures):>6} {p.seconds:>8.0f}"
        )
    total = Part("total")
    for p in parts:
        total.scenarios += p.scenarios
        total.runs += p.runs
        total.tried += p.tried
        total.lost += p.lost
        total.duplicated += p.duplicated
        total.failures += p.failures
    print("-" * len(header))
    print(
        f"{'total':<20} {total.scenarios:>9} {total.runs:>5} {total.tried:>13,} {total.lost:>5} "
        f"{total.duplicated:>10} {len(total.failures):>6} {time.perf_counter() - began:>8.0f}"
    )
    print(
        f"\ninjections {parts[0].scenarios}, faults {parts[1].scenarios}, shrinks {parts[2].scenarios}, "
        f"records tried {total.tried:,}, records lost {total.lost}, records duplicated {total.duplicated}"
    )
    for failure in total.failures:
        print(f"FAILED {failure}")
    return 1 if total.lost or total.duplicated or total.failures else 0


def generated_records(at_least: int) -> Part:
    """Clever users and sections and OneRoster users.csv rows, generated, through the mapping."""
    from hypothesis import HealthCheck, given, settings

    from rostersync_tools.local.generated import (
        check_clever_sections,
        check_clever_users,
        check_oneroster_users,
        clever_items,
        oneroster_user_rows,
    )

    part = Part("generated records")
    started = time.perf_counter()
    # Clever users cost the most to generate (a user and a role object, both from the schema).
    batches = [
        ("Clever users", clever_items("User"), check_clever_users, math.ceil(at_least * 0.3), lambda item: 1),
        ("Clever sections", clever_items("Section"), check_clever_sections, math.ceil(at_least * 0.4), lambda item: 1),
        ("OneRoster users.csv rows", oneroster_user_rows(), check_oneroster_users, None, len),
    ]
    for label, strategy, check, examples, size in batches:
        tried = {"records": 0, "errors": 0}
        checked = _counting(check, size, tried)

        part.scenarios += 1
        # The last batch runs until the part has tried at least ``at_least`` records (a batch of rows
        # has about 4 rows, fewer or more as hypothesis draws them), in at most 5 rounds.
        for _ in range(1 if examples else 5):
            wanted = examples or math.ceil(max(at_least - part.tried - tried["records"], 100) / 3.5)
            run = settings(
                max_examples=wanted,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )(given(strategy)(checked))
            try:
                run()
            except Exception as exc:  # noqa: BLE001 - hypothesis raises the smallest failing example
                part.failures.append(f"{label}: {type(exc).__name__}: {exc}"[:600])
                break
            if part.tried + tried["records"] >= at_least:
                break
        part.tried += tried["records"]
        print(f"  generated {label}: {tried['records']:,} records, {tried['errors']:,} reported as error lines")
    part.seconds = time.perf_counter() - started
    return part


def _counting(check: Callable[[Any], tuple[int, int]], size: Callable[[Any], int], tried: dict[str, int]) -> Any:
    """The property hypothesis runs: check one generated item, counting records and error lines."""

    def checked(item: Any) -> None:
        tried["records"] += size(item)
        tried["errors"] += check(item)[1]

    return checked


if __name__ == "__main__":
    sys.exit(main())
