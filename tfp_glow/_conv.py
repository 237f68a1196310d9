"""'SAME' stride-1 convolutions of `[N, H, W, C]` images, fast on CPU.

`conv2d(x, kernel, bias, activation)` computes
`activation(conv2d(x, kernel, 'SAME') + bias)` with the path that is fastest
for the shape; every path gives the values and gradients of `tf.nn.conv2d`
(tests/test_conv.py checks them in float64):

- a 1x1 kernel runs as one matmul on `[N * H * W, C]`, with the bias and the
  activation on the 2-D result so that TensorFlow fuses MatMul + BiasAdd +
  Relu; the matmul's gradients are also faster than the 1x1 convolution's.
- a 3x3 kernel to a few output channels (the zero-initialised last layer of a
  coupling network) runs as one matmul to the 9 window taps, summed over the
  window by a convolution with a constant one-hot kernel, with matmul
  gradients for the kernel: oneDNN's convolution and especially its filter
  gradient are slow with a handful of output channels.
- a 3x3 kernel from a few input channels (the first layer of a coupling
  network) runs as oneDNN's convolution with im2col and matmul gradients:
  oneDNN's input and filter gradients are slow from a handful of channels.
- any other kernel runs as `tf.nn.conv2d`.

In bfloat16 and float16 the bias's gradient is summed in float32 (as a
matmul) instead of by TensorFlow's `BiasAddGrad`, which accumulates in the
low precision: over 64 images of 14x14 its bf16 bias gradient was 74-83% off
(tests/test_conv.py checks every path against float64).
"""

import numpy as np
import tensorflow as tf

__all__ = ['conv2d']

# Output channels up to which a 3x3 kernel runs as taps (benchmarks/
# conv_paths.py on a 2-core CPU: 1.1x-1.25x faster at 4 and 8, none at 12).
_FEW_CHANNELS = 8
# Input channels up to which a 3x3 kernel's gradients run as im2col and
# matmuls (the one-hot im2col costs 81 C^2 multiply-adds a pixel).
_FEW_INPUT_CHANNELS = 8

# Dtypes whose bias gradient `BiasAddGrad` would accumulate in that dtype.
_LOW_PRECISION = (tf.bfloat16, tf.float16)


def conv2d(x, kernel, bias=None, activation=None):
  """`activation(conv2d(x, kernel, 'SAME') + bias)` of `x`: `[N, H, W, C]`."""
  kernel_h, kernel_w, in_channels, out_channels = kernel.shape
  if kernel_h == kernel_w == 1:
    y = tf.matmul(tf.reshape(x, [-1, in_channels]),
                  tf.reshape(kernel, [in_channels, out_channels]))
  elif _is_3x3_on_static_image(x, kernel) and out_channels <= _FEW_CHANNELS:
    y = _conv3x3_as_taps(x, kernel)
  elif (_is_3x3_on_static_image(x, kernel)
        and in_channels <= _FEW_INPUT_CHANNELS):
    y = _conv3x3_with_matmul_gradients(x, kernel)
  else:
    y = tf.nn.conv2d(x, kernel, strides=1, padding='SAME')
  if bias is not None and y.dtype in _LOW_PRECISION:
    y = _bias_add_summed_in_float32(y, bias, activation)
  else:
    if bias is not None:
      y = tf.nn.bias_add(y, bias)
    if activation is not None:
      y = activation(y)
  if y.shape.rank == 2:
    y = _images_like(y, x)
  return y


def _bias_add_summed_in_float32(y, bias, activation):
  """`activation(bias_add(y, bias))`, the bias gradient summed in float32.

  A ReLU stays inside the custom gradient, next to the bias add, as in the
  float32 graph that TensorFlow fuses; any other activation follows it.
  """
  inner_relu = activation is tf.nn.relu

  @tf.custom_gradient
  def bias_add(y, bias):
    out = tf.nn.bias_add(y, bias)
    if inner_relu:
      out = tf.nn.relu(out)

    def grad(d_out):
      with tf.name_scope('bias_add_summed_in_float32_grad'):  # Else unscoped.
        d_y = _relu_grad(d_out, out) if inner_relu else d_out
        return d_y, _column_sums(d_y)

    return out, grad

  out = bias_add(y, bias)
  return out if activation is None or inner_relu else activation(out)


def _relu_grad(d_out, out):
  """`ReluGrad(d_out, out)` of 16-bit floats: `d_out` where `out > 0`, else 0.

  The test `out > 0` runs on `out`'s bits as int16, which order the same
  way for a ReLU's output (sign bit first: +0 is 0, -0 negative). The values
  are ReluGrad's (whose zeros carry `d_out`'s sign) except where `out` is
  NaN, where the step is lost anyway. TensorFlow's bf16 `ReluGrad` and
  `Greater` convert every element to float32 one by one; in a bf16 training
  step the int16 compare and a select took 19 ms where ReluGrad took 31-36
  ms (MNIST configuration, 64 ReLUs, Intel Xeon with AMX;
  `benchmarks/benchmark.py --profile`).
  """
  positive = tf.bitcast(out, tf.int16) > 0
  return tf.where(positive, d_out, tf.zeros([], d_out.dtype))


