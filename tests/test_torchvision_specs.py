"""Every shipped torchvision family against torchvision itself, the oracle: at the spec's input size its
parameters equal torchvision's, its MACs equal half of torch's FlopCounterMode FLOPs on torchvision's model (convs
and matrix products, bias excluded: cnnforge's convention), its output is [1000]; built with torchvision's
state_dict (mapped by position), it computes torchvision's outputs. Depth and width variants are the family specs
with a parameter set (`--set depth=101`), checked the same way."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnforge.builder import build
from cnnforge.compiler import Compiled, compile_file, compile_spec

ARCHITECTURES = Path(__file__).resolve().parent.parent / "architectures"

# torchvision's builder name -> (the shipped spec, its parameters); a spec of the builder's own name first
FAMILIES: dict[str, tuple[str, dict]] = {
    name: (name, {})
    for name in (
        "alexnet",
        "vgg16",
        "vgg16_bn",
        "resnet18",
        "resnet50",
        "resnext50_32x4d",
        "wide_resnet50_2",
        "densenet121",
        "googlenet",
        "inception_v3",
        "squeezenet1_1",
        "shufflenet_v2_x1_0",
        "mobilenet_v2",
        "mobilenet_v3_large",
        "mnasnet1_0",
        "efficientnet_b0",
        "efficientnet_v2_s",
        "regnet_y_400mf",
        "convnext_tiny",
    )
}
REGNETS = {  # torchvision's BlockParams of each: stage widths, stage depths, group width, squeeze-and-excitation
    "regnet_y_800mf": ((64, 144, 320, 784), (1, 3, 8, 2), 16, True),
    "regnet_y_1_6gf": ((48, 120, 336, 888), (2, 6, 17, 2), 24, True),
    "regnet_y_3_2gf": ((72, 216, 576, 1512), (2, 5, 13, 1), 24, True),
    "regnet_y_8gf": ((224, 448, 896, 2016), (2, 4, 10, 1), 56, True),
    "regnet_y_16gf": ((224, 448, 1232, 3024), (2, 4, 11, 1), 112, True),
    "regnet_y_32gf": ((232, 696, 1392, 3712), (2, 5, 12, 1), 232, True),
    "regnet_y_128gf": ((528, 1056, 2904, 7392), (2, 7, 17, 1), 264, True),
    "regnet_x_400mf": ((32, 64, 160, 400), (1, 2, 7, 12), 16, False),
    "regnet_x_800mf": ((64, 128, 288, 672), (1, 3, 7, 5), 16, False),
    "regnet_x_1_6gf": ((72, 168, 408, 912), (2, 4, 10, 2), 24, False),
    "regnet_x_3_2gf": ((96, 192, 432, 1008), (2, 6, 15, 2), 48, False),
    "regnet_x_8gf": ((80, 240, 720, 1920), (2, 5, 15, 1), 120, False),
    "regnet_x_16gf": ((256, 512, 896, 2048), (2, 6, 13, 1), 128, False),
    "regnet_x_32gf": ((336, 672, 1344, 2520), (2, 7, 13, 1), 168, False),
}
EFFICIENTNETS = {  # width and depth multipliers, input size, dropout (B5-B7 also: batch norm eps 1e-3, momentum 0.01)
    "efficientnet_b1": (1.0, 1.1, 240, 0.2),
    "efficientnet_b2": (1.1, 1.2, 288, 0.3),
    "efficientnet_b3": (1.2, 1.4, 300, 0.3),
    "efficientnet_b4": (1.4, 1.8, 380, 0.4),
    "efficientnet_b5": (1.6, 2.2, 456, 0.4),
    "efficientnet_b6": (1.8, 2.6, 528, 0.5),
    "efficientnet_b7": (2.0, 3.1, 600, 0.5),
}
VARIANTS: dict[str, tuple[str, dict]] = {
    **{f"vgg{d}": ("vgg16", {"depth": d}) for d in (11, 13, 19)},
    **{f"vgg{d}_bn": ("vgg16", {"depth": d, "batch_norm": True}) for d in (11, 13, 19)},
    **{f"densenet{d}": ("densenet121", {"depth": d}) for d in (161, 169, 201)},
    "resnet34": ("resnet18", {"depth": 34}),
    **{f"resnet{d}": ("resnet50", {"depth": d}) for d in (101, 152)},
    "resnext101_32x8d": ("resnet50", {"depth": 101, "groups": 32, "width_per_group": 8}),
    "wide_resnet101_2": ("resnet50", {"depth": 101, "width_per_group": 128}),
    "convnext_small": ("convnext_tiny", {"stage3_depth": 27, "stochastic_depth_prob": 0.4}),
    "convnext_base": ("convnext_tiny", {"width": 128, "stage3_depth": 27, "stochastic_depth_prob": 0.5}),
    "convnext_large": ("convnext_tiny", {"width": 192, "stage3_depth": 27, "stochastic_depth_prob": 0.5}),
    "squeezenet1_0": ("squeezenet1_1", {"version": 1.0}),
    "mnasnet0_5": ("mnasnet1_0", {"alpha": 0.5}),
    "mnasnet0_75": ("mnasnet1_0", {"alpha": 0.75}),
    "mnasnet1_3": ("mnasnet1_0", {"alpha": 1.3}),
    "shufflenet_v2_x0_5": ("shufflenet_v2_x1_0", {"width": 48}),
    "shufflenet_v2_x1_5": ("shufflenet_v2_x1_0", {"width": 176}),
    "shufflenet_v2_x2_0": ("shufflenet_v2_x1_0", {"width": 244, "last": 2048}),
    **{
        name: (
            "regnet_y_400mf",
            {
                **{f"width{i + 1}": w for i, w in enumerate(widths)},
                **{f"depth{i + 1}": d for i, d in enumerate(depths)},
                "group_width": group,
                "se": se,
            },
        )
        for name, (widths, depths, group, se) in REGNETS.items()
    },
    **{
        name: (
            "efficientnet_b0",
            {
                "width": width,
                "depth": depth,
                "size": size,
                "dropout": dropout,
                **({"eps": 1e-3, "momentum": 0.01} if name >= "efficientnet_b5" else {}),
            },
        )
        for name, (width, depth, size, dropout) in EFFICIENTNETS.items()
    },
}
# torchvision's GoogLeNet and Inception v3 without their auxiliary classifiers and input transform, as shipped
KWARGS = {
    "googlenet": {"aux_logits": False, "transform_input": False, "init_weights": True},
    "inception_v3": {"aux_logits": False, "transform_input": False, "init_weights": True},
}
NOT_TORCHVISION = {"lenet", "alexnet2012"}  # shipped specs of networks torchvision does not have


@pytest.fixture(scope="module")
def models() -> ModuleType:
    return pytest.importorskip("torchvision.models")


def compiled(name: str) -> Compiled:
    spec, bindings = {**FAMILIES, **VARIANTS}[name]
    return compile_file(ARCHITECTURES / f"{spec}.yaml", bindings)


def reference(models: ModuleType, name: str) -> nn.Module:
    return models.get_model(name, weights=None, **KWARGS.get(name, {}))


def randomized(model: nn.Module) -> nn.Module:
    """`model` in eval mode with normalisations and scales that do something: torchvision starts batch norms'
    and layer norms' scales at 1, shifts and running means at 0, running variances at 1, and ConvNeXt's layer
    scales at 1e-6, under which a wrong residual branch would hardly show."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, (nn.BatchNorm2d, nn.LayerNorm)):
            module.weight.data = torch.rand(module.weight.shape, generator=generator) + 0.5
            module.bias.data = torch.randn(module.bias.shape, generator=generator) * 0.1
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=generator) + 0.5)
        for name, parameter in module.named_parameters(recurse=False):
            if name == "layer_scale":
                parameter.data = torch.rand(parameter.shape, generator=generator) * 0.5 + 0.25
    return model.eval()


