"""benchmarks/benchmark.py runs end to end at a tiny size, and counts FLOPs
as TensorFlow's own graph profiler does. (No timing is asserted.)"""

import importlib.util
import pathlib

import pytest
import tensorflow as tf
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler import option_builder

_PATH = pathlib.Path(__file__).parents[1] / 'benchmarks' / 'benchmark.py'


@pytest.fixture(name='benchmark')
def _benchmark(monkeypatch):
  spec = importlib.util.spec_from_file_location('benchmark', _PATH)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  monkeypatch.setitem(module.CONFIGS, 'tiny', ((8, 8, 1), 2, 2, 16, 4))
  return module  # A fresh module per test: CONFIGS changes stay local.


def _graph_gflop(benchmark, config):
  """FLOPs of one image's `log_prob`, counted by TensorFlow's profiler, and
  those of its convolutions with constant one-hot kernels (tfp_glow._conv's
  window sums: the implementation's, not the model's)."""
  glow, _ = benchmark._build('tfp_glow', config)  # pylint: disable=protected-access
  shape = benchmark.CONFIGS[config][0]
  graph = tf.function(glow.log_prob).get_concrete_function(
      tf.TensorSpec((1,) + shape)).graph
  options = option_builder.ProfileOptionBuilder(
      option_builder.ProfileOptionBuilder.float_operation()).with_empty_output()
  counted = model_analyzer.profile(graph, options=options.build()).total_float_ops
  one_hot = sum(
      2 * op.outputs[0].shape.num_elements()
      * op.inputs[1].shape[:3].num_elements()
      for op in graph.get_operations()
      if op.type == 'Conv2D' and op.inputs[1].op.type == 'Const')
  return counted / 1e9, one_hot / 1e9


def test_forward_gflop_matches_the_graph_count(benchmark):
  # The graph also counts elementwise ops, which forward_gflop leaves out,
  # and the one-hot window sums (8% of the count here).
  counted, one_hot = _graph_gflop(benchmark, 'mnist')
  assert 0 < one_hot < 0.1 * counted
  model = counted - one_hot
  assert 0.97 * model < benchmark.forward_gflop('mnist') <= model


def test_speed_reports_both_models_and_their_ratio(benchmark):
  result = benchmark.speed('tiny', repeats=1, calls=1)
  for kind in ('train', 'sample'):
    ours, theirs = (result[f'{name} {kind} img/s'] for name in benchmark.MODELS)
    assert ours > 0 and theirs > 0
    assert result[f'{kind} ratio'] == pytest.approx(ours / theirs)
  assert result['tfp_glow params'] > 0 and result['tfb.Glow params'] > 0
  # The bf16 row: the same parameters, its own ratio against tfb.Glow.
  assert result['tfp_glow bf16 params'] == result['tfp_glow params']
  for kind in ('train', 'sample'):
    assert result[f'bf16 {kind} ratio'] == pytest.approx(
        result[f'tfp_glow bf16 {kind} img/s']
        / result[f'tfb.Glow {kind} img/s'])
  for name in benchmark.SPEED_MODELS:
    assert result[f'{name} graph ops'] > 100
    assert result[f'{name} first step s (trace)'] > 0


def test_graph_ops_count_the_gradient_bodies_too(benchmark):
  @tf.function
  def plain(x):
    return tf.reduce_sum(x * x)

  @tf.function
  def with_grad(x):
    with tf.GradientTape() as tape:
      tape.watch(x)
      y = plain(x)
    return tape.gradient(y, x)

  x = tf.ones([3])
  assert benchmark.graph_ops(with_grad, x) > benchmark.graph_ops(plain, x)


