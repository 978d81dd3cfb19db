"""An SFTP client uploads a OneRoster folder file by file, manifest.csv first (issue 8, part 5): every
file's arrival starts an execution, and exactly one sync runs, on the complete bundle."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rostersync import aws
from rostersync.directory.product import export_directory
from rostersync.uploads import listed_files

pytestmark = pytest.mark.e2e


@pytest.fixture
def enabled_sftp_district(sftp_district: Any) -> Any:
    """An SFTP district whose sync is enabled (so an upload syncs for real), and its bundle folder."""
    sftp_district.state.mark_enabled("enabled-by-test")
    return sftp_district


def test_a_folder_uploaded_manifest_first_syncs_once_on_the_complete_bundle(
    stack: Any, enabled_sftp_district: Any, synthetic: Any
) -> None:
    district, s3 = enabled_sftp_district, aws.client("s3")
    folder = f"uploads/{district.id}/night-1/"
    manifest = (district.bundle / "manifest.csv").read_text(encoding="utf-8")
    files = listed_files(manifest)
    assert len(files) >= 4 and all((district.bundle / name).is_file() for name in files)

    # When the client uploads manifest.csv first, then each file, as an SFTP client does (each arrival's
    # execution ends before the next file lands: the slow client, where a partial folder is visible longest)
    executions: dict[str, list[str]] = {}
    ended: dict[str, list[dict[str, Any]]] = {}
    for name in ["manifest.csv", *files]:
        s3.put_object(Bucket=district.bucket, Key=folder + name, Body=(district.bundle / name).read_bytes())
        executions[name] = stack.publish_upload(folder + name)
        ended[name] = [stack.wait(arn) for arn in executions[name]]
        if name != files[-1]:
            assert district.state.runs() == [], f"a sync started on a partial folder (after {name})"

    # Then every file's arrival started one execution, all succeeded...
    assert all(len(arns) == 1 for arns in executions.values()), executions
    assert all(e["status"] == "SUCCEEDED" for runs in ended.values() for e in runs)
    # ...and only the last file's found the bundle complete: one run, of the folder's manifest
    runs = district.state.runs()
    assert len(runs) == 1, runs
    (run,) = runs
    (last,) = ended[files[-1]]
    assert run["run_id"] == last["executionArn"].rsplit(":", 1)[1]
    assert run["status"] == "succeeded"
    assert json.loads(last["output"])["run"]["bundle_key"] == folder + "manifest.csv"
    # Its report names the folder it read, and when its newest file came
    report = json.loads(s3.get_object(Bucket=district.bucket, Key=run["report_key"])["Body"].read())
    last_file = s3.head_object(Bucket=district.bucket, Key=folder + files[-1])["LastModified"]
    assert report["upload"] == {"name": "night-1/", "uploaded_at": last_file.isoformat(timespec="seconds")}
    # and so does the district's overview, on the run's row
    index = s3.get_object(Bucket=district.bucket, Key=report["files"]["index.html"])["Body"].read().decode()
    assert "<td><code>night-1/</code><br>" in index and "Upload read" in index
    for name in ["manifest.csv", *files[:-1]]:
        (early,) = ended[name]
        assert json.loads(early["output"])["run"]["upload_waiting"] is True
        assert "waiting for the rest of the upload" in json.loads(early["output"])["run"]["waiting_reason"]
    # The sync read the complete bundle: every student is in the directory, and no lock is left
    people = export_directory(district.directory, district.state)["people"]
    assert len([p for p in people if "student" in p["roles"]]) == len(synthetic.users("student"))
    assert district.state.lock_holder() is None

    # And the same bundle announced again (EventBridge delivers at least once) starts no second sync
    (again,) = stack.router.route(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": district.bucket}, "object": {"key": folder + files[-1]}},
        },
        "redelivered",
    )
    assert json.loads(stack.wait(again)["output"])["run"]["upload_waiting"] is True
    assert len(district.state.runs()) == 1
