"""The layer kinds of torchvision's modern families against torchvision itself: ConvNeXt's layer norm, pointwise
linear maps and layer scale have its parameters (names, shapes, order), take its weights by position and give its
values; stochastic depth draws what torchvision.ops.StochasticDepth draws; ShuffleNetV2's split and shuffle, and
MobileNet's activations, are its own. cnnforge never imports torchvision; these tests do."""

from __future__ import annotations

import pytest
import torch
from agreement import compile_dict
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models.convnext import CNBlock, LayerNorm2d
from torchvision.models.shufflenetv2 import channel_shuffle
from torchvision.ops import StochasticDepth

from cnnforge.builder import build
from cnnforge.layers import LAYERS, Shape


def module(layer: dict, x: Shape) -> nn.Module:
    """The torch module cnnforge builds for `layer` on one sample of shape `x`."""
    return LAYERS[layer["type"]].model_validate(layer).module(x)


def parameters(m: nn.Module, recurse: bool = True) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(p.shape)) for name, p in m.named_parameters(recurse=recurse)]


def randomised(m: nn.Module) -> nn.Module:
    with torch.no_grad():
        for p in m.parameters():
            p.normal_()
    return m


@pytest.mark.parametrize("affine", [True, False])
def test_layernorm_is_convnexts_layernorm2d(affine: bool) -> None:
    ours = module({"type": "layernorm", "eps": 1e-6, "affine": affine}, (8, 5, 6))
    theirs = randomised(LayerNorm2d(8, eps=1e-6, elementwise_affine=affine))
    assert parameters(ours) == parameters(theirs) == ([("weight", (8,)), ("bias", (8,))] if affine else [])
    ours.load_state_dict(theirs.state_dict())
    x = torch.rand(3, 8, 5, 6)
    assert torch.equal(ours(x), theirs(x))


def test_layernorm_on_features_is_torchs_layernorm() -> None:
    ours = module({"type": "layernorm"}, (10,))
    assert type(ours) is nn.LayerNorm and (ours.normalized_shape, ours.eps) == ((10,), 1e-5)


def test_a_convnext_block_branch_takes_torchvisions_weights_by_position() -> None:
    """CNBlock's branch, layer_scale * block(x): a depthwise 7x7 conv, layer norm, two pointwise linear maps with
    GELU between, and the layer scale; each module has the parameters of the torchvision module it stands for."""
    dim = 8
    spec = {
        "name": "cnblock",
        "input": [dim, 7, 7],
        "layers": [
            {"type": "conv", "shape": [dim, dim, 7, 7], "padding": 3, "groups": dim},
            {"type": "layernorm", "eps": 1e-6},
            {"type": "channel_linear", "shape": [dim, 4 * dim]},
            {"type": "gelu"},
            {"type": "channel_linear", "shape": [4 * dim, dim]},
            {"type": "layer_scale"},
            {"type": "stochastic_depth", "p": 0.1},
        ],
    }
    ours = build(compile_dict(spec))
    block = CNBlock(dim, layer_scale=1e-6, stochastic_depth_prob=0.1)
    assert torch.equal(ours.layer_scale5.layer_scale, block.layer_scale)  # both start at 1e-6
    theirs = [block.block[0], block.block[2], block.block[3], block.block[4], block.block[5]]
    for our, their in zip(list(ours)[:5], theirs, strict=True):
        assert parameters(our) == parameters(their)
    assert parameters(ours.layer_scale5) == parameters(block, recurse=False) == [("layer_scale", (dim, 1, 1))]
    randomised(block)
    with torch.no_grad():
        for our, their in zip(ours.parameters(), [*block.block.parameters(), block.layer_scale], strict=True):
            our.copy_(their)
    x = torch.rand(2, dim, 7, 7)
    ours.eval(), block.eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), block.layer_scale * block.block(x), rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(6, 3, 4, 4), (6, 5)])
@pytest.mark.parametrize("mode", ["row", "batch"])
@pytest.mark.parametrize("p", [0.0, 0.2, 0.5, 1.0])
def test_stochastic_depth_draws_what_torchvision_draws(p: float, mode: str, shape: tuple[int, ...]) -> None:
    ours = module({"type": "stochastic_depth", "p": p, "mode": mode}, shape[1:])
    theirs = StochasticDepth(p, mode)
    x = torch.rand(*shape, requires_grad=True)
    for seed in range(5):
        torch.manual_seed(seed)
        expected = theirs(x)
        torch.manual_seed(seed)
        assert torch.equal(ours(x), expected)
    ours.eval(), theirs.eval()
    assert ours(x) is x and theirs(x) is x


