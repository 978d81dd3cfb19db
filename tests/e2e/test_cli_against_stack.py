"""The CLI against a stack (issue 4, item 0): the admin's commands, run through ``main([...])`` with
``--endpoint``, against the session's embedded stack exactly as they would run against AWS with ``--stack``.

``local up --state`` runs in a subprocess (it serves a stack of its own, and moto's backends are global
to a process); the test waits on its endpoint answering, bounded.
"""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rostersync_tools.cli.connect import StackError, connect
from rostersync_tools.cli.main import main
from rostersync_tools.cli.run_commands import exit_code
from rostersync_tools.local.simulator import ProviderSimulator
from rostersync_tools.local.stack import free_port

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_SECONDS = 300  # generous: a loaded 2-core machine starts moto slowly


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_product(folder: Path, dataset: Path, district_id: str) -> Path:
    """product.json for a district whose schools carry the dataset's Clever school ids."""
    schools = json.loads((dataset / "schools.json").read_text(encoding="utf-8"))["data"]
    product = {
        "district": {"id": district_id, "name": "CLI District", "plan": "premium"},
        "schools": [
            {"id": f"sch-{district_id}-{n}", "name": s["data"]["name"], "provider_ids": {"clever": s["data"]["id"]}}
            for n, s in enumerate(schools)
        ],
    }
    path = folder / f"{district_id}-product.json"
    path.write_text(json.dumps(product), encoding="utf-8")
    return path


def executions(stack: Any) -> set[str]:
    pages = stack.client("stepfunctions").get_paginator("list_executions")
    arn = stack.outputs["SyncStateMachineArn"]
    return {e["executionArn"] for page in pages.paginate(stateMachineArn=arn) for e in page["executions"]}


@pytest.fixture
def simulator(synthetic: Any) -> Iterator[ProviderSimulator]:
    with ProviderSimulator(synthetic.path, token=f"token-{uuid.uuid4().hex[:12]}") as running:
        yield running


def test_the_admins_path_connect_import_self_check_sync_runs_report(
    stack: Any, synthetic: Any, simulator: ProviderSimulator, tmp_path: Path, capsys: Any
) -> None:
    endpoint = ("--endpoint", stack.endpoint)
    district_id = f"d-{uuid.uuid4().hex[:8]}"
    token_file = tmp_path / "token.txt"
    token_file.write_text(simulator.token + "\n", encoding="utf-8")

    # Given a district connected to its provider and its product directory imported, through the CLI
    code, out, err = cli(
        capsys,
        "connect",
        "--district",
        district_id,
        "--provider",
        "clever",
        "--base-url",
        simulator.base_url,
        "--token-file",
        str(token_file),
        *endpoint,
    )
    assert (code, err) == (0, "")
    # the secret is named after the stack, which is all Fetch's role may read
    name = f"rostersync/{stack.stack_name}/{district_id}/clever"
    assert name in out and simulator.token not in out
    handle = connect(stack.endpoint)
    secret = handle.client("secretsmanager").get_secret_value(SecretId=name)
    assert secret["SecretString"] == simulator.token

    product = write_product(tmp_path, synthetic.path, district_id)
    code, out, err = cli(capsys, "import-product", "--file", str(product), *endpoint)
    assert (code, err) == (0, "")
    assert f"Imported the product directory of {district_id}" in out
    before = tmp_path / "before.json"
    assert cli(capsys, "export", "--district", district_id, "--out", str(before), *endpoint)[0] == 0

    # When the admin runs the self-check
    report_dir = tmp_path / "self-check"
    code, out, err = cli(capsys, "self-check", "--district", district_id, "--out", str(report_dir), *endpoint)

    # Then it prints what the first sync would do, the link, and exits by the checklist's verdict
    assert err == ""
    report = json.loads((report_dir / "report.json").read_text(encoding="utf-8"))
    assert report["dry_run"] is True and report["trigger"] == "self_check"
    assert code == exit_code(report)
    assert "Self-check · succeeded" in out
    header = next(line for line in out.splitlines() if "created" in line and "unchanged" in line)
    assert header.split() == [
        "created",
        "updated",
        "linked",
        "restored",
        "would_archive",
        "unchanged",
        "skipped",
        "errors",
    ]
    students = next(line for line in out.splitlines() if line.strip().startswith("students"))
    assert students.split()[1] == str(len(synthetic.users("student")))
    assert "report: http" in out and "report.html" in out
    assert (report_dir / "report.html").is_file() and (report_dir / "students.csv").is_file()
    if report.get("readiness"):
        assert "Readiness:" in out
    # and nothing was written: the export is byte for byte the same
    after = tmp_path / "after.json"
    assert cli(capsys, "export", "--district", district_id, "--out", str(after), *endpoint)[0] == 0
    assert after.read_bytes() == before.read_bytes()

    # When the admin runs a sync, it does what the self-check said
    code, out, err = cli(capsys, "sync", "--district", district_id, *endpoint)
    assert (code, err) == (0, "")
    assert "Sync · succeeded" in out
    synced = next(line for line in out.splitlines() if line.strip().startswith("students"))
    assert synced.split()[1] == str(len(synthetic.users("student")))
    assert "would_archive" not in out

    # and both runs are listed, newest first
    code, out, err = cli(capsys, "runs", "--district", district_id, *endpoint)
    assert (code, err) == (0, "")
    table, _, hint = out.partition("\n\n")
    rows = [line.split() for line in table.splitlines()[1:]]
    assert [row[1] for row in rows] == ["manual", "self_check"]
    # and it ends with the command that opens a run's report where the admin is
    assert f"rostersync report --district {district_id} --run RUN --open" in hint
    assert rows[1][2:4] == ["(dry", "run)"]
    runs = handle.state(district_id).runs()
    self_check_run = next(r for r in runs if r.get("dry_run"))["sk"].removeprefix("RUN#")

    # and a report can be read back, the latest by default, or a given run
    code, out, _ = cli(capsys, "report", "--district", district_id, *endpoint)
    assert code == 0 and "Report · succeeded" in out and self_check_run not in out
    code, out, _ = cli(capsys, "report", "--district", district_id, "--run", self_check_run, *endpoint)
    assert self_check_run in out and "would_archive" in out


