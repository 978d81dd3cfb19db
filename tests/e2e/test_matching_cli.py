"""The admin's steps 2 and 3 from the command line: match schools, link classrooms and people, then sync.

The commands run in-process against the session's embedded stack (``connect_from_args`` is given a
``StackHandle`` on it) and read the roster from the district's Clever simulator, as they would from Clever.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from rostersync.directory.product import ProductDirectory
from rostersync.domain.records import Kind
from rostersync.providers.base import RetryPolicy
from rostersync_tools.cli import matching_commands
from rostersync_tools.cli.main import main

pytestmark = pytest.mark.e2e

SUMMIT, RIDGEVIEW, LAKESIDE = "5a25ff950a5f621109000004", "5a25ff950a5f621109000005", "5a25ff950a5f621109000006"
NORTHSIDE, SOUTHSIDE = "603ebb29b452fb006c76395b", "603ebb29b452fb006c76395c"
A_STUDENT, A_DISTRICT_ADMIN = "5a25ffb0c1bc2a00360003ed", "603ebb2ab452fb006c7639ca"


@pytest.fixture
def cli(stack: Any, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Any]:
    """``cli("schools", "match", ...)`` → (exit code, stdout, stderr), against the session's stack."""
    monkeypatch.setattr(matching_commands, "PROVIDER_RETRY", RetryPolicy(base_delay=0))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--endpoint", stack.endpoint])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    return run


def without_clever_school_ids(product: ProductDirectory, roster: Any) -> ProductDirectory:
    """The product's schools with no Clever id, only the ids the district's SIS knows (school number, NCES
    and state ids, the product's own fields: extra="allow")."""
    ids = {s["id"]: s for s in roster.schools()}
    for school in product.schools:
        clever = school.provider_ids.pop("clever", None)
        if clever:
            for key in ("school_number", "nces_id", "state_id"):
                setattr(school, key, ids[clever][key])
    return product


@pytest.fixture
def unmatched(
    demo_dataset: Callable[[str], Any], demo_product: Callable[[], ProductDirectory], district: Any
) -> Iterator[Any]:
    """The demo district whose product schools carry no Clever id, only the ids the district's SIS knows."""
    roster = demo_dataset("snapshot-1")
    yield district(roster, product=without_clever_school_ids(demo_product(), roster))


# The sections a test that syncs keeps of the demo district: the product's linked classroom (AP English) and
# two of Ms. Greene's that share a name and a period (Kindergarten and grade 9), besides two a school.
AP_ENGLISH = "5a25ffc265e950634b0001c1"
GREENE_K = "5a25ffc265e950634b00017c"  # "Group Guidance - Greene - 0", period 0, Kindergarten; Greene has 4 sections
GREENE_9 = "5a25ffc265e950634b00018c"  # the same name and period, grade 9


@pytest.fixture
def demo_cut_for_sync(demo_cut: Callable[..., Any]) -> Any:
    """The demo district cut to the sections above and two a school, every school kept: what the tests that
    sync need of it (the schools, a linked classroom, Greene's two look-alike sections), a sync of seconds."""
    return demo_cut("snapshot-1", sections_per_school=2, sections=(AP_ENGLISH, GREENE_K, GREENE_9))


@pytest.fixture
def unmatched_cut(demo_cut_for_sync: Any, demo_product: Callable[[], ProductDirectory], district: Any) -> Iterator[Any]:
    """``unmatched`` on the cut demo district, for a test that syncs it."""
    yield district(demo_cut_for_sync, product=without_clever_school_ids(demo_product(), demo_cut_for_sync))


