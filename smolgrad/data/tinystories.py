"""TinyStories (Eldan and Li; CDLA-Sharing-1.0): short stories for training tiny language
models, read from a local copy or downloaded, verified and cached; and, when neither is
possible, a small corpus of simple stories that smolgrad writes from its own templates.

    from smolgrad.data import load_stories
    stories, source = load_stories()          # a list of strings, and where they came from
"""

from __future__ import annotations

import hashlib
import os
import random
import urllib.request
from pathlib import Path

from .download import DataError, data_root, download
from .storygrammar import write_story

EOT = "<|endoftext|>"
"""The line that separates stories in the TinyStories text files."""

BASE_URL = "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
VALID_FILE = "TinyStories-valid.txt"  # 19.4 MB: the default download, split into train and validation
TRAIN_FILE = "TinyStories-train.txt"  # 1.92 GB: with full=True
# Smallest plausible sizes: a download that is shorter was cut off.
MIN_BYTES = {VALID_FILE: 19_000_000, TRAIN_FILE: 1_800_000_000}

HOW_TO_GET = (
    f"To train on TinyStories, download {BASE_URL}{VALID_FILE} (or {TRAIN_FILE}) and pass its path with --data, "
    "or set SMOLGRAD_DATA to a folder with tinystories/<file>."
)


def split_stories(text: str) -> list[str]:
    """The stories in `text`: the non-empty pieces between lines that read <|endoftext|>."""
    stories, lines = [], []
    for line in text.splitlines():
        if line.strip() == EOT:
            stories.append("\n".join(lines).strip())
            lines = []
        else:
            lines.append(line)
    stories.append("\n".join(lines).strip())
    return [s for s in stories if s]


def read_stories(path: str | os.PathLike) -> list[str]:
    """The stories of a TinyStories-format text file, or of every *.txt file in a folder
    (in name order)."""
    path = Path(path).expanduser()
    files = sorted(path.glob("*.txt")) if path.is_dir() else [path]
    if not files or not all(f.is_file() for f in files):
        raise DataError(f"no story file at {path} (expected a .txt file, or a folder of them)")
    stories = []
    for f in files:
        stories += split_stories(f.read_text(encoding="utf-8"))
    if not stories:
        raise DataError(f"{path} holds no stories (stories are separated by lines that read {EOT})")
    return stories


def _verify(path: Path, expected_sha256: str | None, min_bytes: int) -> None:
    """Raise DataError unless `path` is a complete TinyStories text file."""
    size = path.stat().st_size
    if size < min_bytes:
        raise DataError(f"{path.name} is {size} bytes, expected at least {min_bytes}: the download was cut off")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        head = f.read(1 << 20)
        digest.update(head)
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    if expected_sha256 and digest.hexdigest() != expected_sha256:
        raise DataError(f"{path.name}: sha256 {digest.hexdigest()} differs from the server's {expected_sha256}")
    text = head.decode("utf-8", errors="replace")
    if EOT not in text:
        raise DataError(f"{path.name} does not look like TinyStories: no {EOT} separator in its first MiB")


def _server_sha256(url: str, timeout: float) -> str | None:
    """The sha256 that the Hugging Face hub publishes for a file it stores with Git LFS (the
    X-Linked-Etag header of a HEAD request), or None when it gives none."""
    request = urllib.request.Request(url, method="HEAD")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        etag = response.headers.get("X-Linked-Etag") or response.headers.get("ETag") or ""
    etag = etag.strip().removeprefix("W/").strip('"')
    return etag if len(etag) == 64 and all(c in "0123456789abcdef" for c in etag) else None


def fetch_tinystories(root: str | os.PathLike | None = None, full: bool = False, timeout: float = 60.0) -> Path:
    """The path of TinyStories-valid.txt (or, with `full`, TinyStories-train.txt) in
    root/tinystories/ (root: the argument, else $SMOLGRAD_DATA, else ~/.cache/smolgrad),
    downloading it there first when it is missing. A download is checked against the
    sha256 that the server publishes, its minimum size and its format before it is
    renamed into place; raises DataError when that fails or there is no connection."""
    name = TRAIN_FILE if full else VALID_FILE
    folder = data_root(root) / "tinystories"
    for candidate in (folder / name, data_root(root) / name):
        if candidate.is_file():
            return candidate
    url = BASE_URL + name
    try:
        expected = _server_sha256(url, timeout)
    except OSError as e:
        raise DataError(f"could not reach {url}: {type(e).__name__}: {e}") from None
    download([url], folder / name, lambda p: _verify(p, expected, MIN_BYTES[name]), timeout=timeout)
    return folder / name


def load_stories(path: str | os.PathLike | None = None, full: bool = False, download_ok: bool = True,
                 verbose: bool = True) -> tuple[list[str], str]:
    """(stories, source). With `path`: the stories of that file or folder. Otherwise: a
    TinyStories file in $SMOLGRAD_DATA (any tinystories/*.txt there), else TinyStories
    downloaded and cached (see `fetch_tinystories`), else, offline, the stories of
    `template_stories()`, with a message on how to get the real data. `source` names
    where the stories came from ("template" for the generated ones)."""
    if path is not None:
        return read_stories(path), str(path)
    name = TRAIN_FILE if full else VALID_FILE
    env = os.environ.get("SMOLGRAD_DATA")
    if env:
        folder = Path(env).expanduser() / "tinystories"
        for candidate in (folder / name, folder / "tinystories_train_sample_2MiB.txt"):
            if candidate.is_file():
                return read_stories(candidate), str(candidate)
    cached = data_root() / "tinystories" / name
    if cached.is_file():
        return read_stories(cached), str(cached)
    if download_ok:
        try:
            found = fetch_tinystories(full=full)
            return read_stories(found), str(found)
        except DataError as e:
            reason = str(e).splitlines()[0]
    else:
        reason = "downloading was turned off"
    if verbose:
        print(f"TinyStories is not available ({reason}).\nTraining on smolgrad's built-in corpus instead: "
              f"simple stories generated by its own grammar, not TinyStories. {HOW_TO_GET}", flush=True)
    return template_stories(), "template"


# ----- the built-in corpus: stories written by a small grammar -----

def template_stories(n: int = 3000, seed: int = 1234) -> list[str]:
    """`n` simple stories written at run time by smolgrad's own story grammar
    (`storygrammar.py`: several plots, characters, places, events and dialogue) with a
    fixed seed: a stand-in for TinyStories when it cannot be had."""
    rng = random.Random(seed)
    return [write_story(rng)[1] for _ in range(n)]
