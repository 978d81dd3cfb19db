"""Fetch reads every provider list in its own Map item, slice by slice, on the real state machine.

A connection's ``max_pages_per_slice`` forces many slices on a small district; the snapshot, the plan
and the report must be what one slice per list gives. A slice whose answer is lost is retried without
reading anything twice, the branches together keep to the district's rate limit, and a page one branch
cannot read still leaves the fetch incomplete with nothing archived.
"""

from __future__ import annotations

import gzip
import json
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest
import requests

from rostersync import aws
from rostersync.directory.product import ProductDirectory
from rostersync.providers.clever import USER_ROLES
from rostersync.providers.oneroster_rest import API_PATH
from rostersync.settings import IncrementalSettings
from rostersync_tools.local.convert import clever_to_oneroster
from rostersync_tools.local.simulator import ProviderSimulator
from rostersync_tools.local.stack import RETRY_WAITS
from rostersync_tools.local.synthetic import set_up_district

pytestmark = pytest.mark.e2e

RUN_COUNTS = ("schools", "classrooms", "students", "teachers", "staff", "guardians", "enrollments", "guardian_links")


def sliced(d: Any, max_pages_per_slice: int, **more: Any) -> None:
    """The district's connection with a page bound per slice (and any other connection field)."""
    connection = d.state.get_item("CONNECTION")
    d.state.put_item("CONNECTION", {**connection, "max_pages_per_slice": max_pages_per_slice, **more})


def s3_json(bucket: str, key: str) -> Any:
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def snapshot_ids(run: Any) -> dict[str, list[str]]:
    """Every snapshot record's provider id (or an error's reason), per collection, as Match reads them."""
    manifest = s3_json(run.bucket, f"runs/{run.district_id}/{run.run_id}/snapshot/manifest.json")
    s3 = aws.client("s3")
    ids: dict[str, list[str]] = {}
    for collection, keys in manifest.items():
        ids[collection] = []
        for key in keys:
            body = gzip.decompress(s3.get_object(Bucket=run.bucket, Key=key)["Body"].read())
            for line in body.splitlines():
                record = json.loads(line)
                ids[collection].append(record.get("provider_id") or record.get("reason", ""))
    return ids


def people_twice(run: Any) -> list[str]:
    """The provider ids the run's snapshot holds more than once among its people and guardians."""
    ids = snapshot_ids(run)
    return [pid for pid, n in Counter(ids["people"] + ids["guardians"]).items() if n > 1]


def checkpoint(run: Any, resource: str) -> dict[str, Any]:
    return s3_json(run.bucket, f"runs/{run.district_id}/{run.run_id}/fetch/{resource}/checkpoint.json")


def fetch_result(run: Any) -> dict[str, Any]:
    return json.loads(run.execution["output"])["fetch"]


def same_run(one: Any, many: Any, status: str = "succeeded") -> None:
    """Two runs of the same roster, read in one slice and in many, fetched, planned and reported alike."""
    assert one.status == many.status == status, (
        many.execution.get("cause"),
        many.report and many.report["errors"],
    )
    assert {c: sorted(i) for c, i in snapshot_ids(many).items()} == {c: sorted(i) for c, i in snapshot_ids(one).items()}
    assert fetch_result(many)["records"] == fetch_result(one)["records"]
    assert fetch_result(many)["complete"] is True
    for kind in RUN_COUNTS:
        assert many.counts(kind) == one.counts(kind), kind
    assert many.report["findings"] == one.report["findings"]


