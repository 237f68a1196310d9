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

__all__ = ['keras', 'IS_LEGACY']

# The same test as tensorflow/python/util/lazy_loader.py.
IS_LEGACY = os.environ.get('TF_USE_LEGACY_KERAS', None) in ('true', 'True', '1')

if IS_LEGACY:
  import tf_keras as keras  # pylint: disable=g-import-not-at-top
else:
  import keras  # pylint: disable=g-import-not-at-top