def test_trace_counts_each_model_under_both_optimizers(benchmark):
  result = benchmark.trace('tiny', child=benchmark.trace_child)  # In-process.
  for name in benchmark.MODELS:
    stock, fused = (result[f'{name} {optimizer} graph ops']
                    for optimizer in benchmark.TRACE_OPTIMIZERS)
    # One fused kernel per variable, where the stock Adam runs ~37 ops.
    assert 100 < fused < stock - 20 * 10
    assert isinstance(result[f'{name} FusedAdam trace s'], float)
  assert result['FusedAdam graph ops ratio'] == pytest.approx(
      result['tfp_glow FusedAdam graph ops']
      / result['tfb.Glow FusedAdam graph ops'])


def test_profile_splits_the_op_time_into_the_step_parts(benchmark):
  result = benchmark.profile('tiny', steps=2)
  parts = ('networks (couplings, split priors)',
           'flow layers, log-dets, prior, loss', 'optimizer')
  # Each part ran ops (the networks found by their name scopes).
  assert all(result[f'{part} ms'] > 0 for part in parts), result
  assert sum(result[f'{part} ms'] for part in parts) == pytest.approx(
      result['op ms per step'])
  assert result['longest op types, ms']


def test_machine_names_the_cpu_and_its_bf16_flags(benchmark):
  info = benchmark.machine()
  assert info['cpu'] and info['logical cores'] >= 1
  assert info["compute_dtype='auto' picks"].split()[0] in ('bfloat16',
                                                          'float32')
  assert isinstance(info['bf16/AMX flags'], str)


def test_ceiling_times_the_coupling_networks_alone(benchmark):
  result = benchmark.ceiling('tiny', repeats=1, calls=1)
  for suffix in ('', ' bf16'):
    assert result[f'largest possible{suffix} train ratio'] == pytest.approx(
        result[f'coupling nets alone{suffix} train img/s']
        / result['tfb.Glow train img/s'])


def test_memory_child_reports_tensor_and_resident_peaks(benchmark):
  # Big enough that hidden activations (512 KiB) go through the allocator's
  # pool, which counts tensors from 256 KiB up.
  benchmark.CONFIGS['small'] = ((16, 16, 1), 2, 1, 32, 64)
  tensors, rss = benchmark.peak_memory_child('small', 'tfp_glow', 1)
  assert 0.5 < tensors < rss


def test_budget_trains_each_model_the_same_steps(benchmark, monkeypatch):
  # The MNIST data at a tiny width; steps, not seconds, so nothing is timed.
  monkeypatch.setitem(benchmark.CONFIGS, 'mnist', ((28, 28, 1), 2, 1, 8, 64))
  result = benchmark.budget(steps=2, models=('tfp_glow', 'tfp_glow bf16'))
  for name in ('tfp_glow', 'tfp_glow bf16'):
    assert result[f'{name} steps'] == 2
    assert 0 < result[f'{name} held-out bits/dim'] < 16


def test_bf16_quality_pairs_float32_and_bf16_runs_by_seed(benchmark):
  from tfp_glow import presets, tasks  # pylint: disable=g-import-not-at-top
  configs = []

  def smoke_train(run_dir, config, **kwargs):  # The real training, tiny.
    configs.append(config)
    return tasks.train(run_dir, presets.smoke(config), **kwargs)

  result = benchmark.bf16_quality(epochs=1, seeds=2, train=smoke_train)
  assert [(c.seed, c.compute_dtype, c.epochs) for c in configs] == [
      (0, 'float32', 1), (0, 'bfloat16', 1),
      (1, 'float32', 1), (1, 'bfloat16', 1)]
  f32, bf16 = (result['float32 held-out bits/dim'],
               result['bf16 held-out bits/dim'])
  assert len(f32) == len(bf16) == 2 and all(0 < b < 16 for b in f32 + bf16)
  differences = [b - f for b, f in zip(bf16, f32)]
  assert result['bf16 - float32 mean'] == pytest.approx(sum(differences) / 2)
  assert result['bf16 - float32 standard error'] == pytest.approx(
      abs(differences[0] - differences[1]) / 2)