def test_the_demo_district_read_a_page_per_slice_syncs_as_in_one_slice(
    district: Any, demo_cut: Any, demo_product: Any
) -> None:
    # Given the demo district cut to two sections a school (242 of its 2,098 users: Clever's own records,
    # every kind of user among them) in pages of 20, once read in one slice per list and once with one page
    # per slice (the point is a list read in many slices, which the whole district in pages of 100 showed
    # with 21, at several times the cost)
    roster = demo_cut("snapshot-1", sections_per_school=2)
    listed = Counter(next(r for r in USER_ROLES if r in user["roles"]) for user in roster.users())
    pages = {role: max(1, -(-listed[role] // 20)) for role in USER_ROLES}  # an empty list is a page too
    assert pages["student"] >= 5 and pages["contact"] >= 5 and listed["student"] % 20  # many slices
    one = district(roster, page_limit=20, product=demo_product())
    many = district(roster, page_limit=20, product=demo_product())
    sliced(many, 1)

    first, second = one.sync(export=False), many.sync(export=False)

    # Then both fetched, planned and reported the same, the users list was read in a slice per page
    same_run(first, second)
    for role in USER_ROLES:
        users = checkpoint(second, f"users-{role}")
        assert (users["slice"], users["pages"], users["done"]) == (pages[role], pages[role], True)
        assert checkpoint(first, f"users-{role}")["slice"] == 1
        keys = [key for keys in users["slices"] for key in keys]
        assert len(keys) == len(set(keys)) == -(-listed[role] // 20)  # an empty page writes no chunk
    # And the state never held per-page data: the plan's list names only
    state = json.loads(second.execution["output"])
    users_by_role = [f"users-{role}" for role in USER_ROLES]
    assert state["fetch_plan"]["resources"] == ["courses", "terms", "schools", "sections", *users_by_role]
    assert "slice" not in state


def test_a_full_read_asks_for_sections_in_smaller_pages_than_users(district: Any, synthetic: Any) -> None:
    # Given a district connected with Clever's page limit of 10,000
    d = district(synthetic)

    run = d.sync(export=False)

    # Then the sections, each carrying its students' ids, were asked for 5,000 a page and every users list
    # 10,000 a page (a page in memory at a time: the sections' pages no heavier than the users')
    assert run.status == "succeeded", run.execution.get("cause")
    asked: dict[str, set[str]] = {}
    for path, query in d.simulator.requests_seen:
        asked.setdefault(path, set()).update(parse_qs(query).get("limit", []))
    assert asked["/v3.0/sections"] == {"5000"}
    assert asked["/v3.0/users"] == asked["/v3.0/schools"] == {"10000"}


def oneroster_district(
    stack: Any, product: ProductDirectory, clever_dir: Path, tmp_path: Path, page_limit: int
) -> tuple[str, Any]:
    """The product district connected to a OneRoster REST simulator serving the dataset as a bundle."""
    bundle = tmp_path / f"bundle-{uuid.uuid4().hex[:6]}"
    clever_to_oneroster(clever_dir, bundle)
    simulator = ProviderSimulator(bundle, token=f"token-{uuid.uuid4().hex[:12]}").start()
    _, state = set_up_district(
        product,
        "oneroster-rest",
        simulator.base_url,
        simulator.token,
        page_limit=page_limit,
        stack=stack.stack_name,
        auth="bearer",
    )
    return product.district.id, (state, simulator)


def test_a_oneroster_rest_district_read_a_page_per_slice_syncs_as_in_one_slice(
    stack: Any, run_sync: Any, synthetic: Any, make_product: Any, tmp_path: Path
) -> None:
    # Given one synthetic district served by OneRoster REST in pages of 20, read in one slice per
    # collection, with one page per slice, and in parts of 30 records by offset (a collection the server
    # counts above that is read by several Map items side by side; 30 is not a whole number of pages)
    products = [make_product(synthetic, provider="oneroster") for _ in range(3)]
    one_id, (_, one_sim) = oneroster_district(stack, products[0], synthetic.path, tmp_path, page_limit=20)
    many_id, (many_state, many_sim) = oneroster_district(stack, products[1], synthetic.path, tmp_path, page_limit=20)
    parted_id, (parted_state, parted_sim) = oneroster_district(
        stack, products[2], synthetic.path, tmp_path, page_limit=20
    )
    connection = many_state.get_item("CONNECTION")
    many_state.put_item("CONNECTION", {**connection, "max_pages_per_slice": 1})
    connection = parted_state.get_item("CONNECTION")
    parted_state.put_item("CONNECTION", {**connection, "part_records": 30})
    try:
        first, second, parted = (run_sync(d, export=False) for d in (one_id, many_id, parted_id))
    finally:
        for simulator in (one_sim, many_sim, parted_sim):
            simulator.stop()

    # Then all three read, planned and reported the same; users took several slices
    same_run(first, second)
    same_run(first, parted)
    assert checkpoint(second, "users")["slice"] > 2
    assert checkpoint(second, "users")["slice"] == checkpoint(second, "users")["pages"]
    assert checkpoint(first, "users")["slice"] == 1
    # and the parted run cut each collection of more than 30 records into parts of 30 by offset, the last
    # reading on to the end: each part read its 30 records (two pages: 20, then 10), none twice
    plan = plan_of(parted)
    assert plan_of(first)["parts"] == {} and len(plan_of(first)["lists"]) == 7
    for name in ("users", "enrollments"):
        parts = plan["parts"][name]
        assert len(parts) > 2 and parts[0] == name
        assert [plan["lists"][p]["offset"] for p in parts] == [30 * n for n in range(len(parts))]
        assert plan["lists"][parts[-1]]["end"] is None
        read = [checkpoint(parted, p)["records"] for p in parts]
        assert read[:-1] == [30] * (len(parts) - 1) and 0 < read[-1] <= 30
        assert [checkpoint(parted, p)["pages"] for p in parts[:-1]] == [2] * (len(parts) - 1)
    enrollments = [checkpoint(parted, p)["records"] for p in plan["parts"]["enrollments"]]
    assert sum(enrollments) == fetch_result(first)["records"]["enrollments"]


def served_ids(simulator: ProviderSimulator, collection: str) -> list[str]:
    """A OneRoster collection's ids in the order the server pages them (one page of all)."""
    answer = requests.get(
        f"{simulator.base_url}{API_PATH}/{collection}?limit=100000",
        headers={"Authorization": f"Bearer {simulator.token}"},
        timeout=30,
    )
    answer.raise_for_status()
    return [record["sourcedId"] for record in answer.json()[collection]]


@pytest.mark.parametrize(
    ("part_records", "counted"),
    [(None, True), (30, True), (None, False)],
    ids=["one-list", "parts-of-30", "one-list-uncounted"],
)
def test_a_oneroster_collection_that_changes_while_read_archives_nothing_that_night(
    stack: Any,
    run_sync: Any,
    synthetic: Any,
    make_product: Any,
    tmp_path: Path,
    part_records: int | None,
    counted: bool,
) -> None:
    # Given a OneRoster REST district read in full every night, synced once, in pages of 20 (read as one list,
    # or in parts of 30 side by side), then a night its server drops the third enrollment right after answering
    # the first page of them: the enrollments after it move back one place, and the one at the next page's
    # start would be passed over by a page asked from the next offset (``uncounted``: a server that sends no
    # X-Total-Count that night, so only the page's start can tell)
    product = make_product(synthetic, provider="oneroster")
    district_id, (state, simulator) = oneroster_district(stack, product, synthetic.path, tmp_path, page_limit=20)
    settings, version = state.current_settings()
    state.put_settings(settings.model_copy(update={"incremental": IncrementalSettings(mode="full")}), version, "e2e")
    if part_records:
        state.put_item("CONNECTION", {**state.get_item("CONNECTION"), "part_records": part_records})
    try:
        first = run_sync(district_id)
        assert first.status == "succeeded" and fetch_result(first)["complete"] is True
        enrollments = served_ids(simulator, "enrollments")
        if part_records:
            # (read at rest, each part after the first read the record before its offset: the one the part
            # before it ended with)
            parts = s3_json(first.bucket, f"runs/{district_id}/{first.run_id}/fetch/plan.json")["parts"]
            names = parts["enrollments"]
            assert len(names) > 2
            for before, after in zip(names, names[1:], strict=False):
                assert checkpoint(first, after)["before"] == checkpoint(first, before)["last_id"]
                assert checkpoint(first, after)["before"] == enrollments[part_records * names.index(after) - 1]
        dropped, passed_over = enrollments[2], enrollments[20]
        simulator.remove_while_read("enrollments", dropped, after_offset=0)
        simulator.send_total_count = counted

        night = run_sync(district_id)
        simulator.send_total_count = True

        # Then the fetch is incomplete, the report's note says the enrollments changed while read (once, though
        # several parts saw it), and nothing was archived: neither the enrollment the server dropped nor one the
        # read may have passed over
        assert {kind: counts["archived"] for kind, counts in night.report["counts"].items() if counts["archived"]} == {}
        assert night.directory == first.directory
        assert night.status == "succeeded_with_errors", night.execution.get("cause")
        assert fetch_result(night)["complete"] is False
        (problem,) = fetch_result(night)["problems"]
        changed = "OneRoster's enrollments changed while they were read: "
        if counted:
            assert problem.startswith(
                f"{changed}the server counted {len(enrollments):,} when the run began and {len(enrollments) - 1:,} "
                "after "
            )
        else:
            assert problem.startswith(
                f"{changed}the page after the first 20 did not start with the last one read (records before it "
                "changed), so a record may have moved across a page boundary unread"
            )
        assert problem.endswith("this run will not archive anything (the next run reads them again)")
        (note,) = [n for n in night.report["notes"] if n.startswith("Archiving skipped")]
        assert problem in note
        if part_records is None:
            # (read as one list, the second page was asked from the last enrollment read, did not start with
            # it, and was kept whole: the snapshot holds the dropped enrollment, read on the first page, and the
            # one that moved back across the boundary, which a page asked from the next offset passed over)
            read = snapshot_ids(night)["enrollments"]
            assert len(read) == len(enrollments) and dropped in read and passed_over in read

        # And the next night, read at rest, archives the dropped enrollment only
        after = run_sync(district_id)
        assert fetch_result(after)["complete"] is True
        assert after.counts("enrollments")["archived"] == 1
        status = {r["provider_ids"]["oneroster"]: r["status"] for r in after.directory["enrollments"]}
        assert status[dropped] == "archived" and status[passed_over] == "active"
    finally:
        simulator.stop()


@contextmanager
def users_slice_dying_before_its_checkpoint(
    district_id: str, written_under: str, resource: str = "users"
) -> Iterator[list[list[str]]]:
    """While in the block, the district's second slice of ``resource`` (an events night's users list, or a
    full read's list of one role's users, ``users-student``) dies once after its work, before its
    checkpoint is written (as a Lambda out of time: Sandbox.Timedout, which the slice's Retry matches).
    Yields the list that gets, when it dies, the keys the slice had written under ``written_under``
    (``fetch/<resource>/…``)."""
    from rostersync.storage import RunStore
    from rostersync_tools.local.stack import InjectedCrashError

    put_json, died = RunStore.put_json, []

    def dies_once(store: RunStore, name: str, value: Any) -> str:
        if (
            name == f"fetch/{resource}/checkpoint.json"
            and value["slice"] == 2
            and district_id in store.prefix
            and not died
        ):
            died.append(store.list_keys(written_under))
            raise InjectedCrashError("out of time before the checkpoint", "Sandbox.Timedout")
        return put_json(store, name, value)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(RunStore, "put_json", dies_once)
        yield died


@contextmanager
def users_slices_losing_their_answer(
    stack: Any, district_id: str, times: int, resource: str = "users-student"
) -> Iterator[Any]:
    """While in the block, ``times`` slices of ``resource`` (a full read's students) die after their work was
    done (their answer lost, as a Lambda out of time: Sandbox.Timedout, which the slice's Retry matches).
    Yields the crash (``fired``)."""
    crash = stack.inject_crash(
        "FetchRosterFunction",
        after_writes=None,
        times=times,
        error_type="Sandbox.Timedout",
        when=lambda event: event.get("phase") == "slice" and event.get("resource") == resource,
        district=district_id,
    )
    try:
        yield crash
    finally:
        stack.clear_crashes()


@contextmanager
def on_each_fetch_invocation(stack: Any, district_id: str, hook: Callable[[Any], None]) -> Iterator[None]:
    """While in the block, ``hook(event)`` runs as each of the district's Fetch invocations starts (the stack's
    crash injection is the hook's way in; it crashes nothing)."""

    def when(event: Any) -> bool:
        hook(event)
        return False

    stack.inject_crash("FetchRosterFunction", when=when, district=district_id)
    try:
        yield
    finally:
        stack.clear_crashes()


@pytest.fixture(scope="module")
def clean_run(new_district: Any, synthetic_template: Path) -> Any:
    """The synthetic district in pages of 20 read in one slice per list, synced once for the tests that compare
    a sliced run of the same roster with it (their ``synthetic`` is a copy of the same files)."""
    clean = new_district(synthetic_template, page_limit=20)
    try:
        return clean.sync(export=False)
    finally:
        clean.close()


def test_a_slice_whose_answer_was_lost_is_retried_and_duplicates_nothing(
    district: Any, synthetic: Any, stack: Any, clean_run: Any
) -> None:
    # Given pages of 20 and a page per slice, and two users slices that die after their work was done
    # (their answer lost, as a Lambda out of time: Sandbox.Timedout, which the slice's Retry matches)
    d = district(synthetic, page_limit=20)
    sliced(d, 1)
    waits_before = len(RETRY_WAITS)
    with users_slices_losing_their_answer(stack, d.id, times=2) as crash:
        run = d.sync(export=False)

    # Then the slices were retried from their checkpoints, each after the wait its Retry asks for
    # (IntervalSeconds 2 with FULL jitter: 0 to 2 s, then 0 to 4 s; the stack records it and skips it),
    # and the run is the clean run's
    assert crash.fired == 2
    first, second = RETRY_WAITS[waits_before:]
    assert 0 <= first <= 2 and 0 <= second <= 4
    same_run(clean_run, run)
    assert people_twice(run) == []


def test_a_district_connected_again_while_a_run_reads_it_is_read_to_the_end_as_the_plan_read_it(
    district: Any, synthetic: Any, stack: Any, clean_run: Any
) -> None:
    # Given pages of 20 and a page per slice
    d = district(synthetic, page_limit=20)
    sliced(d, 1)
    connection = d.state.get_item("CONNECTION")
    secrets = aws.client("secretsmanager")
    students_slices: list[int] = []

    def connect_again_as_the_second_students_slice_starts(event: Any) -> None:
        """The admin connects the district again (another address, another token, under the same names, as
        ``connect_provider`` stores them) while the run reads."""
        if event.get("phase") == "slice" and event.get("resource") == "users-student":
            students_slices.append(1)
            if len(students_slices) == 2:
                secrets.put_secret_value(SecretId=connection["secret_id"], SecretString="another-districts-token")
                d.state.put_item("CONNECTION", {**connection, "base_url": "http://127.0.0.1:9/unreachable"})

    # When the district is connected again after the run's first students slice
    with on_each_fetch_invocation(stack, d.id, connect_again_as_the_second_students_slice_starts):
        run = d.sync(export=False)

    # Then the run read every list to its end with the connection and token its plan read: it is the clean run
    assert len(students_slices) > 2
    assert plan_of(run)["reading"]["connection"]["base_url"] == connection["base_url"]
    same_run(clean_run, run)
    # and the new connection is the district's, for its next run
    assert d.state.get_item("CONNECTION")["base_url"].endswith("/unreachable")


def test_a_district_connected_to_another_provider_after_its_run_started_is_not_read_and_nothing_archived(
    district: Any, synthetic: Any, stack: Any
) -> None:
    # Given a district synced once from Clever
    d = district(synthetic, page_limit=20)
    first = d.sync(export=False)
    assert first.status == "succeeded"
    connection = d.state.get_item("CONNECTION")

    def connect_to_oneroster_as_the_plan_starts(event: Any) -> None:
        if event.get("phase") == "plan":
            d.state.put_item("CONNECTION", {**connection, "provider": "oneroster-rest"})

    # When the admin connects it to OneRoster after Start recorded the run for Clever, before Fetch's plan
    with on_each_fetch_invocation(stack, d.id, connect_to_oneroster_as_the_plan_starts):
        run = d.sync(export=False)

    # Then the run stopped before reading, saying why, and nothing was written or archived
    assert run.status == "failed"
    assert "connected to oneroster-rest after this run started for clever" in run.report["failure_reason"]
    assert run.directory == first.directory


def test_a_last_slice_whose_answer_was_lost_is_asked_again_and_its_invocation_is_in_the_cost(
    district: Any, synthetic: Any, stack: Any
) -> None:
    # Given a page per slice, and the schools list's only slice dying after it read the list to its end
    # (its answer lost: the Retry asks for a slice of a list whose checkpoint already says done)
    d = district(synthetic, page_limit=20)
    sliced(d, 1)
    crash = stack.inject_crash(
        "FetchRosterFunction",
        after_writes=None,
        times=1,
        error_type="Sandbox.Timedout",
        when=lambda event: event.get("phase") == "slice" and event.get("resource") == "schools",
        district=d.id,
    )
    try:
        run = d.sync(export=False)
    finally:
        stack.clear_crashes()

    # Then the run succeeded, the retried invocation kept a meter of its own (``schools-done``)
    assert crash.fired == 1 and run.status == "succeeded", run.execution.get("cause")
    assert checkpoint(run, "schools")["slice"] == 1
    s3 = aws.client("s3")
    prefix = f"runs/{run.district_id}/{run.run_id}/meter/fetch_roster-"
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=run.bucket, Prefix=prefix).get("Contents", [])]
    assert prefix + "schools-done.json" in listed
    # and the report's cost counts every Fetch invocation that kept one, that one included
    assert run.report["cost"]["steps"]["fetch_roster"]["invocations"] == len(listed)


def test_a_slice_that_died_before_its_checkpoint_is_read_again_into_the_same_keys(
    district: Any, synthetic: Any, clean_run: Any
) -> None:
    # Given a page per slice, and the second users slice dying after its chunk was written but before
    # its checkpoint was (as a Lambda out of time: Sandbox.Timedout, which the slice's Retry matches)
    d = district(synthetic, page_limit=20)
    sliced(d, 1)

    with users_slice_dying_before_its_checkpoint(d.id, "fetch/users-student/s00001", "users-student") as died:
        run = d.sync(export=False)

    # Then the retry read the same page into the same key, the checkpoint names it once, and the run is
    # the clean run's with no record twice
    assert len(died) == 1 and len(died[0]) == 1
    users = checkpoint(run, "users-student")
    assert users["slices"][1] == died[0]
    assert users["pages"] == users["slice"]
    same_run(clean_run, run)
    assert people_twice(run) == []


@pytest.mark.parametrize(
    ("path", "page", "named"),
    [("/v3.0/sections", 3, "page 3 of /v3.0/sections"), ("/v3.0/users", 2, "page 2 of /v3.0/users?role=")],
    ids=["sections", "a role's users"],
)
def test_an_unreadable_page_in_one_branch_leaves_the_fetch_incomplete_and_nothing_archived(
    district: Any, synthetic: Any, tmp_path: Path, path: str, page: int, named: str
) -> None:
    # Given a district synced once, then a night two students leave, read a page per slice, and a page of
    # one list cut off mid-way (a file cut short): of sections, or of the first role's users list to ask
    # for that page (the users are read by role, a list each)
    d = district(synthetic, page_limit=20)
    first = d.sync()
    assert first.status == "succeeded"
    d.read_in_full()
    sliced(d, 1)
    night = synthetic.copy(tmp_path / "night-2")
    night.remove_students({u["id"] for u in night.users("student")[:2]})
    d.serve(night)
    d.simulator.inject_malformed(path, page=page)

    run = d.sync()

    # Then every list was read to its end, the cut page is one report line naming its list, the fetch is
    # incomplete, and nobody was archived
    assert fetch_result(run)["complete"] is False
    lists = [checkpoint(run, name) for name in plan_of(run)["lists"]]
    assert all(listed["done"] for listed in lists) and sum(len(listed["problems"]) for listed in lists) == 1
    assert len([e for e in run.report["errors"] if named in e["reason"]]) == 1
    assert all(counts["archived"] == 0 for counts in run.report["counts"].values())
    statuses = [r["status"] for records in run.directory.values() if isinstance(records, list) for r in records]
    assert "archived" not in statuses
    assert run.directory == first.directory


def test_parallel_branches_keep_together_to_the_districts_rate_limit(district: Any, synthetic: Any) -> None:
    # Given a simulator whose clock runs 30 times fast (a minute of Clever's is 2 s here) and that answers
    # 429 past 48 requests in one of its minutes; the connection says 1,200 a minute, which the 9 lists
    # share (each 132 a minute, 60/132 s apart: at most 5 each in 2 s, 45 together); pages of 5, 10 pages
    # a slice
    d = district(synthetic, page_limit=5)
    d.simulator.stop()
    start = time.time()
    d.simulator = ProviderSimulator(
        synthetic.path,
        token=d.simulator.token,
        rate_limit_per_minute=48,
        clock=lambda: start + (time.time() - start) * 30,
    ).start()
    d.connect(d.simulator.token, page_limit=5)
    sliced(d, 10, requests_per_minute=1_200)

    run = d.sync(export=False)

    # Then the run went through without a 429, and no minute of the simulator's saw more than the limit,
    # although the lists were read side by side
    assert run.status == "succeeded", run.execution.get("cause")
    timed = d.simulator.requests_timed
    assert [status for _, _, status in timed if status == 429] == []
    per_minute = Counter(int(at // 60) for at, _, _ in timed)
    assert max(per_minute.values()) <= 48
    paths_per_minute: dict[int, set[str]] = {}
    for at, path, _ in timed:
        paths_per_minute.setdefault(int(at // 60), set()).add(path)
    assert max(len(paths) for paths in paths_per_minute.values()) >= 3  # branches overlapped
    assert len(timed) > 48  # more than one minute's worth: the pacing, not the size, kept it under


def test_a_clever_connection_that_names_no_rate_shares_clevers_1_200_a_minute(district: Any, synthetic: Any) -> None:
    # Given a Clever connection stored without a rate, as `rostersync connect` stores one without
    # --requests-per-minute (the tests' districts name their simulator's, so that they are not paced)
    d = district(synthetic, page_limit=50)
    connection = d.state.get_item("CONNECTION")
    assert connection.pop("requests_per_minute") == d.simulator.requests_per_minute
    d.state.put_item("CONNECTION", connection)

    run = d.sync(export=False)

    # Then the fetch plan gave each of the 9 lists (4, and 5 of users by role) its share of Clever's 1,200
    # a minute: 132 requests, 60/132 s apart (the pacing itself is the rate limit test's, above)
    assert run.status == "succeeded", run.execution.get("cause")
    plan = s3_json(run.bucket, f"runs/{run.district_id}/{run.run_id}/fetch/plan.json")
    assert len(plan["lists"]) == 9 and plan["interval"] == pytest.approx(60 / 132)
    assert checkpoint(run, "users-student")["pages"] >= 2


def test_what_the_slices_mapped_is_in_the_snapshot_once_after_retries(
    district: Any, synthetic: Any, stack: Any
) -> None:
    # Given a roster with a user without an id and a copy of a student at its end (pages apart from the
    # first), read a page per slice: the users slices map what they read. The second users slice dies
    # after writing its mapped chunks but before its checkpoint, and two later ones lose their answers
    # after it (Sandbox.Timedout, which the slice's Retry matches)
    students = synthetic.users("student")
    no_id, duplicate = dict(students[1]), dict(students[2])
    del no_id["id"]
    duplicate["name"] = {"first": "Second", "last": "Copy"}
    synthetic.append_users({"data": no_id}, {"data": duplicate})
    clean = district(synthetic, page_limit=20)
    d = district(synthetic, page_limit=20)
    sliced(d, 1)
    with (
        users_slice_dying_before_its_checkpoint(d.id, "fetch/users-student/mapped/s00001", "users-student") as died,
        users_slices_losing_their_answer(stack, d.id, times=2) as crash,
    ):
        run = d.sync(export=False)

    # Then the run is the clean run's (one slice per list): every record and every error line once,
    # the same counts in the fetch's result
    assert died and crash.fired == 2
    first = clean.sync(export=False)
    same_run(first, run, status="succeeded_with_errors")
    assert run.report["errors"] == first.report["errors"]
    assert fetch_result(run)["error_count"] == fetch_result(first)["error_count"]
    errors = snapshot_ids(run)["errors"]
    assert errors.count("user record has no id") == 1
    duplicates = [e for e in run.report["errors"] if e["reason"].startswith("duplicate id")]
    assert [e["provider_id"] for e in duplicates] == [students[2]["id"]]
    assert errors.count(students[2]["id"]) == 1
    # And the snapshot's people are the chunks the users slices mapped, each named once, the slice that
    # died with the keys its retry wrote again
    by_role = {role: checkpoint(run, f"users-{role}") for role in USER_ROLES}
    users = by_role["student"]
    entries = [entry for listed in by_role.values() for entry in listed["mapped"]]
    assert len(users["mapped"]) == users["slice"]
    manifest = s3_json(run.bucket, f"runs/{run.district_id}/{run.run_id}/snapshot/manifest.json")
    slice_keys = [key for entry in entries for chunks in entry.values() for key in chunks["keys"]]
    assert len(slice_keys) == len(set(slice_keys))
    assert set(manifest["people"]) <= set(slice_keys) and manifest["people"]
    assert all("/fetch/users-" in key and "/mapped/" in key for key in manifest["people"] + manifest["guardians"])
    assert [k for k in died[0] if k.endswith(".ndjson.gz")] == sorted(
        key for chunks in users["mapped"][1].values() for key in chunks["keys"]
    )
    assert (
        sum(chunks["count"] for entry in entries for c, chunks in entry.items() if c == "people")
        == (fetch_result(run)["records"]["people"])
    )


# -- an events night, read by the slices from the last run's mirror ------------------------------------


@dataclass
class EventsNights:
    """The demo district cut to two sections a school, synced night after night by two districts: ``sliced``
    reads a page per slice (its first full read writes a mirror chunk a page, so its events nights read a
    chunk per slice), ``whole`` one slice per list (its mirror one chunk a list), ``parted`` a page per slice
    with its events nights reading the users list in parts of 4 mirror chunks. Each list of runs: night
    1, night 1 again (no events), night 2, night 3 (``later_nights``)."""

    sliced: list[Any]
    whole: list[Any]
    parted: list[Any]
    died: list[list[str]]


def later_nights(first: Any, folder: Path) -> tuple[Any, Any]:
    """Two nights after ``first`` (a ``Dataset``): two students leave and one is renamed, then one arrives."""
    two = first.copy(folder / "night-2")
    students = two.users("student")
    two.remove_students({students[0]["id"], students[1]["id"]})
    two.edit_users(lambda user: user["name"].update(last="Renamed"), {students[5]["id"]})
    three = two.copy(folder / "night-3")
    three.add_student_like(students[6]["id"], "6a0000000000000000000001")
    return two, three


@pytest.fixture(scope="module")
def events_nights(new_district: Any, demo_cut: Any, demo_product: Any, tmp_path_factory: Any) -> Any:
    one = demo_cut("snapshot-1", sections_per_school=2)
    two, three = later_nights(one, tmp_path_factory.mktemp("events-nights"))
    many = new_district(one, page_limit=20, product=demo_product())
    whole = new_district(one, page_limit=20, product=demo_product())
    parted = new_district(one, page_limit=20, product=demo_product())
    try:
        sliced(many, 1)
        sliced(parted, 1, mirror_chunks_per_part=4)
        runs: dict[str, list[Any]] = {"sliced": [], "whole": [], "parted": []}
        died: list[list[str]] = []
        for night in (one, one, two, three):
            for name, d in (("sliced", many), ("whole", whole), ("parted", parted)):
                d.serve(night)
                if name == "sliced" and night is two:
                    # night 2's second users slice dies after its work, before its checkpoint
                    with users_slice_dying_before_its_checkpoint(d.id, "fetch/users/mapped/s00001") as died:
                        runs[name].append(d.sync(export=False))
                else:
                    runs[name].append(d.sync(export=False))
        return EventsNights(runs["sliced"], runs["whole"], runs["parted"], died)
    finally:
        many.close()
        whole.close()
        parted.close()


def plan_of(run: Any) -> dict[str, Any]:
    return s3_json(run.bucket, f"runs/{run.district_id}/{run.run_id}/fetch/plan.json")


def mirror_of(run: Any) -> dict[str, Any]:
    return s3_json(run.bucket, f"runs/{run.district_id}/{run.run_id}/mirror/manifest.json")


def test_an_events_night_read_a_mirror_chunk_per_slice_syncs_as_in_one_slice(events_nights: EventsNights) -> None:
    # Given the nights after the first (Clever events), read a mirror chunk per slice and in one slice a list
    for night in (1, 2, 3):
        many, one = events_nights.sliced[night], events_nights.whole[night]
        assert many.report["sync"]["kind"] == one.report["sync"]["kind"] == "events"
        # Then every list was the last mirror's chunks, one chunk per slice (Clever's lists were not asked for)
        plan = plan_of(many)
        assert set(plan["lists"]) == {"courses", "terms", "schools", "sections", "users"}
        assert all(spec["mirror"]["run"] for spec in plan["lists"].values())
        users = checkpoint(many, "users")
        chunks = len(plan["lists"]["users"]["mirror"]["keys"])
        assert chunks > 5 and (users["pages"], users["slice"], users["done"]) == (chunks, chunks, True)
        assert checkpoint(one, "users")["slice"] == 1
        # and the snapshot (the records the events touched included), counts, findings and errors are the same
        same_run(one, many)
        assert many.report["errors"] == one.report["errors"]
        assert many.report["sync"] == one.report["sync"]


def test_an_events_night_names_its_changes_and_keeps_the_mirror_its_slices_read(events_nights: EventsNights) -> None:
    first, again, two, three = events_nights.sliced
    # Given night 1 again (no events): the slices wrote nothing of the lists they map, and the next night
    # reads night 1's mirror still
    assert again.report["sync"] == {"kind": "events", "reason": "", "changes": 0}
    assert all(keys == [] for keys in checkpoint(again, "users")["slices"])
    assert plan_of(two)["lists"]["users"]["mirror"]["run"] == first.run_id
    # Given night 2 (events, its second users slice dying before its checkpoint): the retry wrote the same
    # keys, the slices' chunks are named once, and the mirror of night 2 is what its slices read
    assert len(events_nights.died) == 1
    assert two.report["sync"]["kind"] == "events" and two.report["sync"]["changes"] > 0
    assert snapshot_ids(two)["touched"]
    users = checkpoint(two, "users")
    read = [key for keys in users["slices"] for key in keys]
    assert len(read) == len(set(read)) and mirror_of(two)["collections"]["users"] == read
    assert people_twice(two) == []
    # and night 3 read night 2's mirror
    assert plan_of(three)["lists"]["users"]["mirror"]["run"] == two.run_id


def test_an_events_night_read_in_parts_side_by_side_syncs_as_in_one_slice(events_nights: EventsNights) -> None:
    # Given the nights after the first, the users list read in parts of 4 of its 14 mirror chunks (each part a
    # Map item of its own), against one slice a list
    first = events_nights.parted[0]
    assert mirror_of(first)["clean"]["users"] is True  # every user had an id of its own
    for night in (1, 2, 3):
        parted, one = events_nights.parted[night], events_nights.whole[night]
        plan = plan_of(parted)
        assert plan["parts"] == {"users": ["users", "users-2", "users-3", "users-4"]}
        assert [len(plan["lists"][p]["mirror"]["keys"]) for p in plan["parts"]["users"]] == [4, 4, 4, 2]
        assert all(checkpoint(parted, p)["done"] for p in plan["parts"]["users"])
        # Then the snapshot (the user night 3 created, mapped after the parts, included), counts, findings,
        # errors and the sync section are one slice's
        same_run(one, parted)
        assert parted.report["errors"] == one.report["errors"]
        assert parted.report["sync"] == one.report["sync"]
    # and the mirror each changed night leaves is the parts' chunks in order, then what the night created
    two, three = events_nights.parted[2], events_nights.parted[3]
    for run in (two, three):
        plan = plan_of(run)
        parts = [key for p in plan["parts"]["users"] for keys in checkpoint(run, p)["slices"] for key in keys]
        users = mirror_of(run)["collections"]["users"]
        assert users[: len(parts)] == parts and mirror_of(run)["clean"]["users"] is True
        created = users[len(parts) :]
        assert all("/fetch/users/created-" in key for key in created)
        assert len(created) == (1 if run is three else 0)
    assert plan_of(three)["lists"]["users"]["mirror"]["run"] == two.run_id


def test_a_users_list_with_an_id_twice_is_not_read_in_parts(district: Any, synthetic: Any) -> None:
    # Given a roster with a copy of a student at its end, read a page per slice, parts of one mirror chunk
    students = synthetic.users("student")
    duplicate = dict(students[2])
    duplicate["name"] = {"first": "Second", "last": "Copy"}
    synthetic.append_users({"data": duplicate})
    d = district(synthetic, page_limit=20)
    sliced(d, 1, mirror_chunks_per_part=1)
    first = d.sync(export=False)

    night = d.sync(export=False)

    # Then the mirror says its users are not clean, the events night reads them as one list, and reports
    # the copy again
    assert mirror_of(first)["clean"]["users"] is False and mirror_of(first)["clean"]["sections"] is True
    assert night.report["sync"]["kind"] == "events"
    assert plan_of(night)["parts"] == {} and "users-2" not in plan_of(night)["lists"]
    duplicates = [e for e in night.report["errors"] if e["reason"].startswith("duplicate id")]
    assert [e["provider_id"] for e in duplicates] == [students[2]["id"]]


def test_an_unreadable_chunk_of_the_last_mirror_leaves_the_events_night_incomplete_and_nothing_archived(
    district: Any, demo_cut: Any, demo_product: Any, tmp_path: Path
) -> None:
    # Given a district synced in full once, a page per slice, and a night two students leave, with one of the
    # mirror's users chunks gone before it is read
    one = demo_cut("snapshot-1", sections_per_school=2)
    d = district(one, page_limit=20, product=demo_product())
    sliced(d, 1)
    first = d.sync(export=False)
    cursor = d.state.get_item("CURSOR#clever")
    d.serve(later_nights(one, tmp_path)[0])
    aws.client("s3").delete_object(Bucket=first.bucket, Key=mirror_of(first)["collections"]["users"][3])

    run = d.sync(export=False)

    # Then the users list stopped at that chunk, the fetch is incomplete and says why, nobody was
    # archived, and the cursor stays where it was (the night's events are read again next run)
    assert run.report["sync"]["kind"] == "events"
    assert fetch_result(run)["complete"] is False
    users = checkpoint(run, "users")
    assert users["done"] and users["pages"] == 4
    assert [p for p in users["problems"] if p.startswith("chunk 4 of the last run's copy of the roster")]
    assert [e for e in run.report["errors"] if "could not be read" in e["reason"] and "/v3.0/users" in e["reason"]]
    assert all(counts["archived"] == 0 for counts in run.report["counts"].values())
    assert d.state.get_item("CURSOR#clever") == cursor


def planned_as_a_full_read(run: Any, why: str) -> dict[str, Any]:
    """Assert the run succeeded, read Clever's lists in full as its plan decided (no mirror, no events, the
    latest event kept for the cursor), and says ``why`` in its report; return the plan."""
    assert run.status == "succeeded", run.execution.get("cause")
    assert run.report["sync"]["kind"] == "full"
    assert why in run.report["sync"]["reason"]
    plan = plan_of(run)
    assert all("mirror" not in spec and spec["path"] for spec in plan["lists"].values())
    assert "events" not in plan["clever"] and plan["clever"]["latest"]
    return plan


def test_a_cursor_clever_no_longer_serves_is_planned_as_a_full_read(
    district: Any, demo_cut: Any, demo_product: Any, tmp_path: Path
) -> None:
    # Given a district with events before its first sync, synced once, then two nights of events of which
    # Clever keeps only the last three
    one = demo_cut("snapshot-1", sections_per_school=2)
    two, three = later_nights(one, tmp_path)
    d = district(three, page_limit=20, product=demo_product())
    d.serve(one)
    d.sync(export=False)
    d.serve(two)
    d.serve(three)
    d.simulator.events.keep_only_last(3)

    run = d.sync(export=False)

    # Then the plan found it out and read Clever's lists in full, and the report says why
    planned_as_a_full_read(run, "no longer serves the events")
    assert run.counts("students")["archived"] == 2 and run.counts("students")["created"] == 1


def test_a_night_with_more_events_than_the_bound_is_planned_as_a_full_read(
    district: Any, demo_cut: Any, demo_product: Any, tmp_path: Path
) -> None:
    # Given a district synced once, then a night two students leave and one is renamed, whose events come
    # three a page, with a bound of three events a night (a re-rostered district's night, in small)
    one = demo_cut("snapshot-1", sections_per_school=2)
    two, three = later_nights(one, tmp_path)
    d = district(one, page_limit=20, product=demo_product())
    d.sync(export=False)
    cursor = d.state.get_item("CURSOR#clever")
    sliced(d, 1_000, page_limit=3, night_max_events=3)
    d.serve(two)
    asked_before = len(d.simulator.requests_seen)

    run = d.sync(export=False)

    # Then the plan gave up on the events at their second page and read Clever's lists in full, the report
    # says why, and the night's changes are synced as the events would have synced them
    assert planned_as_a_full_read(run, "more than 3 Clever events")["clever"]["too_large"]
    assert run.counts("students")["archived"] == 2 and run.counts("students")["updated"] == 1
    # and the night's events were asked for twice, both by the plan (its first page, then the page past
    # the bound): the full read does not read them again to name what they touched
    pages = [
        q for path, q in d.simulator.requests_seen[asked_before:] if path == "/v3.0/events" and "ending_before" not in q
    ]
    assert len(pages) == 2, pages
    # and the cursor moved past the night on the mirror this read kept: the next night, within the
    # bound, is read from its events
    assert d.state.get_item("CURSOR#clever") != cursor
    sliced(d, 1_000, page_limit=20, night_max_events=1_000)
    d.serve(three)
    after = d.sync(export=False)
    assert after.report["sync"]["kind"] == "events"
    assert after.counts("students")["created"] == 1 and after.counts("students")["archived"] == 0


# -- a OneRoster CSV bundle: a file per Map item ------------------------------------------------------


def bundle_district(stack: Any, synthetic: Any, bundle: Path, night: str, **connection: Any) -> str:
    """A district connected to SFTP uploads (its schools matched by the dataset's ids) with ``bundle``
    uploaded under ``night`` (without starting a run), its connection with the given fields."""
    from rostersync.config import runtime_config
    from rostersync_tools.cli.inputs import bundle_bytes
    from rostersync_tools.local.synthetic import product_for

    district_id = f"d-{uuid.uuid4().hex[:8]}"
    _, state = set_up_district(product_for(synthetic.path, district_id, "SFTP district", "oneroster"), "oneroster-csv")
    state.put_item("CONNECTION", {**state.get_item("CONNECTION"), **connection})
    stack.router.enabled = False
    try:
        key = f"uploads/{district_id}/{night}/bundle.zip"
        aws.client("s3").put_object(Bucket=runtime_config().sync_bucket, Key=key, Body=bundle_bytes(bundle))
    finally:
        stack.router.enabled = True
    return district_id


def bundle_read_two_ways(stack: Any, run_sync: Any, synthetic: Any, tmp_path: Path) -> tuple[Path, Any, str]:
    """The synthetic district as one bundle uploaded by two districts: the run of the one that read each file
    in one slice, and the id of the other, connected to read in pages of 7 rows, a page per slice."""
    bundle = tmp_path / "bundle"
    clever_to_oneroster(synthetic.path, bundle)
    one_id = bundle_district(stack, synthetic, bundle, "night-1")
    many_id = bundle_district(stack, synthetic, bundle, "night-1", csv_page_rows=7, max_pages_per_slice=1)
    return bundle, run_sync(one_id, trigger="enabled", export=False), many_id


def test_a_bundle_is_read_a_file_per_map_item_and_in_slices_syncs_as_in_one(
    stack: Any, run_sync: Any, synthetic: Any, tmp_path: Path
) -> None:
    # Given one bundle uploaded by two districts: one reads each file in one slice, the other in pages of 7
    # rows, a page per slice, and its second users slice dies after writing its chunk, before its checkpoint
    bundle, one, many_id = bundle_read_two_ways(stack, run_sync, synthetic, tmp_path)
    with users_slice_dying_before_its_checkpoint(many_id, "fetch/users/s00001", "users") as died:
        many = run_sync(many_id, trigger="enabled", export=False)

    # Then each file the bundle holds was a list of the plan, read by its own Map item
    files = sorted(p.stem for p in bundle.glob("*.csv") if p.stem != "manifest")
    for run in (one, many):
        plan = plan_of(run)
        assert sorted(plan["lists"]) == files and all(plan["lists"][f] == {"file": f} for f in files)
        assert plan["csv"]["layout"]["modes"]["users"] == "bulk"
    # and the sliced district read users.csv in slices of 7 rows, the retried slice into the same key once
    rows = len((bundle / "users.csv").read_text(encoding="utf-8").splitlines()) - 1
    users = checkpoint(many, "users")
    assert users["records"] == rows and users["slice"] == -(-rows // 7) + (rows % 7 == 0)
    assert checkpoint(one, "users")["slice"] == 1 and checkpoint(one, "users")["records"] == rows
    assert len(died) == 1 and users["slices"][1] == died[0]
    # and both synced, planned and reported the same, nobody twice
    same_run(one, many)
    assert people_twice(many) == []


def test_a_bundle_that_fails_its_check_plans_no_file_and_is_refused_with_its_reasons(
    stack: Any, run_sync: Any, synthetic: Any, tmp_path: Path
) -> None:
    # Given a bundle whose users.csv lost its givenName column (a required one) in the export
    bundle = tmp_path / "bundle"
    clever_to_oneroster(synthetic.path, bundle)
    users = (bundle / "users.csv").read_text(encoding="utf-8").replace("givenName", "given_nam", 1)
    (bundle / "users.csv").write_text(users, encoding="utf-8")
    district_id = bundle_district(stack, synthetic, bundle, "night-1")

    run = run_sync(district_id, trigger="enabled", export=False)

    # Then the plan read no file, and the run was refused with the reason the bundle read whole gives
    assert plan_of(run)["lists"] == {} and "csv" not in plan_of(run)
    assert run.status == "failed"
    assert run.report["failure_reason"].startswith('users.csv: required column "givenName" is missing')
    assert "Nothing was archived" in run.report["failure_reason"]


def test_a_bundle_uploaded_again_while_a_run_reads_it_is_read_to_the_end_as_the_plan_read_it(
    stack: Any, run_sync: Any, synthetic: Any, tmp_path: Path
) -> None:
    from rostersync.config import runtime_config
    from rostersync_tools.cli.inputs import bundle_bytes

    # Given a bundle read in pages of 7 rows, a page per slice, by one district, and in one slice by another
    _, one, many_id = bundle_read_two_ways(stack, run_sync, synthetic, tmp_path)
    # and, under the same name, the district's next upload: a users.csv cut short after three rows
    cut = tmp_path / "cut"
    clever_to_oneroster(synthetic.path, cut)
    users = (cut / "users.csv").read_text(encoding="utf-8").splitlines(keepends=True)
    (cut / "users.csv").write_text("".join(users[:4]), encoding="utf-8")
    key, s3 = f"uploads/{many_id}/night-1/bundle.zip", aws.client("s3")
    bucket = runtime_config().sync_bucket
    first_version = s3.head_object(Bucket=bucket, Key=key)["VersionId"]
    users_slices: list[int] = []

    def upload_again_after_the_first_users_slice(event: Any) -> None:
        """Upload the cut bundle as the second users slice starts."""
        if event.get("phase") == "slice" and event.get("resource") == "users":
            users_slices.append(1)
            if len(users_slices) == 2:
                stack.router.enabled = False  # the upload would start a run of its own
                try:
                    s3.put_object(Bucket=bucket, Key=key, Body=bundle_bytes(cut))
                finally:
                    stack.router.enabled = True

    # When the district uploads again while its run is reading users.csv
    with on_each_fetch_invocation(stack, many_id, upload_again_after_the_first_users_slice):
        many = run_sync(many_id, trigger="enabled", export=False)

    # Then the new upload landed mid-file, and the run read the bundle its plan read to the end: the same as
    # the district that read it in one slice
    assert len(users_slices) > 2
    assert s3.head_object(Bucket=bucket, Key=key)["VersionId"] != first_version
    assert plan_of(many)["bundle_versions"] == {key: first_version}
    rows = len(users) - 1
    assert checkpoint(many, "users")["records"] == rows
    same_run(one, many)
