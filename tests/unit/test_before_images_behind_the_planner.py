"""Match's before-images (``steps.match.BeforeImages``) are read behind the planner: a batch of updated or
linked lines is read in a thread of its own while planning goes on, and every line still reaches the run's
lines with its before → after, from the planner's thread."""

from __future__ import annotations

import contextvars
import json
import threading

import pytest

from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind
from rostersync.matching.plan import PlanLine, PlannedWrite
from rostersync.steps.match import BeforeImages

INVOCATION = contextvars.ContextVar("invocation", default="none")
WAIT = 120  # seconds: only a failing test ever waits this out


class SlowDirectory:
    """Answers ``get_many`` only once ``answer`` is set; notes each read's thread and context."""

    threads = 2  # a batch is 100 x this many lines

    def __init__(self, records: dict[str, DirectoryRecord], fail: bool = False) -> None:
        self.records = records
        self.answer = threading.Event()
        self.asked = threading.Event()
        self.reads: list[tuple[str, str, int]] = []  # (thread name, the invocation read in, ids)
        self.fail = fail

    def get_many(self, kind: Kind, ids: list[str]) -> dict[str, DirectoryRecord]:
        self.reads.append((threading.current_thread().name, INVOCATION.get(), len(ids)))
        self.asked.set()
        assert self.answer.wait(WAIT), "the test never let the read answer"
        if self.fail:
            raise RuntimeError("DynamoDB is down")
        return {i: self.records[i] for i in ids if i in self.records}


def _student(n: int, given_name: str, linked: bool) -> DirectoryRecord:
    return DirectoryRecord(
        id=f"acct-{n}",
        kind=Kind.STUDENTS,
        status="active",
        managed_by_sync=linked,
        provider_ids={"clever": f"s-{n}"} if linked else {},
        fields={"given_name": given_name, "family_name": "Li", "grade": "3"},
    )


def _account(n: int) -> DirectoryRecord:
    """A product account, not linked yet."""
    return _student(n, f"Old{n}", linked=False)


def _link(images: BeforeImages, n: int) -> None:
    """Plan the account's link to roster student s-n, and its line."""
    record = _student(n, f"New{n}", linked=True)
    images.write(PlannedWrite("update", record))
    images.line(PlanLine(Kind.STUDENTS, "linked", record.id, f"s-{n}", f"New{n} Li"))


def test_planning_goes_on_while_a_batch_of_before_images_is_read_and_every_line_gets_its_changes():
    contextvars.copy_context().run(_planning_goes_on)  # as the invocation, named by INVOCATION


def _planning_goes_on() -> None:
    INVOCATION.set("invocation-1")
    directory = SlowDirectory({f"acct-{n}": _account(n) for n in range(450)})
    sunk: list[dict] = []
    images = BeforeImages(directory, {}, sunk.append)  # type: ignore[arg-type]
    for n in range(450):  # two full batches of 200, started; 50 lines waiting
        _link(images, n)
    assert directory.asked.wait(WAIT)
    # the planner was never held: both batches are still unanswered, and nothing was passed on yet
    assert sunk == [] and not directory.answer.is_set()
    images.line(PlanLine(Kind.STUDENTS, "created", "acct-new", "s-new", "Ada Li"))  # passes straight through
    assert [line["action"] for line in sunk] == ["created"]

    directory.answer.set()
    images.flush()

    linked = [line for line in sunk if line["action"] == "linked"]
    assert [line["id"] for line in linked] == [f"acct-{n}" for n in range(450)]  # each once, in order
    assert linked[7]["changes"] == [{"field": "given_name", "before": "Old7", "after": "New7"}]
    assert [ids for _, _, ids in directory.reads] == [200, 200, 50]
    assert {thread for thread, _, _ in directory.reads} != {threading.current_thread().name}
    assert {invocation for _, invocation, _ in directory.reads} == {"invocation-1"}  # read as the invocation


def test_the_planner_waits_for_the_oldest_batch_only_beyond_the_batches_it_lets_read_ahead():
    directory = SlowDirectory({f"acct-{n}": _account(n) for n in range(800)})
    sunk: list[dict] = []
    images = BeforeImages(directory, {}, sunk.append)  # type: ignore[arg-type]
    ahead = BeforeImages.AHEAD * 200
    done = threading.Event()

    def plan() -> None:
        for n in range(ahead + 200):  # one batch more than may read ahead
            _link(images, n)
        done.set()

    planner = threading.Thread(target=plan)
    planner.start()
    assert directory.asked.wait(WAIT)
    assert not done.wait(0.2)  # held: the oldest batch has not answered (it cannot end before the answer)
    directory.answer.set()
    planner.join(WAIT)
    assert done.is_set()
    assert len(sunk) >= 200  # the oldest batch was passed on to make room
    images.flush()
    assert len(sunk) == ahead + 200


def test_a_failed_before_image_read_fails_the_step():
    directory = SlowDirectory({f"acct-{n}": _account(n) for n in range(10)}, fail=True)
    images = BeforeImages(directory, {}, [].append)  # type: ignore[arg-type]
    for n in range(10):
        _link(images, n)
    directory.answer.set()

    with pytest.raises(RuntimeError, match="DynamoDB is down"):
        images.flush()


class NoReads:
    """A directory the people phase must not read: its lines' before-images are the partitions' to read."""

    threads = 2

    def get_many(self, kind: Kind, ids: list[str]) -> dict[str, DirectoryRecord]:
        raise AssertionError(f"read {len(ids)} before-images in the people phase")


def test_deferred_lines_are_not_read_and_described_elsewhere_reach_the_lines_as_read_in_place():
    # Given the same plan given to BeforeImages that reads in place, and to one that defers (the people phase)
    def plan(images: BeforeImages) -> None:
        for n in range(250):
            _link(images, n)
        images.write(PlannedWrite("create", _student(900, "Ada", linked=True)))
        images.line(PlanLine(Kind.STUDENTS, "created", "acct-900", "s-900", "Ada Li"))
        images.line(PlanLine(Kind.STUDENTS, "unchanged", "acct-901", "s-901", "Bo Li"))

    directory = SlowDirectory({f"acct-{n}": _account(n) for n in range(250)})
    directory.answer.set()
    in_place: list[dict] = []
    reader = BeforeImages(directory, {}, in_place.append)  # type: ignore[arg-type]
    plan(reader)
    reader.flush()
    people: list[dict] = []
    deferred: list[dict] = []
    phase = BeforeImages(NoReads(), {}, people.append, defer=deferred.append)  # type: ignore[arg-type]
    plan(phase)
    phase.flush()

    # Then the people phase read nothing: its lines that need a before-image went to the deferred files
    assert [line["action"] for line in people] == ["created", "unchanged"]
    assert [d["line"]["id"] for d in deferred] == [f"acct-{n}" for n in range(250)]
    assert deferred[3]["after"] == {"given_name": "New3", "family_name": "Li", "grade": "3"}
    assert "changes" not in deferred[3]["line"]
    # When a partition describes them, through the JSON the files hold
    described: list[dict] = []
    partition = BeforeImages(directory, {}, described.append)  # type: ignore[arg-type]
    for data in json.loads(json.dumps(deferred)):
        partition.describe(data["line"], data["after"])
    partition.flush()

    # Then they are the lines the in-place reader gave, changes and all
    assert described == [line for line in in_place if line["action"] == "linked"]
    assert described[3]["changes"] == [{"field": "given_name", "before": "Old3", "after": "New3"}]
