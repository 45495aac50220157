"""Layer names become submodule names: cnnforge refuses exactly the names torch cannot add."""

import pytest
from torch import nn

from cnnforge.layers.fields import RESERVED_NAMES


def test_reserved_names_are_the_public_attributes_of_sequential() -> None:
    public = {name for name in dir(nn.Sequential()) if name[:1].isalpha()}
    assert RESERVED_NAMES == public


@pytest.mark.parametrize("name", sorted(RESERVED_NAMES))
def test_torch_refuses_every_reserved_name(name: str) -> None:
    with pytest.raises(KeyError):
        nn.Sequential().add_module(name, nn.ReLU())
