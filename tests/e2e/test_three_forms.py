"""One district in three forms — Clever data, a OneRoster CSV bundle, OneRoster REST — gives one directory.

A synthetic Clever district (less what OneRoster cannot say: ``drop_inexpressible``) is written as a
OneRoster 1.1 bundle by ``rostersync_tools.local.convert``, with the same ids. Three product districts with the
same schools (named by ``{"clever": id}`` or ``{"oneroster": id}``) sync it on one embedded stack:

- Clever: the simulator serves the Clever folder and the sync reads it through the Clever client;
- OneRoster CSV: the zipped bundle is uploaded to ``uploads/<district>/night-N/bundle.zip``, which starts
  the sync through the template's S3 rule, as an SFTP upload does;
- OneRoster REST: the simulator serves the bundle folder under ``/ims/oneroster/v1p1/`` (bearer token)
  and the sync reads it through the REST client; from the second night on it asks only for what changed
  (``dateLastModified>'…'``), and the simulator, switched to the next night's bundle, serves the changes
  stamped with the switch's time and the leavers as ``tobedeleted``.

Each ``directory.json`` is normalised (every directory id, and every reference to one, replaced by the
record's provider id; ``provider_ids`` without the provider's name) and the three must be equal, after
the first night and after a second one in which students leave and one changes grade.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.admin import connect_provider
from rostersync.config import runtime_config
from rostersync.directory.product import ProductDirectory, export_directory, import_product_directory
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync_tools.local.convert import clever_to_oneroster, drop_inexpressible, zip_bundle
from rostersync_tools.local.simulator import ProviderSimulator
from rostersync_tools.local.stack import EmbeddedStack
from rostersync_tools.local.synthetic import connect_clever_simulator, write_synthetic_clever_district

pytestmark = pytest.mark.e2e

RUN_TIMEOUT_SECONDS = 600  # a bound, not a guess: generous on a loaded machine
FORMS = ("clever", "oneroster-csv", "oneroster-rest")
COLLECTIONS = ("schools", "classrooms", "people", "enrollments", "guardian_links")
REFERENCES = ("school_id", "school_ids", "classroom_id", "person_id", "guardian_id", "student_id")

# -- the stack ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def embedded_stack(request: pytest.FixtureRequest) -> Iterator[EmbeddedStack]:
    """The session's stack from tests/e2e/conftest.py when there is one; else one for this module.

    Never a second stack beside the session's: one process holds one moto backend.
    """
    try:
        yield request.getfixturevalue("stack")
        return
    except pytest.FixtureLookupError:
        pass
    previous = os.environ.get("PROVIDER_RETRY_BASE_SECONDS")
    os.environ["PROVIDER_RETRY_BASE_SECONDS"] = "0"
    runtime_config.cache_clear()
    stack = EmbeddedStack(parameters={"LogLevel": "WARNING"}, retry_wait_scale=0).start()
    runtime_config.cache_clear()
    try:
        yield stack
    finally:
        stack.stop()
        if previous is None:
            os.environ.pop("PROVIDER_RETRY_BASE_SECONDS", None)
        else:
            os.environ["PROVIDER_RETRY_BASE_SECONDS"] = previous
        runtime_config.cache_clear()


# -- one district in three forms --------------------------------------------------------------------


@dataclass
class Run:
    """How one night's run of one form ended."""

    form: str
    night: int
    execution: dict[str, Any]
    status: str | None
    report: dict[str, Any]

    def assert_succeeded(self) -> None:
        errors = "; ".join(f"{e['kind']} {e['provider_id']}: {e['reason']}" for e in self.report.get("errors", [])[:3])
        assert (self.execution["status"], self.status) == ("SUCCEEDED", "succeeded"), (
            f"{self.form} night {self.night}: execution {self.execution['status']} "
            f"{self.execution.get('error', '')} {str(self.execution.get('cause', ''))[:300]}; "
            f"run {self.status}; first errors: {errors or 'none'}"
        )

    def counts(self, kind: str) -> dict[str, int]:
        return self.report["counts"][kind]


