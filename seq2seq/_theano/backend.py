"""Select Keras' Theano backend and configure Theano for speed and quiet.

`seq2seq/__init__.py` runs `setup()` before anything imports Keras, so that
`import seq2seq; import keras` works with `KERAS_BACKEND` unset (Keras 2.3.1
would otherwise pick TensorFlow).

Theano settings are only defaults: a flag the user sets in `THEANO_FLAGS` or in
a `.theanorc` file always wins.
"""
from __future__ import absolute_import

import contextlib
import glob
import io
import logging
import os
import sys

try:  # Python 3
    import configparser
except ImportError:  # pragma: no cover - Python 2 is not supported
    import ConfigParser as configparser

BACKEND_HELP = (
    "seq2seq runs on Keras' Theano backend only. Set the environment variable "
    "KERAS_BACKEND=theano before starting Python (or import seq2seq before "
    "keras with KERAS_BACKEND unset).")


class BackendError(ImportError):
    """Keras is (or would be) running on a backend other than Theano."""


def parse_theano_flags(flags):
    """Return the `THEANO_FLAGS` string `flags` as a dict of name -> value."""
    parsed = {}
    for item in flags.split(','):
        item = item.strip()
        if not item:
            continue
        name, _, value = item.partition('=')
        parsed[name.strip()] = value.strip()
    return parsed


def _theanorc_paths():
    default = os.pathsep.join(['~/.theanorc', '~/.theanorc.txt'])
    paths = os.environ.get('THEANORC', default).split(os.pathsep)
    return [os.path.expanduser(path) for path in paths if path]


def _theanorc_options():
    """The flags set in the user's .theanorc files, as 'section.option' names."""
    parser = configparser.ConfigParser()
    try:
        parser.read(_theanorc_paths())
    except configparser.Error:
        return set()
    names = set()
    for section in parser.sections():
        for option in parser.options(section):
            names.add(option if section == 'global' else section + '.' + option)
    return names


def user_theano_flags():
    """Names of every Theano flag the user set, by THEANO_FLAGS or .theanorc.

    Lower-cased: .theanorc option names are case-insensitive.
    """
    names = set(parse_theano_flags(os.environ.get('THEANO_FLAGS', '')))
    return {name.lower() for name in names | _theanorc_options()}


def _library_dirs():
    """Folders where pip puts the shared libraries of PyPI's `mkl` package."""
    dirs = []
    for prefix in (sys.prefix, sys.exec_prefix, getattr(sys, 'base_prefix', None)):
        if prefix:
            path = os.path.join(prefix, 'lib')
            if path not in dirs and os.path.isdir(path):
                dirs.append(path)
    return dirs


def find_mkl_ldflags(dirs=None):
    """`blas.ldflags` linking MKL's single dynamic library, or None.

    PyPI's `mkl` package installs only versioned names (`libmkl_rt.so.3`), so
    the library is named with `-l:` when there is no plain `libmkl_rt.so`.
    """
    for directory in dirs if dirs is not None else _library_dirs():
        if os.path.exists(os.path.join(directory, 'libmkl_rt.so')):
            return '-L%s -lmkl_rt' % directory
        versioned = sorted(glob.glob(os.path.join(directory, 'libmkl_rt.so.*')))
        if versioned:
            return '-L%s -l:%s' % (directory, os.path.basename(versioned[-1]))
    return None


def default_theano_flags():
    """The flags seq2seq adds when the user has not set them."""
    # (floatX is not among them: Keras sets theano.config.floatX to its own
    # floatx() when it loads.)
    flags = {}
    # Theano passes -g to g++ for every module it compiles; -g0 (after it on
    # the command line) drops the debug info, which costs ~20% of the compile
    # time of a cold cache and does not change the generated code.
    flags['gcc.cxxflags'] = '-g0'
    # Keep each compiled function's intermediate arrays between calls instead
    # of freeing and reallocating them at every call: a training step of the
    # benchmark model runs ~15% faster (large fresh buffers cost page faults),
    # for memory a function needs at its peak anyway.
    flags['allow_gc'] = 'False'
    mkl = find_mkl_ldflags()
    if mkl is not None:
        flags['blas.ldflags'] = mkl
    return flags


class _DropMissingDynamicLibraryWarning(logging.Filter):
    """Theano warns about `-l:libmkl_rt.so.N` although it links fine."""

    def filter(self, record):
        return 'did not find a dynamic library' not in record.getMessage()


def configure_theano():
    """Add seq2seq's default flags to THEANO_FLAGS, leaving the user's alone.

    Must run before Theano is imported; afterwards it only installs the log
    filter (Theano reads its flags once, at import).
    """
    logging.getLogger('theano.tensor.blas').addFilter(
        _DropMissingDynamicLibraryWarning())
    if 'theano' in sys.modules:
        return
    user = user_theano_flags()
    added = ['%s=%s' % (name, value)
             for name, value in sorted(default_theano_flags().items())
             if name.lower() not in user]
    if added:
        current = os.environ.get('THEANO_FLAGS', '')
        os.environ['THEANO_FLAGS'] = ','.join([f for f in [current] + added if f])


@contextlib.contextmanager
def _quiet_stderr():
    """Swallow Keras' 'Using Theano backend.' banner (and only that)."""
    saved = sys.stderr
    captured = io.StringIO()
    sys.stderr = captured
    try:
        yield
    finally:
        sys.stderr = saved
        rest = captured.getvalue().replace('Using Theano backend.\n', '')
        if rest:
            saved.write(rest)


def select_keras_backend():
    """Make Keras use Theano, or raise BackendError saying how to fix it."""
    requested = os.environ.get('KERAS_BACKEND')
    if requested is not None and requested != 'theano':
        raise BackendError('KERAS_BACKEND is %r. %s' % (requested, BACKEND_HELP))
    if 'keras' not in sys.modules:
        os.environ['KERAS_BACKEND'] = 'theano'
        with _quiet_stderr():
            import keras  # noqa: F401  (loads the backend now, quietly)
    from keras import backend as K
    if K.backend() != 'theano':
        raise BackendError('Keras was imported with the %r backend. %s'
                           % (K.backend(), BACKEND_HELP))


def setup():
    """Configure Theano, load Keras on it, fix Theano's compile cache and one
    of its graph rewrites, speed up its first compiles. Idempotent."""
    configure_theano()
    select_keras_backend()
    # These need Theano, which Keras has just imported.
    from . import cache_keys, compile_speed, graph_fixes
    cache_keys.install()
    compile_speed.install()
    graph_fixes.install()
