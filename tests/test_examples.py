"""Every example runs headless, as a user would run it."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
EXPECTED_OUTPUT = {
    "quickstart.py": "SAMNClassifier()",
    "pipeline_grid_search.py": "head parameters left at their defaults: True",
    "warm_start.py": "SAMN warm-started from it",
    "gpu.py": "coef_ is ndarray",
    # Without the encoder package or the data it says so and exits cleanly.
    "text_end_to_end.py": "",
    # Without dask.distributed it says so and exits cleanly.
    "dask_grid_search.py": (
        "torch threads per dask worker" if importlib.util.find_spec("distributed")
        else "dask.distributed is not installed"
    ),
}
SLOW = {"pipeline_grid_search.py", "text_end_to_end.py", "dask_grid_search.py"}


def test_every_example_is_listed():
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(EXPECTED_OUTPUT)


@pytest.mark.parametrize(
    "name",
    [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in EXPECTED_OUTPUT],
)
def test_example_runs(name, tmp_path):
    env = {**os.environ, "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / name)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=env,
    )
    assert result.returncode == 0, result.stderr
    assert EXPECTED_OUTPUT[name] in result.stdout
