"""One id rule at every entry point (issue 9, findings 4 and 6): record ids from every provider, district
ids from the CLI and the product import."""

from __future__ import annotations

import json
import unicodedata
from pathlib import Path

import pytest

from rostersync.admin import connect_provider
from rostersync.contracts import SyncRequest
from rostersync.domain.ids import ID_MAX_BYTES, district_id_problem, id_problem, shown_id
from rostersync.domain.records import Kind, RecordError
from rostersync.providers.base import FetchOutcome
from rostersync.providers.clever import CleverProvider
from rostersync.providers.oneroster_mapping import map_roster
from rostersync_tools.cli.main import main


@pytest.mark.parametrize("good", ["66ab0000955d9dc9f8000000", "stu-1", "{A1B2-C3}", "Élève_07", "x" * ID_MAX_BYTES])
def test_clean_ids_pass(good: str) -> None:
    assert id_problem(good) is None


@pytest.mark.parametrize(
    ("bad", "says"),
    [
        ("stu-1\x00", "control character"),
        ("stu\n1", "control character"),
        ("stu-\ufffd1", "not UTF-8"),
        ("stu-\udcff", "not UTF-8"),
        ("   ", "blank"),
        ("x" * 10_240, "10,240 bytes long"),
        ("é" * 200, "400 bytes long"),
    ],
)
def test_ids_that_are_not_clean_text_are_refused_with_the_reason(bad: str, says: str) -> None:
    assert says in (id_problem(bad) or "")


def test_every_ascii_character_is_judged_as_by_its_unicode_category() -> None:
    """Printable ASCII takes a short way past the character-by-character check: it must say the same."""
    for code in range(128):
        char = chr(code)
        problem = id_problem(f"stu-{char}-1")
        if unicodedata.category(char) == "Cc":
            assert problem is not None and "control character" in problem, repr(char)
        else:
            assert problem is None, repr(char)
    assert id_problem("x" * (ID_MAX_BYTES + 1)) == f"is {ID_MAX_BYTES + 1} bytes long; an id may be at most 255 bytes"
    assert id_problem("x" * 20, max_bytes=10) == "is 20 bytes long; an id may be at most 10 bytes"


def test_a_shown_id_escapes_what_is_hidden_and_is_short() -> None:
    assert shown_id("stu-1\x00") == "stu-1\\x00"
    assert len(shown_id("x" * 10_000)) <= 41


def _objects(**collections: list[dict]) -> object:
    return lambda name: collections.get(name, [])


def test_oneroster_a_user_with_a_corrupted_id_is_an_error_that_holds_archiving_of_people() -> None:
    # Given users of which one has a NUL in its sourcedId and one bytes that were not UTF-8
    users = [
        {"sourcedId": "stu-1", "role": "student", "givenName": "A", "familyName": "B", "orgs": []},
        {"sourcedId": "stu-2\x00", "role": "student", "givenName": "C", "familyName": "D", "orgs": []},
        {"sourcedId": "stu-3\ufffd", "role": "student", "givenName": "E", "familyName": "F", "orgs": []},
    ]
    items = list(map_roster(_objects(users=users), FetchOutcome()))

    # Then only the clean one is a record; each corrupted one is an error without an id to count as seen
    records = [i for i in items if not isinstance(i, RecordError)]
    errors = [i for i in items if isinstance(i, RecordError) and "its id" in i.reason]
    assert [r.provider_id for r in records if r.record_type == "person"] == ["stu-1"]
    assert len(errors) == 2 and all(e.provider_id == "" for e in errors)
    assert all(e.kind == Kind.STUDENTS and "people" in e.holds_archive for e in errors)
    assert "stu-2\\x00" in errors[0].reason and "not synced" in errors[0].reason


def test_clever_a_user_with_a_nul_in_its_id_is_an_error(tmp_path: Path) -> None:
    from rostersync.providers.clever import _unique_records

    items = [{"data": {"id": "66ab0000955d9dc9f8000000"}}, {"data": {"id": "66ab0000955d9dc9f80000\x00"}}]
    out = list(_unique_records(items, "user", lambda _d: Kind.STUDENTS))
    assert out[0] == ("66ab0000955d9dc9f8000000", items[0]["data"])
    assert isinstance(out[1], RecordError) and out[1].provider_id == "" and out[1].holds_archive
    assert CleverProvider  # the provider reads users through _unique_records


# -- district ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["d#1", "d 1", "", "d/1", "x" * 129, "d\x00"])
def test_district_ids_follow_one_rule(bad: str) -> None:
    assert district_id_problem(bad)
    with pytest.raises(ValueError, match="district"):
        SyncRequest(district_id=bad)


def test_import_product_refuses_a_district_id_with_a_hash(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Given a product file whose district id has a '#' (every run of it would be refused later)
    path = tmp_path / "product.json"
    path.write_text(json.dumps({"district": {"id": "d#1", "name": "D"}, "schools": []}), encoding="utf-8")

    code = main(["import-product", "--file", str(path), "--endpoint", "http://127.0.0.1:9"])

    # Then the command refuses it at once, saying why, before reaching any stack
    err = capsys.readouterr().err
    assert code == 2
    assert "district.id" in err and "letters, digits" in err


def test_connect_refuses_a_district_id_with_a_hash(capsys: pytest.CaptureFixture) -> None:
    argv = ["connect", "--district", "d#1", "--provider", "oneroster-csv", "--endpoint", "http://127.0.0.1:9"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and "--district" in err and "letters, digits" in err


def test_connect_provider_refuses_a_district_id_with_a_hash() -> None:
    class State:
        district_id = "d#1"

    with pytest.raises(ValueError, match="district id"):
        connect_provider(State(), None, "oneroster-csv")  # type: ignore[arg-type]
