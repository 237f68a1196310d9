"""`GlowModel` under MultiWorkerMirroredStrategy: two worker processes.

Each worker is a subprocess given a `TF_CONFIG` naming both (127.0.0.1 and
two free ports). The workers initialise the ActNorms from *different* images
(the model copies worker 0's values to every worker), then train on the same
global batches, each on its half. Checked: both finish, report the same
losses, end with bit-identical variables, match a single-process run at
step 0, and only worker 0 (the chief) writes sample grids.
"""

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import tensorflow as tf

import tfp_glow
from tfp_glow.training import model as gm

_TIMEOUT = 240  # Seconds per worker; the pair takes ~25 s on 2 busy cores.

_WORKER = textwrap.dedent('''
    import hashlib, json, os, sys
    import numpy as np
    import tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    import tfp_glow
    from tfp_glow.training import callbacks as glow_callbacks
    from tfp_glow.training import model as gm

    task = json.loads(os.environ['TF_CONFIG'])['task']['index']
    rng = np.random.default_rng(0)
    images = (rng.integers(0, 64, size=(64, 8, 8, 1)) + 96).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
    with strategy.scope():
      glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1,
                           hidden_channels=8, seed=0)
      model = gm.GlowModel(glow, init_batch_size=32)
      model.compile(gm.default_optimizer(1e-3, warmup_steps=5))
    # Worker t initialises from images [32 t, 32 t + 32): different data.
    model.initialize(images[32 * task:32 * task + 32])
    actnorm = hashlib.sha256(b''.join(
        v.numpy().tobytes() for v in glow.variables
        if v.name.endswith('act_norm/loc_and_log_scale:0')))
    step0 = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    grids = glow_callbacks.SampleGrid(sys.argv[1], num_samples=4,
                                      temperatures=(1.0,))
    history = model.fit(dataset, epochs=2, verbose=0, callbacks=[grids])
    weights = hashlib.sha256(b''.join(v.numpy().tobytes()
                                      for v in model.variables))
    print('RESULT' + json.dumps(dict(
        replicas=strategy.num_replicas_in_sync,
        actnorm=actnorm.hexdigest(), weights=weights.hexdigest(),
        step0=step0.history['loss'][0], loss=history.history['loss'],
        bpd=history.history['bits_per_dim'],
        iterations=int(model.optimizer.iterations.numpy()))), flush=True)
''')


def _free_ports(n):
  sockets = [socket.socket() for _ in range(n)]
  try:
    for s in sockets:
      s.bind(('127.0.0.1', 0))
    return [s.getsockname()[1] for s in sockets]
  finally:
    for s in sockets:
      s.close()


def _run_workers(tmp_path):
  cluster = {'worker': [f'127.0.0.1:{p}' for p in _free_ports(2)]}
  procs = []
  for index in range(2):
    env = dict(os.environ, TF_CONFIG=json.dumps(
        {'cluster': cluster, 'task': {'type': 'worker', 'index': index}}))
    procs.append(subprocess.Popen(
        [sys.executable, '-c', _WORKER, str(tmp_path / f'samples_{index}')],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
  outputs = []
  try:
    for proc in procs:
      outputs.append(proc.communicate(timeout=_TIMEOUT))
  finally:
    for proc in procs:
      if proc.poll() is None:
        proc.kill()
        proc.communicate()
  results = []
  for proc, (out, err) in zip(procs, outputs):
    lines = [l for l in out.splitlines() if l.startswith('RESULT')]
    assert proc.returncode == 0 and lines, err[-3000:]
    results.append(json.loads(lines[0][len('RESULT'):]))
  return results


def _single_process_step0():
  """Step-0 loss of the same model in one process, initialised as worker 0."""
  rng = np.random.default_rng(0)
  images = (rng.integers(0, 64, size=(64, 8, 8, 1)) + 96).astype(np.uint8)
  glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=1,
                       hidden_channels=8, seed=0)
  model = gm.GlowModel(glow, init_batch_size=32)
  model.compile(gm.default_optimizer(1e-3, warmup_steps=5))
  model.initialize(images[:32])
  dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
  return model.fit(dataset, epochs=1, steps_per_epoch=1,
                   verbose=0).history['loss'][0]


def test_multi_worker_mirrored_two_processes_train_identically(tmp_path):
  chief, other = _run_workers(tmp_path)
  assert chief['replicas'] == other['replicas'] == 2
  # Worker 1 initialised from other images, yet holds worker 0's ActNorms.
  assert chief['actnorm'] == other['actnorm']
  # Same losses on both workers, and the same weights bit for bit.
  assert chief['step0'] == other['step0']
  assert chief['loss'] == other['loss'] and chief['bpd'] == other['bpd']
  assert chief['weights'] == other['weights']
  assert chief['iterations'] == other['iterations'] == 1 + 2 * 4
  assert np.all(np.isfinite(chief['bpd']))
  # Each worker took its half of each global batch of 16, with its slice of
  # the global batch's noise: step 0 is the single-process step 0.
  np.testing.assert_allclose(chief['step0'], _single_process_step0(),
                             rtol=1e-6)
  # Only the chief writes sample grids.
  assert sorted(os.listdir(tmp_path / 'samples_0')) == [
      'epoch_001_t1.0.png', 'epoch_002_t1.0.png']
  assert not os.path.exists(tmp_path / 'samples_1')
