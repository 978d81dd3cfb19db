"""Finding and reading a district's uploaded OneRoster bundles (``storage``), as Start, Fetch and the
roster preview do: the newest upload of the district only, as a zip's bytes or a folder's CSV files."""

from __future__ import annotations

import io
import json
import os
import zipfile
from datetime import UTC
from pathlib import Path
from typing import Any

import boto3
import pytest

from rostersync.storage import (
    BUNDLE_READ_BYTES,
    download_bundle,
    latest_upload_key,
    open_bundle_object,
    upload_name,
    uploaded_at,
)

BUCKET = "sync-bucket"


@pytest.fixture
def s3(mocked_aws: None) -> Any:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def test_the_latest_upload_is_the_newest_bundle_of_the_district_only(s3: Any) -> None:
    assert latest_upload_key(s3, BUCKET, "d-1") is None
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/night-1/bundle.zip", Body=b"1")
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/night-2/manifest.csv", Body=b"2")
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/notes.txt", Body=b"not a bundle")
    s3.put_object(Bucket=BUCKET, Key="uploads/d-10/night-3/bundle.zip", Body=b"another district")

    assert latest_upload_key(s3, BUCKET, "d-1") == "uploads/d-1/night-2/manifest.csv"


def test_a_zip_upload_is_read_as_bytes_and_a_folder_upload_as_its_csv_files(s3: Any, tmp_path: Path) -> None:
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/a/bundle.zip", Body=b"PK zip bytes")
    for name in ("manifest.csv", "users.csv", "readme.txt"):
        s3.put_object(Bucket=BUCKET, Key=f"uploads/d-1/b/{name}", Body=name.encode())
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/b/older/orgs.csv", Body=b"a subfolder is another upload")

    assert download_bundle(s3, BUCKET, "uploads/d-1/a/bundle.zip", tmp_path) == b"PK zip bytes"
    folder = download_bundle(s3, BUCKET, "uploads/d-1/b/manifest.csv", tmp_path)
    assert folder == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.csv", "users.csv"]
    # a Fetch slice reading one file of a folder upload downloads that file only
    one = tmp_path / "one"
    one.mkdir()
    assert download_bundle(s3, BUCKET, "uploads/d-1/b/manifest.csv", one, only={"users.csv"}) == one
    assert [p.name for p in one.iterdir()] == ["users.csv"]


def test_a_report_names_an_upload_as_the_district_named_it_and_says_when_the_objects_read_came(
    s3: Any, tmp_path: Path
) -> None:
    # Its name: the path in the district's folder; a folder upload (its run reads manifest.csv) as the folder
    assert upload_name("d-1", "uploads/d-1/night-3/bundle.zip") == "night-3/bundle.zip"
    assert upload_name("d-1", "uploads/d-1/bundle.ZIP") == "bundle.ZIP"
    assert upload_name("d-1", "uploads/d-1/2026-12-01/manifest.csv") == "2026-12-01/"

    # When it came: the version the run read, as S3 stamped it (UTC, to the second)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "uploads/d-1/night-3/bundle.zip"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"PK first")
    versions: dict[str, str] = {}
    download_bundle(s3, BUCKET, key, tmp_path, versions=versions)
    stamped = s3.head_object(Bucket=BUCKET, Key=key, VersionId=versions[key])["LastModified"]
    assert uploaded_at(s3, BUCKET, key, versions) == stamped.astimezone(UTC).isoformat(timespec="seconds")
    assert uploaded_at(s3, BUCKET, key, versions).endswith("+00:00")

    # A folder: the newest of the files the run read
    for name in ("manifest.csv", "users.csv"):
        s3.put_object(Bucket=BUCKET, Key=f"uploads/d-1/f/{name}", Body=name.encode())
    read: dict[str, str] = {}
    folder = tmp_path / "f"
    folder.mkdir()
    download_bundle(s3, BUCKET, "uploads/d-1/f/manifest.csv", folder, versions=read)
    assert sorted(read) == ["uploads/d-1/f/manifest.csv", "uploads/d-1/f/users.csv"]
    newest = max(s3.head_object(Bucket=BUCKET, Key=k, VersionId=v)["LastModified"] for k, v in read.items())
    assert uploaded_at(s3, BUCKET, "uploads/d-1/f/manifest.csv", read) == newest.astimezone(UTC).isoformat(
        timespec="seconds"
    )

    # An object S3 no longer has (a version removed since): no time, and no error
    s3.delete_object(Bucket=BUCKET, Key=key, VersionId=versions[key])
    assert uploaded_at(s3, BUCKET, key, versions) == ""


