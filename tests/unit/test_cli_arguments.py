"""`rostersync demo` rejects bad arguments with one line naming the file and the problem (exit 2)."""

import json

import pytest

from rostersync_tools.cli import run_commands
from rostersync_tools.cli.main import main
from rostersync_tools.cli.main import main as cli_main


def run(capsys, *argv):
    code = main(["demo", *argv])
    err = capsys.readouterr().err.strip()
    return code, err


def test_a_missing_dataset_folder_is_named(tmp_path, capsys):
    code, err = run(capsys, "--dataset", str(tmp_path / "nowhere"))
    assert code == 2
    assert err.count("\n") == 0
    assert str(tmp_path / "nowhere") in err and "not a folder" in err


def test_a_folder_without_clever_files_is_rejected(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("hello")
    code, err = run(capsys, "--dataset", str(tmp_path))
    assert code == 2
    assert "holds none of" in err


def test_invalid_json_names_the_file_and_the_position(tmp_path, capsys):
    (tmp_path / "users.json").write_text('{"data": [')
    code, err = run(capsys, "--dataset", str(tmp_path))
    assert code == 2
    assert str(tmp_path / "users.json") in err and "not valid JSON (line 1" in err


def test_a_json_file_that_is_not_a_list_response_is_rejected(tmp_path, capsys):
    (tmp_path / "sections.json").write_text(json.dumps({"items": []}))
    code, err = run(capsys, "--dataset", str(tmp_path))
    assert code == 2
    assert 'no "data" list' in err


def test_a_product_file_missing_the_district_is_rejected(tmp_path, capsys):
    dataset = tmp_path / "d"
    dataset.mkdir()
    (dataset / "users.json").write_text(json.dumps({"data": []}))
    product = tmp_path / "product.json"
    product.write_text(json.dumps({"schools": []}))
    code, err = run(capsys, "--dataset", str(dataset), "--product", str(product))
    assert code == 2
    assert str(product) in err and "district" in err


def test_a_page_limit_over_clevers_maximum_is_rejected(capsys):
    code, err = run(capsys, "--page-limit", "20000")
    assert code == 2
    assert "--page-limit 20000" in err


def test_an_unknown_option_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["demo", "--no-such-flag"])
    assert exit_info.value.code == 2


# -- the commands that talk to a stack refuse bad input before reaching it -------------------------------


NOWHERE = ("--endpoint", "http://127.0.0.1:9")  # never reached: the arguments are refused first


def run_cli(capsys, *argv):
    code = cli_main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err.strip()


def test_connect_clever_without_a_token_is_refused(capsys):
    code, _, err = run_cli(
        capsys, "connect", "--district", "d1", "--provider", "clever", "--base-url", "https://api.clever.com", *NOWHERE
    )
    assert code == 2 and err.count("\n") == 0
    assert "--token-file F or --token-env VAR" in err


def test_connect_with_an_empty_token_file_is_refused_and_the_file_named(tmp_path, capsys):
    token = tmp_path / "token.txt"
    token.write_text("\n")
    argv = (
        "connect",
        "--district",
        "d1",
        "--provider",
        "clever",
        "--base-url",
        "https://x",
        "--token-file",
        str(token),
    )
    code, _, err = run_cli(capsys, *argv, *NOWHERE)
    assert code == 2 and f"--token-file {token}: is empty" in err


def test_connect_with_an_unset_token_variable_is_refused(capsys, monkeypatch):
    monkeypatch.delenv("NO_SUCH_TOKEN_VAR", raising=False)
    argv = ("connect", "--district", "d1", "--provider", "clever", "--base-url", "https://x")
    code, _, err = run_cli(capsys, *argv, "--token-env", "NO_SUCH_TOKEN_VAR", *NOWHERE)
    assert code == 2 and "--token-env NO_SUCH_TOKEN_VAR" in err


def test_connect_oauth1_needs_a_json_key_and_secret_and_never_prints_the_token(capsys, monkeypatch):
    monkeypatch.setenv("OR_TOKEN", "plain-secret-value")
    argv = (
        "connect",
        "--district",
        "d1",
        "--provider",
        "oneroster-rest",
        "--base-url",
        "https://x",
        "--auth",
        "oauth1",
    )
    code, out, err = run_cli(capsys, *argv, "--token-env", "OR_TOKEN", *NOWHERE)
    assert code == 2 and '{"key": …, "secret": …}' in err
    assert "plain-secret-value" not in out + err


def test_connect_oauth2_needs_a_token_url(capsys, monkeypatch):
    monkeypatch.setenv("OR_TOKEN", '{"key": "k", "secret": "s"}')
    argv = (
        "connect",
        "--district",
        "d1",
        "--provider",
        "oneroster-rest",
        "--base-url",
        "https://x",
        "--auth",
        "oauth2",
    )
    code, _, err = run_cli(capsys, *argv, "--token-env", "OR_TOKEN", *NOWHERE)
    assert code == 2 and "--token-url is required" in err


def test_connect_csv_takes_no_base_url(capsys):
    argv = ("connect", "--district", "d1", "--provider", "oneroster-csv", "--base-url", "https://x")
    code, _, err = run_cli(capsys, *argv, *NOWHERE)
    assert code == 2 and "no --base-url or token" in err


