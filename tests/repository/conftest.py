"""Fixtures of the repository tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from repository_helpers import Setup, make_setup  # noqa: E402


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    """A fresh repository with one age identity."""
    return make_setup(tmp_path)
