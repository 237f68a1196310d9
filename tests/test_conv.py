"""The fast convolution paths give `tf.nn.conv2d`'s values and gradients."""

import numpy as np
import pytest
import tensorflow as tf

from tfp_glow import _conv
from tfp_glow import nn

# (in_channels, out_channels, kernel size): each of _conv's paths.
PATHS = {
    '1x1 matmul': (5, 7, 1),
    '3x3 taps': (16, 4, 3),
    '3x3 matmul gradients': (3, 16, 3),
    '3x3 oneDNN': (12, 16, 3),
}


def _reference(x, kernel, bias, activation):
  y = tf.nn.bias_add(tf.nn.conv2d(x, kernel, 1, 'SAME'), bias)
  return activation(y) if activation else y


def _value_and_grads(conv, x, kernel, bias, activation, dy):
  with tf.GradientTape() as tape:
    tape.watch([x, kernel, bias])
    y = conv(x, kernel, bias, activation)
  return [y] + tape.gradient(y, [x, kernel, bias], output_gradients=dy)


@pytest.mark.parametrize('path', sorted(PATHS))
@pytest.mark.parametrize('activation', [None, tf.nn.relu])
def test_matches_conv2d_in_float64(path, activation):
  in_channels, out_channels, size = PATHS[path]
  rng = np.random.default_rng(0)
  x = tf.constant(rng.normal(size=(3, 5, 6, in_channels)))
  kernel = tf.constant(rng.normal(size=(size, size, in_channels,
                                        out_channels)))
  bias = tf.constant(rng.normal(size=out_channels))
  dy = tf.constant(rng.normal(size=(3, 5, 6, out_channels)))
  got = _value_and_grads(_conv.conv2d, x, kernel, bias, activation, dy)
  want = _value_and_grads(_reference, x, kernel, bias, activation, dy)
  for name, g, w in zip(['y', 'dx', 'dkernel', 'dbias'], got, want):
    np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-10, err_msg=name)


@pytest.mark.parametrize('path', sorted(PATHS))
def test_unknown_batch_in_tf_function(path):
  in_channels, out_channels, size = PATHS[path]
  kernel = tf.random.stateless_normal(
      (size, size, in_channels, out_channels), (1, 2))
  conv = tf.function(
      lambda x: _conv.conv2d(x, kernel),
      input_signature=[tf.TensorSpec([None, 4, 4, in_channels])])
  x = tf.random.stateless_normal((2, 4, 4, in_channels), (3, 4))
  np.testing.assert_allclose(conv(x), tf.nn.conv2d(x, kernel, 1, 'SAME'),
                             rtol=1e-5, atol=1e-5)


def _trained_like(module):
  """Gives every variable of `module` random values, as after training."""
  for i, v in enumerate(module.trainable_variables):
    v.assign(0.3 * tf.random.stateless_normal(v.shape, (i, 7), dtype=v.dtype))
  return module


