"""Writes tests/data/v01_run: a run directory in tfp_glow 0.1's variable layout.

Run it with tfp_glow 0.1 (the commit before the variable merge) as the
argument; the script imports tfp_glow from there, ahead of an editable
install of the current tree (whose import finder PYTHONPATH does not beat):

    git worktree add /tmp/v01 ae8dc7a
    python tests/data/make_v01_run.py /tmp/v01

It builds a small Glow (8x8x1, 2 levels x 2 steps, width 8: ActNorms, LU
1x1 convolutions, affine couplings, a split prior) and a variational
dequantizer, moves every trainable variable off its initial value (so that a
restore that misses one changes the numbers), and writes config.json, a
checkpoint of both with the optimizer that trains them, as `tfp-glow train`
writes one (its variables' shortest paths then run through the optimizer,
`optimizer/_trainable_variables/3/...`, and name no layer), model.keras (the
`GlowModel` holding both, saved by Keras), and expected.npz: images, u and what 0.1 computed of
them (`glow.log_prob(images + u)`, `dequantizer.log_prob(u, images)`).
"""

import os
import sys

if __name__ == '__main__' and len(sys.argv) == 2:  # Before tfp_glow imports.
  sys.meta_path[:] = [finder for finder in sys.meta_path
                      if 'editable' not in getattr(finder, '__name__', '')]
  sys.path.insert(0, os.path.abspath(sys.argv[1]))

import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import tfp_glow  # pylint: disable=wrong-import-position
from tfp_glow import runs
from tfp_glow.dequantizer import VariationalDequantizer
from tfp_glow.training import default_optimizer
from tfp_glow.training import GlowModel

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'v01_run')


def main():
  print('tfp_glow from', os.path.dirname(tfp_glow.__file__))
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                       hidden_channels=8, seed=0)
  dequantizer = VariationalDequantizer((8, 8, 1), num_steps=1,
                                                hidden_channels=8, seed=1)
  rng = np.random.default_rng(0)
  images = rng.integers(0, 256, (4, 8, 8, 1)).astype(np.float32)
  glow.initialize(images + 0.5)
  dequantizer.initialize(images, seed=(0, 1))
  for v in glow.trainable_variables + dequantizer.trainable_variables:
    v.assign_add(rng.normal(0.0, 0.05, v.shape).astype(np.float32))
  u = rng.uniform(0.05, 0.95, images.shape).astype(np.float32)
  os.makedirs(os.path.join(HERE, runs.CHECKPOINT_DIR), exist_ok=True)
  runs.write_config(HERE, glow, dequantizer=dequantizer)
  model = GlowModel(glow, dequantization='variational',
                    dequantizer=dequantizer)
  model.compile(default_optimizer(1e-3))
  model.optimizer.build(model.trainable_variables)
  runs.training_checkpoint(model, HERE).save(checkpoint_number=1)
  model.save(os.path.join(HERE, 'model.keras'))
  np.savez(os.path.join(HERE, 'expected.npz'), images=images, u=u,
           log_prob=glow.log_prob(images + u).numpy(),
           log_q=dequantizer.log_prob(u, images).numpy())


if __name__ == '__main__':
  main()
