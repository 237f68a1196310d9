"""The names of tfp_glow's options, defined once, and their checks.

The model, the flow builder, the presets and the command line accept the same
option values; they all check them here, so the allowed values and the error
messages cannot drift apart. Every check names the argument, lists the allowed
values and echoes the value it got.

#### Examples

>>> check_permutation('lu')
'lu'
>>> check_permutation('typo')
Traceback (most recent call last):
  ...
ValueError: `permutation` must be one of 'lu', 'conv1x1', 'shuffle', 'reverse'; got 'typo'.
>>> check_num_bits(5)
5
"""

from typing import Any, Optional

from tfp_glow import _validation

__all__ = [
    'COUPLINGS', 'PERMUTATIONS', 'DEQUANTIZATIONS', 'NUM_BITS_RANGE',
    'check_coupling', 'check_permutation', 'check_dequantization',
    'check_num_bits',
]

# Coupling layers: openai/glow's affine (sigmoid scale), NICE's additive and
# RQ-NSF's rational-quadratic spline.
COUPLINGS = ('affine', 'additive', 'spline')
# Channel mixing: LU-decomposed 1x1 conv, plain 1x1 conv, and the paper's two
# fixed-permutation baselines.
PERMUTATIONS = ('lu', 'conv1x1', 'shuffle', 'reverse')
# Dequantization of integer pixels, x + u: u ~ U[0, 1), or u ~ q(u | x) learned
# (Flow++'s variational dequantization, `tfp_glow.dequantizer`).
DEQUANTIZATIONS = ('uniform', 'variational')
# Bits per pixel value, both ends included: pixels lie in [0, 2**num_bits).
NUM_BITS_RANGE = (1, 16)


def check_coupling(value: Any, name: str = 'coupling') -> str:
  """Returns `value` if it is one of `COUPLINGS`, else raises ValueError."""
  return _validation.one_of(name, value, COUPLINGS)


def check_permutation(value: Any, name: str = 'permutation') -> str:
  """Returns `value` if it is one of `PERMUTATIONS`, else raises ValueError."""
  return _validation.one_of(name, value, PERMUTATIONS)


def check_dequantization(value: Any,
                         name: str = 'dequantization') -> str:
  """Returns `value` if it is one of `DEQUANTIZATIONS`, else raises ValueError."""
  return _validation.one_of(name, value, DEQUANTIZATIONS)


def check_num_bits(value: Any, name: str = 'num_bits',
                   maximum: Optional[int] = None) -> int:
  """Returns `value` as an int if it lies in `NUM_BITS_RANGE`, else raises.

  Args:
    value: the bit depth to check.
    name: Python `str`, the argument's name in the message.
      Default value: `'num_bits'`.
    maximum: Python `int`, a lower upper end, or `None` for the model's
      `NUM_BITS_RANGE[1]`. The data pipelines pass 8: their sources are
      8-bit images. Default value: `None`.

  Returns:
    `value` as a Python `int`.

  Raises:
    TypeError: if `value` is not an int (`bool` is not).
    ValueError: if `value` is outside `NUM_BITS_RANGE`.

  #### Examples

  >>> check_num_bits(17)
  Traceback (most recent call last):
    ...
  ValueError: `num_bits` must be an int in [1, 16]; got num_bits=17.
  """
  low, high = NUM_BITS_RANGE
  high = high if maximum is None else maximum
  try:
    value = _validation.positive_int(name, value, minimum=low)
  except ValueError:  # Below `low`: one message for both ends of the range.
    in_range = False
  else:
    in_range = value <= high
  if not in_range:
    raise ValueError(
        f'`{name}` must be an int in [{low}, {high}]; got {name}={value!r}.')
  return value
