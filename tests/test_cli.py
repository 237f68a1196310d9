"""The `tfp-glow` command: every subcommand in its smoke setting, and errors."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tfp_glow import cli
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow import tasks


def _command(*args):
  return [sys.executable, '-m', 'tfp_glow.cli', *args]


def _run(*args):
  return subprocess.run(_command(*args), capture_output=True, text=True,
                        timeout=300)


@pytest.fixture(scope='module')
def run_dir(tmp_path_factory):
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1, hidden_channels=8,
                       seed=3)
  glow.initialize(tf.random.stateless_uniform([16, 8, 8, 1], (1, 1), 0., 256.))
  path = str(tmp_path_factory.mktemp('run'))
  runs.save_glow(glow, path)
  return path, glow


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
  """`tfp-glow train --smoke`, run as a user would."""
  path = str(tmp_path_factory.mktemp('trained') / 'run')
  result = _run('train', '--smoke', '--run-dir', path)
  return path, result


def test_load_glow_restores_the_saved_weights(run_dir):
  path, glow = run_dir
  restored = runs.load_glow(path)
  x = tf.random.stateless_uniform([2, 8, 8, 1], (2, 2), 0., 256.)
  np.testing.assert_array_equal(restored.log_prob(x), glow.log_prob(x))


def test_export_command_writes_a_servable_model(run_dir, tmp_path):
  path, glow = run_dir
  out = str(tmp_path / 'served')
  result = _run('export', '--run-dir', path, '--output', out)
  assert result.returncode == 0, result.stderr
  assert 'Exported a SavedModel' in result.stdout
  loaded = tf.saved_model.load(out)
  x = tf.random.stateless_uniform([2, 8, 8, 1], (2, 2), 0., 256.)
  np.testing.assert_allclose(
      loaded.signatures['log_prob'](images=x)['log_prob'], glow.log_prob(x),
      rtol=1e-6)


def test_train_smoke_writes_the_run_and_prints_bits_per_dim(trained):
  path, result = trained
  assert result.returncode == 0, result.stderr
  assert {'config.json', 'checkpoints', 'metrics.csv', 'logs', 'samples',
          'evaluation.json'} <= set(os.listdir(path))
  evaluation = runs.read_evaluation(path)
  assert (f'Held-out bits/dim (test split, 16 images): '
          f'{evaluation["bits_per_dim"]:.4f} +/- ') in result.stdout
  grid = os.path.join(path, 'samples', 'temperatures.png')
  assert f'{grid}' in result.stdout
  # 4 temperatures x 8 samples of 28x28, upscaled x4 by default.
  assert tf.io.decode_png(tf.io.read_file(grid)).numpy().shape == (
      (4 * 29 - 1) * 4, (8 * 29 - 1) * 4, 1)
  # The Keras progress bar reports the training bits/dim.
  assert 'bits_per_dim:' in result.stdout


def test_sample_evaluate_and_export_a_trained_run(trained, tmp_path):
  path, _ = trained
  grid = str(tmp_path / 'grid.png')
  commands = {  # Run concurrently: each is a TensorFlow start-up.
      'sample': ['sample', '--run-dir', path, '--output', grid,
                 '--temperatures', '0.6,1.0', '--num', '4'],
      'evaluate': ['evaluate', '--run-dir', path],
      'export': ['export', '--run-dir', path, '--output', str(tmp_path / 'sm')],
  }
  processes = {name: subprocess.Popen(_command(*args), stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
               for name, args in commands.items()}
  out = {}
  for name, process in processes.items():
    out[name], stderr = process.communicate(timeout=300)
    assert process.returncode == 0, stderr
  image = tf.io.decode_png(tf.io.read_file(grid)).numpy()
  assert image.shape == ((2 * 29 - 1) * 4, (4 * 29 - 1) * 4, 1)  # x4
  # The same checkpoint, images and noise seed as train's final figure.
  expected = runs.read_evaluation(path)['bits_per_dim']
  assert f'bits/dim: {expected:.4f} +/- ' in out['evaluate']
  assert 'Exported a SavedModel' in out['export']


def test_sample_scale(run_dir, tmp_path, capsys):
  path, _ = run_dir
  sizes = {}
  for name, flags in (('default', []), ('x3', ['--scale', '3'])):
    output = str(tmp_path / f'{name}.png')
    assert cli.main(['sample', '--run-dir', path, '--output', output,
                     '--temperatures', '1.0', '--num', '2', *flags]) == 0
    assert f'Wrote {output}' in capsys.readouterr().out
    sizes[name] = tf.io.decode_png(tf.io.read_file(output)).numpy().shape
  # One row of two 8x8 samples: x12 by default (96 pixels high), else x3.
  assert sizes == {'default': (8 * 12, 17 * 12, 1), 'x3': (8 * 3, 17 * 3, 1)}


@pytest.mark.parametrize('flag, value, keyword, expected', [
    ('--grid-scale', '2', 'grid_scale', 2),
    ('--max-minutes', '4.3', 'max_seconds', 258.0)])
def test_train_passes_its_flags_to_tasks_train(monkeypatch, tmp_path, capsys,
                                               flag, value, keyword,
                                               expected):
  seen = {}

  def train(*args, **kwargs):
    seen.update(kwargs)
    raise ValueError('stopped before training')

  monkeypatch.setattr(tasks, 'train', train)
  for flags, passed in (([], None), ([flag, value], expected)):
    assert cli.main(['train', '--smoke', '--run-dir', str(tmp_path / 'r'),
                     *flags]) == 2
    assert 'stopped before training' in capsys.readouterr().err
    assert seen.pop(keyword) == pytest.approx(passed)


def test_train_max_minutes_ends_training_and_says_so(tmp_path, capsys):
  # A budget that ends during the first (tracing) step: one step is taken
  # and its epoch counted, of the smoke run's 2 steps.
  path = str(tmp_path / 'budget')
  assert cli.main(['train', '--smoke', '--quiet', '--max-minutes', '0.0001',
                   '--run-dir', path]) == 0
  out = capsys.readouterr().out
  assert '; --max-minutes 0.0001: 1 epoch(s), 1 steps' in out, out
  assert runs.read_evaluation(path)['epochs'] == 1


_ERRORS = {
    'unknown dataset': (
        ['train', '--smoke', '--dataset', 'mnist_0ffline', '--run-dir', '{tmp}/a'],
        "tfp-glow train: error: unknown dataset 'mnist_0ffline'; known datasets: "
        'mnist_offline, mnist,'),
    'unknown preset': (
        ['train', '--preset', 'cifar100', '--run-dir', '{tmp}/b'],
        "tfp-glow train: error: unknown preset 'cifar100'; presets: "
        'mnist_offline,'),
    'indivisible image size': (
        ['train', '--smoke', '--image-size', '30', '--run-dir', '{tmp}/c'],
        "tfp-glow train: error: image size 30x30 of dataset 'mnist_offline' is "
        'not divisible by 2**num_levels = 4 (num_levels=2)'),
    'unwritable run dir': (
        ['train', '--smoke', '--run-dir', '/proc/forbidden/run'],
        'tfp-glow train: error: `run_dir` cannot be created: '
        '/proc/forbidden/run'),
    'resume without checkpoint': (
        ['train', '--resume', '--run-dir', '{tmp}'],
        'tfp-glow train: error: `run_dir` has no checkpoint to resume'),
    'resume with model flags': (
        ['train', '--resume', '--run-dir', '{tmp}', '--num-steps', '4'],
        "tfp-glow train: error: --resume continues the run's own config.json; "
        'drop --num-steps'),
    'sample without checkpoint': (
        ['sample', '--run-dir', '{tmp}/no_ckpt'],
        'tfp-glow sample: error: `run_dir` has no checkpoint in'),
    'unwritable sample output': (
        ['sample', '--run-dir', '{tmp}/no_ckpt', '--output', '/proc/x/s.png'],
        'tfp-glow sample: error: --output cannot be created: /proc/x'),
    'evaluate without run': (
        ['evaluate', '--run-dir', '{tmp}/nothing'],
        'tfp-glow evaluate: error: `run_dir` has no config.json'),
    'export without run': (
        ['export', '--run-dir', '/nonexistent/run', '--output', '/tmp/x'],
        'tfp-glow export: error: `run_dir` has no config.json'),
    'unwritable export output': (
        ['export', '--run-dir', '.', '--output', '/proc/forbidden/model'],
        'tfp-glow export: error: --output cannot be created: /proc/forbidden'),
    'bad temperatures': (
        ['sample', '--run-dir', '{tmp}', '--temperatures', 'hot'],
        'tfp-glow sample: error: argument --temperatures: must be '
        'comma-separated numbers'),
    'bad scale': (
        ['sample', '--run-dir', '{tmp}', '--scale', '0'],
        "tfp-glow sample: error: argument --scale: must be an integer >= 1; "
        "got '0'"),
    'bad max minutes': (
        ['train', '--smoke', '--run-dir', '{tmp}/m', '--max-minutes', '-1'],
        "tfp-glow train: error: argument --max-minutes: must be a number of "
        "minutes > 0; got '-1'"),
    'bad grid scale': (
        ['train', '--smoke', '--run-dir', '{tmp}/g', '--grid-scale', '1.5'],
        "tfp-glow train: error: argument --grid-scale: must be an integer >= "
        "1; got '1.5'"),
}

# Rejected by argparse, which exits (status 2) instead of returning.
_ARGPARSE_ERRORS = ('bad temperatures', 'bad scale', 'bad grid scale',
                    'bad max minutes')


# The four cases also run as real processes (exit status, stderr).
_IN_SUBPROCESS = ('unknown dataset', 'indivisible image size',
                  'sample without checkpoint', 'unwritable run dir')


@pytest.fixture(scope='module')
def error_dir(tmp_path_factory, run_dir):
  """A folder holding `no_ckpt/`, a run with a config but no checkpoint."""
  tmp = str(tmp_path_factory.mktemp('errors'))
  os.makedirs(os.path.join(tmp, 'no_ckpt'))
  with open(os.path.join(run_dir[0], runs.CONFIG_FILE)) as f:
    config = f.read()
  with open(os.path.join(tmp, 'no_ckpt', runs.CONFIG_FILE), 'w') as f:
    f.write(config)
  return tmp


def _args(name, tmp):
  return [a.format(tmp=tmp) for a in _ERRORS[name][0]]


@pytest.mark.parametrize('name', sorted(_ERRORS))
def test_errors_are_one_line(error_dir, name, capsys):
  returncode = cli.main(_args(name, error_dir)) \
      if name not in _ARGPARSE_ERRORS else _argparse_status(name, error_dir)
  assert returncode == 2
  stderr = capsys.readouterr().err
  assert stderr.strip().splitlines()[-1].startswith(_ERRORS[name][1]), stderr


def _argparse_status(name, tmp):
  with pytest.raises(SystemExit) as exit_info:
    cli.main(_args(name, tmp))
  return exit_info.value.code


def test_errors_exit_a_process_without_traceback(error_dir):
  processes = {
      name: subprocess.Popen(_command(*_args(name, error_dir)),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
      for name in _IN_SUBPROCESS}
  for name, process in processes.items():
    _, stderr = process.communicate(timeout=300)
    assert process.returncode == 2, stderr
    # TensorFlow's own start-up logs may come first; ours is the last line.
    assert stderr.strip().splitlines()[-1].startswith(_ERRORS[name][1]), stderr
    assert 'Traceback' not in stderr


def test_help_explains_every_flag():
  parser = cli._parser()  # pylint: disable=protected-access
  commands = parser._subparsers._group_actions[0].choices  # pylint: disable=protected-access
  assert set(commands) == {'train', 'sample', 'evaluate', 'export'}
  for name, sub in commands.items():
    for action in sub._actions:  # pylint: disable=protected-access
      assert action.help, f'{name} {action.option_strings} has no help'
  text = commands['train'].format_help()
  for preset in presets.names():
    assert preset in text


def test_console_script_is_installed():
  script = os.path.join(os.path.dirname(sys.executable), 'tfp-glow')
  result = subprocess.run([script, 'train', '--help'], capture_output=True,
                          text=True, timeout=300)
  assert result.returncode == 0
  for flag in ('--preset', '--run-dir', '--resume', '--smoke', '--epochs',
               '--num-bits', '--n-bits', '--flip', '--conditional',
               '--data-dir'):
    assert flag in result.stdout
  assert json.dumps  # The module imports what the fixtures use.


def test_train_passes_the_context(monkeypatch, tmp_path, capsys):
  seen = {}

  def train(run_dir, config, **kwargs):
    seen['config'] = config
    raise ValueError('stopped before training')

  monkeypatch.setattr(tasks, 'train', train)
  for flags, context in ((['--preset', 'mnist_super_resolution'], 'box4'),
                         (['--context', 'box2'], 'box2'), ([], None)):
    assert cli.main(['train', '--smoke', '--run-dir', str(tmp_path / 'r'),
                     *flags]) == 2
    out = capsys.readouterr().out
    assert seen.pop('config').context == context
    assert (f'given the {context} context' in out) == (context is not None)
  assert cli.main(['train', '--smoke', '--context', 'box3', '--run-dir',
                   str(tmp_path / 'r')]) == 2
  assert capsys.readouterr().err.strip().endswith(
      "error: `context`='box3' needs images whose height and width are "
      'divisible by 3; got images of 28x28.')


def test_train_passes_the_dequantization_and_coupling(monkeypatch, tmp_path,
                                                      capsys):
  seen = {}

  def train(run_dir, config, **kwargs):
    seen['config'] = config
    raise ValueError('stopped before training')

  monkeypatch.setattr(tasks, 'train', train)
  for flags, expected in (
      ([], ('affine', 'variational')),   # The offline default's.
      (['--dequantization', 'uniform'], ('affine', 'uniform')),
      (['--coupling', 'spline', '--dequantization', 'variational'],
       ('spline', 'variational'))):
    assert cli.main(['train', '--smoke', '--run-dir', str(tmp_path / 'r'),
                     *flags]) == 2
    config = seen.pop('config')
    assert (config.coupling, config.dequantization) == expected
    assert (f'{expected[0]} coupling, {expected[1]} dequantization'
            in capsys.readouterr().out)
  assert cli.main(['train', '--smoke', '--dequantization', 'learned',
                   '--run-dir', str(tmp_path / 'r')]) == 2
  assert capsys.readouterr().err.strip().endswith(
      "error: `dequantization` must be one of 'uniform', 'variational'; got "
      "'learned'.")


@pytest.fixture(scope='module')
def variational_run(tmp_path_factory):
  """`tfp-glow train --smoke --dequantization variational`, in process."""
  path = str(tmp_path_factory.mktemp('variational') / 'run')
  assert cli.main(['train', '--smoke', '--dequantization', 'variational',
                   '--quiet', '--run-dir', path]) == 0
  return path


def _figures(pattern, text):
  match = re.search(pattern + r' ([0-9.]+) \+/- ([0-9.]+)', text)
  assert match, text
  return float(match.group(1)), float(match.group(2))


def test_evaluate_samples_prints_both_bounds(variational_run, capsys):
  capsys.readouterr()
  assert cli.main(['evaluate', '--run-dir', variational_run,
                   '--samples', '4']) == 0
  out = capsys.readouterr().out
  e = tasks.evaluate_run(variational_run, num_samples=4)
  single = _figures(r'^bits/dim:', out)
  weighted = _figures(r'importance-weighted bits/dim \(K=4 samples per image, '
                      r'q\(u \| x\) as proposal\):', out)
  assert single == (round(e.bits_per_dim, 4), round(e.standard_error, 4))
  assert weighted == (round(e.importance_weighted_bits_per_dim, 4),
                      round(e.importance_weighted_standard_error, 4))
  assert 'one draw of q(u | x): the variational bound' in out
  # The single-sample figure is training's final one; K = 1 prints it alone.
  assert single[0] == round(runs.read_evaluation(variational_run)[
      'bits_per_dim'], 4)
  assert cli.main(['evaluate', '--run-dir', variational_run]) == 0
  out = capsys.readouterr().out
  assert _figures(r'^bits/dim:', out) == single
  assert 'importance-weighted' not in out
  with pytest.raises(SystemExit) as exit_info:
    cli.main(['evaluate', '--run-dir', variational_run, '--samples', '0'])
  assert exit_info.value.code == 2
  assert ("argument --samples: must be an integer >= 1; got '0'"
          in capsys.readouterr().err)


def test_export_of_a_variational_run_serves_its_bound(variational_run,
                                                     tmp_path, capsys):
  out = str(tmp_path / 'served')
  assert cli.main(['export', '--run-dir', variational_run, '--output',
                   out]) == 0
  assert 'Exported a SavedModel' in capsys.readouterr().out
  images = tf.cast(tfp_glow.data.offline.arrays('test')[0][:4], tf.float32)
  served = tf.saved_model.load(out).signatures['bits_per_dim'](
      images=images)['bits_per_dim']
  glow = runs.load_glow(variational_run)
  # q(u | x) with the SavedModel's seed (0, 0): tasks' first batch, seed 0.
  np.testing.assert_allclose(
      served, tasks.bits_per_dim_values(
          glow, [images], dequantizer=runs.load_dequantizer(variational_run)),
      rtol=1e-5)
  assert not np.allclose(served, tasks.bits_per_dim_values(glow, [images]),
                         rtol=1e-3)
