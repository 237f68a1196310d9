"""examples/user_model.py in smoke mode: a user's Keras 3 classifier trained
jointly with a Glow density term."""

import importlib.util
import pathlib

import numpy as np

_PATH = (pathlib.Path(__file__).resolve().parents[1] / 'examples' /
         'user_model.py')


def _load_example():
  spec = importlib.util.spec_from_file_location('user_model', _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_user_model_trains_classifier_and_glow_jointly():
  example = _load_example()
  # The Glow's variables are the user's model's (through the GlowModel layer).
  model = example.build(smoke=True, density_weight=0.1, seed=0)
  glow_ids = {id(v) for v in model.density.glow.trainable_variables}
  assert glow_ids and glow_ids <= {id(v) for v in model.trainable_variables}

  results = example.main(['--smoke'])
  history = results['history']
  for key in ('loss', 'cross_entropy', 'bits_per_dim'):
    assert np.all(np.isfinite(history[key])), key
    assert history[key][-1] < history[key][0], (key, history[key])
  # loss = cross_entropy + 0.1 * bits_per_dim, epoch by epoch.
  np.testing.assert_allclose(
      history['loss'],
      np.add(history['cross_entropy'], 0.1 * np.array(history['bits_per_dim'])),
      rtol=1e-5)
  # Every trainable variable of the Glow was updated by the density term.
  assert results['glow_variables_changed'] == results['glow_variables'] > 0
  # Both terms learned something: held-out stripes are classified, and
  # uniform noise scores a higher bits/dim (out of distribution).
  assert results['accuracy'] >= 0.75
  assert results['bpd_noise'] > results['bpd_data'] + 1.0
