"""`rostersync demo` rejects bad arguments with one line naming the file and the problem (exit 2)."""

import json

import pytest

from rostersync.local.cli import main


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
