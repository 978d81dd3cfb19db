"""Issue 11's "done when": the clean-up after the first sync, end to end on the embedded stack.

The demo district's product file (hand-made students, three of them duplicates of roster students, with
history) on a slice of the demo roster (the three sections those students are in, with their students,
teachers and contacts: ~70 users, not the 2,100) → first sync → `duplicates list` finds the planted
pairs and no other → `duplicates merge --file` moves every history item → `cleanup archive-unmanaged`
in one school, then in the district (the clean-up state machine), archives exactly the hand-made
non-duplicates and no sync-managed student → the next sync changes nothing of it → undo of both restores
the exact prior directory, compared item by item. Every step goes through the `rostersync` command.
"""

from __future__ import annotations

import csv
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from rostersync import aws
from rostersync.config import runtime_config
from rostersync.directory.history import HISTORY_COLLECTIONS, DirectoryItems, history_item
from rostersync.directory.keys import COLLECTIONS, synced_record_id
from rostersync_tools.cli.main import main

pytestmark = pytest.mark.e2e

DEMO = Path(__file__).resolve().parents[2] / "samples" / "clever-demo"
AP_ENGLISH = "5a25ffc265e950634b0001c1"  # Summit High; Clever's Erick Collins is in it
ERICK, NANCY, DANILO = "5a25ffb0c1bc2a00360003fc", "5a25ffb0c1bc2a00360003f4", "5a25ffb0c1bc2a00360003fe"
HAND_MADE_DUPLICATES = {ERICK: "per-stu-erick-collins", NANCY: "per-stu-nan-heller", DANILO: "per-stu-danilo-carter"}
SUMMIT_ONLY = {"per-stu-emma-collins", "per-stu-jonah-park"}
OTHER_SCHOOLS = {"per-stu-lena-ortiz", "per-stu-milo-grant"}


def demo_slice(dest: Path) -> Path:
    """snapshot-1 cut to the sections of Erick, Nancy and Danilo: their students, teachers and contacts."""
    shutil.copytree(DEMO / "snapshot-1", dest)

    def load(name: str) -> list[dict[str, Any]]:
        return json.loads((dest / f"{name}.json").read_text(encoding="utf-8"))["data"]

    def save(name: str, items: list[dict[str, Any]]) -> None:
        (dest / f"{name}.json").write_text(json.dumps({"data": items, "links": []}), encoding="utf-8")

    sections = load("sections")
    kept = [AP_ENGLISH]
    for student in (NANCY, DANILO):
        kept.append(next(s["data"]["id"] for s in sections if student in s["data"]["students"]))
    sections = [s for s in sections if s["data"]["id"] in kept]
    people = {p for s in sections for p in (*s["data"]["students"], *s["data"].get("teachers", []))}
    users = []
    for item in load("users"):
        data = item["data"]
        contact = data.get("roles", {}).get("contact")
        if contact is not None:
            contact["student_relationships"] = [r for r in contact["student_relationships"] if r["student"] in people]
            if contact["student_relationships"]:
                users.append(item)
        elif data["id"] in people:
            users.append(item)
    save("sections", sections)
    save("users", users)
    return dest


@pytest.fixture
def rostersync(stack: Any, capsys: pytest.CaptureFixture[str]) -> Any:
    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main([*argv, "--endpoint", stack.endpoint])
        out, err = capsys.readouterr()
        return code, out, err

    return run


def raw_directory(district_id: str) -> dict[tuple[str, str], dict[str, Any]]:
    """Every item of the district in the directory table, as stored (all attributes), read partition by
    partition (a scan would read every district of the session's stack)."""
    items = DirectoryItems(aws.client("dynamodb"), runtime_config().directory_table, district_id)
    return {
        (item["pk"], item["sk"]): item
        for collection in (*COLLECTIONS, *HISTORY_COLLECTIONS)
        for item in items.collection(collection)
    }


def differences(before: dict[Any, Any], after: dict[Any, Any]) -> list[str]:
    changed = [f"{k[1]}: {before[k]} → {after[k]}" for k in before.keys() & after.keys() if before[k] != after[k]]
    return sorted(
        [
            *(f"gone {k[1]}" for k in before.keys() - after.keys()),
            *(f"new {k[1]}" for k in after.keys() - before.keys()),
            *changed,
        ]
    )


