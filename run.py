"""Run a command in smolgrad's own environment, setting it up first when needed.

    python3 run.py examples/train_gpt.py      # any script, with its arguments
    python3 run.py -m pytest -q               # any module

The arguments are passed to the Python of a virtual environment in `.venv/` beside this
file. The first run creates it and installs smolgrad with its `dev` extra (the test tools,
tokenizers, tqdm) into it, in editable mode; later runs reuse it and install again only
when pyproject.toml has changed. Only the standard library is used here, so a machine
with Python 3.10+ needs nothing else (pip fetches the dependencies).

Environment: SMOLGRAD_VENV puts the environment elsewhere; SMOLGRAD_EDITABLE=0 installs a
regular copy of the package instead (what CI tests), reinstalled when the sources change.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
MIN_PYTHON = (3, 10)


def venv_python(env_dir: Path) -> Path:
    if os.name == "nt":
        return env_dir / "Scripts" / "python.exe"
    return env_dir / "bin" / "python"


def fingerprint(editable: bool) -> str:
    """What the installed environment must match: pyproject.toml, the install mode and, for
    a regular (copied) install, the package's files."""
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    digest.update(b"editable" if editable else b"copy")
    if not editable:
        for folder in ("smolgrad", "shaders"):
            for path in sorted((ROOT / folder).rglob("*")):
                if path.is_file() and "__pycache__" not in path.parts:
                    digest.update(str(path.relative_to(ROOT)).encode() + path.read_bytes())
    return digest.hexdigest()


def set_up(env_dir: Path, editable: bool) -> Path:
    """The environment's Python, after creating the environment and installing smolgrad
    into it if it is missing or out of date."""
    python = venv_python(env_dir)
    stamp = env_dir / ".smolgrad-installed"
    want = fingerprint(editable)
    if python.exists() and stamp.exists() and stamp.read_text() == want:
        return python
    if not python.exists():
        print(f"run.py: creating a virtual environment in {env_dir}", file=sys.stderr, flush=True)
        try:
            import ensurepip  # noqa: F401  (Debian and Ubuntu ship it separately, as python3-venv)
        except ImportError:
            raise SystemExit("run.py: this Python cannot create virtual environments with pip (no ensurepip); "
                             "install it (Debian/Ubuntu: sudo apt install python3-venv) and run again") from None
        venv.EnvBuilder(with_pip=True).create(env_dir)
    target = ".[dev]"
    print(f"run.py: installing smolgrad{' (editable)' if editable else ''} with {target} into {env_dir} "
          "(once; a minute or two)", file=sys.stderr, flush=True)
    command = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    command += ["-e", target] if editable else ["--force-reinstall", "--no-deps", target]
    if not editable:  # dependencies first (kept when present), then a fresh copy of smolgrad
        deps = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", target]
        subprocess.run(deps, cwd=ROOT, check=True)
    subprocess.run(command, cwd=ROOT, check=True)
    stamp.write_text(want)
    return python


def main(argv: list[str]) -> int:
    if sys.version_info < MIN_PYTHON:
        print(f"run.py: smolgrad needs Python {'.'.join(map(str, MIN_PYTHON))} or newer; this is {sys.version.split()[0]}",
              file=sys.stderr)
        return 2
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if argv else 2
    env_dir = Path(os.environ.get("SMOLGRAD_VENV") or ROOT / ".venv").resolve()
    editable = os.environ.get("SMOLGRAD_EDITABLE", "1") != "0"
    try:
        python = set_up(env_dir, editable)
    except subprocess.CalledProcessError as e:
        print(f"run.py: setting up {env_dir} failed ({' '.join(e.cmd)} exited with {e.returncode}); "
              "fix the cause above and run again (or delete the folder to start afresh)", file=sys.stderr)
        return 1
    try:
        return subprocess.run([str(python), *argv]).returncode
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
