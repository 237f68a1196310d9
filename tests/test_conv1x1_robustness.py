"""The LU 1x1 convolution is as robust as the matrix it represents.

Issue 10 measured more non-finite samples from a noise-perturbed Glow with
`permutation='lu'` than with `'conv1x1'`. The cause is not the LU layer's
arithmetic: a plain layer holding the same matrix W decodes the same pixels,
the non-finite ones included. The same N(0, 0.05^2) noise per variable moves
W further under the paper's `P L (U + diag(sign * exp(log_s)))` than when it is
added to W's entries directly (the noise on L and U is multiplied by the other
factor), and the pixels then overflow in the couplings' and split priors'
`exp` of the sampling direction. These tests pin the part that belongs to the
layer: under that noise, sampling (triangular solves) is the exact inverse of
W, and the log-det is exactly log|det W|.
"""

import numpy as np
import tensorflow as tf

from tfp_glow import bijectors as gb
from tests import bijector_checks

CHANNELS = 24  # The second level of an (8, 8, 3) Glow.


def _perturbed_lu(seed):
  conv = gb.InvertibleConv1x1(CHANNELS, lu_decomposed=True, seed=seed)
  bijector_checks.perturb(conv, scale=0.05, seed=100 + seed)
  return conv


def test_lu_sampling_is_the_plain_inverse_of_the_same_matrix():
  z = tf.random.stateless_normal([64, 2, 2, CHANNELS], [0, 1])
  for seed in range(5):
    conv = _perturbed_lu(seed)
    w = conv.weight().numpy().astype(np.float64)
    plain = gb.InvertibleConv1x1(CHANNELS, lu_decomposed=False)
    plain._weight.assign(conv.weight())  # pylint: disable=protected-access
    exact = np.einsum('ij,...j->...i', np.linalg.inv(w), z.numpy())
    x = conv.forward(z)
    scale = np.abs(exact).max()
    np.testing.assert_allclose(x, exact, atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(x, plain.forward(z), atol=1e-5 * scale, rtol=0)
    np.testing.assert_allclose(conv.inverse(x), z, atol=1e-5)


def test_lu_log_det_is_exact_under_noise():
  for seed in range(5):
    conv = _perturbed_lu(seed)
    _, log_abs_det = np.linalg.slogdet(conv.weight().numpy().astype(np.float64))
    ildj = conv.inverse_log_det_jacobian(tf.zeros([CHANNELS]), 1)  # One pixel.
    np.testing.assert_allclose(float(ildj), log_abs_det, atol=1e-5)
