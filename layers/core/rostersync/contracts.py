"""What the steps of the state machine hand each other (DESIGN §3).

Payloads carry run ids, S3 keys and counts, never records: Step Functions limits a payload to 256 KB.
The state machine accumulates one ``SyncState`` document: Start writes ``run``, Fetch ``fetch``,
Match ``match``, Archive ``archive``; a caught failure lands in ``error``. Each Lambda reads the parts
it needs and returns only its own part.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from rostersync.domain.ids import district_id_problem
from rostersync.domain.records import Kind

Trigger = Literal["enabled", "schedule", "upload", "manual", "self_check", "undo", "approve"]
# Runs that act on an earlier run instead of the roster (rostersync runs undo / approve).
RUN_ACTIONS = ("undo", "approve")


class _Contract(BaseModel):
    model_config = ConfigDict(extra="ignore")


UPLOAD_PREFIX = "uploads/"


def is_bundle_key(key: str) -> bool:
    """Whether an uploaded object is a OneRoster bundle: a zip, or a folder's manifest.csv — in any case
    (``Bundle.ZIP``, ``MANIFEST.CSV``): SIS exports and Windows users do not agree on case."""
    lowered = key.lower()
    return lowered.startswith(UPLOAD_PREFIX) and (
        lowered.endswith(".zip") or lowered.rsplit("/", 1)[-1] == "manifest.csv"
    )


def plan_chunk_name(chunk_key: str) -> str:
    """A plan chunk's name, unique among its run's chunks: its path under the run's ``plan/`` folder, with
    ``-`` for ``/`` and without the extension (``…/plan/writes-00003.ndjson.gz`` → ``writes-00003``; the
    partitioned Match's ``…/plan/p0002/writes-00000.ndjson.gz`` → ``p0002-writes-00000``). Upsert names the
    chunk's before-images (``undo/<name>…``) and its meter after it: the people phase and every partition
    number their chunks from 00000, so the file name alone would make them share one object (kept once,
    the others' dropped)."""
    name = chunk_key.removesuffix(".ndjson.gz")
    _, plan, inside = name.rpartition("/plan/")
    if not plan:
        inside = name.removeprefix("plan/") if name.startswith("plan/") else name.rsplit("/", 1)[-1]
    return inside.replace("/", "-")


class SyncRequest(_Contract):
    """The execution input: who to sync, and why (from EventBridge, the schedule, an upload or the CLI).

    An uploaded OneRoster bundle starts a run with only ``bundle_key``
    (``uploads/<district>/…/bundle.zip`` or ``…/manifest.csv``): the district is the folder the
    district's SFTP user can write to, so an upload can only ever sync its own district.
    """

    district_id: str = Field(default="", max_length=128)
    trigger: Trigger = "manual"
    dry_run: bool = False
    bundle_key: str | None = None
    # who asked (the "Sync Enabled" event's changed_by, the CLI's --by)
    requested_by: str | None = Field(default=None, max_length=256)
    # the run an undo or approval acts on
    target_run_id: str | None = Field(default=None, max_length=128)
    # the "Sync Enabled" event's detail, whole (a path the event lacks would break an input template)
    detail: Any = None

    @model_validator(mode="after")
    def _district_from_upload(self) -> SyncRequest:
        if self.bundle_key is not None:
            parts = self.bundle_key.split("/")
            if not self.bundle_key.startswith(UPLOAD_PREFIX) or len(parts) < 3 or ".." in parts:
                raise ValueError(f"bundle key {self.bundle_key!r} is not under {UPLOAD_PREFIX}<district>/")
            if self.district_id and self.district_id != parts[1]:
                raise ValueError("a bundle can only sync the district whose folder it was uploaded to")
            self.district_id = parts[1]
            self.trigger = "upload" if self.trigger == "manual" else self.trigger
        problem = district_id_problem(self.district_id)
        if problem:
            raise ValueError(problem)
        if (
            self.requested_by is None
            and isinstance(self.detail, dict)
            and isinstance(self.detail.get("changed_by"), str)
        ):
            self.requested_by = self.detail["changed_by"][:256]
        self.detail = None  # not carried further: only who asked matters
        if (self.trigger in RUN_ACTIONS) != bool(self.target_run_id):
            raise ValueError("an undo or approval names the run it acts on (target_run_id), and only they do")
        return self


class StartRequest(_Contract):
    """Start's input: the execution input plus the execution's name, which becomes the run id."""

    input: SyncRequest
    run_id: str = Field(min_length=1)


class RunRef(_Contract):
    """A run's identity, returned by Start and carried through every step."""

    district_id: str
    run_id: str
    dry_run: bool = False
    trigger: Trigger = "manual"
    provider: str = ""
    connection: str = ""
    bundle_key: str | None = None
    started_at: str = ""
    settings_version: int = 0
    deletion_threshold_percent: float = 10.0
    # Why Start made this run a dry run although it was not asked to (an upload before sync is enabled).
    dry_run_reason: str = ""
    # An upload whose bundle is not complete yet (or whose sync another execution started): Start took no
    # lock and wrote no run; the state machine ends ("Waiting for the rest of the upload").
    upload_waiting: bool = False
    waiting_reason: str = ""
    # Refused before anything was fetched (the district's plan does not include sync): Start recorded the
    # run ``not_entitled`` with the reason, took no lock; the state machine ends ("Refused before fetching").
    refused: bool = False
    refused_reason: str = ""
    # undo / approve: the run acted on
    target_run_id: str | None = None


class FetchResult(_Contract):
    snapshot_manifest_key: str
    complete: bool
    delta: bool = False
    cursor: str | None = None
    # full | delta (OneRoster) | events (Clever); why a provider that can send changes read everything;
    # whether this full read was a reconcile after incremental runs
    sync_kind: str = "full"
    full_reason: str = ""
    reconcile: bool = False
    touched_only: bool = False
    tonight_known: bool = False
    changes: int | None = None
    incremental_state: dict[str, Any] | None = None
    problems: list[str] = Field(default_factory=list)
    records: dict[str, int] = Field(default_factory=dict)
    errors_key: str | None = None
    error_count: int = 0


class FetchRequest(_Contract):
    """What the Fetch function is asked to do (``phase``): ``plan`` the run's reads, read one ``slice`` of
    one list (``resource``), or ``assemble`` the snapshot from the slices read."""

    phase: Literal["plan", "slice", "assemble"]
    run: RunRef | None = None
    district_id: str = ""
    run_id: str = ""
    resource: str = ""


class FetchPlanResult(_Contract):
    """``$.fetch_plan``: the lists the Map reads, one item each (names only; the plan is in S3)."""

    resources: list[str] = Field(default_factory=list)
    plan_key: str


class FetchSliceResult(_Contract):
    """One slice of one list read: ``done`` when the list was read to its end (or stopped at a page that
    could not be read); otherwise the state machine reads its next slice."""

    resource: str
    done: bool
    slice: int
    pages: int


class MatchResult(_Contract):
    plan_manifest_key: str
    plan_chunks: int
    writes: int
    summary_key: str


class MatchPrepared(_Contract):
    """Match's people phase (``steps.match.match_people``): where its findings are for the partitions
    and Combine, and the manifest the partitions' Map reads (one item per partition)."""

    people_key: str
    partitions_key: str
    partitions: int


class MatchPartitionRequest(_Contract):
    """One iteration of the Match partitions' Map: plan one partition's enrollments and guardian links."""

    district_id: str
    run_id: str
    people_key: str
    partition: int


class ArchiveResult(_Contract):
    archived: dict[Kind, int] = Field(default_factory=dict)
    skipped_reason: str | None = None
    threshold_exceeded: list[Kind] = Field(default_factory=list)
    lines_keys: list[str] = Field(default_factory=list)
    # the candidates of the kinds over the threshold, held for `rostersync runs approve` (lifecycle.holds)
    held_keys: list[str] = Field(default_factory=list)
    held: dict[Kind, int] = Field(default_factory=dict)


class StepError(_Contract):
    """A failure caught by the state machine (``ResultPath: $.error``)."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    error: str = Field(default="", alias="Error")
    cause: str = Field(default="", alias="Cause")


class SyncState(_Contract):
    """The document the state machine passes from step to step.

    ``request`` and ``run_id`` are set by the first (Pass) state, so even a run whose
    Start failed can be reported and its lock released.
    """

    request: SyncRequest | None = None
    run_id: str = ""
    run: RunRef | None = None
    fetch: FetchResult | None = None
    matching: MatchPrepared | None = None
    match: MatchResult | None = None
    archive: ArchiveResult | None = None
    error: StepError | None = None

    def run_ref(self) -> RunRef:
        """The run, as Start recorded it or, if Start failed, as the execution input names it."""
        if self.run is not None:
            return self.run
        if self.request is None:
            raise ValueError("the state names no district")
        return RunRef(
            district_id=self.request.district_id,
            run_id=self.run_id,
            dry_run=self.request.dry_run,
            trigger=self.request.trigger,
            target_run_id=self.request.target_run_id,
        )


class UpsertChunkRequest(_Contract):
    """One iteration of the Upsert Map: write one plan chunk."""

    district_id: str
    run_id: str
    chunk_key: str


class UpsertChunkResult(_Contract):
    chunk_key: str
    written: int
    write_requests: int


class ReportResult(_Contract):
    status: str
    report_key: str
    html_key: str


class FinishResult(_Contract):
    status: str
    lock_released: bool


class ExecutionEnded(_Contract):
    """An execution of the sync that ended FAILED, TIMED_OUT or ABORTED (from its EventBridge event)."""

    execution_arn: str
    name: str
    status: str
    input: str | None = None
    error: str | None = None
    cause: str | None = None


class CloseRunResult(_Contract):
    run_id: str
    closed: bool
    lock_released: bool
    # the run-end event published ("Sync Completed", …), None when nothing was announced
    announced: str | None = None
