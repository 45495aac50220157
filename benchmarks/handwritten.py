"""The shipped specs as plain PyTorch modules, written by hand or torchvision's: the baselines cnnforge is
measured against.

Their parameters come in the same order as the built spec's, so a cnnforge state_dict loads into them by
position (`load_by_position`) and then both compute the same outputs (tests/test_benchmarks.py checks it).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn


class LeNet5(nn.Module):
    """LeNet-5 as architectures/lenet.yaml describes it: [N, 1, 32, 32] -> [N, 10] (`classes` is always 10
    there)."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(400, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(torch.tanh(self.conv1(x)), 2)  # [N, 6, 14, 14]
        x = F.avg_pool2d(torch.tanh(self.conv2(x)), 2)  # [N, 16, 5, 5]
        x = torch.flatten(x, 1)  # [N, 400]
        x = torch.tanh(self.fc1(x))
        x = torch.tanh(self.fc2(x))
        return self.fc3(x)  # [N, classes]


class AlexNet(nn.Module):
    """AlexNet as architectures/alexnet.yaml (and torchvision) describe it: [N, 3, 224, 224] -> [N, classes]."""

    def __init__(self, classes: int = 1000) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 11, stride=4, padding=2)
        self.conv2 = nn.Conv2d(64, 192, 5, padding=2)
        self.conv3 = nn.Conv2d(192, 384, 3, padding=1)
        self.conv4 = nn.Conv2d(384, 256, 3, padding=1)
        self.conv5 = nn.Conv2d(256, 256, 3, padding=1)
        self.fc1 = nn.Linear(256 * 6 * 6, 4096)
        self.fc2 = nn.Linear(4096, 4096)
        self.fc3 = nn.Linear(4096, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 3, 2)  # [N, 64, 27, 27]
        x = F.max_pool2d(F.relu(self.conv2(x)), 3, 2)  # [N, 192, 13, 13]
        x = F.relu(self.conv3(x))  # [N, 384, 13, 13]
        x = F.relu(self.conv4(x))  # [N, 256, 13, 13]
        x = F.max_pool2d(F.relu(self.conv5(x)), 3, 2)  # [N, 256, 6, 6]
        x = torch.flatten(F.adaptive_avg_pool2d(x, 6), 1)  # [N, 9216]
        x = F.relu(self.fc1(F.dropout(x, 0.5, self.training)))
        x = F.relu(self.fc2(F.dropout(x, 0.5, self.training)))
        return self.fc3(x)  # [N, classes]


HANDWRITTEN: dict[str, type[LeNet5 | AlexNet]] = {"lenet": LeNet5, "alexnet": AlexNet}  # shipped spec -> class


def torchvision_model(name: str) -> Callable[[int], nn.Module]:
    """A maker of torchvision.models.<name>, which architectures/<name>.yaml describes; needs torchvision (the
    vision extra)."""

    def make(classes: int = 1000) -> nn.Module:
        from torchvision.models import get_model

        return get_model(name, weights=None, num_classes=classes)

    return make


TORCHVISION = ("resnet18", "resnet50", "mobilenet_v2")  # the shipped specs measured against torchvision's own
BASELINES: dict[str, Callable[[int], nn.Module]] = {
    **HANDWRITTEN,
    **{name: torchvision_model(name) for name in TORCHVISION},
}  # spec -> maker


def load_by_position(target: nn.Module, source: nn.Module) -> nn.Module:
    """Copy `source`'s state into `target`, matching entries by their order rather than their names."""
    keys, values = target.state_dict().keys(), source.state_dict().values()
    if len(keys) != len(values):
        raise ValueError(f"{len(values)} state entries do not fit a module with {len(keys)}")
    target.load_state_dict(dict(zip(keys, values, strict=True)))
    return target
