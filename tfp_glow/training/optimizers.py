"""Optimizers for Glow: Adam or Adamax with linear warmup and clipping.

Under Keras 3, `default_optimizer` returns `FusedAdam` / `FusedAdamax`: Keras'
own Adam and Adamax (same variables, same checkpoints, the same update up to
float32 rounding: TF's kernels take `1 - float32(beta)`, 1.3e-5 relative off
Keras' `1 - beta` at 0.999) whose dense update of each variable is one fused TensorFlow kernel
(`ResourceApplyAdam` / `ResourceApplyAdaMax`, the kernels of TF's own
optimizers) instead of about 30 small ops, with the step's scalars (the
bias-correction powers, the cast rate) computed once per step instead of once
per variable. A Glow has hundreds of small variables (229 at the offline
default), so this takes ~6,400 ops out of a training step. tf_keras keeps its
stock Adam and Adamax.
"""

from typing import Optional, Union

import tensorflow as tf

from tfp_glow import _validation
from tfp_glow.training._keras import IS_LEGACY
from tfp_glow.training._keras import keras

__all__ = ['LinearWarmup', 'default_optimizer']
if not IS_LEGACY:
  __all__ += ['FusedAdam', 'FusedAdamax']

_OPTIMIZERS = ('adam', 'adamax')

TensorLike = tf.types.experimental.TensorLike


@keras.utils.register_keras_serializable(package='tfp_glow')
class LinearWarmup(keras.optimizers.schedules.LearningRateSchedule):
  """Learning rate rising linearly over the first `warmup_steps` steps.

  ```none
  lr(step) = learning_rate(step) * min(1, (step + 1) / warmup_steps)
  ```

  `step` counts optimizer steps (batches), not epochs, so the first update
  already uses a small but non-zero rate.

  Args:
    learning_rate: Python `float` > 0, or a `LearningRateSchedule` to warm up.
    warmup_steps: Python `int` >= 1.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> schedule = LinearWarmup(1e-3, warmup_steps=4)
  >>> [round(float(schedule(s)), 6) for s in range(5)]
  [0.00025, 0.0005, 0.00075, 0.001, 0.001]
  """

  def __init__(
      self,
      learning_rate: Union[float,
                           keras.optimizers.schedules.LearningRateSchedule],
      warmup_steps: int):
    super().__init__()
    if not isinstance(learning_rate,
                      keras.optimizers.schedules.LearningRateSchedule):
      learning_rate = _validation.positive_float('learning_rate', learning_rate)
    self.learning_rate = learning_rate
    self.warmup_steps = _validation.positive_int('warmup_steps', warmup_steps)

  def __call__(self, step: TensorLike) -> tf.Tensor:
    step = tf.cast(step, tf.float32)
    base = self.learning_rate
    base = base(step) if callable(base) else tf.constant(base, tf.float32)
    fraction = tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))
    return tf.cast(base, tf.float32) * fraction

  def get_config(self) -> dict:
    learning_rate = self.learning_rate
    if callable(learning_rate):
      learning_rate = keras.optimizers.schedules.serialize(learning_rate)
    return {'learning_rate': learning_rate, 'warmup_steps': self.warmup_steps}

  @classmethod
  def from_config(cls, config: dict) -> 'LinearWarmup':
    config = dict(config)
    if isinstance(config['learning_rate'], dict):
      config['learning_rate'] = keras.optimizers.schedules.deserialize(
          config['learning_rate'])
    return cls(**config)


