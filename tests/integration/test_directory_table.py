"""The directory table as template.yaml defines it is created by DynamoDB (moto) with its warm throughput."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rostersync_tools.local.template import load_template

TEMPLATE_PATH = Path(__file__).resolve().parents[2] / "template.yaml"


def test_the_directory_table_is_created_warm_with_its_indexes(dynamodb: Any, directory_table: str):
    # Given the template's directory table, created through CreateTable with its properties
    props = load_template(TEMPLATE_PATH)["Resources"]["DirectoryTable"]["Properties"]

    # When DynamoDB describes it
    described = dynamodb.describe_table(TableName=directory_table)["Table"]

    # Then the table and each index have the warm throughput the template asks for
    def warm(description: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in description["WarmThroughput"].items() if k != "Status"}

    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert warm(described) == props["WarmThroughput"]
    wanted = {index["IndexName"]: index["WarmThroughput"] for index in props["GlobalSecondaryIndexes"]}
    assert {index["IndexName"]: warm(index) for index in described["GlobalSecondaryIndexes"]} == wanted