def test_schools_matched_from_the_cli_are_synced(cli: Any, unmatched_cut: Any) -> None:
    # Given a district whose product schools carry no provider id, a sync skips every school (the demo district
    # cut to a few sections: every school is there, and the sync takes seconds)
    code, out, err = cli("schools", "match", "--district", unmatched_cut.id, "--json")
    assert (code, err) == (0, "")
    listing = json.loads(out)
    assert {(s["product_id"], s["provider_id"], s["confidence"]) for s in listing["suggestions"]} == {
        ("sch-summit-high", SUMMIT, "high"),
        ("sch-ridgeview-elementary", RIDGEVIEW, "high"),
        ("sch-lakeside-middle", LAKESIDE, "high"),
    }
    assert [u["id"] for u in listing["unmatched_product"]] == ["sch-adult-learning"]
    assert sorted(u["id"] for u in listing["unmatched_provider"]) == [NORTHSIDE, SOUTHSIDE]
    assert listing["confirmed"] == []
    assert unmatched_cut.directory.get(Kind.SCHOOLS, "sch-summit-high").provider_ids == {}  # listing wrote nothing

    # When the admin accepts the high-confidence pairs
    code, out, err = cli("schools", "match", "--district", unmatched_cut.id, "--accept", "high")
    assert (code, err) == (0, "")
    assert "Northside Math & Science Academy" in out and "Demo Adult Learning Center" in out
    assert out.count(": linked") == 3

    # Then the schools carry the Clever ids and the first sync syncs them (and only them)
    run = unmatched_cut.sync()
    assert run.status == "succeeded", run.execution.get("cause")
    schools = run.by_clever_id("schools")
    assert {schools[c]["id"] for c in (SUMMIT, RIDGEVIEW, LAKESIDE)} == {
        "sch-summit-high",
        "sch-ridgeview-elementary",
        "sch-lakeside-middle",
    }
    assert NORTHSIDE not in schools and SOUTHSIDE not in schools
    assert run.counts("schools")["skipped"] == 2
    assert run.counts("classrooms")["created"] > 0 and run.counts("students")["created"] > 0

    # and accepting again is a no-op
    code, out, _ = cli("schools", "match", "--district", unmatched_cut.id, "--accept", "high")
    assert code == 0 and "Nothing was linked (no pair confirmed)" in out
    # and a school the sync now manages keeps its link
    code, _, err = cli("schools", "match", "--district", unmatched_cut.id, "--unlink", "sch-summit-high")
    assert code == 2 and "the sync already manages it through clever id" in err
    assert unmatched_cut.directory.get(Kind.SCHOOLS, "sch-summit-high").provider_ids == {"clever": SUMMIT}


