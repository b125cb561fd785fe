"""The hypothesis profiles of tests/conftest.py: every ordinary run is derandomised, `make fuzz` explores.

Each case runs pytest in a subprocess on a probe test beside a copy of the real conftest, with the
environment a newcomer, CI or `make fuzz` would have."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

PROBE = '''
import json, os
from hypothesis import given, settings, strategies as st

SEEN = []


@settings(max_examples=7)
@given(st.integers())
def test_probe(x):
    SEEN.append(x)


def test_report():
    s = test_probe._hypothesis_internal_use_settings
    with open(os.environ["PROBE_OUT"], "w") as fh:
        json.dump({"max_examples": s.max_examples, "derandomize": s.derandomize, "database": s.database is not None,
                   "deadline": s.deadline is not None, "seen": [str(x) for x in SEEN]}, fh)
'''


def _probe(tmp_path, **env) -> dict:
    shutil.copy(ROOT / "tests" / "conftest.py", tmp_path / "conftest.py")
    (tmp_path / "test_probe.py").write_text(PROBE)
    out = tmp_path / "out.json"
    clean = {k: v for k, v in os.environ.items()
             if k not in ("CI", "HYPOTHESIS_PROFILE", "HYPOTHESIS_FUZZ_FACTOR", "PYTEST_ADDOPTS")
             and not k.startswith("PYTEST_XDIST")}
    clean.update(env, PROBE_OUT=str(out))
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:xdist",
                           "test_probe.py"], cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


@pytest.mark.parametrize("env", [{}, {"CI": "true"}, {"HYPOTHESIS_PROFILE": "deterministic"}])
def test_every_ordinary_run_is_derandomised(tmp_path, env):
    """A newcomer's run (no CI variable) gets the same examples as CI, every time."""
    first = _probe(tmp_path, **env)
    assert first["derandomize"] is True and first["database"] is False and first["deadline"] is False
    assert first["max_examples"] == 7 and len(first["seen"]) == 7
    assert _probe(tmp_path, **env)["seen"] == first["seen"]


def test_fuzz_profile_explores_many_more_examples(tmp_path):
    fuzz = _probe(tmp_path, HYPOTHESIS_PROFILE="fuzz")
    assert fuzz["derandomize"] is False and fuzz["database"] is True
    assert fuzz["max_examples"] == 2000 and len(fuzz["seen"]) > 7  # the test's own 7, raised for fuzzing
    assert _probe(tmp_path, HYPOTHESIS_PROFILE="fuzz", HYPOTHESIS_FUZZ_FACTOR="500")["max_examples"] == 3500
