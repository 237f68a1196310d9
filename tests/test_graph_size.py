"""What keeps the traced training step small (issue 14: graph ops and trace time).

`benchmarks/benchmark.py` counts a step's graph ops against tfb.Glow's; these
tests pin the choices that count, each with the control that shows the check
can fail.
"""

import collections

import numpy as np
import tensorflow as tf

from tfp_glow import bijectors as gb


def _gradient_op_types(fn, variables):
  """Op types, with counts, of the traced gradient of `sum(fn() ** 2)`."""

  @tf.function
  def gradient():
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(fn() ** 2)
    return tape.gradient(loss, variables)

  graph_def = gradient.get_concrete_function().graph.as_graph_def()
  return collections.Counter(n.op for n in graph_def.node)


def test_lu_weight_permutes_rows_exactly_with_a_dense_gradient():
  conv = gb.InvertibleConv1x1(12, lu_decomposed=True, seed=3)
  lower, upper = (t.numpy() for t in conv._lu_factors())  # pylint: disable=protected-access
  perm = conv._permutation.numpy()  # pylint: disable=protected-access
  np.testing.assert_array_equal(conv.weight().numpy(), (lower @ upper)[perm])
  ops = _gradient_op_types(conv.weight, conv.trainable_variables)
  # A row gather's gradient is sparse; the matmuls turn it dense each time.
  assert ops['UnsortedSegmentSum'] == 0, ops

  def gathered():  # The control: the same matrix by a row gather.
    lower, upper = conv._lu_factors()  # pylint: disable=protected-access
    return tf.gather(tf.matmul(lower, upper), conv._permutation)  # pylint: disable=protected-access

  control = _gradient_op_types(gathered, conv.trainable_variables)
  assert control['UnsortedSegmentSum'] >= 1, control
  assert sum(control.values()) > sum(ops.values()) + 5


def _variables_per_step(build):
  """Trainable variables one more flow step adds (3 steps less 1, halved)."""
  one, three = (len(build(steps).trainable_variables) for steps in (1, 3))
  return (three - one) / 2


def test_a_flow_step_has_fewer_variables_than_tfb_glows():
  """An optimizer's work and a step's trace grow with the variables."""
  import tensorflow_probability as tfp  # pylint: disable=g-import-not-at-top
  import tfp_glow  # pylint: disable=g-import-not-at-top

  def ours(steps):
    return tfp_glow.Glow((8, 8, 1), num_levels=1, num_steps=steps,
                         hidden_channels=8, seed=0)

  def theirs(steps):
    tfb = tfp.bijectors
    glow = tfb.Glow(output_shape=(8, 8, 1), num_glow_blocks=1,
                    num_steps_per_block=steps, coupling_bijector_fn=(
                        lambda shape: tfb.GlowDefaultNetwork(shape, 8)),
                    exit_bijector_fn=tfb.GlowDefaultExitNetwork,
                    grab_after_block=(0.,), seed=0)
    glow.inverse(tf.zeros([1, 8, 8, 1]))  # Builds the Keras networks.
    return glow

  # ActNorm 1, LU 1, network 3 kernels + 2 ActNorms + the zero layer's
  # bias and logs (tfp_glow 0.1: 14).
  assert _variables_per_step(ours) == 8
  assert _variables_per_step(theirs) == 9
