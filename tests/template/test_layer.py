"""The CoreLayer as ``sam build`` builds it: ``make build-CoreLayer`` in a scratch copy of ``layers/core``
with ``ARTIFACTS_DIR`` set, here into a pytest temporary folder.

What the functions run on is arm64 with CPython 3.12 (template.yaml Globals). This machine is x86_64 with
CPython 3.11 and has no Python 3.12, so an aarch64/cp312 compiled module cannot be imported here. The
arm64 build is therefore checked by what it holds (only runtime code) and by its compiled modules' ELF
headers and tags; the imports are checked on a host-platform build of the very same recipe (only the
PLATFORM and PYTHON_VERSION make variables differ), from which every handler must import with the tools,
moto and PyYAML made unimportable. Needs the package index (pip), as ``sam build`` does.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

# The layer is built once a session: the module stays on one test worker.

ROOT = Path(__file__).resolve().parents[2]
LAYER_SOURCE = ROOT / "layers" / "core"
HANDLERS = sorted(ROOT.glob("functions/*/app.py"))

EM_AARCH64 = 183  # ELF e_machine of ARM 64-bit
# What may never be in the layer: the tools, what only the tools and tests use, and what the Lambda
# Python runtime already provides.
NOT_IN_THE_LAYER = {"rostersync_tools", "moto", "yaml", "_yaml", "boto3", "botocore", "s3transfer"}
# What the Lambda Python runtime provides beside the standard library; a handler may import these from
# outside the layer (here: from the test's own environment).
LAMBDA_RUNTIME_PROVIDED = {"boto3", "botocore", "s3transfer", "jmespath", "dateutil", "six", "urllib3"}


def build_layer(workdir: Path, **make_variables: str) -> Path:
    """Build the layer as SAM does (a scratch copy of the source folder, ``make build-<LogicalId>``).

    The scratch copy carries what a development checkout has beside the code: bytecode caches and
    the editable install's egg-info.
    """
    scratch = workdir / "scratch"
    shutil.copytree(LAYER_SOURCE, scratch, ignore=shutil.ignore_patterns(".aws-sam", ".git"))
    leftover = scratch / "rostersync" / "__pycache__"
    leftover.mkdir(exist_ok=True)
    (leftover / "leftover.cpython-311.pyc").write_bytes(b"\0")
    artifacts = workdir / "artifacts"
    variables = [f"{name}={value}" for name, value in make_variables.items()]
    done = subprocess.run(
        ["make", "--makefile", str(scratch / "Makefile"), "build-CoreLayer", *variables],
        cwd=scratch,
        env={**os.environ, "ARTIFACTS_DIR": str(artifacts)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, f"make build-CoreLayer failed:\n{done.stdout}\n{done.stderr}"
    return artifacts / "python"


@pytest.fixture(scope="session")
def layers(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The Lambda build (the Makefile's defaults) and the host build, built side by side once a session."""
    host = {
        "PLATFORM": f"manylinux2014_{platform.machine()}",
        "PYTHON_VERSION": f"{sys.version_info.major}.{sys.version_info.minor}",
    }
    with ThreadPoolExecutor(max_workers=2) as pool:
        arm64 = pool.submit(build_layer, tmp_path_factory.mktemp("layer-arm64"))
        native = pool.submit(build_layer, tmp_path_factory.mktemp("layer-host"), **host)
        return {"arm64": arm64.result(), "host": native.result()}


def top_level_names(layer: Path) -> set[str]:
    return {p.name.removesuffix(".py") for p in layer.iterdir() if not p.name.endswith((".dist-info", ".pth"))}


