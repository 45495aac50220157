"""Training: the Hydra app behind `cnnforge train`, and `cnnforge evaluate` / `cnnforge predict`."""