def test_every_shipped_torchvision_spec_is_checked() -> None:
    shipped = {path.stem for path in ARCHITECTURES.glob("*.yaml")} - NOT_TORCHVISION
    assert shipped == set(FAMILIES)


@pytest.mark.parametrize("name", [*FAMILIES, *VARIANTS])
def test_parameters_macs_and_output_are_torchvisions(
    models: ModuleType, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = compiled(name)
    # torchvision's RegNets work out their stages' widths with tensors while they build, and read them: those are
    # made on the CPU, and RegNet-Y 128GF's 645M parameters on the meta device like every other model's
    widths = models.regnet.BlockParams.from_init_params.__func__

    def on_cpu(cls: type, *args: Any, **kwargs: Any) -> Any:
        with torch.device("cpu"):
            return widths(cls, *args, **kwargs)

    monkeypatch.setattr(models.regnet.BlockParams, "from_init_params", classmethod(on_cpu))
    with torch.device("meta"):  # shapes and counts alone: nothing is allocated or computed
        model = reference(models, name).eval()
    with FlopCounterMode(display=False) as flops, torch.no_grad():
        model(torch.empty(1, *spec.spec.input, device="meta"))
    assert spec.total_params == sum(p.numel() for p in model.parameters())
    assert spec.total_macs() == flops.get_total_flops() // 2
    assert spec.output == (1000,)


def smaller(spec: Compiled) -> Compiled:
    """The spec at the smallest input of 64, 96 or 128 square that it takes with the same parameters and output,
    where that is smaller than its own: the same network, less arithmetic."""
    for size in (64, 96, 128):
        if size * size >= spec.spec.input[1] * spec.spec.input[2]:
            break
        small = compile_spec(spec.spec.model_copy(update={"input": (spec.spec.input[0], size, size)}))
        if small.ok and (small.total_params, small.output) == (spec.total_params, spec.output):
            return small
    return spec


@pytest.mark.parametrize("name", FAMILIES)
def test_torchvisions_weights_give_torchvisions_outputs(models: ModuleType, name: str, one_thread: None) -> None:
    """At a smaller input than the spec's where it takes one: the same layers and weights, and so the same
    computation to compare; the counts above are checked at the spec's own input."""
    spec = smaller(compiled(name))
    torch.manual_seed(0)
    theirs = randomized(reference(models, name))
    ours = build(spec, state_dict=theirs.state_dict()).eval()
    assert len(ours.state_dict()) == len(theirs.state_dict())
    x = torch.randn(2, *spec.spec.input)
    with torch.no_grad():
        expected, found = theirs(x), ours(x)
    assert found.shape == expected.shape == (2, 1000)
    error, scale = (found - expected).abs().max().item(), expected.abs().max().item()
    assert error <= 1e-4 * scale, f"max abs difference {error:.3g}, logits up to {scale:.3g}"
