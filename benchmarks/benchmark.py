"""tfp_glow against TFP's own `tfb.Glow`, side by side, at equal architecture.

Both models: L levels of K steps (ActNorm, LU 1x1 conv, affine coupling with a
3x3 -> 1x1 -> 3x3 network of the given width), split priors between levels,
the same batch of dequantized images, the same tf_keras Adam, one
`tf.function` training step each (forward + backward + optimizer). After a
warm-up, the two steps are timed interleaved A B A B, and the medians and the
ratio tfp_glow / tfb.Glow are printed, for tfp_glow in float32 and in mixed
bfloat16 (`compute_dtype=tf.bfloat16`; tfb.Glow in float32 both times), with
each step's trace time and graph size (ops, gradient bodies included); the
CPU model and its bf16/AMX flags come first. Threads: as `tfp-glow` runs,
one thread per op and one op per core (`tfp_glow.configure_cpu_threads`),
each batch as one chunk per core for both models (`--cpu-threads 0`:
TensorFlow's default threading, one chunk). Peak memory is measured in a fresh
process per model that builds it and runs a few training steps: the peak of
TensorFlow's CPU allocator over the steps (all tensors) and the peak resident
set; it is also measured for tfp_glow with gradient checkpointing
(`recompute_gradients=True`).

    python benchmarks/benchmark.py                     # mnist and cifar-small
    python benchmarks/benchmark.py --cpu-threads 0     # TensorFlow's threads
    python benchmarks/benchmark.py --configs cifar-paper --memory-only
    python benchmarks/benchmark.py --budget-seconds 300   # held-out bits/dim
    python benchmarks/benchmark.py --ceiling             # the bound on the ratio
    python benchmarks/benchmark.py --trace --configs cifar-paper  # graph size
    python benchmarks/benchmark.py --profile             # where the time goes
    python benchmarks/benchmark.py --bf16-steps 1000     # bf16 vs float32, one run
    python benchmarks/benchmark.py --bf16-epochs 8 --seeds 3  # ... the main job's recipe

The budget mode trains both models on the offline MNIST default (28x28x1, the
mnist configuration) for the same wall-clock time each, with the same
optimizer (Adam 1e-3, 200 warmup steps, global-norm clipping at 5), and
prints held-out bits/dim of the 500 test digits side by side. The bf16 mode
trains tfp_glow in float32 and in mixed bfloat16 for the same number of steps
on the same batches and prints both held-out figures and their difference.
`--bf16-epochs N --seeds K` instead trains the main job's recipe (`tfp-glow
train`'s offline default, cosine decay to zero) for N epochs in float32 and
in bfloat16 with each seed 0 .. K-1 (same initial weights, batches and noise
per seed) and prints each pair, the mean paired difference with its standard
error over the seeds, and the float32 figures' spread: two trajectories that
differ only in rounding drift apart, so one pair cannot resolve a small gap.

The ceiling mode times a step of the coupling networks alone (forward,
backward, Adam, chained one after another as in the flow; no flow layer)
against tfb.Glow's whole step: a ratio no implementation of the architecture
on TensorFlow's CPU kernels can beat; once in float32 and once with the
networks' hidden layers in bfloat16 (the bound of `compute_dtype=bf16`).
It runs the networks as one chain of the whole batch, so it bounds a step of
TensorFlow's default threading: run it with `--cpu-threads 0`.

The trace mode builds each model's training step in a fresh process, once
with tf_keras' Adam (as the speed rows) and once with tfp_glow's FusedAdam
(Keras 3; one kernel per variable), and prints its graph ops and trace
seconds (the first step's time less the second's) side by side.

The profile mode runs tfp_glow's training step (float32, then bf16) under
TensorFlow's profiler and splits the ops' time into the networks (coupling and
split-prior convolutions, by their name scopes), the flow layers with their
log-dets, prior and loss, and the optimizer, against the step's wall time.

Speed claims come from this script's printed ratios, never from timed tests.
"""

import argparse
import functools
import json
import math
import resource
import subprocess
import sys
import time

import numpy as np

CONFIGS = {
    # name: (image_shape, levels, steps per level, width, batch)
    'mnist': ((28, 28, 1), 2, 8, 128, 64),
    'cifar-small': ((32, 32, 3), 3, 8, 128, 64),
    'cifar-paper': ((32, 32, 3), 3, 32, 512, 64),
}


