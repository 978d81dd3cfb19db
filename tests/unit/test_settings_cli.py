"""`rostersync settings` parsing: what is refused before any stack is reached, and the schema command."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from rostersync.settings import SCHEMA_PATH
from rostersync_tools.cli import settings_commands
from rostersync_tools.cli.main import main

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def no_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    """These commands must fail (or finish) without reaching a stack."""

    def refuse(args: argparse.Namespace) -> None:
        raise AssertionError("the command tried to reach a stack")

    monkeypatch.setattr(settings_commands, "connect_from_args", refuse)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_schema_prints_the_published_file(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "settings", "schema")
    assert code == 0
    assert out == (REPO_ROOT / SCHEMA_PATH).read_text(encoding="utf-8")
    assert json.loads(out)["$id"] == "urn:rostersync:schema:sync-settings"


def test_set_with_nothing_to_set_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "settings", "set", "--district", "d-1")
    assert code == 2
    assert err == "rostersync: settings set: nothing to change: give KEY=VALUE pairs or --file FILE\n"


@pytest.mark.parametrize(
    ("argument", "error"),
    [
        ("=off", "'=off' is not KEY=VALUE"),
        ("guardians.manage", "'guardians.manage' is not KEY=VALUE"),
        (
            "classroom.name_template={name}",
            "classroom.name_template: not a setting (did you mean classrooms.name_template?)",
        ),
        ("schedule.enabled=sometimes", "schedule.enabled: 'sometimes' is not on/off"),
        ("phones=home", "phones: give its fields one by one"),
    ],
)
def test_bad_keys_and_values_are_refused_before_reaching_the_stack(
    capsys: pytest.CaptureFixture[str], argument: str, error: str
) -> None:
    code, out, err = run(capsys, "settings", "set", "--district", "d-1", argument)
    assert code == 2
    assert out == "" and err.count("\n") == 1 and error in err


def test_district_is_required(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["settings", "show"])
    assert caught.value.code == 2
    assert "--district" in capsys.readouterr().err


def test_every_stack_command_takes_the_stack_arguments() -> None:
    parser = argparse.ArgumentParser()
    settings_commands.register(parser.add_subparsers())
    for command in ("show", "set", "history"):
        args = parser.parse_args(["settings", command, "--district", "d", "--endpoint", "http://x", "--stack", "s"])
        assert (args.endpoint, args.stack) == ("http://x", "s")
