"""An exported network run without torch: onnxruntime runs the ONNX file `cnnforge export` wrote, whose metadata
holds the rest (its spec, class names and how an image is prepared), and numpy and Pillow prepare images as the
checkpoint's own preparation (cnnforge.train.data.Prepare) does. What `cnnforge predict model=FILE.onnx` uses."""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

import numpy as np
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PositiveInt, ValidationError, model_validator

from .. import images
from ..errors import Refused

if TYPE_CHECKING:
    from PIL.Image import Image

FORMAT = "cnnforge-onnx/1"
PREFIX = "cnnforge."  # of the metadata keys: cnnforge.format, cnnforge.classes, ...
INPUT, OUTPUT = "input", "logits"  # the exported graph's input [N, C, H, W] and output [N, classes]
ImageInput = Union[str, Path, "Image"]  # an image file, or a PIL image


class ModelFileError(Refused):
    """A model file that cannot be run: why, in one line, naming the file."""


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError("must be finite")
    return value


Finite = Annotated[float, AfterValidator(_finite)]
Shape = tuple[PositiveInt, PositiveInt, PositiveInt]


class Preparation(BaseModel):
    """How an image file becomes the network's input: read in PIL's `mode` ("L", grayscale, for a network trained on
    grayscale data; else "RGB"), its channels matched to the spec's `input` [C, H, W] (grayscale copied to 3
    channels, or colour turned to grayscale) and its size resized to it, then normalised by `mean` and `std` per
    channel, of pixel values scaled to 0..1."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    mode: Literal["L", "RGB"]
    input: Shape
    mean: list[Finite]
    std: list[Annotated[float, Field(gt=0), AfterValidator(_finite)]]

    @model_validator(mode="after")
    def _per_channel(self) -> Preparation:
        if not len(self.mean) == len(self.std) == self.input[0]:
            raise ValueError(f"mean and std need one value per input channel ({self.input[0]})")
        if self.input[0] not in (1, 3):
            raise ValueError(f"images give 1 or 3 channels, not the {self.input[0]} of input {list(self.input)}")
        return self


JSON = ("params", "classes", "prepare")  # the metadata's values written as JSON; the others are plain text


class Metadata(BaseModel):
    """What an exported file holds besides its graph, under the keys cnnforge.NAME (JSON for lists and objects):
    everything needed to run it, and to rebuild and check its spec."""

    model_config = ConfigDict(extra="ignore", frozen=True)
    format: Literal["cnnforge-onnx/1"]
    version: str  # of cnnforge, which wrote the file
    name: str  # the spec's
    spec: str  # the spec's text, standing alone (an `extends` resolved)
    spec_file: str  # where the spec was read from when the network was trained
    params: dict[str, Any]  # the values its parameters were bound to
    classes: list[str]
    prepare: Preparation
    verified: str = ""  # what `cnnforge export` compared, and the difference it found

    def properties(self) -> dict[str, str]:
        """The metadata as ONNX metadata_props: strings, lists and objects as JSON."""
        fields = self.model_dump(mode="json", exclude={"verified"} if not self.verified else set())
        return {PREFIX + k: json.dumps(v) if k in JSON else v for k, v in fields.items()}

    @classmethod
    def from_properties(cls, props: Mapping[str, str], where: str) -> Metadata:
        """The metadata in `props` (ONNX metadata_props); ModelFileError, naming `where` and the key, when a key is
        missing or malformed."""
        if PREFIX + "format" not in props:
            raise ModelFileError(
                f"{where}: holds no cnnforge metadata (no {PREFIX}format): write it with cnnforge export, which "
                "stores the class names and image preparation predict needs"
            )
        found: dict[str, Any] = {}
        for key in cls.model_fields:
            text = props.get(PREFIX + key)
            if text is None or key not in JSON:
                found[key] = text
                continue
            try:
                found[key] = json.loads(text)
            except ValueError:
                raise ModelFileError(f"{where}: its metadata {PREFIX}{key} is not JSON: {text[:60]!r}") from None
        found = {k: v for k, v in found.items() if v is not None}
        try:
            return cls(**found)
        except ValidationError as error:
            first = error.errors()[0]
            key = PREFIX + ".".join(str(part) for part in first["loc"])
            raise ModelFileError(f"{where}: its metadata {key} cannot be used: {first['msg']}") from None


def prepared(image: Image, how: Preparation) -> np.ndarray:
    """`image` (mode "L" or "RGB", 8 bits a channel) as the network's input [1, C, H, W] float32: channels matched,
    resized bilinearly (antialiased when it shrinks, as torch's interpolate) and normalised, as Prepare does."""
    from PIL import Image

    x = np.asarray(image, dtype=np.float32)
    x = x[None] if x.ndim == 2 else x.transpose(2, 0, 1)  # [c, h, w]
    c, h, w = how.input
    if x.shape[0] == 1 and c == 3:
        x = np.repeat(x, 3, axis=0)
    elif x.shape[0] == 3 and c == 1:
        x = np.tensordot(np.asarray(images.LUMA, dtype=np.float32), x, axes=1)[None]
    if x.shape[1:] != (h, w):  # Pillow's bilinear filter on 32-bit floats is torch's, antialias included
        x = np.stack([np.asarray(Image.fromarray(plane).resize((w, h), Image.Resampling.BILINEAR)) for plane in x])
    mean, std = (np.asarray(v, dtype=np.float32).reshape(-1, 1, 1) * 255 for v in (how.mean, how.std))
    return ((x - mean) / std)[None].astype(np.float32)  # [1, C, H, W]


def softmax(logits: np.ndarray) -> np.ndarray:
    """Probabilities over the last axis."""
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def providers(device: str) -> list[str]:
    """onnxruntime's execution providers for `device`: cpu, cuda, or auto (CUDA where onnxruntime has it)."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device == "auto":
        return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in available]
    wanted = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}.get(device.partition(":")[0])
    if wanted not in available:
        raise ModelFileError(f"device={device}: onnxruntime here runs on {', '.join(available)} (auto picks)")
    return [wanted]


def read_model(path: str | Path) -> bytes:
    """The bytes of the model file at `path`; ModelFileError for what is not a regular, readable, non-empty file
    (a FIFO is refused, not waited on)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            raise ModelFileError(f"{path}: not a regular file")
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: no such model file") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read: {error.strerror or error}") from None
    if not data:
        raise ModelFileError(f"{path}: empty file")
    return data