MODELS = ('tfp_glow', 'tfb.Glow')
# Speed rows: float32 and mixed bfloat16 (`compute_dtype=tf.bfloat16`) side
# by side, each against tfb.Glow's float32 step.
SPEED_MODELS = ('tfp_glow', 'tfp_glow bf16', 'tfb.Glow')
MEMORY_MODELS = MODELS + ('tfp_glow+recompute',)
# The trace rows' optimizers (see `trace`).
TRACE_OPTIMIZERS = ('tf_keras Adam', 'FusedAdam')


def forward_gflop(config):
  """Multiply-adds x 2 of one image's forward pass, per openai/glow's model.

  Counts every convolution and matmul: per step the coupling network (3x3
  from half the channels to the width, 1x1, 3x3 to all channels) and the 1x1
  invertible convolution, per split the prior's 3x3 zero convolution.
  Elementwise work (ActNorm, coupling math) is left out: TensorFlow's graph
  profiler, which counts it, finds 1-2% more (tests/test_benchmark.py), and
  it also counts tfp_glow._conv's one-hot window sums (an implementation's
  multiplications by 0 and 1, not the model's).
  """
  (height, width, channels), levels, steps, hidden, _ = CONFIGS[config]
  macs = 0
  for level in range(levels):
    height, width, channels = height // 2, width // 2, channels * 4
    half = channels // 2
    step = (9 * half * hidden + hidden * hidden + 9 * hidden * channels
            + channels * channels)
    macs += height * width * steps * step
    if level < levels - 1:
      macs += height * width * 9 * half * channels
      channels = half
  return 2 * macs / 1e9


def _build(name, config):
  """Returns `(distribution, preprocess)` of model `name` at `config`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tfp_glow  # pylint: disable=g-import-not-at-top
  tfb, tfd = tfp.bijectors, tfp.distributions
  shape, levels, steps, width, _ = CONFIGS[config]
  if name.startswith('tfp_glow'):
    return tfp_glow.Glow(shape, num_levels=levels, num_steps=steps,
                         hidden_channels=width, seed=0,
                         recompute_gradients=name.endswith('+recompute'),
                         compute_dtype=(tf.bfloat16 if name.endswith(' bf16')
                                        else None),
                         ), tf.identity
  glow = tfb.Glow(
      output_shape=shape, num_glow_blocks=levels, num_steps_per_block=steps,
      coupling_bijector_fn=functools.partial(tfb.GlowDefaultNetwork,
                                             num_hidden=width),
      exit_bijector_fn=tfb.GlowDefaultExitNetwork,
      grab_after_block=(0.5,) * (levels - 1) + (0.,), seed=0)
  base = tfd.Sample(tfd.Normal(0., 1.), glow.inverse_event_shape(shape))
  # tfb.Glow works on the real line: feed it openai's x / 256 - 0.5.
  return tfd.TransformedDistribution(base, glow), lambda x: x / 256.0 - 0.5


def _batch(config):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shape, *_, batch = CONFIGS[config]
  pixels = tf.floor(tf.random.stateless_uniform((batch,) + shape, (0, 1), 0.,
                                                256.))
  return pixels + tf.random.stateless_uniform(pixels.shape, (2, 3))


def _optimizer(kind='tf_keras Adam'):
  """Adam 1e-4 for a training step: tf_keras' stock Adam (the speed rows, for
  both models), or `'FusedAdam'`, tfp_glow's Keras 3 Adam with one fused
  kernel per variable (what `tfp_glow.GlowModel` trains with)."""
  if kind == 'FusedAdam':
    from tfp_glow.training import optimizers  # pylint: disable=g-import-not-at-top
    return optimizers.FusedAdam(1e-4)
  import tf_keras  # pylint: disable=g-import-not-at-top
  return tf_keras.optimizers.Adam(1e-4)


def _nll(dist, preprocess, x):
  """Mean -log p(x) of a batch, as one independent chunk per core where each
  op runs on one thread (`tfp_glow.training.chunks`; the same for every
  model), else as one chain."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  from tfp_glow.training import chunks  # pylint: disable=g-import-not-at-top

  def nll(x):
    per_image = -dist.log_prob(preprocess(x))
    return tf.reduce_mean(per_image), per_image

  return chunks.over_chunks(nll, _hardware.auto_batch_chunks(), x)[0]


