"""Hydra configs of `cnnforge train`, shipped as package data: one file per option in each group."""
