"""What the machine computes natively, and `compute_dtype='auto'`.

bfloat16 pays where the hardware has bf16 units: on a CPU whose flags show
AMX (`amx_bf16`) or AVX512-BF16 (`avx512_bf16`), oneDNN runs bf16
convolutions and matmuls on them; on a GPU of compute capability 8.0 or more
(Ampere and newer) tensor cores do. Elsewhere TensorFlow emulates bf16 and
float32 is faster, so `'auto'` picks float32 there.

On a CPU, `configure_cpu_threads()` runs each TensorFlow op on one thread
and one op per core at once, and `auto_batch_chunks()` is then the number
of independent chunks `GlowModel` splits a batch into (one chain per core;
see `tfp_glow.training.chunks`).
"""

import functools
import logging
import os
from typing import FrozenSet, Optional, Tuple

import tensorflow as tf

__all__ = ['cpu_model', 'cpu_flags', 'bf16_flags', 'native_bfloat16',
           'check_compute_dtype', 'resolve_compute_dtype', 'describe_auto',
           'configure_cpu_threads', 'auto_batch_chunks', 'COMPUTE_DTYPES']

# What `compute_dtype` may be: 'auto', None (= the variables' dtype) or one of
# these names (or the matching tf.DType).
COMPUTE_DTYPES = ('bfloat16', 'float16', 'float32', 'float64')

_BF16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')
# `configure_cpu_threads()`'s default: the cores, at most this many (each is
# a chunk of the batch, a copy of the step's graph; measured on 2 cores only).
_MAX_DEFAULT_THREADS = 8
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


def _num_cores() -> int:
  """The logical cores this process may run on."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def configure_cpu_threads(num_threads: Optional[int] = None) -> bool:
  """Runs each TensorFlow CPU op on one thread, `num_threads` ops at once.

  With TensorFlow's default threading every op is split over all cores; a
  Glow's many small ops (its flow layers and log-dets) then spend more in
  synchronisation than they gain. One thread per op and one op per core,
  with `GlowModel` splitting each batch into one chain per core
  (`batch_chunks='auto'`), keeps every core busy (the README's
  Performance section has the measured steps). Process-wide, so call it
  first, before TensorFlow runs any op; with a GPU visible nothing is
  changed.

  >>> import tfp_glow
  >>> tfp_glow.configure_cpu_threads()   # doctest: +SKIP

  Args:
    num_threads: Python `int` >= 1, ops run at once, or `None` for the
      cores this process may use, at most 8 (measured on 2 cores only: on
      many cores TensorFlow's default threading may serve better).
      Default value: `None`.

  Returns:
    `True` if the threads were set, `False` if a GPU is visible.

  Raises:
    ValueError: if `num_threads` is not a positive int.
    RuntimeError: if TensorFlow already started with other threads.
  """
  if num_threads is not None and (
      isinstance(num_threads, bool) or not isinstance(num_threads, int)
      or num_threads < 1):
    raise ValueError('`num_threads` must be None or an int >= 1; got '
                     f'num_threads={num_threads!r}.')
  if tf.config.list_physical_devices('GPU'):
    return False
  num_threads = num_threads or min(_num_cores(), _MAX_DEFAULT_THREADS)
  try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(num_threads)
  except RuntimeError as e:
    raise RuntimeError(
        'configure_cpu_threads() must run before TensorFlow runs its first '
        'op (its threads are fixed then): call it right after the imports; '
        f'TensorFlow runs {tf.config.threading.get_intra_op_parallelism_threads()}'
        ' intra-op and '
        f'{tf.config.threading.get_inter_op_parallelism_threads()} inter-op '
        f'threads (0: its default). ({e})') from None
  return True


def auto_batch_chunks() -> int:
  """Chunks per batch for `batch_chunks='auto'`: one per core that runs ops.

  More than 1 only on a CPU that runs one thread per op (after
  `configure_cpu_threads()`): there, the inter-op threads (the cores when
  TensorFlow's default, 0). With TensorFlow's default threading, or a GPU,
  1: a split batch there only adds ops.
  """
  if tf.config.list_physical_devices('GPU'):
    return 1
  if tf.config.threading.get_intra_op_parallelism_threads() != 1:
    return 1
  return tf.config.threading.get_inter_op_parallelism_threads() or _num_cores()
