"""Image identity: the SHA-256 of the file's bytes, computed in parallel.

The same picture stored under two paths hashes to one value, so it becomes
one ``images`` row; image de-duplication of the evaluation sets relies on it.
Every file is also checked to open as an image (Pillow ``verify``), and its
size is read from the header. hashlib and file reads release the GIL, so a
thread pool is enough to keep the disk and both cores busy.

With hashing skipped (``--no-images``) the key is ``path:<sha256 of the
relative path>`` instead: one row per distinct path, no file access. Two
paths with the same picture are then two images (documented in the README).
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

from vlmdyn_cli.errors import BadInput


# The largest image accepted, in pixels (width x height): 50 megapixels, far above any VLM
# training image (LLaVA's are at most ~1000 px a side and models see 336-384 px), and below
# Pillow's decompression-bomb threshold (89.5 MP warns, 179 MP fails). A larger image is bad
# input naming its record; the header is read before any pixel is decoded.
MAX_PIXELS = 50_000_000
MAX_IMAGE_BYTES = 1 << 30     # an image file larger than this is not read into memory to be hashed


@dataclass(frozen=True)
class ImageInfo:
    sha256: str
    width: int | None
    height: int | None
    n_bytes: int | None


def default_workers() -> int:
    return max(2, min(8, (os.cpu_count() or 2) * 2))


def check_relative(rel: str, *, where: str) -> str:
    """Normalise an image path from a record; reject absolute paths and ones leaving the root."""
    if not isinstance(rel, str) or not rel.strip():
        raise BadInput(f"{where}: 'image' must be a non-empty relative path")
    if "\x00" in rel:
        raise BadInput(f"{where}: image path {rel!r} contains a NUL character")
    if rel.startswith(("/", "\\")) or (len(rel) > 1 and rel[1] == ":"):
        raise BadInput(f"{where}: image path {rel!r} is absolute; paths must be relative to the image root")
    if ".." in rel.replace("\\", "/").split("/"):
        raise BadInput(f"{where}: image path {rel!r} escapes the image root ('..' is not allowed)")
    return rel


def path_key(rel: str) -> ImageInfo:
    """The stand-in identity when hashing is skipped: one image per distinct path."""
    return ImageInfo("path:" + hashlib.sha256(rel.encode("utf-8")).hexdigest(), None, None, None)


def hash_image(root: Path, rel: str, *, where: str) -> ImageInfo:
    """Hash one image file and check it is a readable image of at most ``MAX_PIXELS``."""

    path = root / rel
    # a symlink may still point outside the root: compare resolved paths
    try:
        resolved = path.resolve(strict=True)
    except RuntimeError:      # Python < 3.13 raises this for a symlink loop
        raise BadInput(f"{where}: image {rel!r} is a symlink loop") from None
    except (FileNotFoundError, OSError):
        raise BadInput(f"{where}: image {rel!r} not found under {root} (is --images the image root? "
                       f"--no-images skips reading images)") from None
    if not resolved.is_relative_to(root.resolve()):
        raise BadInput(f"{where}: image path {rel!r} resolves outside the image root {root}")
    if not resolved.is_dir():
        st = resolved.stat()
        if not stat.S_ISREG(st.st_mode):   # a FIFO would block the import forever, a device never end
            raise BadInput(f"{where}: image {rel!r} is not a regular file (a pipe, socket or device)")
        if st.st_size > MAX_IMAGE_BYTES:
            raise BadInput(f"{where}: image {rel!r} is {st.st_size:,} bytes; the limit is {MAX_IMAGE_BYTES:,}")
    try:
        data = resolved.read_bytes()
    except OSError as exc:
        raise BadInput(f"{where}: cannot read image {rel!r}: {exc.strerror or exc}") from None
    digest = hashlib.sha256(data).hexdigest()
    with open_checked(io.BytesIO(data), f"{where}: image {rel!r}") as im:
        width, height = im.size
        try:
            im.verify()
        except (OSError, SyntaxError, ValueError) as exc:
            raise BadInput(f"{where}: image {rel!r} is not a valid image file ({exc})") from None
    return ImageInfo(digest, width, height, len(data))


@contextmanager
def open_checked(source, what: str):
    """``PIL.Image.open`` of a path or file object, refusing what is not an image or is larger
    than ``MAX_PIXELS`` (BadInput starting with ``what``, which names the record or file)."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    # our own limit is lower than Pillow's warning threshold (set once: catch_warnings is not thread-safe)
    warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
    try:
        im = Image.open(source)
    except Image.DecompressionBombError as exc:
        raise BadInput(f"{what} is too large ({_pixels_of(exc)}; the limit is {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise BadInput(f"{what} is not a valid image file (not a format Pillow recognises)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"{what} is not a valid image file ({exc})") from None
    with im:
        w, h = im.size
        if w * h > MAX_PIXELS:
            raise BadInput(f"{what} is too large ({w} x {h} = {w * h:,} pixels; the limit is "
                           f"{MAX_PIXELS:,} pixels)")
        yield im


def _pixels_of(exc: Exception) -> str:
    import re

    m = re.search(r"\((\d+) pixels\)", str(exc))
    return f"{int(m.group(1)):,} pixels" if m else "over Pillow's decompression-bomb limit"


class ImageHasher:
    """A reusable thread pool that hashes batches of image paths."""

    def __init__(self, root: Path, workers: int | None = None):
        self.root = Path(root)
        self.workers = workers or default_workers()
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="vlmdyn-hash")

    def submit_many(self, items: Iterable[tuple[str, str]]) -> list:
        """Start hashing (relative path, where) pairs; pass the handle to ``collect``."""
        return [(rel, self.pool.submit(hash_image, self.root, rel, where=where)) for rel, where in items]

    def collect(self, handle: list) -> dict[str, ImageInfo]:
        """path -> ImageInfo; the first bad file in submission order raises its BadInput."""
        out: dict[str, ImageInfo] = {}
        try:
            for rel, fut in handle:
                out[rel] = fut.result()
        except BaseException:
            for _rel, fut in handle:
                fut.cancel()
            raise
        return out

    def hash_many(self, items: Iterable[tuple[str, str]]) -> dict[str, ImageInfo]:
        return self.collect(self.submit_many(items))

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "ImageHasher":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