def test_the_layer_ships_the_runtime_package_and_nothing_of_the_tools(layers):
    layer = layers["arm64"]
    names = top_level_names(layer)

    assert {"rostersync", "pydantic", "pydantic_core", "aws_lambda_powertools", "tzdata"} <= names
    assert names & NOT_IN_THE_LAYER == set()
    shipped = {p.relative_to(layer / "rostersync") for p in (layer / "rostersync").rglob("*") if p.is_file()}
    source = {
        p.relative_to(LAYER_SOURCE / "rostersync")
        for p in (LAYER_SOURCE / "rostersync").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    assert shipped == source


def test_the_layer_holds_no_bytecode_and_no_egg_info(layers):
    layer = layers["arm64"]
    leftovers = [
        str(p.relative_to(layer))
        for p in layer.rglob("*")
        if p.name == "__pycache__" or p.suffix == ".pyc" or p.name.endswith(".egg-info")
    ]

    assert leftovers == []


def test_the_layer_has_each_pinned_requirement_at_its_version(layers):
    installed = dict(
        p.name.removesuffix(".dist-info").lower().replace("_", "-").rsplit("-", 1)
        for p in layers["arm64"].glob("*.dist-info")
    )
    pins = {}
    for line in (LAYER_SOURCE / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, version = line.split("==")
            pins[name.split("[")[0].lower().replace("_", "-")] = version

    assert pins
    assert {name: installed.get(name) for name in pins} == pins


def elf_machine(path: Path) -> int | None:
    """e_machine of a 64-bit little-endian ELF file, or None when the file is no such ELF."""
    header = path.read_bytes()[:20]
    if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
        return None
    return int.from_bytes(header[18:20], "little")


def test_every_compiled_module_is_an_aarch64_cpython_312_module(layers):
    compiled = sorted(layers["arm64"].rglob("*.so"))
    names = [p.name for p in compiled]

    assert any(name.startswith("_pydantic_core.") for name in names)
    assert {p.name: elf_machine(p) for p in compiled} == dict.fromkeys(names, EM_AARCH64)
    untagged = [n for n in names if not n.endswith((".cpython-312-aarch64-linux-gnu.so", ".abi3.so"))]
    assert untagged == []


def test_every_wheel_in_the_layer_is_pure_python_or_built_for_arm64_cpython_312(layers):
    wrong = {}
    for wheel in layers["arm64"].glob("*.dist-info/WHEEL"):
        tags = [line.split(":", 1)[1].strip() for line in wheel.read_text().splitlines() if line.startswith("Tag:")]
        for tag in tags:
            interpreter, abi, platform_tag = tag.split("-")
            pure = abi == "none" and platform_tag == "any"
            for_lambda = "aarch64" in platform_tag and ("cp312" in interpreter or abi == "abi3")
            if not (pure or for_lambda):
                wrong.setdefault(wheel.parent.name, []).append(tag)

    assert wrong == {}


# The handlers' imports, in a fresh interpreter whose path starts with the host build of the layer (as
# Lambda puts /opt/python before its runtime's packages). The test's own environment stands for the
# Lambda runtime's packages (boto3 and its dependencies); the tools, moto and PyYAML, which it also
# holds, are made unimportable.
IMPORT_HANDLERS = r"""
import importlib.abc, json, sys, sysconfig

BLOCKED = {"moto", "yaml", "rostersync_tools"}


class NotInTheLambdaRuntime(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in BLOCKED:
            raise ImportError(f"{fullname} is not available on Lambda")
        return None


sys.meta_path.insert(0, NotInTheLambdaRuntime())
layer, handler_dirs = sys.argv[1], sys.argv[2:]
stdlib = (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])
already = set(sys.modules)
handlers = {}
for handler_dir in handler_dirs:
    sys.path.insert(0, handler_dir)
    try:
        module = __import__("app")
        handlers[handler_dir] = "ok" if callable(getattr(module, "lambda_handler", None)) else "no lambda_handler"
    except Exception as exc:
        handlers[handler_dir] = f"{type(exc).__name__}: {exc}"
    finally:
        sys.modules.pop("app", None)
        sys.path.remove(handler_dir)


def origin(module):
    file = getattr(module, "__file__", None) or ""
    if not file:
        return "builtin"
    if file.startswith(layer):
        return "layer"
    if file.startswith(stdlib):
        return "stdlib"
    return file


loaded = {
    name: origin(module)
    for name, module in list(sys.modules.items())
    if "." not in name and name not in already and name != "app"
}
json.dump({"blocked_at_start": sorted(BLOCKED & already), "handlers": handlers, "loaded": loaded}, sys.stdout)
"""


@pytest.fixture(scope="module")
def host_imports(layers, tmp_path_factory) -> dict:
    layer = layers["host"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_"))}
    env.update({"PYTHONPATH": str(layer), "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_SERVICE_NAME": "rostersync"})
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_HANDLERS, str(layer), *(str(h.parent) for h in HANDLERS)],
        cwd=tmp_path_factory.mktemp("lambda-task"),
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_there_are_handlers_to_import():
    assert len(HANDLERS) >= 7


@pytest.mark.parametrize("handler", HANDLERS, ids=[h.parent.name for h in HANDLERS])
def test_every_handler_imports_from_the_host_build_of_the_layer(host_imports, handler):
    assert host_imports["blocked_at_start"] == []
    assert host_imports["handlers"][str(handler.parent)] == "ok"


def test_the_handlers_load_the_runtime_and_its_dependencies_from_the_layer(host_imports):
    loaded = host_imports["loaded"]

    assert {name: loaded.get(name) for name in ("rostersync", "pydantic", "pydantic_core")} == dict.fromkeys(
        ("rostersync", "pydantic", "pydantic_core"), "layer"
    )
    elsewhere = {
        name: where
        for name, where in loaded.items()
        if where not in ("layer", "stdlib", "builtin") and name not in LAMBDA_RUNTIME_PROVIDED
    }
    assert elsewhere == {}, "imported from neither the layer nor the Lambda runtime"
