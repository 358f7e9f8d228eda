"""smolgrad's benchmarks. `python -m benchmarks` runs the shader benchmark runner
(benchmarks/runner.py); the other scripts here run on their own (python benchmarks/X.py)."""
