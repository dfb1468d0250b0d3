"""Checkpoints survive SIGKILL at any moment.

A child process builds and compiles a tiny model once (a `Seq2seq` layer
that remembers its state, behind a `Dropout`), then forks trainers on
request: each trainer trains one batch per epoch and writes a checkpoint
after every epoch (`seq2seq.callbacks.save_checkpoint`), so it spends most of
its time saving. The test kills each trainer with SIGKILL after a random
delay, many times, and after every kill reads the checkpoint: it opens, and
its weights, optimizer state and remembered hidden state hash to the digest
the trainer computed from its memory before writing that file (a checkpoint
is never a mix of two epochs, nor cut short). Temporary files are hidden,
named after the process that wrote them, and never the checkpoint's name.
At the end `load_checkpoint` loads the last checkpoint into a model whose
arrays hash to the same digest.
"""
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import h5py
import numpy as np
from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_true

KILL_SECONDS = 45          # how long the test keeps killing trainers (warm cache)
CHECKPOINT = 'last.h5'
TEMPORARY = re.compile(r'^\.%s\.tmp(\d+)$' % re.escape(CHECKPOINT))

# The child: compile once, then fork a trainer per 'fork' line on stdin.
SERVER = r'''
import hashlib, os, sys
import numpy as np
import seq2seq
from keras.layers import Dropout, Input
from keras.models import Model
from seq2seq import Seq2seq, set_seed
from seq2seq.training.checkpoints import save_checkpoint
from seq2seq.models.conversation import get_hidden_state

path = sys.argv[1]


def digest(arrays):
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


def model_digest(model):
    states = get_hidden_state(model)
    hidden = [a for name in sorted(states) for cell in states[name] for a in cell]
    return digest(model.get_weights() + model.optimizer.get_weights() + hidden)


set_seed(0)
ids = Input(batch_shape=(2, 3, 2))
layer = Seq2seq(input_length=3, input_dim=2, hidden_dim=4, output_dim=2, output_length=3,
                batch_size=2, depth=2, remember_state=True)
model = Model(ids, layer(Dropout(0.2)(ids)))
model.compile(loss='mse', optimizer='adam')
x = np.random.RandomState(1).uniform(size=(2, 3, 2)).astype('float32')
y = np.random.RandomState(2).uniform(size=(2, 3, 2)).astype('float32')
model.train_on_batch(x, y)                      # compiles the training function
save_checkpoint(model, path, {'epoch': 0, 'digest': model_digest(model), 'pid': os.getpid()})
print('ready', flush=True)
for line in sys.stdin:
    pid = os.fork()
    if pid == 0:                                # a trainer: train and save until killed
        epoch = 0
        while True:
            model.train_on_batch(x, y)
            epoch += 1
            save_checkpoint(model, path, {'epoch': epoch, 'digest': model_digest(model),
                                          'pid': os.getpid()})
    print(pid, flush=True)
    os.waitpid(pid, 0)
    print('reaped', flush=True)
'''


def file_digest(path):
    """(train state, digest of the weights, optimizer weights and hidden
    states as the file holds them, in the order the trainer hashed them)."""
    with h5py.File(path, 'r') as f:
        arrays = []
        weights = f['model_weights']
        for layer_name in weights.attrs['layer_names']:
            group = weights[layer_name]
            arrays.extend(group[name][()] for name in group.attrs['weight_names'])
        optimizer = f['optimizer_weights']
        arrays.extend(optimizer[name][()] for name in optimizer.attrs['weight_names'])
        checkpoint = f['seq2seq_checkpoint']
        hidden = checkpoint['hidden_state']
        for layer_name in sorted(hidden):
            keys = sorted(hidden[layer_name], key=lambda k: tuple(int(p) for p in k.split('_')))
            arrays.extend(hidden[layer_name][k][()] for k in keys)
        state = json.loads(bytes(checkpoint['train_state'][()]).decode('utf-8'))
    h = hashlib.sha256()
    for array in arrays:
        h.update(np.ascontiguousarray(array).tobytes())
    return state, h.hexdigest()


def read_line(process):
    line = process.stdout.readline()
    if not line:
        raise AssertionError('the checkpointing child died: %s' % process.stderr.read())
    return line.strip()


