"""The examples run end to end and reach their stated result."""

import subprocess
import sys
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_xor_example_learns_all_four_cases(device):
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "xor.py"), "--device", device, "--steps", "500"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "all four XOR cases are right" in result.stdout
