"""Shared fixtures: every test that takes `device` runs on numpy and on webgpu.

Without a WebGPU adapter the webgpu runs are skipped, unless SMOLGRAD_REQUIRE_WEBGPU=1
(as in CI), which turns a missing adapter into a failure."""

from __future__ import annotations

import functools
import os
import sys
import tempfile

import numpy as np
import pytest
from hypothesis import settings

import smolgrad as sg

# pytest runs with --import-mode=importlib (so the installed smolgrad is tested);
# make tests/helpers.py importable as `helpers` all the same.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Property tests draw the same examples on every run ("ci", the default), so a run never
# fails by chance; SMOLGRAD_HYPOTHESIS=explore draws new ones each run (to look for bugs).
settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("SMOLGRAD_HYPOTHESIS", "ci"))

# the matmul autotuner's choices go to a folder of this test run, never the user's cache
os.environ["SMOLGRAD_AUTOTUNE_CACHE"] = tempfile.mkdtemp(prefix="smolgrad-autotune-")
# ... and so do the numpy device's compiled kernels (shared by the tests' subprocesses)
os.environ["SMOLGRAD_JIT_CACHE"] = tempfile.mkdtemp(prefix="smolgrad-jit-")


@functools.cache
def webgpu_error() -> str | None:
    """None when a WebGPU device can be created, else why not."""
    try:
        from smolgrad.device import get_backend

        get_backend("webgpu")
    except Exception as e:  # no adapter, no driver, wgpu import failure
        return f"{type(e).__name__}: {e}"
    return None


def require_webgpu() -> None:
    err = webgpu_error()
    if err is None:
        return
    if os.environ.get("SMOLGRAD_REQUIRE_WEBGPU") == "1":
        pytest.fail(f"SMOLGRAD_REQUIRE_WEBGPU=1 but no WebGPU device could be created: {err}")
    pytest.skip(f"no WebGPU device: {err}")


@pytest.fixture(params=["numpy", "webgpu"])
def device(request) -> str:
    if request.param == "webgpu":
        require_webgpu()
    return request.param


@pytest.fixture
def webgpu() -> str:
    require_webgpu()
    return "webgpu"


@pytest.fixture(autouse=True)
def _seed():
    sg.manual_seed(0)
    np.random.seed(0)
