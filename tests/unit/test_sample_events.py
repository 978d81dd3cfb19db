"""The sample events in events/ are what the steps accept: a broken contract fails here first."""

import json
from pathlib import Path

from rostersync.contracts import StartRequest, SyncRequest, SyncState, UpsertChunkRequest
from rostersync_tools.local.stack import matches_pattern, transform_input
from rostersync_tools.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
EVENTS = ROOT / "events"


def load(name):
    return json.loads((EVENTS / name).read_text())


def test_the_sync_enabled_event_becomes_a_sync_request_through_the_templates_rule():
    # Given the template's EventBridge rule and a "Sync Enabled" event
    machine = load_template(ROOT / "template.yaml")["Resources"]["SyncStateMachine"]["Properties"]
    rule = machine["Events"]["SyncEnabled"]["Properties"]
    pattern = {**rule["Pattern"], "source": ["product.directory"]}
    event = load("sync_enabled.json")

    # When the rule is applied
    assert matches_pattern(pattern, event)
    request = SyncRequest.model_validate_json(transform_input(rule, event))

    # Then the execution input names the district and says why it started
    assert request.district_id == "dist-demo"
    assert request.trigger == "enabled"
    assert not request.dry_run


def test_another_detail_type_does_not_match():
    machine = load_template(ROOT / "template.yaml")["Resources"]["SyncStateMachine"]["Properties"]
    pattern = {**machine["Events"]["SyncEnabled"]["Properties"]["Pattern"], "source": ["product.directory"]}
    event = {**load("sync_enabled.json"), "detail-type": "Sync Disabled"}
    assert not matches_pattern(pattern, event)


def _upload_rule_matches(key: str) -> bool:
    machine = load_template(ROOT / "template.yaml")["Resources"]["SyncStateMachine"]["Properties"]
    pattern = machine["Events"]["BundleUploaded"]["Properties"]["Pattern"]
    bucket = {"name": ["rostersync-syncbucket"]}
    pattern = {**pattern, "detail": {**pattern["detail"], "bucket": bucket}}
    event = {
        "source": "aws.s3",
        "detail-type": "Object Created",
        "detail": {"bucket": {"name": "rostersync-syncbucket"}, "object": {"key": key}},
    }
    return matches_pattern(pattern, event)


def test_the_upload_rule_takes_bundles_named_in_any_usual_case_and_nothing_outside_uploads():
    for key in ("uploads/d-1/n1/bundle.zip", "uploads/d-1/n1/Bundle.ZIP", "uploads/d-1/n1/Roster.Zip"):
        assert _upload_rule_matches(key), key
    for key in ("uploads/d-1/n1/manifest.csv", "uploads/d-1/n1/USERS.CSV"):
        assert _upload_rule_matches(key), key
    for key in ("runs/d-1/r/report.csv", "uploads/d-1/n1/readme.txt"):
        assert not _upload_rule_matches(key), key


def test_step_inputs_parse_into_their_contracts():
    assert SyncRequest.model_validate(load("sync_request.json")).trigger == "manual"
    assert SyncRequest.model_validate(load("self_check_request.json")).dry_run
    assert StartRequest.model_validate(load("start_run.json")).input.district_id == "dist-demo"
    assert UpsertChunkRequest.model_validate(load("upsert_chunk.json")).chunk_key.startswith("runs/dist-demo/")
    state = SyncState.model_validate(load("sync_state_after_fetch.json"))
    assert state.run_ref().provider == "clever" and state.fetch and state.fetch.complete


def test_the_fetch_slice_sample_is_what_the_state_machines_map_item_sends():
    from rostersync.contracts import FetchRequest

    # Given the ASL's item of "Read the roster's lists" and the sample slice request
    asl = json.loads((ROOT / "statemachine" / "sync.asl.json").read_text())
    selector = asl["States"]["Read the roster's lists"]["ItemSelector"]
    sample = load("fetch_slice.json")

    # Then the sample has exactly the item's fields, and Fetch reads it as one slice of one list
    assert {key.removesuffix(".$") for key in selector} == set(sample)
    request = FetchRequest.model_validate(sample)
    assert (request.phase, request.resource, request.district_id) == ("slice", "users", "dist-demo")
    for state in ("Plan the fetch", "Fetch roster"):
        parameters = asl["States"][state]["Parameters"]
        assert parameters["run.$"] == "$.run" and parameters["phase"] in ("plan", "assemble")
