"""An SFTP client uploads a OneRoster folder file by file, manifest.csv first (issue 8, part 5): every
file's arrival starts an execution, and exactly one sync runs, on the complete bundle."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.admin import connect_provider
from rostersync.config import runtime_config
from rostersync.directory.product import ProductDirectory, export_directory, import_product_directory
from rostersync.directory.repository import DirectoryRepository, SyncStateRepository
from rostersync.uploads import listed_files
from rostersync_tools.local.convert import clever_to_oneroster

pytestmark = pytest.mark.e2e


@pytest.fixture
def enabled_sftp_district(stack: Any, synthetic: Any, tmp_path: Path) -> dict[str, Any]:
    """An SFTP district whose sync is enabled (so an upload syncs for real), and its bundle folder."""
    config = runtime_config()
    dynamodb = aws.client("dynamodb")
    district_id = f"d-{uuid.uuid4().hex[:8]}"
    bundle = tmp_path / "bundle"
    clever_to_oneroster(synthetic.path, bundle)
    schools = json.loads((synthetic.path / "schools.json").read_text(encoding="utf-8"))["data"]
    product = ProductDirectory.model_validate(
        {
            "district": {"id": district_id, "name": "SFTP district", "plan": "premium"},
            "schools": [
                {"id": f"sch-{n}", "name": s["data"]["name"], "provider_ids": {"oneroster": s["data"]["id"]}}
                for n, s in enumerate(schools)
            ],
        }
    )
    directory = DirectoryRepository(dynamodb, config.directory_table, district_id)
    state = SyncStateRepository(dynamodb, config.sync_state_table, district_id)
    import_product_directory(product, directory, state)
    connect_provider(state, aws.client("secretsmanager"), "oneroster-csv")
    state.mark_enabled("enabled-by-test")
    return {"id": district_id, "bundle": bundle, "directory": directory, "state": state, "bucket": config.sync_bucket}


def test_a_folder_uploaded_manifest_first_syncs_once_on_the_complete_bundle(
    stack: Any, enabled_sftp_district: dict[str, Any], synthetic: Any
) -> None:
    district, s3 = enabled_sftp_district, aws.client("s3")
    folder = f"uploads/{district['id']}/night-1/"
    manifest = (district["bundle"] / "manifest.csv").read_text(encoding="utf-8")
    files = listed_files(manifest)
    assert len(files) >= 4 and all((district["bundle"] / name).is_file() for name in files)

    # When the client uploads manifest.csv first, then each file, as an SFTP client does (each arrival's
    # execution ends before the next file lands: the slow client, where a partial folder is visible longest)
    executions: dict[str, list[str]] = {}
    ended: dict[str, list[dict[str, Any]]] = {}
    for name in ["manifest.csv", *files]:
        s3.put_object(Bucket=district["bucket"], Key=folder + name, Body=(district["bundle"] / name).read_bytes())
        executions[name] = stack.publish_upload(folder + name)
        ended[name] = [stack.wait(arn) for arn in executions[name]]
        if name != files[-1]:
            assert district["state"].runs() == [], f"a sync started on a partial folder (after {name})"

    # Then every file's arrival started one execution, all succeeded...
    assert all(len(arns) == 1 for arns in executions.values()), executions
    assert all(e["status"] == "SUCCEEDED" for runs in ended.values() for e in runs)
    # ...and only the last file's found the bundle complete: one run, of the folder's manifest
    runs = district["state"].runs()
    assert len(runs) == 1, runs
    (run,) = runs
    (last,) = ended[files[-1]]
    assert run["run_id"] == last["executionArn"].rsplit(":", 1)[1]
    assert run["status"] == "succeeded"
    assert json.loads(last["output"])["run"]["bundle_key"] == folder + "manifest.csv"
    for name in ["manifest.csv", *files[:-1]]:
        (early,) = ended[name]
        assert json.loads(early["output"])["run"]["upload_waiting"] is True
        assert "waiting for the rest of the upload" in json.loads(early["output"])["run"]["waiting_reason"]
    # The sync read the complete bundle: every student is in the directory, and no lock is left
    people = export_directory(district["directory"], district["state"])["people"]
    assert len([p for p in people if "student" in p["roles"]]) == len(synthetic.users("student"))
    assert district["state"].lock_holder() is None

    # And the same bundle announced again (EventBridge delivers at least once) starts no second sync
    (again,) = stack.router.route(
        {
            "source": "aws.s3",
            "detail-type": "Object Created",
            "detail": {"bucket": {"name": district["bucket"]}, "object": {"key": folder + files[-1]}},
        },
        "redelivered",
    )
    assert json.loads(stack.wait(again)["output"])["run"]["upload_waiting"] is True
    assert len(district["state"].runs()) == 1
