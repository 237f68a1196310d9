"""A batch computed as independent chunks gives the batch's loss, bits/dim and
training step, and `configure_cpu_threads` sets one thread per op."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import tfp_glow
from tests.conftest import make_small_glow
from tests.conftest import make_uint8_images
from tfp_glow.training import chunks


def _model(batch_chunks, dequantization='uniform'):
  glow = make_small_glow(dtype=tf.float64)
  model = tfp_glow.GlowModel(glow, batch_chunks=batch_chunks,
                             dequantization=dequantization, init_batch_size=7)
  model.compile(tfp_glow.training.default_optimizer(1e-3, warmup_steps=1))
  return model


def _images(batch=7, drop_remainder=True):
  images = make_uint8_images(14)
  return tf.data.Dataset.from_tensor_slices(images).batch(
      batch, drop_remainder=drop_remainder)


@pytest.mark.parametrize('dequantization', ['uniform', 'variational'])
def test_chunks_give_the_batch_loss_and_training_step(dequantization):
  """Uneven chunks (7 images as 3 + 2 + 2): the size-weighted mean, float64."""
  whole, chunked = _model(1, dequantization), _model(3, dequantization)
  assert chunked.num_chunks == 3
  whole_history = whole.fit(_images(), epochs=1, verbose=0).history
  chunked_history = chunked.fit(_images(), epochs=1, verbose=0).history
  np.testing.assert_allclose(chunked_history['loss'], whole_history['loss'],
                             rtol=1e-12)
  for a, b in zip(chunked.trainable_variables, whole.trainable_variables):
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-9, atol=1e-12)
  np.testing.assert_allclose(
      chunked.evaluate(_images(), return_dict=True, verbose=0)['bits_per_dim'],
      whole.evaluate(_images(), return_dict=True, verbose=0)['bits_per_dim'],
      rtol=1e-12)


def _spy(log):
  def loss_fn(x, labels, context):
    log.append((x.shape[0], labels, context))
    per_example = tf.reduce_sum(tf.reshape(x, [tf.shape(x)[0], -1]), 1)
    return tf.reduce_mean(per_example), per_example
  return loss_fn


def test_a_batch_is_split_into_even_chunks_weighted_by_size():
  log = []
  x = tf.reshape(tf.range(7 * 4, dtype=tf.float64), [7, 2, 2, 1])
  loss, per_example = chunks.over_chunks(_spy(log), 3, x, None, None)
  assert [n for n, *_ in log] == [3, 2, 2]
  assert all(labels is None and context is None for _, labels, context in log)
  sums = tf.reduce_sum(tf.reshape(x, [7, -1]), 1)
  np.testing.assert_array_equal(per_example, sums)
  np.testing.assert_allclose(loss, tf.reduce_mean(sums), rtol=1e-15)
  # Control: the plain mean of the chunks' means is not the batch's mean.
  means = [tf.reduce_mean(part) for part in tf.split(sums, [3, 2, 2])]
  assert abs(float(tf.add_n(means) / 3) - float(tf.reduce_mean(sums))) > 1.0


def test_an_unknown_batch_size_runs_as_one_chunk():
  log = []
  traced = tf.function(
      lambda x: chunks.over_chunks(_spy(log), 2, x, None, None),
      input_signature=[tf.TensorSpec([None, 2, 2, 1], tf.float64)])
  loss, per_example = traced(tf.ones([5, 2, 2, 1], tf.float64))
  assert [n for n, *_ in log] == [None]
  assert per_example.shape == [5] and float(loss) == 4.0


def test_a_partial_last_batch_still_evaluates_the_same():
  """Batches of unknown size (no drop_remainder) run whole: same bits/dim."""
  whole, chunked = _model(1), _model(2)
  for model in (whole, chunked):
    model.initialize(make_uint8_images(14))
  data = _images(batch=4, drop_remainder=False)
  np.testing.assert_allclose(
      chunked.evaluate(data, return_dict=True, verbose=0)['bits_per_dim'],
      whole.evaluate(data, return_dict=True, verbose=0)['bits_per_dim'],
      rtol=1e-12)


@pytest.mark.parametrize('bad', [0, -1, 2.0, 'two', True, None])
def test_a_bad_batch_chunks_is_named(bad):
  with pytest.raises(ValueError, match=r"batch_chunks.*'auto' or an int"):
    tfp_glow.GlowModel(make_small_glow(), batch_chunks=bad)


def test_batch_chunks_is_in_the_config():
  model = tfp_glow.GlowModel(make_small_glow(), batch_chunks=3)
  config = model.get_config()
  assert config['batch_chunks'] == 3
  assert tfp_glow.GlowModel.from_config(config).num_chunks == 3


def test_auto_is_one_chunk_under_default_threads():
  # The test process runs TensorFlow's default threading.
  assert tf.config.threading.get_intra_op_parallelism_threads() != 1
  assert tfp_glow.GlowModel(make_small_glow()).num_chunks == 1


_CHILD = """
import json, tensorflow as tf, tfp_glow
from tfp_glow import _hardware
result = {'set': tfp_glow.configure_cpu_threads(3),
          'intra': tf.config.threading.get_intra_op_parallelism_threads(),
          'inter': tf.config.threading.get_inter_op_parallelism_threads(),
          'auto': _hardware.auto_batch_chunks(),
          'model': tfp_glow.GlowModel(tfp_glow.Glow(
              (4, 4, 1), num_levels=1, num_steps=1, hidden_channels=4,
              seed=0)).num_chunks}
