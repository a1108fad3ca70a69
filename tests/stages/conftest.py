"""The stage tests import the LLM tests' stand-in server and their small data views by name."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))


@pytest.fixture
def small_view():
    from stage_data import ml100k_view

    return ml100k_view()
