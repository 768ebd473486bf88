"""The README's commands are the ones CI and users run."""

import re
from pathlib import Path

from .conftest import run_without_torch

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / "README.md").read_text()
    return re.findall(r"^```bash\n(.*?)\n```", text, flags=re.M | re.S)


def test_ci_runs_the_readme_test_command():
    commands = readme_commands()
    test_command = [c for c in commands if "pytest" in c]
    assert len(test_command) == 1
    assert test_command[0].strip() in (ROOT / ".ci" / "run").read_text()


def test_readme_main_job_is_the_demo():
    main_job = [c for c in readme_commands() if "python -m sklearn_samn demo" in c]
    assert len(main_job) == 1


def test_readme_quick_start_code_runs():
    text = (ROOT / "README.md").read_text()
    blocks = re.findall(r"^```python\n(.*?)\n```", text, flags=re.M | re.S)
    assert blocks, "the README has a quick-start code block"
    namespace = {}
    exec(compile(blocks[0], "README quick start", "exec"), namespace)
    assert namespace["clf"].score(namespace["X"], namespace["y"]) > 0.5


def test_package_imports_without_torch():
    result = run_without_torch(
        """
        import sklearn_samn
        clf = sklearn_samn.SAMNClassifier()
        assert "torch" not in sys.modules
        """
    )
    assert result.returncode == 0, result.stderr
