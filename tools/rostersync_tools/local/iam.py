"""IAM on the embedded stack: every caller signs with its own credentials and moto checks its policies.

- The roles are the template's after the SAM transform (``aws-sam-translator``): policy templates such
  as ``DynamoDBCrudPolicy`` become the IAM statements AWS would attach, managed policies included. The
  stack resolves their intrinsic functions and creates each role in moto's IAM.
- Each Lambda invocation runs with credentials from ``sts:AssumeRole`` on its function's role (cached
  per role, renewed before they expire), through a boto3 session of its own that the stack hands to the
  runtime in ``rostersync.aws.invocation_session``. The state machine's own calls (its Lambda tasks,
  the Map's ItemReader) sign with its role. The stack itself, the tests and the CLI use an admin user's
  keys, created before the check is switched on.
- moto has the checking (``moto.iam.access_control``) but applies it process-wide
  (``settings.INITIAL_NO_AUTH_ACTION_COUNT``, which would also reach the ``mock_aws`` tests sharing
  the process) and, except for S3, IAM, STS and SQS, against the resource ``*``, which no statement naming
  a table or a secret matches. So the stack switches the check on only for requests its own server
  receives, and names the resources itself: tables (and their indexes) of every item in a request,
  secrets, state machines and executions, parameters, functions. ``TransactWriteItems`` and
  ``TransactGetItems`` are checked as the item actions they hold, as AWS does.
- A ``GetObject`` or ``HeadObject`` of a key the bucket does not hold answers ``AccessDenied`` (403), not
  ``NoSuchKey`` (404), unless the caller may also ``s3:ListBucket`` the bucket, as S3 answers ("If you
  don't have the s3:ListBucket permission, Amazon S3 returns an HTTP status code 403"); moto answers 404
  to everyone, so code that takes a 404 for "not written yet" passed here under a role that gets 403 on AWS.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

REGION = "us-east-1"
ACCOUNT = "123456789012"
# Renew an invocation role's credentials when fewer than this many seconds are left.
RENEW_BEFORE_SECONDS = 300
SESSION_SECONDS = 3600

ADMIN_USER = "local-admin"
_JSON_SERVICES = ("dynamodb", "secretsmanager", "states", "ssm", "lambda", "events")
_SERVING = threading.local()  # .checked: whether the request this thread serves is checked


def sam_roles(template: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """The template's IAM roles after the SAM transform, and which role each function/state machine uses.

    Returns ``({role logical id: role properties}, {function or state machine logical id: role logical id})``;
    intrinsic functions are left for the stack's resolver.
    """
    import boto3
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    sam = copy.deepcopy(template)
    for resource in sam.get("Resources", {}).values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            # The transform wants packaged code; where it lives does not change a policy.
            if isinstance(props.get(key), str):
                props[key] = f"s3://local-package/{props[key]}"
    translator = Translator(None, Parser(), boto_session=boto3.session.Session(region_name=REGION))
    cfn = translator.translate(sam, parameter_values={}, get_managed_policy_map=lambda: {})
    roles, used_by = {}, {}
    for logical, resource in cfn["Resources"].items():
        if resource["Type"] == "AWS::IAM::Role":
            roles[logical] = resource["Properties"]
        role = resource.get("Properties", {}).get("Role") if isinstance(resource.get("Properties"), dict) else None
        if resource["Type"] in ("AWS::Lambda::Function", "AWS::StepFunctions::StateMachine"):
            role = resource["Properties"].get("Role") or resource["Properties"].get("RoleArn")
            if isinstance(role, dict) and "Fn::GetAtt" in role:
                used_by[logical] = role["Fn::GetAtt"][0]
    return roles, used_by


class StackIam:
    """The admin user, the roles and the per-role sessions of one embedded stack."""

    def __init__(self, stack_name: str, endpoint: str) -> None:
        self.stack_name = stack_name
        self.endpoint = endpoint
        self.admin_arn = ""
        self.admin_keys: tuple[str, str] = ("", "")
        self.role_arns: dict[str, str] = {}  # role logical id → ARN
        self.managed_policies_left_out: dict[str, list[str]] = {}
        self._sessions: dict[str, tuple[Any, float]] = {}
        self._lock = threading.Lock()
        self.checked = False

    def create_admin(self, iam: Any, key_id: str, secret: str) -> None:
        """An IAM user allowed everything, for the stack's own calls, the tests' and the CLI's.

        Its access key is the well-known local pair (``key_id``/``secret``) that the CLI's ``--endpoint``
        and the stack's environment already use, so nothing outside needs new credentials; any other key
        is refused once the check is on. moto draws keys at random, so the pair is set on its key object.
        """
        from moto.iam.models import iam_backends

        # One admin user per process: moto's backends are global, so every stack in this process sees
        # the same users, and a key must name one of them.
        backend = iam_backends[ACCOUNT]["aws"]
        if ADMIN_USER not in backend.users:
            iam.create_user(UserName=ADMIN_USER)
            everything = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}
            iam.put_user_policy(UserName=ADMIN_USER, PolicyName="admin", PolicyDocument=json.dumps(everything))
            iam.create_access_key(UserName=ADMIN_USER)
            key = backend.get_user(ADMIN_USER).access_keys[0]
            key.access_key_id, key.secret_access_key = key_id, secret
        self.admin_arn = backend.get_user(ADMIN_USER).arn
        self.admin_keys = (key_id, secret)

    def create_role(self, iam: Any, logical: str, props: dict[str, Any]) -> str:
        """Create one role as the transform wrote it (its policies resolved by the caller).

        Its policies are the template's; its trust policy is not: locally the stack, holding the admin
        keys, assumes the role on Lambda's (or Step Functions') behalf, so the admin user is trusted
        instead of the service (moto's trust check cannot read a ``Service`` principal anyway).
        """
        trust = {
            "Version": "2012-10-17",
            "Statement": [{"Effect": "Allow", "Principal": {"AWS": self.admin_arn}, "Action": "sts:AssumeRole"}],
        }
        name = f"{self.stack_name}-{logical}"[:64]
        arn = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"]
        for policy in props.get("Policies", []):
            # SAM leaves Version out of its policy templates (IAM then reads 2008-10-17); moto wants it.
            document = {"Version": "2012-10-17", **policy["PolicyDocument"]}
            iam.put_role_policy(RoleName=name, PolicyName=policy["PolicyName"], PolicyDocument=json.dumps(document))
        # The AWS managed policies SAM adds (AWSLambdaBasicExecutionRole: CloudWatch Logs;
        # AWSXrayWriteOnlyAccess: X-Ray) grant only services the embedded stack does not have; moto does
        # not hold AWS's managed policies unless told to load all of them, so they are left out.
        self.managed_policies_left_out[name] = list(props.get("ManagedPolicyArns", []))
        self.role_arns[logical] = arn
        return str(arn)

    def session(self, role_arn: str) -> Any:
        """A boto3 session holding credentials of ``role_arn`` (AssumeRole with the admin keys).

        A session's credentials never change: a renewal makes a new session, so invocations running
        concurrently never see their credentials swapped.
        """

        with self._lock:
            cached = self._sessions.get(role_arn)
            if cached is not None and cached[1] - time.time() > RENEW_BEFORE_SECONDS:
                return cached[0]
            sts = _session().client(
                "sts",
                region_name=REGION,
                endpoint_url=self.endpoint,
                aws_access_key_id=self.admin_keys[0],
                aws_secret_access_key=self.admin_keys[1],
            )
            credentials = sts.assume_role(
                RoleArn=role_arn, RoleSessionName="invocation", DurationSeconds=SESSION_SECONDS
            )["Credentials"]
            session = _session(
                aws_access_key_id=credentials["AccessKeyId"],
                aws_secret_access_key=credentials["SecretAccessKey"],
                aws_session_token=credentials["SessionToken"],
                region_name=REGION,
            )
            self._sessions[role_arn] = (session, credentials["Expiration"].timestamp())
            return session


_LOADER: Any = None


def _session(**kwargs: Any) -> Any:
    """A boto3 session that reads AWS's service models through one loader shared by every session.

    Each role's session (and each renewal) would otherwise read and parse the models of every service it
    makes a client for from disk again: most of the CPU of a stack's first invocations.
    """
    import boto3
    import botocore.loaders
    import botocore.session

    global _LOADER
    if _LOADER is None:
        _LOADER = botocore.loaders.create_loader()
    core = botocore.session.Session()
    core.register_component("data_loader", _LOADER)
    return boto3.session.Session(botocore_session=core, **kwargs)


# -- the check, per request of a checked server ---------------------------------------------------


def checked_app(app: Callable[..., Any], iam: StackIam) -> Callable[..., Any]:
    """Wrap the stack server's WSGI app: requests it serves are checked once ``iam.checked`` is on."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # A request served in its sender's thread (``in_process``) may send one itself (a Lambda invoked
        # in-process calls DynamoDB): the flag is put back as found, not cleared.
        previous, _SERVING.checked = getattr(_SERVING, "checked", False), iam.checked
        try:
            return app(environ, start_response)
        finally:
            _SERVING.checked = previous

    return serve


def _arn(service: str, resource: str) -> str:
    return f"arn:aws:{service}:{REGION}:{ACCOUNT}:{resource}"


_TRANSACT_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
    "Get": "GetItem",
}


def _dynamodb(action: str, body: dict[str, Any]) -> Iterator[tuple[str, str]]:
    def table(name: str, index: str | None = None) -> str:
        arn = name if name.startswith("arn:") else _arn("dynamodb", f"table/{name}")
        return f"{arn}/index/{index}" if index else arn

    if action in ("TransactWriteItems", "TransactGetItems"):
        for item in body.get("TransactItems", []):
            for kind, operation in item.items():
                yield f"dynamodb:{_TRANSACT_ACTIONS.get(kind, kind)}", table(operation.get("TableName", ""))
    elif "RequestItems" in body:
        for name in body["RequestItems"]:
            yield f"dynamodb:{action}", table(name)
    elif "TableName" in body:
        yield f"dynamodb:{action}", table(body["TableName"], body.get("IndexName"))
    else:
        yield f"dynamodb:{action}", "*"


def request_resources(service: str, action: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """The (IAM action, resource ARN) pairs a request needs, for the services rostersync calls."""
    if service == "dynamodb":
        return list(_dynamodb(action, body))
    if service == "secretsmanager":
        secret = body.get("SecretId") or body.get("Name")
        if secret:
            arn = secret if secret.startswith("arn:") else _arn("secretsmanager", f"secret:{secret}")
            return [(f"secretsmanager:{action}", arn)]
    if service == "states":
        arn = body.get("executionArn") or body.get("stateMachineArn") or body.get("mapRunArn")
        if arn:
            return [(f"states:{action}", arn)]
    if service == "events" and action == "PutEvents":
        # Each entry is checked against its bus (the default bus when it names none).
        buses = {str(e.get("EventBusName") or "default") for e in body.get("Entries", [])} or {"default"}
        return [
            ("events:PutEvents", bus if bus.startswith("arn:") else _arn("events", f"event-bus/{bus}"))
            for bus in sorted(buses)
        ]
    if service == "ssm" and body.get("Name"):
        name = body["Name"]
        return [(f"ssm:{action}", _arn("ssm", "parameter" + (name if name.startswith("/") else "/" + name)))]
    return [(f"{service}:{action}", "*")]


def lambda_resources(action: str, path: str) -> list[tuple[str, str]]:
    """Lambda's API names the function in the path; its Invoke is ``lambda:InvokeFunction`` in IAM."""
    from urllib.parse import unquote

    if "/functions/" not in path:
        return [(f"lambda:{action}", "*")]
    name = unquote(path.split("?", 1)[0].split("/functions/", 1)[1].split("/", 1)[0])
    arn = name if name.startswith("arn:") else _arn("lambda", f"function:{name}")
    return [("lambda:InvokeFunction" if action == "Invoke" else f"lambda:{action}", arn)]


def _check(response: Any, pairs: list[tuple[str, str]], request_cls: type) -> None:
    # moto signs again ``body or data``. A request with neither a query nor a body of form fields (a
    # Lambda GET: ListFunctions, GetFunction; an Invoke without a payload) has moto's stand-in for them
    # as ``data``: the request's headers, whose form-encoding was hashed as the payload instead of the
    # empty body, so every such request was refused (SignatureDoesNotMatch). A form (STS) stays ``data``.
    headers_only = not response.raw_body and list(response.data) == list(response.headers.keys())
    data = {} if headers_only else response.data
    for action, resource in pairs:
        request = request_cls(
            account_id=response.current_account,
            method=response.method,
            path=response.raw_path + (f"?{response.uri.split('?', 1)[1]}" if "?" in response.uri else ""),
            data=data,
            body=response.raw_body,
            headers=response.headers,
            action=action.split(":", 1)[1],
        )
        request.check_signature()
        request.check_action_permitted(resource)


def install_access_control() -> None:
    """Patch moto's authorisation: checked requests of a stack's server are checked, with resources."""
    from moto.core.authorization import ActionAuthenticatorMixin
    from moto.core.exceptions import JsonRESTError
    from moto.core.exceptions import _RESTError as RESTError

    if getattr(ActionAuthenticatorMixin, "_rostersync_checked", False):
        return
    generic = ActionAuthenticatorMixin._authenticate_and_authorize_action

    def authorize(self: Any, iam_request_cls: type, resource: str = "*") -> None:
        if not getattr(_SERVING, "checked", False):
            generic(self, iam_request_cls, resource)  # mock_aws elsewhere in the process: moto's own rules
            return
        if self.headers.get("X-Amz-Target") in ActionAuthenticatorMixin.PUBLIC_OPERATIONS:
            return
        if "Authorization" not in self.headers:
            if "X-Amz-Signature" in self.querystring:  # a presigned link (reports): not checked, see DEPLOY.md
                return
            from moto.core.exceptions import AccessDeniedError

            raise AccessDeniedError(user_arn="anonymous", action=self._get_action())
        service = self.headers["Authorization"].partition("Credential=")[2].split("/")[3]
        data = self.data if isinstance(self.data, dict) else {}
        action = data["Action"] if service == "s3" and "Action" in data else self._get_action()
        if service == "ses" and action in ("SendEmail", "SendRawEmail"):
            # SES checks the sending identity (the Source address's own identity here).
            source = (self.querystring.get("Source") or [""])[0]
            pairs = [(f"ses:{action}", _arn("ses", f"identity/{source}"))]
        elif resource != "*" or service not in ("dynamodb", "secretsmanager", "states", "ssm", "lambda", "events"):
            pairs = [(f"{service}:{action}", resource)]
        elif service == "lambda":
            pairs = lambda_resources(action, self.path)
        else:
            body = self.body if isinstance(self.body, dict) else json.loads(self.raw_body or b"{}")
            pairs = request_resources(service, action, body)
        try:
            _check(self, pairs, iam_request_cls)
            if service == "s3" and action in ("GetObject", "GetObjectVersion"):
                _missing_object_needs_list_bucket(self, resource, iam_request_cls)
        except RESTError as exc:
            if service not in _JSON_SERVICES or exc.error_type != "AccessDenied":
                raise
            # moto answers in XML whatever the protocol; the JSON services say AccessDeniedException.
            raise JsonRESTError("AccessDeniedException", exc.message) from exc

    ActionAuthenticatorMixin._authenticate_and_authorize_action = authorize
    ActionAuthenticatorMixin._rostersync_checked = True


def _missing_object_needs_list_bucket(response: Any, resource: str, request_cls: type) -> None:
    """S3's answer to reading a key it does not hold: 403 (``AccessDenied``) to a caller who may not list
    the bucket, so that the caller cannot tell a missing key from a forbidden one; 404 to one who may. A
    read of one version (``versionId``) asks for that version, whatever the key's latest is."""
    from moto.s3.models import FakeDeleteMarker, s3_backends

    bucket_and_key = resource.removeprefix("arn:aws:s3:::")
    if "/" not in bucket_and_key:
        return
    bucket_name, key = bucket_and_key.split("/", 1)
    bucket = s3_backends[response.current_account]["aws"].buckets.get(bucket_name)
    if bucket is None:
        return  # moto answers NoSuchBucket, as S3 does
    held = bucket.keys.getlist(key, [])
    version_id = (response.querystring.get("versionId") or [None])[0]
    if version_id is not None:
        held = [v for v in held if v.version_id == version_id]
    if held and not isinstance(held[-1], FakeDeleteMarker):
        return
    _check(response, [("s3:ListBucket", f"arn:aws:s3:::{bucket_name}")], request_cls)


@contextmanager
def unchecked(iam: StackIam) -> Iterator[None]:
    """Switch the check off meanwhile (creating the stack's resources)."""
    previous, iam.checked = iam.checked, False
    try:
        yield
    finally:
        iam.checked = previous
