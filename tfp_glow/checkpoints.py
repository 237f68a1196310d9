"""Restoring checkpoints strictly, those of tfp_glow 0.1's layout included.

tfp_glow 0.1 kept more, smaller variables: an ActNorm's `loc` and
`log_scale`, the LU convolution's `lower`, `upper` and `log_s`, a zero
convolution's `bias` and `logs`, each alone. Now each group is one variable
(`loc_and_log_scale`, `lu`, `bias_and_logs`): a step's optimizer work and
its trace grow with the number of variables, not their size. `restore`
reads both layouts. For a 0.1 checkpoint it gives each layer, for the
restore only, plain variables under the old names, so that TensorFlow's own
object-graph matching fills them whatever path reaches the layer, then packs
them into the new variables exactly (a stack, or the triangles and diagonal
of one matrix).

A 0.1 checkpoint restores weights (`load_glow`, `load_dequantizer`,
evaluation, sampling); training cannot resume from one, since its optimizer
slots belong to the old variables.

>>> import os, tempfile
>>> from tfp_glow import Glow
>>> glow = Glow((8, 8, 1), num_levels=1, num_steps=1,
...                      hidden_channels=8, seed=0)
>>> path = tf.train.Checkpoint(glow=glow).write(
...     os.path.join(tempfile.mkdtemp(), 'ckpt'))
>>> same = Glow((8, 8, 1), num_levels=1, num_steps=1,
...                      hidden_channels=8, seed=1)
>>> restore(path, glow=same)
'current'
"""

import contextlib
from typing import Callable, Iterator, List, Sequence, Tuple

import numpy as np
import tensorflow as tf

from tfp_glow import nn
from tfp_glow.bijectors.actnorm import ActNorm
from tfp_glow.bijectors.invertible_conv1x1 import InvertibleConv1x1

__all__ = ['restore', 'holds', 'is_v01_checkpoint', 'check_resumable',
           'V01CheckpointError', 'load_v01_values']


class V01CheckpointError(ValueError):
  """A tfp_glow 0.1 checkpoint was used where only the current layout works."""


def _stack(parts):
  return tf.stack(parts)


def _pack_lu(parts):
  """L's strict lower triangle, U's strict upper one, log_s on the diagonal."""
  lower, upper, log_s = parts
  return tf.linalg.set_diag(
      tf.linalg.band_part(lower, -1, 0) + tf.linalg.band_part(upper, 0, -1),
      log_s)


def _split_shapes(shape):
  """`[2, C]` -> the old `[C]`, `[C]`."""
  return [shape[1:], shape[1:]]


# Layer class -> (new attribute, old attributes, old shapes from the new one,
# pack). Only layers with `lu_decomposed` get the LU entry (`_applies`).
_LAYOUTS = (
    (ActNorm, '_loc_and_log_scale', ('_loc', '_log_scale'), _split_shapes,
     _stack),
    (nn.ConvActNorm, 'loc_and_log_scale', ('loc', 'log_scale'), _split_shapes,
     _stack),
    (nn.ZeroConv2D, 'bias_and_logs', ('bias', 'logs'), _split_shapes, _stack),
    (InvertibleConv1x1, '_lu', ('_lower', '_upper', '_log_s'),
     lambda shape: [shape, shape, shape[:1]], _pack_lu),
)
# Attribute names only the current layout's checkpoints hold.
_CURRENT_NAMES = frozenset(layout[1] for layout in _LAYOUTS)
# Names of 0.1's ActNorms and networks (the top prior's `_log_scale` is in
# both layouts, so a checkpoint with a current name is current).
_V01_NAMES = frozenset(name for layout in _LAYOUTS for name in layout[2])


def _object_graph(path: str):
  """The checkpoint's object graph: every trackable and every edge.

  Not the variables' keys: a key names one path to a variable, the shortest,
  which for a training checkpoint runs through the optimizer
  (`optimizer/_trainable_variables/3/...`) and names no layer attribute.
  The object graph holds every edge. Its proto is the one private import
  here: TensorFlow has no public reader of a checkpoint's object graph.
  """
  # pylint: disable-next=g-direct-tensorflow-import
  from tensorflow.core.protobuf import trackable_object_graph_pb2
  graph = trackable_object_graph_pb2.TrackableObjectGraph()
  graph.ParseFromString(tf.train.load_checkpoint(path).get_tensor(
      '_CHECKPOINTABLE_OBJECT_GRAPH'))
  return graph


def _attribute_names(path: str) -> set:
  """Every attribute name on an edge of the checkpoint's object graph."""
  return {child.local_name for node in _object_graph(path).nodes
          for child in node.children}


def holds(path: str, name: str) -> bool:
  """True if the checkpoint's root has an object `name` (e.g. 'dequantizer')."""
  return any(child.local_name == name
             for child in _object_graph(path).nodes[0].children)


