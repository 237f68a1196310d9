"""'SAME' stride-1 convolutions of `[N, H, W, C]` images, fast on CPU.

`conv2d(x, kernel, bias, activation)` computes
`activation(conv2d(x, kernel, 'SAME') + bias)` with the path that is fastest
for the shape; every path gives the values and gradients of `tf.nn.conv2d`
(tests/test_conv.py checks them in float64):

- a 1x1 kernel runs as one matmul on `[N * H * W, C]`, with the bias and the
  activation on the 2-D result so that TensorFlow fuses MatMul + BiasAdd +
  Relu; the matmul's gradients are also faster than the 1x1 convolution's.
- a 3x3 kernel to a few output channels (the zero-initialised last layer of a
  coupling network) runs as one matmul to the 9 window taps and a sum of
  shifted taps, with matmul gradients: oneDNN's convolution and especially
  its filter gradient are slow with a handful of output channels.
- any other kernel runs as `tf.nn.conv2d`.

In bfloat16 and float16 the bias's gradient is summed in float32 (as a
matmul) instead of by TensorFlow's `BiasAddGrad`, which accumulates in the
low precision: over 64 images of 14x14 its bf16 bias gradient was 74-83% off
(tests/test_conv.py checks every path against float64).
"""

import tensorflow as tf

__all__ = ['conv2d']

# Output channels up to which a 3x3 kernel runs as taps (benchmarks/
# conv_paths.py on a 2-core CPU: 1.1x-1.25x faster at 4 and 8, none at 12).
_FEW_CHANNELS = 8

# Dtypes whose bias gradient `BiasAddGrad` would accumulate in that dtype.
_LOW_PRECISION = (tf.bfloat16, tf.float16)


def conv2d(x, kernel, bias=None, activation=None):
  """`activation(conv2d(x, kernel, 'SAME') + bias)` of `x`: `[N, H, W, C]`."""
  kernel_h, kernel_w, in_channels, out_channels = kernel.shape
  if kernel_h == kernel_w == 1:
    y = tf.matmul(tf.reshape(x, [-1, in_channels]),
                  tf.reshape(kernel, [in_channels, out_channels]))
  elif _as_taps(x, kernel):
    y = _conv3x3_as_taps(x, kernel)
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
  NaN, where the step is lost anyway. TensorFlow's
  bf16 `ReluGrad` and `Greater` convert every element to float32 one by
  one; in a bf16 training step the int16 compare and a select took 19 ms
  where ReluGrad took 31-36 ms (MNIST configuration, 64 ReLUs, Intel Xeon
  with AMX; `benchmarks/benchmark.py --profile`).
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


def _as_taps(x, kernel):
  """Whether `kernel` is 3x3 to a few channels, on a static-size image."""
  kernel_h, kernel_w, _, out_channels = kernel.shape
  return (kernel_h == kernel_w == 3 and None not in x.shape[1:3]
          and out_channels <= _FEW_CHANNELS)


def _window_slices(x, channels=None, reverse=False):
  """The 9 slices `x_pad[:, a:a + H, b:b + W]` (a, b in 0..2) of a 'SAME' 3x3
  window, in kernel order; `reverse` takes `x_pad[:, 2 - a:, 2 - b:]`.

  With `channels`, slice k keeps only channels `k * channels ...
  (k + 1) * channels` of it, in the same strided slice: slicing space first
  and channels after would copy all 9 taps 9 times.
  """
  height, width = x.shape[1], x.shape[2]
  padded = tf.pad(x, [[0, 0], [1, 1], [1, 1], [0, 0]])
  offsets = [(2 - a, 2 - b) if reverse else (a, b)
             for a in range(3) for b in range(3)]
  if channels is None:
    return [padded[:, i:i + height, j:j + width] for i, j in offsets]
  return [padded[:, i:i + height, j:j + width,
                 k * channels:(k + 1) * channels]
          for k, (i, j) in enumerate(offsets)]


def _rows(x):
  return tf.reshape(x, [-1, x.shape[-1]])


def _images_like(rows, x):
  """`rows` `[N * H * W, c]` as images `[N, H, W, c]` of `x`'s batch."""
  if x.shape[1:-1].is_fully_defined():  # One constant, not five shape ops.
    return tf.reshape(rows, [-1] + x.shape[1:-1].as_list() + [rows.shape[-1]])
  return tf.reshape(rows, tf.concat([tf.shape(x)[:-1], [rows.shape[-1]]], 0))


@tf.custom_gradient
def _conv3x3_as_taps(x, kernel):
  """3x3 conv to few channels: one matmul to the 9 window taps, then a sum."""
  in_channels, out_channels = kernel.shape[2], kernel.shape[3]
  # [C_in, 9 * C_out]: tap k = 3 a + b in columns k * C_out ... (k + 1) * C_out.
  taps_kernel = tf.reshape(tf.transpose(kernel, [2, 0, 1, 3]),
                           [in_channels, 9 * out_channels])
  x_rows = _rows(x)
  taps = _images_like(tf.matmul(x_rows, taps_kernel), x)
  # y[i, j] = sum over taps (a, b) of taps[i + a - 1, j + b - 1, tap (a, b)].
  y = tf.add_n(_window_slices(taps, channels=out_channels))

  def grad(dy):
    with tf.name_scope('conv3x3_as_taps_grad'):  # Else its ops are unscoped.
      d_taps = _rows(tf.concat(_window_slices(dy, reverse=True), axis=-1))
      d_kernel = tf.matmul(x_rows, d_taps, transpose_a=True)
      d_kernel = tf.transpose(
          tf.reshape(d_kernel, [in_channels, 3, 3, out_channels]), [1, 2, 0, 3])
      dx = _images_like(tf.matmul(d_taps, taps_kernel, transpose_b=True), x)
      return dx, d_kernel

  return y, grad
