"""Theano's compile cache: stable keys across processes, the first-compile notice."""
import io
import os
import shutil
import subprocess
import sys
import tempfile

import theano
import theano.tensor as T
from nose.plugins.attrib import attr
from theano.gof import cc, op

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
