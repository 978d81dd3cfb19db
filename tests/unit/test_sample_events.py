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


def test_step_inputs_parse_into_their_contracts():
    assert SyncRequest.model_validate(load("sync_request.json")).trigger == "manual"
    assert SyncRequest.model_validate(load("self_check_request.json")).dry_run
    assert StartRequest.model_validate(load("start_run.json")).input.district_id == "dist-demo"
    assert UpsertChunkRequest.model_validate(load("upsert_chunk.json")).chunk_key.startswith("runs/dist-demo/")
    state = SyncState.model_validate(load("sync_state_after_fetch.json"))
    assert state.run_ref().provider == "clever" and state.fetch and state.fetch.complete
