"""What crashes, concurrent runs, a full disk and bad paths leave ("Reliability 3").

* A run killed in epoch 1 (before its first last.h5, or while writing it)
  resumes from epoch 1 with `train --resume`; `train` still refuses it.
* Two runs never write one model directory at once; the lock of a killed
  run is free.
* A failed write (disk full) ends `train` with one line and exit 2, and the
  previous checkpoint still loads.
* Temporary files of killed processes are deleted when a run starts.
* Output paths in missing folders and bad hidden-state files get one line
  naming the path.
"""
import errno
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import unittest

import h5py
import numpy as np
from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_in, assert_not_in, assert_raises, assert_true

from tests.test_cli import TINY_MODEL, reversal_tsv, run

# A `seq2seq train` that stops for good in epoch 1: at the save of model.h5
# ('best', before any checkpoint) or in the middle of writing last.h5
# ('last', a half temporary file on disk). It prints STUCK, then waits to
# be killed.
STUCK_TRAIN = '''
import os, sys, time
import seq2seq
from seq2seq.app import cli
from seq2seq.training import callbacks

where = sys.argv[1]

def stuck(model, path, *args, **kwargs):
    with open(os.path.join(os.path.dirname(path), '.%s.tmp%d'
                           % (os.path.basename(path), os.getpid())), 'wb') as f:
        f.write(b'\\x89HDF\\r\\n\\x1a\\n half a file')
    print('STUCK', flush=True)
    time.sleep(600)

if where == 'best':
    callbacks.save_model_atomically = stuck
else:
    callbacks.save_checkpoint = stuck
sys.exit(cli.main(sys.argv[2:]))
'''


def dead_pid():
    """The PID of a process that has ended."""
    process = subprocess.Popen([sys.executable, '-c', 'pass'])
    process.wait()
    return process.pid


def one_line(err):
    lines = err.strip().splitlines()
    assert_equal(len(lines), 1, err)
    assert_not_in('Traceback', err)
    return lines[0]


class Folder(unittest.TestCase):

    def setUp(self):
        self.folder = tempfile.mkdtemp()
        self.train = reversal_tsv(os.path.join(self.folder, 'train.tsv'))
        self.model_dir = os.path.join(self.folder, 'model')

    def tearDown(self):
        shutil.rmtree(self.folder)

    def train_argv(self, *more):
        return (['train', '--train', self.train, '--model-dir', self.model_dir]
                + TINY_MODEL + list(more))

    def start_stuck(self, where, epochs='3'):
        """A real `train` process stuck in epoch 1, once it is."""
        env = dict(os.environ, PYTHONWARNINGS='ignore', KERAS_BACKEND='theano')
        process = subprocess.Popen(
            [sys.executable, '-c', textwrap.dedent(STUCK_TRAIN), where]
            + self.train_argv('--epochs', epochs)[0:], stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, universal_newlines=True,
            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        self.addCleanup(lambda: process.poll() is None and process.kill())
        out = []
        for line in process.stdout:
            out.append(line)
            if line.strip() == 'STUCK':
                return process
        raise AssertionError('the training process ended: %s %s'
                             % (''.join(out), process.stderr.read()))

    def kill(self, process):
        os.kill(process.pid, signal.SIGKILL)
        process.wait()

    def temporaries(self):
        return sorted(name for name in os.listdir(self.model_dir) if '.tmp' in name)


# -- 1, 2, 4: killed in epoch 1, a second run at the same time, temporaries ----------------
@attr('slow')
class TestKilledInEpochOne(Folder):

    def check_resumes_from_epoch_one(self, process):
        """After the kill: `train` refuses, `train --resume` runs epoch 1
        (and deletes the dead processes' temporaries)."""
        from seq2seq.training.checkpoints import load_checkpoint
        self.kill(process)
        assert_true(not os.path.exists(os.path.join(self.model_dir, 'last.h5')))
        dead = dead_pid()
        for name in ('loss.png', 'source_vocab.json', 'history.csv'):
            with open(os.path.join(self.model_dir, '.%s.tmp%d' % (name, dead)), 'w') as f:
                f.write('half')
        status, out, err = run(*self.train_argv('--epochs', '1'))
        assert_equal(status, 2)
        assert_in('already holds a model', one_line(err))
        assert_true(self.temporaries())            # a refused run changes nothing

        status, out, err = run(*self.train_argv('--epochs', '1', '--resume'))
        assert_equal(status, 0, err)
        starts = [line for line in out.splitlines() if 'from epoch 1' in line]
        assert_equal(len(starts), 1, out)
        assert_in('epochs 1 to 1', out)
        assert_equal(self.temporaries(), [])
        model, state = load_checkpoint(os.path.join(self.model_dir, 'last.h5'))
        assert_equal(state['epoch'], 1)
        assert_equal(len(state['history']), 1)

    def test_killed_while_writing_the_first_checkpoint(self):
        process = self.start_stuck('last')
        assert_equal(self.temporaries(), ['.last.h5.tmp%d' % process.pid])
        # A second run into the directory while the first runs: refused,
        # --resume as well as a fresh one, with nothing changed.
        before = sorted(os.listdir(self.model_dir))
        for argv in (self.train_argv('--epochs', '2', '--resume'), self.train_argv()):
            status, out, err = run(*argv)
            assert_equal(status, 2, out + err)
            line = one_line(err)
            assert_true('another run' in line or 'already holds a model' in line, line)
        status, out, err = run(*self.train_argv('--epochs', '2', '--resume'))
        assert_in('being written by another run (locked by process %d)' % process.pid, err)
        assert_equal(sorted(os.listdir(self.model_dir)), before)
        self.check_resumes_from_epoch_one(process)

    def test_killed_before_the_first_checkpoint(self):
        process = self.start_stuck('best')
        assert_true(not os.path.exists(os.path.join(self.model_dir, 'model.h5')))
        self.check_resumes_from_epoch_one(process)


class TestLock(Folder):

    def test_a_lock_is_exclusive_and_a_dead_process_lock_is_free(self):
        from seq2seq.app.model_dir import ModelDirError, lock_model_dir
        os.mkdir(self.model_dir)
        with open(os.path.join(self.model_dir, '.lock'), 'w') as f:
            f.write('%d\n' % dead_pid())           # left by a killed run
        lock = lock_model_dir(self.model_dir)
        with assert_raises(ModelDirError) as raised:
            lock_model_dir(self.model_dir)
        assert_in('locked by process %d' % os.getpid(), str(raised.exception))
        lock.release()
        lock_model_dir(self.model_dir).release()

    def test_resume_of_a_missing_directory_is_one_line(self):
        status, out, err = run(*self.train_argv('--resume'))
        assert_equal(status, 2)
        assert_in('no such model directory', one_line(err))
        assert_true(not os.path.exists(self.model_dir))


# -- 3: disk full --------------------------------------------------------------------------
def no_space(path):
    return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)


