"""tfp_glow: Glow (Kingma & Dhariwal, 2018) as TensorFlow Probability bijectors.

The package in tiers, lowest first; a module imports only its own tier and
those below it (`tests/test_layout.py` reads the imports and enforces it):

```none
`core`      _validation, vocabulary (the option names), _inputs (data rules),
            _context (context shapes, per-level resizing), images,
            _hardware (CPU/GPU bf16 units, compute_dtype='auto', CPU threads)
`layers`    bijectors/ (one Glow layer per module), nn (conditioner networks), _conv
`model`     flow (the multi-scale tfb.Chain), glow (the Glow distribution), _composite,
            dequantizer (Flow++'s variational q(u | x)), checkpoints (strict
            restores, tfp_glow 0.1's variable layout)
`data`      data/ (offline MNIST and TFDS pipelines)        } side by side: neither
`training`  training/ (GlowModel, optimizers, callbacks)    } imports the other
`edge`      tasks/, runs, presets, export, cli, and the v0.1 aliases model, callbacks
```
"""

from tfp_glow import bijectors
from tfp_glow import nn
from tfp_glow._hardware import configure_cpu_threads
from tfp_glow.export import export_saved_model
from tfp_glow.glow import Glow
from tfp_glow.training.model import GlowModel

__version__ = '0.1.0'

__all__ = ['Glow', 'GlowModel', 'bijectors', 'configure_cpu_threads',
           'export_saved_model', 'nn', '__version__']
