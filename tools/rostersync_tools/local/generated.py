"""Records generated from the providers' own schemas, for the fault campaign (issue 9).

- Clever: the Data API v3.0 definitions (``User``, ``Section`` and everything they reference) from
  Clever's swagger file, turned into JSON Schema (``x-nullable`` → null allowed, Clever's ``datetime``
  format dropped), plus hostile forms the schema does not forbid (no data object, odd JSON).
- OneRoster: the 1.1 CSV binding's column specifications (``users.csv``), each row a JSON object of
  strings, written as a bundle and read by the CSV provider.

``check_clever_users``, ``check_clever_sections`` and ``check_oneroster_users`` feed them through the
providers' mapping and raise ``AssertionError`` if the mapping let an exception escape, dropped a record
silently, or reported one without a reason. Used by ``tests/unit/test_generated_records.py`` (bounded)
and ``bench/chaos.py`` (at least 10,000 records).
"""

from __future__ import annotations

import csv
import io
import json
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

import hypothesis_jsonschema._from_schema as _jsonschema_strategies
import yaml
from hypothesis import strategies as st
from hypothesis_jsonschema import from_schema
from hypothesis_jsonschema._canonicalise import encode_canonical_json

from rostersync.domain.records import RecordError
from rostersync.providers.base import FetchOutcome
from rostersync.providers.clever import map_sections, map_users
from rostersync.providers.oneroster_csv import OneRosterCsvProvider
from rostersync_tools import REPO_ROOT

REFERENCE = REPO_ROOT / "tests" / "fixtures" / "reference"
CLEVER_SWAGGER = REFERENCE / "clever" / "swagger-api" / "v3.0.yml"
ONEROSTER_COLUMNS = REFERENCE / "oneroster" / "v1p1-csv__oat-sa-oneroster-import" / "config" / "v1.1"


def _keep_property_strategies() -> None:
    """Build hypothesis-jsonschema's strategy for an object's property once, not on every draw.

    hypothesis-jsonschema (0.23.1, pinned) draws an object property by property, and for each one builds
    a new strategy from the property's schema (resolving and canonicalising it) on every draw: most of the
    Clever users' generation time. The strategy built for the same schemas, alphabet and formats is kept
    and drawn again; a strategy holds no state between draws, so the same records come out (with or
    without this, the derandomized tests draw the very same examples) for about a fifth less work.
    """
    if getattr(_jsonschema_strategies, "_rostersync_kept", False):
        return
    build = _jsonschema_strategies.merged_as_strategies
    kept: dict[tuple[str, int, int], tuple[Any, Any, st.SearchStrategy[Any]]] = {}

    def merged_as_strategies(schemas: list[Any], *, alphabet: Any, custom_formats: Any) -> st.SearchStrategy[Any]:
        key = (encode_canonical_json(schemas), id(alphabet), id(custom_formats))
        if key not in kept:  # the alphabet and formats are held with it, so their ids stay theirs
            kept[key] = (alphabet, custom_formats, build(schemas, alphabet=alphabet, custom_formats=custom_formats))
        return kept[key][2]

    _jsonschema_strategies.merged_as_strategies = merged_as_strategies
    _jsonschema_strategies._rostersync_kept = True  # type: ignore[attr-defined]


_keep_property_strategies()


# -- Clever ---------------------------------------------------------------------------------------------


def _json_schema(node: Any) -> Any:
    """Swagger 2.0 → JSON Schema: ``x-nullable`` allows null; Clever's own formats and ``x-`` keys go."""
    if isinstance(node, list):
        return [_json_schema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _json_schema(v) for k, v in node.items() if not k.startswith("x-") and k not in ("format", "example")}
    if node.get("x-nullable"):
        if "$ref" in out:
            return {"anyOf": [{"$ref": out["$ref"]}, {"type": "null"}]}
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
    return out