@dataclass
class Exported:
    """An ONNX file written by `cnnforge export`, ready to classify images with onnxruntime, numpy and Pillow.

    Example::

        from cnnforge.use.exported import Exported
        net = Exported.load("best.onnx")
        net.predict("six.png", top_k=2)  # [('6', 0.996...), ('4', 0.001...)]
    """

    session: Any  # onnxruntime.InferenceSession
    metadata: Metadata
    where: str  # the file, as named

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> Exported:
        return cls.from_bytes(read_model(path), str(path), device)

    @classmethod
    def from_bytes(cls, data: bytes, where: str = "model", device: str = "cpu", threads: int = 0) -> Exported:
        """The model serialised in `data`, run on `threads` threads (0: onnxruntime's choice, one per core);
        ModelFileError, naming `where`, when onnxruntime cannot run it or it is not a classifier as its metadata
        describes."""
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # errors only: its warnings are for onnxruntime's developers
        options.intra_op_num_threads = threads
        try:
            session = onnxruntime.InferenceSession(data, options, providers=providers(device))
        except ModelFileError:
            raise
        except Exception as error:  # onnxruntime raises its own kinds (InvalidProtobuf, Fail, ...)
            if data[:2] == b"PK":  # a zip archive: what torch.save, torch.export.save and torch.jit.save write
                raise ModelFileError(
                    f"{where}: a torch file, not an ONNX model: give a checkpoint as ckpt=, or write an ONNX file "
                    "with cnnforge export"
                ) from None
            first = str(error).strip().partition("\n")[0]
            raise ModelFileError(f"{where}: not a model onnxruntime can run ({first})") from None
        metadata = Metadata.from_properties(session.get_modelmeta().custom_metadata_map, where)
        exported = cls(session, metadata, where)
        exported._check_graph()
        return exported

    def _check_graph(self) -> None:
        """One input [N, C, H, W] of the prepared size and one output [N, classes], as the metadata says."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        found = [(i.name, i.shape) for i in inputs], [(o.name, o.shape) for o in outputs]
        expected = (
            [(INPUT, list(self.metadata.prepare.input))],
            [(OUTPUT, [len(self.metadata.classes)])],
        )
        got = ([(n, s[1:]) for n, s in found[0]], [(n, s[1:]) for n, s in found[1]])
        if got != expected:
            raise ModelFileError(
                f"{self.where}: its graph takes {found[0]} and gives {found[1]}, but its metadata describes "
                f"'{INPUT}' [N, {', '.join(map(str, self.metadata.prepare.input))}] -> '{OUTPUT}' "
                f"[N, {len(self.metadata.classes)}]"
            )

    @property
    def name(self) -> str:
        return self.metadata.name

    @property
    def classes(self) -> list[str]:
        return self.metadata.classes

    @property
    def mode(self) -> str:
        """The PIL mode images are read in: "L" for a network trained on grayscale, else "RGB"."""
        return self.metadata.prepare.mode

    def logits(self, x: np.ndarray) -> np.ndarray:
        """The network's outputs [N, classes] for prepared inputs [N, C, H, W] (float32)."""
        return self.session.run([OUTPUT], {INPUT: np.ascontiguousarray(x, dtype=np.float32)})[0]

    def inputs(self, image: ImageInput) -> np.ndarray:
        """`image` (a file or a PIL image) prepared as the network's input [1, C, H, W]."""
        pixels = images.read(image, self.mode) if isinstance(image, (str, Path)) else images.converted(image, self.mode)
        return prepared(pixels, self.metadata.prepare)

    def probabilities(self, image: ImageInput) -> np.ndarray:
        """The class probabilities of one image [classes]."""
        return softmax(self.logits(self.inputs(image)).astype(np.float64))[0]

    def predict(self, image: ImageInput, top_k: int = 3) -> list[tuple[str, float]]:
        """The `top_k` most probable classes of one image, with their probabilities, most probable first."""
        p = self.probabilities(image)
        top = np.argsort(-p, kind="stable")[: min(top_k, len(self.classes))]
        return [(self.classes[i], float(p[i])) for i in top]
