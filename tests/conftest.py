from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARCHITECTURES = ROOT / "architectures"


@pytest.fixture
def check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """check(text) -> the diagnostics for a file `spec.yaml` holding `text`, as printed lines."""
    from cnnforge import check_file

    monkeypatch.chdir(tmp_path)

    def run(text: str | bytes, file: str = "spec.yaml") -> list[str]:
        path = Path(file)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode() if isinstance(text, str) else text)
        return [str(d) for d in check_file(file).diagnostics]

    return run


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(scope="module")
def one_thread() -> Iterator[None]:
    """Tiny tensors run fastest on one thread; more only contend for the CPU."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
