"""Start-up hook of the seq2seq package: Keras on Theano with seq2seq's
Theano flags from the start, whatever the import order.

`seq2seq_startup.pth`, installed next to the package, runs `apply()` when
Python starts. It only sets environment defaults, as `import seq2seq` would
before Keras' import:

* `KERAS_BACKEND=theano` when it is unset (Keras 2.3.1 would pick
  TensorFlow), unless `SEQ2SEQ_PATCH_BACKEND=0`;
* seq2seq's Theano flags (MKL, `-g0`, `allow_gc=False`) in `THEANO_FLAGS`,
  except those the user set, unless `SEQ2SEQ_PATCH_THEANO=0` or
  `SEQ2SEQ_PATCH_DEFAULT_FLAGS=0`.

So old code that starts with `import keras` gets the same settings as code
that imports seq2seq first. It imports neither Keras nor Theano, and never
fails Python's start-up. `SEQ2SEQ_STARTUP=0` turns the hook off.
"""
import os
import sys

OFF_VARIABLE = 'SEQ2SEQ_STARTUP'
_OFF = ('0', 'false', 'no', 'off')


def _off(name, environ):
    return environ.get(name, '').strip().lower() in _OFF


def _set(name, environ):
    return environ.get(name, '').strip() != ''


def _backend_module():
    """`seq2seq/_theano/backend.py` (stdlib only), loaded on its own: importing
    it through the package would import Keras."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                        'seq2seq', '_theano', 'backend.py')
    spec = importlib.util.spec_from_file_location('_seq2seq_startup_backend', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def wanted(environ=None):
    """(set KERAS_BACKEND, add the Theano flags) under `environ`'s switches."""
    environ = os.environ if environ is None else environ
    if _off(OFF_VARIABLE, environ):
        return False, False
    backend = not _off('SEQ2SEQ_PATCH_BACKEND', environ)
    if _set('SEQ2SEQ_PATCH_DEFAULT_FLAGS', environ):
        flags = not _off('SEQ2SEQ_PATCH_DEFAULT_FLAGS', environ)
    else:
        flags = not _off('SEQ2SEQ_PATCH_THEANO', environ)
    return backend, flags


def apply():
    """Set the environment defaults (see the module docstring)."""
    if 'theano' in sys.modules or 'keras' in sys.modules:
        return
    backend, flags = wanted()
    if backend:
        os.environ.setdefault('KERAS_BACKEND', 'theano')
    module = _backend_module()
    if flags:
        module.apply_default_flags()
    else:
        module.remove_our_default_flags()


_ran = []


def _run():
    if _ran:  # the .pth may be read twice (a lib64 -> lib link in a venv)
        return
    _ran.append(True)
    try:
        apply()
    except Exception as error:  # never break Python's start-up
        sys.stderr.write('seq2seq_startup: skipped (%s: %s)\n' % (type(error).__name__, error))