def is_v01_checkpoint(path: str) -> bool:
  """True if the checkpoint at `path` has tfp_glow 0.1's variable layout."""
  names = _attribute_names(path)
  return not names & _CURRENT_NAMES and bool(names & _V01_NAMES)


def _layers(objects) -> Iterator[Tuple[tf.Module, Tuple]]:
  """Every layer of `objects` whose layout changed, once, with its entry."""
  seen = set()
  for obj in objects.values():
    modules = [obj] + list(getattr(obj, 'submodules', ()))
    for module in modules:
      for layout in _LAYOUTS:
        if (isinstance(module, layout[0]) and id(module) not in seen
            and hasattr(module, layout[1])):
          seen.add(id(module))
          yield module, layout


@contextlib.contextmanager
def _v01_attributes(objects) -> Iterator[Callable[[], None]]:
  """Gives every changed layer its 0.1 variables instead of the new one.

  Yields `pack()`, which writes the old variables' values into the new
  ones. On exit every layer has its new variable back, and no old one.
  """
  changed: List[Tuple[tf.Module, str, tf.Variable, Tuple[str, ...],
                      Callable]] = []
  try:
    for module, (_, new, old, shapes, pack) in _layers(objects):
      variable = getattr(module, new)
      delattr(module, new)
      changed.append((module, new, variable, old, pack))
      for name, shape in zip(old, shapes(variable.shape)):
        setattr(module, name, tf.Variable(tf.zeros(shape, variable.dtype),
                                          name=name.lstrip('_')))

    def pack():
      for module, _, variable, old, pack_fn in changed:
        variable.assign(pack_fn([getattr(module, name) for name in old]))

    yield pack
  finally:
    for module, new, variable, old, _ in changed:
      for name in old:
        if name in vars(module):
          delattr(module, name)
      setattr(module, new, variable)


def restore(path: str, **objects) -> str:
  """Restores `objects` (as `tf.train.Checkpoint(**objects)`) from `path`.

  Strict: every variable of `objects` must be in the checkpoint (extra
  objects in it, such as an optimizer, are ignored), so a checkpoint of a
  different model raises instead of leaving variables at their initial
  values. A tfp_glow 0.1 checkpoint is converted on the way.

  Args:
    path: a checkpoint prefix, e.g. `tf.train.latest_checkpoint(folder)`.
    **objects: the trackables to restore, under their names in the
      checkpoint (e.g. `glow=`, `dequantizer=`).

  Returns:
    `'current'` or `'v0.1'`: the layout the checkpoint had.

  Raises:
    ValueError: if the checkpoint does not hold every variable of
      `objects`; the message names the checkpoint and TensorFlow's report.
  """
  v01 = is_v01_checkpoint(path)
  with contextlib.ExitStack() as stack:
    pack = stack.enter_context(_v01_attributes(objects)) if v01 else None
    # `read`, not `restore`: it expects no `save_counter` (`write` has none).
    status = tf.train.Checkpoint(**objects).read(path)
    status.expect_partial()  # Extra objects are fine; missing ones are not:
    try:
      status.assert_existing_objects_matched()
    except AssertionError as e:
      layout = "tfp_glow 0.1's" if v01 else 'the current'
      raise ValueError(
          f'The checkpoint {path} (in {layout} variable layout) does not '
          f'match {", ".join(sorted(objects))}: was it written for another '
          f'configuration? TensorFlow reports: {str(e)[:600]}') from e
    if pack is not None:
      pack()
  return 'v0.1' if v01 else 'current'


def load_v01_values(modules: Sequence[tf.Module],
                    values: Sequence[np.ndarray]) -> bool:
  """Loads `values`, 0.1's `variables` of `modules` in order, if they are.

  What a `.keras` or `.weights.h5` file of tfp_glow 0.1 holds: the values of
  `[v for m in modules for v in m.variables]` as 0.1 laid them out. Under
  the old attributes the modules list their variables in 0.1's order (a
  `tf.Module` lists its attributes sorted by name), so the values are
  assigned there, then packed into the new variables.

  Args:
    modules: the `tf.Module`s whose variables were saved, in their order.
    values: one array per saved variable.

  Returns:
    True if `values` matched 0.1's variables of `modules` in number and
    shapes and were loaded; False (nothing changed) otherwise.
  """
  with _v01_attributes(dict(enumerate(modules))) as pack:
    old = [v for module in modules for v in module.variables]
    if len(old) != len(values) or any(
        tuple(v.shape) != np.shape(value) for v, value in zip(old, values)):
      return False
    for variable, value in zip(old, values):
      variable.assign(value)
    pack()
  return True


def check_resumable(path: str) -> None:
  """Raises `V01CheckpointError` if `path` is a 0.1 checkpoint."""
  if is_v01_checkpoint(path):
    raise V01CheckpointError(
        f'{path} was written by tfp_glow 0.1, whose variables were laid out '
        'differently: its weights load (load_glow, evaluate, sample), but '
        'training cannot resume from it, since its optimizer state belongs to '
        'the old variables. Start a new run (e.g. from `load_glow` of it).')