def test_stochastic_depth_keeps_or_zeroes_whole_samples() -> None:
    """In 'row' mode each sample is zeroed or scaled by 1/(1 - p) as a whole; in 'batch' mode all together."""
    x = torch.ones(400, 2, 3, 3)
    torch.manual_seed(0)
    y = module({"type": "stochastic_depth", "p": 0.25}, (2, 3, 3))(x)
    per_sample = y.flatten(1)
    assert ((per_sample == 0).all(dim=1) | (per_sample == 1 / 0.75).all(dim=1)).all()
    assert 0.15 < (per_sample[:, 0] == 0).float().mean() < 0.35
    y = module({"type": "stochastic_depth", "p": 0.25, "mode": "batch"}, (2, 3, 3))(x)
    assert len(y.unique()) == 1


def test_shufflenet_split_and_shuffle_are_torchvisions() -> None:
    """ShuffleNetV2 splits its input in two with x.chunk(2, dim=1) and shuffles with groups of 2."""
    x = torch.rand(2, 12, 3, 3)
    halves = x.chunk(2, dim=1)
    for index, half in enumerate(halves):
        ours = module({"type": "chunk", "chunks": 2, "index": index}, (12, 3, 3))(x)
        assert torch.equal(ours, half)
        assert ours.untyped_storage().data_ptr() == x.untyped_storage().data_ptr()  # a view, as torch's
    shuffle = module({"type": "channel_shuffle", "groups": 2}, (12, 3, 3))
    assert type(shuffle) is nn.ChannelShuffle and torch.equal(shuffle(x), channel_shuffle(x, 2))


@pytest.mark.parametrize(("channels", "chunks"), [(5, 4), (6, 4), (7, 4), (3, 5), (1, 1), (12, 5)])
def test_chunk_makes_the_parts_torch_makes(channels: int, chunks: int) -> None:
    """torch.chunk makes fewer parts than asked when parts of ceil(C / chunks) fill C sooner: 5 in 4 gives 2, 2, 1."""
    x = torch.rand(2, channels, 3, 3)
    parts = torch.chunk(x, chunks, dim=1)
    for index in range(chunks + 1):
        compiled = compile_dict(
            {"name": "t", "input": [channels, 3, 3], "layers": [{"type": "chunk", "chunks": chunks, "index": index}]}
        )
        assert compiled.ok == (index < len(parts))
        if compiled.ok:
            assert compiled.output == tuple(parts[index].shape[1:])
            assert torch.equal(build(compiled)(x), parts[index])


@pytest.mark.parametrize(
    ("kind", "torch_class"),
    [("relu6", nn.ReLU6), ("hardswish", nn.Hardswish), ("hardsigmoid", nn.Hardsigmoid), ("identity", nn.Identity)],
)
def test_mobilenet_activations_are_torchs_own_classes(kind: str, torch_class: type) -> None:
    """MobileNet's activations, and the identity, are torch's own classes."""
    assert type(module({"type": kind}, (3, 4, 4))) is torch_class


def test_macs_are_what_torchs_flop_counter_counts() -> None:
    """torch counts 2 FLOPs per multiply-accumulate of a convolution or a matrix product, bias aside: a
    channel_linear makes C_i*C_o of them at each position."""
    spec = {
        "name": "t",
        "input": [3, 6, 5],
        "layers": [
            {"type": "conv", "shape": [3, 4, 3, 3], "padding": 1},
            {"type": "channel_linear", "shape": [4, 7]},
            {"type": "layernorm"},
            {"type": "channel_linear", "shape": [7, 2], "bias": False},
            {"type": "flatten"},
            {"type": "linear", "shape": [60, 3]},
        ],
    }
    compiled = compile_dict(spec)
    x = torch.rand(2, 3, 6, 5)
    for layer, m in zip(compiled.layers, build(compiled), strict=True):
        with FlopCounterMode(display=False) as counter:
            y = m(x)
        assert counter.get_total_flops() == 2 * 2 * layer.macs, layer.name
        x = y
    assert compiled.layers[1].macs == 6 * 5 * 4 * 7