def test_an_edited_csv_links_the_rows_marked_confirmed(cli: Any, unmatched: Any, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.csv"
    code, out, _ = cli("schools", "match", "--district", unmatched.id, "--out", str(pairs))
    assert code == 0 and f"--file {pairs}" in out
    rows = list(csv.DictReader(pairs.open(encoding="utf-8")))
    assert {r["product_id"] for r in rows if r["confidence"] == "high"} == {
        "sch-summit-high",
        "sch-ridgeview-elementary",
        "sch-lakeside-middle",
    }
    for row in rows:
        row["confirm"] = "yes" if row["product_id"] == "sch-summit-high" else ""
    with pairs.open("w", encoding="utf-8", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

    code, out, err = cli("schools", "match", "--district", unmatched.id, "--file", str(pairs), "--json")

    assert (code, err) == (0, "")
    assert json.loads(out)["confirmed"] == [{"product_id": "sch-summit-high", "provider_id": SUMMIT, "written": True}]
    assert unmatched.directory.find_by_provider_id(Kind.SCHOOLS, "clever", SUMMIT).id == "sch-summit-high"
    assert unmatched.directory.get(Kind.SCHOOLS, "sch-lakeside-middle").provider_ids == {}


@pytest.mark.parametrize(
    ("confirm", "message"),
    [
        (f"sch-nowhere={SUMMIT}", "no active product school 'sch-nowhere'"),
        ("sch-adult-learning=not-a-school", "'not-a-school' is not a school in the roster"),
        ("sch-adult-learning", "expected PRODUCT_ID=PROVIDER_ID"),
    ],
)
def test_bad_confirmations_are_one_line_errors_and_link_nothing(
    cli: Any, unmatched: Any, confirm: str, message: str
) -> None:
    code, out, err = cli(
        "schools", "match", "--district", unmatched.id, "--confirm", f"sch-summit-high={SUMMIT}", "--confirm", confirm
    )
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert unmatched.directory.get(Kind.SCHOOLS, "sch-summit-high").provider_ids == {}


def test_a_provider_school_already_linked_elsewhere_is_refused(cli: Any, unmatched: Any) -> None:
    assert cli("schools", "match", "--district", unmatched.id, "--confirm", f"sch-summit-high={SUMMIT}")[0] == 0
    code, _, err = cli("schools", "match", "--district", unmatched.id, "--confirm", f"sch-adult-learning={SUMMIT}")
    assert code == 2 and f"{SUMMIT} is already linked to school sch-summit-high" in err
    assert unmatched.directory.get(Kind.SCHOOLS, "sch-adult-learning").provider_ids == {}


def test_classrooms_match_lists_links_within_matched_schools_and_what_the_first_sync_does(
    cli: Any, unmatched: Any
) -> None:
    code, out, _ = cli("classrooms", "match", "--district", unmatched.id, "--json")
    assert code == 0
    before = json.loads(out)
    assert before["first_sync"]["unlinked_sections"] == 0  # no school matched: every section is outside
    assert before["first_sync"]["sections_in_unmatched_schools"] > 0

    cli("schools", "match", "--district", unmatched.id, "--accept", "high")
    code, out, _ = cli("classrooms", "match", "--district", unmatched.id, "--json")
    listing = json.loads(out)
    assert [x["product_id"] for x in listing["linked"]] == ["cls-ap-english-trantow"]
    assert "cls-chess-club" in [u["id"] for u in listing["unmatched_product"]]
    first = listing["first_sync"]
    assert first["create_for_unlinked_sections"] is True and first["would_create"] == first["unlinked_sections"] > 0
    # sections of the two unmatched schools are never offered
    assert all(u["reason"] == "its school is not matched" or u["school_id"] for u in listing["unmatched_provider"])

    code, out, _ = cli("classrooms", "match", "--district", unmatched.id)
    assert code == 0 and "the first sync creates a classroom for each" in out
    # the text lists the first sections only; --json (above) and --out have them all
    listed = out.split("Sections with no classroom to link", 1)[1]
    more = len(listing["unmatched_provider"]) - matching_commands.SECTIONS_SHOWN
    assert f"… and {more:,} more (--json or --out lists them all)" in listed


def test_a_classroom_is_never_linked_to_a_section_of_another_school(
    cli: Any, unmatched: Any, demo_dataset: Callable[[str], Any]
) -> None:
    cli("schools", "match", "--district", unmatched.id, "--accept", "high")
    section = next(s["id"] for s in demo_dataset("snapshot-1").sections() if s["school"] == SUMMIT)
    code, _, err = cli("classrooms", "match", "--district", unmatched.id, "--confirm", f"cls-chess-club={section}")
    assert code == 2 and "the section is in another school than classroom cls-chess-club" in err
    assert unmatched.directory.get(Kind.CLASSROOMS, "cls-chess-club").provider_ids == {}


def test_people_link_links_a_person_and_refuses_a_student_for_an_adult(cli: Any, unmatched: Any) -> None:
    code, out, err = cli("people", "link", "--district", unmatched.id, "--confirm", f"per-office-manager={A_STUDENT}")
    assert code == 2 and "a student is never linked to an adult" in err
    code, _, err = cli("people", "link", "--district", unmatched.id, "--confirm", "per-office-manager=nobody")
    assert code == 2 and "no user 'nobody'" in err

    code, out, err = cli(
        "people", "link", "--district", unmatched.id, "--confirm", f"per-office-manager={A_DISTRICT_ADMIN}"
    )

    assert (code, err) == (0, "")
    assert f"per-office-manager linked to clever user {A_DISTRICT_ADMIN}" in out
    found = unmatched.directory.find_by_provider_id(Kind.STAFF, "clever", A_DISTRICT_ADMIN)
    assert found is not None and found.id == "per-office-manager"


def test_a_provider_user_already_linked_to_another_person_is_refused(cli: Any, unmatched: Any) -> None:
    link = ("people", "link", "--district", unmatched.id, "--confirm")
    assert cli(*link, f"per-office-manager={A_DISTRICT_ADMIN}")[0] == 0
    assert cli(*link, f"per-office-manager={A_DISTRICT_ADMIN}")[1].startswith("per-office-manager already linked")

    code, _, err = cli(*link, f"per-pta-parent={A_DISTRICT_ADMIN}")

    assert code == 2 and f"clever id {A_DISTRICT_ADMIN} is already linked to per-office-manager" in err
    assert unmatched.directory.get(Kind.GUARDIANS, "per-pta-parent").provider_ids == {}


@pytest.fixture
def with_classroom(
    demo_cut_for_sync: Any, demo_product: Callable[[], ProductDirectory], district: Any
) -> Iterator[Any]:
    """The unmatched demo district (cut: it is synced), plus a product classroom of Ms. Greene's whose teacher
    the product knows by email only."""
    product = demo_product().model_dump(mode="json")
    ids = {s["id"]: s for s in demo_cut_for_sync.schools()}
    for school in product["schools"]:
        clever = school["provider_ids"].pop("clever", None)
        if clever:
            school.update({k: ids[clever][k] for k in ("school_number", "nces_id", "state_id")})
    product["people"].append(
        {"id": "per-greene", "roles": ["teacher"], "given_name": "Brianna", "family_name": "Greene",
         "email": " Brianna.Greene@Example.org", "school_ids": ["sch-summit-high"], "provider_ids": {}}
    )  # fmt: skip
    product["classrooms"].append(
        {"id": "cls-guidance-greene", "name": "Group Guidance (Ms. Greene)", "school_id": "sch-summit-high",
         "teacher_ids": ["per-greene"], "period": "P0", "grade": "K", "provider_ids": {}}
    )  # fmt: skip
    yield district(demo_cut_for_sync, product=ProductDirectory.model_validate(product))


def test_a_classroom_linked_from_the_cli_is_synced_in_place(cli: Any, with_classroom: Any) -> None:
    d = with_classroom
    assert cli("schools", "match", "--district", d.id, "--accept", "high")[0] == 0

    code, out, _ = cli("classrooms", "match", "--district", d.id, "--json")
    suggestions = {s["product_id"]: s for s in json.loads(out)["suggestions"]}
    greene = suggestions["cls-guidance-greene"]
    assert (greene["provider_id"], greene["confidence"], greene["school_id"]) == (GREENE_K, "high", "sch-summit-high")
    assert "same teacher (email)" in greene["reasons"] and "same grade (Kindergarten)" in greene["reasons"]

    code, out, err = cli("classrooms", "match", "--district", d.id, "--accept", "high")
    assert (code, err) == (0, "") and f"cls-guidance-greene (Group Guidance (Ms. Greene)) → {GREENE_K}" in out

    run = d.sync()
    assert run.status in ("succeeded", "succeeded_with_errors"), run.execution.get("cause")
    classrooms = run.by_clever_id("classrooms")
    assert classrooms[GREENE_K]["id"] == "cls-guidance-greene" and classrooms[GREENE_K]["managed_by_sync"]
    assert classrooms[GREENE_9]["id"] != "cls-guidance-greene"  # the grade-9 section got a classroom of its own
    assert sum(1 for c in run.records("classrooms") if c["provider_ids"].get("clever") == GREENE_K) == 1


def test_a_wrong_pair_is_unlinked_before_the_first_sync(cli: Any, unmatched: Any) -> None:
    assert cli("schools", "match", "--district", unmatched.id, "--confirm", f"sch-adult-learning={NORTHSIDE}")[0] == 0
    code, _, err = cli(
        "schools", "match", "--district", unmatched.id, "--unlink", "sch-adult-learning", "--accept", "high"
    )
    assert code == 2 and "run it on its own" in err

    code, out, err = cli("schools", "match", "--district", unmatched.id, "--unlink", "sch-adult-learning")

    assert (code, err) == (0, "") and f"sch-adult-learning: unlinked from clever id {NORTHSIDE}" in out
    assert unmatched.directory.get(Kind.SCHOOLS, "sch-adult-learning").provider_ids == {}
    assert unmatched.directory.find_by_provider_id(Kind.SCHOOLS, "clever", NORTHSIDE) is None
    code, _, err = cli("schools", "match", "--district", unmatched.id, "--unlink", "sch-nowhere")
    assert code == 2 and "--unlink sch-nowhere: no such record" in err


def test_classrooms_match_follows_the_districts_settings(
    cli: Any, unmatched: Any, demo_dataset: Callable[[str], Any]
) -> None:
    cli("schools", "match", "--district", unmatched.id, "--accept", "high")
    unmatched.state.put_item(
        "SETTINGS",
        {"settings": {"classrooms": {"create_for_unlinked_sections": False}, "schools_in_scope": ["sch-summit-high"]},
         "version": 1},
    )  # fmt: skip
    sections = demo_dataset("snapshot-1").sections()
    summit = sum(1 for s in sections if s["school"] == SUMMIT)
    other_matched = sum(1 for s in sections if s["school"] in (RIDGEVIEW, LAKESIDE))

    code, out, _ = cli("classrooms", "match", "--district", unmatched.id, "--json")

    first = json.loads(out)["first_sync"]
    assert code == 0 and first["create_for_unlinked_sections"] is False
    # Summit's sections but the one already linked (AP English) would be skipped, none created
    assert (first["would_create"], first["would_skip"]) == (0, summit - 1)
    assert first["sections_out_of_scope"] == other_matched
    code, out, _ = cli("classrooms", "match", "--district", unmatched.id)
    assert "classrooms.create_for_unlinked_sections off, the first sync skips them" in out


def test_a_district_without_a_connection_is_one_line_saying_what_to_do(cli: Any) -> None:
    code, out, err = cli("schools", "match", "--district", "d-never-connected")
    assert code == 2 and out == ""
    assert err.strip() == (
        "rostersync: cannot read district d-never-connected's roster: district d-never-connected has no provider "
        "connection (connect it first: rostersync connect --district d-never-connected --provider …)"
    )