@attr('slow')
class TestDiskFull(Folder):

    def setUp(self):
        super(TestDiskFull, self).setUp()
        status, out, err = run(*self.train_argv('--epochs', '1'))
        assert_equal(status, 0, err)

    def resume_failing(self, target, name, replacement):
        """`train --resume` to epoch 2 with `target.name` replaced by a
        function that fails as a full disk does; (status, stderr)."""
        original = getattr(target, name)
        setattr(target, name, replacement)
        try:
            status, out, err = run(*self.train_argv('--epochs', '2', '--resume'))
        finally:
            setattr(target, name, original)
        return status, err

    def check_intact(self, epoch):
        from seq2seq.training.checkpoints import load_checkpoint
        model, state = load_checkpoint(os.path.join(self.model_dir, 'last.h5'))
        assert_equal(state['epoch'], epoch)
        assert_equal(self.temporaries(), [])

    def test_a_model_file_that_does_not_fit(self):
        from keras.engine.network import Network

        def save(model, filepath, *args, **kwargs):
            with open(filepath, 'wb') as f:
                f.write(b'\x89HDF\r\n\x1a\n the start')
            raise no_space(filepath)
        status, err = self.resume_failing(Network, 'save', save)
        assert_equal(status, 2)
        line = one_line(err)
        assert_in('No space left on device', line)
        assert_in('model.h5', line)                 # the best model is saved first
        assert_not_in('.tmp', line)
        assert_in('%s (epoch 1), is intact' % os.path.join(self.model_dir, 'last.h5'), line)
        self.check_intact(1)

    def test_a_loss_curve_that_does_not_fit(self):
        from matplotlib.figure import Figure

        def savefig(figure, f, *args, **kwargs):
            f.write(b'\x89PNG')
            raise no_space(f.name)
        status, err = self.resume_failing(Figure, 'savefig', savefig)
        assert_equal(status, 2)
        line = one_line(err)
        assert_in('cannot write %s: No space left on device'
                  % os.path.join(self.model_dir, 'loss.png'), line)
        assert_in('(epoch 2), is intact', line)     # loss.png comes after last.h5
        self.check_intact(2)