if not IS_LEGACY:

  class _FusedUpdates:
    """Mixin of a Keras 3 optimizer whose dense updates are fused kernels.

    `apply` (Keras' public entry point, which `apply_gradients` calls) forgets
    the previous step's scalars; the first `update_step` of a step computes
    them, the others reuse them. Sparse (`tf.IndexedSlices`) gradients take
    Keras' own update.
    """

    _step_scalars = None

    def apply(self, grads, trainable_variables=None):
      self._step_scalars = {}
      try:
        return super().apply(grads, trainable_variables)
      finally:
        self._step_scalars = None

    def _scalars(self, learning_rate, dtype):
      """The per-step scalars of variables of `dtype` (cached per step)."""
      scalars = self._step_scalars
      if scalars is None:  # update_step called outside apply: no cache.
        return self._compute_scalars(learning_rate, dtype)
      if dtype not in scalars:
        scalars[dtype] = self._compute_scalars(learning_rate, dtype)
      return scalars[dtype]

    def _slots(self, variable):
      """The handles of `variable`'s two slot variables."""
      index = self._get_variable_index(variable)
      return tuple(slots[index].value.handle for slots in self._slot_lists())

  @keras.utils.register_keras_serializable(package='tfp_glow')
  class FusedAdam(_FusedUpdates, keras.optimizers.Adam):
    """Keras 3's `Adam`, each dense update one `ResourceApplyAdam` kernel.

    Takes `keras.optimizers.Adam`'s arguments; `amsgrad=True` takes Keras' own
    update. TF's kernel computes Keras' update: `m += (1 - b1) (g - m)`,
    `v += (1 - b2) (g^2 - v)`, `var -= lr sqrt(1 - b2^t) / (1 - b1^t) m /
    (sqrt(v) + eps)`.
    """

    def _slot_lists(self):
      return self._momentums, self._velocities

    def _compute_scalars(self, learning_rate, dtype):
      step = tf.cast(self.iterations + 1, dtype)
      beta_1 = tf.cast(self.beta_1, dtype)
      beta_2 = tf.cast(self.beta_2, dtype)
      return dict(beta1_power=tf.pow(beta_1, step),
                  beta2_power=tf.pow(beta_2, step),
                  lr=tf.cast(learning_rate, dtype), beta1=beta_1,
                  beta2=beta_2, epsilon=tf.cast(self.epsilon, dtype))

    def update_step(self, gradient, variable, learning_rate):
      if self.amsgrad or isinstance(gradient, tf.IndexedSlices):
        return super().update_step(gradient, variable, learning_rate)
      m, v = self._slots(variable)
      tf.raw_ops.ResourceApplyAdam(
          var=variable.handle, m=m, v=v,
          grad=tf.cast(gradient, variable.dtype),
          **self._scalars(learning_rate, variable.dtype))

  @keras.utils.register_keras_serializable(package='tfp_glow')
  class FusedAdamax(_FusedUpdates, keras.optimizers.Adamax):
    """Keras 3's `Adamax`, each dense update one `ResourceApplyAdaMax` kernel.

    Takes `keras.optimizers.Adamax`'s arguments. TF's kernel computes Keras'
    update: `m += (1 - b1) (g - m)`, `u = max(b2 u, |g|)`,
    `var -= lr / (1 - b1^t) m / (u + eps)`.
    """

    def _slot_lists(self):
      return self._m, self._u

    def _compute_scalars(self, learning_rate, dtype):
      step = tf.cast(self.iterations + 1, dtype)
      beta_1 = tf.cast(self.beta_1, dtype)
      return dict(beta1_power=tf.pow(beta_1, step),
                  lr=tf.cast(learning_rate, dtype), beta1=beta_1,
                  beta2=tf.cast(self.beta_2, dtype),
                  epsilon=tf.cast(self.epsilon, dtype))

    def update_step(self, gradient, variable, learning_rate):
      if isinstance(gradient, tf.IndexedSlices):
        return super().update_step(gradient, variable, learning_rate)
      m, u = self._slots(variable)
      tf.raw_ops.ResourceApplyAdaMax(
          var=variable.handle, m=m, v=u,
          grad=tf.cast(gradient, variable.dtype),
          **self._scalars(learning_rate, variable.dtype))


def default_optimizer(learning_rate: float = 1e-3, *, warmup_steps: int = 500,
                      clip_norm: Optional[float] = 5.0,
                      kind: str = 'adam') -> keras.optimizers.Optimizer:
  """Adam or Adamax with linear warmup and global-norm gradient clipping.

  Glow diverges for some seeds without warmup (openai/glow#37,
  y0ast/Glow-PyTorch#1); these defaults keep the first steps small and bound
  every update. `clip_norm` bounds the global norm of the gradient of the
  bits/dim loss.

  Args:
    learning_rate: Python `float` > 0, the rate after warmup.
      Default value: `1e-3` (the paper's).
    warmup_steps: Python `int` >= 1, optimizer steps of linear warmup.
      Default value: `500`.
    clip_norm: Python `float` > 0 or `None` (no clipping): the
      `global_clipnorm` of the optimizer. Default value: `5.0`.
    kind: `'adam'` or `'adamax'`. Default value: `'adam'`.

  Returns:
    A Keras optimizer of the Keras flavour in use.

  Raises:
    TypeError, ValueError: for a bad argument; the message names it.

  #### Examples

  >>> opt = default_optimizer(1e-3, warmup_steps=100, kind='adamax')
  >>> isinstance(opt, tf.keras.optimizers.Adamax)
  True
  """
  _validation.one_of('kind', kind, _OPTIMIZERS)
  if clip_norm is not None:
    clip_norm = _validation.positive_float('clip_norm', clip_norm)
  schedule = LinearWarmup(learning_rate, warmup_steps)
  if IS_LEGACY:
    cls = keras.optimizers.Adam if kind == 'adam' else keras.optimizers.Adamax
  else:
    cls = FusedAdam if kind == 'adam' else FusedAdamax
  return cls(learning_rate=schedule, global_clipnorm=clip_norm)
