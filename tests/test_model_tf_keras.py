"""`GlowModel` under tf_keras (`TF_USE_LEGACY_KERAS=1`): fit, evaluate,
checkpoints, runs resumed by ModelCheckpoint and BackupAndRestore; `.keras`
files reloaded in a fresh process, `export`, a user's model holding a
GlowModel, and the data checks (with and without XLA).

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
    from tfp_glow.training import model as gm
    from tfp_glow.training._keras import IS_LEGACY, keras

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
  assert out['glow_trainable'] == 36
  assert out['model_has_glow'] and out['model_trainable'] == 36
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


def _run(script, *args, legacy=True):
  env = dict(os.environ)
  if legacy:
    env['TF_USE_LEGACY_KERAS'] = '1'
  else:
    env.pop('TF_USE_LEGACY_KERAS', None)
  proc = subprocess.run([sys.executable, '-c', script, *map(str, args)],
                        env=env, capture_output=True, text=True, timeout=300,
                        check=False)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT')]
  assert proc.returncode == 0 and lines, proc.stderr[-3000:]
  return json.loads(lines[0][len('RESULT'):])


_SAVE_SCRIPT = textwrap.dedent('''
    import json, math, sys
    import numpy as np
    import tensorflow as tf
    import tfp_glow
    from tfp_glow.training import model as gm
    from tfp_glow.training._keras import IS_LEGACY, keras
    work = sys.argv[1]

    def glow(seed, num_classes=None):
      return tfp_glow.Glow((8, 8, 1), num_levels=2, num_steps=2,
                           hidden_channels=8, num_classes=num_classes,
                           seed=seed)

    rng = np.random.default_rng(0)
    images = (rng.integers(0, 64, size=(32, 8, 8, 1)) + 96).astype(np.uint8)
    labels = np.arange(32) % 3
    out = dict(legacy=IS_LEGACY)

    # .keras file and export of a class-conditional model.
    model = gm.GlowModel(glow(0, 3), init_batch_size=16, noise_seed=3)
    model.compile(gm.default_optimizer(2e-3, warmup_steps=2))
    model.fit(images, labels, batch_size=16, epochs=1, verbose=0)
    model.save(work + '/glow.keras')
    model.export(work + '/saved_model')
    x = images[:8].astype(np.float32) + 0.25
    np.savez(work + '/data.npz', x=x, labels=labels[:8],
             images=images[:16], batch_labels=labels[:16],
             log_prob=model(x, labels=labels[:8]).numpy(),
             **{f'glow_{i}': v.numpy()
                for i, v in enumerate(model.glow.variables)})
    out['config'] = model.get_config()
    out['evaluate_bpd'] = model.evaluate(
        images[:16], labels[:16], batch_size=16, verbose=0,
        return_dict=True)['bits_per_dim']

    # A user's model: a GlowModel layer, add_loss, an L2-regularised head.
    class Classifier(keras.Model):
      def __init__(self, seed):
        super().__init__(name='classifier')
        self.density = gm.GlowModel(glow(seed), name='density')
        self.head = keras.layers.Dense(
            2, kernel_regularizer=keras.regularizers.L2(1e-2),
            kernel_initializer=keras.initializers.GlorotUniform(seed=seed))

      def call(self, images):
        x = tf.cast(images, tf.float32)
        bpd = -self.density(x + 0.5) / (64 * math.log(2.0))
        self.add_loss(0.1 * tf.reduce_mean(bpd))
        return self.head(tf.reshape(x, [-1, 64]) / 255.0)

    def classifier(seed):
      user = Classifier(seed)
      user.compile(keras.optimizers.Adam(2e-3), loss=(
          keras.losses.SparseCategoricalCrossentropy(from_logits=True)))
      return user

    user = classifier(0)
    user.density.initialize(images)
    history = user.fit(images, labels % 2, batch_size=16, epochs=2, verbose=0)
    out['user_history'] = history.history
    logits = user(images)
    cross_entropy = float(keras.losses.SparseCategoricalCrossentropy(
        from_logits=True)(labels % 2, logits))
    out['user_terms'] = [cross_entropy] + [float(l) for l in user.losses]
    out['user_evaluate'] = user.evaluate(images, labels % 2, batch_size=32,
                                         verbose=0)
    out['user_has_glow'] = {id(v) for v in user.density.glow.variables} <= {
        id(v) for v in user.variables}
    lines = []
    user.summary(print_fn=lambda line, *a, **k: lines.append(line))
    out['summary'] = '\\n'.join(lines)
    out['glow_params'] = sum(int(np.prod(v.shape))
                             for v in user.density.glow.variables)
    user.save_weights(work + '/user.weights.h5')
    other = classifier(1)
    other(images[:2])
    other.load_weights(work + '/user.weights.h5')
    out['user_weights_equal'] = bool(
        np.array_equal(other(images).numpy(), logits.numpy()) and
        other.density.glow.is_initialized)

    # The data checks, with and without XLA.
    for jit in (False, True):
      checked = gm.GlowModel(glow(0), init_batch_size=16)
      checked.compile(gm.default_optimizer(1e-3, warmup_steps=2),
                      jit_compile=jit)
      try:
        checked.fit(images.astype(np.float32) / 255.0, batch_size=16,
                    verbose=0)
        out[f'error_jit_{jit}'] = None
      except tf.errors.InvalidArgumentError as e:
        out[f'error_jit_{jit}'] = str(e)
      checked.initialize(images)
      try:
        checked.fit(images.astype(np.int32) * 5, batch_size=16, verbose=0,
                    shuffle=False)
        out[f'step_error_jit_{jit}'] = None
      except tf.errors.InvalidArgumentError as e:
        out[f'step_error_jit_{jit}'] = str(e)
      out[f'iterations_jit_{jit}'] = int(checked.optimizer.iterations.numpy())
    print('RESULT' + json.dumps(out))
''')

_LOAD_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np
    import tensorflow as tf
    import tfp_glow
    from tfp_glow.training._keras import keras
    work = sys.argv[1]
    data = np.load(work + '/data.npz')
    model = keras.models.load_model(work + '/glow.keras')
    log_prob = model(data['x'], labels=data['labels']).numpy()
    same_variables = all(np.array_equal(v.numpy(), data[f'glow_{i}'])
                         for i, v in enumerate(model.glow.variables))
    print('RESULT' + json.dumps(dict(
        type=type(model).__name__, config=model.get_config(),
        same_log_prob=bool(np.array_equal(log_prob, data['log_prob'])),
        same_variables=same_variables, initialized=model.glow.is_initialized,
        iterations=int(model.optimizer.iterations.numpy()))))
''')

_SERVE_SCRIPT = textwrap.dedent('''
    import json, sys
    import numpy as np

    class _Blocked:  # Neither tfp_glow nor TFP may be imported here.
      def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('tfp_glow', 'tensorflow_probability'):
          raise ImportError('blocked: ' + name)
    sys.meta_path.insert(0, _Blocked())
    import tensorflow as tf
    work = sys.argv[1]
    data = np.load(work + '/data.npz')
    loaded = tf.saved_model.load(work + '/saved_model')
    served = loaded.serve(tf.constant(data['images'], tf.float32),
                          tf.constant(data['batch_labels'], tf.int32))
    print('RESULT' + json.dumps(dict(served=served.numpy().tolist())))
''')


def test_keras_file_export_user_model_and_data_checks_under_tf_keras(
    tmp_path):
  out = _run(_SAVE_SCRIPT, tmp_path)
  assert out['legacy']

  # The .keras file, in a fresh tf_keras process.
  loaded = _run(_LOAD_SCRIPT, tmp_path)
  assert loaded['type'] == 'GlowModel'
  assert loaded['config'] == out['config']
  assert loaded['same_log_prob'] and loaded['same_variables']
  assert loaded['initialized'] and loaded['iterations'] == 2

  # The exported SavedModel, in a process without tfp_glow (Keras 3's TF).
  served = np.asarray(_run(_SERVE_SCRIPT, tmp_path, legacy=False)['served'])
  assert served.shape == (16,)
  np.testing.assert_allclose(served.mean(), out['evaluate_bpd'], rtol=1e-5)

  # The user's model: trained, its loss all three terms (tf_keras logs the
  # user's `loss`, not the inner GlowModel's metric of the same name).
  history = out['user_history']
  assert set(history) == {'loss'}
  assert np.all(np.isfinite(history['loss'])) and history['loss'][0] > 1.0
  np.testing.assert_allclose(out['user_evaluate'], sum(out['user_terms']),
                             rtol=1e-5)
  assert len(out['user_terms']) == 3   # Cross-entropy, add_loss, L2.
  assert out['user_has_glow'] and out['user_weights_equal']
  density_row = next(l for l in out['summary'].splitlines()
                     if 'density (GlowModel)' in l)
  assert density_row.split()[-1] == str(out['glow_params']), out['summary']
  assert f"Total params: {out['glow_params'] + 130} " in out['summary']

  # Bad data fails in the init and in a step, with and without XLA; the
  # failing step applied no update.
  for jit in (False, True):
    assert ('GlowModel.fit (data-dependent init): `images` must hold integer '
            'pixel values in [0, 256)') in out[f'error_jit_{jit}']
    assert ('GlowModel.train_step: `images` must hold pixel values in '
            '[0, 256)') in out[f'step_error_jit_{jit}']
    assert out[f'iterations_jit_{jit}'] == 0
