"""The roles after the SAM transform, checked where the embedded stack cannot check them at run time.

docs/DEPLOY.md ("What the embedded stack checks and what it does not") lists those calls: the ones the
state machine makes without an API call locally (the Map's child executions), the EventBridge rules'
StartExecution (the local router starts executions itself), and the ones the stack checks too but that
a wrong ASL/template pairing would break only on AWS. Intrinsics are resolved to symbolic ARNs named
after the logical ids; IAM's wildcards are matched as IAM does (``*`` and ``?``).
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rostersync_tools.local.iam import sam_roles
from rostersync_tools.local.template import Resolver, load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = load_template(ROOT / "template.yaml")
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]
STACK, REGION, ACCOUNT = "stk", "us-east-1", "123456789012"

_ARN_OF = {
    "AWS::Serverless::Function": lambda name: f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{name}",
    "AWS::DynamoDB::Table": lambda name: f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}",
    "AWS::S3::Bucket": lambda name: f"arn:aws:s3:::{name}",
    "AWS::Serverless::StateMachine": lambda name: f"arn:aws:states:{REGION}:{ACCOUNT}:stateMachine:{name}",
    "AWS::SQS::Queue": lambda name: f"arn:aws:sqs:{REGION}:{ACCOUNT}:{name}",
    "AWS::SNS::Topic": lambda name: f"arn:aws:sns:{REGION}:{ACCOUNT}:{name}",
}


def _resolver() -> Resolver:
    refs: dict[str, str] = {name: str(p.get("Default", "")) for name, p in TEMPLATE.get("Parameters", {}).items()}
    attributes: dict[tuple[str, str], str] = {}
    for logical, resource in RESOURCES.items():
        arn = _ARN_OF.get(resource["Type"])
        if arn is None:
            continue
        # a state machine is named by its template Name (`${AWS::StackName}-sync`, `-cleanup`)
        name = (
            resource["Properties"]["Name"]["Fn::Sub"].replace("${AWS::StackName}", STACK)
            if resource["Type"] == "AWS::Serverless::StateMachine"
            else logical
        )
        # Ref: a function's or table's or bucket's name; a state machine's ARN
        refs[logical] = arn(name) if resource["Type"] == "AWS::Serverless::StateMachine" else name
        attributes[(logical, "Arn")] = arn(name)
    pseudo = {"AWS::StackName": STACK, "AWS::Region": REGION, "AWS::AccountId": ACCOUNT, "AWS::Partition": "aws"}
    return Resolver(pseudo, refs, attributes)


RESOLVER = _resolver()
ROLES, ROLE_OF = sam_roles(TEMPLATE)


def statements(role: str) -> Iterator[dict[str, Any]]:
    for policy in ROLES[role].get("Policies", []):
        document = RESOLVER.resolve(policy["PolicyDocument"])
        yield from document["Statement"]


def _listed(value: Any) -> list[str]:
    return value if isinstance(value, list) else [value]


def allows(role: str, action: str, resource: str) -> bool:
    """Whether one of ``role``'s Allow statements grants ``action`` on ``resource`` (no Deny is used)."""
    return any(
        statement["Effect"] == "Allow"
        and any(fnmatch.fnmatchcase(action, a) for a in _listed(statement["Action"]))
        and any(fnmatch.fnmatchcase(resource, r) for r in _listed(statement["Resource"]))
        for statement in statements(role)
    )


