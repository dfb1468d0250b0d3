"""Shared test helpers: float64 graphs and tiny models."""
import contextlib
import os
import subprocess
import sys

import numpy as np
import theano
from keras import backend as K


@contextlib.contextmanager
def float64():
    """Build and run graphs in float64 (Keras and Theano), then restore."""
    saved = K.floatx()
    K.set_floatx('float64')
    try:
        with theano.change_flags(floatX='float64'):
            yield
    finally:
        K.set_floatx(saved)


def compiled(layer, inputs):
    """A Theano function computing `layer(inputs)` from numpy values.

    `inputs`: one Keras Input or a list. Includes the layer's updates (the
    remembered states), as Keras' predict does.
    """
    outputs = layer(inputs)
    inputs = inputs if isinstance(inputs, list) else [inputs]
    outputs = outputs if isinstance(outputs, list) else [outputs]
    return K.function(inputs, outputs, updates=layer.updates)


def use_dropout_masks(layer, dropout_masks):
    """Makes the decoder layer `layer` read `dropout_masks` as its cells'
    dropout masks instead of random draws: the scan and the fused loops both
    take the masks from the constants of `Decoder.start`."""
    start = layer.decoder.start

    def with_given_masks(*args):
        values = start(*args)
        for k, dropout_mask in enumerate(dropout_masks):
            assert 'dropout_%d' % k in values, 'the layer makes no dropout mask %d' % k
            values['dropout_%d' % k] = dropout_mask
        return values

    layer.decoder.start = with_given_masks


def random_array(*shape, **kwargs):
    rng = np.random.RandomState(kwargs.get('seed', 0))
    return rng.uniform(-1, 1, size=shape)


def assert_raises_with(exception, fn, *words):
    """fn() raises `exception` whose message contains every one of `words`."""
    try:
        fn()
    except exception as error:
        for word in words:
            assert word in str(error), '%r not in %r' % (word, str(error))
        return
    raise AssertionError('%s not raised' % exception.__name__)


ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def run_python_code(code, env_changes, removed=(), timeout=300):
    """Run `code` in a new Python in the repository root, with this
    process's environment minus the variables in `removed`, then
    `env_changes` applied (a value of None removes the variable). Returns
    (exit code, stdout, stderr)."""
    env = dict(os.environ)
    for name in removed:
        env.pop(name, None)
    for name, value in env_changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    process = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=timeout)
    return process.returncode, process.stdout, process.stderr
