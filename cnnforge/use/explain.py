"""`cnnforge explain`: class-activation heatmaps (Grad-CAM and its kin, computed by the grad-cam package) over
the images a trained checkpoint classifies."""

from __future__ import annotations

import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..extras import install_hint
from ..files import Writer, write_new
from ..layers.registry import suggest
from .command import UsageError, count_option, device_option, flag_option, read_image, split_args
from .grid import SIZE
from .maps import feature_layer
from .model import load

# The method names pytorch-grad-cam's own examples use, and its class for each.
METHODS = {
    "gradcam": "GradCAM",
    "gradcam++": "GradCAMPlusPlus",
    "hirescam": "HiResCAM",
    "xgradcam": "XGradCAM",
    "layercam": "LayerCAM",
    "gradcamelementwise": "GradCAMElementWise",
    "shapleycam": "ShapleyCAM",
    "scorecam": "ScoreCAM",
    "ablationcam": "AblationCAM",
    "eigencam": "EigenCAM",
    "eigengradcam": "EigenGradCAM",
    "kpcacam": "KPCA_CAM",
    "fem": "FEM",
}
CLASS_FREE = ("eigencam", "kpcacam", "fem")  # the same map whatever the class

USAGE = (
    "usage: cnnforge explain ckpt=PATH [method=gradcam] [layer=PATH] [class=NAME_OR_INDEX] [out=explain] "
    "[npy=true] [size=256] [device=auto|cpu|cuda|mps] IMAGE..."
)
METHOD_HELP = textwrap.fill(
    f"{', '.join(METHODS)} (default gradcam; {', '.join(CLASS_FREE)} give the same map for every class)",
    width=116,
    initial_indent="  method=   ",
    subsequent_indent=" " * 12,
)
HELP = f"""{USAGE}

Writes, for each image, a class-activation heatmap over the image, as OUT/STEM.METHOD.LAYER.png (a new name,
STEM.METHOD.LAYER-2.png and so on, when that exists), and prints the predicted class and its probability.
{METHOD_HELP}
  layer=    a layer or group giving a feature map [C, H, W], by its path (layer2.0.conv1, layer4; default: the
            last conv layer)
  class=    the class to explain, by name or index (default: the predicted one); files STEM.METHOD.LAYER.classN
  out=      the output folder (default: explain, in the current folder)
  npy=true  also write the heatmap itself, values in [0, 1], as STEM.METHOD.LAYER.npy (float32 [H, W], the
            image's own size)
  size=     enlarge smaller images (bilinear) to this many pixels on their shorter side (default 256); size=0:
            the image's own size
Needs the explain extra: pip install 'cnnforge[explain]'."""


def method_name(value: str) -> str:
    """The METHODS key for `value`, given as that key or as the class name, in any case."""
    by_lower = {key: key for key in METHODS} | {cls.lower(): key for key, cls in METHODS.items()}
    if value.lower() in by_lower:
        return by_lower[value.lower()]
    raise UsageError(f"method={value}: no such method{suggest(value, METHODS)}; methods: {', '.join(METHODS)}")


def grad_cam() -> ModuleType:
    """The grad-cam package, or a UsageError saying how to install it."""
    try:
        import pytorch_grad_cam
    except ImportError as error:
        raise UsageError(f"needs the explain extra: {install_hint('explain')} ({error})") from None
    return pytorch_grad_cam


def class_index(value: str, classes: list[str]) -> int:
    """The class named `value`, or numbered `value` (from 0)."""
    if value in classes:
        return classes.index(value)
    if value.isdigit() and int(value) < len(classes):
        return int(value)
    shown = ", ".join(classes[:20]) + (f", ... ({len(classes)} classes)" if len(classes) > 20 else "")
    raise UsageError(
        f"class={value}: not a class name, nor an index below {len(classes)}{suggest(value, classes)}; classes: {shown}"
    )