@cache
def clever_definitions() -> dict[str, Any]:
    swagger = yaml.safe_load(CLEVER_SWAGGER.read_text(encoding="utf-8"))
    return {name: _json_schema(schema) for name, schema in swagger["definitions"].items()}


def clever_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of one Clever definition (``User``, ``Section``), its references resolvable."""
    return {**clever_definitions()[name], "definitions": clever_definitions()}


_OBJECT_IDS = st.from_regex(r"[0-9a-f]{24}", fullmatch=True)
# Ids as Clever sends them most of the time, and as a broken export might (blank, control characters...).
_IDS = st.one_of(_OBJECT_IDS, _OBJECT_IDS, _OBJECT_IDS, st.text(max_size=40), st.none(), st.integers())
# The roles rostersync syncs, each with the definition Clever gives its object.
_ROLES = {"student": "Student", "teacher": "Teacher", "staff": "Staff", "contact": "Contact"}


def _user(data: dict[str, Any], record_id: Any, role: str, role_data: Any, school: str) -> dict[str, Any]:
    roles = dict(data.get("roles") or {}) if isinstance(data.get("roles"), dict) else {}
    if isinstance(role_data, dict) and role != "contact":
        role_data = {**role_data, "school": role_data.get("school") or school}
    roles[role] = role_data
    return {"data": {**data, "id": record_id, "roles": roles}}


def _section(data: dict[str, Any], record_id: Any, school: Any) -> dict[str, Any]:
    return {"data": {**data, "id": record_id, "school": school}}


def clever_items(name: str) -> st.SearchStrategy[Any]:
    """List items (``{"data": {...}}``) of a Clever definition (``User``, ``Section``): most carry an id and,
    for a user, one of the roles rostersync syncs (its object from the schema), a few are hostile."""
    schema = from_schema(clever_schema(name))
    if name == "User":
        valid = st.one_of(
            *(
                st.builds(_user, schema, _IDS, st.just(role), from_schema(clever_schema(defn)), _OBJECT_IDS)
                for role, defn in _ROLES.items()
            )
        )
    elif name == "Section":
        valid = st.builds(_section, schema, _IDS, st.one_of(_OBJECT_IDS, _OBJECT_IDS, st.none(), st.text(max_size=8)))
    else:
        valid = st.builds(lambda data, record_id: {"data": {**data, "id": record_id}}, schema, _IDS)
    hostile = st.one_of(
        st.builds(lambda data: {"data": data}, schema),  # the schema's own id (or none), roles as generated
        st.just({}),
        st.builds(lambda v: {"data": v}, st.one_of(st.none(), st.text(max_size=5), st.integers(), st.lists(st.none()))),
        st.one_of(st.none(), st.text(max_size=5), st.integers()),
    )
    return st.one_of(valid, valid, valid, valid, hostile)


def _check_outputs(items: list[Any], outputs: list[Any], noun: str) -> tuple[int, int]:
    """Every item gave a record or a RecordError with a reason; return (records, errors)."""
    errors = [o for o in outputs if isinstance(o, RecordError)]
    records = [o for o in outputs if not isinstance(o, RecordError)]
    for error in errors:
        assert error.reason.strip(), f"a {noun} error without a reason: {error!r}"
    assert outputs, f"{len(items)} {noun} item(s) gave nothing, not even an error: {json.dumps(items)[:500]}"
    return len(records), len(errors)


def check_clever_users(item: Any) -> tuple[int, int]:
    """Map one generated Clever user; (records, errors) it gave. Raises AssertionError on a silent drop."""
    return _check_outputs([item], list(map_users([item])), "Clever user")


def check_clever_sections(item: Any) -> tuple[int, int]:
    return _check_outputs([item], list(map_sections([item], {}, {})), "Clever section")


# -- OneRoster CSV -------------------------------------------------------------------------------------

ONEROSTER_ROLES = ("teacher", "student", "parent", "guardian", "relative", "aide", "administrator")


@cache
def oneroster_columns(name: str) -> list[dict[str, Any]]:
    return list(json.loads((ONEROSTER_COLUMNS / f"{name}.json").read_text(encoding="utf-8")))


def oneroster_row_schema(name: str) -> dict[str, Any]:
    """A JSON Schema for one row of a OneRoster 1.1 CSV file, from the binding's column specification."""
    properties: dict[str, Any] = {}
    for column in oneroster_columns(name):
        properties[column["columnId"]] = {"type": "string", "maxLength": 40}
    if name == "users":
        # Mostly the binding's roles, sometimes anything.
        properties["role"] = {"anyOf": [{"enum": list(ONEROSTER_ROLES)}, {"type": "string", "maxLength": 12}]}
        properties["orgSourcedIds"] = {"anyOf": [{"const": "school-1"}, {"type": "string", "maxLength": 20}]}
    required = [c["columnId"] for c in oneroster_columns(name) if c.get("required")]
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False}