@attr('slow')
def test_checkpoints_survive_sigkill_at_random_moments():
    folder = tempfile.mkdtemp()
    path = os.path.join(folder, CHECKPOINT)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONWARNINGS='ignore')
    server = subprocess.Popen([sys.executable, '-c', SERVER, path], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, env=env)
    rng = random.Random(13)
    kills = during_save = 0
    killed_pids, epochs = set(), []
    try:
        assert_equal(read_line(server), 'ready')
        deadline = time.time() + KILL_SECONDS
        while time.time() < deadline:
            server.stdin.write('fork\n')
            server.stdin.flush()
            pid = int(read_line(server))
            time.sleep(rng.uniform(0.0, 0.4))
            os.kill(pid, signal.SIGKILL)
            assert_equal(read_line(server), 'reaped')
            kills += 1
            killed_pids.add(pid)
            names = os.listdir(folder)
            temporaries = [n for n in names if TEMPORARY.match(n)]
            # Only the checkpoint and hidden temporaries of killed processes.
            assert_equal(sorted(set(names) - set(temporaries)), [CHECKPOINT])
            for name in temporaries:
                assert_true(int(TEMPORARY.match(name).group(1)) in killed_pids, name)
            during_save += str(pid) in ''.join(temporaries)
            state, digest = file_digest(path)
            assert_equal(digest, state['digest'], 'checkpoint of epoch %d (pid %d) is not '
                         'what that epoch held' % (state['epoch'], state['pid']))
            epochs.append(state['epoch'])
    finally:
        server.kill()
        server.wait()
        server.stdout.close()
        server.stderr.close()
        server.stdin.close()
    try:
        print('%d SIGKILLs survived, %d of them while a checkpoint was being written; '
              'epochs reached per trainer up to %d' % (kills, during_save, max(epochs)))
        assert_true(kills >= 20, kills)
        assert_true(during_save > 0, 'no kill landed during a save')
        # The last checkpoint loads with the package's loader into the same arrays.
        import seq2seq  # noqa: F401
        from seq2seq.training.checkpoints import load_checkpoint
        from seq2seq.models.conversation import get_hidden_state
        model, state = load_checkpoint(path)
        hidden = get_hidden_state(model)
        arrays = (model.get_weights() + model.optimizer.get_weights()
                  + [a for name in sorted(hidden) for cell in hidden[name] for a in cell])
        h = hashlib.sha256()
        for array in arrays:
            h.update(np.ascontiguousarray(array).tobytes())
        assert_equal(h.hexdigest(), state['digest'])
    finally:
        shutil.rmtree(folder)


class _FailingModel(object):
    """A model whose save writes part of the file, then fails (a full disk)."""

    def save(self, path, include_optimizer=True):
        with open(path, 'wb') as f:
            f.write(b'\x89HDF\r\n\x1a\n half')
        raise IOError('No space left on device')


def test_a_failed_save_keeps_the_old_checkpoint_and_leaves_no_temporary():
    from seq2seq.training.checkpoints import save_model_atomically
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, CHECKPOINT)
        with open(path, 'wb') as f:
            f.write(b'the previous checkpoint')
        try:
            save_model_atomically(_FailingModel(), path)
        except IOError:
            pass
        else:
            raise AssertionError('the failed save was not reported')
        assert_equal(os.listdir(folder), [CHECKPOINT])
        with open(path, 'rb') as f:
            assert_equal(f.read(), b'the previous checkpoint')
    finally:
        shutil.rmtree(folder)


def test_temporaries_of_dead_processes_are_removed_those_of_running_ones_kept():
    from seq2seq.training.checkpoints import remove_stale_temporaries
    folder = tempfile.mkdtemp()
    try:
        dead = subprocess.Popen([sys.executable, '-c', 'pass'])
        dead.wait()
        names = ['.%s.tmp%d' % (CHECKPOINT, dead.pid), '.%s.tmp%d' % (CHECKPOINT, os.getppid()),
                 '.other.h5.tmp%d' % dead.pid, CHECKPOINT]
        for name in names:
            open(os.path.join(folder, name), 'w').close()
        remove_stale_temporaries(os.path.join(folder, CHECKPOINT))
        assert_equal(sorted(os.listdir(folder)), sorted(names[1:]))
    finally:
        shutil.rmtree(folder)