STATE_MACHINE = next(name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::StateMachine")
STATE_MACHINE_ROLE = ROLE_OF[STATE_MACHINE]
STATE_MACHINE_ARN = RESOLVER.refs[STATE_MACHINE]
SUBSTITUTIONS = RESOLVER.resolve(RESOURCES[STATE_MACHINE]["Properties"]["DefinitionSubstitutions"])
FUNCTIONS = [name for name, r in RESOURCES.items() if r["Type"] == "AWS::Serverless::Function"]


def _asl() -> dict[str, Any]:
    text = (ROOT / RESOURCES[STATE_MACHINE]["Properties"]["DefinitionUri"]).read_text(encoding="utf-8")
    for key, value in SUBSTITUTIONS.items():
        text = text.replace("${" + key + "}", str(value))
    return json.loads(text)


def _states(machine: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for state in machine.get("States", {}).values():
        yield state
        for inner in ("ItemProcessor", "Iterator"):
            if inner in state:
                yield from _states(state[inner])
        for branch in state.get("Branches", []):
            yield from _states(branch)


ASL_STATES = list(_states(_asl()))


def _task_functions() -> list[str]:
    arns = []
    for state in ASL_STATES:
        if state.get("Type") != "Task":
            continue
        resource = state["Resource"]
        if resource.startswith("arn:aws:states:::lambda:invoke"):
            arns.append(state["Parameters"]["FunctionName"])
        elif resource.startswith("arn:aws:lambda:"):
            arns.append(resource)
    return arns


@pytest.mark.parametrize("function_arn", sorted(set(_task_functions())))
def test_the_state_machine_role_may_invoke_every_function_its_tasks_name(function_arn: str) -> None:
    assert allows(STATE_MACHINE_ROLE, "lambda:InvokeFunction", function_arn)


def test_the_state_machine_role_invokes_nothing_its_tasks_do_not_name() -> None:
    named = set(_task_functions())
    arns = {RESOLVER.attributes[(f, "Arn")] for f in FUNCTIONS}
    assert {arn for arn in arns if allows(STATE_MACHINE_ROLE, "lambda:InvokeFunction", arn)} == named


def test_the_state_machine_role_may_read_what_its_item_readers_read() -> None:
    readers = [s["ItemReader"] for s in ASL_STATES if "ItemReader" in s]
    assert readers, "the ASL has no ItemReader: this test checks nothing"
    for reader in readers:
        bucket = reader["Parameters"]["Bucket"]
        # the plan manifest lives under runs/<district>/<run>/ (rostersync.storage.RunStore)
        assert allows(STATE_MACHINE_ROLE, "s3:GetObject", f"arn:aws:s3:::{bucket}/runs/d-1/r-1/plan/manifest.json")


def test_the_state_machine_role_may_start_its_own_map_child_executions() -> None:
    if not any(s.get("ItemProcessor", {}).get("ProcessorConfig", {}).get("Mode") == "DISTRIBUTED" for s in ASL_STATES):
        pytest.skip("no distributed Map")
    assert allows(STATE_MACHINE_ROLE, "states:StartExecution", STATE_MACHINE_ARN)
    execution = STATE_MACHINE_ARN.replace(":stateMachine:", ":execution:") + "/child-1"
    assert allows(STATE_MACHINE_ROLE, "states:DescribeExecution", execution)
    assert allows(STATE_MACHINE_ROLE, "states:StopExecution", execution)


def test_the_schedule_tick_may_start_the_state_machine_it_is_given() -> None:
    tick = RESOLVER.resolve(RESOURCES["ScheduleTickFunction"]["Properties"])
    assert tick["Environment"]["Variables"]["SYNC_STATE_MACHINE_ARN"] == STATE_MACHINE_ARN
    assert allows(ROLE_OF["ScheduleTickFunction"], "states:StartExecution", STATE_MACHINE_ARN)


def test_every_event_rule_may_start_the_state_machine() -> None:
    rules = [name for name in ROLES if name.startswith(STATE_MACHINE) and name != STATE_MACHINE_ROLE]
    events = RESOURCES[STATE_MACHINE]["Properties"].get("Events", {})
    assert len(rules) == len(events)
    for role in rules:
        assert allows(role, "states:StartExecution", STATE_MACHINE_ARN)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_no_function_deletes_from_the_directory_or_the_bucket(function: str) -> None:
    role = ROLE_OF[function]
    directory = RESOLVER.attributes[("DirectoryTable", "Arn")]
    bucket = RESOLVER.attributes[("SyncBucket", "Arn")]
    assert not allows(role, "dynamodb:DeleteItem", directory), "archive, never delete (DESIGN §5)"
    for action in ("s3:DeleteObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"):
        assert not allows(role, action, f"{bucket}/runs/x") and not allows(role, action, bucket)


def test_only_finish_run_deletes_from_the_sync_state_table() -> None:
    table = RESOLVER.attributes[("SyncStateTable", "Arn")]
    assert [f for f in FUNCTIONS if allows(ROLE_OF[f], "dynamodb:DeleteItem", table)] == ["FinishRunFunction"]


def test_only_fetch_reads_secrets_and_only_this_stacks() -> None:
    def secret(stack: str) -> str:
        return f"arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:rostersync/{stack}/d-1/clever-AbCdEf"

    assert [f for f in FUNCTIONS if allows(ROLE_OF[f], "secretsmanager:GetSecretValue", secret(STACK))] == [
        "FetchRosterFunction"
    ]
    assert not allows(ROLE_OF["FetchRosterFunction"], "secretsmanager:GetSecretValue", secret("other"))


@pytest.mark.parametrize("role", sorted(ROLES))
def test_no_wildcard_actions(role: str) -> None:
    for statement in statements(role):
        for action in _listed(statement["Action"]):
            assert "*" not in action, f"{role}: {action}"


def test_the_report_writer_may_read_what_its_presigned_links_serve() -> None:
    # A presigned link is only as good as its signer's permission; the stack serves links unchecked.
    bucket = RESOLVER.attributes[("SyncBucket", "Arn")]
    assert allows(ROLE_OF["WriteReportFunction"], "s3:GetObject", f"{bucket}/runs/d-1/r-1/report/report.html")


# -- a district's lifecycle (issue 12) -------------------------------------------------------------------

BUS_ARN = f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/{STACK}-sync-events"


def test_only_close_run_announces_and_only_on_the_stacks_bus():
    announcers = [
        f for f in FUNCTIONS if any("events:PutEvents" in _listed(s["Action"]) for s in statements(ROLE_OF[f]))
    ]
    assert announcers == ["CloseRunFunction"]
    assert allows(ROLE_OF["CloseRunFunction"], "events:PutEvents", BUS_ARN)
    assert not allows(
        ROLE_OF["CloseRunFunction"], "events:PutEvents", f"arn:aws:events:{REGION}:{ACCOUNT}:event-bus/default"
    )
    # it signs the report link of the event: the link works only if it may read the report
    assert allows(ROLE_OF["CloseRunFunction"], "s3:GetObject", "arn:aws:s3:::SyncBucket/runs/d/r/report/report.html")


def test_only_notify_admins_sends_email_and_only_from_the_stacks_sender():
    sender = TEMPLATE["Parameters"]["NotificationSender"]["Default"]
    senders = [f for f in FUNCTIONS if any("ses:SendEmail" in _listed(s["Action"]) for s in statements(ROLE_OF[f]))]
    assert senders == ["NotifyAdminsFunction"]
    assert allows(ROLE_OF["NotifyAdminsFunction"], "ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/{sender}")
    assert not allows(
        ROLE_OF["NotifyAdminsFunction"], "ses:SendEmail", f"arn:aws:ses:{REGION}:{ACCOUNT}:identity/x@y.org"
    )


def test_the_lifecycle_rules_listen_where_their_events_are():
    close = RESOURCES["CloseRunFunction"]["Properties"]["Events"]["ExecutionEnded"]["Properties"]["Pattern"]
    assert set(close["detail"]["status"]) == {"SUCCEEDED", "FAILED", "TIMED_OUT", "ABORTED"}
    notify = RESOURCES["NotifyAdminsFunction"]["Properties"]["Events"]["RunEnded"]["Properties"]
    assert notify["EventBusName"] == {"Ref": "SyncEventBus"}
    assert set(notify["Pattern"]["detail-type"]) == {
        "Sync Completed",
        "Sync Completed With Errors",
        "Sync Needs Review",
        "Sync Failed",
    }
    product = RESOURCES["DistrictLifecycleFunction"]["Properties"]["Events"]["ProductLifecycle"]["Properties"]
    assert "EventBusName" not in product  # the product's events arrive on the default bus
    assert set(product["Pattern"]["detail-type"]) == {"Sync Disabled", "District Plan Changed"}


def test_no_role_deletes_what_undo_and_disable_need():
    for function in (
        "PlanReversalFunction",
        "DistrictLifecycleFunction",
        "NotifyAdminsFunction",
        "UpsertChunkFunction",
    ):
        for statement in statements(ROLE_OF[function]):
            assert not any("Delete" in a for a in _listed(statement["Action"])), function


def test_a_match_partition_queries_the_match_bucket_index_and_no_other_and_writes_nothing():
    role = ROLE_OF["MatchPartitionFunction"]
    table = RESOLVER.attributes[("DirectoryTable", "Arn")]

    assert allows(role, "dynamodb:Query", f"{table}/index/ByMatchBucket")
    for other in ("ByProviderId", "ByParent"):
        assert not allows(role, "dynamodb:Query", f"{table}/index/{other}"), other
    # the table itself: a district whose older enrollments and links may lack their bucket is read there
    assert allows(role, "dynamodb:Query", table)
    for write in ("PutItem", "UpdateItem", "BatchWriteItem", "DeleteItem"):
        assert not allows(role, f"dynamodb:{write}", table), write
        assert not allows(role, f"dynamodb:{write}", f"{table}/index/ByMatchBucket"), write


def test_the_report_writer_may_record_that_a_districts_pairs_are_indexed():
    # Write report puts the PAIR_INDEX sync-state item (steps.match) once the partitions found every pair bucketed
    assert allows(ROLE_OF["WriteReportFunction"], "dynamodb:PutItem", RESOLVER.attributes[("SyncStateTable", "Arn")])


# -- the clean-up state machine: its own role, least privilege ---------------------------------------------

CLEANUP = "CleanupStateMachine"
CLEANUP_ROLE = ROLE_OF[CLEANUP]
CLEANUP_ARN = RESOLVER.refs[CLEANUP]


def _cleanup_states() -> list[dict[str, Any]]:
    text = (ROOT / RESOURCES[CLEANUP]["Properties"]["DefinitionUri"]).read_text(encoding="utf-8")
    for key, value in RESOLVER.resolve(RESOURCES[CLEANUP]["Properties"]["DefinitionSubstitutions"]).items():
        text = text.replace("${" + key + "}", str(value))
    return list(_states(json.loads(text)))


def test_the_cleanup_role_invokes_exactly_the_functions_its_tasks_name_and_none_of_the_syncs() -> None:
    named = {s["Resource"] for s in _cleanup_states() if s.get("Type") == "Task"}
    arns = {RESOLVER.attributes[(f, "Arn")] for f in FUNCTIONS}

    assert named == {
        RESOLVER.attributes[("ArchiveSchoolStudentsFunction", "Arn")],
        RESOLVER.attributes[("WriteCleanupReportFunction", "Arn")],
    }
    assert {arn for arn in arns if allows(CLEANUP_ROLE, "lambda:InvokeFunction", arn)} == named
    assert not named & set(_task_functions())


def test_the_cleanup_role_reads_its_plans_and_starts_its_own_children_only() -> None:
    bucket = RESOLVER.refs["SyncBucket"]
    assert allows(CLEANUP_ROLE, "s3:GetObject", f"arn:aws:s3:::{bucket}/cleanups/d-1/cln-1/plan/manifest.json")
    assert not allows(CLEANUP_ROLE, "s3:GetObject", f"arn:aws:s3:::{bucket}/runs/d-1/r-1/plan/manifest.json")
    assert allows(CLEANUP_ROLE, "states:StartExecution", CLEANUP_ARN)
    assert not allows(CLEANUP_ROLE, "states:StartExecution", STATE_MACHINE_ARN)
    assert not allows(STATE_MACHINE_ROLE, "states:StartExecution", CLEANUP_ARN)


def test_the_cleanup_functions_touch_only_the_clean_ups_objects_and_never_delete() -> None:
    bucket = RESOLVER.refs["SyncBucket"]
    directory = RESOLVER.attributes[("DirectoryTable", "Arn")]
    for function in ("ArchiveSchoolStudentsFunction", "WriteCleanupReportFunction"):
        role = ROLE_OF[function]
        assert allows(role, "s3:PutObject", f"arn:aws:s3:::{bucket}/cleanups/d-1/cln-1/x.json")
        assert not allows(role, "s3:PutObject", f"arn:aws:s3:::{bucket}/runs/d-1/r-1/x.json")
        assert not allows(role, "dynamodb:DeleteItem", directory)
        assert not allows(role, "dynamodb:PutItem", directory)
    assert allows(ROLE_OF["ArchiveSchoolStudentsFunction"], "dynamodb:UpdateItem", directory)
    assert not allows(ROLE_OF["WriteCleanupReportFunction"], "dynamodb:UpdateItem", directory)
