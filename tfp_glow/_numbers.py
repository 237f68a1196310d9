"""Checks of Python number arguments of the model, optimizers and callbacks.

Every message names the argument, states the rule and echoes the value.
"""

import numbers

import numpy as np

__all__ = ['integer', 'nonnegative_float', 'positive_float']


def integer(name, value):
  """Returns `value` as an `int` if it is an integer (not a bool), else raises.

  Raises:
    TypeError: naming `name`.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(f'`{name}` must be an int; got {value!r} of type '
                    f'{type(value).__name__}.')
  return int(value)


def nonnegative_float(name, value):
  """Returns `value` as a `float` if it is a finite real >= 0, else raises.

  Raises:
    TypeError, ValueError: naming `name`.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Real):
    raise TypeError(f'`{name}` must be a float; got {value!r} of type '
                    f'{type(value).__name__}.')
  if not (np.isfinite(value) and value >= 0):
    raise ValueError(f'`{name}` must be finite and >= 0; got {name}={value}.')
  return float(value)


def positive_float(name, value):
  """Returns `value` as a `float` if it is a finite real > 0, else raises.

  Raises:
    TypeError, ValueError: naming `name`.
  """
  value = nonnegative_float(name, value)
  if value <= 0:
    raise ValueError(f'`{name}` must be > 0; got {name}={value}.')
  return value