try:
  tfp_glow.configure_cpu_threads(2)
except RuntimeError as e:
  result['late'] = str(e)
print(json.dumps(result))
"""


def test_configure_cpu_threads_in_a_fresh_process():
  out = subprocess.run([sys.executable, '-c', _CHILD], check=True,
                       capture_output=True, text=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result['set'] is True
  assert (result['intra'], result['inter']) == (1, 3)
  assert result['auto'] == result['model'] == 3
  assert 'must run before TensorFlow runs its first op' in result['late']


@pytest.mark.parametrize('bad', [0, -2, 1.5, True])
def test_a_bad_num_threads_is_named(bad):
  with pytest.raises(ValueError, match='num_threads'):
    tfp_glow.configure_cpu_threads(bad)


def test_the_cli_runs_one_thread_per_op_and_says_so(tmp_path):
  out = subprocess.run(
      [sys.executable, '-m', 'tfp_glow.cli', 'train', '--smoke', '--quiet',
       '--run-dir', str(tmp_path / 'run')], check=True, capture_output=True,
      text=True).stdout
  chunks_here = min(len(os.sched_getaffinity(0)), 8)
  assert (f'one thread per op, each batch as {chunks_here} chunks at once'
          if chunks_here > 1 else "TensorFlow's default threads") in out


def test_a_negative_cpu_threads_is_refused():
  from tfp_glow import cli  # pylint: disable=g-import-not-at-top
  with pytest.raises(SystemExit) as exit_info:
    cli.main(['train', '--smoke', '--cpu-threads', '-1'])
  assert exit_info.value.code == 2


# ---------------------------------------------- sampling as one chain per core.


def _chains_of(glow, monkeypatch, num_chunks):
  """Makes `glow.sample` see `num_chunks` cores; returns the list that
  records the batch size of each chain its bijector maps."""
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(_hardware, 'auto_batch_chunks', lambda: num_chunks)
  chains, forward = [], glow.bijector.forward

  def recorded(z, **kwargs):
    chains.append(tf.compat.dimension_value(z.shape[0]))
    return forward(z, **kwargs)

  monkeypatch.setattr(glow.bijector, 'forward', recorded)
  return chains


@pytest.mark.parametrize('kind', ['plain', 'labels', 'context'])
def test_traced_sampling_runs_one_chain_per_core_with_the_same_images(
    kind, monkeypatch):
  """7 samples as chains of 3 + 2 + 2 in a tf.function: the images of the
  eager (one-chain) call for the same seed, labels and context, float64."""
  extra = {'plain': {}, 'labels': {'num_classes': 3},
           'context': {'context_shape': (4, 4, 1)}}[kind]
  glow = make_small_glow(dtype=tf.float64, **extra)
  x = tf.cast(make_uint8_images(7), tf.float64)
  kwargs = {'temperature': 0.7}
  if kind == 'labels':
    kwargs['labels'] = tf.constant([0, 1, 2, 0, 1, 2, 0])
  if kind == 'context':
    kwargs['context'] = tf.random.stateless_uniform([7, 4, 4, 1], [3, 4],
                                                     dtype=tf.float64)
  glow.initialize(x, **({'labels': kwargs['labels']} if 'labels' in kwargs
                        else {}), **({'context': kwargs['context']}
                                     if 'context' in kwargs else {}))
  chains = _chains_of(glow, monkeypatch, 3)
  eager = glow.sample(7, seed=(5, 6), **kwargs)
  assert chains == [7]   # Eager: one chain (its ops run one by one anyway).
  traced = tf.function(lambda: glow.sample(7, seed=(5, 6), **kwargs))()
  assert chains[1:] == [3, 2, 2]
  assert traced.shape == (7, 8, 8, 1)
  np.testing.assert_allclose(traced.numpy(), eager.numpy(), rtol=1e-9,
                             atol=1e-9)


def test_sampling_chains_keep_a_sample_shape_and_skip_what_cannot_split(
    monkeypatch):
  glow = make_small_glow()
  glow.initialize(tf.cast(make_uint8_images(7), tf.float32))
  chains = _chains_of(glow, monkeypatch, 2)
  eager = glow.sample([2, 3], seed=(1, 2))
  traced = tf.function(lambda: glow.sample([2, 3], seed=(1, 2)))()
  # Eager: the [2, 3] latents in one call; traced: 6 images as two chains.
  assert chains == [2, 3, 3]
  assert traced.shape == (2, 3, 8, 8, 1)
  np.testing.assert_allclose(traced.numpy(), eager.numpy(), rtol=1e-4,
                             atol=1e-4)
  del chains[:]
  # A temperature per sample (broadcast over the latent), or an unknown
  # number of samples: one chain.
  temperatures = tf.constant([0.5, 1.0])[:, None, None, None]
  tf.function(lambda: glow.sample(2, seed=(1, 2),
                                  temperature=temperatures))()
  n = tf.function(lambda n: glow.sample(n, seed=(1, 2)),
                  input_signature=[tf.TensorSpec([], tf.int32)])
  assert n(tf.constant(3)).shape == (3, 8, 8, 1)
  assert chains == [2, None]
