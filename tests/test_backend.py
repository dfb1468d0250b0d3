"""Backend selection and Theano configuration."""
import os
import tempfile

from nose.plugins.skip import SkipTest

from seq2seq._theano import backend

from .helpers import run_python_code


def _python(code, **env_changes):
    return run_python_code(code, env_changes)


def test_import_selects_theano_when_keras_backend_is_unset():
    code, out, err = _python('import seq2seq, keras; print(keras.backend.backend())',
                             KERAS_BACKEND=None)
    assert code == 0, err
    assert out.strip() == 'theano'
    assert err == '', 'import printed to stderr: %r' % err


def test_another_backend_fails_with_a_message_saying_how_to_fix_it():
    code, _, err = _python('from seq2seq import Seq2seq', KERAS_BACKEND='tensorflow')
    assert code != 0
    assert 'KERAS_BACKEND=theano' in err
    assert "'tensorflow'" in err


def test_user_theano_flags_win_over_the_defaults():
    code, out, err = _python('import seq2seq, theano; print(repr(theano.config.blas.ldflags))',
                             THEANO_FLAGS='blas.ldflags=')
    assert code == 0, err
    assert out.strip() == "''"


def test_theanorc_settings_win_over_the_defaults():
    with tempfile.NamedTemporaryFile('w', suffix='.theanorc', delete=False) as rc:
        rc.write('[global]\nfloatX = float64\n[blas]\nldflags = -lblas\n')
    try:
        os.environ['THEANORC'] = rc.name
        assert {'floatx', 'blas.ldflags'} <= backend.user_theano_flags()
    finally:
        del os.environ['THEANORC']
        os.unlink(rc.name)


def test_parse_theano_flags():
    assert backend.parse_theano_flags('floatX=float32, blas.ldflags=-L/x -lmkl_rt,,') == \
        {'floatX': 'float32', 'blas.ldflags': '-L/x -lmkl_rt'}


def test_mkl_is_found_by_its_versioned_name():
    folder = tempfile.mkdtemp()
    assert backend.find_mkl_ldflags([folder]) is None
    open(os.path.join(folder, 'libmkl_rt.so.2'), 'w').close()
    assert backend.find_mkl_ldflags([folder]) == '-L%s -l:libmkl_rt.so.2' % folder
    open(os.path.join(folder, 'libmkl_rt.so'), 'w').close()
    assert backend.find_mkl_ldflags([folder]) == '-L%s -lmkl_rt' % folder


def test_theano_links_the_blas_it_was_given():
    import theano
    expected = backend.find_mkl_ldflags()
    if expected is None:
        raise SkipTest("no MKL in this environment (pip install mkl): Theano's default BLAS")
    if 'blas.ldflags' in backend.user_theano_flags():
        raise SkipTest('blas.ldflags set by the user: %r' % theano.config.blas.ldflags)
    assert theano.config.blas.ldflags == expected