@pytest.mark.parametrize('net, in_channels', [
    (nn.ZeroConv2D(4, 6, tf.float32), 4),
    (nn.ZeroConv2D(4, 5, tf.float32), 4),  # Odd: the gather fallback.
    (nn.GlowConditioner(2, 4, hidden_channels=8, seed=0), 2),
], ids=['ZeroConv2D', 'ZeroConv2D-odd', 'GlowConditioner'])
def test_split_call_is_the_even_and_odd_channels(net, in_channels):
  _trained_like(net)
  x = tf.random.stateless_normal((2, 5, 5, in_channels), (5, 6))
  h = net(x)
  even, odd = net.split_call(x)
  np.testing.assert_allclose(even, h[..., 0::2], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(odd, h[..., 1::2], rtol=1e-5, atol=1e-5)


def test_split_call_gradients_are_the_sliced_call_gradients():
  net = _trained_like(nn.ZeroConv2D(4, 6, tf.float32))
  x = tf.random.stateless_normal((2, 5, 5, 4), (5, 6))
  weights = tf.random.stateless_normal((2, 5, 5, 6), (7, 8))

  def loss(even, odd):
    return tf.reduce_sum(tf.concat([even, odd], -1) * weights)

  with tf.GradientTape(persistent=True) as tape:
    split = loss(*net.split_call(x))
    h = net(x)
    sliced = loss(h[..., 0::2], h[..., 1::2])
  for v in net.trainable_variables:
    np.testing.assert_allclose(tape.gradient(split, v),
                               tape.gradient(sliced, v), rtol=1e-5, atol=1e-5)


def _bias_gradient_error(conv, dtype, path, activation):
  """Largest error of `conv`'s bias gradient in `dtype`, relative to the
  largest float64 bias gradient, over 16 x 14 x 14 positions."""
  in_channels, out_channels, size = PATHS[path]
  rng = np.random.default_rng(1)
  values = [rng.normal(size=(16, 14, 14, in_channels)),
            0.1 * rng.normal(size=(size, size, in_channels, out_channels)),
            rng.normal(size=out_channels),
            rng.normal(size=(16, 14, 14, out_channels)) + 0.5]
  want = _value_and_grads(_reference, *map(tf.constant, values[:3]),
                          activation, tf.constant(values[3]))[-1]
  inputs = [tf.constant(v, dtype) for v in values]
  got = _value_and_grads(conv, *inputs[:3], activation, inputs[3])[-1]
  return float(np.max(np.abs(tf.cast(got, tf.float64) - want))
               / np.max(np.abs(want)))


@pytest.mark.parametrize('path', sorted(PATHS))
@pytest.mark.parametrize('activation', [None, tf.nn.relu, tf.tanh])
@pytest.mark.parametrize('dtype', [tf.bfloat16, tf.float16])
def test_low_precision_bias_gradient_is_summed_in_float32(path, activation,
                                                          dtype):
  # bf16 keeps 8 bits: one rounding of the result is 0.4%, a sum of 3136
  # terms accumulated in bf16 loses most of it.
  assert _bias_gradient_error(_conv.conv2d, dtype, path, activation) < 0.01


def test_bias_add_gradient_in_bfloat16_control_is_wrong():
  # The control: TensorFlow's own BiasAddGrad in bf16 fails the check above,
  # so the check can fail.
  assert _bias_gradient_error(_reference, tf.bfloat16, '1x1 matmul',
                              None) > 0.1


def _network_gradient_errors():
  """Per variable: the bf16 network's gradient error relative to float32's,
  over 32 images of 14x14 (6,272 positions)."""
  nets = [nn.GlowConditioner(2, 4, hidden_channels=16, seed=0,
                             compute_dtype=dtype)
          for dtype in (None, tf.bfloat16)]
  _trained_like(nets[0])
  for source, target in zip(nets[0].variables, nets[1].variables):
    target.assign(source)
  x = tf.random.stateless_normal((32, 14, 14, 2), (1, 1))
  weights = tf.random.stateless_normal((32, 14, 14, 4), (2, 2)) + 0.5
  errors, grads = {}, []
  for net in nets:
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(net(x) * weights)
    grads.append(tape.gradient(loss, net.trainable_variables))
  for i, (v, want, got) in enumerate(zip(nets[0].trainable_variables,
                                         *grads)):
    errors[f'{i} {v.name}'] = float(np.max(np.abs(got - want))
                                    / np.max(np.abs(want)))
  return errors


def test_bfloat16_network_gradients_match_float32():
  errors = _network_gradient_errors()
  assert max(errors.values()) < 0.03, errors


def test_bfloat16_network_gradients_control_with_bias_add_grad(monkeypatch):
  # The control: with TensorFlow's BiasAddGrad for bf16 (the old path), the
  # hidden 1x1 layer's ActNorm gradients are far off, so the check can fail.
  monkeypatch.setattr(_conv, '_LOW_PRECISION', ())
  assert max(_network_gradient_errors().values()) > 0.1


@pytest.mark.parametrize('dtype', [tf.bfloat16, tf.float16])
def test_low_precision_relu_gradient_is_relu_grad_exactly(dtype):
  # A ReLU's outputs: positive, +0 and -0 (relu(-0.0)), tiny and huge ones.
  rng = np.random.default_rng(0)
  pre = np.concatenate([rng.normal(size=4000), [0.0, -0.0, 1e-7, -1e-7,
                                                 6e4, np.inf, -np.inf]])
  out = tf.nn.relu(tf.constant(pre, dtype))
  d_out = tf.constant(rng.normal(size=pre.shape), dtype)
  got = _conv._relu_grad(d_out, out)  # pylint: disable=protected-access
  want = tf.raw_ops.ReluGrad(gradients=d_out, features=out)
  assert got.dtype == dtype
  # Equal values (ReluGrad multiplies by 0: -0 where d_out < 0).
  np.testing.assert_array_equal(tf.cast(got, tf.float32),
                                tf.cast(want, tf.float32))


# Each path's traced gradient, told apart by its ops (names and types).
_PATH_SIGNS = {
    '1x1 matmul': lambda ops: not any('Conv2D' in op for op in ops),
    '3x3 taps': lambda ops: any('constant_conv_grad' in op for op in ops),
    '3x3 matmul gradients': lambda ops: any(
        'conv3x3_with_matmul_gradients_grad' in op for op in ops),
    '3x3 oneDNN': lambda ops: any('Conv2DBackpropFilter' in op for op in ops),
}


@pytest.mark.parametrize('path', sorted(PATHS))
def test_each_shape_takes_its_path(path):
  in_channels, out_channels, size = PATHS[path]
  kernel = tf.zeros((size, size, in_channels, out_channels))

  @tf.function
  def grads(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = _conv.conv2d(x, kernel)
    return tape.gradient(y, x)

  graph = grads.get_concrete_function(
      tf.TensorSpec((2, 5, 6, in_channels))).graph
  ops = [f'{op.name} {op.type}' for op in graph.get_operations()]
  for other, sign in _PATH_SIGNS.items():
    assert sign(ops) == (other == path), other
