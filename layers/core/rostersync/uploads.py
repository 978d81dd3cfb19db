"""Is an uploaded bundle complete? An SFTP client uploads a folder file by file, often ``manifest.csv``
first, and every file's arrival starts an execution: only the one that finds the bundle complete syncs.

- A ``.zip`` is complete when it lands (S3 creates an object whole, when its upload ends).
- A folder is complete when its ``manifest.csv`` is there and every file the manifest lists as ``bulk`` or
  ``delta`` is there too, each written after the last bundle this folder synced (a folder reused night
  after night still holds last night's files while tonight's arrive: those do not count).
- The execution that finds it complete claims it (a conditional write of the folder's newest
  ``LastModified`` in the sync-state table); any other execution that finds the same bundle complete
  (the last two files landing together, or EventBridge delivering an event twice) loses the claim and
  ends like a waiting one. So a bundle starts one sync, and a half-uploaded folder none.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from rostersync.directory.repository import SyncStateRepository

MANIFEST = "manifest.csv"
_LISTED_FILE_VALUES = ("bulk", "delta")


@dataclass(frozen=True)
class UploadCheck:
    """What an upload's arrival means: sync ``bundle_key`` now, or wait (``waiting`` says why)."""

    bundle_key: str | None
    waiting: str = ""

    @property
    def complete(self) -> bool:
        return not self.waiting


def listed_files(manifest_text: str) -> list[str]:
    """The files a OneRoster ``manifest.csv`` says the bundle holds (``file.X`` = bulk or delta → ``X.csv``)."""
    rows = [row for row in csv.reader(io.StringIO(manifest_text)) if row and row[0].strip()]
    files = []
    for row in rows[1:]:
        name, value = row[0].strip(), (row[1] if len(row) > 1 else "").strip().lower()
        if name.lower().startswith("file.") and value in _LISTED_FILE_VALUES:
            files.append(f"{name[len('file.') :]}.csv")
    return files


def check_upload(s3: Any, bucket: str, key: str, state: SyncStateRepository) -> UploadCheck:
    """Decide whether the upload ``key`` belongs to is complete, and claim it if so (see the module doc)."""
    if key.lower().endswith(".zip"):
        return UploadCheck(bundle_key=key)
    folder = key.rsplit("/", 1)[0] + "/"
    objects = {
        obj["Key"][len(folder) :].lower(): obj
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=folder, Delimiter="/")
        for obj in page.get("Contents", [])
    }
    manifest = objects.get(MANIFEST)
    if manifest is None:
        return UploadCheck(None, waiting=f"waiting for the rest of the upload: {folder} has no {MANIFEST} yet")
    text = s3.get_object(Bucket=bucket, Key=manifest["Key"])["Body"].read().decode("utf-8-sig", errors="replace")
    bundle = [manifest] + [objects[name.lower()] for name in listed_files(text) if name.lower() in objects]
    missing = [name for name in listed_files(text) if name.lower() not in objects]
    if missing:
        return UploadCheck(
            None, waiting=f"waiting for the rest of the upload: {folder} lacks {', '.join(sorted(missing))}"
        )
    claimed = state.get_item(_claim_sk(folder)) or {}
    previous = str(claimed.get("newest", ""))
    newest = max(_stamp(obj) for obj in bundle)
    if newest == previous:
        return UploadCheck(None, waiting=f"this upload of {folder} already started its sync")
    stale = sorted(obj["Key"][len(folder) :] for obj in bundle if previous and _stamp(obj) <= previous)
    if stale:
        return UploadCheck(
            None,
            waiting=f"waiting for the rest of the upload: {', '.join(stale)} in {folder} are from the bundle "
            f"synced before (written by {previous})",
        )
    if not _claim(state, folder, newest):
        return UploadCheck(None, waiting=f"this upload of {folder} already started its sync")
    return UploadCheck(bundle_key=manifest["Key"])


def _stamp(obj: dict[str, Any]) -> str:
    modified = obj["LastModified"]
    return modified.isoformat() if isinstance(modified, datetime) else str(modified)


def _claim_sk(folder: str) -> str:
    return f"UPLOAD#{folder}"


def _claim(state: SyncStateRepository, folder: str, newest: str) -> bool:
    """Record that the bundle written up to ``newest`` is being synced; False if another execution did."""
    return state.put_item_if(
        _claim_sk(folder),
        {"folder": folder, "newest": newest},
        condition="attribute_not_exists(pk) OR newest < :newest",
        values={":newest": newest},
    )


__all__ = ["UploadCheck", "check_upload", "listed_files"]
