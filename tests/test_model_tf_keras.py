"""`GlowModel` under tf_keras (`TF_USE_LEGACY_KERAS=1`).

TensorFlow fixes its Keras at import time, so the checks run in a fresh
Python process with the variable set, and report back as JSON.
"""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np

_SCRIPT = textwrap.dedent('''
    import json, tempfile
    import numpy as np
    import tensorflow as tf
    import tfp_glow
    from tfp_glow import model as gm
    from tfp_glow._keras import IS_LEGACY, keras

    def build(seed):
      glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                           hidden_channels=8, seed=seed)
      model = gm.GlowModel(glow, init_batch_size=32)
      model.compile(gm.default_optimizer(2e-3, warmup_steps=5))
      return model

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 64, size=(64, 8, 8, 1)) + 96).astype(np.uint8)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(16)
    model = build(0)
    glow_ids = {id(v) for v in model.glow.trainable_variables}
    history = model.fit(dataset, epochs=2, validation_data=dataset, verbose=0)
    result = model.evaluate(dataset, return_dict=True, verbose=0)

    path = tf.train.Checkpoint(model=model, optimizer=model.optimizer).write(
        tempfile.mkdtemp() + '/ckpt')
    other = build(1)
    other.optimizer.build(other.trainable_variables)
    tf.train.Checkpoint(model=other, optimizer=other.optimizer).read(path)
    x = tf.constant(images[:8], tf.float32) + 0.5
    same_log_prob = bool(np.array_equal(model(x).numpy(), other(x).numpy()))
    next_a = model.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    next_b = other.fit(dataset, epochs=1, steps_per_epoch=1, verbose=0)
    same_weights = all(np.array_equal(a.numpy(), b.numpy()) for a, b in
                       zip(model.glow.variables, other.glow.variables))
    print('RESULT' + json.dumps(dict(
        legacy=IS_LEGACY, keras_version=keras.__version__,
        glow_trainable=len(glow_ids),
        model_has_glow=glow_ids <= {id(v) for v in model.trainable_weights},
        model_trainable=len(model.trainable_weights),
        history={k: [float(x) for x in v]
                 for k, v in history.history.items()},
        evaluate={k: float(v) for k, v in result.items()},
        same_log_prob=same_log_prob,
        same_next_loss=next_a.history['loss'] == next_b.history['loss'],
        same_weights=same_weights)))
''')


def test_fit_evaluate_and_checkpoint_under_tf_keras():
  env = dict(os.environ, TF_USE_LEGACY_KERAS='1')
  proc = subprocess.run([sys.executable, '-c', _SCRIPT], env=env,
                        capture_output=True, text=True, timeout=300,
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  out = json.loads(lines[0][len('RESULT'):])
  assert out['legacy'] and out['keras_version'].startswith('2.')
  assert out['glow_trainable'] == 61
  assert out['model_has_glow'] and out['model_trainable'] == 61
  history = out['history']
  for key in ('loss', 'bits_per_dim', 'val_loss', 'val_bits_per_dim'):
    assert np.all(np.isfinite(history[key])), key
  assert history['bits_per_dim'][1] < history['bits_per_dim'][0]
  assert history['val_bits_per_dim'][1] < history['val_bits_per_dim'][0]
  assert set(out['evaluate']) == {'loss', 'bits_per_dim'}
  assert out['same_log_prob'] and out['same_next_loss'] and out['same_weights']