def _column_sums(t):
  """Sums of `t` over all but the last axis, accumulated in float32.

  As a matmul of a row of ones: bf16 and fp16 matmuls accumulate in float32
  (oneDNN, cuBLAS), and it is no slower than `BiasAddGrad`, where casting
  `t` to float32 for a `tf.reduce_sum` cost a tenth of a bf16 training step.
  """
  rows = _rows(t)
  num_rows = rows.shape[0] if rows.shape[0] is not None else tf.shape(rows)[0]
  return tf.matmul(tf.ones([1, num_rows], t.dtype), rows)[0]


def _is_3x3_on_static_image(x, kernel):
  """Whether `kernel` is 3x3 and `x`'s height and width are static (the
  matmul paths reshape to them)."""
  return kernel.shape[0] == kernel.shape[1] == 3 and None not in x.shape[1:3]


def _window_sum_kernel(channels, dtype):
  """The one-hot 3x3 kernel `[3, 3, 9 C, C]` that sums a pixel's window taps.

  `kernel[a, b, k * C + c, c] = 1` for tap `k = 3 a + b`: the 'SAME'
  convolution of `t` `[N, H, W, 9 C]` with it is
  `y[i, j, c] = sum over (a, b) of t[i + a - 1, j + b - 1, k * C + c]`, each
  product an exact 1 or 0. Its transpose `[3, 3, C, 9 C]` does the opposite,
  im2col: channel `k * C + c` of the result is channel `c` of the window's
  tap `k`.
  """
  kernel = np.zeros([3, 3, 9 * channels, channels], dtype.as_numpy_dtype)
  for a in range(3):
    for b in range(3):
      k = 3 * a + b
      for c in range(channels):
        kernel[a, b, k * channels + c, c] = 1
  return kernel


def _adjoint(kernel):
  """The kernel of the adjoint of a 'SAME' 3x3 convolution with `kernel`:
  flipped in space, its channels transposed."""
  return np.ascontiguousarray(kernel[::-1, ::-1].transpose(0, 1, 3, 2))


def _constant_conv(t, kernel):
  """'SAME' 3x3 convolution of `t` with a constant numpy `kernel`.

  Its gradient is the adjoint convolution, with no filter gradient. The
  one-hot window sum runs as one oneDNN convolution each way, where 9
  shifted slices and their sum (a pad, 9 slices and a concat for the
  gradient) took 34 ms of a float32 MNIST step's op time (README,
  Performance).
  """
  adjoint = _adjoint(kernel)

  @tf.custom_gradient
  def conv(t):
    def grad(dy):
      with tf.name_scope('constant_conv_grad'):  # Else its ops are unscoped.
        return tf.nn.conv2d(dy, tf.constant(adjoint), strides=1,
                            padding='SAME')
    return tf.nn.conv2d(t, tf.constant(kernel), strides=1, padding='SAME'), grad

  return conv(t)


@tf.custom_gradient
def _conv3x3_with_matmul_gradients(x, kernel):
  """3x3 conv from few channels: oneDNN's, with im2col and matmul gradients.

  oneDNN's forward convolution from a handful of channels is fast, its
  input and filter gradients are not. Here the gradients take the window
  taps of `x`, `[N * H * W, 9 C_in]` (im2col, one one-hot convolution,
  cheap for few channels), and are two matmuls and the adjoint one-hot
  convolution (col2im): in a float32 MNIST training step the first layers'
  gradients took 31 ms of op time instead of 46, the step 244 ms instead of
  258 (2-core Xeon, one thread per op).
  """
  in_channels, out_channels = kernel.shape[2], kernel.shape[3]
  y = tf.nn.conv2d(x, kernel, strides=1, padding='SAME')

  def grad(dy):
    with tf.name_scope('conv3x3_with_matmul_gradients_grad'):
      im2col = np.ascontiguousarray(
          _window_sum_kernel(in_channels, x.dtype).transpose(0, 1, 3, 2))
      columns = _rows(tf.nn.conv2d(x, im2col, strides=1, padding='SAME'))
      dy_rows = _rows(dy)
      d_kernel = tf.reshape(tf.matmul(columns, dy_rows, transpose_a=True),
                            kernel.shape)
      d_columns = tf.matmul(
          dy_rows, tf.reshape(kernel, [9 * in_channels, out_channels]),
          transpose_b=True)
      dx = tf.nn.conv2d(_images_like(d_columns, x), _adjoint(im2col),
                        strides=1, padding='SAME')
      return dx, d_kernel

  return y, grad


def _rows(x):
  return tf.reshape(x, [-1, x.shape[-1]])


def _images_like(rows, x):
  """`rows` `[N * H * W, c]` as images `[N, H, W, c]` of `x`'s batch."""
  if x.shape[1:-1].is_fully_defined():  # One constant, not five shape ops.
    return tf.reshape(rows, [-1] + x.shape[1:-1].as_list() + [rows.shape[-1]])
  return tf.reshape(rows, tf.concat([tf.shape(x)[:-1], [rows.shape[-1]]], 0))


def _conv3x3_as_taps(x, kernel):
  """3x3 conv to few channels: one matmul to the 9 window taps, then a sum."""
  in_channels, out_channels = kernel.shape[2], kernel.shape[3]
  # [C_in, 9 * C_out]: tap k = 3 a + b in columns k * C_out ... (k + 1) * C_out.
  taps_kernel = tf.reshape(tf.transpose(kernel, [2, 0, 1, 3]),
                           [in_channels, 9 * out_channels])
  taps = _images_like(tf.matmul(_rows(x), taps_kernel), x)
  return _constant_conv(taps, _window_sum_kernel(out_channels, x.dtype))
