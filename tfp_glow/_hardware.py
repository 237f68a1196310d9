"""What the machine computes fast, and `compute_dtype='auto'`.

bfloat16 pays where bf16 units compute faster than float32 ones. On a GPU of
compute capability 8.0 or more (Ampere and newer) tensor cores do. On a CPU,
oneDNN runs bf16 convolutions and matmuls on AMX tiles (flag `amx_bf16`), or
on AVX512-BF16 dot products (flag `avx512_bf16`). These pay on AMD (Zen 4
and newer: bf16 steps measured 1.2-1.3x faster than float32 ones on the AMD
EPYC VM, README's Performance), but not on an Intel CPU without AMX (Cooper
Lake): on the Intel Xeon VM with AMX switched off for oneDNN
(`ONEDNN_MAX_CPU_ISA=AVX512_CORE_BF16`) oneDNN's AVX512-BF16 matmuls took
1.4x the time of its float32 ones, and the MNIST step ran at 1.82x tfb.Glow
in bf16 against 2.27x in float32. oneDNN's cap on its instruction sets,
`ONEDNN_MAX_CPU_ISA`, is honoured: units it may not use do not count.
Elsewhere TensorFlow emulates bf16 and float32 is faster, so `'auto'` picks
float32 there.

On a CPU, `configure_cpu_threads()` runs each TensorFlow op on one thread
and one op per core at once, and `auto_batch_chunks()` is then the number
of independent chunks `GlowModel` splits a batch into and traced
`Glow.sample` calls map their samples in (one chain per core, of
`chunk_sizes()`; see `tfp_glow.training.chunks`).
"""

import functools
import logging
import os
from typing import FrozenSet, List, Optional, Tuple

import tensorflow as tf

__all__ = ['cpu_model', 'cpu_vendor', 'cpu_flags', 'bf16_flags',
           'native_bfloat16', 'check_compute_dtype', 'resolve_compute_dtype',
           'describe_auto', 'configure_cpu_threads', 'auto_batch_chunks',
           'chunk_sizes', 'COMPUTE_DTYPES']

# What `compute_dtype` may be: 'auto', None (= the variables' dtype) or one of
# these names (or the matching tf.DType).
COMPUTE_DTYPES = ('bfloat16', 'float16', 'float32', 'float64')

_BF16_CPU_FLAGS = ('amx_bf16', 'avx512_bf16')
# oneDNN's instruction-set levels by the names `ONEDNN_MAX_CPU_ISA` takes
# (`dnnl_cpu_isa_t`: each level's bits hold those of the levels it extends).
_ONEDNN_ISA_BITS = {
    'SSE41': 0x1, 'AVX': 0x3, 'AVX2': 0x7, 'AVX2_VNNI': 0xf,
    'AVX2_VNNI_2': 0x1f, 'AVX512_CORE': 0x27, 'AVX512_CORE_VNNI': 0x67,
    'AVX512_CORE_BF16': 0xe7, 'AVX10_1_512': 0x1ef, 'AVX512_CORE_FP16': 0x1ef,
    'AVX10_1_512_AMX': 0xfef, 'AVX512_CORE_AMX': 0xfef,
    'AVX10_1_512_AMX_FP16': 0x1fef, 'AVX512_CORE_AMX_FP16': 0x1fef}
# The level each bf16 flag's kernels need.
_ISA_OF_FLAG = {'amx_bf16': 'AVX512_CORE_AMX',
                'avx512_bf16': 'AVX512_CORE_BF16'}
# `configure_cpu_threads()`'s default: the cores, at most this many (each is
# a chunk of the batch, a copy of the step's graph; measured on 2 cores only).
_MAX_DEFAULT_THREADS = 8
_CPUINFO = '/proc/cpuinfo'
_logger = logging.getLogger('tfp_glow')


@functools.lru_cache(maxsize=None)
def _cpuinfo_fields() -> Tuple[str, str, FrozenSet[str]]:
  """`(model name, vendor_id, flags)` of the first CPU in /proc/cpuinfo
  ('', '' and {} if it cannot be read, as on macOS and Windows)."""
  fields = {}
  try:
    with open(_CPUINFO, encoding='utf-8', errors='replace') as f:
      for line in f:
        key, _, value = line.partition(':')
        key = key.strip()
        if key in ('model name', 'vendor_id', 'flags'):
          fields.setdefault(key, value.strip())
        if len(fields) == 3:
          break
  except OSError:
    pass
  return (fields.get('model name', ''), fields.get('vendor_id', ''),
          frozenset(fields.get('flags', '').split()))


