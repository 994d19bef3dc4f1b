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


class CellTimeoutError(BenchsuiteError):
    """A cell ran past its time limit (``--cell-timeout`` or the protocol's ``cell_timeout``)."""


class IsolatedFailure(BenchsuiteError):
    """An exception raised in the process a method distilled in, carried back to the runner:
    its original class name, message and traceback, and whether it was one of the suite's typed
    errors (an expected failure mode) or a crash."""

    def __init__(self, type_name: str, message: str, traceback_text: str = "", expected: bool = False) -> None:
        super().__init__(message)
        self.type_name = type_name
        self.message = message
        self.traceback_text = traceback_text
        self.expected = expected
