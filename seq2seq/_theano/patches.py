"""The registry of the package's changes to Theano and Keras, and `install()`.

Each change is a named `Patch`. `install()` applies the ones that are on:

* the `patches` argument wins: a mapping `{name: True/False}` turns single
  patches on or off, a list of names applies exactly those;
* then the patch's own environment variable, `SEQ2SEQ_PATCH_<NAME>` (`0`
  off, `1` on), e.g. `SEQ2SEQ_PATCH_GRAPH_FIX=0`;
* then `SEQ2SEQ_PATCH_THEANO=0`, which turns off every patch that changes
  Theano (its config, optimizer, compiler or loggers): Theano is then exactly
  as it was, and the layers work, more slowly;
* otherwise the patch is on.

Each patch was written against one Theano version (`THEANO_VERSION`); on
another it is skipped with a `PatchSkippedWarning`. `install()` is
idempotent: a patch is applied once per process; calling it again with more
patches on applies only those. A patch cannot be undone in a running process.

Adding a patch is one `register(...)` line (see `seq2seq/_theano/__init__.py`).
"""
from __future__ import absolute_import

import collections
import os
import sys
import warnings

from . import backend
from .backend import PatchSkippedWarning  # noqa: F401 (its public home is here, with the patches)

THEANO_VERSION = '1.0.11'
OPT_OUT_VARIABLE = 'SEQ2SEQ_PATCH_THEANO'

# When a patch runs: before Keras is imported (it must see the environment
# Keras and Theano read at import), or once Keras and Theano are imported.
BEFORE_KERAS = 'before_keras'
AFTER_KERAS = 'after_keras'


Patch = collections.namedtuple('Patch', 'name apply doc stage changes_theano theano_version')

PATCHES = collections.OrderedDict()   # name -> Patch, in the order they are applied
_applied = collections.OrderedDict()  # name -> 'applied' or 'skipped: <reason>'


def register(name, apply, doc, stage=AFTER_KERAS, changes_theano=True,
             theano_version=THEANO_VERSION):
    """Add a patch: `apply()` makes the change (idempotent), `doc` says what it
    does in one line. `theano_version`: the version it was written for (None:
    any). Returns the `Patch`."""
    if not isinstance(name, str) or not name.isidentifier() or name != name.lower():
        raise ValueError('a patch name must be a lower-case identifier, got %r' % (name,))
    if name in PATCHES and PATCHES[name].apply is not apply:
        raise ValueError('a different patch named %r is already registered' % name)
    if stage not in (BEFORE_KERAS, AFTER_KERAS):
        raise ValueError('stage must be %r or %r, got %r' % (BEFORE_KERAS, AFTER_KERAS, stage))
    patch = Patch(name, apply, doc, stage, changes_theano, theano_version)
    PATCHES[name] = patch
    return patch


def variable(name):
    """The environment variable that switches the patch `name`."""
    return 'SEQ2SEQ_PATCH_' + name.upper()


def _switch(environ, name):
    """True/False from the environment variable `name`, or None when unset."""
    text = environ.get(name, '').strip().lower()
    if text == '':
        return None
    if text in ('0', 'false', 'no', 'off'):
        return False
    if text in ('1', 'true', 'yes', 'on'):
        return True
    raise ValueError('%s must be 0 or 1, got %r' % (name, environ[name]))


def enabled(patches=None, environ=None):
    """The names of the patches `install(patches)` would apply, in order."""
    environ = os.environ if environ is None else environ
    if patches is not None and not isinstance(patches, (dict, list, tuple, set, frozenset)):
        raise TypeError('patches must be a dict {name: bool} or a list of names, got %r'
                        % (patches,))
    unknown = sorted(set(patches or ()) - set(PATCHES))
    if unknown:
        raise ValueError('unknown patch %s; the patches are: %s'
                         % (', '.join(map(repr, unknown)), ', '.join(PATCHES)))
    if patches is not None and not isinstance(patches, dict):
        return [name for name in PATCHES if name in patches]
    opted_out = _switch(environ, OPT_OUT_VARIABLE) is False
    names = []
    for name, patch in PATCHES.items():
        if patches is not None and name in patches:
            on = bool(patches[name])
        else:
            on = _switch(environ, variable(name))
            if on is None:
                on = not (opted_out and patch.changes_theano)
        if on:
            names.append(name)
    return names


def installed_theano_version():
    """Theano's version, without importing Theano when it is not imported yet
    (None when unknown)."""
    module = sys.modules.get('theano')
    if module is not None:
        return getattr(module, '__version__', None)
    try:
        from importlib import metadata
    except ImportError:  # Python < 3.8
        try:
            import pkg_resources
        except ImportError:
            return None
        for dist in ('Theano-PyMC', 'Theano'):
            try:
                return pkg_resources.get_distribution(dist).version
            except Exception:
                continue
        return None
    for dist in ('Theano-PyMC', 'Theano'):
        try:
            return metadata.version(dist)
        except Exception:
            continue
    return None


def _apply(patch):
    if patch.name in _applied:
        return
    if patch.theano_version is not None:
        version = installed_theano_version()
        if version is not None and version != patch.theano_version:
            reason = ('written for Theano %s, this is Theano %s'
                      % (patch.theano_version, version))
            warnings.warn('seq2seq: patch %r skipped: %s (%s=0 silences this)'
                          % (patch.name, reason, variable(patch.name)),
                          PatchSkippedWarning, stacklevel=4)
            _applied[patch.name] = 'skipped: ' + reason
            return
    patch.apply()
    _applied[patch.name] = 'applied'


def install(patches=None):
    """Apply the patches that are on (see the module docstring), Keras on
    Theano in between; returns {name: 'applied' | 'skipped: reason'} for the
    patches applied or skipped so far in this process.

    Raises `seq2seq._theano.backend.BackendError` when Keras is (or would be)
    on another backend.
    """
    names = enabled(patches)
    for name in names:
        if PATCHES[name].stage == BEFORE_KERAS:
            _apply(PATCHES[name])
    if 'default_flags' not in names:
        backend.remove_our_default_flags()
    backend.select_keras_backend(quiet='quiet' in names)
    for name in names:
        if PATCHES[name].stage == AFTER_KERAS:
            _apply(PATCHES[name])
    return dict(_applied)


def status():
    """{name: 'applied' | 'skipped: reason' | 'off'} for every patch."""
    return collections.OrderedDict((name, _applied.get(name, 'off')) for name in PATCHES)