def cpu_model() -> str:
  """The CPU's model name, or `'unknown CPU'`."""
  return _cpuinfo_fields()[0] or 'unknown CPU'


def cpu_vendor() -> str:
  """The CPU's vendor_id (`'GenuineIntel'`, `'AuthenticAMD'`), or `''`."""
  return _cpuinfo_fields()[1]


def cpu_flags() -> FrozenSet[str]:
  """The CPU's feature flags (empty if /proc/cpuinfo cannot be read)."""
  return _cpuinfo_fields()[2]


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
  """Whether bf16 computes faster than float32 here: `(yes, reason)`.

  A GPU decides when there is one (TensorFlow then places the model on it):
  compute capability >= 8.0; else the CPU: AMX, or AVX512-BF16 on AMD, that
  `ONEDNN_MAX_CPU_ISA` leaves oneDNN (the module's docstring says why).
  """
  capabilities = _gpu_capabilities()
  if capabilities:
    if all(c is not None and tuple(c) >= (8, 0) for c in capabilities):
      return True, f'GPU compute capability {capabilities[0]} >= (8, 0)'
    return False, (f'GPU compute capability {capabilities[0]} < (8, 0) '
                   '(no bf16 tensor cores)')
  return _cpu_bfloat16()


def _onednn_isa_cap() -> str:
  """`ONEDNN_MAX_CPU_ISA` (or the older `DNNL_MAX_CPU_ISA`) upper-cased, or
  `''` when unset (oneDNN then uses every instruction set the CPU has)."""
  for name in ('ONEDNN_MAX_CPU_ISA', 'DNNL_MAX_CPU_ISA'):
    value = os.environ.get(name, '').strip().upper()
    if value:
      return value
  return ''


def _onednn_may_use(flag: str) -> bool:
  """Whether oneDNN's instruction-set cap leaves it the bf16 unit `flag`
  (an unknown or `ALL` cap leaves it everything, as in oneDNN)."""
  cap = _ONEDNN_ISA_BITS.get(_onednn_isa_cap())
  needed = _ONEDNN_ISA_BITS[_ISA_OF_FLAG[flag]]
  return cap is None or cap & needed == needed


def _cpu_bfloat16() -> Tuple[bool, str]:
  """`native_bfloat16()` on a CPU: AMX, or AVX512-BF16 on AMD (module doc)."""
  present = [f for f in _BF16_CPU_FLAGS if f in cpu_flags()]
  usable = [f for f in present if _onednn_may_use(f)]
  where = f'({cpu_model()})'
  if present and not usable:
    return False, (f'CPU flags {" ".join(present)}, but ONEDNN_MAX_CPU_ISA='
                   f'{_onednn_isa_cap()} leaves oneDNN none of them {where}')
  capped = ('' if usable == present else
            f' (ONEDNN_MAX_CPU_ISA={_onednn_isa_cap()} leaves no AMX)')
  if 'amx_bf16' in usable or (usable and cpu_vendor() == 'AuthenticAMD'):
    return True, f'CPU flags {" ".join(usable)}{capped} {where}'
  if usable:
    vendor = cpu_vendor() or 'non-AMD'
    return False, (f'CPU flag avx512_bf16 without AMX{capped} on a {vendor} '
                   f'CPU: bf16 measured slower than float32 there {where}')
  return False, (f'no GPU and no CPU flag {" or ".join(_BF16_CPU_FLAGS)} '
                 f'{where}')


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


def chunk_sizes(batch_size: Optional[int], num_chunks: int) -> List[int]:
  """Near-equal sizes of at most `num_chunks` chunks of a batch.

  `[batch_size]` (one chunk) when the size is unknown (`None`) or there is
  one chunk; never a chunk of 0.

  >>> chunk_sizes(16, 2), chunk_sizes(7, 3), chunk_sizes(1, 2)
  ([8, 8], [3, 2, 2], [1])
  >>> chunk_sizes(None, 2)
  [None]
  """
  if batch_size is None or num_chunks <= 1 or batch_size <= 1:
    return [batch_size]
  k = min(num_chunks, batch_size)
  return [batch_size // k + (i < batch_size % k) for i in range(k)]
