"""Finding and reading a district's uploaded OneRoster bundles (``storage``), as Start, Fetch and the
roster preview do: the newest upload of the district only, as a zip's bytes or a folder's CSV files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import boto3
import pytest

from rostersync.storage import download_bundle, latest_upload_key

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