def test_clean_up_after_the_first_sync(new_district: Any, demo_product: Any, rostersync: Any, tmp_path: Path) -> None:
    # Given the demo's product directory (hand-made students, three duplicating roster students, with
    # history) and a slice of the demo roster
    product = demo_product()
    district = new_district(demo_slice(tmp_path / "night-1"), product=product)
    d = district.id
    try:
        # When the first sync runs
        first = district.sync(export=False)
        assert first.status == "succeeded", first.report
        checklist = {i["check"]: i for i in first.report["readiness"]}
        # Then its report points at the clean-up: 7 hand-made students of 3 synced schools, 1 flagged pair
        assert checklist["Students not in the sync"]["detail"].startswith("7 in 3 schools")
        assert "rostersync cleanup archive-unmanaged" in checklist["Students not in the sync"]["action"]
        assert checklist["Possible duplicates"]["detail"].startswith("1 (")
        assert "rostersync duplicates list" in checklist["Possible duplicates"]["action"]
        synced = {c: synced_record_id(d, "people", "clever", c) for c in HAND_MADE_DUPLICATES}
        prior = raw_directory(d)

        # duplicates list finds exactly the planted pairs, the sync-managed student kept
        pairs_csv = tmp_path / "pairs.csv"
        code, out, _ = rostersync("duplicates", "list", "--district", d, "--out", str(pairs_csv))
        assert code == 0, out
        rows = list(csv.DictReader(pairs_csv.open(encoding="utf-8")))
        assert {(r["keep"], r["merge"]) for r in rows} == {(synced[c], h) for c, h in HAND_MADE_DUPLICATES.items()}

        # Bad input: one line, exit 2, nothing written
        broken = tmp_path / "broken.csv"
        broken.write_text("keep,merge,confirm\n" + f"{synced[ERICK]},per-stu-erick-collins,yes\n" + "per-x,,yes\n")
        for argv in (
            ("duplicates", "merge", "--district", d, "--file", str(broken)),
            ("duplicates", "merge", "--district", d, "--keep", synced[ERICK], "--merge", synced[ERICK]),
            ("duplicates", "merge", "--district", d, "--keep", synced[ERICK], "--merge", "per-nobody"),
            ("duplicates", "merge", "--district", "d-nowhere", "--keep", "a", "--merge", "b"),
            ("cleanup", "archive-unmanaged", "--district", d, "--school", "sch-nowhere"),
            ("cleanup", "archive-unmanaged", "--district", d, "--school", "sch-adult-learning"),
        ):
            code, out, err = rostersync(*argv)
            assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, (argv, out, err)
        assert raw_directory(d) == prior

        # The product gave Clever's Erick an allergy value of its own: a conflict the survivor wins
        items = DirectoryItems(aws.client("dynamodb"), runtime_config().directory_table, d)
        survivor_value = history_item(d, "student_attributes", "att-synced-erick", {})
        survivor_value["fields"] = {"student_id": synced[ERICK], "key": "allergy", "value": "tree nuts"}
        survivor_value["parent_key"] = f"{d}#{synced[ERICK]}"
        items.put_new([survivor_value])
        prior = raw_directory(d)

        # When the admin confirms every pair of the reviewed file
        reviewed = tmp_path / "reviewed.csv"
        reviewed.write_text(pairs_csv.read_text(encoding="utf-8").replace(",,", ",yes,"), encoding="utf-8")
        code, out, err = rostersync("duplicates", "merge", "--district", d, "--file", str(reviewed))
        assert code == 0, out + err
        merge_ids = re.findall(r"merge (mrg-\S+);", out)
        assert len(merge_ids) == 3, out
        # Then every history item of the merged students hangs on the survivor
        export = district.export()
        for clever_id, hand_made in HAND_MADE_DUPLICATES.items():
            keep = synced[clever_id]
            for collection in ("backpack_items", "interaction_logs"):
                assert not [i for i in export[collection] if i["student_id"] == hand_made]
            assert not [a for a in export["announcements"] if hand_made in a["recipient_ids"]]
            gone = next(p for p in export["people"] if p["id"] == hand_made)
            assert gone["status"] == "archived" and gone["merged_into"] == keep
            assert [
                a for a in export["student_attributes"] if a["student_id"] == hand_made and a["status"] == "active"
            ] == []
        by_id = {i["id"]: i for c in ("backpack_items", "interaction_logs", "student_attributes") for i in export[c]}
        assert by_id["bpk-erick-essay-rubric"]["student_id"] == synced[ERICK]
        assert by_id["log-nan-meeting"]["student_id"] == synced[NANCY]
        assert by_id["att-danilo-pickup"]["student_id"] == synced[DANILO]
        assert by_id["att-erick-lunch"]["student_id"] == synced[ERICK]
        # the conflicting attribute: the survivor's value wins, the other is archived (its value in the audit)
        assert by_id["att-synced-erick"]["value"] == "tree nuts" and by_id["att-erick-allergy"]["status"] == "archived"
        assert "attribute allergy: kept 'tree nuts'" in out
        recipients = {a["id"]: a["recipient_ids"] for a in export["announcements"]}
        assert recipients["ann-ap-exam-schedule"] == [synced[ERICK], "per-stu-emma-collins", "per-stu-jonah-park"]
        enrollments = {e["id"]: e for e in export["enrollments"]}
        # Erick was in AP English on both records: one membership stays (the sync's)
        assert enrollments["enr-erick-ap-english"]["status"] == "archived"
        assert enrollments["enr-danilo-chess"]["person_id"] == synced[DANILO]
        links = {g["id"]: g for g in export["guardian_links"]}
        assert links["gln-collins-erick"]["student_id"] == synced[ERICK]
        assert links["gln-carter-danilo"]["student_id"] == synced[DANILO]
        # merging again changes nothing
        merged = raw_directory(d)
        code, out, _ = rostersync("duplicates", "merge", "--district", d, "--file", str(reviewed))
        assert code == 0 and out.count("already") == 3 and raw_directory(d) == merged

        # When one school is cleaned up: a named sync-managed student is kept and counted
        code, out, _ = rostersync(
            "cleanup", "archive-unmanaged", "--district", d, "--school", "sch-summit-high", "--student", synced[ERICK]
        )
        assert code == 0 and "sync-managed and are never archived" in out and "Total: 0 to archive" in out
        code, out, _ = rostersync("cleanup", "archive-unmanaged", "--district", d, "--school", "sch-summit-high")
        assert code == 0 and "Total: 2 to archive" in out and raw_directory(d) == merged
        code, out, err = rostersync(
            "cleanup", "archive-unmanaged", "--district", d, "--school", "sch-summit-high", "--confirm"
        )
        assert code == 0, out + err
        school_batch = re.search(r"Clean-up (cln-\S+) started", out).group(1)
        # then the district: the clean-up state machine, school by school
        code, out, _ = rostersync(
            "cleanup", "archive-unmanaged", "--district", d, "--scope", "district", "--out", str(tmp_path / "p")
        )
        assert code == 0 and "Total: 2 to archive" in out
        assert {
            c["id"]
            for s in json.loads((tmp_path / "p" / "preview.json").read_text())["schools"]
            for c in s["to_archive"]
        } == OTHER_SCHOOLS
        code, out, err = rostersync("cleanup", "archive-unmanaged", "--district", d, "--scope", "district", "--confirm")
        assert code == 0 and "succeeded; archived 2" in out, out + err
        district_batch = re.search(r"Clean-up (cln-\S+) started", out).group(1)
        # Then exactly the hand-made non-duplicates are archived, and no sync-managed student
        people = {p["id"]: p for p in district.export()["people"]}
        archived_now = {i for i, p in people.items() if p["status"] == "archived"}
        assert archived_now == SUMMIT_ONLY | OTHER_SCHOOLS | set(HAND_MADE_DUPLICATES.values())
        assert all(p["status"] == "active" for p in people.values() if p["managed_by_sync"])
        assert people["per-guardian-collins"]["status"] == "active"  # other roles untouched
        report = json.loads(
            aws.client("s3")
            .get_object(Bucket=runtime_config().sync_bucket, Key=f"cleanups/{d}/{district_batch}/report/report.json")[
                "Body"
            ]
            .read()
        )
        assert report["status"] == "succeeded" and report["counts"] == {"archived": 2, "skipped": 0}
        assert len(report["schools"]) == 2  # one Map item per school

        # When the next sync runs, it changes nothing of it
        cleaned = raw_directory(d)
        again = district.sync(export=False)
        assert again.status == "succeeded" and again.directory_writes == 0
        assert raw_directory(d) == cleaned

        # When both clean-ups and the merges are undone, the directory is exactly as before
        for batch in (district_batch, school_batch):
            code, out, _ = rostersync("cleanup", "undo", batch, "--district", d)
            assert code == 0 and "restored" in out
        for merge_id in merge_ids:
            code, out, err = rostersync("duplicates", "undo", merge_id, "--district", d)
            assert code == 0, out + err
        assert differences(prior, raw_directory(d)) == []
    finally:
        district.close()


