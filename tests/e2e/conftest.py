"""End-to-end tier: the real ``statemachine/sync.asl.json`` on the embedded stack, against the Clever simulator.

One embedded stack serves the whole session (starting it takes seconds); tests never reset it. They
isolate by district instead: every test connects a fresh district id to a simulator of its own (a thread,
with its own token and dataset), so runs of different tests never see each other's records.

Fixtures and helpers:

- ``stack``: the session's ``EmbeddedStack``; provider backoff and the state machines' Retry waits are
  switched off (each wait asked for is still recorded in ``RETRY_WAITS``).
- ``run_sync(district_id, trigger=..., dry_run=...)``: start a run, wait for it, return a ``RunOutcome``
  (execution description, run record, parsed ``report.json``, CSV rows, the directory export, and the
  directory write requests the embedded DynamoDB received during the run).
- ``district(dataset, ...)``: a fresh district with the product's schools imported and a simulator
  connected; ``District.sync()`` runs it.
- ``synthetic``: a private copy of a 60-student synthetic Clever district (``Dataset``), with helpers to
  derive the next night's snapshot (remove or add students, edit users and sections).
- ``demo_dataset(snapshot)``, ``demo_product()``, ``make_product(dataset, **changes)``: the recorded demo
  district and product directories, each under a fresh district id.
- ``demo_cut(snapshot, sections_per_school=3, sections=(), users=())``: a night of the demo district cut to
  a few sections per school (every school kept, Clever's record shapes untouched), for tests whose point
  does not need its 2,098 users; a sync of it takes seconds, the whole district's a minute or more.
- ``directory_writes``: a context manager counting write requests to the directory table, at the server.
"""

from __future__ import annotations

