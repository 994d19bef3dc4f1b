"""Tensor operations shared by methods and evaluators (augmentation, ...)."""
