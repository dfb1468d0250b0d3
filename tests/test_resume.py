"""Resuming, determinism and the remembered state across a restart.

* N epochs in one go equal k epochs, a stop and N - k more resumed from the
  checkpoint (weights, Adam's moments and iteration count, the dropout
  streams, the shuffling): through `seq2seq train --resume` and through the
  `Checkpoint` callback and `load_checkpoint`.
* The same seed gives the same weights and outputs in two processes.
* A remembered hidden state saved by one process and loaded by another
  continues the conversation as if there had been no restart.
"""
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

import h5py
import numpy as np
from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_true
from numpy.testing import assert_allclose, assert_array_equal

from tests.test_cli import TINY_MODEL, reversal_tsv, run

TOLERANCE = dict(rtol=0, atol=1e-6)


def checkpoint_arrays(path):
    """{name: array} of every weight and optimizer weight (Adam's moments
    and iteration count) of a Keras HDF5 file."""
    arrays = {}
    with h5py.File(path, 'r') as f:
        for top in ('model_weights', 'optimizer_weights'):
            f[top].visititems(lambda name, item: arrays.__setitem__(
                top + '/' + name, item[()]) if isinstance(item, h5py.Dataset) else None)
    return arrays


def assert_same_arrays(a, b, **tolerance):
    assert_equal(sorted(a), sorted(b))
    for name in a:
        if tolerance:
            assert_allclose(a[name], b[name], err_msg=name, **tolerance)
        else:
            assert_array_equal(a[name], b[name], err_msg=name)


def history(model_dir):
    with open(os.path.join(model_dir, 'history.csv')) as f:
        return list(csv.DictReader(f))


@attr('slow')
def test_cli_resume_equals_the_uninterrupted_run():
    """3 epochs of an attention model with dropout, shuffled, with a
    validation set (scored with dropout on): in one go, or 1 epoch, a stop
    and `--resume` to 3."""
    folder = tempfile.mkdtemp()
    try:
        train = reversal_tsv(os.path.join(folder, 'train.tsv'))
        common = ['--train', train, '--valid', train, '--dropout', '0.3', '--seed', '3',
                  '--patience', '5'] + TINY_MODEL
        whole, parts = os.path.join(folder, 'whole'), os.path.join(folder, 'parts')
        for argv in (['--model-dir', whole, '--epochs', '3'],
                     ['--model-dir', parts, '--epochs', '1'],
                     ['--model-dir', parts, '--epochs', '3', '--resume']):
            status, out, err = run('train', *(argv + common))
            assert_equal(status, 0, err)
        assert_true('epochs 2 to 3' in out, out)
        a = checkpoint_arrays(os.path.join(whole, 'last.h5'))
        b = checkpoint_arrays(os.path.join(parts, 'last.h5'))
        iterations = [name for name in a if name.endswith('iterations')]
        assert_equal(len(iterations), 1)
        assert_equal(int(a[iterations[0]]), 9)      # 12 pairs in batches of 4, 3 epochs
        assert_same_arrays(a, b, **TOLERANCE)
        assert_equal(history(whole), history(parts))
        with h5py.File(os.path.join(whole, 'last.h5'), 'r') as f:
            # The dropout masks come from Theano random streams the checkpoint holds.
            assert_true(len(f['seq2seq_checkpoint/random_streams']) > 0)
    finally:
        shutil.rmtree(folder)


@attr('slow')
def test_cli_resume_of_a_checkpoint_without_training_state():
    """A model directory an earlier version wrote (last.h5 a plain Keras
    file, the state in train_state.json only) still resumes."""
    folder = tempfile.mkdtemp()
    try:
        train = reversal_tsv(os.path.join(folder, 'train.tsv'))
        model_dir = os.path.join(folder, 'model')
        common = ['--train', train, '--model-dir', model_dir, '--model', 'seq2seq'] + TINY_MODEL
        status, _, err = run('train', '--epochs', '1', *common)
        assert_equal(status, 0, err)
        with h5py.File(os.path.join(model_dir, 'last.h5'), 'a') as f:
            del f['seq2seq_checkpoint']
        status, out, err = run('train', '--epochs', '2', '--resume', *common)
        assert_equal(status, 0, err)
        assert_true('epochs 2 to 2' in out, out)
        assert_equal([row['epoch'] for row in history(model_dir)], ['1', '2'])
    finally:
        shutil.rmtree(folder)


def _tiny_remembering_model():
    from seq2seq.models import SimpleSeq2Seq
    model = SimpleSeq2Seq(output_dim=3, output_length=3, hidden_dim=4, input_dim=2,
                          input_length=3, depth=2, dropout=0.3, stateful=True, batch_size=4)
    model.compile(loss='mse', optimizer='adam')
    return model


