"""What the machine computes natively, and `compute_dtype='auto'`.

bfloat16 pays where the hardware has bf16 units: on a CPU whose flags show
AMX (`amx_bf16`) or AVX512-BF16 (`avx512_bf16`), oneDNN runs bf16
convolutions and matmuls on them; on a GPU of compute capability 8.0 or more
(Ampere and newer) tensor cores do. Elsewhere TensorFlow emulates bf16 and
float32 is faster, so `'auto'` picks float32 there.
"""

import functools
import logging
from typing import FrozenSet, Optional, Tuple

import tensorflow as tf

__all__ = ['cpu_model', 'cpu_flags', 'bf16_flags', 'native_bfloat16',
           'check_compute_dtype', 'resolve_compute_dtype', 'describe_auto',
           'COMPUTE_DTYPES']

# What `compute_dtype` may be: 'auto', None (= the variables' dtype) or one of
# these names (or the matching tf.DType).
COMPUTE_DTYPES = ('bfloat16', 'float16', 'float32', 'float64')

_BF16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')
_CPUINFO = '/proc/cpuinfo'
_logger = logging.getLogger('tfp_glow')


@functools.lru_cache(maxsize=None)
def _cpuinfo_fields() -> Tuple[str, FrozenSet[str]]:
  """`(model name, flags)` of the first CPU in /proc/cpuinfo ('' and {} if
  it cannot be read, as on macOS and Windows)."""
  model, flags = '', frozenset()
  try:
    with open(_CPUINFO, encoding='utf-8', errors='replace') as f:
      for line in f:
        key, _, value = line.partition(':')
        key = key.strip()
        if key == 'model name' and not model:
          model = value.strip()
        elif key == 'flags' and not flags:
          flags = frozenset(value.split())
        if model and flags:
          break
  except OSError:
    pass
  return model, flags


def cpu_model() -> str:
  """The CPU's model name, or `'unknown CPU'`."""
  return _cpuinfo_fields()[0] or 'unknown CPU'


def cpu_flags() -> FrozenSet[str]:
  """The CPU's feature flags (empty if /proc/cpuinfo cannot be read)."""
  return _cpuinfo_fields()[1]


def bf16_flags() -> Tuple[str, ...]:
  """The CPU flags of bf16 and AMX units present, sorted (for reports)."""
  return tuple(sorted(f for f in cpu_flags()
                      if f.startswith('amx') or f == 'avx512_bf16'))


def _gpu_capabilities():
  capabilities = []
  for gpu in tf.config.list_physical_devices('GPU'):
    details = tf.config.experimental.get_device_details(gpu)
    capabilities.append(details.get('compute_capability'))
  return capabilities


@functools.lru_cache(maxsize=None)
def native_bfloat16() -> Tuple[bool, str]:
  """Whether bf16 runs natively here: `(yes, reason)`.

  A GPU decides when there is one (TensorFlow then places the model on it):
  compute capability >= 8.0; else the CPU's flags.
  """
  capabilities = _gpu_capabilities()
  if capabilities:
    if all(c is not None and tuple(c) >= (8, 0) for c in capabilities):
      return True, f'GPU compute capability {capabilities[0]} >= (8, 0)'
    return False, (f'GPU compute capability {capabilities[0]} < (8, 0) '
                   '(no bf16 tensor cores)')
  present = [f for f in _BF16_CPU_FLAGS if f in cpu_flags()]
  if present:
    return True, f'CPU flags {" ".join(present)} ({cpu_model()})'
  return False, (f'no GPU and no CPU flag {" or ".join(_BF16_CPU_FLAGS)} '
                 f'({cpu_model()})')


def check_compute_dtype(compute_dtype) -> Optional[str]:
  """`compute_dtype` as a name, `'auto'` or `None`; raises naming it."""
  if compute_dtype is None or compute_dtype == 'auto':
    return compute_dtype
  try:
    name = tf.as_dtype(compute_dtype).name
  except TypeError:
    name = None
  if name not in COMPUTE_DTYPES:
    raise ValueError(
        "`compute_dtype` must be None, 'auto' or one of "
        f'{", ".join(COMPUTE_DTYPES)}; got compute_dtype={compute_dtype!r}.')
  return name


_logged = set()


def resolve_compute_dtype(compute_dtype) -> Optional[tf.DType]:
  """The dtype the networks compute in: `None` means the variables' dtype.

  `'auto'` is `tf.bfloat16` where `native_bfloat16()`, else `None`; the choice
  and its reason are logged once per process (logger `'tfp_glow'`, INFO).

  Raises:
    ValueError: for a `compute_dtype` that is none of these.
  """
  name = check_compute_dtype(compute_dtype)
  if name != 'auto':
    return None if name is None else tf.as_dtype(name)
  native, reason = native_bfloat16()
  chosen = tf.bfloat16 if native else None
  if 'auto' not in _logged:
    _logged.add('auto')
    _logger.info("compute_dtype='auto': %s, %s",
                 'bfloat16' if native else 'float32', reason)
  return chosen


def describe_auto() -> str:
  """One line for reports: what `'auto'` picks here and why."""
  native, reason = native_bfloat16()
  return f"{'bfloat16' if native else 'float32'} ({reason})"
