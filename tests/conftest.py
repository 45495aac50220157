from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"


@pytest.fixture
def root() -> Path:
    return ROOT
