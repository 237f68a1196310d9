"""tfp_glow's convolution paths against plain `tf.nn.conv2d`, per shape.

For each convolution of a coupling network in the benchmark configurations
(batch 64; `[H, W, in] -> out`, kernel size), times forward + backward
(gradients for the input and the kernel) of `tf.nn.conv2d` and of
`tfp_glow._conv.conv2d`, interleaved, and prints the medians and the ratio.
This is how `_conv._FEW_CHANNELS` was chosen.

    python benchmarks/conv_paths.py
"""

import argparse
import time

import numpy as np
import tensorflow as tf

from tfp_glow import _conv

# (config, height = width, in channels, out channels, kernel size)
SHAPES = [
    ('mnist L1', 14, 2, 128, 3), ('mnist L1', 14, 128, 128, 1),
    ('mnist L1', 14, 128, 4, 3), ('mnist L2', 7, 4, 128, 3),
    ('mnist L2', 7, 128, 8, 3),
    ('cifar L1', 16, 6, 128, 3), ('cifar L1', 16, 128, 12, 3),
    ('cifar L2', 8, 12, 128, 3), ('cifar L2', 8, 128, 24, 3),
    ('cifar L3', 4, 24, 128, 3), ('cifar L3', 4, 128, 48, 3),
]


def _step(conv):
  @tf.function
  def step(x, kernel, dy):
    with tf.GradientTape() as tape:
      tape.watch([x, kernel])
      y = conv(x, kernel)
    return tape.gradient(y, [x, kernel], output_gradients=dy)
  return step


def _seconds(step, args, calls):
  start = time.perf_counter()
  for _ in range(calls):
    out = step(*args)
  np.asarray(out[0])
  return (time.perf_counter() - start) / calls


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--repeats', type=int, default=5)
  parser.add_argument('--calls', type=int, default=10)
  args = parser.parse_args(argv)
  steps = {'tf.nn.conv2d': _step(lambda x, k: tf.nn.conv2d(x, k, 1, 'SAME')),
           'tfp_glow': _step(_conv.conv2d)}
  print(f'{"shape":34s} {"tf.nn.conv2d ms":>15s} {"tfp_glow ms":>12s} '
        f'{"speed-up":>9s}')
  for config, size, c_in, c_out, k in SHAPES:
    rng = np.random.default_rng(0)
    inputs = (tf.constant(rng.normal(size=(args.batch, size, size, c_in)),
                          tf.float32),
              tf.constant(rng.normal(size=(k, k, c_in, c_out)), tf.float32),
              tf.constant(rng.normal(size=(args.batch, size, size, c_out)),
                          tf.float32))
    times = {name: [] for name in steps}
    for step in steps.values():
      _seconds(step, inputs, 2)  # Trace and warm up.
    for _ in range(args.repeats):
      for name, step in steps.items():
        times[name].append(_seconds(step, inputs, args.calls))
    ref, ours = (1e3 * np.median(times[n]) for n in steps)
    label = f'{config} {size}x{size}x{c_in} -> {c_out} ({k}x{k})'
    print(f'{label:34s} {ref:15.2f} {ours:12.2f} {ref / ours:8.2f}x',
          flush=True)


if __name__ == '__main__':
  main()
