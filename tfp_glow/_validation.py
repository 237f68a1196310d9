"""Argument checks shared by the layers and the model.

Every message names the argument, states the rule and echoes the value.
"""

import numbers
from typing import Any, Collection, Tuple

import numpy as np
import tensorflow as tf

__all__ = ['integer', 'positive_int', 'nonnegative_float', 'positive_float',
           'one_of', 'float_dtype', 'image_shape']


def integer(name: str, value: Any) -> int:
  """Returns `value` as an `int` if it is an integer (not a bool), else raises.

  Raises:
    TypeError: naming `name`.
  """
  if isinstance(value, bool) or not isinstance(value, numbers.Integral):
    raise TypeError(
        f'`{name}` must be an int; got {value!r} of type {type(value).__name__}.')
  return int(value)


def positive_int(name: str, value: Any, minimum: int = 1) -> int:
  """Returns `value` if it is an int >= `minimum`, else raises."""
  value = integer(name, value)
  if value < minimum:
    raise ValueError(f'`{name}` must be >= {minimum}; got {name}={value}.')
  return int(value)


def nonnegative_float(name: str, value: Any) -> float:
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


def positive_float(name: str, value: Any) -> float:
  """Returns `value` as a `float` if it is a finite real > 0, else raises.

  Raises:
    TypeError, ValueError: naming `name`.
  """
  value = nonnegative_float(name, value)
  if value <= 0:
    raise ValueError(f'`{name}` must be > 0; got {name}={value}.')
  return value


def one_of(name: str, value: Any, choices: Collection[Any]) -> Any:
  """Returns `value` if it is one of `choices`, else raises ValueError."""
  if value not in choices:
    options = ', '.join(repr(c) for c in choices)
    raise ValueError(f'`{name}` must be one of {options}; got {value!r}.')
  return value


def float_dtype(dtype: Any, name: str = 'dtype') -> tf.DType:
  """Returns `dtype` as a `tf.DType` if it is float32 or float64."""
  try:
    dtype = tf.as_dtype(dtype)
  except TypeError as e:
    raise TypeError(f'`{name}` must be tf.float32 or tf.float64; '
                    f'got {dtype!r}.') from e
  if dtype not in (tf.float32, tf.float64):
    raise ValueError(f'`{name}` must be tf.float32 or tf.float64; '
                     f'got {dtype.name}.')
  return dtype


def image_shape(value: Any,
                name: str = 'image_shape') -> Tuple[int, int, int]:
  """Returns `value` as a tuple (H, W, C) of positive ints."""
  try:
    shape = tuple(value)
  except TypeError as e:
    raise TypeError(f'`{name}` must be a sequence (H, W, C); '
                    f'got {value!r}.') from e
  if len(shape) != 3:
    raise ValueError(f'`{name}` must have 3 entries (H, W, C); got {value!r}.')
  for axis, size in zip('HWC', shape):
    positive_int(f'{name}[{"HWC".index(axis)}] ({axis})', size)
  return tuple(int(s) for s in shape)
