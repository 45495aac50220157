"""The blocks of torchvision's families, written as spec blocks: torchvision's own module, its weights loaded
into the built block by position, gives the same outputs, and the checker's parameter count is torchvision's.
Each spec uses the format as the next family specs will (branches, gates, splits, `when`, expressions)."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from cnnforge import compile_spec
from cnnforge.builder import build
from cnnforge.spec import read_text

torchvision = pytest.importorskip("torchvision")
from torchvision.models import convnext, mobilenetv3, shufflenetv2, squeezenet  # noqa: E402
from torchvision.models.googlenet import Inception  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")


def built(text: str, **bindings: object) -> tuple[torch.nn.Module, int]:
    loaded = read_text(text, "block.yaml", bindings or None)
    assert loaded.spec is not None, [str(d) for d in loaded.diagnostics]
    compiled = compile_spec(loaded.spec, "block.yaml", loaded.source)
    assert compiled.ok, [str(d) for d in compiled.diagnostics]
    return build(compiled), compiled.total_params


def assert_same(ours: torch.nn.Module, params: int, theirs: torch.nn.Module, shape: tuple[int, ...]) -> None:
    """Load `theirs`' state_dict into `ours` by position and compare outputs in evaluation mode."""
    mine, reference = ours.state_dict(), theirs.state_dict()
    assert [tuple(t.shape) for t in mine.values()] == [tuple(t.shape) for t in reference.values()]
    ours.load_state_dict(dict(zip(mine, reference.values(), strict=True)))
    assert params == sum(p.numel() for p in theirs.parameters())
    for module in (ours, theirs):  # non-trivial batch-norm statistics, so that a mix-up shows
        module.train()
        with torch.no_grad():
            module(torch.randn(8, *shape))
    ours.load_state_dict(dict(zip(mine, theirs.state_dict().values(), strict=True)))
    x = torch.randn(2, *shape)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-5, atol=1e-5)


SHUFFLE = """\
name: shuffle
params: {inp: 24, oup: 116, stride: 2}
input: ['${inp}', 28, 28]
blocks:
  shuffle_unit:                     # ShuffleNet V2's unit: split, or two branches; joined and shuffled
    params: {inp: 24, oup: 116, stride: 1, half: '${oup // 2}'}
    layers:
      - type: concat
        branches:
          branch1:                  # stride 1: the first half of the channels, as they are
            - {type: chunk, chunks: 2, index: 0, when: '${stride == 1}'}
            - type: sequence
              name: branch1
              when: '${stride > 1}'
              layers:
                - {type: conv, shape: ['${inp}', '${inp}', 3, 3], stride: '${stride}', padding: 1, groups: '${inp}',
                   bias: false}
                - {type: batchnorm}
                - {type: conv, shape: ['${inp}', '${half}', 1, 1], bias: false}
                - {type: batchnorm}
                - {type: relu}
          branch2:                  # stride 1: the second half
            - {type: chunk, chunks: 2, index: 1, when: '${stride == 1}'}
            - type: sequence
              name: branch2
              layers:
                - {type: conv, shape: ['${inp if stride > 1 else half}', '${half}', 1, 1], bias: false}
                - {type: batchnorm}
                - {type: relu}
                - {type: conv, shape: ['${half}', '${half}', 3, 3], stride: '${stride}', padding: 1,
                   groups: '${half}', bias: false}
                - {type: batchnorm}
                - {type: conv, shape: ['${half}', '${half}', 1, 1], bias: false}
                - {type: batchnorm}
                - {type: relu}
      - {type: channel_shuffle, groups: 2}
layers:
  - {type: shuffle_unit, inp: '${inp}', oup: '${oup}', stride: '${stride}'}
"""


@pytest.mark.parametrize(("inp", "oup", "stride"), [(24, 116, 2), (116, 116, 1)])
def test_shufflenet_v2_unit(inp: int, oup: int, stride: int) -> None:
    ours, params = built(SHUFFLE, inp=inp, oup=oup, stride=stride)
    assert_same(ours, params, shufflenetv2.InvertedResidual(inp, oup, stride), (inp, 28, 28))


MOBILE = """\
name: mobile
params: {inp: 40, kernel: 5, expanded: 120, out: 40, stride: 1}
input: ['${inp}', 28, 28]
blocks:
  bneck:                            # MobileNetV3's inverted residual with squeeze-and-excitation, hardswish
    params: {inp: 16, kernel: 3, expanded: 64, out: 24, stride: 1, squeeze: '${max(8, (expanded // 4 + 4) // 8 * 8)}'}
    layers:
      - type: add
        branches:
          body:
            - type: sequence
              name: expand
              when: '${expanded != inp}'
              layers:
                - {type: conv, shape: ['${inp}', '${expanded}', 1, 1], bias: false}
                - {type: batchnorm, eps: 0.001, momentum: 0.01}
                - {type: hardswish}
            - type: sequence
              name: depthwise
              layers:
                - {type: conv, shape: ['${expanded}', '${expanded}', '${kernel}', '${kernel}'], stride: '${stride}',
                   padding: '${(kernel - 1) // 2}', groups: '${expanded}', bias: false}
                - {type: batchnorm, eps: 0.001, momentum: 0.01}
                - {type: hardswish}
            - type: multiply
              name: se
              branches:
                input: []
                gate:
                  - {type: adaptive_avgpool, output: 1}
                  - {type: conv, name: fc1, shape: ['${expanded}', '${squeeze}', 1, 1]}
                  - {type: relu}
                  - {type: conv, name: fc2, shape: ['${squeeze}', '${expanded}', 1, 1]}
                  - {type: hardsigmoid}
            - type: sequence
              name: project
              layers:
                - {type: conv, shape: ['${expanded}', '${out}', 1, 1], bias: false}
                - {type: batchnorm, eps: 0.001, momentum: 0.01}
          shortcut: []
layers:
  - {type: bneck, inp: '${inp}', kernel: '${kernel}', expanded: '${expanded}', out: '${out}', stride: '${stride}'}
"""