@attr('slow')
def test_callback_resume_equals_the_uninterrupted_run():
    """`Checkpoint` + `load_checkpoint`: dropout between the stacked LSTMs
    (Theano random streams) and remembered hidden states, which carry from
    epoch to epoch."""
    from seq2seq import set_seed
    from seq2seq.training.callbacks import Checkpoint
    from seq2seq.training.checkpoints import load_checkpoint
    from seq2seq.models.conversation import get_hidden_state
    folder = tempfile.mkdtemp()
    try:
        x = np.random.RandomState(0).uniform(size=(12, 3, 2)).astype('float32')
        y = np.random.RandomState(1).uniform(size=(12, 3, 3)).astype('float32')
        fit = dict(batch_size=4, shuffle=False, verbose=0)
        set_seed(7)
        whole = _tiny_remembering_model()
        whole.fit(x, y, epochs=3, callbacks=[Checkpoint(os.path.join(folder, 'whole.h5'))],
                  **fit)
        set_seed(7)
        first = _tiny_remembering_model()
        first.fit(x, y, epochs=1, callbacks=[Checkpoint(os.path.join(folder, 'parts.h5'))],
                  **fit)
        np.random.seed(12345)       # what happens in between must not matter
        resumed, state = load_checkpoint(os.path.join(folder, 'parts.h5'))
        assert_equal(state['epoch'], 1)
        resumed.fit(x, y, epochs=3, initial_epoch=state['epoch'],
                    callbacks=[Checkpoint(os.path.join(folder, 'parts.h5'))], **fit)
        hidden = get_hidden_state(whole)
        assert_equal(len(hidden), 4)            # depth 2: two encoder and two decoder LSTMs
        assert_true(all(np.abs(a).max() > 0 for cells in hidden.values() for a in cells[0]))
        for name, cells in get_hidden_state(resumed).items():
            for a, b in zip(cells, hidden[name]):
                assert_allclose(a, b, **TOLERANCE)
        for a, b in zip(whole.get_weights() + whole.optimizer.get_weights(),
                        resumed.get_weights() + resumed.optimizer.get_weights()):
            assert_allclose(a, b, **TOLERANCE)
        assert_same_arrays(checkpoint_arrays(os.path.join(folder, 'whole.h5')),
                           checkpoint_arrays(os.path.join(folder, 'parts.h5')), **TOLERANCE)
    finally:
        shutil.rmtree(folder)


def _tiny_dropout_model():
    from seq2seq.models import SimpleSeq2Seq
    model = SimpleSeq2Seq(output_dim=3, output_length=3, hidden_dim=4, input_dim=2,
                          input_length=3, depth=2, dropout=0.3)
    model.compile(loss='mse', optimizer='adam')
    return model


@attr('slow')
def test_callback_resume_with_keras_shuffling_equals_the_uninterrupted_run():
    """fit(shuffle=True) reshuffles the previous epoch's order every epoch;
    Checkpoint(shuffle=True) follows it, and fit on the samples in the saved
    order continues the same sequence of batches."""
    from seq2seq import set_seed
    from seq2seq.training.callbacks import Checkpoint
    from seq2seq.training.checkpoints import load_checkpoint
    folder = tempfile.mkdtemp()
    try:
        x = np.random.RandomState(0).uniform(size=(12, 3, 2)).astype('float32')
        y = np.random.RandomState(1).uniform(size=(12, 3, 3)).astype('float32')
        fit = dict(batch_size=4, shuffle=True, verbose=0)
        path = os.path.join(folder, 'parts.h5')
        set_seed(7)
        whole = _tiny_dropout_model()
        whole.fit(x, y, epochs=4, **fit)
        set_seed(7)
        first = _tiny_dropout_model()
        first.fit(x, y, epochs=1, callbacks=[Checkpoint(path, shuffle=True)], **fit)
        for stop in (1, 3):         # two resumes: the saved order composes
            resumed, state = load_checkpoint(path)
            assert_equal(state['epoch'], stop)
            order = state['sample_order']
            assert_equal(sorted(order), list(range(12)))
            resumed.fit(x[order], y[order], epochs=stop + 2 if stop == 1 else 4,
                        initial_epoch=stop, callbacks=[Checkpoint(path, shuffle=True,
                                                                  state=state)], **fit)
        for a, b in zip(whole.get_weights() + whole.optimizer.get_weights(),
                        resumed.get_weights() + resumed.optimizer.get_weights()):
            assert_allclose(a, b, **TOLERANCE)
    finally:
        shutil.rmtree(folder)


