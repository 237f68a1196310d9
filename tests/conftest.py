"""Factories shared by the tests: small images, small Glows, compiled models.

Each is a plain function here and a session-scoped fixture returning it, so
fixtures of any scope can use them. The fixtures seed nothing: the top-level
conftest.py reseeds NumPy and TensorFlow before every test.
"""

import numpy as np
import pytest

import tfp_glow

SHAPE = (8, 8, 1)


def make_uint8_images(n=32, seed=0, shape=SHAPE, low=96, levels=64):
  """`n` uint8 images of `levels` grey levels from `low` on, seeded.

  Uniform over the levels: about log2(levels) bits/dim of true entropy (6 by
  default).
  """
  rng = np.random.default_rng(seed)
  return (rng.integers(0, levels, size=(n,) + tuple(shape)) + low).astype(
      np.uint8)


def make_small_glow(image_shape=SHAPE, **overrides):
  """A `tfp_glow.Glow`: 2 levels of 1 step, 8 hidden channels, seed 0."""
  config = dict(num_levels=2, num_steps=1, hidden_channels=8, seed=0)
  config.update(overrides)
  return tfp_glow.Glow(image_shape, **config)


def make_compiled_model(glow=None, *, learning_rate=2e-3, warmup_steps=3,
                        init_batch_size=32, jit_compile=None,
                        **glow_overrides):
  """A `GlowModel` of `glow` (else a small Glow), compiled with the default
  optimizer; `jit_compile=None` leaves Keras' default."""
  if glow is None:
    glow = make_small_glow(**glow_overrides)
  elif glow_overrides:
    raise TypeError(f'Give `glow` or Glow overrides, not both; got glow and '
                    f'{sorted(glow_overrides)}')
  model = tfp_glow.GlowModel(glow, init_batch_size=init_batch_size)
  optimizer = tfp_glow.training.default_optimizer(learning_rate,
                                                  warmup_steps=warmup_steps)
  if jit_compile is None:
    model.compile(optimizer)
  else:
    model.compile(optimizer, jit_compile=jit_compile)
  return model


@pytest.fixture(scope='session')
def uint8_images():
  """`make_uint8_images`."""
  return make_uint8_images


@pytest.fixture(scope='session')
def small_glow():
  """`make_small_glow`."""
  return make_small_glow


@pytest.fixture(scope='session')
def compiled_model():
  """`make_compiled_model`."""
  return make_compiled_model
