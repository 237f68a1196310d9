"""Super-resolution: the box contexts of `tfp_glow.data`, the
`mnist_super_resolution` preset through `tasks` and `tfp-glow`, and
examples/super_resolution.py."""

import importlib.util
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from tfp_glow import cli
from tfp_glow import data
from tfp_glow import presets
from tfp_glow import runs
from tfp_glow import tasks
from tfp_glow.data import offline

SMOKE = presets.smoke(presets.get('mnist_super_resolution'))
EXAMPLE = os.path.join(os.path.dirname(os.path.dirname(__file__)), 'examples',
                       'super_resolution.py')
TILE, GAP = 28 * 4, 4   # Tiles of 28x28 digits upscaled x4, 1-pixel gaps x4.


def _box_means(images, k):
  """Means of the k x k blocks of uint8 images, computed with NumPy."""
  n, h, w, c = images.shape
  blocks = images.astype(np.float64).reshape(n, h // k, k, w // k, k, c)
  return blocks.mean(axis=(2, 4))


def _png(path):
  return tf.io.decode_png(tf.io.read_file(path)).numpy()


def _tiles(grid, rows, cols):
  """The tiles of a x4 grid at one pixel per pixel: [rows, cols, 28, 28]."""
  step = TILE + GAP
  return np.array([[grid[r * step:r * step + TILE:4,
                         c * step:c * step + TILE:4, 0]
                    for c in range(cols)] for r in range(rows)])


# ------------------------------------------------------------------ data.


def test_context_is_the_box_mean_scaled_to_unit_interval():
  batch = next(iter(data.load('mnist_offline', 'test', batch_size=64,
                              context='box4', labels=True)))
  assert sorted(batch) == ['context', 'images', 'labels']
  images, context = batch['images'].numpy(), batch['context'].numpy()
  assert images.dtype == np.uint8 and images.shape == (64, 28, 28, 1)
  assert context.dtype == np.float32 and context.shape == (64, 7, 7, 1)
  np.testing.assert_array_equal(images, offline.arrays('test')[0][:64])
  np.testing.assert_allclose(context, _box_means(images, 4) / 255, atol=1e-6)
  assert context.min() >= 0 and context.max() <= 1 and context.max() > 0.5
  np.testing.assert_array_equal(batch['labels'], offline.arrays('test')[1][:64])
  assert data.context_shape('mnist_offline', 'box4') == (7, 7, 1)


def test_held_out_contexts_are_not_the_training_ones():
  train, test = (next(iter(data.load('mnist_offline', split, batch_size=500,
                                     context='box4')))
                 for split in ('train', 'test'))
  flat = lambda c: {row.tobytes() for row in c.numpy().reshape(500, -1)}
  assert not flat(train['context']) & flat(test['context'])
  assert len(flat(test['context'])) == 500   # Each digit its own input.


def test_context_is_computed_after_bit_reduction_and_flips():
  batch = next(iter(data.load('mnist_offline', batch_size=200, num_bits=5,
                              shuffle=True, flip=True, seed=1,
                              context='box2')))
  images = batch['images'].numpy()
  assert images.max() == 31 and batch['context'].shape == (200, 14, 14, 1)
  # The pair matches after the random flips: the context of each image is
  # the box mean of that (flipped) image, scaled by 2**5 - 1.
  np.testing.assert_allclose(batch['context'], _box_means(images, 2) / 31,
                             atol=1e-6)


def test_tfds_datasets_get_the_same_context():
  with tfds.testing.mock_data(num_examples=8):
    batch = next(iter(data.load('mnist', 'test', batch_size=8,
                                context='box4')))
    padded = next(iter(data.load('mnist', 'test', batch_size=8,
                                 image_size=32, context='box4')))
  np.testing.assert_allclose(
      batch['context'], _box_means(batch['images'].numpy(), 4) / 255,
      atol=1e-6)
  assert padded['context'].shape == (8, 8, 8, 1)   # 32 / 4.
  np.testing.assert_allclose(
      padded['context'], _box_means(padded['images'].numpy(), 4) / 255,
      atol=1e-6)


@pytest.mark.parametrize('context,error,message', [
    ('box5', ValueError, "`context`='box5' needs images whose height and width "
     'are divisible by 5; got images of 28x28'),
    ('lowres', ValueError, "unknown `context` 'lowres': contexts are 'box<k>'"),
    ('box1', ValueError, "unknown `context` 'box1'"),
    (4, TypeError, '`context` must be a str'),
])
def test_bad_contexts_are_named(context, error, message):
  with pytest.raises(error, match=re.escape(message)):
    data.load('mnist_offline', 'test', context=context)
  with pytest.raises(error, match=re.escape(message)):
    presets.get('mnist_super_resolution', context=context)


def test_context_pixels_upscale_nearest():
  context = tf.constant([[[[0.0], [1.0]], [[0.5], [0.25]]]])   # [1, 2, 2, 1]
  pixels = data.context.to_pixels(context, (4, 4, 1), num_bits=8).numpy()
  np.testing.assert_array_equal(pixels[0, ..., 0], [
      [0, 0, 255, 255], [0, 0, 255, 255], [127, 127, 63, 63],
      [127, 127, 63, 63]])
  with pytest.raises(ValueError, match=r'shape \[1, 2, 2, 1\] is not a box '
                     r'context of images of shape \(6, 6, 3\)'):
    data.context.to_pixels(context, (6, 6, 3))


# --------------------------------------------------- a run through tasks.


@pytest.fixture(scope='module')
def smoke_run(tmp_path_factory):
  run_dir = str(tmp_path_factory.mktemp('super_resolution'))
  return run_dir, tasks.train(run_dir, SMOKE, verbose=0)


def test_preset_trains_a_conditional_glow_like_the_offline_default():
  config, default = presets.get('mnist_super_resolution'), presets.get(
      presets.DEFAULT)
  assert config.context == 'box4' and config.context_shape == (7, 7, 1)
  # The same model and optimisation; the offline default adds variational
  # dequantization and trains 22 epochs instead of 24.
  assert presets.replace(config, context=None, dequantization='variational',
                         epochs=22) == default
  assert tasks.build_glow(SMOKE).context_shape == (7, 7, 1)


def test_smoke_run_writes_a_conditional_run(smoke_run):
  run_dir, result = smoke_run
  glow = runs.load_glow(run_dir)
  assert glow.context_shape == (7, 7, 1)
  assert presets.Config.from_dict(runs.read_training_config(run_dir)) == SMOKE
  assert result.epochs == 1 and result.steps == 2
  assert np.isfinite(result.evaluation.bits_per_dim)
  assert result.evaluation.num_images == SMOKE.eval_examples
  # The checkpoint, the held-out images and contexts, the noise seed: the
  # training figure again.
  again = tasks.evaluate_run(run_dir)
  assert again.bits_per_dim == pytest.approx(result.evaluation.bits_per_dim,
                                             rel=1e-6)
  assert os.path.isfile(os.path.join(run_dir, 'samples', 'epoch_001.png'))


def test_grid_rows_are_input_samples_and_truth(smoke_run):
  run_dir, result = smoke_run
  assert result.samples == os.path.join(run_dir, 'samples',
                                        'context_samples.png')
  grid = _png(result.samples)
  assert grid.shape == (10 * (TILE + GAP) - GAP, 4 * (TILE + GAP) - GAP, 1)
  tiles = _tiles(grid, rows=10, cols=4)
  truth = tiles[:, 3]
  held_out = {x.tobytes() for x in offline.arrays('test')[0][..., 0]}
  assert all(t.tobytes() in held_out for t in truth)
  assert len({t.tobytes() for t in truth}) == 10
  # Column 0 is the 7x7 input of the row's truth, each value a 4x4 block.
  expected = np.repeat(np.repeat(_box_means(truth[..., None], 4)[..., 0], 4,
                                 axis=1), 4, axis=2)
  np.testing.assert_allclose(tiles[:, 0], expected, atol=1.0)
  # Columns 1 and 2: samples at temperatures 0.5 and 0.8 (the same noise).
  assert not np.array_equal(tiles[:, 1], tiles[:, 2])
  assert not np.array_equal(tiles[:, 1], truth)


def test_sample_command_writes_the_context_grid(smoke_run, tmp_path, capsys):
  run_dir, _ = smoke_run
  output = str(tmp_path / 'sr.png')
  assert cli.main(['sample', '--run-dir', run_dir, '--output', output,
                   '--num', '3', '--temperatures', '0.6,0.7,1.0',
                   '--scale', '1']) == 0
  assert f'Wrote {output}' in capsys.readouterr().out
  # 3 held-out examples: input, 3 temperatures, truth.
  assert _png(output).shape == (3 * 29 - 1, 5 * 29 - 1, 1)
  assert cli.main(['sample', '--run-dir', run_dir, '--per-class']) == 2
  assert 'drop --per-class' in capsys.readouterr().err


def test_unconditional_grids_refuse_a_context_glow(smoke_run, tmp_path):
  run_dir, _ = smoke_run
  with pytest.raises(ValueError, match=r'conditional on a context \('
                     r'context_shape=\(7, 7, 1\)\); its samples need one'):
    tasks.sample_grid(run_dir, str(tmp_path / 's.png'))
  with pytest.raises(ValueError, match='give a `batch`'):
    tasks.context_sample_grid(runs.load_glow(run_dir), str(tmp_path / 's.png'))


def test_evaluate_command_matches_the_training_figure(smoke_run, capsys):
  run_dir, result = smoke_run
  assert cli.main(['evaluate', '--run-dir', run_dir]) == 0
  assert (f'bits/dim: {result.evaluation.bits_per_dim:.4f} +/- '
          in capsys.readouterr().out)


def test_export_command_serves_log_prob_given_the_context(smoke_run, tmp_path,
                                                         capsys):
  run_dir, _ = smoke_run
  out = str(tmp_path / 'served')
  assert cli.main(['export', '--run-dir', run_dir, '--output', out]) == 0
  assert 'Exported a SavedModel' in capsys.readouterr().out
  batch = next(iter(data.load('mnist_offline', 'test', batch_size=4,
                              context='box4')))
  x = tf.cast(batch['images'], tf.float32) + 0.5
  glow = runs.load_glow(run_dir)
  loaded = tf.saved_model.load(out)
  served = loaded.signatures['log_prob'](images=x, context=batch['context'])
  np.testing.assert_allclose(served['log_prob'],
                             glow.log_prob(x, context=batch['context']),
                             rtol=1e-5)
  # The context matters: another digit's input gives another density.
  other = loaded.signatures['log_prob'](
      images=x, context=tf.reverse(batch['context'], [0]))['log_prob']
  assert not np.allclose(other, served['log_prob'])


def test_resume_continues_a_conditional_run(tmp_path):
  run_dir = str(tmp_path)
  tasks.train(run_dir, SMOKE, verbose=0, grid_scale=1)
  resumed = tasks.train(run_dir, resume=True, epochs=2, verbose=0,
                        grid_scale=1)
  assert (resumed.epochs, resumed.steps) == (2, 4)
  assert runs.read_evaluation(run_dir)['epochs'] == 2
  assert _png(os.path.join(run_dir, 'samples', 'epoch_002.png')).shape == (
      10 * 29 - 1, 4 * 29 - 1, 1)


# --------------------------------------------------------------- example.


def test_example_smoke_prints_both_figures_and_writes_the_png(tmp_path):
  root = str(tmp_path / 'sr')
  result = subprocess.run(
      [sys.executable, EXAMPLE, '--smoke', '--run-dir', root],
      capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr
  stored = {}
  for name in ('conditional', 'unconditional'):
    stored[name] = runs.read_evaluation(os.path.join(root, name))[
        'bits_per_dim']
    line = re.search(rf'^  {name} p\(x[^)]*\):\s+([0-9.]+) \+/- [0-9.]+\s+'
                     r'\(([0-9,]+) steps, ([0-9]+) s\)$', result.stdout, re.M)
    assert line, result.stdout
    assert float(line.group(1)) == pytest.approx(stored[name], abs=1e-4)
    assert line.group(2) == '2'   # presets.smoke: 1 epoch of 2 batches.
  # The paired difference is the difference of the two means.
  paired = re.search(r'conditional - unconditional: ([-+][0-9.]+) \+/- '
                     r'([0-9.]+) bits/dim \(paired: the same 16 digits',
                     result.stdout)
  assert paired, result.stdout
  assert float(paired.group(1)) == pytest.approx(
      stored['conditional'] - stored['unconditional'], abs=2e-4)
  assert float(paired.group(2)) > 0
  assert runs.load_glow(os.path.join(root, 'conditional')).context_shape == (
      7, 7, 1)
  unconditional = runs.load_glow(os.path.join(root, 'unconditional'))
  assert unconditional.context_shape is None
  png = os.path.join(root, 'super_resolution.png')
  assert f'Samples: {png}' in result.stdout
  assert _png(png).shape == (10 * (TILE + GAP) - GAP, 4 * (TILE + GAP) - GAP, 1)


def test_example_refuses_a_folder_holding_runs(smoke_run, capsys):
  run_dir, _ = smoke_run
  spec = importlib.util.spec_from_file_location('super_resolution', EXAMPLE)
  example = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(example)
  os.makedirs(os.path.join(run_dir, 'sr'), exist_ok=True)
  os.symlink(run_dir, os.path.join(run_dir, 'sr', 'conditional'))
  with pytest.raises(SystemExit) as exit_info:  # Before any training.
    example.main(['--smoke', '--run-dir', os.path.join(run_dir, 'sr')])
  assert exit_info.value.code == 2
  assert 'conditional already hold(s) a run' in capsys.readouterr().err
