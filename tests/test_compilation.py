"""Theano's compile cache: stable keys across processes, the first-compile notice."""
import io
import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import theano
import theano.tensor as T
from nose.plugins.attrib import attr
from theano.gof import cc, cmodule, op

from seq2seq._theano import backend
from seq2seq._theano import cache_keys as compilation

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def _key_in_new_process(code):
    """The repr of a module key computed by `code` (defines `key`) in a fresh process."""
    process = subprocess.run(
        [sys.executable, '-c', 'import seq2seq, theano, theano.tensor as T\n'
         'from theano.gof import cc\n' + code + '\nprint(repr(key[0]))'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=300)
    assert process.returncode == 0, process.stderr
    return process.stdout.strip()


def _linker_key(outputs, inputs):
    fgraph = theano.FunctionGraph(inputs, outputs)
    return cc.CLinker().accept(fgraph).cmodule_key()


def test_install_patches_theano_once():
    compilation.install()
    compilation.install()
    assert op.COp.c_code_cache_version is compilation.stable_cop_version
    assert cc.CLinker.cmodule_key_._seq2seq_patch
    assert not getattr(cc.CLinker.cmodule_key_.__wrapped__, '_seq2seq_patch', False)


def test_ops_without_props_get_a_versioned_key():
    x = T.matrix('x')
    y = T.matrix('y')
    dot = T.blas.Dot22()(x, y)
    assert T.blas.Dot22.__props__ == ()
    version, _ = _linker_key([dot], [x, y])
    assert version, 'Dot22 module would be recompiled in every process'
    assert compilation._EMPTY_PROPS in version


def test_unversioned_ops_stay_unversioned():
    class Unversioned(theano.Op):
        __props__ = ()

        def make_node(self, x):
            return theano.Apply(self, [x], [x.type()])

        def perform(self, node, inputs, outputs):
            outputs[0][0] = inputs[0]

        def c_code(self, node, name, inputs, outputs, sub):
            return 'Py_XDECREF(%s); %s = %s; Py_XINCREF(%s);' % (
                outputs[0], outputs[0], inputs[0], outputs[0])

    x = T.vector('x')
    version, _ = _linker_key([Unversioned()(x)], [x])
    assert version == ()


def test_dimshuffle_key_is_the_same_in_every_process():
    code = ('x = T.matrix("x")\n'
            'key = cc.CLinker().accept(theano.FunctionGraph([x], [x.T])).cmodule_key()')
    first = _key_in_new_process(code)
    assert first != '()'
    assert first == _key_in_new_process(code)


def _key_data(folder, keys):
    """A KeyData for a module in `folder`, as Theano's cache writes it."""
    return cmodule.KeyData(keys=set(keys), module_hash='0' * 64,
                           key_pkl=os.path.join(folder, 'key.pkl'),
                           entry=os.path.join(folder, 'mod.so'))


def test_key_list_is_replaced_whole_while_another_process_reads_it():
    compilation.install()
    folder = tempfile.mkdtemp()
    try:
        key_data = _key_data(folder, [((1,), ('CLinker.cmodule_key', 'a'))])
        key_data.save_pkl()
        reader = open(key_data.key_pkl, 'rb')  # opened before the next save
        key_data.add_key(((1,), ('CLinker.cmodule_key', 'b')))
        with reader:
            assert len(pickle.load(reader).keys) == 1
        with open(key_data.key_pkl, 'rb') as stream:
            assert len(pickle.load(stream).keys) == 2
        assert os.listdir(folder) == ['key.pkl']  # no temporary file left

        # A reader never finds the file empty (Theano's cache would delete
        # the module's folder, thinking it broken).
        empty = []
        done = threading.Event()

        def read_until_done():
            while not done.is_set():
                with open(key_data.key_pkl, 'rb') as stream:
                    if not stream.read(1):
                        empty.append(True)

        thread = threading.Thread(target=read_until_done)
        thread.start()
        end = time.time() + 0.5
        while time.time() < end:
            key_data.save_pkl()
        done.set()
        thread.join()
        assert not empty
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_a_key_whose_save_failed_can_be_added_again():
    compilation.install()
    folder = tempfile.mkdtemp()
    first, second = ((1,), ('CLinker.cmodule_key', 'a')), ((1,), ('CLinker.cmodule_key', 'b'))
    key_data = _key_data(folder, [first])
    shutil.rmtree(folder)  # deleted by another process
    try:
        key_data.add_key(second)
    except OSError:
        pass
    else:
        raise AssertionError('saving into a deleted folder succeeded')
    assert key_data.keys == {first}
    os.mkdir(folder)
    try:
        key_data.add_key(second)
        key_data.add_key(second)  # Theano asserted here
        with open(key_data.key_pkl, 'rb') as stream:
            assert pickle.load(stream).keys == {first, second}
    finally:
        shutil.rmtree(folder, ignore_errors=True)


CONCURRENT_COMPILE = '''
import sys
import numpy as np
import seq2seq, theano, theano.tensor as T
from seq2seq.ops.fused_lstm import lstm_sequence
own = int(sys.argv[1])
x = T.matrix('x')
value = np.arange(12, dtype=theano.config.floatX).reshape(3, 4) / 12
results = [theano.function([x], T.tanh(x) * 2 + 1)(value),
           theano.function([x], T.dot(x, x.T).sum(axis=1))(value)]
theano.function([x], x ** (own + 2) - T.exp(x))(value)  # a module of its own
projected, h0, kernel = T.tensor3('projected'), T.matrix('h0'), T.matrix('kernel')
h_seq, _ = lstm_sequence(projected, h0, h0, kernel)
results.append(theano.function([projected, h0, kernel], h_seq)(
    np.ones((3, 2, 8), theano.config.floatX) / 4, np.zeros((2, 2), theano.config.floatX),
    np.ones((2, 8), theano.config.floatX) / 8))
print(repr([np.round(r, 5).tolist() for r in results]))
'''


@attr('slow')
def test_processes_starting_at_once_on_an_empty_cache_all_succeed():
    base = tempfile.mkdtemp(prefix='seq2seq-concurrent-')
    env = dict(os.environ, THEANO_FLAGS=','.join(
        f for f in [os.environ.get('THEANO_FLAGS', ''), 'base_compiledir=' + base] if f))
    try:
        processes = [subprocess.Popen([sys.executable, '-c', CONCURRENT_COMPILE, str(i)],
                                      cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, universal_newlines=True)
                     for i in range(3)]
        outputs = [process.communicate(timeout=900) for process in processes]
    finally:
        shutil.rmtree(base, ignore_errors=True)
    for process, (_, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr
    results = [stdout.strip().splitlines()[-1] for stdout, _ in outputs]
    assert results[0] == results[1] == results[2], results


def test_cold_cache_detection_counts_compiled_modules():
    folder = tempfile.mkdtemp()
    assert compilation.is_cold(os.path.join(folder, 'missing'))
    assert compilation.is_cold(folder)
    for i in range(3):
        os.mkdir(os.path.join(folder, 'tmp%d' % i))
        open(os.path.join(folder, 'tmp%d' % i, 'key.pkl'), 'w').close()
    os.mkdir(os.path.join(folder, 'lock_dir'))  # not a module
    assert compilation.count_cached_modules(folder) == 3
    assert compilation.is_cold(folder, threshold=4)
    assert not compilation.is_cold(folder, threshold=3)
    try:
        compilation.is_cold(folder, threshold=-1)
    except ValueError as error:
        assert 'threshold' in str(error)
    else:
        raise AssertionError('a negative threshold was accepted')


def test_cold_cache_notice_is_printed_once_per_process():
    saved = list(compilation._noticed)
    del compilation._noticed[:]
    try:
        folder = tempfile.mkdtemp()
        stream = io.StringIO()
        assert compilation.notice_cold_cache(folder, stream=stream)
        assert not compilation.notice_cold_cache(folder, stream=stream)
        assert stream.getvalue() == compilation.COLD_CACHE_NOTICE % folder + '\n'
        assert stream.getvalue().count('\n') == 1
    finally:
        compilation._noticed[:] = saved


def test_no_notice_with_a_warm_cache():
    saved = list(compilation._noticed)
    del compilation._noticed[:]
    try:
        folder = tempfile.mkdtemp()
        for i in range(compilation.COLD_CACHE_MODULES):
            os.mkdir(os.path.join(folder, 'tmp%d' % i))
            open(os.path.join(folder, 'tmp%d' % i, 'key.pkl'), 'w').close()
        stream = io.StringIO()
        assert not compilation.notice_cold_cache(folder, stream=stream)
        assert stream.getvalue() == ''
    finally:
        compilation._noticed[:] = saved


@attr('slow')
def test_notice_comes_at_the_first_compile_not_at_import():
    # An empty compile dir; Theano compiles its own helpers at import, which
    # takes a while cold, so only the ordering is checked with a tiny graph.
    base = tempfile.mkdtemp(prefix='seq2seq-cold-')
    code = ('import sys, seq2seq, theano, theano.tensor as T\n'
            'sys.stderr.write("IMPORTED\\n")\n'
            'x = T.vector()\n'
            'theano.function([x], T.exp(x) * 2)\n')
    env = dict(os.environ, THEANO_FLAGS='base_compiledir=%s' % base)
    try:
        process = subprocess.run([sys.executable, '-c', code], cwd=ROOT, env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                 universal_newlines=True, timeout=600)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    assert process.returncode == 0, process.stderr
    lines = [line for line in process.stderr.splitlines() if line.strip()]
    assert lines[0] == 'IMPORTED', process.stderr
    notices = [line for line in lines if line.startswith('seq2seq: Theano is compiling')]
    assert len(notices) == 1, process.stderr
    assert base in notices[0]


def _config_value(theano_flags, name='gcc.cxxflags'):
    """theano.config.<name> in a new process importing seq2seq with THEANO_FLAGS."""
    env = dict(os.environ, THEANO_FLAGS=theano_flags)
    process = subprocess.run(
        [sys.executable, '-c', 'import seq2seq, theano; print(theano.config.%s)' % name],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        universal_newlines=True, timeout=300)
    assert process.returncode == 0, process.stderr
    return process.stdout.strip()


def test_modules_are_compiled_without_debug_info_unless_the_user_says_otherwise():
    base = os.environ.get('THEANO_FLAGS', '')
    if 'gcc.cxxflags' not in backend.user_theano_flags():
        assert _config_value(base) == '-g0'
    assert _config_value(','.join(f for f in [base, 'gcc.cxxflags=-O2'] if f)) == '-O2'


def test_intermediate_arrays_kept_between_calls_unless_the_user_says_otherwise():
    """allow_gc=False by default (faster training steps); the user's wins."""
    base = os.environ.get('THEANO_FLAGS', '')
    if 'allow_gc' not in backend.user_theano_flags():
        assert _config_value(base, 'allow_gc') == 'False'
    assert _config_value(','.join(f for f in [base, 'allow_gc=True'] if f), 'allow_gc') == 'True'