def test_auth_is_only_for_oneroster_rest(capsys, monkeypatch):
    monkeypatch.setenv("TOKEN", "t")
    argv = ("connect", "--district", "d1", "--provider", "clever", "--base-url", "https://x", "--auth", "oauth1")
    code, _, err = run_cli(capsys, *argv, "--token-env", "TOKEN", *NOWHERE)
    assert code == 2 and "only for --provider oneroster-rest" in err


def test_import_product_of_a_missing_file_is_refused(tmp_path, capsys):
    code, _, err = run_cli(capsys, "import-product", "--file", str(tmp_path / "none.json"), *NOWHERE)
    assert code == 2 and str(tmp_path / "none.json") in err and "cannot be read" in err


def test_local_up_refuses_equal_ports(capsys):
    code, _, err = run_cli(capsys, "local", "up", "--port", "45999", "--simulator-port", "45999")
    assert code == 2 and "must differ" in err


# -- printing a run -----------------------------------------------------------------------------------------

REPORT = {
    "status": "succeeded",
    "dry_run": True,
    "counts": {"students": {"created": 1200, "linked": 3, "would_archive": 2}, "schools": {"skipped": 1}},
    "notes": ["Self-check: nothing was written."],
    "errors": [],
    "readiness": [
        {"status": "pass", "check": "Schools matched", "detail": "3 of 3", "action": ""},
        {"status": "fail", "check": "Sections without a teacher", "detail": "4", "action": "Fix them in the SIS"},
    ],
    "ready": False,
}


def test_a_self_check_prints_would_archive_instead_of_archived_and_the_checklist(capsys):
    run_commands.print_run(REPORT, "Self-check", "http://link")
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert (
        tuple(lines[1].split()) == run_commands.COUNT_COLUMNS[:4] + ("would_archive",) + run_commands.COUNT_COLUMNS[5:]
    )
    assert next(line for line in lines if line.strip().startswith("students")).split() == [
        "students",
        "1,200",
        "0",
        "3",
        "0",
        "2",
        "0",
        "0",
        "0",
    ]
    assert "Readiness: not ready (1 to fix)" in out
    assert "[FAIL] Sections without a teacher: 4" in out and "→ Fix them in the SIS" in out
    assert "[pass] Schools matched: 3 of 3" in out
    assert out.rstrip().endswith("report: http://link")


def test_a_real_run_shows_archived_and_adds_would_archive_only_when_archiving_was_held_back():
    real = {**REPORT, "dry_run": False, "counts": {"students": {"archived": 1}}}
    assert run_commands.counts_table(real).splitlines()[0].split() == list(run_commands.COUNT_COLUMNS)
    held = {**REPORT, "dry_run": False, "counts": {"students": {"would_archive": 9}}}
    assert "would_archive" in run_commands.counts_table(held).splitlines()[0].split()
    assert "archived" in run_commands.counts_table(held).splitlines()[0].split()


def test_exit_code_follows_the_checklist_and_the_status():
    assert run_commands.exit_code(REPORT) == 1
    ready = {**REPORT, "readiness": REPORT["readiness"][:1], "ready": True}
    assert run_commands.exit_code(ready) == 0
    assert run_commands.exit_code({"status": "succeeded"}) == 0  # a report without a checklist
    assert run_commands.exit_code({"status": "failed"}) == 1
    assert run_commands.exit_code({"status": "threshold_exceeded"}) == 1
    assert run_commands.readiness_lines({"status": "succeeded"}) == []


class _StillRunning:
    def describe_execution(self, executionArn):  # noqa: N803 - boto3's name
        return {"status": "RUNNING", "executionArn": executionArn}


class _Handle:
    def client(self, service):
        return _StillRunning()


def test_waiting_is_bounded_and_shows_progress(capsys):
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds

    with pytest.raises(run_commands.RunStillRunningError, match="still running after 40s"):
        run_commands.wait_for_execution(_Handle(), "arn:x:run-1", timeout=40, sleep=sleep, clock=lambda: now[0])
    assert capsys.readouterr().out.count("still running") == 2  # at 15 s and 30 s


def test_a_run_outlasting_the_wait_is_exit_1_with_where_to_find_it(capsys):
    import argparse

    args = argparse.Namespace(district="d1", timeout=-1, out=None)
    assert run_commands.wait_and_show(_Handle(), args, "arn:aws:states:x:execution:sm:run-7", "Sync") == 1
    out = capsys.readouterr().out
    assert "run run-7 still running" in out and "rostersync report --district d1 --run run-7" in out


def test_a_real_run_lists_only_the_checks_that_need_a_look():
    real = {**REPORT, "dry_run": False}
    lines = run_commands.readiness_lines(real)
    assert lines[0] == "  To review:"
    assert not any("[pass]" in line for line in lines) and any("[FAIL] Sections without a teacher" in x for x in lines)
    passing = {**real, "readiness": [c for c in REPORT["readiness"] if c["status"] == "pass"]}
    assert run_commands.readiness_lines(passing) == []