@dataclass
class FormDistrict:
    """A product district fed by one form of the roster."""

    form: str
    id: str
    directory: DirectoryRepository
    state: SyncStateRepository
    simulator: ProviderSimulator | None = None

    def export(self) -> dict[str, Any]:
        return export_directory(self.directory, self.state)


class ThreeForms:
    """Three districts on one stack, each synced from its own form of the same roster, night by night."""

    def __init__(self, stack: EmbeddedStack, root: Path) -> None:
        self.stack = stack
        self.root = root
        self.config = runtime_config()
        self.districts: dict[str, FormDistrict] = {}
        self.runs: dict[str, list[Run]] = {form: [] for form in FORMS}
        self.nights = 0

    # setting up ---------------------------------------------------------------------------------------

    def connect(self, clever_dir: Path, forms: tuple[str, ...]) -> None:
        dynamodb, secrets = aws.client("dynamodb"), aws.client("secretsmanager")
        schools = json.loads((clever_dir / "schools.json").read_text(encoding="utf-8"))["data"]
        for form in forms:
            district_id = f"d-{uuid.uuid4().hex[:8]}"
            provider = "clever" if form == "clever" else "oneroster"
            product = ProductDirectory.model_validate(
                {
                    "district": {"id": district_id, "name": "Three Forms District", "plan": "premium"},
                    "schools": [
                        {
                            "id": f"sch-{district_id}-{n}",
                            "name": s["data"]["name"],
                            "provider_ids": {provider: s["data"]["id"]},
                        }
                        for n, s in enumerate(schools)
                    ],
                }
            )
            directory = DirectoryRepository(dynamodb, self.config.directory_table, district_id)
            state = SyncStateRepository(dynamodb, self.config.sync_state_table, district_id)
            import_product_directory(product, directory, state)
            district = FormDistrict(form, district_id, directory, state)
            token = f"token-{uuid.uuid4().hex[:12]}"
            if form == "clever":
                district.simulator = ProviderSimulator(None, token=token).start()
                connect_clever_simulator(state, district.simulator, token, page_limit=50, stack=self.stack.stack_name)
            elif form == "oneroster-rest":
                district.simulator = ProviderSimulator(None, token=token).start()
                base_url = district.simulator.base_url
                connect_provider(
                    state,
                    secrets,
                    "oneroster-rest",
                    base_url,
                    token,
                    page_limit=50,
                    stack=self.stack.stack_name,
                    auth="bearer",
                )
            else:
                connect_provider(state, secrets, "oneroster-csv")
                state.mark_enabled("e2e")  # the admin enabled sync: the district's uploads sync for real
            self.districts[form] = district

    def close(self) -> None:
        for district in self.districts.values():
            if district.simulator is not None:
                district.simulator.stop()

    # one night -----------------------------------------------------------------------------------------

    def night(self, clever_dir: Path) -> None:
        """Sync every district from this night's roster, each in its own form."""
        self.nights += 1
        night = self.nights
        bundle = self.root / f"bundle-{night}"
        clever_to_oneroster(clever_dir, bundle)
        for form, district in self.districts.items():
            if form == "clever":
                assert district.simulator is not None
                district.simulator.set_dataset(clever_dir)
                arn = self.stack.start_sync(district.id)
            elif form == "oneroster-csv":
                key = f"uploads/{district.id}/night-{night}/bundle.zip"
                aws.client("s3").put_object(Bucket=self.config.sync_bucket, Key=key, Body=zip_bundle(bundle))
                (arn,) = self.stack.publish_upload(key)
            else:
                assert district.simulator is not None
                # The simulator serves what changed since the last bundle as changed now, and what is gone
                # as tobedeleted, as a OneRoster server does; a run with a stored cursor reads only that.
                district.simulator.set_dataset(bundle)
                arn = self.stack.start_sync(district.id)
            self.runs[form].append(self._finish(district, arn))

    def _finish(self, district: FormDistrict, arn: str) -> Run:
        execution = self.stack.wait(arn, timeout=RUN_TIMEOUT_SECONDS)
        record = district.state.get_run(arn.rsplit(":", 1)[1]) or {}
        report: dict[str, Any] = {}
        if record.get("report_key"):
            body = aws.client("s3").get_object(Bucket=self.config.sync_bucket, Key=record["report_key"])["Body"].read()
            report = json.loads(body)
        return Run(district.form, self.nights, execution, record.get("status"), report)

    def normalised(self) -> dict[str, dict[str, Any]]:
        return {form: normalise(district.export()) for form, district in self.districts.items()}