def test_enable_sends_sync_enabled_and_the_stacks_rule_starts_the_first_sync(
    stack: Any, district: Any, synthetic: Any, capsys: Any
) -> None:
    d = district(synthetic)

    code, out, err = cli(capsys, "enable", "--district", d.id, "--wait", "--endpoint", stack.endpoint)

    assert (code, err) == (0, "")
    assert '"Sync Enabled" sent' in out and "First sync started: run " in out
    (run,) = d.state.runs()
    assert run["trigger"] == "enabled" and run["status"] == "succeeded"
    assert run["sk"].removeprefix("RUN#") in out


def test_enable_for_a_district_not_in_the_stack_is_refused_and_starts_nothing(stack: Any, capsys: Any) -> None:
    code, out, err = cli(capsys, "enable", "--district", "d-nowhere", "--endpoint", stack.endpoint)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "--district d-nowhere: no such district" in err


def test_a_wrong_stack_name_is_one_line_and_exit_2(stack: Any, capsys: Any) -> None:
    code, out, err = cli(capsys, "runs", "--district", "d-x", "--endpoint", stack.endpoint, "--stack", "nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "no rostersync stack named 'nope'" in err and "/rostersync/nope/resources" in err
    with pytest.raises(StackError):
        connect(stack.endpoint, "nope")


def test_an_unreachable_endpoint_is_one_line_and_exit_2(capsys: Any) -> None:
    code, _, err = cli(capsys, "runs", "--district", "d-x", "--endpoint", f"http://127.0.0.1:{free_port()}")
    assert code == 2 and err.count("\n") == 1 and "cannot reach" in err


def test_an_upload_through_the_endpoint_starts_a_sync_and_other_objects_do_not(
    stack: Any, district: Any, synthetic: Any
) -> None:
    d = district(synthetic)
    s3 = connect(stack.endpoint).client("s3")
    bucket = stack.outputs["SyncBucketName"]

    before = executions(stack)
    # An object outside uploads/ (what runs write) starts nothing, nor does an upload that is not a bundle
    s3.put_object(Bucket=bucket, Key=f"runs/{d.id}/notes.txt", Body=b"x")
    s3.put_object(Bucket=bucket, Key=f"uploads/{d.id}/readme.txt", Body=b"x")
    assert executions(stack) == before

    # A bundle written through the endpoint (as an SFTP upload lands) starts one sync of its district
    key = f"uploads/{d.id}/night-1/bundle.zip"
    s3.put_object(Bucket=bucket, Key=key, Body=b"not really a zip")
    (arn,) = stack.publish_upload(key)
    execution = stack.wait(arn)
    assert json.loads(execution["input"]) == {"bundle_key": key, "trigger": "upload"}


# -- rostersync local up --state ------------------------------------------------------------------------------


def _local_up(state: Path, log: Path, attempts: int = 3) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``rostersync local up`` on free ports; wait until it answers.

    A port found free can be taken by someone else before the process binds it (another test worker,
    another suite on the machine): ``local up`` then refuses it on one line, and new ports are tried.
    """
    for _attempt in range(attempts):
        process, endpoint = _start_local_up(state, log, free_port(), free_port())
        if process is not None:
            return process, endpoint
    raise AssertionError(f"local up found its ports taken {attempts} times: {log.read_text(encoding='utf-8')}")


def _start_local_up(
    state: Path, log: Path, port: int, simulator_port: int
) -> tuple[subprocess.Popen[bytes] | None, str]:
    paths = [str(REPO_ROOT / "layers" / "core"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    start = log.stat().st_size if log.exists() else 0
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "rostersync_tools.cli.main", "local", "up", "--port", str(port)]
            + ["--simulator-port", str(simulator_port), "--state", str(state)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO_ROOT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + READY_SECONDS
    while True:
        # Ready once the stack answers with its resources parameter (created last).
        try:
            connect(endpoint)
            return process, endpoint
        except StackError:
            if process.poll() is not None:
                if b"already in use" in log.read_bytes()[start:]:
                    return None, endpoint
                raise AssertionError(f"local up did not come up: {log.read_text(encoding='utf-8')}") from None
            if time.monotonic() > deadline:
                process.kill()
                raise AssertionError(f"local up did not come up: {log.read_text(encoding='utf-8')}") from None
            time.sleep(0.2)


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        assert process.wait(timeout=300) == 0, log.read_text(encoding="utf-8")
    finally:
        if process.poll() is None:
            process.kill()


def test_local_up_saves_its_state_on_exit_and_loads_it_on_start(synthetic: Any, tmp_path: Path, capsys: Any) -> None:
    state, log = tmp_path / "state", tmp_path / "local-up.log"
    district_id = f"d-{uuid.uuid4().hex[:8]}"
    product = write_product(tmp_path, synthetic.path, district_id)
    token_env = f"ROSTERSYNC_TEST_TOKEN_{uuid.uuid4().hex[:6]}"
    os.environ[token_env] = "the-districts-token"

    # Given a stack served by `local up --state` where a district was set up
    process, endpoint = _local_up(state, log)
    try:
        assert cli(capsys, "import-product", "--file", str(product), "--endpoint", endpoint)[0] == 0
        code = cli(
            capsys,
            "connect",
            "--district",
            district_id,
            "--provider",
            "clever",
            "--base-url",
            "http://127.0.0.1:9",
            "--token-env",
            token_env,
            "--endpoint",
            endpoint,
        )[0]
        assert code == 0
        before = tmp_path / "before.json"
        assert cli(capsys, "export", "--district", district_id, "--out", str(before), "--endpoint", endpoint)[0] == 0
        handle = connect(endpoint)
        handle.client("s3").put_object(Bucket=handle.resources.sync_bucket, Key="runs/x/report.html", Body=b"<p>")
    finally:
        os.environ.pop(token_env, None)
        _stop(process, log)

    # When it is stopped, the state is saved in the documented files
    assert (state / "stack-state.json").is_file()
    # readable by its owner only: secretsmanager.jsonl holds the provider tokens in clear
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    modes = {p.relative_to(state).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in state.rglob("*")}
    assert modes["secretsmanager.jsonl"] == 0o600
    assert all(mode == (0o700 if (state / name).is_dir() else 0o600) for name, mode in modes.items()), modes
    items = (state / "dynamodb" / "DirectoryTable.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(items) == len(json.loads(before.read_text(encoding="utf-8"))["schools"])
    assert "Saved the state" in log.read_text(encoding="utf-8")

    # Then started again on the same folder, the district is still there, byte for byte
    process, endpoint = _local_up(state, log)
    try:
        after = tmp_path / "after.json"
        assert cli(capsys, "export", "--district", district_id, "--out", str(after), "--endpoint", endpoint)[0] == 0
        assert after.read_bytes() == before.read_bytes()
        handle = connect(endpoint)
        connection = handle.state(district_id).get_item("CONNECTION")
        assert connection is not None and connection["provider"] == "clever"
        secret = handle.client("secretsmanager").get_secret_value(SecretId=connection["secret_id"])
        assert secret["SecretString"] == "the-districts-token"
        body = handle.client("s3").get_object(Bucket=handle.resources.sync_bucket, Key="runs/x/report.html")
        assert body["Body"].read() == b"<p>"
    finally:
        _stop(process, log)
    assert "Loaded the saved state" in log.read_text(encoding="utf-8")


def test_local_up_refuses_a_state_folder_holding_other_files(tmp_path: Path, capsys: Any) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    code, out, err = cli(capsys, "local", "up", "--state", str(tmp_path))
    assert code == 2 and err.count("\n") == 1 and "holds other files" in err
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_local_up_refuses_a_state_it_cannot_load_and_leaves_it_as_it_was(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    header = json.dumps({"format": "someone-elses/9"})
    (state / "stack-state.json").write_text(header, encoding="utf-8")
    paths = [str(REPO_ROOT / "layers" / "core"), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
    argv = ["local", "up", "--port", str(free_port()), "--simulator-port", str(free_port()), "--state", str(state)]

    done = subprocess.run(
        [sys.executable, "-m", "rostersync_tools.cli.main", *argv], capture_output=True, text=True, env=env, timeout=600
    )

    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "cannot be loaded" in done.stderr and "someone-elses/9" in done.stderr
    assert [p.name for p in state.iterdir()] == ["stack-state.json"]
    assert (state / "stack-state.json").read_text(encoding="utf-8") == header