# -- determinism and the remembered state, in separate processes ------------------------
def run_python(code, *args):
    """Run `code` in a fresh Python process; its stdout."""
    env = dict(os.environ, PYTHONWARNINGS='ignore')
    process = subprocess.Popen([sys.executable, '-c', textwrap.dedent(code)] + list(args),
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                               universal_newlines=True)
    out, err = process.communicate()
    assert_equal(process.returncode, 0, err)
    return out


SEEDED_RUN = '''
import os, sys
import numpy as np
import seq2seq
from seq2seq.app import cli
from seq2seq import set_seed
from seq2seq.models import SimpleSeq2Seq
from tests.test_resume import checkpoint_arrays

folder, train = sys.argv[1], sys.argv[2]
arrays = {}
for seed in (5, 6):
    set_seed(seed)
    model = SimpleSeq2Seq(output_dim=3, output_length=3, hidden_dim=4, input_dim=2,
                          input_length=3, depth=2, dropout=0.3)
    model.compile(loss='mse', optimizer='adam')
    x = np.random.uniform(size=(8, 3, 2)).astype('float32')
    y = np.random.uniform(size=(8, 3, 3)).astype('float32')
    model.fit(x, y, epochs=2, batch_size=4, shuffle=True, verbose=0)
    for i, w in enumerate(model.get_weights()):
        arrays['python_%d_weight_%d' % (seed, i)] = w
    arrays['python_%d_output' % seed] = model.predict(x)
model_dir = os.path.join(folder, 'model')
assert cli.main(['train', '--train', train, '--model-dir', model_dir, '--epochs', '2',
                 '--dropout', '0.3', '--seed', '5', '--hidden-dim', '8',
                 '--embedding-dim', '4', '--batch-size', '4', '--quiet']) == 0
for name, value in checkpoint_arrays(os.path.join(model_dir, 'last.h5')).items():
    arrays['cli_' + name] = value
np.savez(os.path.join(folder, 'arrays.npz'), **arrays)
'''


@attr('slow')
def test_the_same_seed_gives_the_same_weights_and_outputs_in_two_processes():
    folder = tempfile.mkdtemp()
    try:
        train = reversal_tsv(os.path.join(folder, 'train.tsv'))
        runs = []
        for i in range(2):
            run_folder = os.path.join(folder, 'run%d' % i)
            os.mkdir(run_folder)
            run_python(SEEDED_RUN, run_folder, train)
            with np.load(os.path.join(run_folder, 'arrays.npz')) as arrays:
                runs.append(dict(arrays))
        assert_same_arrays(runs[0], runs[1])                # bit for bit
        seed5 = [runs[0][k] for k in sorted(runs[0]) if k.startswith('python_5_')]
        seed6 = [runs[0][k] for k in sorted(runs[0]) if k.startswith('python_6_')]
        assert_true(any(not np.array_equal(a, b) for a, b in zip(seed5, seed6)))
    finally:
        shutil.rmtree(folder)


CONVERSATION = '''
import sys
import numpy as np
import keras
import seq2seq
from keras.layers import Input
from keras.models import Model
from seq2seq import Seq2seq, set_seed
from seq2seq.models.conversation import load_hidden_state, save_hidden_state

folder, part = sys.argv[1], sys.argv[2]
exchanges = np.random.RandomState(0).uniform(size=(5, 2, 3, 2)).astype('float32')
if part == 'first':
    set_seed(0)
    ids = Input(batch_shape=(2, 3, 2))
    model = Model(ids, Seq2seq(input_length=3, input_dim=2, hidden_dim=4, output_dim=2,
                               output_length=3, batch_size=2, depth=2,
                               remember_state=True)(ids))
    model.compile(loss='mse', optimizer='adam')
    model.save(folder + '/model.h5')
    for exchange in exchanges[:3]:
        model.predict(exchange, batch_size=2)
    save_hidden_state(model, folder + '/state.h5')
    # The uninterrupted conversation's next two outputs.
    np.save(folder + '/expected.npy', np.stack([model.predict(e, batch_size=2)
                                                for e in exchanges[3:]]))
else:
    model = keras.models.load_model(folder + '/model.h5')
    fresh = model.predict(exchanges[3], batch_size=2)
    model.reset_states()
    load_hidden_state(model, folder + '/state.h5')
    np.save(folder + '/fresh.npy', fresh)
    np.save(folder + '/resumed.npy', np.stack([model.predict(e, batch_size=2)
                                               for e in exchanges[3:]]))
'''