def _train_step(dist, preprocess, num_dims, optimizer='tf_keras Adam'):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  optimizer = _optimizer(optimizer)
  variables = dist.trainable_variables
  optimizer.build(variables)  # Else the first call traces twice (new slots).

  @tf.function
  def step(x):
    with tf.GradientTape() as tape:
      loss = _nll(dist, preprocess, x) / (num_dims * math.log(2.0))
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return step


def _sampler(name, dist, batch):
  """A traced `sample(batch)`. tfp_glow's `Glow.sample` maps one chain per
  core itself (under one thread per op); tfb.Glow gets the same chains here,
  one `sample` call each, so both models run on both cores."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  sizes = _hardware.chunk_sizes(batch, _hardware.auto_batch_chunks())

  @tf.function
  def sample():
    if name.startswith('tfp_glow') or len(sizes) == 1:
      return dist.sample(batch, seed=(1, 2))
    return tf.concat([dist.sample(size, seed=(1, 2 + i))
                      for i, size in enumerate(sizes)], 0)

  return sample


def _initialize(name, dist, preprocess, x):
  if name.startswith('tfp_glow'):
    dist.initialize(x)
  else:
    dist.log_prob(preprocess(x))  # tfb.Glow's ActNorm inits on first call.


def _time(fn, arg, calls):
  start = time.perf_counter()
  for _ in range(calls):
    out = fn(arg) if arg is not None else fn()
  np.asarray(out)
  return time.perf_counter() - start


def machine():
  """The CPU model, its bf16/AMX flags and the load: ratios differ by CPU."""
  import os  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
  load = ', '.join(f'{v:.2f}' for v in os.getloadavg())
  threading = tf.config.threading
  return {'cpu': _hardware.cpu_model(), 'logical cores': os.cpu_count(),
          'bf16/AMX flags': ' '.join(_hardware.bf16_flags()) or 'none',
          "compute_dtype='auto' picks": _hardware.describe_auto(),
          'threads (intra-op, inter-op; 0: default)': (
              threading.get_intra_op_parallelism_threads(),
              threading.get_inter_op_parallelism_threads()),
          'chunks per batch': _hardware.auto_batch_chunks(),
          'load average (1, 5, 15 min)': load}


def graph_ops(step, x):
  """Ops of a traced step: its graph's nodes plus its function library's
  (gradient and loop bodies), from the public GraphDef."""
  graph_def = step.get_concrete_function(x).graph.as_graph_def()
  return len(graph_def.node) + sum(len(f.node_def)
                                   for f in graph_def.library.function)


def speed(config, repeats, calls):
  """Interleaved training and sampling throughput; returns a result dict."""
  shape, *_, batch = CONFIGS[config]
  x = _batch(config)
  models = {name: _build(name, config) for name in SPEED_MODELS}
  result = {'config': config, 'batch': batch,
            'forward GFLOP per image': forward_gflop(config)}
  steps, samplers = {}, {}
  for name, (dist, preprocess) in models.items():
    _initialize(name, dist, preprocess, x)
    result[f'{name} params'] = int(sum(np.prod(v.shape)
                                       for v in dist.trainable_variables))
    steps[name] = _train_step(dist, preprocess, math.prod(shape))
    samplers[name] = _sampler(name, dist, batch)
    start = time.perf_counter()
    steps[name](x)
    result[f'{name} first step s (trace)'] = time.perf_counter() - start
    result[f'{name} graph ops'] = graph_ops(steps[name], x)
    samplers[name]()
    _time(steps[name], x, 2)
  train = {name: [] for name in models}
  sample = {name: [] for name in models}
  for _ in range(repeats):  # A B A B ...
    for name in models:
      train[name].append(calls * batch / _time(steps[name], x, calls))
      sample[name].append(calls * batch / _time(samplers[name], None, calls))
  for kind, figures in (('train', train), ('sample', sample)):
    for name, values in figures.items():
      result[f'{name} {kind} img/s'] = float(np.median(values))
    result[f'{kind} ratio'] = (result[f'tfp_glow {kind} img/s']
                               / result[f'tfb.Glow {kind} img/s'])
    result[f'bf16 {kind} ratio'] = (result[f'tfp_glow bf16 {kind} img/s']
                                    / result[f'tfb.Glow {kind} img/s'])
  return result


def trace_child(config, name, optimizer):
  """Runs in a fresh process: model `name`'s training step under `optimizer`
  (a `TRACE_OPTIMIZERS` name): its graph ops, the seconds of its first call
  (Python trace, graph optimisation, one step) and of its second (one step).
  """
  x = _batch(config)
  dist, preprocess = _build(name, config)
  _initialize(name, dist, preprocess, x)
  step = _train_step(dist, preprocess, math.prod(CONFIGS[config][0]),
                     optimizer)
  seconds = [_time(step, x, 1) for _ in range(2)]
  return {'graph ops': graph_ops(step, x), 'first step s': seconds[0],
          'next step s': seconds[1]}


def _trace_in_subprocess(config, name, optimizer):
  out = subprocess.run(
      [sys.executable, __file__, '--trace-child', f'{name}|{optimizer}',
       '--configs', config, *_threads_flag()], capture_output=True,
      text=True, check=True)
  return json.loads(out.stdout.strip().splitlines()[-1])


def trace(config, child=_trace_in_subprocess):
  """Graph ops and trace seconds (first step minus the next) of each model's
  training step under each optimizer, each in a fresh process (`child`).

  The optimizer's ops are per variable (tf_keras Adam: 37 per variable;
  tfp_glow keeps 8 per flow step, tfb.Glow 9), so both optimizers are
  shown: the stock one, the same for both, and the fused one tfp_glow trains
  with, also applied to both.
  """
  from tfp_glow.training import _keras  # pylint: disable=g-import-not-at-top
  result = {'config': config}
  optimizers = (TRACE_OPTIMIZERS if not _keras.IS_LEGACY
                else TRACE_OPTIMIZERS[:1])  # FusedAdam needs Keras 3.
  for optimizer in optimizers:
    for name in MODELS:
      out = child(config, name, optimizer)
      print(f'{name}, {optimizer}: {out}', file=sys.stderr, flush=True)
      result[f'{name} {optimizer} graph ops'] = out['graph ops']
      result[f'{name} {optimizer} trace s'] = (out['first step s']
                                                - out['next step s'])
    for kind in ('graph ops', 'trace s'):
      result[f'{optimizer} {kind} ratio'] = (
          result[f'tfp_glow {optimizer} {kind}']
          / result[f'tfb.Glow {optimizer} {kind}'])
  return result


# Name scopes of the coupling and split-prior networks' ops (tfp_glow.nn's
# modules, and the custom gradients of tfp_glow._conv).
_NETWORK_SCOPES = ('glow_conditioner', 'zero_conv2d', 'constant_conv_grad',
                   'conv3x3_with_matmul_gradients_grad',
                   'bias_add_summed_in_float32_grad')
PROFILE_MODELS = ('tfp_glow', 'tfp_glow bf16')


def _part(op_name):
  """The part of a tfp_glow training step that op `op_name` belongs to."""
  if op_name.startswith('Adam') or '/Adam/' in op_name:
    return 'optimizer'
  if any(scope in op_name for scope in _NETWORK_SCOPES):
    return 'networks (couplings, split priors)'
  return 'flow layers, log-dets, prior, loss'


def _op_events(logdir):
  """`(op name, op type, seconds)` of each op the profile in `logdir` ran."""
  import glob  # pylint: disable=g-import-not-at-top
  # TensorFlow's own profile format; no public reader outside TensorBoard's
  # plugin, so the proto module shipped inside TensorFlow reads it.
  from tensorflow.tsl.profiler.protobuf import xplane_pb2  # pylint: disable=g-import-not-at-top
  space = xplane_pb2.XSpace()
  path, = glob.glob(f'{logdir}/**/*.xplane.pb', recursive=True)
  with open(path, 'rb') as f:
    space.ParseFromString(f.read())
  for plane in space.planes:
    for line in plane.lines:
      if not line.name.startswith('tf_Compute'):  # The inter-op threads.
        continue
      for event in line.events:
        name = plane.event_metadata[event.metadata_id].name
        if ':' in name and not name.endswith(':Process'):
          op_name, op_type = name.rsplit(':', 1)
          yield op_name, op_type, event.duration_ps * 1e-12


def profile(config, name='tfp_glow', steps=10):
  """Where a tfp_glow training step's time goes, from TensorFlow's profiler:
  the op time of each part (summed over the ops, ms per step), the step's
  wall time, and the op types that take longest."""
  import shutil  # pylint: disable=g-import-not-at-top
  import tempfile  # pylint: disable=g-import-not-at-top
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = _batch(config)
  dist, preprocess = _build(name, config)
  _initialize(name, dist, preprocess, x)
  step = _train_step(dist, preprocess, math.prod(CONFIGS[config][0]))
  _time(step, x, 3)  # Trace and warm up.
  logdir = tempfile.mkdtemp()
  try:
    tf.profiler.experimental.start(logdir)
    try:
      wall = _time(step, x, steps) / steps
    finally:  # Never leave the process profiling.
      tf.profiler.experimental.stop()
    parts, types = {}, {}
    for op_name, op_type, seconds in _op_events(logdir):
      part = _part(op_name)
      parts[part] = parts.get(part, 0.0) + seconds * 1e3 / steps
      types[op_type] = types.get(op_type, 0.0) + seconds * 1e3 / steps
  finally:
    shutil.rmtree(logdir, ignore_errors=True)
  total = sum(parts.values())
  result = {'config': config, 'model': name,
            'step wall ms (profiled)': wall * 1e3, 'op ms per step': total}
  for part, ms in sorted(parts.items(), key=lambda item: -item[1]):
    result[f'{part} ms'] = ms
    result[f'{part} share'] = ms / total
  result['longest op types, ms'] = {
      op_type: round(ms, 2)
      for op_type, ms in sorted(types.items(), key=lambda item: -item[1])[:8]}
  return result


def _coupling_nets_step(config, compute_dtype=None):
  """A training step of only the coupling networks of the tfp_glow model
  (their hidden layers in `compute_dtype`, as `Glow(compute_dtype=)` runs
  them).

  Each network gets an input of its coupling's shape and a fixed upstream
  gradient; the step computes the forward pass, the gradients for the input
  and the weights, and applies Adam. Within a level, each network's input
  depends on the previous network's output, as in the flow, so the networks
  run one after the other both ways. No flow layer, log-det or prior runs,
  so no implementation of this architecture on TensorFlow's kernels can
  train faster than this step.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top
  from tfp_glow import nn  # pylint: disable=g-import-not-at-top
  (height, width, channels), levels, steps, hidden, batch = CONFIGS[config]
  nets, inputs, upstream = [], [], []
  for level in range(levels):
    size = (height >> (level + 1), width >> (level + 1))
    half = 2 * channels * 2**level  # A coupling sees half of 4 C 2^level.
    for _ in range(steps):
      nets.append(nn.GlowConditioner(half, 2 * half, hidden_channels=hidden,
                                     seed=len(nets),
                                     compute_dtype=compute_dtype))
      inputs.append(tf.random.stateless_normal((batch, *size, half),
                                               (len(nets), 0)))
      upstream.append(tf.random.stateless_normal((batch, *size, 2 * half),
                                                 (len(nets), 1)))
  variables = [v for net in nets for v in net.trainable_variables]
  optimizer = tf_keras.optimizers.Adam(1e-4)
  optimizer.build(variables)

  @tf.function
  def step(xs):
    with tf.GradientTape() as tape:
      tape.watch(xs)
      outputs = []
      for k, (net, x) in enumerate(zip(nets, xs)):
        if k % steps:  # Depend on the previous network, as a flow does.
          x = x + 0.0 * outputs[-1][..., :x.shape[-1]]
        outputs.append(net(x))
    grads = tape.gradient(outputs, xs + variables, output_gradients=upstream)
    optimizer.apply_gradients(zip(grads[len(xs):], variables))
    return grads[0]

  return step, inputs


