"""`GlowModel` under tf_keras (`TF_USE_LEGACY_KERAS=1`): fit, evaluate,
checkpoints, and runs resumed by ModelCheckpoint and BackupAndRestore.

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

    def build(seed, num_steps=2):
      glow = tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=num_steps,
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

    # Interrupted at the start of epoch 2, resumed by ModelCheckpoint +
    # load_weights and by BackupAndRestore in models built with another seed.
    class Interrupt(keras.callbacks.Callback):
      def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
          raise RuntimeError('Interrupted.')

    def same_state(a, b):
      return all(np.array_equal(x.numpy(), y.numpy()) for x, y in
                 zip(a.variables + a.optimizer.variables(),
                     b.variables + b.optimizer.variables()))

    small = tf.data.Dataset.from_tensor_slices(images[:32]).batch(16)
    work = tempfile.mkdtemp()
    reference = build(0, num_steps=1)
    uninterrupted = reference.fit(small, epochs=2, verbose=0).history['loss']
    crashed = build(0, num_steps=1)
    try:
      crashed.fit(small, epochs=2, verbose=0, callbacks=[
          keras.callbacks.ModelCheckpoint(work + '/ckpt_{epoch}',
                                          save_weights_only=True),
          keras.callbacks.BackupAndRestore(work + '/backup'), Interrupt()])
    except RuntimeError:
      pass
    from_checkpoint = build(1, num_steps=1)
    from_checkpoint.load_weights(work + '/ckpt_1')
    checkpoint_loss = from_checkpoint.fit(
        small, initial_epoch=1, epochs=2, verbose=0).history['loss']
    from_backup = build(1, num_steps=1)
    backup_loss = from_backup.fit(small, epochs=2, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(work + '/backup')]).history['loss']
    resume = dict(
        uninterrupted=uninterrupted, checkpoint_loss=checkpoint_loss,
        backup_loss=backup_loss,
        checkpoint_state=same_state(reference, from_checkpoint),
        backup_state=same_state(reference, from_backup))

    print('RESULT' + json.dumps(dict(
        resume=resume,
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
  # Resumed runs continue exactly: same epoch-2 loss, weights and optimizer.
  resume = out['resume']
  assert len(resume['uninterrupted']) == 2
  assert resume['checkpoint_loss'] == resume['uninterrupted'][1:]
  assert resume['backup_loss'] == resume['uninterrupted'][1:]
  assert resume['checkpoint_state'] and resume['backup_state']
