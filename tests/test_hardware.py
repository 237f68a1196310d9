"""`compute_dtype='auto'`: bfloat16 exactly where bf16 units beat float32."""

import logging

import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import _hardware
from tfp_glow import presets

_CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: Test CPU 9000
flags\t\t: fpu sse2 avx2 avx512f {extra}

processor\t: 1
vendor_id\t: {vendor}
model name\t: Test CPU 9000
flags\t\t: fpu sse2 avx2 avx512f {extra}
"""
_AMX = 'amx_bf16 amx_tile avx512_bf16'  # Sapphire Rapids and newer Xeons.


@pytest.fixture(name='machine')
def _machine(monkeypatch, tmp_path):
  """`machine(flags, gpus=(), vendor='GenuineIntel', isa_cap='')` makes
  `_hardware` see that CPU, those GPUs (compute capabilities) and that
  ONEDNN_MAX_CPU_ISA; the caches and the logged-once flag are reset."""

  def make(extra_flags, gpus=(), vendor='GenuineIntel', isa_cap=''):
    path = tmp_path / 'cpuinfo'
    path.write_text(_CPUINFO.format(extra=extra_flags, vendor=vendor))
    monkeypatch.delenv('DNNL_MAX_CPU_ISA', raising=False)
    monkeypatch.setenv('ONEDNN_MAX_CPU_ISA', isa_cap)
    monkeypatch.setattr(_hardware, '_CPUINFO', str(path))
    monkeypatch.setattr(_hardware, '_gpu_capabilities', lambda: list(gpus))
    monkeypatch.setattr(_hardware, '_logged', set())
    _hardware._cpuinfo_fields.cache_clear()  # pylint: disable=protected-access
    _hardware.native_bfloat16.cache_clear()

  yield make
  _hardware._cpuinfo_fields.cache_clear()  # pylint: disable=protected-access
  _hardware.native_bfloat16.cache_clear()


@pytest.mark.parametrize('flags, vendor', [(_AMX, 'GenuineIntel'),
                                           ('avx512_bf16', 'AuthenticAMD')])
def test_auto_is_bfloat16_on_amx_and_on_amd_avx512_bf16(machine, flags,
                                                        vendor):
  machine(flags, vendor=vendor)
  assert _hardware.cpu_model() == 'Test CPU 9000'
  assert _hardware.cpu_vendor() == vendor
  assert _hardware.resolve_compute_dtype('auto') == tf.bfloat16
  assert flags.split()[0] in _hardware.describe_auto()


def test_auto_is_float32_on_intel_avx512_bf16_without_amx(machine):
  # Cooper Lake: bf16 dot products at float32's FMA rate, measured slower.
  machine('avx512_bf16 avx512_vnni', vendor='GenuineIntel')
  assert _hardware.resolve_compute_dtype('auto') is None
  assert _hardware.describe_auto().startswith(
      'float32 (CPU flag avx512_bf16 without AMX on a GenuineIntel CPU')


@pytest.mark.parametrize('isa_cap, expected', [
    ('', tf.bfloat16), ('ALL', tf.bfloat16), ('avx512_core_amx', tf.bfloat16),
    ('AVX10_1_512_AMX_FP16', tf.bfloat16), ('not-an-isa', tf.bfloat16),
    ('AVX512_CORE_BF16', None), ('AVX10_1_512', None), ('AVX2', None)])
def test_onednn_isa_cap_decides_what_counts(machine, isa_cap, expected):
  machine(_AMX, vendor='GenuineIntel', isa_cap=isa_cap)
  assert _hardware.resolve_compute_dtype('auto') == expected
  if expected is None:  # The reason names the cap that switched AMX off.
    assert isa_cap in _hardware.describe_auto()


@pytest.mark.parametrize('isa_cap, expected', [
    ('AVX512_CORE_BF16', tf.bfloat16), ('AVX512_CORE_VNNI', None)])
def test_onednn_isa_cap_on_amd(machine, isa_cap, expected):
  machine('avx512_bf16', vendor='AuthenticAMD', isa_cap=isa_cap)
  assert _hardware.resolve_compute_dtype('auto') == expected


def test_auto_is_float32_on_a_cpu_without_them(machine):
  machine('avx512_vnni amx_int8')  # AMX without its bf16 part: no bf16 unit.
  assert _hardware.resolve_compute_dtype('auto') is None
  assert _hardware.describe_auto().startswith('float32 (no GPU')
  assert _hardware.bf16_flags() == ('amx_int8',)


@pytest.mark.parametrize('capability, expected', [((8, 0), tf.bfloat16),
                                                  ((7, 5), None)])
def test_a_gpu_decides_by_its_compute_capability(machine, capability,
                                                 expected):
  machine('avx512_bf16', gpus=[capability])  # The GPU, not the CPU, decides.
  assert _hardware.resolve_compute_dtype('auto') == expected


def test_the_choice_is_logged_once(machine, caplog):
  machine('avx512_bf16', vendor='AuthenticAMD')
  with caplog.at_level(logging.INFO, logger='tfp_glow'):
    _hardware.resolve_compute_dtype('auto')
    _hardware.resolve_compute_dtype('auto')
  lines = [r.getMessage() for r in caplog.records if r.name == 'tfp_glow']
  assert lines == ["compute_dtype='auto': bfloat16, CPU flags avx512_bf16 "
                   '(Test CPU 9000)']


def test_an_unreadable_cpuinfo_means_float32(machine, monkeypatch, tmp_path):
  machine('avx512_bf16')
  monkeypatch.setattr(_hardware, '_CPUINFO', str(tmp_path / 'missing'))
  _hardware._cpuinfo_fields.cache_clear()  # pylint: disable=protected-access
  _hardware.native_bfloat16.cache_clear()
  assert _hardware.cpu_model() == 'unknown CPU'
  assert _hardware.resolve_compute_dtype('auto') is None


@pytest.mark.parametrize('flags, expected', [('avx512_bf16', tf.bfloat16),
                                             ('', tf.float32)])
def test_a_glow_keeps_auto_in_its_config_and_resolves_it(machine, flags,
                                                         expected):
  machine(flags, vendor='AuthenticAMD')
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1,
                       hidden_channels=8, compute_dtype='auto', seed=0)
  assert glow.compute_dtype == expected
  assert glow.parameters['compute_dtype'] == 'auto'
  assert glow.get_config()['compute_dtype'] == 'auto'
  copy = tfp_glow.Glow.from_config(glow.get_config())
  assert copy.compute_dtype == expected
  x = tf.random.stateless_uniform([2, 8, 8, 1], [1, 2], 0.0, 256.0)
  glow.initialize(x)
  assert bool(tf.reduce_all(tf.math.is_finite(glow.log_prob(x))))
  assert glow.log_prob(x).dtype == tf.float32


@pytest.mark.parametrize('bad', ['fast', 'int32', 3])
def test_a_bad_compute_dtype_is_named(bad):
  with pytest.raises(ValueError, match=r'`compute_dtype` must be None, '
                     r"'auto' or one of .*got compute_dtype="):
    tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=8,
                  compute_dtype=bad)
  with pytest.raises(ValueError, match='`compute_dtype`'):
    presets.get('mnist_offline', compute_dtype=bad)


def test_presets_use_auto_and_old_runs_read_as_float32():
  assert presets.get('mnist_offline').compute_dtype == 'auto'
  old = presets.get('mnist_offline').to_dict()
  del old['compute_dtype']  # A config.json written before compute_dtype.
  assert presets.Config.from_dict(old).compute_dtype is None