@attr('slow')
def test_a_remembered_state_saved_and_loaded_by_another_process_continues():
    folder = tempfile.mkdtemp()
    try:
        run_python(CONVERSATION, folder, 'first')
        assert_equal([n for n in os.listdir(folder) if n.startswith('.')], [])
        run_python(CONVERSATION, folder, 'second')
        expected = np.load(os.path.join(folder, 'expected.npy'))
        assert_allclose(np.load(os.path.join(folder, 'resumed.npy')), expected, **TOLERANCE)
        # Without the saved state the restarted model answers differently.
        assert_true(not np.allclose(np.load(os.path.join(folder, 'fresh.npy')), expected[0],
                                    atol=1e-4))
    finally:
        shutil.rmtree(folder)


def test_load_hidden_state_refuses_another_model():
    from keras.layers import Input
    from keras.models import Model
    from seq2seq import Seq2seq
    from seq2seq.models.conversation import get_hidden_state, load_hidden_state, save_hidden_state
    folder = tempfile.mkdtemp()
    try:
        def model(hidden_dim, name):
            ids = Input(batch_shape=(2, 3, 2))
            layer = Seq2seq(input_length=3, input_dim=2, hidden_dim=hidden_dim, output_dim=2,
                            output_length=3, batch_size=2, remember_state=True, name=name)
            return Model(ids, layer(ids))
        saved = model(4, 'talk')
        state = [[np.full_like(a, 0.5) for a in cell] for cell in saved.layers[1]
                 .get_hidden_state()]
        saved.layers[1].set_hidden_state(state)
        path = os.path.join(folder, 'state.h5')
        save_hidden_state(saved, path)
        for other in (model(5, 'talk'), model(4, 'other_name')):
            before = get_hidden_state(other)
            try:
                load_hidden_state(other, path)
            except ValueError:
                pass
            else:
                raise AssertionError('load_hidden_state accepted %s' % other.layers[1].name)
            after = get_hidden_state(other)
            for name in before:
                for a, b in zip(before[name], after[name]):
                    assert_array_equal(a[0], b[0])
                    assert_array_equal(a[1], b[1])
    finally:
        shutil.rmtree(folder)


def test_set_seed_seeds_numpy_and_python_and_refuses_bad_seeds():
    import random
    from seq2seq import set_seed
    set_seed(11)
    first = (np.random.uniform(size=3), random.random())
    set_seed(11)
    assert_array_equal(np.random.uniform(size=3), first[0])
    assert_equal(random.random(), first[1])
    for bad in (-1, 2 ** 32, 1.5, '3', None, True):
        try:
            set_seed(bad)
        except ValueError as error:
            assert_true('seed' in str(error), error)
        else:
            raise AssertionError('set_seed(%r) was accepted' % (bad,))


def test_checkpoint_arguments_are_checked():
    from seq2seq.training.callbacks import Checkpoint
    for kwargs in (dict(period=0), dict(period=1.5), dict(shuffle='batch'),
                   dict(state=[1, 2])):
        try:
            Checkpoint('run.h5', **kwargs)
        except (TypeError, ValueError) as error:
            assert_true(list(kwargs)[0] in str(error), error)
        else:
            raise AssertionError('Checkpoint(%r) was accepted' % kwargs)


def test_save_hidden_state_refuses_a_model_without_remembered_state():
    from keras.layers import Dense, Input
    from keras.models import Model
    from seq2seq.models.conversation import save_hidden_state
    inputs = Input(shape=(3,))
    model = Model(inputs, Dense(2)(inputs))
    folder = tempfile.mkdtemp()
    try:
        save_hidden_state(model, os.path.join(folder, 'state.h5'))
    except ValueError as error:
        assert_true('remember_state' in str(error), error)
    else:
        raise AssertionError('saved the hidden state of a model without one')
    finally:
        assert_equal(os.listdir(folder), [])
        shutil.rmtree(folder)


def test_a_resumed_g2p_example_run_keeps_its_decayed_learning_rate():
    """`examples/g2p.py --resume` hands `seq2seq train` no --learning-rate:
    given one, a resumed run would restart at the first epoch's rate and
    undo the decay its checkpoint holds."""
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..', 'examples'))
    try:
        import g2p
    finally:
        sys.path.pop(0)
    from seq2seq.app.cli import build_parser
    parser = build_parser()
    for settings in (g2p.FULL, g2p.DEMO):
        first = parser.parse_args(g2p.train_arguments(settings, 'train.tsv', 'dev.tsv',
                                                      'model', 0, resume=False))
        resumed = parser.parse_args(g2p.train_arguments(settings, 'train.tsv', 'dev.tsv',
                                                        'model', 0, resume=True))
        assert_equal((first.learning_rate, first.resume), (settings['learning_rate'], False))
        assert_equal((resumed.learning_rate, resumed.resume), (None, True))
        assert_equal(resumed.lr_decay, settings['lr_decay'])