def resize(heat: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """A heatmap [H, W] at the spec's input size brought back to an image's size [h, w]: the inverse of the
    bilinear resize with which Prepare made the image the spec's size."""
    if tuple(heat.shape) == size:
        return heat
    smaller = size[0] < heat.shape[0] or size[1] < heat.shape[1]
    return F.interpolate(heat[None, None], size=size, mode="bilinear", align_corners=False, antialias=smaller)[0, 0]


def heatmap(cam: Any, x: torch.Tensor, target: int) -> torch.Tensor:
    """The map [H, W] of class `target` that `cam` computes for the prepared input x [1, C, H, W]."""
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    return torch.from_numpy(cam(input_tensor=x, targets=[ClassifierOutputTarget(target)])[0])


def fitted(heat: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """A heatmap [H, W] as float32 [h, w] at `size`, values in [0, 1]."""
    return resize(heat, size).clamp(0, 1).numpy()


def enlarged(size: tuple[int, int], shorter: int) -> tuple[int, int]:
    """An image's (height, width) `size` scaled up to `shorter` pixels on its shorter side; as it is when that
    side is as long already, or `shorter` is 0."""
    if not shorter or min(size) >= shorter:
        return size
    height, width = (max(shorter, round(side * shorter / min(size))) for side in size)
    return height, width


def overlay(rgb: torch.Tensor, heat: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """uint8 [h, w, 3] at `size`: the image rgb [1, 3, h0, w0] (uint8) and the heatmap [H, W], both resized
    bilinearly, the image half covered by the heatmap in the jet colour map."""
    from pytorch_grad_cam.utils.image import show_cam_on_image

    image = rgb.float()
    if tuple(image.shape[2:]) != size:
        image = F.interpolate(image, size=size, mode="bilinear", align_corners=False).clamp(0, 255)  # rounding
    return show_cam_on_image(image[0].permute(1, 2, 0).numpy() / 255, fitted(heat, size), use_rgb=True)


def _png(image: np.ndarray) -> Writer:
    from PIL import Image

    return lambda file: Image.fromarray(image).save(file, format="PNG")


def _npy(array: np.ndarray) -> Writer:
    return lambda file: np.save(file, array)


def command(argv: list[str]) -> int:
    """cnnforge explain ckpt=PATH [method=gradcam] [layer=PATH] [class=C] [out=DIR] [npy=true] IMAGE..."""
    if "--help" in argv or "-h" in argv:
        print(HELP)
        return 0
    known = ("ckpt", "method", "layer", "class", "out", "npy", "size", "device")
    options, images = split_args(argv, known, USAGE, flags=("npy",))
    if "ckpt" not in options or not images:
        raise UsageError(USAGE)
    method = method_name(options.get("method", "gradcam"))
    npy = flag_option(options, "npy", USAGE)
    size = count_option(options, "size", SIZE, USAGE, least=0)
    device = device_option(options, USAGE)
    out = Path(options.get("out", "explain"))
    cams = grad_cam()
    trained = load(options["ckpt"], device)
    model, classes = trained.model, trained.classes
    layer = feature_layer(trained.compiled, options.get("layer"), inputs=False)
    chosen = class_index(options["class"], classes) if "class" in options else None
    out.mkdir(parents=True, exist_ok=True)
    cam = getattr(cams, METHODS[method])(model=model, target_layers=[model.get_submodule(layer.module)])
    mode = trained.mode
    status = 0
    try:
        for name in images:
            x = read_image(name, mode)
            rgb = x if mode == "RGB" or x is None else read_image(name, "RGB")
            if x is None or rgb is None:
                status = 1
                continue
            prepared = trained.inputs(x)  # [1, C, H, W], the spec's
            with torch.no_grad():
                p = model(prepared).softmax(dim=1)[0].cpu()
            target = int(p.argmax()) if chosen is None else chosen
            heat = heatmap(cam, prepared, target)  # [H, W], the spec's input size
            own = (x.shape[2], x.shape[3])
            writers = {".png": _png(overlay(rgb, heat, enlarged(own, size)))}
            if npy:
                writers[".npy"] = _npy(fitted(heat, own))  # [h, w], the image's own size
            stem = f"{Path(name).stem}.{method}.{layer.path}" + ("" if chosen is None else f".class{chosen}")
            files = write_new(out, stem, writers)
            which = "" if chosen is None else f", heatmap for {classes[chosen]} ({p[chosen]:.3f})"
            print(f"{name}: {classes[int(p.argmax())]} ({p.max():.3f}){which} -> {', '.join(map(str, files))}")
    finally:
        cam.activations_and_grads.release()
    return status
