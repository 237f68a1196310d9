"""pytest set-up shared by the tests and the doctests in tfp_glow/."""

import os

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import numpy as np  # pylint: disable=g-import-not-at-top
import pytest  # pylint: disable=g-import-not-at-top
import tensorflow as tf  # pylint: disable=g-import-not-at-top

# Start TensorFlow's runtime now, with its default threads: a test calling
# `tfp_glow.cli.main` in-process then cannot switch this process to one
# thread per op (`configure_cpu_threads`), whatever test runs first.
tf.constant(0)


@pytest.fixture(autouse=True)
def _seed_everything():
  np.random.seed(0)
  tf.random.set_seed(0)
