"""A trained checkpoint loaded for use: the model rebuilt from the spec text stored in it, its classes, and how it
prepares an image; what evaluate, predict, explain and features all start from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Union

import torch

from .. import images
from ..builder import build
from ..compiler import Compiled, compile_spec
from ..spec import read_text
from ..train import checkpoint
from ..train.data import DataError, Prepare

if TYPE_CHECKING:
    from PIL.Image import Image

Input = Union[str, Path, "Image", torch.Tensor]  # an image file, a PIL image, or pixels [C, H, W] / [N, C, H, W]


def compiled_spec(state: dict[str, Any]) -> Compiled:
    """The spec stored in a loaded checkpoint, compiled: its layers' names, kinds and shapes."""
    spec = state["spec"]
    loaded = read_text(spec["text"], spec["file"], spec["bindings"])
    if loaded.spec is not None and loaded.spec.name != spec["name"]:  # a spec that extends another, stored as it
        loaded.spec = loaded.spec.model_copy(update={"name": spec["name"]})
    compiled = None if loaded.spec is None else compile_spec(loaded.spec, loaded.file, loaded.source)
    if compiled is None or not compiled.ok:
        errors = [d for d in (loaded if compiled is None else compiled).diagnostics if d.severity == "error"]
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise checkpoint.CheckpointError(f"its spec does not compile: {errors[0]}{more}")
    return compiled


@dataclass
class Trained:
    """A trained network, ready to classify images: see `load`."""

    model: torch.nn.Module  # in eval mode, on `device`
    compiled: Compiled  # the spec stored in the checkpoint, compiled: layer names, kinds and shapes
    classes: list[str]
    prepare: Prepare  # raw training samples -> the spec's input (scale, channels, size, normalisation)
    state: dict[str, Any]  # the checkpoint as loaded: its config, progress, ...
    device: torch.device

    @property
    def name(self) -> str:
        return self.state["spec"]["name"]

    @property
    def mode(self) -> str:
        """The PIL mode images are read in: "L" for a network trained on grayscale, else "RGB"."""
        return "L" if self.prepare.source[0] == 1 else "RGB"

    def to(self, device: torch.device | str) -> Trained:
        self.device = torch.device(device)
        self.model.to(self.device)
        return self

    def pixels(self, image: Input) -> torch.Tensor:
        """`image` as a batch of pixels [N, C, H, W] on the device: a file or PIL image read as the network's
        grayscale or RGB (uint8); a tensor [C, H, W] or [N, C, H, W] as it is (uint8 0..255, or float 0..1)."""
        if isinstance(image, torch.Tensor):
            x = image if image.dim() == 4 else image[None]
            if x.dim() != 4:
                raise ValueError(f"expected pixels [C, H, W] or [N, C, H, W], found a tensor {list(image.shape)}")
        elif isinstance(image, (str, Path)):
            x = as_tensor(images.read(image, self.mode))
        else:
            x = as_tensor(images.converted(image, self.mode))
        return x.to(self.device)

    def inputs(self, image: Input) -> torch.Tensor:
        """`image` prepared as the network's input [N, C, H, W]: resized, channels matched and normalised as the
        training data was."""
        x = self.pixels(image)
        scale = 255.0 if x.dtype == torch.uint8 else 1.0
        return self.prepare.for_source(tuple(x.shape[1:]), scale)(x)

    @torch.no_grad()
    def probabilities(self, image: Input) -> torch.Tensor:
        """The class probabilities of `image` (see `pixels`), on the CPU: [classes], or [N, classes] for a
        batch [N, C, H, W]."""
        p = self.model(self.inputs(image)).softmax(dim=1).cpu()
        return p if isinstance(image, torch.Tensor) and image.dim() == 4 else p[0]

    def predict(self, image: Input, top_k: int = 3) -> list[tuple[str, float]]:
        """The `top_k` most probable classes of one image, with their probabilities, most probable first."""
        p = self.probabilities(image)
        if p.dim() != 1:
            raise ValueError("predict takes one image; probabilities takes a batch [N, C, H, W]")
        top = p.topk(min(top_k, len(self.classes)))
        return [(self.classes[i], float(v)) for v, i in zip(top.values, top.indices, strict=True)]


def load(path: str | Path, device: torch.device | str = "cpu") -> Trained:
    """The trained network in the checkpoint at `path` (a `best.pt` or `last.pt` of `cnnforge train`), on `device`.

    Example (LeNet-5 after `cnnforge train arch=lenet`, on an 8x8 digit saved as a PNG)::

        from cnnforge import load
        net = load("outputs/2025-06-01/12-00-00-000000_lenet/best.pt")
        net.predict("six.png", top_k=2)  # [('6', 0.9965956807136536), ('4', 0.0014827119885012507)]
        net.probabilities(torch.rand(4, 1, 8, 8)).shape  # torch.Size([4, 10])

    Raises CheckpointError, naming the file, when it is not a complete cnnforge checkpoint or its parts (weights,
    classes, input preparation) do not fit the spec stored in it."""
    state = checkpoint.load(path)
    if problem := checkpoint.incomplete(state):
        raise checkpoint.CheckpointError(f"{path}: not a complete cnnforge checkpoint: {problem}")
    try:
        compiled = compiled_spec(state)
    except checkpoint.CheckpointError as error:
        raise checkpoint.CheckpointError(f"{path}: {error}") from None
    name, spec = compiled.spec.name, compiled.spec  # type: ignore[union-attr]
    model = build(compiled)
    if problem := checkpoint.mismatch(model.state_dict(), state["model"]):
        raise checkpoint.CheckpointError(f"{path}: its weights do not fit its spec {name}: {problem}")
    model.load_state_dict(state["model"])
    classes = state["data"]["classes"]
    if compiled.output != (len(classes),):
        raise checkpoint.CheckpointError(
            f"{path}: its spec {name} gives {list(compiled.output or ())}, not one score for each of its "
            f"{len(classes)} classes"
        )
    try:
        prepare = Prepare.from_state(state["prepare"])
    except DataError as error:
        raise checkpoint.CheckpointError(f"{path}: its 'prepare' cannot be used: {error}") from None
    if prepare.target != tuple(spec.input):
        raise checkpoint.CheckpointError(
            f"{path}: its 'prepare' makes inputs {list(prepare.target)}, but its spec {name} takes {list(spec.input)}"
        )
    return Trained(model.eval(), compiled, list(classes), prepare, state, torch.device("cpu")).to(device)


def as_tensor(pixels: Image) -> torch.Tensor:
    """A PIL image of mode "L" or "RGB" as uint8 [1, C, H, W]."""
    x = torch.frombuffer(bytearray(pixels.tobytes()), dtype=torch.uint8)
    return x.view(pixels.height, pixels.width, -1).permute(2, 0, 1)[None]  # [1, C, H, W]
