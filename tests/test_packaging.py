import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _pyproject():
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_requirements_txt_agrees_with_pyproject_dependencies():
    lines = (ROOT / "requirements.txt").read_text().splitlines()
    requirements = [ln.strip() for ln in lines if ln.strip() and ln[0] != "#"]
    assert requirements == _pyproject()["project"]["dependencies"]


def test_pyproject_declares_the_flower_apps_that_import():
    import importlib

    components = _pyproject()["tool"]["flwr"]["app"]["components"]
    for reference in components.values():
        module, name = reference.split(":")
        assert getattr(importlib.import_module(module), name) is not None


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    for command in ('pip install -e ".[test,embed]"', "python -m pytest"):
        assert command in readme
        assert command in ci


def test_the_numpy_core_imports_no_flower_ray_or_hydra():
    import subprocess
    import sys

    core = [
        "fedgmmtree",
        "fedgmmtree.estimator",
        "fedgmmtree._protocol",
        "fedgmmtree.checkpoint",
        "fedgmmtree.validation",
        "fedgmmtree.metrics",
    ]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in core)
        + "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'flwr', 'ray', 'hydra', 'omegaconf'}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]"