import copy
import csv
import io
import json
import logging
import os
import shutil
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.product import ProductDirectory, export_directory
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync_tools.local.simulator import ProviderSimulator
from rostersync_tools.local.stack import EmbeddedStack, WriteRequestCounter
from rostersync_tools.local.synthetic import (
    connect_clever_simulator,
    product_for,
    set_up_district,
    write_synthetic_clever_district,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
DEMO = REPO_ROOT / "samples" / "clever-demo"
RUN_TIMEOUT_SECONDS = 600  # a bound, not a guess: generous on a loaded machine

# The collector runs less often while the session's stack holds its districts in this process: see
# ``STACK_GC_THRESHOLD`` in rostersync_tools/local/stack.py.


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """A pytest-xdist worker ends without freeing its heap object by object: the OS takes it back whole.

    The worker sent its results when its session finished (xdist's ``workerfinished``, after the stack's
    teardown), so nothing it does from here reaches the report. What was left was the interpreter freeing
    the embedded AWS of every district the worker synced, one object at a time, while the main process
    waited: 4.4 s of each end-to-end run (measured on 2 cores, 5.8 s from the workers' last hook to the
    main process's against 1.4 s).
    """
    if os.environ.get("PYTEST_XDIST_WORKER") is None:
        return
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


# -- the stack ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def logger_levels() -> dict[str, int]:
    """Every logger's level before the first run, werkzeug's and moto's chatter silenced."""
    for name in ("werkzeug", "moto"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    loggers = logging.Logger.manager.loggerDict.items()
    return {name: each.level for name, each in loggers if isinstance(each, logging.Logger)}


@pytest.fixture(autouse=True)
def _logger_levels_left_as_found(logger_levels: dict[str, int]) -> Iterator[None]:
    """Put logger levels back after each test.

    The first Lambda run imports ``rostersync.observability``, whose Powertools logger is named after the
    service, ``rostersync``: the parent of every ``rostersync.*`` logger, set to the stack's LOG_LEVEL
    (WARNING). Left so, it would hide INFO records from the tests of other tiers that run later in the
    same session (their ``caplog`` sets only the root level).
    """
    yield
    for name, each in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(each, logging.Logger) and each.level != logger_levels.get(name, logging.NOTSET):
            each.setLevel(logger_levels.get(name, logging.NOTSET))


@pytest.fixture(scope="session")
def stack(logger_levels: dict[str, int]) -> Iterator[EmbeddedStack]:
    """The embedded stack, once per session. Provider retries never sleep (base delay 0), and the state
    machines' Retry waits are skipped (``retry_wait_scale=0``): a retried state is retried at once."""
    previous = os.environ.get("PROVIDER_RETRY_BASE_SECONDS")
    os.environ["PROVIDER_RETRY_BASE_SECONDS"] = "0"
    runtime_config.cache_clear()
    embedded = EmbeddedStack(parameters={"LogLevel": "WARNING"}, retry_wait_scale=0).start()
    # The stack exported the tables' names into the environment: read the configuration again.
    runtime_config.cache_clear()
    assert runtime_config().provider_retry_base_seconds == 0
    try:
        yield embedded
    finally:
        embedded.stop()
        if previous is None:
            os.environ.pop("PROVIDER_RETRY_BASE_SECONDS", None)
        else:
            os.environ["PROVIDER_RETRY_BASE_SECONDS"] = previous
        runtime_config.cache_clear()


@pytest.fixture(autouse=True)
def _stack_intact(request: pytest.FixtureRequest) -> None:
    """Fail at once, and say why, when moto lost the session's stack since the last test.

    The integration tier's ``mock_aws`` resets every moto backend of its process. ``make test`` runs the
    end-to-end tier in a pytest process of its own, so it never meets one; a run mixing the tiers in one
    process would otherwise fail far away, with refused credentials and missing tables.
    """
    if "stack" not in request.fixturenames:
        return
    stack: EmbeddedStack = request.getfixturevalue("stack")
    if not stack.intact():
        pytest.fail(
            "the embedded stack's tables are gone: a moto mock_aws test ran in this pytest process after the "
            "stack started and reset it. Run tests/e2e in a pytest process of its own (make test does)",
            pytrace=False,
        )


@pytest.fixture(autouse=True)
def _cli_polls_briskly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``rostersync`` commands a test runs in-process poll the stack every 0.1 s, not every second.

    They wait for an execution by asking the stack's Step Functions for it between sleeps (they cannot be
    woken as ``stack.wait`` is: on AWS they run elsewhere); a second's sleep added half a second to every
    wait on average. The bounds (``WAIT_SECONDS``, ``--wait-timeout``) are unchanged.
    """
    from rostersync_tools.cli import lifecycle_commands, run_commands

    monkeypatch.setattr(run_commands, "POLL_SECONDS", 0.1)
    monkeypatch.setattr(lifecycle_commands, "POLL_SECONDS", 0.1)


@pytest.fixture(scope="session")
def directory_table(stack: EmbeddedStack) -> str:
    return stack.outputs["DirectoryTableName"]


@pytest.fixture
def directory_writes(stack: EmbeddedStack, directory_table: str) -> Callable[[], Any]:
    """``with directory_writes() as count: ...; count()`` — directory write requests seen by the server."""

    @contextmanager
    def counting() -> Iterator[Callable[[], int]]:
        with WriteRequestCounter() as counter:
            yield lambda: counter.requests[directory_table]

    return counting


# -- runs --------------------------------------------------------------------------------------------


@dataclass
class RunOutcome:
    """Everything a test looks at after one run."""

    district_id: str
    execution: dict[str, Any]
    run: dict[str, Any] | None
    report: dict[str, Any] | None
    directory: dict[str, Any]
    directory_writes: int
    bucket: str
    _csv: dict[str, list[dict[str, str]]] = field(default_factory=dict, repr=False)

    @property
    def run_id(self) -> str:
        return self.execution["executionArn"].rsplit(":", 1)[1]

    @property
    def execution_status(self) -> str:
        return str(self.execution["status"])

    @property
    def status(self) -> str | None:
        """The run's final status as recorded (``succeeded``, ``failed``, ...); None without a run record."""
        return None if self.run is None else self.run.get("status")

    @property
    def input(self) -> dict[str, Any]:
        return json.loads(self.execution["input"])

    def counts(self, kind: str) -> dict[str, int]:
        assert self.report is not None, f"run {self.run_id} wrote no report"
        return self.report["counts"][kind]

    def changed(self, kind: str) -> dict[str, int]:
        """The non-zero counts of a kind, e.g. ``{"created": 10, "unchanged": 50}``."""
        return {action: n for action, n in self.counts(kind).items() if n}

    def csv_rows(self, name: str) -> list[dict[str, str]]:
        """The rows of one of the report's CSV files (``students.csv``, ``errors.csv``...); [] if absent."""
        assert self.report is not None, f"run {self.run_id} wrote no report"
        if name not in self._csv:
            key = self.report["files"].get(name)
            if key is None:
                self._csv[name] = []
            else:
                body = aws.client("s3").get_object(Bucket=self.bucket, Key=key)["Body"].read().decode("utf-8-sig")
                self._csv[name] = list(csv.DictReader(io.StringIO(body)))
        return self._csv[name]

    def records(self, collection: str) -> list[dict[str, Any]]:
        return self.directory[collection]

    def by_clever_id(self, collection: str) -> dict[str, dict[str, Any]]:
        return {r["provider_ids"]["clever"]: r for r in self.directory[collection] if "clever" in r["provider_ids"]}


def _read_json(bucket: str, key: str) -> Any:
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


class SyncRunner:
    """``run_sync(district_id, trigger="manual", dry_run=False)``: run a sync to its end and collect it."""

    def __init__(self, stack: EmbeddedStack) -> None:
        self.stack = stack

    def __call__(
        self, district_id: str, trigger: str = "manual", dry_run: bool = False, export: bool = True
    ) -> RunOutcome:
        with WriteRequestCounter() as counter:
            arn = self.stack.start_sync(district_id, trigger=trigger, dry_run=dry_run)
            execution = self.stack.wait(arn, timeout=RUN_TIMEOUT_SECONDS)
        return self.collect(district_id, execution, counter.requests[runtime_config().directory_table], export)

    def collect(
        self, district_id: str, execution: dict[str, Any], directory_writes: int = 0, export: bool = True
    ) -> RunOutcome:
        """Gather the outcome of an execution that has ended (however it was started); ``export=False`` skips
        reading the directory back: a test that never reads ``directory`` (or ``records``, ``by_clever_id``)
        should pass it: the export reads every shard of every collection (16 x 9 queries), about 2 s on the
        stack even for the 60-student synthetic district (a third of such a run's time in a test)."""
        config = runtime_config()
        dynamodb = aws.client("dynamodb")
        state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
        directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
        record = state.get_run(execution["executionArn"].rsplit(":", 1)[1])
        report = _read_json(config.sync_bucket, record["report_key"]) if record and record.get("report_key") else None
        return RunOutcome(
            district_id=district_id,
            execution=execution,
            run=record,
            report=report,
            directory=export_directory(directory, state) if export else {},
            directory_writes=directory_writes,
            bucket=config.sync_bucket,
        )


@pytest.fixture(scope="session")
def run_sync(stack: EmbeddedStack) -> SyncRunner:
    return SyncRunner(stack)


# -- districts ---------------------------------------------------------------------------------------


def new_district_id() -> str:
    return f"d-{uuid.uuid4().hex[:8]}"


@dataclass
class SftpDistrict:
    """A district of the product connected to SFTP uploads (OneRoster CSV), its schools matched by the
    dataset's school ids, not enabled; ``bundle`` is the dataset converted to a OneRoster bundle."""

    id: str
    bundle: Path
    directory: DirectoryRepository
    state: SyncStateRepository
    bucket: str


@pytest.fixture
def sftp_district(stack: EmbeddedStack, synthetic: Dataset, tmp_path: Path) -> SftpDistrict:
    from rostersync_tools.local.convert import clever_to_oneroster

    district_id = new_district_id()
    bundle = tmp_path / "bundle"
    clever_to_oneroster(synthetic.path, bundle)
    product = product_for(synthetic.path, district_id, "SFTP district", provider="oneroster")
    directory, state = set_up_district(product, "oneroster-csv")
    return SftpDistrict(district_id, bundle, directory, state, runtime_config().sync_bucket)


class District:
    """A district of the product, connected to a Clever simulator of its own (``close()`` stops it) at the
    rate the simulator allows (``ProviderSimulator.requests_per_minute``): one without a limit is not paced."""

    def __init__(self, run_sync: SyncRunner, dataset: Path, product: ProductDirectory, page_limit: int) -> None:
        self.id = product.district.id
        self.simulator = ProviderSimulator(dataset, token=f"token-{uuid.uuid4().hex[:12]}").start()
        self._run_sync = run_sync
        self.directory, self.state = set_up_district(
            product,
            "clever",
            self.simulator.base_url,
            self.simulator.token,
            page_limit,
            stack=run_sync.stack.stack_name,
            requests_per_minute=self.simulator.requests_per_minute,
        )

    def connect(self, token: str, page_limit: int = 10_000) -> None:
        """Store (or replace) the district's Clever connection, as installing the app does."""
        connect_clever_simulator(self.state, self.simulator, token, page_limit, stack=self._run_sync.stack.stack_name)

    def read_in_full(self) -> None:
        """Ask for full reads every run (settings ``incremental.mode = full``): no Clever events."""
        from rostersync.settings import IncrementalSettings

        settings, version = self.state.current_settings()
        full = settings.model_copy(update={"incremental": IncrementalSettings(mode="full")})
        self.state.put_settings(full, version, "e2e")

    def serve(self, dataset: Dataset | Path) -> None:
        """Let the simulator serve another night's snapshot."""
        self.simulator.set_dataset(dataset.path if isinstance(dataset, Dataset) else dataset)

    def sync(self, trigger: str = "manual", dry_run: bool = False, export: bool = True) -> RunOutcome:
        return self._run_sync(self.id, trigger=trigger, dry_run=dry_run, export=export)

    def export(self) -> dict[str, Any]:
        return export_directory(self.directory, self.state)

    def close(self) -> None:
        self.simulator.stop()


@pytest.fixture(scope="session")
def new_district(run_sync: SyncRunner) -> Callable[..., District]:
    """``new_district(dataset, page_limit=10_000, product=None)``; the caller closes it."""

    def make(dataset: Dataset | Path, page_limit: int = 10_000, product: ProductDirectory | None = None) -> District:
        path = dataset.path if isinstance(dataset, Dataset) else dataset
        product = product or product_for(path, new_district_id())
        return District(run_sync, path, product, page_limit)

    return make


@pytest.fixture(scope="session")
def first_sync_on() -> Callable[[EmbeddedStack, Path], RunOutcome]:
    """``first_sync_on(stack, dataset)``: a fresh district's first sync on ``stack`` (not necessarily the
    session's), its simulator closed after."""

    def run(stack: EmbeddedStack, dataset: Path) -> RunOutcome:
        made = District(SyncRunner(stack), dataset, product_for(dataset, new_district_id()), 10_000)
        try:
            return made.sync()
        finally:
            made.close()

    return run


@pytest.fixture
def district(new_district: Callable[..., District]) -> Iterator[Callable[..., District]]:
    """``district(dataset, page_limit=10_000, product=None)``: a fresh district, closed after the test."""
    made: list[District] = []

    def make(*args: Any, **kwargs: Any) -> District:
        made.append(new_district(*args, **kwargs))
        return made[-1]

    yield make
    for each in made:
        each.close()


# -- datasets ----------------------------------------------------------------------------------------


class Dataset:
    """A Clever dataset folder (the simulator's input) with the edits tests need to derive the next night."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # reading ------------------------------------------------------------------------------------------

    def _items(self, name: str) -> list[dict[str, Any]]:
        return json.loads((self.path / f"{name}.json").read_text(encoding="utf-8"))["data"]

    def _save(self, name: str, items: list[dict[str, Any]]) -> None:
        body = json.loads((self.path / f"{name}.json").read_text(encoding="utf-8"))
        body["data"] = items
        (self.path / f"{name}.json").write_text(json.dumps(body), encoding="utf-8")

    def users(self, role: str | None = None) -> list[dict[str, Any]]:
        """The users' ``data`` objects, optionally only those with ``role`` (student, teacher, contact...)."""
        return [u["data"] for u in self._items("users") if role is None or role in u["data"].get("roles", {})]

    def sections(self) -> list[dict[str, Any]]:
        return [s["data"] for s in self._items("sections")]

    def schools(self) -> list[dict[str, Any]]:
        return [s["data"] for s in self._items("schools")]

    def names(self, name: str) -> dict[str, str]:
        """Names by id of a small list (``courses``, ``terms``)."""
        return {item["data"]["id"]: item["data"]["name"] for item in self._items(name)}

    # deriving -----------------------------------------------------------------------------------------

    def copy(self, dest: Path) -> Dataset:
        shutil.copytree(self.path, dest)
        return Dataset(dest)

    def remove_students(self, student_ids: set[str]) -> None:
        """Students leave: gone from users and sections; their contacts lose the relationship, and a
        contact left with no student goes too (as Clever stops sharing them)."""
        users = []
        for item in self._items("users"):
            data = item["data"]
            if data.get("id") in student_ids:
                continue
            contact = data.get("roles", {}).get("contact")
            if contact is not None:
                relationships = [r for r in contact["student_relationships"] if r["student"] not in student_ids]
                if not relationships:
                    continue
                contact["student_relationships"] = relationships
            users.append(item)
        self._save("users", users)
        sections = self._items("sections")
        for item in sections:
            item["data"]["students"] = [s for s in item["data"]["students"] if s not in student_ids]
        self._save("sections", sections)

    def add_student_like(self, template_id: str, new_id: str, **changes: Any) -> dict[str, Any]:
        """A new student, a copy of ``template_id`` with a new id, in the same sections."""
        users = self._items("users")
        template = next(u for u in users if u["data"].get("id") == template_id)
        new = copy.deepcopy(template)
        new["data"]["id"] = new_id
        new["uri"] = f"/v3.0/users/{new_id}"
        new["data"].update(changes)
        users.append(new)
        self._save("users", users)
        sections = self._items("sections")
        for item in sections:
            if template_id in item["data"]["students"]:
                item["data"]["students"].append(new_id)
        self._save("sections", sections)
        return new["data"]

    def edit_users(self, edit: Callable[[dict[str, Any]], None], user_ids: set[str] | None = None) -> None:
        """Apply ``edit`` to the ``data`` of each user (or of ``user_ids``) in place."""
        users = self._items("users")
        for item in users:
            if user_ids is None or item["data"].get("id") in user_ids:
                edit(item["data"])
        self._save("users", users)

    def append_users(self, *items: dict[str, Any]) -> None:
        """Append raw list items (``{"data": {...}}``) to users.json, broken ones included."""
        self._save("users", [*self._items("users"), *items])

    def remove_school(self, school_id: str) -> dict[str, set[str]]:
        """A broken export: one school is missing with everything in it (its sections, the students and
        teachers of that school only, and the contacts of those students only). Returns the ids removed."""
        self._save("schools", [s for s in self._items("schools") if s["data"]["id"] != school_id])
        sections = self._items("sections")
        gone_sections = {s["data"]["id"] for s in sections if s["data"]["school"] == school_id}
        self._save("sections", [s for s in sections if s["data"]["id"] not in gone_sections])
        gone: dict[str, set[str]] = {"sections": gone_sections, "users": set()}
        users = self._items("users")
        for item in users:
            data = item["data"]
            roles = data.get("roles", {})
            schools = {s for role in ("student", "teacher", "staff") for s in roles.get(role, {}).get("schools", [])}
            school = roles.get("student", {}).get("school")
            if school:
                schools.add(school)
            if schools and schools <= {school_id}:
                gone["users"].add(data["id"])
        kept = []
        for item in users:
            data = item["data"]
            if data["id"] in gone["users"]:
                continue
            contact = data.get("roles", {}).get("contact")
            if contact is not None:
                relationships = [r for r in contact["student_relationships"] if r["student"] not in gone["users"]]
                if not relationships:
                    gone["users"].add(data["id"])
                    continue
                contact["student_relationships"] = relationships
            kept.append(item)
        self._save("users", kept)
        return gone

    def edit_sections(self, edit: Callable[[dict[str, Any]], None]) -> None:
        sections = self._items("sections")
        for item in sections:
            edit(item["data"])
        self._save("sections", sections)


@pytest.fixture(scope="session")
def synthetic_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60-student synthetic Clever district, generated once (deterministic: same seed, same files)."""
    path = tmp_path_factory.mktemp("synthetic") / "district"
    write_synthetic_clever_district(path, students=60)
    return path


@pytest.fixture
def synthetic(synthetic_template: Path, tmp_path: Path) -> Dataset:
    """A private copy of the synthetic district, free to edit."""
    return Dataset(synthetic_template).copy(tmp_path / "night-1")


@pytest.fixture(scope="session")
def make_product() -> Callable[..., ProductDirectory]:
    """``make_product(dataset, provider="clever", **changes)``: the product directory for a dataset, under a
    fresh district id, its schools carrying the dataset's ids as ``provider``'s; ``changes`` (e.g.
    ``classrooms=[...]``) are merged into its JSON before validation."""

    def make(dataset: Dataset, provider: str = "clever", **changes: Any) -> ProductDirectory:
        product = product_for(dataset.path, new_district_id(), provider=provider).model_dump(mode="json")
        return ProductDirectory.model_validate({**product, **changes})

    return make


@pytest.fixture(scope="session")
def demo_dataset() -> Callable[[str], Dataset]:
    """``demo_dataset("snapshot-2")``: a night of the recorded Clever demo district (read only)."""
    return lambda snapshot: Dataset(DEMO / snapshot)


def cut_demo(
    dest: Path,
    snapshot: str = "snapshot-1",
    sections_per_school: int = 3,
    sections: tuple[str, ...] = (),
    users: tuple[str, ...] = (),
) -> Dataset:
    """A night of the demo district cut down to a few sections, every other file as recorded.

    Kept: every school (so school matching and unmatched schools behave as on the whole district); the first
    ``sections_per_school`` sections of each school and the ``sections`` named; the students and teachers of
    those sections and the ``users`` named; the district's staff who belong to no school; the contacts of
    the students kept, with their relationships to those students only. Clever's own record shapes are
    untouched: only whole records leave.
    """
    shutil.copytree(DEMO / snapshot, dest)
    cut = Dataset(dest)
    kept_sections: list[dict[str, Any]] = []
    per_school: dict[str, int] = {}
    for item in cut._items("sections"):
        data = item["data"]
        per_school[data["school"]] = per_school.get(data["school"], 0) + 1
        if per_school[data["school"]] <= sections_per_school or data["id"] in sections:
            kept_sections.append(item)
    people = set(users)
    for item in kept_sections:
        data = item["data"]
        people |= {*data["students"], *(data.get("teachers") or [])}
        if data.get("teacher"):
            people.add(data["teacher"])
    kept_users = []
    for item in cut._items("users"):
        data = item["data"]
        roles = data.get("roles", {})
        contact = roles.get("contact")
        if contact is not None:
            contact["student_relationships"] = [r for r in contact["student_relationships"] if r["student"] in people]
            if contact["student_relationships"]:
                kept_users.append(item)
        elif data["id"] in people or set(roles) == {"district_admin"}:
            kept_users.append(item)
    cut._save("sections", kept_sections)
    cut._save("users", kept_users)
    return cut


@pytest.fixture(scope="session")
def demo_cut(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Dataset]:
    """``demo_cut(snapshot="snapshot-1", sections_per_school=3, sections=(), users=())``: a night of the demo
    district cut to a few sections (``cut_demo``), made once per session for each set of arguments (read
    only: ``.copy()`` it to edit). A sync of it takes seconds where the whole district takes a minute or more."""
    made: dict[tuple[Any, ...], Dataset] = {}

    def make(
        snapshot: str = "snapshot-1",
        sections_per_school: int = 3,
        sections: tuple[str, ...] = (),
        users: tuple[str, ...] = (),
    ) -> Dataset:
        key = (snapshot, sections_per_school, tuple(sections), tuple(users))
        if key not in made:
            made[key] = cut_demo(
                tmp_path_factory.mktemp("demo-cut") / snapshot, snapshot, sections_per_school, sections, users
            )
        return made[key]

    return make


@pytest.fixture(scope="session")
def demo_product() -> Callable[[], ProductDirectory]:
    """The demo's ``product.json``, under a district id of its own each time it is called."""

    def make() -> ProductDirectory:
        product = ProductDirectory.model_validate_json((DEMO / "product.json").read_text(encoding="utf-8"))
        product.district.id = new_district_id()
        return product

    return make


# -- the report in a real browser (issue 14) -----------------------------------------------------------


@dataclass
class ReportInBrowser:
    """A run's report.html as Chromium lays it out at a desk (1280 px) and on a phone (390 px)."""

    local: Path
    layouts: dict[int, Any]
    served_links: dict[str, int]
    index_layouts: dict[int, Any] = field(default_factory=dict)

    def assert_reads_well(self, names: list[str]) -> None:
        """What the admin needs of a report in any browser (issue 14): at 1280 and 390 px nothing reaches past
        the screen (a wide table scrolls in its own box), the verdict is on the first screen, every link opens
        and the given people are named on the page; each file link of the copy in S3 answers 200."""
        from urllib.parse import unquote, urlparse

        assert self.served_links and set(self.served_links.values()) == {200}, self.served_links
        for width, layout in self.layouts.items():
            assert layout.viewport_width == width
            assert layout.too_wide == [], (width, layout.too_wide[:5])
            assert layout.page_width <= width, (width, layout.page_width)
            assert layout.verdict and layout.verdict_bottom <= layout.viewport_height, (width, layout.verdict_bottom)
            for href in layout.links:
                assert href.startswith("file://"), href
                assert Path(unquote(urlparse(href).path)).is_file(), href
            missing_names = [name for name in names if name not in layout.text]
            assert missing_names == [], width
        # the district's index page it links to reads as well
        assert set(self.index_layouts) == set(self.layouts)
        for width, layout in self.index_layouts.items():
            assert layout.too_wide == [] and layout.page_width <= width, (width, layout.too_wide[:5])
            assert layout.verdict_bottom <= layout.viewport_height


@pytest.fixture
def report_in_browser(tmp_path: Path) -> Iterator[Callable[[RunOutcome], ReportInBrowser]]:
    """``report_in_browser(run)``: open the run's report in headless Chromium, as the admin would.

    The copy in S3 is opened by a presigned link and each file link it holds is followed (a presigned link
    must answer 200); the copy ``rostersync report --out`` downloads is laid out at both widths and its
    links must name files next to it. Where Chromium is missing: skipped, with the one line to install it;
    failed in CI (``CI`` set), whose ``.ci/run`` installs it, so that a CI that lost it cannot pass unseen.
    """
    from rostersync_tools.cli.run_commands import download_report, report_link
    from rostersync_tools.local.browser import DESK, PHONE, browser, missing

    why = missing()
    if why and os.environ.get("CI"):
        pytest.fail(f"the browser test needs Chromium, which .ci/run installs: {why}", pytrace=False)
    if why:
        pytest.skip(f"the browser test needs Chromium: {why}")
    with browser() as chromium:

        def check(run: RunOutcome) -> ReportInBrowser:
            assert run.report is not None and run.run is not None, f"run {run.run_id} wrote no report"
            signer = aws.client("s3-links")
            link = report_link(signer, run.bucket, run.run)
            assert link is not None
            served = chromium.measure(link, *DESK)
            served_links = {href: chromium.status(href) for href in served.links}
            local = download_report(aws.client("s3"), run.bucket, run.report, tmp_path / run.run_id)
            layouts = {width: chromium.measure(local, width, height) for width, height in (DESK, PHONE)}
            index = local.with_name("index.html")
            index_layouts = {width: chromium.measure(index, width, height) for width, height in (DESK, PHONE)}
            return ReportInBrowser(local, layouts, served_links, index_layouts)

        yield check
