"""benchmarks/likelihood.py: four models at one budget, single-sample and
importance-weighted held-out bits/dim side by side. (No figure is asserted:
the smoke models train 2 steps.)"""

import importlib.util
import json
import os
import pathlib
import re
import subprocess
import sys

import pytest

from tfp_glow import presets
from tfp_glow import runs

_PATH = pathlib.Path(__file__).parents[1] / 'benchmarks' / 'likelihood.py'


def _module():
  spec = importlib.util.spec_from_file_location('likelihood', _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.fixture(scope='module')
def smoke(tmp_path_factory):
  root = str(tmp_path_factory.mktemp('likelihood'))
  result = subprocess.run(
      [sys.executable, str(_PATH), '--smoke', '--samples', '4', '--run-dir',
       root], capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr
  return root, result.stdout


def test_smoke_prints_the_cpu_then_a_four_row_table_and_json(smoke):
  root, stdout = smoke
  lines = stdout.splitlines()
  assert re.match(r'CPU: .+ \([0-9]+ logical cores\); bf16/AMX flags: .+; '
                  r'load average', lines[0]), lines[0]
  header = lines.index('| model | steps | seconds | bits/dim, 1 sample | '
                       'bits/dim, IW K=4 |')
  rows = [line for line in lines[header + 2:] if line.startswith('|')]
  assert len(rows) == 4, stdout
  result = json.loads(lines[-1])
  assert [m['model'] for m in result['models']] == [
      'glow', 'variational', 'spline', 'spline_variational']
  figure = r'([0-9.]+) \+/- ([0-9.]+)'
  for row, model in zip(rows, result['models']):
    match = re.fullmatch(rf'\| {re.escape(model["label"])} \| ([0-9,]+) \| '
                         rf'([0-9]+) \| {figure} \| {figure} \|', row)
    assert match, row
    assert int(match.group(1).replace(',', '')) == model['steps'] == 2
    assert float(match.group(3)) == pytest.approx(model['bits_per_dim'],
                                                  abs=1e-4)
    assert float(match.group(5)) == pytest.approx(model['iw_bits_per_dim'],
                                                  abs=1e-4)
    assert model['num_samples'] == 4 and model['num_images'] == 16
    # Each model is its own run, trained as its row says.
    run_dir = os.path.join(root, model['model'])
    config = presets.Config.from_dict(runs.read_training_config(run_dir))
    assert (config.coupling, config.dequantization) == (
        model['coupling'], model['dequantization'])
    assert (runs.load_dequantizer(run_dir) is None) == (
        model['dequantization'] == 'uniform')
    stored = runs.read_evaluation(run_dir)
    assert stored['bits_per_dim'] == model['bits_per_dim']
    assert stored['importance_weighted_bits_per_dim'] == model[
        'iw_bits_per_dim']
    assert stored['dequantization'] == model['dequantization']


def test_refuses_a_folder_holding_runs(smoke, capsys):
  root, _ = smoke
  with pytest.raises(SystemExit) as exit_info:  # Before any training.
    _module().main(['--smoke', '--run-dir', root])
  assert exit_info.value.code == 2
  assert 'already hold(s) a run' in capsys.readouterr().err


def test_cpu_description_reads_model_cores_and_bf16_amx_flags(tmp_path):
  path = tmp_path / 'cpuinfo'
  processor = ('processor\t: {}\nmodel name\t: Some CPU 9000\nflags\t\t: fpu '
               'avx2 avx512_bf16 amx_bf16 amx_tile amx_int8 sse4_2\n\n')
  path.write_text(processor.format(0) + processor.format(1))
  assert _module().cpu_description(str(path)) == (
      'Some CPU 9000', 2, ('amx_bf16', 'amx_int8', 'amx_tile', 'avx512_bf16'))
  path.write_text('processor\t: 0\nmodel name\t: Old CPU\nflags\t\t: fpu sse\n')
  assert _module().cpu_description(str(path)) == ('Old CPU', 1, ())
  assert _module().cpu_description(str(tmp_path / 'none'))[0] == 'unknown'


def test_a_diverged_model_gets_a_row_and_the_others_go_on(monkeypatch,
                                                          tmp_path):
  module = _module()
  run_dir = tmp_path / 'variational'
  run_dir.mkdir()
  # Keras logs the epoch training stopped in: the 3rd.
  (run_dir / 'metrics.csv').write_text('epoch,loss\n0,5.8\n1,3.2\n2,nan\n')

  def train(name, *args):
    raise FloatingPointError(f'training stopped: {name} went non-finite')

  monkeypatch.setattr(module, '_train', train)
  row = module._run('variational', str(run_dir), None, 1.0, 4)  # pylint: disable=protected-access
  assert row['diverged'] == 'training stopped: variational went non-finite'
  assert row['epochs'] == 3
  good = dict(label='Glow (affine, uniform)', steps=1234, seconds=300.4,
              bits_per_dim=1.5, standard_error=0.01, iw_bits_per_dim=1.49,
              iw_standard_error=0.011)
  lines = module.table([good, row], 4).splitlines()
  assert lines[2] == ('| Glow (affine, uniform) | 1,234 | 300 | 1.5000 +/- '
                      '0.0100 | 1.4900 +/- 0.0110 |')
  assert lines[3].startswith('| + variational dequantization | - | ')
  assert 'diverged in epoch 3 (non-finite loss or gradient)' in lines[3]
