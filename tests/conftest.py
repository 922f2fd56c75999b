"""Shared fixtures: where the real annotation files are, and a quiet TensorFlow."""

import os
import pathlib

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

REPO = pathlib.Path(__file__).resolve().parents[1]
TESTS_DATA = REPO / "tests" / "data"
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture
def shared_data():
    """The real THUMOS14 / ActivityNet1.3 / UCF101 files in ../shared/data (CI has them)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent (a fresh clone without ../shared); CI runs this test")
    return SHARED_DATA


@pytest.fixture
def tests_data():
    """Small real files copied into the repository, available in every clone."""
    return TESTS_DATA
