"""The prepared GPU check runs end to end (on the CPU here: a dry run of its logic)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_dry_run_on_the_cpu(tmp_path):
    out = tmp_path / "GPU_CHECK.md"
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--device", "cpu",
         "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=600, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = out.read_text()
    assert "Agreement PASSED" in report
    # Agreement: 2 batch sizes; timings: 2 shapes; each resident and streamed.
    assert report.count("| resident |") == 4 and report.count("| streamed |") == 4


def test_gpu_check_without_cuda_says_so(tmp_path):
    code = (
        "import sys, torch; torch.cuda.is_available = lambda: False; "
        f"sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); "
        "import gpu_check; sys.exit(gpu_check.main([]))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no CUDA device" in result.stdout
