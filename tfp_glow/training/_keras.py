"""The Keras that `tfp_glow.model` builds on: Keras 3 or tf_keras.

TensorFlow picks its Keras once, at import time, from the environment variable
`TF_USE_LEGACY_KERAS`; this module makes the same choice so that a
`GlowModel` is always a model of the Keras that `tf.keras` names:

```none
TF_USE_LEGACY_KERAS in ('1', 'true', 'True')  ->  tf_keras (Keras 2)
otherwise                                     ->  keras (Keras 3)
```

The flavour cannot change inside a running process.
"""

import os
from typing import Any, Iterable, List

import tensorflow as tf

from tfp_glow import checkpoints

__all__ = ['keras', 'IS_LEGACY', 'GlowModelMixin', 'as_model_weights',
           'optimizer_is_built', 'register_serializable']

# The same test as tensorflow/python/util/lazy_loader.py.
IS_LEGACY = os.environ.get('TF_USE_LEGACY_KERAS', None) in ('true', 'True', '1')

if IS_LEGACY:
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
else:
  import keras  # pylint: disable=g-import-not-at-top


class GlowModelMixin:
  """What a Keras model holding a Glow needs from Keras.

  - Keras 3 does not track the tf.Variables of a `tf.Module` attribute; this
    makes those in `self._glow_variables` the model's: `weights`,
    `variables` (after the model's own, in a fixed order). tf_keras tracks
    them by itself.
  - Both Keras save a model's state in `.keras` and `.weights.h5` files
    through `save_own_variables` / `load_own_variables`, which know only the
    variables a layer created itself: these add the Glow's, as `glow_<i>` in
    the order of `glow.variables`; a file of tfp_glow 0.1, whose layers
    kept more variables, converts (`checkpoints.load_v01_values`).
  - Keras 3's `fit` all-reduces a batch of the data over the replicas to
    build an unbuilt model symbolically; under MultiWorkerMirroredStrategy
    that fails for uint8 images (collective ops have no uint8 kernel). The
    model using this mixin is built in `__init__` and its optimizer in
    `compile`, so that step is skipped.

  Put it first in the bases: `class M(GlowModelMixin, keras.Model)`.
  """

  if not IS_LEGACY:

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
      del iterator, data_batch  # Built in __init__ and compile.

    @property
    def weights(self):
      return _merge(super().weights, self._glow_variables)

    @property
    def variables(self):
      return _merge(super().variables, self._glow_variables)

  def save_own_variables(self, store: Any) -> None:
    super().save_own_variables(store)
    for i, variable in enumerate(self._glow_variables):
      store[f'glow_{i}'] = variable.numpy()

  def load_own_variables(self, store: Any) -> None:
    keys = list(store.keys())
    values = [store[f'glow_{i}'] for i in range(
        sum(k.startswith('glow_') for k in keys))]
    current = len(values) == len(self._glow_variables) and all(
        tuple(v.shape) == value.shape
        for v, value in zip(self._glow_variables, values))
    modules = [m for m in (self.glow, self.dequantizer) if m is not None]
    if not current and not checkpoints.load_v01_values(modules, values):
      raise ValueError(
          f'The weights file holds {len(values)} Glow variables; this model '
          f'has {len(self._glow_variables)} (and tfp_glow 0.1\'s layout of '
          'it another number or other shapes). Build the Glow with the '
          'configuration the weights were saved with.')
    super().load_own_variables(
        {k: store[k] for k in keys if not k.startswith('glow_')})
    if current:
      for variable, value in zip(self._glow_variables, values):
        variable.assign(value)


def as_model_weights(variables: Iterable[tf.Variable]) -> List[tf.Variable]:
  """`variables` (tf.Variables), ready to be weights of a Keras model.

  Keras 3 sums a model's weight-regularisation losses over its
  `trainable_weights`, those of nested models included, and reads
  `variable.regularizer` of each: a Keras variable has that attribute, a
  tf.Variable does not, so a user's model holding a `GlowModel` failed in
  `fit` with `AttributeError: 'ResourceVariable' object has no attribute
  'regularizer'`. This sets it to `None` (no regulariser, as for a Keras
  variable made without one) where it is missing; a public, duck-typed
  attribute that Keras itself sets on its variables. The other attributes
  that training reads are there already (`constraint` is a tf.Variable
  property) or read with a default (`overwrite_with_gradient`). Nothing to
  do under tf_keras, which collects regularisation losses from its layers
  instead.

  Args:
    variables: iterable of `tf.Variable`s.

  Returns:
    The variables, as a list (the same objects).
  """
  variables = list(variables)
  if not IS_LEGACY:
    for variable in variables:
      if not hasattr(variable, 'regularizer'):
        variable.regularizer = None
  return variables


def register_serializable(cls: type) -> type:
  """Registers `cls` for `.keras` files as `tfp_glow>ClassName`."""
  return keras.saving.register_keras_serializable(package='tfp_glow')(cls)


def _merge(first, second):
  """`first` followed by the elements of `second` not in it (by identity)."""
  seen = {id(v) for v in first}
  return list(first) + [v for v in second if id(v) not in seen]


def optimizer_is_built(optimizer: keras.optimizers.Optimizer) -> bool:
  """Whether a Keras 3 or tf_keras optimizer has created its variables."""
  return bool(getattr(optimizer, 'built', False) or
              getattr(optimizer, '_built', False))
