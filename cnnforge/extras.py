"""What to install for an optional part of cnnforge, said where it is missing."""

from __future__ import annotations

from importlib import metadata

CPU_WHEELS = "https://download.pytorch.org/whl/cpu"  # PyTorch's own index of CPU-only builds


def install_hint(extra: str) -> str:
    """How to install `extra` (vision or explain, which bring torchvision) without replacing the installed torch:
    torchvision is built for one torch release, so the two are installed together.

    >>> install_hint("vision")  # doctest: +SKIP
    "pip install 'torch==2.13.0' torchvision (... --index-url https://download.pytorch.org/whl/cpu ...), then ..."
    """
    try:
        pinned = f"'torch=={metadata.version('torch')}'"
    except metadata.PackageNotFoundError:
        pinned = "torch"
    return (
        f"pip install {pinned} torchvision (the torchvision built for that torch; on a CPU-only machine add "
        f"--index-url {CPU_WHEELS}), then pip install 'cnnforge[{extra}]'"
    )
