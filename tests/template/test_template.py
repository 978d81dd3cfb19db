"""Static checks of template.yaml, the ASL file and the handlers it names. Offline; nothing is imported
from ``functions/`` (handlers are read with ``ast``)."""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rostersync.config import RuntimeConfig
from rostersync.contracts import SyncRequest
from rostersync.directory import repository
from rostersync.directory.repository import DirectoryRecord
from rostersync.domain.records import Kind
from rostersync_tools.local.template import load_template

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_PATH = ROOT / "template.yaml"
TEMPLATE = load_template(TEMPLATE_PATH)
RESOURCES: dict[str, dict[str, Any]] = TEMPLATE["Resources"]


def resources_of(*types: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in RESOURCES.items() if r["Type"] in types}


STATE_MACHINES = resources_of("AWS::Serverless::StateMachine")  # the sync's and the clean-up's
STATE_MACHINE_NAME, STATE_MACHINE = "SyncStateMachine", STATE_MACHINES["SyncStateMachine"]
ASL_PATH = ROOT / STATE_MACHINE["Properties"]["DefinitionUri"]
FUNCTIONS = resources_of("AWS::Serverless::Function")
GLOBAL_FUNCTION = TEMPLATE.get("Globals", {}).get("Function", {})

# The Lambda service's transient errors every Lambda task must retry (STYLE.md).
LAMBDA_TRANSIENT_ERRORS = {
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
    "Lambda.TooManyRequestsException",
}

# What the SAM policy templates this project uses expand to (samtranslator policy_templates.json).
# An unknown template fails the IAM test until its actions are written down here.
SAM_POLICY_TEMPLATE_ACTIONS = {
    "DynamoDBCrudPolicy": [
        "dynamodb:GetItem",
        "dynamodb:DeleteItem",
        "dynamodb:PutItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:UpdateItem",
        "dynamodb:BatchWriteItem",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
        "dynamodb:ConditionCheckItem",
    ],
    "DynamoDBReadPolicy": [
        "dynamodb:GetItem",
        "dynamodb:Scan",
        "dynamodb:Query",
        "dynamodb:BatchGetItem",
        "dynamodb:DescribeTable",
    ],
    "S3ReadPolicy": [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:GetLifecycleConfiguration",
    ],
    "S3WritePolicy": ["s3:PutObject", "s3:PutObjectAcl", "s3:PutLifecycleConfiguration"],
    "S3CrudPolicy": [
        "s3:GetObject",
        "s3:ListBucket",
        "s3:GetBucketLocation",
        "s3:GetObjectVersion",
        "s3:PutObject",
        "s3:PutObjectAcl",
        "s3:GetLifecycleConfiguration",
        "s3:PutLifecycleConfiguration",
        "s3:DeleteObject",
    ],
    "LambdaInvokePolicy": ["lambda:InvokeFunction"],
}


def load_asl(machine: dict[str, Any] | None = None) -> dict[str, Any]:
    path = ROOT / (machine or STATE_MACHINE)["Properties"]["DefinitionUri"]
    return json.loads(path.read_text(encoding="utf-8"))


# -- cfn-lint -----------------------------------------------------------------------------------------


def test_cfn_lint_passes():
    # cfn-lint 1.x has no ``python -m cfnlint`` entry point; its API runs offline.
    from cfnlint.api import lint_file

    matches = lint_file(TEMPLATE_PATH)

    assert [f"{m.rule.id} {m.linenumber}: {m.message}" for m in matches] == []


def sam_cli() -> str:
    """The SAM CLI of ``make install`` (its own virtualenv, .venv-sam), else one on the PATH."""
    installed = ROOT / ".venv-sam" / "bin" / "sam"
    found = str(installed) if installed.is_file() else shutil.which("sam")
    assert found, "no SAM CLI: run `make install`"
    return found


