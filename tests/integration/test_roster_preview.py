"""``read_roster_preview`` through a stack handle (moto): the connection, and for OneRoster CSV the newest upload."""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from rostersync.admin import connect_provider
from rostersync.errors import ConnectionNotConfiguredError
from rostersync.providers.base import RetryPolicy
from rostersync.roster_preview import read_roster_preview
from rostersync_tools.cli.connect import StackHandle, StackResources
from rostersync_tools.local.simulator import ProviderSimulator

CLEVER_DEMO = (
    Path(__file__).resolve().parents[1] / "fixtures" / "reference" / "clever" / "clever-go" / "tests" / "mocks"
)
REGION = "us-east-1"
DISTRICT = "d-preview"
BUCKET = "sync-bucket"
CLASSES = (
    "sourcedId,status,dateLastModified,title,grades,courseSourcedId,classCode,classType,location,schoolSourcedId,"
    "termSourcedIds,subjects,subjectCodes,periods\n"
    'k-1,active,,Algebra I,"09",,ALG1,scheduled,,s-1,,Math,,"3"\n'
)
USERS = (
    "sourcedId,status,dateLastModified,enabledUser,orgSourcedIds,role,username,userIds,givenName,familyName,"
    "middleName,identifier,email,sms,phone,agentSourcedIds,grades,password\n"
    "u-1,active,,TRUE,s-1,student,ada,,Ada,Lovelace,,SIS-7,ada@example.org,,,,09,pw\n"
    "u-2,active,,TRUE,s-1,teacher,tom,,Tom,Hardy,,,tom@example.org,,,,,pw\n"
)
ENROLLMENTS = (
    "sourcedId,status,dateLastModified,classSourcedId,schoolSourcedId,userSourcedId,role,primary,beginDate,endDate\n"
    "e-1,active,,k-1,s-1,u-1,student,false,,\ne-2,active,,k-1,s-1,u-2,teacher,true,,\n"
)


