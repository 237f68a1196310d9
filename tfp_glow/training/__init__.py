"""The Keras tier: `GlowModel` trains a `tfp_glow.Glow` with `compile`/`fit`.

```none
model.py         GlowModel: the loss, train/test steps, data init, fit
data_checks.py   the data rules every batch is checked against
context.py       the context of a conditional Glow: its rules, the encoder's spec
saving.py        get_config/from_config (.keras files) and export()
optimizers.py    default_optimizer (Adam/Adamax, warmup, clipping), LinearWarmup
guard.py         the non-finite guard of the step and its NonFiniteGuard callback
callbacks.py     SampleGrid (PNG and TensorBoard grids), NonFiniteGuard
noise.py         counter-based dequantization noise (same with and without XLA)
chunks.py        a batch's loss as independent chunks, one per CPU core
batches.py       images, labels, context of a batch; the init batch of fit's data
_keras.py        Keras 3 or tf_keras, and the workarounds Keras 3 needs
_distribute.py   tf.distribute helpers (replica offsets, broadcasting the init)
```
"""

from tfp_glow.training import callbacks
from tfp_glow.training.callbacks import SampleGrid
from tfp_glow.training.guard import NonFiniteGuard
from tfp_glow.training.model import GlowModel
from tfp_glow.training.optimizers import LinearWarmup
from tfp_glow.training.optimizers import default_optimizer

__all__ = ['GlowModel', 'LinearWarmup', 'NonFiniteGuard', 'SampleGrid',
           'callbacks', 'default_optimizer']
