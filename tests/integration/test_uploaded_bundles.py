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