def test_sam_validate_lint_passes():
    # Offline and without an AWS account: dummy credentials, no telemetry.
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") or k == "AWS_CA_BUNDLE"}
    env.update({"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "SAM_CLI_TELEMETRY": "0"})
    done = subprocess.run(
        [sam_cli(), "validate", "--lint", "--template", str(TEMPLATE_PATH), "--region", "us-east-1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "is a valid SAM Template" in done.stdout


# -- the state machine --------------------------------------------------------------------------------


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_the_asl_is_json_and_every_placeholder_has_a_substitution(machine):
    text = (ROOT / STATE_MACHINES[machine]["Properties"]["DefinitionUri"]).read_text(encoding="utf-8")
    json.loads(text)
    placeholders = set(re.findall(r"\$\{([^}]+)\}", text))
    substitutions = set(STATE_MACHINES[machine]["Properties"].get("DefinitionSubstitutions", {}))

    assert placeholders, "the ASL names no resource through a placeholder"
    assert placeholders - substitutions == set(), "placeholders with no DefinitionSubstitutions entry"
    assert substitutions - placeholders == set(), "DefinitionSubstitutions entries the ASL never uses"


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_every_substitution_names_a_resource_of_the_template(machine):
    for name, value in STATE_MACHINES[machine]["Properties"]["DefinitionSubstitutions"].items():
        logical = value["Fn::GetAtt"][0] if "Fn::GetAtt" in value else value.get("Ref")
        assert logical in RESOURCES, f"{name} refers to {logical!r}, which the template does not define"


def state_blocks(block: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any], bool]]:
    """Every States block of the machine (top level, Map processors, Parallel branches).

    Yields (path, block, top_level); a Map's processor runs inside the Map's own Catch.
    """
    yield path or "<top>", block, not path
    for name, state in block["States"].items():
        if state["Type"] == "Map":
            processor = state.get("ItemProcessor") or state.get("Iterator")
            assert processor, f"Map {name!r} has no ItemProcessor"
            yield from state_blocks(processor, f"{path}/{name}")
        for i, branch in enumerate(state.get("Branches", [])):
            yield from state_blocks(branch, f"{path}/{name}[{i}]")


def transitions(state: dict[str, Any]) -> list[str]:
    targets = [state[key] for key in ("Next", "Default") if key in state]
    targets += [rule["Next"] for rule in state.get("Choices", [])]
    targets += [catcher["Next"] for catcher in state.get("Catch", [])]
    return targets


BLOCKS = [
    (f"{logical}:{path}", block, top)
    for logical, machine in sorted(STATE_MACHINES.items())
    for path, block, top in state_blocks(load_asl(machine))
]


@pytest.mark.parametrize(("path", "block"), [(p, b) for p, b, _ in BLOCKS], ids=[p for p, _, _ in BLOCKS])
def test_every_transition_targets_a_state_of_its_own_block(path, block):
    states = block["States"]

    assert block["StartAt"] in states
    for name, state in states.items():
        missing = [target for target in transitions(state) if target not in states]
        assert missing == [], f"{path}/{name} goes to states not in its block: {missing}"
        if state["Type"] not in ("Choice", "Succeed", "Fail"):
            assert state.get("End") is True or "Next" in state, f"{path}/{name} neither ends nor goes on"


@pytest.mark.parametrize(("path", "block"), [(p, b) for p, b, _ in BLOCKS], ids=[p for p, _, _ in BLOCKS])
def test_every_state_is_reachable_from_start(path, block):
    states = block["States"]
    reached, frontier = set(), [block["StartAt"]]
    while frontier:
        name = frontier.pop()
        if name in reached:
            continue
        reached.add(name)
        frontier.extend(transitions(states[name]))

    assert set(states) - reached == set()


@pytest.mark.parametrize(("path", "block", "top_level"), BLOCKS, ids=[p for p, _, _ in BLOCKS])
def test_every_task_retries_and_catches(path, block, top_level):
    for name, state in block["States"].items():
        if state["Type"] != "Task":
            continue
        assert state.get("Retry"), f"{path}/{name} has no Retry"
        if top_level:
            assert state.get("Catch"), f"{path}/{name} has no Catch"


def all_states() -> Iterator[tuple[str, dict[str, Any]]]:
    for path, block, _ in BLOCKS:
        for name, state in block["States"].items():
            yield f"{path}/{name}", state


def test_every_lambda_task_retries_lambdas_transient_errors_with_full_jitter():
    for name, state in all_states():
        if state["Type"] != "Task":
            continue
        covering = [
            r
            for r in state["Retry"]
            if LAMBDA_TRANSIENT_ERRORS <= set(r["ErrorEquals"]) and r.get("JitterStrategy") == "FULL"
        ]
        assert covering, f"{name} does not retry the Lambda service's transient errors with full jitter"
        assert all(r.get("BackoffRate", 2.0) > 1 for r in covering), f"{name} retries without backoff"


def test_every_catch_keeps_the_input():
    for name, state in all_states():
        for catcher in state.get("Catch", []):
            assert catcher.get("ResultPath") not in (None, "$"), f"{name}: a Catch replaces the state's input"


@pytest.mark.parametrize("machine", sorted(STATE_MACHINES))
def test_the_lambda_tasks_are_the_templates_functions(machine):
    substitutions = STATE_MACHINES[machine]["Properties"]["DefinitionSubstitutions"]
    arns = {f"${{{k}}}" for k, v in substitutions.items() if "Fn::GetAtt" in v and v["Fn::GetAtt"][0] in FUNCTIONS}

    for name, state in all_states():
        if state["Type"] == "Task" and name.startswith(f"{machine}:"):
            assert state["Resource"] in arns, f"{name} invokes {state['Resource']}, which is no template function"


# -- the functions ------------------------------------------------------------------------------------


def function_module(props: dict[str, Any]) -> tuple[Path, str]:
    """The handler module's file and the handler function's name."""
    merged = {**GLOBAL_FUNCTION, **props}
    module, function = merged["Handler"].rsplit(".", 1)
    return ROOT / merged["CodeUri"] / (module.replace(".", "/") + ".py"), function


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_every_function_has_its_handler_module_and_function(logical):
    props = FUNCTIONS[logical]["Properties"]
    code_dir = ROOT / props["CodeUri"]
    module_path, function = function_module(props)

    assert code_dir.is_dir(), f"{logical}: CodeUri {props['CodeUri']} does not exist"
    assert module_path.is_file(), f"{logical}: {module_path.relative_to(ROOT)} does not exist"
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    handlers = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    assert handlers, f"{logical}: {module_path.relative_to(ROOT)} defines no {function}()"
    assert len(handlers[0].args.args) == 2, f"{logical}: {function} must take (event, context)"


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_every_handler_is_thin(logical):
    module_path, _ = function_module(FUNCTIONS[logical]["Properties"])
    tree = ast.parse(module_path.read_text(encoding="utf-8"))

    offences = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            offences += [a.name for a in node.names if a.name.split(".")[0] in ("boto3", "botocore")]
        elif isinstance(node, ast.ImportFrom):
            root = (node.module or "").split(".")[0]
            if root in ("boto3", "botocore"):
                offences.append(f"from {node.module}")
            if root == "os" and any(a.name in ("environ", "getenv") for a in node.names):
                offences.append("from os import environ/getenv")
        elif isinstance(node, ast.Attribute) and node.attr in ("environ", "getenv"):
            if isinstance(node.value, ast.Name) and node.value.id == "os":
                offences.append(f"os.{node.attr}")

    assert offences == [], f"{logical}: the handler does its own I/O or configuration: {offences}"


def test_the_functions_environment_configures_the_runtime_settings():
    # Every setting without a default must come from the template, or every Lambda fails on first use.
    environment = GLOBAL_FUNCTION.get("Environment", {}).get("Variables", {})
    required = {f.validation_alias for f in RuntimeConfig.model_fields.values() if f.is_required()}

    assert required
    for logical, resource in FUNCTIONS.items():
        own = resource["Properties"].get("Environment", {}).get("Variables", {})
        assert required - set(environment) - set(own) == set(), f"{logical} lacks configuration"


def make_targets(makefile: Path) -> set[str]:
    """The targets a Makefile names, with ``$(addprefix build-,$(VAR))`` rules expanded from ``VAR :=``."""
    text = makefile.read_text(encoding="utf-8").replace("\\\n", " ")
    variables = dict(re.findall(r"^(\w+)\s*:?=\s*(.*)$", text, re.M))
    targets = set()
    for rule in re.findall(r"^([^\s#.][^:=\n]*):(?!=)", text, re.M):
        rule = re.sub(
            r"\$\(addprefix build-,\$\((\w+)\)\)",
            lambda m: " ".join(f"build-{n}" for n in variables[m[1]].split()),
            rule,
        )
        targets |= set(rule.split())
    return targets


BUILT_BY_MAKE = {name: r for name, r in RESOURCES.items() if r.get("Metadata", {}).get("BuildMethod") == "makefile"}


def test_the_layer_and_every_function_are_built_by_make():
    # SAM's Python builder needs the functions' python3.12 on the build machine; make does not.
    assert set(BUILT_BY_MAKE) == set(FUNCTIONS) | set(resources_of("AWS::Serverless::LayerVersion"))


@pytest.mark.parametrize("logical", sorted(BUILT_BY_MAKE))
def test_every_resource_built_by_make_has_its_target(logical):
    resource = BUILT_BY_MAKE[logical]
    context = (
        resource["Metadata"].get("ContextPath")
        or resource["Properties"].get("ContentUri")
        or resource["Properties"].get("CodeUri")
    )
    makefile = ROOT / context / "Makefile"

    assert makefile.is_file(), f"{logical}: no {makefile.relative_to(ROOT)}"
    assert f"build-{logical}" in make_targets(makefile)


# -- IAM ----------------------------------------------------------------------------------------------


def policy_statements(value: Any, where: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every statement of every policy document anywhere in the template (inline ``Statement`` blocks of
    SAM ``Policies``, IAM policies, bucket policies), plus the statements SAM policy templates expand to."""
    if isinstance(value, list):
        for i, item in enumerate(value):
            yield from policy_statements(item, f"{where}[{i}]")
        return
    if not isinstance(value, dict):
        return
    if "Statement" in value:
        statements = value["Statement"]
        for i, statement in enumerate(statements if isinstance(statements, list) else [statements]):
            yield f"{where}.Statement[{i}]", statement
    for key, child in value.items():
        if key == "Policies":
            policies = child if isinstance(child, list) else [child]
            for i, policy in enumerate(policies):
                if isinstance(policy, str):
                    # A managed policy's actions cannot be checked here: only named ones are allowed.
                    yield f"{where}.Policies[{i}]", {"Effect": "Allow", "Action": f"<managed policy {policy}>*"}
                elif isinstance(policy, dict) and len(policy) == 1 and "Statement" not in policy:
                    (name,) = policy
                    actions = SAM_POLICY_TEMPLATE_ACTIONS.get(name, [f"<unknown policy template {name}>*"])
                    yield f"{where}.Policies[{i}].{name}", {"Effect": "Allow", "Action": actions}
        if key != "Statement":
            yield from policy_statements(child, f"{where}.{key}")


def actions_of(statement: dict[str, Any]) -> list[str]:
    if "NotAction" in statement:
        return ["<NotAction>*"]  # allows everything but a list: as wide as a wildcard
    action = statement.get("Action", [])
    return [action] if isinstance(action, str) else list(action)


def is_tls_only_deny(statement: dict[str, Any]) -> bool:
    secure = statement.get("Condition", {}).get("Bool", {}).get("aws:SecureTransport")
    return statement.get("Effect") == "Deny" and str(secure).lower() == "false"


STATEMENTS = list(policy_statements(RESOURCES, "Resources"))


def test_the_template_has_policies_to_check():
    assert len(STATEMENTS) >= len(FUNCTIONS)


def test_no_allow_statement_has_a_wildcard_action():
    wildcard = {
        where: actions_of(s) for where, s in STATEMENTS if s.get("Effect") == "Allow" and "*" in "".join(actions_of(s))
    }

    assert wildcard == {}


def test_the_only_wildcard_action_is_the_tls_only_deny_of_the_bucket_policy():
    bucket_policies = resources_of("AWS::S3::BucketPolicy")
    wildcard = [(where, s) for where, s in STATEMENTS if "*" in "".join(actions_of(s))]

    for where, statement in wildcard:
        assert is_tls_only_deny(statement), f"{where} has a wildcard action and is not the TLS-only Deny"
        assert where.split(".")[1] in bucket_policies, f"{where} is not in a bucket policy"


# -- the bucket ---------------------------------------------------------------------------------------

BUCKETS = resources_of("AWS::S3::Bucket")


def test_there_is_a_bucket():
    assert BUCKETS


@pytest.mark.parametrize("logical", sorted(BUCKETS))
def test_the_bucket_is_encrypted_and_private(logical):
    props = BUCKETS[logical]["Properties"]
    rules = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    block = props["PublicAccessBlockConfiguration"]

    flags = ("BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets")

    assert rules and all(
        r["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms", "aws:kms:dsse") for r in rules
    )
    assert {flag: block.get(flag) for flag in flags} == dict.fromkeys(flags, True)


@pytest.mark.parametrize("logical", sorted(BUCKETS))
def test_the_bucket_policy_denies_plain_http(logical):
    policies = [
        p["Properties"]["PolicyDocument"]
        for p in resources_of("AWS::S3::BucketPolicy").values()
        if p["Properties"]["Bucket"] == {"Ref": logical}
    ]
    denies = [s for doc in policies for s in doc["Statement"] if is_tls_only_deny(s)]

    assert denies, f"{logical} has no policy denying aws:SecureTransport false"
    (deny,) = denies
    assert deny["Principal"] in ("*", {"AWS": "*"})
    assert "s3:*" in actions_of(deny)
    resources = json.dumps(deny["Resource"])
    assert logical in resources and "/*" in resources, "the Deny must cover the bucket and its objects"


# -- events -------------------------------------------------------------------------------------------


def sync_enabled_rules() -> list[dict[str, Any]]:
    rules = []
    for event in STATE_MACHINE["Properties"].get("Events", {}).values():
        if event["Type"] in ("EventBridgeRule", "CloudWatchEvent"):
            if "Sync Enabled" in event["Properties"]["Pattern"].get("detail-type", []):
                rules.append(event["Properties"])
    for rule in resources_of("AWS::Events::Rule").values():
        props = rule["Properties"]
        targets_machine = any(t.get("Arn") == {"Ref": STATE_MACHINE_NAME} for t in props.get("Targets", []))
        if targets_machine and "Sync Enabled" in props.get("EventPattern", {}).get("detail-type", []):
            rules.append(props)
    return rules


def test_a_sync_enabled_event_starts_the_state_machine():
    (rule,) = sync_enabled_rules()
    transformer = rule["InputTransformer"]

    # When the product emits "Sync Enabled" for a district, the execution input is a valid SyncRequest
    rendered = transformer["InputTemplate"]
    for name in transformer["InputPathsMap"]:
        rendered = rendered.replace(f"<{name}>", json.dumps("d-1042"))
    request = SyncRequest.model_validate_json(rendered)

    assert transformer["InputPathsMap"]["district"] == "$.detail.district_id"
    assert (request.district_id, request.trigger, request.dry_run) == ("d-1042", "enabled", False)


# -- tables -------------------------------------------------------------------------------------------


def table(logical: str) -> dict[str, Any]:
    return RESOURCES[logical]["Properties"]


def key_names(key_schema: list[dict[str, str]]) -> dict[str, str]:
    return {k["KeyType"]: k["AttributeName"] for k in key_schema}


def test_the_directory_table_has_the_keys_the_repository_writes():
    # A person and an enrollment with a provider link and a parent carry every key attribute the
    # repository writes between them: the two sparse indexes split the items (provider_key on the person,
    # match_bucket on the enrollment)
    person, pair = (
        DirectoryRecord(
            id=record_id,
            kind=kind,
            status="active",
            managed_by_sync=True,
            provider_ids={"clever": provider_id},
            fields={},
            parent_id="sch_1",
        ).to_item("d-1")
        for record_id, kind, provider_id in (("per_1", Kind.STUDENTS, "stu-1"), ("enr_1", Kind.ENROLLMENTS, "s:stu-1"))
    )
    props = table("DirectoryTable")
    indexes = {i["IndexName"]: key_names(i["KeySchema"]) for i in props["GlobalSecondaryIndexes"]}
    defined = {a["AttributeName"]: a["AttributeType"] for a in props["AttributeDefinitions"]}

    assert key_names(props["KeySchema"]) == {"HASH": "pk", "RANGE": "sk"}
    assert indexes["ByProviderId"]["HASH"] == "provider_key"
    assert indexes["ByParent"]["HASH"] == "parent_key"
    assert indexes["ByMatchBucket"] == {"HASH": "match_bucket", "RANGE": "sk"}
    used = {"pk", "sk"} | {name for keys in indexes.values() for name in keys.values()}
    both = {**person, **pair}
    assert used <= set(both), f"key attributes the repository never writes: {used - set(both)}"
    assert used - {"match_bucket"} <= set(person) and "match_bucket" not in person
    assert used - {"provider_key"} <= set(pair) and "provider_key" not in pair
    assert all(isinstance(both[name], str) and defined[name] == "S" for name in used)


def test_the_match_bucket_index_projects_what_matching_reads_of_a_pair():
    # The partitions' index reads ask for INDEX_PROJECTION; a GSI answers only what it projects
    (index,) = [i for i in table("DirectoryTable")["GlobalSecondaryIndexes"] if i["IndexName"] == "ByMatchBucket"]
    asked = {name.strip().replace("#s", "status") for name in repository.INDEX_PROJECTION.split(",")}

    assert index["Projection"]["ProjectionType"] == "INCLUDE"
    assert set(index["Projection"]["NonKeyAttributes"]) == asked
    assert len(index["Projection"]["NonKeyAttributes"]) == len(asked)


def test_match_partitions_are_the_divisors_of_the_match_buckets():
    from rostersync.directory.keys import MATCH_BUCKETS

    parameter = TEMPLATE["Parameters"]["MatchPartitions"]
    assert sorted(int(n) for n in parameter["AllowedValues"]) == [
        n for n in range(1, MATCH_BUCKETS + 1) if MATCH_BUCKETS % n == 0
    ]
    assert int(parameter["Default"]) in [int(n) for n in parameter["AllowedValues"]]


def test_every_index_the_repository_queries_exists():
    # ``IndexName=...`` keyword arguments and ``{"IndexName": ...}`` request dicts of the repository module
    queried = set()
    for node in ast.walk(ast.parse(Path(repository.__file__).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call):
            pairs = [(kw.arg, kw.value) for kw in node.keywords]
        elif isinstance(node, ast.Dict):
            pairs = [
                (k.value if isinstance(k, ast.Constant) else None, v)
                for k, v in zip(node.keys, node.values, strict=True)
            ]
        else:
            continue
        queried |= {v.value for k, v in pairs if k == "IndexName" and isinstance(v, ast.Constant)}
    defined = {i["IndexName"] for i in table("DirectoryTable")["GlobalSecondaryIndexes"]}

    assert queried == {"ByProviderId", "ByParent", "ByMatchBucket"}
    assert queried <= defined


# DynamoDB's on-demand figures (AWS's developer guide): a new table or index serves 12,000 reads and 4,000
# writes a second at first; one table may use 40,000 of each (the default quota); docs/SCALE.md's model
# of a New York City-size first sync writes at that quota.
ON_DEMAND_INITIAL = {"ReadUnitsPerSecond": 12_000, "WriteUnitsPerSecond": 4_000}
ON_DEMAND_TABLE_QUOTA = 40_000
SCALE_MODEL_WRITES_PER_SECOND = 40_000


def test_the_directory_table_and_its_indexes_are_warmed_for_a_first_sync():
    props = table("DirectoryTable")
    warmed = {"table": props["WarmThroughput"]} | {
        index["IndexName"]: index.get("WarmThroughput", {}) for index in props["GlobalSecondaryIndexes"]
    }

    assert props["BillingMode"] == "PAY_PER_REQUEST"
    for name, warm in warmed.items():
        assert warm.get("WriteUnitsPerSecond") == SCALE_MODEL_WRITES_PER_SECOND, name
        # AWS refuses a warm throughput below what an on-demand table starts with, and above the quota
        for unit, initial in ON_DEMAND_INITIAL.items():
            assert initial <= warm.get(unit, initial) <= ON_DEMAND_TABLE_QUOTA, (name, unit)
    scale = (ROOT / "docs" / "SCALE.md").read_text(encoding="utf-8")
    assert "WarmThroughput" in scale and f"{SCALE_MODEL_WRITES_PER_SECOND:,}" in scale


def test_the_sync_state_table_expires_locks_through_ttl():
    props = table("SyncStateTable")

    assert key_names(props["KeySchema"]) == {"HASH": "pk", "RANGE": "sk"}
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}


@pytest.mark.parametrize("logical", sorted(resources_of("AWS::DynamoDB::Table")))
def test_tables_are_encrypted_and_kept(logical):
    resource = RESOURCES[logical]

    assert resource["Properties"]["SSESpecification"]["SSEEnabled"] is True
    assert resource.get("DeletionPolicy") == "Retain"


# -- the layer's dependencies -------------------------------------------------------------------------


def requirement_name(line: str) -> str:
    return re.split(r"[\s<>=!~;\[]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_the_layer_requirements_match_the_runtime_package_dependencies():
    """The layer ships exactly the runtime's pinned dependencies, less boto3 (the Lambda runtime has it)."""
    requirements = ROOT / "layers" / "core" / "requirements.txt"
    lines = [
        line.split("#", 1)[0].strip()
        for line in requirements.read_text(encoding="utf-8").splitlines()
        if line.split("#", 1)[0].strip() and not line.strip().startswith("-")
    ]
    runtime = tomllib.loads((ROOT / "layers" / "core" / "pyproject.toml").read_text(encoding="utf-8"))
    dependencies = [d for d in runtime["project"]["dependencies"] if requirement_name(d) != "boto3"]

    assert sorted(s.replace(" ", "").lower() for s in lines) == sorted(s.replace(" ", "").lower() for s in dependencies)
    assert sorted(map(requirement_name, lines)) == sorted(map(requirement_name, dependencies))
    assert "boto3" in map(requirement_name, runtime["project"]["dependencies"])


def test_the_tools_depend_on_the_runtime_and_the_runtime_never_on_the_tools():
    """The deploy boundary: no module of the runtime package names the tools, moto or PyYAML."""
    tools = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "rostersync" in map(requirement_name, tools["project"]["dependencies"])
    forbidden = ("rostersync_tools", "moto", "yaml")
    offenders = []
    for module in sorted((ROOT / "layers" / "core" / "rostersync").rglob("*.py")):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            offenders += [f"{module.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in forbidden]
    assert offenders == []


# -- the CLI's way in ------------------------------------------------------------------------------


def test_the_resources_parameter_names_every_resource_the_cli_connects_to():
    from rostersync_tools.cli.connect import StackResources, resources_parameter

    parameter = RESOURCES["StackResources"]
    assert parameter["Type"] == "AWS::SSM::Parameter"
    props = parameter["Properties"]
    assert props["Name"] == {"Fn::Sub": resources_parameter("${AWS::StackName}")}
    value = props["Value"]["Fn::Sub"]
    placeholders = re.findall(r"\$\{([^}]+)\}", value)
    # Each placeholder is the resource (or parameter) of that name, and of the type the CLI expects.
    expected_types = {
        "DirectoryTable": "AWS::DynamoDB::Table",
        "SyncStateTable": "AWS::DynamoDB::Table",
        "SyncBucket": "AWS::S3::Bucket",
        "SyncStateMachine": "AWS::Serverless::StateMachine",
        "CleanupStateMachine": "AWS::Serverless::StateMachine",
    }
    assert set(placeholders) == {*expected_types, "ProductEventSource"}
    for name, kind in expected_types.items():
        assert RESOURCES[name]["Type"] == kind
    assert "ProductEventSource" in TEMPLATE["Parameters"]
    # Filled in, it is the JSON object connect() reads, each key naming its own resource.
    filled = re.sub(r"\$\{([^}]+)\}", lambda m: f"value-of-{m.group(1)}", value)
    resources = StackResources.from_parameter(filled)
    assert resources == StackResources(
        directory_table="value-of-DirectoryTable",
        sync_state_table="value-of-SyncStateTable",
        sync_bucket="value-of-SyncBucket",
        state_machine_arn="value-of-SyncStateMachine",
        product_event_source="value-of-ProductEventSource",
        cleanup_state_machine_arn="value-of-CleanupStateMachine",
    )


# -- the Upsert Map at NYC size ------------------------------------------------------------------------


def distributed_maps() -> list[tuple[str, dict[str, Any]]]:
    return [
        (name, state)
        for name, state in all_states()
        if state["Type"] == "Map" and state["ItemProcessor"]["ProcessorConfig"].get("Mode") == "DISTRIBUTED"
    ]


def test_distributed_map_children_return_nothing_the_parent_keeps():
    # The Map gathers every child's output before ResultPath: each child must end with an empty output
    assert distributed_maps()
    for name, state in distributed_maps():
        processor = state["ItemProcessor"]
        ends = [s for s in processor["States"].values() if s.get("End") or s["Type"] in ("Succeed", "Fail")]
        assert ends, f"{name}: the processor never ends"
        for end in ends:
            keeps_nothing = "OutputPath" in end and end["OutputPath"] is None
            assert keeps_nothing or "ResultWriter" in state, f"{name}: a child's output is gathered by the parent"
        assert state.get("ResultPath", "$") is None


def test_distributed_maps_tolerate_no_failed_item_explicitly():
    for name, state in distributed_maps():
        tolerance = {k: state[k] for k in ("ToleratedFailureCount", "ToleratedFailurePercentage") if k in state}
        assert tolerance, f"{name}: the failure tolerance is left implicit"
        assert set(tolerance.values()) == {0}, f"{name} tolerates failed items: {tolerance}"


def test_the_upsert_child_retries_directory_throttling_with_backoff_and_jitter():
    from rostersync import errors

    ((name, state),) = [(n, s) for n, s in distributed_maps() if n.endswith("/Upsert directory")]
    (task,) = [s for s in state["ItemProcessor"]["States"].values() if s["Type"] == "Task"]
    retries = [r for r in task["Retry"] if "DirectoryThrottledError" in r["ErrorEquals"]]

    assert hasattr(errors, "DirectoryThrottledError")
    assert retries, f"{name}: throttling is not retried"
    (retry,) = retries
    assert retry["BackoffRate"] > 1 and retry["JitterStrategy"] == "FULL" and retry["MaxAttempts"] >= 3


# -- operations: alarms, log groups and retention, the tick's dead letters -------------------------------


def refs_in(value: Any) -> set[str]:
    """Logical ids a value names through Ref, GetAtt or ${…} in Sub."""
    found: set[str] = set()
    if isinstance(value, list):
        for item in value:
            found |= refs_in(item)
    elif isinstance(value, dict):
        if set(value) == {"Ref"}:
            found.add(value["Ref"])
        elif set(value) == {"Fn::GetAtt"}:
            found.add(value["Fn::GetAtt"][0])
        elif set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            found |= {name.split(".")[0] for name in re.findall(r"\$\{([^}!]+)\}", text) if "::" not in name}
        else:
            for child in value.values():
                found |= refs_in(child)
    return found


ALARMS = resources_of("AWS::CloudWatch::Alarm")
TOPICS = resources_of("AWS::SNS::Topic")


def alarm_metrics(props: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(namespace, metric, dimensions) of a plain alarm or of each metric of a metric-math alarm."""
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], {d["Name"]: d["Value"] for d in props["Dimensions"]})]
    metrics = []
    for query in props["Metrics"]:
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            dims = {d["Name"]: d["Value"] for d in metric["Dimensions"]}
            metrics.append((metric["Namespace"], metric["MetricName"], dims))
    return metrics


def watched(namespace: str, metric: str) -> list[dict[str, Any]]:
    return [
        dims
        for props in (a["Properties"] for a in ALARMS.values())
        for ns, m, dims in alarm_metrics(props)
        if (ns, m) == (namespace, metric)
    ]


def test_every_alarm_notifies_the_alarm_topic_and_names_only_resources_of_the_template():
    assert ALARMS and len(TOPICS) == 1
    (topic,) = TOPICS
    for logical, alarm in ALARMS.items():
        props = alarm["Properties"]
        assert props["AlarmActions"] == [{"Ref": topic}], f"{logical} notifies nothing, or something else"
        assert refs_in(props) - set(RESOURCES) - set(TEMPLATE["Parameters"]) == set(), logical
        assert props["TreatMissingData"] == "notBreaching"


def test_no_alarm_reads_more_metrics_than_cloudwatch_allows():
    # CloudWatch refuses a metric-math alarm over 10 metrics (a hard limit, PutMetricAlarm: at most 10
    # MetricStat queries): the sync's functions and the lifecycle's are watched by alarms of their own.
    for logical, alarm in ALARMS.items():
        queries = alarm["Properties"].get("Metrics", [])
        assert len([q for q in queries if "MetricStat" in q]) <= 10, logical
        assert len([q for q in queries if "Expression" in q]) <= 10, logical


def test_failed_and_timed_out_sync_executions_alarm():
    for metric in ("ExecutionsFailed", "ExecutionsTimedOut"):
        assert {"StateMachineArn": {"Ref": STATE_MACHINE_NAME}} in watched("AWS/States", metric), metric


@pytest.mark.parametrize("metric", ["Errors", "Throttles"])
def test_every_functions_errors_and_throttles_alarm(metric):
    names = [d["FunctionName"] for d in watched("AWS/Lambda", metric)]

    assert {n["Ref"] for n in names} >= set(FUNCTIONS), f"functions whose {metric} no alarm watches"


def test_a_failing_schedule_tick_is_retried_then_dead_lettered_and_alarmed():
    tick = next(
        name
        for name, f in FUNCTIONS.items()
        if any(e["Type"] == "Schedule" for e in f["Properties"].get("Events", {}).values())
    )
    config = FUNCTIONS[tick]["Properties"]["EventInvokeConfig"]
    destination = config["DestinationConfig"]["OnFailure"]
    queue = destination["Destination"]["Fn::GetAtt"][0]

    assert config["MaximumRetryAttempts"] >= 1
    assert destination["Type"] == "SQS" and RESOURCES[queue]["Type"] == "AWS::SQS::Queue"
    sends = [s for _, s in policy_statements(FUNCTIONS[tick], tick) if "sqs:SendMessage" in actions_of(s)]
    assert sends and sends[0]["Resource"] == {"Fn::GetAtt": [queue, "Arn"]}
    assert {"FunctionName": {"Ref": tick}} in watched("AWS/Lambda", "Errors")
    assert {"QueueName": {"Fn::GetAtt": [queue, "QueueName"]}} in watched(
        "AWS/SQS", "ApproximateNumberOfMessagesVisible"
    )


def test_the_alarm_email_is_optional_and_subscribed_only_when_given():
    parameter = TEMPLATE["Parameters"]["AlarmEmail"]
    (subscription,) = resources_of("AWS::SNS::Subscription").values()

    assert parameter["Default"] == ""
    assert TEMPLATE["Conditions"][subscription["Condition"]] == {
        "Fn::Not": [{"Fn::Equals": [{"Ref": "AlarmEmail"}, ""]}]
    }
    assert subscription["Properties"]["Endpoint"] == {"Ref": "AlarmEmail"}
    assert subscription["Properties"]["TopicArn"] == {"Ref": next(iter(TOPICS))}


LOG_GROUPS = resources_of("AWS::Logs::LogGroup")


def test_every_function_has_its_own_log_group_with_the_stacks_retention():
    names = {json.dumps(g["Properties"]["LogGroupName"]) for g in LOG_GROUPS.values()}

    assert TEMPLATE["Parameters"]["LogRetentionDays"]["Default"] == 30
    for logical in FUNCTIONS:
        assert json.dumps({"Fn::Sub": f"/aws/lambda/${{{logical}}}"}) in names, f"{logical} has no log group"
    for logical, group in LOG_GROUPS.items():
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}, logical


def test_the_state_machine_logs_errors_to_a_log_group_of_the_template():
    logging = STATE_MACHINE["Properties"]["Logging"]
    (destination,) = logging["Destinations"]
    group = destination["CloudWatchLogsLogGroup"]["LogGroupArn"]["Fn::GetAtt"][0]

    assert logging["Level"] == "ERROR"
    assert group in LOG_GROUPS
    delivery = [s for _, s in policy_statements(STATE_MACHINE, "machine") if "logs:CreateLogDelivery" in actions_of(s)]
    assert delivery, "the state machine's role cannot deliver logs"


def test_the_steps_metrics_have_a_namespace():
    environment = GLOBAL_FUNCTION["Environment"]["Variables"]

    assert environment["POWERTOOLS_METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    assert TEMPLATE["Parameters"]["MetricsNamespace"]["Default"]


@pytest.mark.parametrize("logical", sorted(FUNCTIONS))
def test_every_handler_reports_its_step_metrics(logical):
    module_path, function = function_module(FUNCTIONS[logical]["Properties"])
    tree = ast.parse(module_path.read_text(encoding="utf-8"))
    (handler,) = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == function]
    decorators = [d.func.id for d in handler.decorator_list if isinstance(d, ast.Call) and isinstance(d.func, ast.Name)]

    assert "step_metrics" in decorators, f"{logical}: the handler reports no duration or errors"
