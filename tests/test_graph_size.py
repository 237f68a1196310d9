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
