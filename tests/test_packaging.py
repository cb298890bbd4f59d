"""The installed package: compiled module, abi3 wheel, typing markers, README/CI agreement."""

import re
from importlib import resources
from pathlib import Path

import oxlearn
from oxlearn import _oxlearn

ROOT = Path(__file__).resolve().parent.parent


def test_version_and_build_info() -> None:
    info = oxlearn.build_info()
    assert oxlearn.__version__ == info["version"]
    assert info["debug_assertions"] is False, "tests must run against the release build"
    assert info["available_parallelism"] >= 1


def test_compiled_module_is_abi3_and_installed() -> None:
    path = Path(_oxlearn.__file__)
    assert path.name.endswith(".abi3.so") or path.suffix == ".pyd", path.name


def test_typing_markers_shipped() -> None:
    pkg = resources.files("oxlearn")
    assert pkg.joinpath("py.typed").is_file()
    assert pkg.joinpath("_oxlearn.pyi").is_file()


def test_ci_runs_readme_test_command_verbatim() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)
    test_cmd = next(b for b in blocks if "pytest" in b)
    ci = (ROOT / ".ci" / "run").read_text()
    assert test_cmd in ci.splitlines()