def normalise(directory: dict[str, Any]) -> dict[str, Any]:
    """A directory.json without its directory ids and without the provider's name.

    Every record is keyed by its provider id (``<collection>:<provider id>``, or its directory id for a
    product record without one); references to other records are replaced the same way, and
    ``provider_ids`` becomes the list of the ids, without the provider's name.
    """
    keys: dict[str, str] = {}
    for collection, records in directory.items():
        if isinstance(records, list):
            for record in records:
                provider_ids = sorted(record["provider_ids"].values())
                keys[record["id"]] = f"{collection}:{provider_ids[0]}" if len(provider_ids) == 1 else record["id"]

    def key(value: Any) -> Any:
        if isinstance(value, list):
            return [keys.get(item, f"unknown:{item}") for item in value]
        return keys.get(value, f"unknown:{value}") if value else value

    out: dict[str, Any] = {"district": {"name": directory["district"]["name"]}}
    for collection, records in directory.items():
        if not isinstance(records, list):
            continue
        rows: dict[str, Any] = {}
        for record in records:
            row = {
                name: (key(value) if name in REFERENCES else value) for name, value in record.items() if name != "id"
            }
            row["provider_ids"] = sorted(record["provider_ids"].values())
            rows[keys[record["id"]]] = row
        out[collection] = dict(sorted(rows.items()))
    return out


def differences(expected: dict[str, Any], actual: dict[str, Any], limit: int = 15) -> list[str]:
    """Records missing, extra or different between two normalised directories (the first ``limit``)."""
    lines: list[str] = []
    for collection in sorted(expected.keys() | actual.keys()):
        left, right = expected.get(collection, {}), actual.get(collection, {})
        lines += [f"{collection}: missing {k}" for k in sorted(left.keys() - right.keys())]
        lines += [f"{collection}: extra {k}" for k in sorted(right.keys() - left.keys())]
        for k in sorted(left.keys() & right.keys()):
            if left[k] != right[k]:
                fields = sorted(f for f in left[k].keys() | right[k].keys() if left[k].get(f) != right[k].get(f))
                lines.append(
                    f"{collection} {k}: " + "; ".join(f"{f} {left[k].get(f)!r} != {right[k].get(f)!r}" for f in fields)
                )
    return lines[:limit] + ([f"… {len(lines) - limit} more"] if len(lines) > limit else [])


def assert_same_directory(directories: dict[str, dict[str, Any]], form: str) -> None:
    diff = differences(directories["clever"], directories[form])
    shown = "\n  ".join(diff)
    assert not diff, f"{form}'s directory differs from the Clever form's:\n  {shown}"


# -- the nights -------------------------------------------------------------------------------------


def leave_and_regrade(dataset: Path, leavers: set[str], regraded: str) -> None:
    """Students leave (from users and sections; contacts lose them, a contact left with none goes), and
    one student changes grade."""
    users = json.loads((dataset / "users.json").read_text(encoding="utf-8"))
    kept = []
    for item in users["data"]:
        data = item["data"]
        if data["id"] in leavers:
            continue
        contact = data["roles"].get("contact")
        if contact is not None:
            contact["student_relationships"] = [
                r for r in contact["student_relationships"] if r["student"] not in leavers
            ]
            if not contact["student_relationships"]:
                continue
        if data["id"] == regraded:
            student = data["roles"]["student"]
            student["grade"] = "1" if student["grade"] == "Kindergarten" else "Kindergarten"
        kept.append(item)
    users["data"] = kept
    (dataset / "users.json").write_text(json.dumps(users), encoding="utf-8")
    sections = json.loads((dataset / "sections.json").read_text(encoding="utf-8"))
    for item in sections["data"]:
        item["data"]["students"] = [s for s in item["data"]["students"] if s not in leavers]
    (dataset / "sections.json").write_text(json.dumps(sections), encoding="utf-8")


