"""Locating the shared data sets the benchmarks read (never copied into the project)."""

import sys
from pathlib import Path

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def shared_path(relative: str) -> Path:
    """A path under ../shared/data; exits with the reason when it is absent."""
    path = SHARED_DATA / relative
    if not path.exists():
        sys.exit(f"skipped: {path} is absent (benchmarks read ../shared/data beside the project)")
    return path