def ceiling(config, repeats, calls):
  """tfb.Glow's training step against the coupling networks' alone, in
  float32 and with bfloat16 hidden layers."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  shape, *_, batch = CONFIGS[config]
  x = _batch(config)
  dist, preprocess = _build('tfb.Glow', config)
  _initialize('tfb.Glow', dist, preprocess, x)
  steps = {'tfb.Glow': (_train_step(dist, preprocess, math.prod(shape)), x),
           'coupling nets alone': _coupling_nets_step(config),
           'coupling nets alone bf16': _coupling_nets_step(config,
                                                           tf.bfloat16)}
  for step, arg in steps.values():
    _time(step, arg, 3)  # Trace and warm up.
  rates = {name: [] for name in steps}
  for _ in range(repeats):
    for name, (step, arg) in steps.items():
      rates[name].append(calls * batch / _time(step, arg, calls))
  result = {'config': config, 'batch': batch}
  for name, values in rates.items():
    result[f'{name} train img/s'] = float(np.median(values))
  for suffix in ('', ' bf16'):
    result[f'largest possible{suffix} train ratio'] = (
        result[f'coupling nets alone{suffix} train img/s']
        / result['tfb.Glow train img/s'])
  return result


def peak_memory_child(config, name, steps):
  """Runs in a fresh process: peak memory (MiB) over `steps` training steps.

  Returns `(tensors, rss)`: the peak of TensorFlow's CPU allocator during the
  steps (its pool, which holds every tensor of 256 KiB or more: activations,
  gradients, optimizer temporaries; what a GPU's memory would have to hold)
  and the peak resident set of the process (adds the runtime, the traced
  graphs and the allocator's free pool).
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = _batch(config)
  dist, preprocess = _build(name, config)
  _initialize(name, dist, preprocess, x)
  step = _train_step(dist, preprocess, math.prod(CONFIGS[config][0]))
  tf.config.experimental.reset_memory_stats('CPU:0')
  for _ in range(steps):
    np.asarray(step(x))
  tensors = tf.config.experimental.get_memory_info('CPU:0')['peak']
  return (tensors / 2**20,
          resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0)


def peak_memory(config):
  """Peak tensor memory and peak RSS of each model, in fresh processes."""
  result = {}
  for name in MEMORY_MODELS:
    out = subprocess.run(
        [sys.executable, __file__, '--memory-child', name, '--configs', config,
         *_threads_flag()], capture_output=True, text=True, check=True)
    tensors, rss = json.loads(out.stdout.strip().splitlines()[-1])
    result[f'{name} peak tensor MiB'] = tensors
    result[f'{name} peak RSS MiB'] = rss
  for kind in ('tensor', 'RSS'):
    result[f'{kind} memory ratio'] = (result[f'tfp_glow peak {kind} MiB']
                                      / result[f'tfb.Glow peak {kind} MiB'])
    result[f'recompute {kind} memory ratio'] = (
        result[f'tfp_glow+recompute peak {kind} MiB']
        / result[f'tfp_glow peak {kind} MiB'])
  return result


def _warmup_adam(learning_rate=1e-3, warmup_steps=200, clip_norm=5.0):
  """The same optimizer for both models: Adam, linear warmup, clipping."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  import tf_keras  # pylint: disable=g-import-not-at-top

  class Warmup(tf_keras.optimizers.schedules.LearningRateSchedule):

    def __call__(self, step):
      fraction = (tf.cast(step, tf.float32) + 1.0) / warmup_steps
      return learning_rate * tf.minimum(1.0, fraction)

  return tf_keras.optimizers.Adam(Warmup(), global_clipnorm=clip_norm)


def _held_out_bpd(name, dist, preprocess, test_images):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  x = tf.cast(test_images, tf.float32) + tf.random.stateless_uniform(
      test_images.shape, (9, 9))
  log_prob = tf.concat([dist.log_prob(preprocess(b))
                        for b in tf.split(x, 10)], axis=0)
  # tfb.Glow sees x / 256 - 0.5: add its log-det back, +8 bits per dim.
  shift = 0.0 if name.startswith('tfp_glow') else 8.0
  num_dims = math.prod(test_images.shape[1:])
  return float(tf.reduce_mean(-log_prob / (num_dims * math.log(2.0)))) + shift


def _budget_step(dist, preprocess, optimizer):
  """A traced training step of `dist`, captured (a Glow is no argument)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  variables = dist.trainable_variables

  @tf.function
  def step(images):
    # Noise keyed on the step: every model sees the same noise.
    seed = tf.stack([7, tf.cast(optimizer.iterations, tf.int32)])
    x = tf.cast(images, tf.float32) + tf.random.stateless_uniform(
        tf.shape(images), seed)
    with tf.GradientTape() as tape:
      loss = _nll(dist, preprocess, x)
    optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
    return loss

  return step


def budget(seconds=None, steps=None, models=MODELS):
  """Trains each model for `seconds` (or `steps` steps) on offline MNIST, the
  same batches and noise for each; held-out bits/dim."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tfp_glow import data  # pylint: disable=g-import-not-at-top
  from tfp_glow.data import offline  # pylint: disable=g-import-not-at-top
  test_images, _ = offline.arrays('test')
  train = data.load(data.OFFLINE, 'train', batch_size=64, shuffle=True,
                    seed=0, epochs=None, drop_remainder=True)
  result = {'budget s': seconds} if steps is None else {'budget steps': steps}
  for name in models:
    dist, preprocess = _build(name, 'mnist')
    batches = iter(train)
    first = tf.cast(next(batches), tf.float32)
    _initialize(name, dist, preprocess,
                first + tf.random.stateless_uniform(first.shape, (5, 5)))
    step = _budget_step(dist, preprocess, _warmup_adam())
    step(first)  # Trace outside the budget.
    start, done, reported = time.perf_counter(), 0, time.perf_counter()
    while (time.perf_counter() - start < seconds if steps is None
           else done < steps):
      loss = step(next(batches))
      done += 1
      if time.perf_counter() - reported > 30:  # Progress, on stderr.
        reported = time.perf_counter()
        print(f'{name}: {done} steps in {reported - start:.0f} s, loss '
              f'{float(loss):.3f} nats/image', file=sys.stderr, flush=True)
    result[f'{name} steps'] = done
    result[f'{name} seconds'] = time.perf_counter() - start
    result[f'{name} held-out bits/dim'] = _held_out_bpd(
        name, dist, preprocess, test_images)
  return result


def bf16_quality(epochs, seeds, preset='mnist_offline', train=None):
  """Held-out bits/dim of the `preset`'s recipe for `epochs` epochs in
  float32 and in bfloat16, paired by seed (`tasks.train`, a fresh run
  directory each); one JSON line per run on stdout as it ends."""
  import tempfile  # pylint: disable=g-import-not-at-top
  from tfp_glow import presets  # pylint: disable=g-import-not-at-top
  from tfp_glow import tasks  # pylint: disable=g-import-not-at-top
  train = train or tasks.train
  figures = {'float32': [], 'bfloat16': []}
  for seed in range(seeds):
    for dtype, values in figures.items():
      config = presets.get(preset, epochs=epochs, seed=seed,
                           compute_dtype=dtype)
      start = time.perf_counter()
      with tempfile.TemporaryDirectory() as run_dir:
        result = train(run_dir, config, verbose=0)
      values.append(result.evaluation.bits_per_dim)
      print(json.dumps({'seed': seed, 'compute dtype': dtype,
                        'held-out bits/dim': values[-1],
                        'seconds': time.perf_counter() - start}), flush=True)
  differences = np.subtract(figures['bfloat16'], figures['float32'])
  spread = float(np.std(figures['float32'], ddof=1)) if seeds > 1 else None
  return {'preset': preset, 'epochs': epochs, 'seeds': seeds,
          'float32 held-out bits/dim': figures['float32'],
          'bf16 held-out bits/dim': figures['bfloat16'],
          'bf16 - float32 mean': float(differences.mean()),
          'bf16 - float32 standard error': (
              float(np.std(differences, ddof=1) / math.sqrt(seeds))
              if seeds > 1 else None),
          'float32 std over seeds': spread}


def _configure_threads(num_threads):
  """As `tfp-glow` runs (`tfp_glow.configure_cpu_threads`); 0: TensorFlow's
  default threading. Before TensorFlow runs any op."""
  if num_threads != 0:
    from tfp_glow import _hardware  # pylint: disable=g-import-not-at-top
    _hardware.configure_cpu_threads(num_threads)


def _threads_flag():
  """The `--cpu-threads` a child process runs with: this process's threads."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  threading = tf.config.threading
  if threading.get_intra_op_parallelism_threads() != 1:
    return ['--cpu-threads', '0']
  return ['--cpu-threads', str(threading.get_inter_op_parallelism_threads())]


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--configs', default='mnist,cifar-small',
                      help=f'comma-separated, of {sorted(CONFIGS)}')
  parser.add_argument('--repeats', type=int, default=5,
                      help='interleaved timing rounds per model')
  parser.add_argument('--calls', type=int, default=5,
                      help='training steps (or sample calls) per round')
  parser.add_argument('--no-memory', action='store_true',
                      help='skip the peak-memory subprocesses')
  parser.add_argument('--memory-only', action='store_true',
                      help='only the peak-memory subprocesses (no timing)')
  parser.add_argument('--budget-seconds', type=float,
                      help='instead of speed: train each model this long on '
                      'offline MNIST and print held-out bits/dim')
  parser.add_argument('--bf16-steps', type=int, metavar='N',
                      help='instead of speed: train tfp_glow in float32 and '
                      'in bfloat16 for N steps each on offline MNIST (same '
                      'batches and noise) and print both held-out bits/dim')
  parser.add_argument('--bf16-epochs', type=int, metavar='N',
                      help='instead of speed: train the main job\'s recipe '
                      'for N epochs in float32 and in bfloat16 per seed and '
                      'print the paired held-out bits/dim')
  parser.add_argument('--seeds', type=int, default=3, metavar='K',
                      help='seeds 0 .. K-1 of --bf16-epochs (default 3)')
  parser.add_argument('--ceiling', action='store_true',
                      help='instead of speed: time only the coupling networks '
                      '(forward, backward, Adam) against tfb.Glow\'s whole step')
  parser.add_argument('--trace', action='store_true',
                      help='instead of speed: graph ops and trace seconds of '
                      'each model\'s step under tf_keras Adam and tfp_glow\'s '
                      'FusedAdam, each in a fresh process')
  parser.add_argument('--profile', action='store_true',
                      help='instead of speed: profile tfp_glow\'s float32 and '
                      'bf16 steps and print the op time of the networks, the '
                      'flow layers and the optimizer')
  parser.add_argument('--cpu-threads', type=int, metavar='N',
                      help='one thread per op, N ops at once, each batch as '
                      'N chunks (default: the cores, as tfp-glow runs); 0: '
                      'TensorFlow\'s default threading, one chunk')
  parser.add_argument('--memory-child', help=argparse.SUPPRESS)
  parser.add_argument('--trace-child', help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.cpu_threads is not None and args.cpu_threads < 0:
    parser.error(f'--cpu-threads: must be >= 0; got {args.cpu_threads}')
  _configure_threads(args.cpu_threads)
  configs = args.configs.split(',')
  for config in configs:
    if config not in CONFIGS:
      parser.error(f'--configs: unknown {config!r}; choose from '
                   f'{sorted(CONFIGS)}')
  if args.memory_child:
    print(json.dumps(peak_memory_child(configs[0], args.memory_child, 3)))
    return
  if args.trace_child:
    print(json.dumps(trace_child(configs[0], *args.trace_child.split('|'))))
    return
  print(json.dumps(machine(), indent=2), flush=True)
  if args.profile:
    for config in configs:
      for name in PROFILE_MODELS:
        print(json.dumps(profile(config, name), indent=2), flush=True)
    return
  if args.trace:
    for config in configs:
      print(json.dumps(trace(config), indent=2), flush=True)
    return
  if args.ceiling:
    for config in configs:
      print(json.dumps(ceiling(config, args.repeats, args.calls), indent=2),
            flush=True)
    return
  if args.budget_seconds:
    print(json.dumps(budget(args.budget_seconds), indent=2))
    return
  if args.bf16_epochs:
    if args.seeds < 1:
      parser.error(f'--seeds: must be >= 1; got {args.seeds}')
    print(json.dumps(bf16_quality(args.bf16_epochs, args.seeds), indent=2))
    return
  if args.bf16_steps:
    result = budget(steps=args.bf16_steps, models=('tfp_glow', 'tfp_glow bf16'))
    result['bf16 - float32 bits/dim'] = (
        result['tfp_glow bf16 held-out bits/dim']
        - result['tfp_glow held-out bits/dim'])
    print(json.dumps(result, indent=2))
    return
  if args.no_memory and args.memory_only:
    parser.error('--no-memory and --memory-only exclude each other')
  for config in configs:
    result = ({'config': config,
               'forward GFLOP per image': forward_gflop(config)}
              if args.memory_only
              else speed(config, args.repeats, args.calls))
    if not args.no_memory:
      result.update(peak_memory(config))
    print(json.dumps(result, indent=2), flush=True)


if __name__ == '__main__':
  main()