@dataclass
class Nights:
    forms: ThreeForms
    first: dict[str, dict[str, Any]]
    second: dict[str, dict[str, Any]]
    leavers: set[str]
    regraded: str


@pytest.fixture(scope="module")
def nights(embedded_stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nights]:
    root = tmp_path_factory.mktemp("three-forms")
    night_1 = root / "clever-1"
    write_synthetic_clever_district(night_1, students=80, schools=3)
    drop_inexpressible(night_1)
    forms = ThreeForms(embedded_stack, root)
    try:
        forms.connect(night_1, FORMS)
        forms.night(night_1)
        first = forms.normalised()

        night_2 = Path(shutil.copytree(night_1, root / "clever-2"))
        users = json.loads((night_1 / "users.json").read_text(encoding="utf-8"))["data"]
        students = [u["data"]["id"] for u in users if "student" in u["data"]["roles"]]
        leavers, regraded = {students[0], students[30], students[60]}, students[45]
        leave_and_regrade(night_2, leavers, regraded)
        forms.night(night_2)
        yield Nights(forms, first, forms.normalised(), leavers, regraded)
    finally:
        forms.close()


def test_first_night_gives_every_form_the_same_directory(nights: Nights) -> None:
    for runs in nights.forms.runs.values():
        if runs:
            runs[0].assert_succeeded()
    clever = nights.first["clever"]
    # Everything synced: the three schools, and sync-managed classrooms, people, enrollments and links
    assert len(clever["schools"]) == 3
    for collection in COLLECTIONS[1:]:
        assert clever[collection] and all(r["managed_by_sync"] for r in clever[collection].values()), collection
    assert {r["status"] for c in COLLECTIONS for r in clever[c].values()} == {"active"}
    assert_same_directory(nights.first, "oneroster-csv")
    assert_same_directory(nights.first, "oneroster-rest")


def test_second_night_gives_the_clever_and_csv_forms_the_same_directory(nights: Nights) -> None:
    nights.forms.runs["clever"][1].assert_succeeded()
    nights.forms.runs["oneroster-csv"][1].assert_succeeded()
    clever = nights.second["clever"]
    # The leavers are archived with their enrollments and links, and the regraded student updated
    people = clever["people"]
    assert {people[f"people:{s}"]["status"] for s in nights.leavers} == {"archived"}
    assert (
        people[f"people:{nights.regraded}"]["grade"]
        != nights.first["clever"]["people"][f"people:{nights.regraded}"]["grade"]
    )
    archived_enrollments = {k for k, r in clever["enrollments"].items() if r["status"] == "archived"}
    assert archived_enrollments and all(k.rsplit(":", 1)[1] in nights.leavers for k in archived_enrollments)
    assert any(r["status"] == "archived" for r in clever["guardian_links"].values())
    assert nights.forms.runs["clever"][1].counts("students")["archived"] == 3

    assert_same_directory(nights.second, "oneroster-csv")


def test_second_night_over_rest_is_a_delta_that_archives_the_leavers(nights: Nights) -> None:
    # The REST form's second night asks only for what changed since the first run
    simulator = nights.forms.districts["oneroster-rest"].simulator
    assert simulator is not None
    filtered = {path.rsplit("/", 1)[1] for path, query in simulator.requests_seen if "filter=" in query}
    assert {"orgs", "classes", "users", "enrollments"} <= filtered
    run = nights.forms.runs["oneroster-rest"][1]
    run.assert_succeeded()
    # and the leavers, marked tobedeleted, are archived with their enrollments; the regrade is applied
    assert run.counts("students")["archived"] == 3 and run.counts("students")["updated"] == 1
    rest, clever = nights.second["oneroster-rest"], nights.second["clever"]
    assert {rest["people"][f"people:{s}"]["status"] for s in nights.leavers} == {"archived"}
    assert (
        rest["people"][f"people:{nights.regraded}"]["grade"] == clever["people"][f"people:{nights.regraded}"]["grade"]
    )
    assert {k: r["status"] for k, r in rest["enrollments"].items()} == {
        k: r["status"] for k, r in clever["enrollments"].items()
    }


def test_second_night_over_rest_gives_the_same_directory(nights: Nights) -> None:
    assert_same_directory(nights.second, "oneroster-rest")
