"""Typed exceptions. Every message says what the user can do about it."""


class BenchsuiteError(Exception):
    """Base of every error the suite raises on purpose."""


class ConfigError(BenchsuiteError):
    """A protocol, option or hyperparameter is invalid."""


class UnknownNameError(BenchsuiteError, KeyError):
    """A method, dataset, architecture or protocol name is not registered."""

    def __str__(self) -> str:  # KeyError would otherwise quote the message
        return str(self.args[0]) if self.args else ""


class PluginError(BenchsuiteError):
    """A plugin failed to load, misspelt a hook, or registered a duplicate name."""


class DataUnavailableError(BenchsuiteError):
    """A dataset could not be found in any source."""


class MethodError(BenchsuiteError):
    """A method failed while distilling (for example a non-finite loss)."""


class ContractError(MethodError):
    """A method returned a set that breaks the method contract (wrong count per class, labels out
    of range, a non-finite learned learning rate, ...). Such a set is never saved or ranked."""


class ArtifactError(BenchsuiteError):
    """A saved file (a distilled set, a prior) is unreadable or not what the suite wrote."""
