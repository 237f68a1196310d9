"""The jobs of the examples and of `tfp-glow`: train, evaluate, sample, ...

Every example script and every `tfp-glow` subcommand is argument parsing
around one of these functions; they read and write run directories
(`tfp_glow.runs`). Three rooms: `run` (build, train, evaluate), `grids`
(PNG grids of samples, classes, super-resolution contexts, interpolations
and attribute edits) and `latents` (the latent arithmetic the grids use).

#### Examples

```python
from tfp_glow import presets, tasks
result = tasks.train('runs/mnist', presets.get('mnist_offline'))
result.evaluation.bits_per_dim, result.evaluation.standard_error
tasks.sample_grid('runs/mnist', 'runs/mnist/samples/t.png', (0.5, 0.8, 1.0))
# p(28x28 digit | its 7x7 box-downsampled version), 5 minutes of training:
sr = tasks.train('runs/sr', presets.get('mnist_super_resolution'),
                 max_seconds=300)
tasks.context_sample_grid('runs/sr', 'runs/sr/samples/sr.png')
```
"""

from tfp_glow.tasks.grids import CONTEXT_TEMPERATURES
from tfp_glow.tasks.grids import DEFAULT_TEMPERATURES
from tfp_glow.tasks.grids import class_sample_grid
from tfp_glow.tasks.grids import context_sample_grid
from tfp_glow.tasks.grids import interpolation_grid
from tfp_glow.tasks.grids import manipulation_grid
from tfp_glow.tasks.grids import sample_grid
from tfp_glow.tasks.latents import attribute_direction
from tfp_glow.tasks.latents import interpolate
from tfp_glow.tasks.latents import manipulate
from tfp_glow.tasks.run import Evaluation
from tfp_glow.tasks.run import TrainResult
from tfp_glow.tasks.run import bits_per_dim_draws
from tfp_glow.tasks.run import bits_per_dim_values
from tfp_glow.tasks.run import build_glow
from tfp_glow.tasks.run import build_model
from tfp_glow.tasks.run import evaluate
from tfp_glow.tasks.run import evaluate_run
from tfp_glow.tasks.run import train

__all__ = ['Evaluation', 'TrainResult', 'build_glow', 'build_model', 'train',
           'evaluate', 'bits_per_dim_values', 'bits_per_dim_draws',
           'evaluate_run', 'sample_grid',
           'class_sample_grid', 'context_sample_grid', 'interpolate',
           'interpolation_grid', 'attribute_direction', 'manipulate',
           'manipulation_grid',
           'DEFAULT_TEMPERATURES', 'CONTEXT_TEMPERATURES']
