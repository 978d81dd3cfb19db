"""The embedded stack's in-process transport answers as its server does over HTTP.

A botocore request from this process to the running stack is handed to the server's WSGI app in the
sending thread (``rostersync_tools.local.in_process``). Each request here is sent both ways, with the
same client: what comes back (status, the headers a client reads, the parsed answer or error) must be
the same, and what one way writes the other reads back unchanged. Requests sent in-process open no
connection; the IAM check refuses a bad signature either way.
"""

from __future__ import annotations

import io
import uuid
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from botocore.parsers import ResponseParserError

from rostersync.directory.keys import partition_key
from rostersync_tools.local.in_process import over_http

pytestmark = pytest.mark.e2e

# Headers that differ on every answer whichever way it travels.
_VOLATILE = {"date", "x-amzn-requestid", "x-amz-request-id", "x-amz-id-2", "server", "connection", "last-modified"}


def _answer(call: Any) -> tuple[str, Any]:
    """``call()``'s answer without what changes per request, or its error (code, message, status)."""
    try:
        answer = call()
    except ClientError as exc:
        error = exc.response["Error"]
        return "error", (error.get("Code"), error.get("Message"), exc.response["ResponseMetadata"]["HTTPStatusCode"])
    except (BotoCoreError, ResponseParserError) as exc:  # an answer botocore cannot read (an HTML error page)
        return "unreadable", (type(exc).__name__, str(exc))
    meta = answer.pop("ResponseMetadata")
    headers = {k: v for k, v in meta["HTTPHeaders"].items() if k not in _VOLATILE}
    if "Body" in answer:
        answer["Body"] = answer["Body"].read()
    answer.pop("LastModified", None)
    return "ok", (meta["HTTPStatusCode"], headers, answer)


def _both_ways(call: Any) -> tuple[tuple[str, Any], tuple[str, Any]]:
    in_process = _answer(call)
    with over_http():
        over_socket = _answer(call)
    return in_process, over_socket


def test_s3_answers_the_same_in_process_and_over_http(stack: Any) -> None:
    s3 = stack.client("s3")
    bucket = stack.outputs["SyncBucketName"]
    prefix = f"transport-{uuid.uuid4().hex[:8]}"
    # A key with spaces, a plus, a percent sign and non-ASCII; metadata with an underscore in its name.
    key = f"{prefix}/a b+c%d/élève.csv"
    body = "id,name\n1,Zoë\n".encode()
    metadata = {"district_id": "d-1", "plain-name": "ok"}

    # Written one way, read back the other
    s3.put_object(Bucket=bucket, Key=key + ".1", Body=body, Metadata=metadata, ContentType="text/csv")
    with over_http():
        s3.put_object(Bucket=bucket, Key=key + ".2", Body=io.BytesIO(body), Metadata=metadata, ContentType="text/csv")

    for suffix in (".1", ".2"):
        read_here, read_there = _both_ways(lambda s=suffix: s3.get_object(Bucket=bucket, Key=key + s))
        assert read_here == read_there
        assert read_here[0] == "ok"
        _, headers, answer = read_here[1]
        assert answer["Body"] == body and answer["Metadata"] == metadata and answer["ContentType"] == "text/csv"
        assert headers["content-length"] == str(len(body))
        head_here, head_there = _both_ways(lambda s=suffix: s3.head_object(Bucket=bucket, Key=key + s))
        assert head_here == head_there and head_here[1][2]["ContentLength"] == len(body)

    listed_here, listed_there = _both_ways(lambda: s3.list_objects_v2(Bucket=bucket, Prefix=prefix))
    assert listed_here == listed_there
    assert sorted(o["Key"] for o in listed_here[1][2]["Contents"]) == [key + ".1", key + ".2"]

    missing_here, missing_there = _both_ways(lambda: s3.get_object(Bucket=bucket, Key=f"{prefix}/absent"))
    assert missing_here == missing_there == ("error", ("NoSuchKey", "The specified key does not exist.", 404))
    head_missing = _both_ways(lambda: s3.head_object(Bucket=bucket, Key=f"{prefix}/absent"))
    assert head_missing[0] == head_missing[1] and head_missing[0][1][2] == 404


def test_dynamodb_and_lambda_answer_the_same_in_process_and_over_http(stack: Any, directory_table: str) -> None:
    # A record of a district of its own, keyed as the directory keys every district's (other tests scan
    # the whole table and check each item's keys name its district)
    dynamodb = stack.client("dynamodb")
    district = f"d-transport-{uuid.uuid4().hex[:8]}"
    pk = partition_key(district, "people", 0)
    item = {"pk": {"S": pk}, "sk": {"S": "per_1"}, "district_id": {"S": district}, "name": {"S": "Zoë"}}
    dynamodb.put_item(TableName=directory_table, Item=item)

    got = _both_ways(lambda: dynamodb.get_item(TableName=directory_table, Key={"pk": item["pk"], "sk": item["sk"]}))
    assert got[0] == got[1] and got[0][1][2]["Item"] == item
    queried = _both_ways(
        lambda: dynamodb.query(
            TableName=directory_table, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": pk}}
        )
    )
    assert queried[0] == queried[1] and queried[0][1][2]["Count"] == 1

    # What DynamoDB refuses, it refuses either way, with the same words: an item over 400 KB
    too_big = {**item, "sk": {"S": "per_2"}, "blob": {"S": "x" * 410_000}}
    refused = _both_ways(lambda: dynamodb.put_item(TableName=directory_table, Item=too_big))
    assert refused[0] == refused[1] and refused[0][0] == "error" and refused[0][1][0] == "ValidationException"

    # A Lambda invocation of a function that is not there
    lam = stack.client("lambda")
    name = f"absent-{uuid.uuid4().hex[:6]}"
    absent = _both_ways(lambda: lam.invoke(FunctionName=name, Payload=b"{}"))
    assert absent[0] == absent[1] and absent[0][1][::2] == ("ResourceNotFoundException", 404)


def test_a_request_the_server_fails_on_is_a_500_either_way(stack: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a moto handler that raises (werkzeug's server logs it and answers 500 Internal Server Error)
    from moto.sts.responses import TokenResponse

    def broken(self: Any) -> str:
        raise RuntimeError("a bug in the server")

    monkeypatch.setattr(TokenResponse, "get_caller_identity", broken)
    once = Config(retries={"total_max_attempts": 1})
    sts = boto3.session.Session().client("sts", region_name="us-east-1", endpoint_url=stack.endpoint, config=once)

    # The caller gets the same 500, and the exception does not escape into the sending thread
    failed = _both_ways(sts.get_caller_identity)
    assert failed[0] == failed[1], failed
    assert failed[0][0] == "unreadable" and "500 Internal Server Error" in failed[0][1][1]


def test_requests_in_process_open_no_connection_and_are_still_checked(stack: Any) -> None:
    sts = stack.client("sts")
    before = stack.connections_accepted()
    sts.get_caller_identity()
    assert stack.connections_accepted() == before, "a request from this process reached the socket"
    with over_http():
        fresh = boto3.session.Session().client("sts", region_name="us-east-1", endpoint_url=stack.endpoint)
        fresh.get_caller_identity()
    assert stack.connections_accepted() > before, "over_http sent nothing over the socket"

    # A request signed with a secret that is not the key's is refused either way, alike
    forged = boto3.session.Session(
        aws_access_key_id="local", aws_secret_access_key="not-the-secret", region_name="us-east-1"
    ).client("dynamodb", endpoint_url=stack.endpoint)
    refused = _both_ways(lambda: forged.list_tables())
    assert refused[0] == refused[1] and refused[0][0] == "error", refused