def bundle(school_name: str) -> bytes:
    orgs = (
        "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\n"
        f"d-1,active,,District,district,,\ns-1,active,,{school_name},school,0042,d-1\n"
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, text in (("orgs.csv", orgs), ("classes.csv", CLASSES), ("users.csv", USERS)):
            archive.writestr(name, text)
        archive.writestr("enrollments.csv", ENROLLMENTS)
    return buffer.getvalue()


@pytest.fixture
def handle(mocked_aws: None, dynamodb: Any, directory_table: str, sync_state_table: str) -> StackHandle:
    session = boto3.session.Session(region_name=REGION)
    session.client("s3").create_bucket(Bucket=BUCKET)
    resources = StackResources(directory_table, sync_state_table, BUCKET, "arn:aws:states:::stateMachine:x")
    return StackHandle(session, resources)


def test_a_district_without_a_connection_is_refused(handle: StackHandle) -> None:
    with pytest.raises(ConnectionNotConfiguredError, match="district d-preview has no provider connection"):
        read_roster_preview(handle, DISTRICT)


def test_oneroster_csv_without_an_upload_is_refused(handle: StackHandle) -> None:
    connect_provider(handle.state(DISTRICT), handle.client("secretsmanager"), "oneroster-csv")
    with pytest.raises(ConnectionNotConfiguredError, match="no OneRoster bundle has been uploaded to uploads/d-pre"):
        read_roster_preview(handle, DISTRICT)


def test_oneroster_csv_reads_the_newest_upload_of_its_own_district(handle: StackHandle) -> None:
    connect_provider(handle.state(DISTRICT), handle.client("secretsmanager"), "oneroster-csv")
    s3 = handle.client("s3")
    s3.put_object(Bucket=BUCKET, Key=f"uploads/{DISTRICT}/night-1/bundle.zip", Body=bundle("Old Name High"))
    s3.put_object(Bucket=BUCKET, Key=f"uploads/{DISTRICT}/night-2/bundle.zip", Body=bundle("Summit High"))
    s3.put_object(Bucket=BUCKET, Key="uploads/d-preview-other/night-9/bundle.zip", Body=bundle("Not Ours"))

    preview = read_roster_preview(handle, DISTRICT, people={"u-1"}, retry=RetryPolicy(base_delay=0))

    assert preview.provider == "oneroster" and preview.complete
    assert [(s.provider_id, s.name, s.school_number) for s in preview.schools] == [("s-1", "Summit High", "0042")]
    (section,) = preview.section_list()
    assert (section.record.provider_id, section.teacher_ids) == ("k-1", ("u-2",))
    assert preview.teachers["u-2"].email == "tom@example.org"
    assert set(preview.people) == {"u-1"}


def test_a_clever_preview_reads_only_the_adults_lists(handle: StackHandle, monkeypatch: Any) -> None:
    # Given a district connected to Clever (its recorded demo district, on the simulator)
    with ProviderSimulator(CLEVER_DEMO, token="preview-token") as simulator:
        state, secrets = handle.state(DISTRICT), handle.client("secretsmanager")
        connect_provider(state, secrets, "clever", simulator.base_url, "preview-token", stack="s")

        # When classrooms are previewed (no people asked for), then a person is asked for
        adults = read_roster_preview(handle, DISTRICT, retry=RetryPolicy(base_delay=0))
        adult_requests = [query for path, query in simulator.requests_seen if path.endswith("/users")]
        monkeypatch.setattr("rostersync.roster_preview.PREVIEW_USERS_BY_ID", 0)  # one person asked: every user read
        whole = read_roster_preview(handle, DISTRICT, people={"not-a-user"}, retry=RetryPolicy(base_delay=0))
        whole_requests = [query for path, query in simulator.requests_seen if path.endswith("/users")]

    # Then the preview asked only for the teachers', staff's and district admins' lists, and found the same
    # sections, teachers and section → teacher links as a read of every user
    assert adults.complete and whole.complete
    assert adult_requests and all("role=" in query for query in adult_requests)
    roles = {q.split("role=")[1].split("&")[0] for q in adult_requests}
    assert roles == {"district_admin", "staff", "teacher"}
    assert not any("role=" in query for query in whole_requests[len(adult_requests) :])
    assert [s.provider_id for s in adults.sections] == [s.provider_id for s in whole.sections]
    assert adults.section_teachers == whole.section_teachers and adults.teachers == whole.teachers
    assert adults.teachers, "the demo district's sections have teachers"


def test_a_clever_preview_asks_for_the_people_it_checks_by_id(handle: StackHandle, monkeypatch: Any) -> None:
    # Given a district connected to Clever, and a student of its roster
    with ProviderSimulator(CLEVER_DEMO, token="preview-token") as simulator:
        state, secrets = handle.state(DISTRICT), handle.client("secretsmanager")
        connect_provider(state, secrets, "clever", simulator.base_url, "preview-token", stack="s")
        whole = read_roster_preview(handle, DISTRICT, retry=RetryPolicy(base_delay=0))
        student_id = next(u["data"]["id"] for u in demo_users() if u["data"].get("roles", {}).get("student"))

        # When people link previews that student and an id Clever does not have
        before = len(simulator.requests_seen)
        asked = read_roster_preview(handle, DISTRICT, people=[student_id, "no-such-user"])
        requests = [(path, query) for path, query in simulator.requests_seen[before:] if "/users" in path]

        # and when more people are asked for than the preview reads by id
        monkeypatch.setattr("rostersync.roster_preview.PREVIEW_USERS_BY_ID", 1)
        before = len(simulator.requests_seen)
        many = read_roster_preview(handle, DISTRICT, people=[student_id, "no-such-user"])
        many_requests = [(path, query) for path, query in simulator.requests_seen[before:] if "/users" in path]

    # Then the student was asked for by id, the unknown id answered 404 and left out, the users lists asked
    # were the adults' only, and the student is the one a read of every user gives
    assert list(asked.people) == [student_id] and asked.people[student_id].kind.value == "students"
    by_id = [path for path, _ in requests if path.startswith("/v3.0/users/")]
    assert by_id == [f"/v3.0/users/{student_id}", "/v3.0/users/no-such-user"]
    assert all("role=" in query for path, query in requests if path == "/v3.0/users")
    assert asked.teachers == whole.teachers
    # and past the bound every user is read, with no request by id
    assert many.people == asked.people
    assert not any(path.startswith("/v3.0/users/") for path, _ in many_requests)
    assert not any("role=" in query for _, query in many_requests)


def demo_users() -> list[dict[str, Any]]:
    """The recorded demo district's users, as Clever lists them."""
    return json.loads((CLEVER_DEMO / "users.json").read_text(encoding="utf-8"))["data"]
