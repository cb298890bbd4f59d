"""The manylinux wheel (issue 25, section 5): README and CI agree on its build, and CI's
smoke test of the installed wheel is a valid script."""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BUILD = "maturin build --release --strip --compatibility manylinux_2_28 --zig --out dist"


def _readme_bash_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return re.findall(r"```bash\n(.*?)\n```", readme, flags=re.S)


def test_readme_documents_the_manylinux_build() -> None:
    (block,) = [b for b in _readme_bash_blocks() if "maturin build" in b]
    assert BUILD in block.splitlines()
    assert "ziglang" in block


def test_ci_builds_the_readme_wheel_and_smoke_tests_it_without_cargo() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    lines = [line.strip() for line in ci.splitlines()]
    assert BUILD in lines
    assert 'export PATH="$nocargo_path"' in lines
    assert 'if command -v cargo; then echo "cargo is still on PATH"; exit 1; fi' in lines
    assert any("tests/wheel_smoke.py" in line for line in lines)
    # the wheel step comes after the README test command, so a broken build fails late
    assert ci.index(BUILD) > ci.index("python -m pytest")


def test_smoke_script_is_not_collected_and_covers_both_estimators() -> None:
    script = ROOT / "tests" / "wheel_smoke.py"
    source = script.read_text()
    ast.parse(source)
    assert not script.name.startswith("test_")
    for needle in ("KNeighborsClassifier", "MLPClassifier", '"study", "--quick"', "predict"):
        assert needle in source


def test_release_binary_is_stripped_without_debug_info() -> None:
    cargo = (ROOT / "Cargo.toml").read_text()
    release = cargo.split("[profile.release]")[1].split("[profile.")[0]
    assert "debug = false" in release
    assert BUILD.count("--strip") == 1
