"""benchmarks/mutation_check.py stays in step with the source it mutates.

The mutation check itself is too slow for the suite (it reruns test files once
per mutant); this only checks that every mutant still applies, exactly once.
"""

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_script():
    spec = importlib.util.spec_from_file_location(
        "mutation_check", ROOT / "benchmarks" / "mutation_check.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


SCRIPT = _load_script()


@pytest.mark.parametrize("mutant", SCRIPT.MUTANTS, ids=lambda m: m.name)
def test_each_mutant_applies_exactly_once_to_the_current_source(mutant):
    source = (ROOT / mutant.path).read_text()
    assert source.count(mutant.old) == 1, (
        f"mutant {mutant.name!r} no longer matches {mutant.path}: update "
        "benchmarks/mutation_check.py"
    )
    assert SCRIPT.apply(mutant, source) != source
    assert mutant.tests and all((ROOT / t).is_file() for t in mutant.tests)


def test_mutant_names_are_unique_and_a_text_that_does_not_match_is_refused():
    names = [m.name for m in SCRIPT.MUTANTS]
    assert len(names) == len(set(names))
    mutant = SCRIPT.MUTANTS[0]
    with pytest.raises(ValueError, match="occurs 0 times"):
        SCRIPT.apply(mutant, "nothing to mutate here")
    with pytest.raises(ValueError, match="occurs 2 times"):
        SCRIPT.apply(mutant, mutant.old * 2)