def test_a_transaction_on_the_stack_is_all_or_nothing_and_at_most_100_items(stack: Any) -> None:
    # The embedded stack backs up only the items a transaction writes (moto copied whole tables): a
    # failed condition must still leave every item as it was
    from botocore.exceptions import ClientError

    items = DirectoryItems(aws.client("dynamodb"), runtime_config().directory_table, "d-transact")
    first = history_item("d-transact", "backpack_items", "bpk-1", {"student_id": "s-1", "title": "before"})
    items.put_new([first])
    changed = {**first, "fields": {"student_id": "s-1", "title": "after"}}
    new = history_item("d-transact", "backpack_items", "bpk-2", {"student_id": "s-1"})
    refused = history_item("d-transact", "backpack_items", "bpk-3", {"student_id": "s-1"})
    with pytest.raises(Exception, match="ConditionalCheckFailed|conditional"):
        items.transact(
            [{"put": changed, "expect": {}}, {"put": new}, {"put": refused, "expect": {"status": "archived"}}]
        )
    assert items.get("backpack_items", "bpk-1") == first
    assert items.get("backpack_items", "bpk-2") is None and items.get("backpack_items", "bpk-3") is None
    with pytest.raises(ClientError, match="less than or equal to 100"):
        aws.client("dynamodb").transact_write_items(
            TransactItems=[
                {
                    "Put": {
                        "TableName": runtime_config().directory_table,
                        "Item": {"pk": {"S": f"d-transact#x#{n}"}, "sk": {"S": "i"}},
                    }
                }
                for n in range(101)
            ]
        )