class RangesAsked:
    """The S3 client, noting each ``GetObject``'s range (None: the whole object)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.ranges: list[str | None] = []

    def get_object(self, **kwargs: Any) -> Any:
        self.ranges.append(kwargs.get("Range"))
        return self._s3.get_object(**kwargs)


def test_a_zip_upload_is_read_where_it_lies_in_ranges_not_downloaded_whole(s3: Any) -> None:
    from rostersync.providers.oneroster_csv import FilePosition, check_bundle, file_entries

    # Given a zip upload larger than two read ranges: a small orgs.csv and a users.csv of incompressible
    # padding (a district's big file) before it, stored uncompressed
    orgs = "sourcedId,status,dateLastModified,name,type,identifier,parentSourcedId\nsch-1,active,,North,school,,\n"
    users = "sourcedId,givenName,familyName,role,orgSourcedIds,metadata.pad\n" + "".join(
        f"u-{n},Ann,Lee,student,sch-1,{os.urandom(600).hex()}\n" for n in range(2 * BUNDLE_READ_BYTES // 1200 + 10)
    )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("users.csv", users)
        archive.writestr("orgs.csv", orgs)
        archive.writestr("classes.csv", "sourcedId,title,schoolSourcedId\n")
        archive.writestr("enrollments.csv", "sourcedId,classSourcedId,userSourcedId,role\n")
    data = buffer.getvalue()
    assert len(data) > 2 * BUNDLE_READ_BYTES
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/n/bundle.zip", Body=data)
    layout = json.loads(json.dumps(check_bundle(data)))

    # When orgs.csv is read from the object where it lies
    asked = RangesAsked(s3)
    with open_bundle_object(asked, BUCKET, "uploads/d-1/n/bundle.zip") as source:
        with file_entries(source, layout, "orgs", None, FilePosition()) as entries:
            read = list(entries)

    # Then it reads as from the zip's bytes, in ranged requests only, far fewer bytes than the object
    with file_entries(data, layout, "orgs", None, FilePosition()) as entries:
        assert read == list(entries) and read[0]["o"]["sourcedId"] == "sch-1"
    assert asked.ranges and None not in asked.ranges
    spans = [range_ for range_ in asked.ranges if range_ is not None]
    fetched = sum(int(r.split("-")[1]) - int(r.split("=")[1].split("-")[0]) + 1 for r in spans)
    assert fetched < len(data) // 2
    # and the file object seeks and reads as a file does
    with open_bundle_object(s3, BUCKET, "uploads/d-1/n/bundle.zip") as source:
        assert source.seek(0, io.SEEK_END) == len(data)
        source.seek(len(data) - 10)
        assert source.read() == data[-10:] and source.read(5) == b""
        source.seek(BUNDLE_READ_BYTES - 3)
        assert source.read(6) == data[BUNDLE_READ_BYTES - 3 : BUNDLE_READ_BYTES + 3]
        source.seek(0)
        assert source.read() == data
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/e/bundle.zip", Body=b"")
    with open_bundle_object(s3, BUCKET, "uploads/d-1/e/bundle.zip") as empty:
        assert empty.read() == b""


def test_a_zip_uploaded_again_while_it_is_read_is_read_to_the_end_at_the_version_first_read(s3: Any) -> None:
    from botocore.exceptions import ClientError

    # Given a zip upload of more than one read range in the bucket, which keeps versions (as the template's)
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    key = "uploads/d-1/n/bundle.zip"
    first, second = os.urandom(BUNDLE_READ_BYTES + 1000), os.urandom(BUNDLE_READ_BYTES + 2000)
    s3.put_object(Bucket=BUCKET, Key=key, Body=first)

    # When a read has begun and the district uploads another bundle under the same name
    versions: dict[str, str] = {}
    with open_bundle_object(s3, BUCKET, key, versions) as source:
        start = source.read(10)
        s3.put_object(Bucket=BUCKET, Key=key, Body=second)
        rest = source.read()

    # Then the read went on in the bundle it began with, and noted its version
    assert start + rest == first
    assert list(versions) == [key]
    # and a later reader given that version (a Fetch slice, after the plan) reads the same bundle, as does a
    # whole download (the assembly of a bundle the plan refused)
    with open_bundle_object(s3, BUCKET, key, dict(versions)) as source:
        assert source.read() == first
    assert download_bundle(s3, BUCKET, key, Path("unused"), versions=dict(versions)) == first
    # while a reader given no version reads the newest
    with open_bundle_object(s3, BUCKET, key) as source:
        assert source.read() == second

    # And in a bucket without versions, a zip replaced while it is read is refused, never read half and half
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Suspended"})
    unversioned = "uploads/d-1/u/bundle.zip"
    s3.put_object(Bucket=BUCKET, Key=unversioned, Body=first)
    with open_bundle_object(s3, BUCKET, unversioned, {}) as source:
        assert source.read(10) == first[:10]
        s3.put_object(Bucket=BUCKET, Key=unversioned, Body=second)
        with pytest.raises(ClientError, match="PreconditionFailed"):
            source.read()


def test_a_folder_upload_is_read_again_as_its_files_were_first_read(s3: Any, tmp_path: Path) -> None:
    # Given a folder upload in a bucket that keeps versions, read once (a Fetch plan) noting its files' versions
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
    for name in ("manifest.csv", "users.csv", "orgs.csv"):
        s3.put_object(Bucket=BUCKET, Key=f"uploads/d-1/b/{name}", Body=f"{name} of night 1".encode())
    versions: dict[str, str] = {}
    plan = tmp_path / "plan"
    plan.mkdir()
    download_bundle(s3, BUCKET, "uploads/d-1/b/manifest.csv", plan, versions=versions)
    assert sorted(versions) == [f"uploads/d-1/b/{name}" for name in ("manifest.csv", "orgs.csv", "users.csv")]

    # When the next night's files land in the same folder (one replaced, one new) before a slice reads users.csv
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/b/users.csv", Body=b"users.csv of night 2")
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/b/classes.csv", Body=b"classes.csv of night 2")
    one = tmp_path / "slice"
    one.mkdir()
    download_bundle(s3, BUCKET, "uploads/d-1/b/manifest.csv", one, only={"users.csv"}, versions=dict(versions))
    again = tmp_path / "whole"
    again.mkdir()
    download_bundle(s3, BUCKET, "uploads/d-1/b/manifest.csv", again, versions=dict(versions))

    # Then the slice read the users.csv the plan read, and a whole read the plan's files only
    assert (one / "users.csv").read_bytes() == b"users.csv of night 1" and len(list(one.iterdir())) == 1
    assert sorted(p.name for p in again.iterdir()) == ["manifest.csv", "orgs.csv", "users.csv"]
    assert (again / "users.csv").read_bytes() == b"users.csv of night 1"


# -- is a folder upload complete? (rostersync.uploads) -------------------------------------------------

MANIFEST = (
    b"propertyName,value\nmanifest.version,1.0\noneroster.version,1.1\n"
    b"file.orgs,bulk\nfile.users,bulk\nfile.demographics,absent\n"
)


class ListingClock:
    """S3 whose LastModified values are set by the test (moto stamps objects with the wall clock)."""

    def __init__(self, s3: Any) -> None:
        self._s3 = s3
        self.stamps: dict[str, str] = {}

    def put(self, key: str, body: bytes, stamp: str) -> None:
        self._s3.put_object(Bucket=BUCKET, Key=key, Body=body)
        self.stamps[key] = stamp

    def get_paginator(self, name: str) -> Any:
        outer = self

        class Pages:
            def paginate(self, **kwargs: Any) -> Any:
                for page in outer._s3.get_paginator(name).paginate(**kwargs):
                    for obj in page.get("Contents", []):
                        obj["LastModified"] = outer.stamps[obj["Key"]]
                    yield page

        return Pages()

    def get_object(self, **kwargs: Any) -> Any:
        return self._s3.get_object(**kwargs)


@pytest.fixture
def state(dynamodb: Any, sync_state_table: str) -> Any:
    from rostersync.directory.repository import SyncStateRepository

    return SyncStateRepository(dynamodb, sync_state_table, "d-1")


def test_a_folder_is_complete_once_every_listed_file_of_this_upload_is_there(s3: Any, state: Any) -> None:
    from rostersync.uploads import check_upload

    clock = ListingClock(s3)
    folder = "uploads/d-1/nightly/"
    # Night 1, manifest first: waiting until orgs and users are both there (demographics is absent)
    clock.put(folder + "manifest.csv", MANIFEST, "2026-11-01T02:00:00")
    assert "lacks orgs.csv, users.csv" in check_upload(clock, BUCKET, folder + "manifest.csv", state).waiting
    clock.put(folder + "orgs.csv", b"o", "2026-11-01T02:00:05")
    assert "lacks users.csv" in check_upload(clock, BUCKET, folder + "orgs.csv", state).waiting
    clock.put(folder + "users.csv", b"u", "2026-11-01T02:00:09")
    first = check_upload(clock, BUCKET, folder + "users.csv", state)
    assert first.complete and first.bundle_key == folder + "manifest.csv"
    # The same bundle found complete again (a duplicate event) does not sync twice
    assert "already started" in check_upload(clock, BUCKET, folder + "users.csv", state).waiting

    # Night 2 into the same folder: the new manifest beside last night's files is not a complete bundle
    clock.put(folder + "manifest.csv", MANIFEST, "2026-11-02T02:00:00")
    waiting = check_upload(clock, BUCKET, folder + "manifest.csv", state).waiting
    assert "orgs.csv, users.csv" in waiting and "synced before" in waiting
    clock.put(folder + "orgs.csv", b"o2", "2026-11-02T02:00:04")
    assert "users.csv in" in check_upload(clock, BUCKET, folder + "orgs.csv", state).waiting
    clock.put(folder + "users.csv", b"u2", "2026-11-02T02:00:07")
    assert check_upload(clock, BUCKET, folder + "users.csv", state).complete


def test_a_zip_is_complete_when_it_lands_and_a_folder_without_manifest_waits(s3: Any, state: Any) -> None:
    from rostersync.uploads import check_upload

    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/z/bundle.zip", Body=b"PK")
    s3.put_object(Bucket=BUCKET, Key="uploads/d-1/f/users.csv", Body=b"u")

    assert check_upload(s3, BUCKET, "uploads/d-1/z/bundle.zip", state).bundle_key == "uploads/d-1/z/bundle.zip"
    assert "has no manifest.csv yet" in check_upload(s3, BUCKET, "uploads/d-1/f/users.csv", state).waiting
