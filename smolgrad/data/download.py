"""Where data sets live, and downloading files safely (temp file, verify, rename)."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import urllib.request
from pathlib import Path
from typing import Callable, Sequence


class DataError(RuntimeError):
    """A data file is missing, corrupt, truncated, or could not be downloaded."""


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds smolgrad's data sets: `root` when given, else the
    environment variable SMOLGRAD_DATA, else $XDG_CACHE_HOME/smolgrad (default
    ~/.cache/smolgrad)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get("SMOLGRAD_DATA")
    if env:
        return Path(env).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "smolgrad"


def md5(data: bytes) -> str:
    return hashlib.md5(data, usedforsecurity=False).hexdigest()


def download(urls: Sequence[str], dest: Path, verify: Callable[[Path], None], timeout: float = 60.0) -> None:
    """Fetch the first of `urls` that answers and passes `verify` (called with the
    downloaded file's path; it raises DataError on bad contents) and move it to `dest`.

    The bytes stream into a temporary file next to `dest` that is renamed into place
    only after it passed `verify`, so `dest` is never a partial or corrupt file."""
    dest = Path(dest)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create the folder {dest.parent} to download {dest.name} into ({e}); pass a writable "
            "root or set SMOLGRAD_DATA to a folder that has the files"
        ) from None
    failures = []
    for url in urls:
        fd, name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as f, urllib.request.urlopen(url, timeout=timeout) as response:
                shutil.copyfileobj(response, f, 1 << 20)
            verify(tmp)
            os.replace(tmp, dest)
            return
        except (OSError, ValueError, DataError) as e:  # URLError and HTTPError are OSErrors
            failures.append(f"  {url}: {type(e).__name__}: {e}")
        finally:
            tmp.unlink(missing_ok=True)
    raise DataError(
        f"could not download {dest.name}; tried:\n" + "\n".join(failures) + "\n"
        f"Download it by hand into {dest.parent}, or set SMOLGRAD_DATA (or pass root=) to a folder that has it."
    )
