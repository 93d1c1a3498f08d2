"""Where the offline suite's real images come from: scikit-image's data directory
(``skimage:NAME``) and matplotlib's ``sample_data`` (``mpl:NAME``)."""

from __future__ import annotations

from pathlib import Path

from ..errors import InputError


def sample_dir(source: str) -> Path | None:
    if source == "skimage":
        try:
            import skimage.data  # optional, and heavy: only when its images are asked for
        except ImportError:
            return None
        return Path(skimage.data.__file__).parent
    if source == "mpl":
        try:
            import matplotlib  # heavy: only when its images are asked for
        except ImportError:
            return None
        return Path(matplotlib.get_data_path()) / "sample_data"
    raise InputError(f"unknown image source {source!r} (use skimage:NAME or mpl:NAME)")


def sample_path(source: str, name: str) -> Path | None:
    directory = sample_dir(source)
    if directory is None or not (directory / name).is_file():
        return None
    return directory / name