def oneroster_user_rows() -> st.SearchStrategy[list[dict[str, str]]]:
    """Batches of users.csv rows, generated from the binding's column specification."""
    return st.lists(from_schema(oneroster_row_schema("users")), min_size=1, max_size=8)


def _csv_text(columns: list[str], rows: list[dict[str, str]]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: row.get(c, "") for c in columns})
    return out.getvalue()


def oneroster_bundle(folder: Path, users: list[dict[str, str]]) -> None:
    """A OneRoster 1.1 CSV bundle: one school (``school-1``), and ``users`` as users.csv."""
    folder.mkdir(parents=True, exist_ok=True)
    manifest = [
        ("manifest.version", "1.0"),
        ("oneroster.version", "1.1"),
        ("file.orgs", "bulk"),
        ("file.users", "bulk"),
        *((f"file.{n}", "absent") for n in ("academicSessions", "categories", "classes", "classResources")),
        *((f"file.{n}", "absent") for n in ("courses", "courseResources", "demographics", "enrollments")),
        *((f"file.{n}", "absent") for n in ("lineItems", "resources", "results")),
    ]
    (folder / "manifest.csv").write_text(
        _csv_text(["propertyName", "value"], [{"propertyName": k, "value": v} for k, v in manifest]), encoding="utf-8"
    )
    org_columns = [c["columnId"] for c in oneroster_columns("orgs")]
    school = {"sourcedId": "school-1", "status": "active", "name": "School One", "type": "school"}
    (folder / "orgs.csv").write_text(_csv_text(org_columns, [school]), encoding="utf-8")
    user_columns = [c["columnId"] for c in oneroster_columns("users")]
    (folder / "users.csv").write_text(_csv_text(user_columns, users), encoding="utf-8")


def check_oneroster_users(rows: list[dict[str, str]]) -> tuple[int, int]:
    """Read a generated users.csv through the CSV provider; (records, errors). Raises AssertionError when
    an exception escaped or a row vanished without a record or an error."""
    with tempfile.TemporaryDirectory(prefix="generated-oneroster-") as tmp:
        oneroster_bundle(Path(tmp), rows)
        outcome = FetchOutcome()
        outputs = list(OneRosterCsvProvider(Path(tmp)).fetch(outcome))
    records = [o for o in outputs if not isinstance(o, RecordError) and getattr(o, "kind", None) is not None]
    people = [o for o in records if o.kind.value in ("students", "teachers", "staff", "guardians")]
    errors = [o for o in outputs if isinstance(o, RecordError)]
    for error in errors:
        assert error.reason.strip(), f"a OneRoster error without a reason: {error!r}"
    # Each row is a person, an error line, or (a file that broke off) the fetch marked incomplete.
    assert len(people) + len(errors) >= len(rows) or not outcome.complete, (
        f"{len(rows)} row(s) gave {len(people)} people and {len(errors)} errors"
    )
    return len(records), len(errors)