def test_mobilenet_v3_bneck_with_se_and_residual() -> None:
    ours, params = built(MOBILE)
    config = mobilenetv3.InvertedResidualConfig(40, 5, 120, 40, True, "HS", 1, 1, 1.0)
    theirs = mobilenetv3.InvertedResidual(config, partial(torch.nn.BatchNorm2d, eps=0.001, momentum=0.01))
    assert_same(ours, params, theirs, (40, 28, 28))


CONVNEXT = """\
name: cnblock
input: [96, 14, 14]
blocks:
  cnblock:                          # ConvNeXt's block: 7x7 depthwise, layer norm, inverted bottleneck, scaled
    params: {dim: 96, p: 0.0}
    layers:
      - type: add
        branches:
          body:
            - {type: conv, shape: ['${dim}', '${dim}', 7, 7], padding: 3, groups: '${dim}'}
            - {type: layernorm, eps: 1e-6}
            - {type: channel_linear, shape: ['${dim}', '${4 * dim}']}
            - {type: gelu}
            - {type: channel_linear, shape: ['${4 * dim}', '${dim}']}
            - {type: layer_scale, init: 1e-6}
            - {type: stochastic_depth, p: '${p}'}
          input: []
layers:
  - {type: cnblock}
"""


def test_convnext_block() -> None:
    ours, params = built(CONVNEXT)
    theirs = convnext.CNBlock(96, 1e-6, 0.0)
    state = theirs.state_dict()  # torchvision registers layer_scale before the block's layers
    order = [*[k for k in state if k != "layer_scale"], "layer_scale"]
    mine = ours.state_dict()
    ours.load_state_dict(dict(zip(mine, (state[k] for k in order), strict=True)))
    torch.nn.init.normal_(theirs.layer_scale)
    ours.load_state_dict(dict(zip(mine, (theirs.state_dict()[k] for k in order), strict=True)))
    assert params == sum(p.numel() for p in theirs.parameters())
    x = torch.randn(2, 96, 14, 14)
    torch.testing.assert_close(ours.eval()(x), theirs.eval()(x), rtol=1e-5, atol=1e-5)


FIRE = """\
name: fire
input: [128, 27, 27]
layers:
  - {type: conv, name: squeeze, shape: [128, 32, 1, 1]}
  - {type: relu, name: squeeze_activation}
  - type: concat
    branches:
      expand1x1: [{type: conv, name: expand1x1, shape: [32, 128, 1, 1]}, {type: relu, name: expand1x1_activation}]
      expand3x3:
        - {type: conv, name: expand3x3, shape: [32, 128, 3, 3], padding: 1}
        - {type: relu, name: expand3x3_activation}
"""


def test_squeezenet_fire() -> None:
    ours, params = built(FIRE)
    assert [name for name, _ in ours.named_children()][:2] == ["squeeze", "squeeze_activation"]
    assert_same(ours, params, squeezenet.Fire(128, 32, 128, 128), (128, 27, 27))


INCEPTION = """\
name: inception
input: [192, 28, 28]
blocks:
  basic_conv:                       # GoogLeNet's BasicConv2d
    params: {cin: 1, cout: 1, k: 1, pad: 0}
    layers:
      - {type: conv, name: conv, shape: ['${cin}', '${cout}', '${k}', '${k}'], padding: '${pad}', bias: false}
      - {type: batchnorm, name: bn, eps: 0.001}
      - {type: relu}
  inception:
    params: {cin: 192, c1: 64, c3r: 96, c3: 128, c5r: 16, c5: 32, pool: 32}
    layers:
      - type: concat
        branches:
          branch1: [{type: basic_conv, name: branch1, cin: '${cin}', cout: '${c1}'}]
          branch2:
            - type: sequence
              name: branch2
              layers:
                - {type: basic_conv, cin: '${cin}', cout: '${c3r}'}
                - {type: basic_conv, cin: '${c3r}', cout: '${c3}', k: 3, pad: 1}
          branch3:                  # torchvision's GoogLeNet uses a 3x3 here
            - type: sequence
              name: branch3
              layers:
                - {type: basic_conv, cin: '${cin}', cout: '${c5r}'}
                - {type: basic_conv, cin: '${c5r}', cout: '${c5}', k: 3, pad: 1}
          branch4:
            - type: sequence
              name: branch4
              layers:
                - {type: maxpool, kernel: 3, stride: 1, padding: 1, ceil_mode: true}
                - {type: basic_conv, cin: '${cin}', cout: '${pool}'}
layers:
  - {type: inception, name: inception3a}
"""


def test_googlenet_inception() -> None:
    ours, params = built(INCEPTION)
    assert ours.inception3a.branch2[1].conv.kernel_size == (3, 3)
    assert_same(ours, params, Inception(192, 64, 96, 128, 16, 32, 32), (192, 28, 28))