# -- 4: temporaries of killed processes ----------------------------------------------------
class TestTemporaries(Folder):

    def test_dead_processes_temporaries_are_deleted(self):
        from seq2seq.util.files import remove_dead_temporaries
        os.mkdir(self.model_dir)
        dead = dead_pid()
        names = ['.loss.png.tmp%d' % dead, '.source_vocab.json.tmp%d' % dead,
                 '.loss.png.tmp%d' % os.getppid(), '.loss.png.tmp%d' % os.getpid(),
                 'loss.png', '.loss.png.tmpx', '.lock']
        for name in names:
            open(os.path.join(self.model_dir, name), 'w').close()
        remove_dead_temporaries(self.model_dir)
        assert_equal(sorted(os.listdir(self.model_dir)), sorted(names[2:]))


# -- 5: bad output paths and hidden-state files --------------------------------------------
class TestPaths(Folder):

    def test_outputs_in_a_missing_folder(self):
        missing = os.path.join(self.folder, 'no', 'such', 'out.txt')
        os.mkdir(self.model_dir)
        for argv in (['predict', '--model-dir', self.model_dir, '--output', missing],
                     ['score', '--model-dir', self.model_dir, '--input', self.train,
                      '--output', missing],
                     ['attention', '--model-dir', self.model_dir, '--source', 'ab',
                      '--out', missing]):
            status, out, err = run(*argv)
            assert_equal(status, 2, err)
            line = one_line(err)
            assert_in(missing, line)
            assert_in('no such folder', line)
            assert_not_in('.tmp', line)

    def test_a_failed_write_names_the_file(self):
        from seq2seq.util.files import FileWriteError, replaced_atomically
        path = os.path.join(self.folder, 'out.txt')
        with open(path, 'w') as f:
            f.write('old')
        with assert_raises(FileWriteError) as raised:
            with replaced_atomically(path) as temporary:
                with open(temporary, 'w') as f:
                    f.write('new, half')
                raise no_space(temporary)
        assert_equal(str(raised.exception), 'cannot write %s: No space left on device' % path)
        assert_equal(raised.exception.errno, errno.ENOSPC)
        with open(path) as f:
            assert_equal(f.read(), 'old')
        assert_equal(sorted(os.listdir(self.folder)), ['out.txt', 'train.tsv'])

    def stateful_model(self):
        from keras.layers import Input
        from keras.models import Model
        from seq2seq import Seq2seq
        ids = Input(batch_shape=(2, 3, 2))
        layer = Seq2seq(input_length=3, input_dim=2, hidden_dim=4, output_dim=2,
                        output_length=3, batch_size=2, remember_state=True, name='talk')
        return Model(ids, layer(ids))

    def test_hidden_state_files(self):
        from seq2seq.models.conversation import (get_hidden_state, load_hidden_state,
                                                 save_hidden_state)
        model = self.stateful_model()
        missing = os.path.join(self.folder, 'no', 'state.h5')
        with assert_raises(ValueError) as raised:
            save_hidden_state(model, missing)
        assert_in(missing, str(raised.exception))
        assert_not_in('.tmp', str(raised.exception))

        path = os.path.join(self.folder, 'state.h5')
        save_hidden_state(model, path)
        with open(path, 'rb') as f:
            whole = f.read()
        truncated = os.path.join(self.folder, 'truncated.h5')
        with open(truncated, 'wb') as f:
            f.write(whole[:len(whole) // 3])
        text = os.path.join(self.folder, 'text.h5')
        with open(text, 'w') as f:
            f.write('not a state\n')
        renamed = os.path.join(self.folder, 'renamed.h5')
        with h5py.File(renamed, 'w') as f:
            f.create_dataset('hidden_state/talk/state0', data=np.zeros((2, 4), 'float32'))
        other_group = os.path.join(self.folder, 'other.h5')
        with h5py.File(other_group, 'w') as f:
            f.create_dataset('weights', data=np.zeros(3))
        before = get_hidden_state(model)
        for bad, expected in ((os.path.join(self.folder, 'gone.h5'), 'no such file'),
                              (truncated, 'not a whole HDF5 file'),
                              (text, 'not a whole HDF5 file'),
                              (renamed, "expected datasets named CELL_VARIABLE (e.g. 0_1, "
                                        "the first cell's c), found 'state0'"),
                              (other_group, "holds no group 'hidden_state'")):
            with assert_raises(ValueError) as raised:
                load_hidden_state(model, bad)
            message = str(raised.exception)
            assert_equal(len(message.splitlines()), 1, message)
            assert_in(bad, message)
            assert_in(expected, message)
        for name in before:
            for a, b in zip(before[name], get_hidden_state(model)[name]):
                for x, y in zip(a, b):
                    np.testing.assert_array_equal(x, y)
        load_hidden_state(model, path)


if __name__ == '__main__':
    unittest.main()
