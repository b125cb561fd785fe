"""Project hygiene: environment.yml and pyproject.toml in step; notebooks committed without outputs."""

from __future__ import annotations

import json
import re
import tomllib

from conftest import ROOT


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")


def test_environment_yml_lists_the_same_packages_as_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    py = {_name(r) for r in project["dependencies"]} | {
        _name(r) for group in project["optional-dependencies"].values() for r in group}
    conda = set()
    text = (ROOT / "environment.yml").read_text()
    for line in text[text.index("dependencies:"):].splitlines():
        m = re.match(r"^\s*-\s+([A-Za-z0-9_.-]+)", line)
        if m and not line.strip().startswith("- -e"):
            conda.add(_name(m.group(1)))
    conda -= {"python", "pip"}
    assert py == conda, f"only in pyproject: {sorted(py - conda)}; only in environment.yml: {sorted(conda - py)}"


def test_versions_agree():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = project["dependencies"] + [r for g in project["optional-dependencies"].values() for r in g]
    env = (ROOT / "environment.yml").read_text()
    for r in reqs:
        spec = r[len(_name(r)):].strip()
        assert re.search(rf"-\s+{re.escape(_name(r))}{re.escape(spec)}\s*$", env, re.M | re.I), r


def test_notebooks_have_no_outputs():
    notebooks = sorted((ROOT / "notebooks").glob("*.ipynb"))
    assert notebooks
    for nb_path in notebooks:
        nb = json.loads(nb_path.read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code":
                assert not cell.get("outputs") and cell.get("execution_count") is None, nb_path.name
        tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, f"{nb_path.name} needs exactly one cell tagged 'parameters'"


def test_console_script_and_ci_use_the_readme_command():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["research-lib"] == "research_lib.cli:main"
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "make test" in (ROOT / "README.md").read_text()


def test_no_data_files_tracked():
    """Real market data lives in ../shared and the user's data/ store, never in the repository."""
    import subprocess

    import pytest

    try:
        tracked = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True,
                                 timeout=30).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    data = [f for f in tracked if f.endswith((".parquet", ".gz", ".dat", ".csv", ".sqlite"))]
    assert not data, f"data files tracked by git: {data}"
