"""benchsuite: benchmark dataset distillation methods under one protocol.

The public API for plugin authors. Import anything else from its module at your own risk.
"""

from benchsuite.api import LabeledData, Method, RunContext, SyntheticSet
from benchsuite.errors import (
    BenchsuiteError,
    ConfigError,
    DataUnavailableError,
    MethodError,
    PluginError,
    UnknownNameError,
)
from benchsuite.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = [
    "BenchsuiteError",
    "ConfigError",
    "DataUnavailableError",
    "LabeledData",
    "Method",
    "MethodError",
    "PluginError",
    "RunContext",
    "SyntheticSet",
    "UnknownNameError",
    "__version__",
    "hookimpl",
]
