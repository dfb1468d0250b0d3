"""Select Keras' Theano backend and configure Theano for speed and quiet.

The patches `backend`, `default_flags` and `quiet` of `seq2seq._theano`
(applied by `install()`, which `import seq2seq` runs) call these functions.

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


# The names of the flags seq2seq put into THEANO_FLAGS (not the user's).
ADDED_FLAGS_VARIABLE = 'SEQ2SEQ_THEANO_DEFAULTS'


class PatchSkippedWarning(UserWarning):
    """A patch was not applied (see `seq2seq._theano.patches`)."""


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
    """Names of every Theano flag the user set, by THEANO_FLAGS or .theanorc
    (not counting those seq2seq added to THEANO_FLAGS).

    Lower-cased: .theanorc option names are case-insensitive.
    """
    flags = parse_theano_flags(os.environ.get('THEANO_FLAGS', ''))
    ours = set(_our_flag_names())
    if ours:
        defaults = default_theano_flags()
        # Ours while they still hold our value (a later item of the same name wins).
        ours = {name for name in ours if flags.get(name) == defaults.get(name)}
    names = {name.lower() for name in flags if name not in ours}
    return names | {name.lower() for name in _theanorc_options()}


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


def quiet_theano_logs():
    """Drop Theano's false warning about the MKL library name. Idempotent."""
    logger = logging.getLogger('theano.tensor.blas')
    if not any(isinstance(f, _DropMissingDynamicLibraryWarning) for f in logger.filters):
        logger.addFilter(_DropMissingDynamicLibraryWarning())


def _our_flag_names(environ=None):
    environ = os.environ if environ is None else environ
    return [n for n in environ.get(ADDED_FLAGS_VARIABLE, '').split(',') if n]


def set_keras_backend_default():
    """KERAS_BACKEND=theano when it is unset (Keras 2.3.1 would pick TensorFlow)."""
    if 'keras' not in sys.modules:
        os.environ.setdefault('KERAS_BACKEND', 'theano')


def apply_default_flags():
    """Give Theano the flags of `default_theano_flags()` the user has not set.

    Before Theano's import they go into THEANO_FLAGS (their names into
    SEQ2SEQ_THEANO_DEFAULTS, so that they are not taken for the user's and
    child processes can tell them apart); once Theano is imported, into
    `theano.config` directly, which every function compiled afterwards uses.
    """
    user = user_theano_flags()
    missing = [(name, value) for name, value in sorted(default_theano_flags().items())
               if name.lower() not in user]
    if 'theano' not in sys.modules:
        current = os.environ.get('THEANO_FLAGS', '')
        present = {name.lower() for name in parse_theano_flags(current)}
        missing = [(name, value) for name, value in missing if name.lower() not in present]
        if missing:
            added = ['%s=%s' % item for item in missing]
            os.environ['THEANO_FLAGS'] = ','.join([f for f in [current] + added if f])
            names = _our_flag_names() + [name for name, _ in missing]
            os.environ[ADDED_FLAGS_VARIABLE] = ','.join(sorted(set(names)))
        return []
    import theano
    skipped = []
    for name, value in missing:
        try:
            setattr_config(theano.config, name, value)
        except Exception as error:  # a flag Theano fixes at import
            skipped.append('%s=%s (%s)' % (name, value, error))
    if skipped:
        import warnings
        warnings.warn('seq2seq: Theano was imported before seq2seq, and these Theano flags '
                      'could not be set afterwards: %s. Import seq2seq before keras and '
                      'theano, or set them in THEANO_FLAGS.' % '; '.join(skipped),
                      PatchSkippedWarning, stacklevel=3)
    return skipped


def setattr_config(config, name, value):
    """`config.<section>.<option> = value` for a dotted flag name."""
    *sections, option = name.split('.')
    for section in sections:
        config = getattr(config, section)
    if str(getattr(config, option)) != value:
        setattr(config, option, value)


def remove_our_default_flags(environ=None):
    """Take back, before Theano's import, the flags seq2seq (or the start-up
    hook, or a parent process) put into THEANO_FLAGS."""
    environ = os.environ if environ is None else environ
    ours = {name.lower() for name in _our_flag_names(environ)}
    if not ours or 'theano' in sys.modules:
        return
    kept = [item for item in environ.get('THEANO_FLAGS', '').split(',')
            if item.strip() and item.partition('=')[0].strip().lower() not in ours]
    environ['THEANO_FLAGS'] = ','.join(kept)
    environ.pop(ADDED_FLAGS_VARIABLE, None)


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


def select_keras_backend(quiet=True):
    """Import Keras (without its banner when `quiet`) and check that it runs on
    Theano, or raise BackendError saying how to fix it."""
    requested = os.environ.get('KERAS_BACKEND')
    if 'keras' not in sys.modules:
        if requested is not None and requested != 'theano':
            raise BackendError('KERAS_BACKEND is %r. %s' % (requested, BACKEND_HELP))
        if quiet:
            with _quiet_stderr():
                import keras  # noqa: F401  (loads the backend now, quietly)
        else:
            import keras  # noqa: F401
    from keras import backend as K
    if K.backend() != 'theano':
        raise BackendError('Keras was imported with the %r backend. %s'
                           % (K.backend(), BACKEND_HELP))
