"""What the command line reads from the user: datasets, bundles, product files, and the usage error."""

from __future__ import annotations

import io
import json
import logging
import os
import zipfile
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from rostersync_tools import REPO_ROOT

SAMPLE = REPO_ROOT / "samples" / "clever-demo"
DEFAULT_DATASETS = [SAMPLE / "snapshot-1", SAMPLE / "snapshot-2", SAMPLE / "snapshot-3"]
DATASET_FILES = ("districts.json", "schools.json", "sections.json", "users.json", "terms.json", "courses.json")
DEMO_TOKEN = "demo-district-token"  # noqa: S105 - the local simulator's token, not a secret


class UsageError(Exception):
    """A bad argument or unreadable input: reported on one line, exit code 2."""


def dataset_kind(path: Path) -> str:
    """``oneroster`` for a OneRoster CSV bundle (a zip, or a folder with manifest.csv), else ``clever``."""
    if (
        path.suffix.lower() == ".zip"
        or (path / "manifest.csv").exists()
        or (path / "users.csv").exists()
        and not (path / "districts.json").exists()
    ):
        return "oneroster"
    return "clever"


def check_dataset(path: Path) -> Path:
    """A dataset is a folder of Clever list responses, or a OneRoster CSV bundle (folder or zip)."""
    if path.suffix.lower() == ".zip":
        if not path.is_file():
            raise UsageError(f"{path}: no such OneRoster bundle")
        try:
            with zipfile.ZipFile(path) as bundle:
                names = [n.rsplit("/", 1)[-1].lower() for n in bundle.namelist()]
        except zipfile.BadZipFile as exc:
            raise UsageError(f"{path}: not a zip file") from exc
        if "users.csv" not in names:
            raise UsageError(f"{path}: not a OneRoster bundle (no users.csv)")
        return path
    if not path.is_dir():
        raise UsageError(f"{path}: not a folder of Clever list responses or a OneRoster bundle")
    if dataset_kind(path) == "oneroster":
        return path
    found = [name for name in DATASET_FILES if (path / name).exists()]
    if not found:
        raise UsageError(f"{path}: holds none of {', '.join(DATASET_FILES)} (nor a OneRoster manifest.csv)")
    for name in found:
        file = path / name
        try:
            body = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"{file}: cannot be read ({exc.__class__.__name__})") from exc
        except json.JSONDecodeError as exc:
            raise UsageError(f"{file}: not valid JSON (line {exc.lineno}, column {exc.colno})") from exc
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list | dict):
            raise UsageError(f'{file}: not a Clever list response (no "data" list)')
    return path


def bundle_bytes(path: Path) -> bytes:
    """A OneRoster bundle as zip bytes, as a district's SFTP upload would deliver it."""
    if path.suffix.lower() == ".zip":
        return path.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        for file in sorted(path.glob("*.csv")):
            bundle.write(file, file.name)
    return buffer.getvalue()


def choose_provider(datasets: list[Path], asked: str | None) -> str:
    kinds = {dataset_kind(d) for d in datasets}
    if len(kinds) > 1:
        raise UsageError("--dataset: mix of Clever datasets and OneRoster bundles; give one kind per demo")
    kind = kinds.pop()
    provider = asked or ("clever" if kind == "clever" else "oneroster-csv")
    if (provider == "clever") != (kind == "clever"):
        raise UsageError(
            f"--provider {provider}: the datasets are {'Clever' if kind == 'clever' else 'OneRoster'} data"
        )
    return provider


def check_product(path: Path) -> Any:
    from rostersync.directory.product import ProductDirectory

    try:
        return ProductDirectory.model_validate_json(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise UsageError(f"{path}: cannot be read ({exc.strerror or exc.__class__.__name__})") from exc
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UsageError(f"{path}: not a product directory file: {where}: {first['msg']}") from exc


def quiet_logs() -> None:
    """Silence the chatter of the local stack's libraries on the console."""
    for name in ("werkzeug", "moto", "botocore", "urllib3"):
        logging.getLogger(name).setLevel(logging.CRITICAL)


def check_out_folder(out: Path) -> Path:
    """``--out``, refused before anything runs when it cannot hold the reports (one line, exit code 2)."""
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {out}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"--out {out}: {parent} is not writable")
            break
    return out
