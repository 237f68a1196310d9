"""Keras callbacks for training a `tfp_glow.GlowModel`."""

import warnings

from tfp_glow._keras import keras

__all__ = ['NonFiniteGuard']


class NonFiniteGuard(keras.callbacks.Callback):
  """Stops `fit` after a step whose loss or gradients were not finite.

  `GlowModel.train_step` never applies a non-finite update: it checks the loss
  and every gradient, skips the optimizer step if any is NaN or inf, and
  records what went wrong (the loss, or the first non-finite gradient and
  its variable). From then on it applies no update until the next `fit`. This
  callback reads that record after every batch; if it is set, it sets
  `model.stop_training`, keeps the message in `self.message` and issues a
  `RuntimeWarning` with it. The weights stay those of the last finite step.

  `GlowModel.fit` adds one automatically (first in the list) unless the
  callbacks already hold one.

  #### Examples

  ```python
  model.fit(dataset, epochs=10, callbacks=[NonFiniteGuard()])
  ```
  """

  def __init__(self):
    super().__init__()
    self.message = None

  def on_train_begin(self, logs=None):
    self.message = None

  def on_train_batch_end(self, batch, logs=None):
    message = self.model.nonfinite_message()
    if message is None:
      return
    self.message = f'Batch {batch}: {message}'
    self.model.stop_training = True
    warnings.warn(self.message, RuntimeWarning, stacklevel=2)
