"""The spec file format: YAML with source positions, validated by pydantic models."""

from .model import SpecBase, spec_model
from .read import Loaded, read, read_text, validate
from .source import Source, SourceError, parse

__all__ = ["Loaded", "Source", "SourceError", "SpecBase", "parse", "read", "read_text", "spec_model", "validate"]
