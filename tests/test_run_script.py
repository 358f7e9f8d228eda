"""run.py, the README's bootstrap: it sets up .venv once and then only runs the command."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

RUN = Path(__file__).resolve().parent.parent / "run.py"


def load_run():
    if not RUN.is_file():
        pytest.skip("run.py is not here (tests run from an installed copy without the checkout)")
    spec = importlib.util.spec_from_file_location("smolgrad_run_script", RUN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_an_environment_that_is_up_to_date_is_used_as_it_is(tmp_path, monkeypatch):
    run = load_run()
    env = tmp_path / "env"
    python = run.venv_python(env)
    python.parent.mkdir(parents=True)
    python.write_text("")
    (env / ".smolgrad-installed").write_text(run.fingerprint(editable=True))
    calls = []
    monkeypatch.setattr(run.subprocess, "run", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(run.venv, "EnvBuilder", lambda **k: pytest.fail("must not create an environment"))
    assert run.set_up(env, editable=True) == python and calls == []


def test_a_stale_or_missing_environment_is_installed_again(tmp_path, monkeypatch):
    run = load_run()
    env = tmp_path / "env"
    created, calls = [], []

    class Builder:
        def __init__(self, **kwargs):
            assert kwargs == {"with_pip": True}

        def create(self, path):
            created.append(path)
            run.venv_python(path).parent.mkdir(parents=True)
            run.venv_python(path).write_text("")

    monkeypatch.setattr(run.venv, "EnvBuilder", Builder)
    monkeypatch.setattr(run.subprocess, "run", lambda cmd, **k: calls.append(cmd))
    python = run.set_up(env, editable=True)
    assert created == [env] and calls == [[str(python), "-m", "pip", "install", "--quiet",
                                           "--disable-pip-version-check", "-e", ".[dev]"]]
    assert (env / ".smolgrad-installed").read_text() == run.fingerprint(editable=True)
    # a regular copy is a different environment: installed again, dependencies then the package
    calls.clear()
    run.set_up(env, editable=False)
    assert len(calls) == 2 and calls[0][-1] == ".[dev]" and "--force-reinstall" in calls[1]
    assert run.fingerprint(editable=True) != run.fingerprint(editable=False)


def test_help_explains_the_two_readme_commands():
    load_run()  # (skips without the checkout)
    out = subprocess.run([sys.executable, str(RUN), "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "python3 run.py -m pytest -q" in out.stdout and ".venv" in out.stdout
    assert subprocess.run([sys.executable, str(RUN)], capture_output=True).returncode == 2
