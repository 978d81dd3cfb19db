"""Issue 4's "done when": from a product directory whose schools match nothing to a clean first sync,
with only the CLI and the self-check report (``samples/clever-demo/product-unmatched.json``, the README's
walkthrough). Every command goes through ``rostersync`` against the session stack by ``--endpoint``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from rostersync.providers.base import RetryPolicy
from rostersync_tools.cli import matching_commands
from rostersync_tools.cli.main import main
from rostersync_tools.local.simulator import ProviderSimulator

pytestmark = pytest.mark.e2e

DEMO = Path(__file__).resolve().parents[2] / "samples" / "clever-demo"
BRAEDEN, SANDRA = "603ebb2ab452fb006c76396d", "5a25ffb0c1bc2a00360003f2"


@pytest.fixture
def rostersync(stack: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setattr(matching_commands, "PROVIDER_RETRY", RetryPolicy(base_delay=0))

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([*argv, "--endpoint", stack.endpoint])
        out, err = capsys.readouterr()
        assert code == 2 or err == "", err
        return code, out

    return run


def checklist(report_dir: Path) -> dict[str, str]:
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    return {item["check"]: item["status"] for item in report["readiness"]}


def test_from_unmatched_schools_to_a_clean_first_sync_with_the_cli(
    rostersync: Any, demo_cut: Any, tmp_path: Path
) -> None:
    # The README's walkthrough, on the demo district cut to three sections a school and the two people the
    # product links (every school is there; the whole district's first sync is the same path, minutes longer)
    roster = demo_cut("snapshot-1", sections_per_school=3, users=(BRAEDEN, SANDRA))
    district = f"d-{uuid.uuid4().hex[:8]}"
    product = json.loads((DEMO / "product-unmatched.json").read_text(encoding="utf-8"))
    product["district"]["id"] = district
    product_file = tmp_path / "product.json"
    product_file.write_text(json.dumps(product), encoding="utf-8")
    with ProviderSimulator(roster.path, token=f"token-{uuid.uuid4().hex[:8]}") as simulator:
        token = tmp_path / "token"
        token.write_text(simulator.token, encoding="utf-8")
        d = ("--district", district)

        # The admin imports the product directory and connects Clever
        assert rostersync("import-product", "--file", str(product_file))[0] == 0
        connect = ("connect", *d, "--provider", "clever", "--base-url", simulator.base_url)
        assert rostersync(*connect, "--token-file", str(token))[0] == 0

        # A first self-check says what is wrong: no school is matched, so nothing would sync
        code, out = rostersync("self-check", *d, "--out", str(tmp_path / "check-1"))
        assert code == 1 and "not ready" in out
        assert checklist(tmp_path / "check-1")["Schools matched"] == "fail"

        # Schools match suggests the three pairs by school number, NCES id and state id; the admin accepts
        code, out = rostersync("schools", "match", *d)
        assert code == 0 and out.count("high") >= 3 and "Demo Adult Learning Center" in out
        code, out = rostersync("schools", "match", *d, "--accept", "high")
        assert code == 0

        # Settings: students match on their SIS id; classrooms named by course, period and teacher
        code, _ = rostersync(
            "settings",
            "set",
            *d,
            "student_match_id=sis_id",
            "classrooms.name_template={course} – P{period} ({teacher})",
        )
        assert code == 0

        # The second self-check is ready, and shows the product's teacher and student would be linked
        code, out = rostersync("self-check", *d, "--out", str(tmp_path / "check-2"))
        assert code == 0 and "ready for the first sync" in out
        assert "fail" not in checklist(tmp_path / "check-2").values()
        report = json.loads((tmp_path / "check-2" / "report.json").read_text(encoding="utf-8"))
        assert report["counts"]["teachers"]["linked"] == 1 and report["counts"]["students"]["linked"] == 1
        assert report["counts"]["schools"]["linked"] == 3

        # Enable: the product's event starts the first sync, which does what the self-check said
        code, out = rostersync("enable", *d, "--wait")
        assert code == 0 and "succeeded" in out
        exported = tmp_path / "directory.json"
        assert rostersync("export", *d, "--out", str(exported))[0] == 0
        directory = json.loads(exported.read_text(encoding="utf-8"))
        people = {p["id"]: p for p in directory["people"]}
        assert people["per-braeden-glover"]["provider_ids"] == {"clever": BRAEDEN}
        assert people["per-sandra-ritchie"]["provider_ids"] == {"clever": SANDRA}
        linked = [s for s in directory["schools"] if s["provider_ids"]]
        assert len(linked) == 3 and all(s["managed_by_sync"] for s in linked)

        # and its report is clean: succeeded, no errors, the same counts the ready self-check showed
        code, _ = rostersync("report", *d, "--out", str(tmp_path / "first-sync"))
        first = json.loads((tmp_path / "first-sync" / "report.json").read_text(encoding="utf-8"))
        assert code == 0 and (first["status"], first["errors_total"], first["dry_run"]) == ("succeeded", 0, False)
        assert first["counts"] == report["counts"]
