"""Argument checks shared by the library: one definition of each, Keras-style messages.

Each check returns the value it accepts and raises `ValueError` naming the
Python parameter and the value received, e.g.

    batch_size must be a positive integer. Received: batch_size=0

Integers are `numbers.Integral` (Python and NumPy integers), never `bool`.
Numbers are `numbers.Real`, never `bool`, and finite.

The message convention of the library (see `keras_dae_cli.common.to_flags`):
a message names a parameter the caller should set in backticks, alone or
with the value to pass (`` `out` ``, `` `num_bins=64` ``, `` `overwrite=True` ``);
`Received: name=value` reports what was passed. The command line rewrites
the backticked mentions into its flags (`--out`, `--num-bins 64`,
`--overwrite`), so library messages never name command-line flags.

A value that is wrong in itself (out of range, not finite, inconsistent
with another setting) raises `ParameterError`, a `ValueError` that names the
parameter in `parameter`: when it is an option of the running command, the
command line reports it as a usage error (exit code 2), like click's own.
"""

import math
import numbers


class ParameterError(ValueError):
    """A `ValueError` about the value of one parameter, named in `parameter` (e.g. `"num_bins"`).

    Raised for a value that is wrong whatever the data: out of range, not
    finite, or inconsistent with another setting. Not for a value that does
    not fit a file or the data (that is a plain `ValueError`).
    """

    def __init__(self, parameter, message):
        super().__init__(message)
        self.parameter = parameter

    def __reduce__(self):  # picklable: it comes back from worker processes (`keras_dae.workers`) as itself
        return type(self), (self.parameter, str(self))


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _or_none(optional):
    return " or None" if optional else ""


def positive_int(name, value, *, optional=False):
    """`value` if it is an integer > 0 (or None, with `optional`); ValueError otherwise."""
    if optional and value is None:
        return value
    if not _is_int(value) or value <= 0:
        raise ParameterError(name, f"{name} must be a positive integer{_or_none(optional)}. Received: {name}={value!r}")
    return value


def non_negative_int(name, value, *, optional=False):
    """`value` if it is an integer >= 0 (or None, with `optional`); ValueError otherwise."""
    if optional and value is None:
        return value
    if not _is_int(value) or value < 0:
        raise ParameterError(name, f"{name} must be a non-negative integer{_or_none(optional)}. Received: {name}={value!r}")
    return value


def positive_number(name, value, *, optional=False):
    """`value` if it is a finite real number > 0 (or None, with `optional`); ValueError otherwise."""
    if optional and value is None:
        return value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < value < math.inf:
        raise ParameterError(name, f"{name} must be positive and finite{_or_none(optional)}. Received: {name}={value!r}")
    return value


def non_negative_number(name, value):
    """`value` if it is a finite real number >= 0; `ParameterError` otherwise."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < math.inf:
        raise ParameterError(name, f"{name} must be non-negative and finite. Received: {name}={value!r}")
    return value


def one_of(name, value, choices):
    """`value` if it is one of `choices`; ValueError listing them otherwise."""
    try:
        known = value in choices
    except TypeError:  # an unhashable value and a dict or set of choices
        known = False
    if not known:
        raise ParameterError(
            name, f"Unknown {name} {value!r}; valid ones are {', '.join(map(str, choices))}. Received: {name}={value!r}"
        )
    return value
