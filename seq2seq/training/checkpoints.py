"""Checkpoints that survive a crash: writing, reading and resuming from them.

Every file is written to a temporary file in the same folder, flushed,
fsynced and renamed (and the folder fsynced), so the model directory never
holds half a file: a run killed at any moment leaves the previous file or the
new one.

A checkpoint is a Keras HDF5 model file (`keras.models.load_model` reads it,
weights and optimizer state, Adam's moments and iteration count included)
with one more group, `seq2seq_checkpoint`, holding what else a resumed run
needs to continue exactly as the uninterrupted one would have:

    train_state     the training state (epoch, best loss, history, ...) as JSON,
                    written in the same file so model and state never disagree
    sample_order    the order of the samples Keras' fit(shuffle=True) reached
                    (with Checkpoint(shuffle=True))
    numpy_random    numpy's global random state (Keras' `fit` shuffles with it)
    python_random   Python's `random` state
    random_streams  the state of every Theano random stream of the model's
                    graph (the dropout masks)
    hidden_state    the remembered hidden states (remember_state=True layers)

    save_checkpoint(model, path, train_state)   write one
    load_checkpoint(path)                       -> (model, train_state), with
                                                   every random state restored

The Keras callbacks that write them are in `seq2seq.training.callbacks`;
seeding is `seq2seq.training.seeding`.
"""
from __future__ import absolute_import

import io
import json
import os
import random

import numpy as np

from ..models.conversation import read_hidden_state, write_hidden_state
from ..util.files import remove_dead_temporaries, replaced_atomically
from .seeding import random_streams

LAST_CHECKPOINT = 'last.h5'


class CheckpointWriteError(OSError):
    """A file of a training run could not be written (e.g. the disk is
    full); the message says which, and which checkpoint is still intact."""

    def __str__(self):
        return self.args[0]


BEST_MODEL = 'model.h5'


TRAIN_STATE = 'train_state.json'


CHECKPOINT_GROUP = 'seq2seq_checkpoint'


def save_model_atomically(model, path, include_optimizer=True, extra=None):
    """`model.save(path)` through a temporary file in the same folder:
    written, then `extra(h5py_file)` (if given) adds to it, then fsynced and
    renamed over `path`, then the folder fsynced."""
    with replaced_atomically(path) as temporary:
        model.save(temporary, include_optimizer=include_optimizer)
        if extra is not None:
            import h5py
            with h5py.File(temporary, 'a') as f:
                extra(f)
    remove_stale_temporaries(path)


def remove_stale_temporaries(path):
    """Delete the temporary files of `path` that processes no longer running
    left behind (killed while saving); those of running processes stay."""
    remove_dead_temporaries(os.path.dirname(os.path.abspath(path)),
                            [os.path.basename(path)])


def _write_random_state(group, model):
    state = np.random.get_state()
    numpy_random = group.create_dataset('numpy_random', data=state[1])
    numpy_random.attrs['algorithm'] = state[0]
    numpy_random.attrs['pos'], numpy_random.attrs['has_gauss'] = state[2], state[3]
    numpy_random.attrs['cached_gaussian'] = state[4]
    group.attrs['python_random'] = json.dumps(random.getstate())
    streams = group.create_group('random_streams')
    for i, variable in enumerate(random_streams(model)):
        streams.create_dataset(str(i), data=variable.get_value())


def _read_random_state(group, model):
    numpy_random = group['numpy_random']
    attrs = numpy_random.attrs
    algorithm = attrs['algorithm']
    algorithm = algorithm.decode() if isinstance(algorithm, bytes) else str(algorithm)
    np.random.set_state((algorithm, numpy_random[()], int(attrs['pos']),
                         int(attrs['has_gauss']), float(attrs['cached_gaussian'])))
    version, internal, gauss = json.loads(group.attrs['python_random'])
    random.setstate((version, tuple(internal), gauss))
    saved = group['random_streams']
    variables = random_streams(model)
    if len(saved) != len(variables):
        raise ValueError('the checkpoint holds %d random stream state(s), the model has %d: '
                         'not the model the checkpoint was written from'
                         % (len(saved), len(variables)))
    for i, variable in enumerate(variables):
        value = saved[str(i)][()]
        if value.shape != variable.get_value().shape:
            raise ValueError('random stream %d of the checkpoint has shape %s, the model\'s '
                             '%s' % (i, value.shape, variable.get_value().shape))
        variable.set_value(value)


# -- checkpoints -----------------------------------------------------------------------
SAMPLE_ORDER = 'sample_order'


def _write_train_state(group, train_state):
    """The state as UTF-8 JSON bytes in a dataset (an HDF5 attribute holds
    at most 64 KB); a numpy array under SAMPLE_ORDER as its own dataset."""
    train_state = dict(train_state) if isinstance(train_state, dict) else train_state
    if isinstance(train_state, dict) and train_state.get(SAMPLE_ORDER) is not None:
        group.create_dataset(SAMPLE_ORDER, data=np.asarray(train_state.pop(SAMPLE_ORDER)))
    text = json.dumps(train_state).encode('utf-8')
    group.create_dataset('train_state', data=np.frombuffer(text, dtype=np.uint8))


def _read_train_state(group):
    train_state = json.loads(bytes(group['train_state'][()]).decode('utf-8'))
    if SAMPLE_ORDER in group:
        train_state[SAMPLE_ORDER] = group[SAMPLE_ORDER][()]
    return train_state


def save_checkpoint(model, path, train_state=None):
    """Write `model` (weights and optimizer state) to `path` with
    `train_state` (a dict that JSON can write, plus optionally a numpy
    array under 'sample_order'), the random states and the remembered hidden
    states, atomically (see the module docstring)."""

    def extra(f):
        group = f.create_group(CHECKPOINT_GROUP)
        _write_train_state(group, train_state)
        _write_random_state(group, model)
        write_hidden_state(group.create_group('hidden_state'), model)
    save_model_atomically(model, path, include_optimizer=True, extra=extra)


def read_checkpoint_state(path):
    """The training state written with a checkpoint (None: a plain model
    file, e.g. one an earlier version wrote)."""
    import h5py
    with h5py.File(path, 'r') as f:
        if CHECKPOINT_GROUP not in f:
            return None
        return _read_train_state(f[CHECKPOINT_GROUP])


def load_checkpoint(path, custom_objects=None):
    """(model, train_state) of a checkpoint `save_checkpoint` wrote: the
    compiled model with its optimizer state, and numpy's, Python's and the
    model's random streams' states and the remembered hidden states set
    back to what they were, so that training continues as if never
    stopped. train_state is None for a plain Keras model file (loaded as
    `keras.models.load_model` does, the random states left alone)."""
    import h5py
    import keras
    model = keras.models.load_model(path, custom_objects=custom_objects)
    with h5py.File(path, 'r') as f:
        if CHECKPOINT_GROUP not in f:
            return model, None
        group = f[CHECKPOINT_GROUP]
        read_hidden_state(group['hidden_state'], model)
        _read_random_state(group, model)    # last: loading drew from numpy's generator
        return model, _read_train_state(group)


def load_train_state(model_dir):
    """The state a run left in `model_dir` (None when there is none)."""
    path = os.path.join(model_dir, TRAIN_STATE)
    if not os.path.exists(path):
        return None
    with io.open(path, encoding='utf-8') as f:
        try:
            return json.load(f)
        except ValueError as error:
            raise ValueError('%s is not a training state file: %s' % (path, error))
