"""Theano's compile cache: two cache-key fixes and a first-compile notice.

Theano (theano-pymc 1.0.11) stores every C module it compiles in
`theano.config.compiledir`, under a key made of the module's graph, the
compiler flags and a *version*. A key with an empty version is "unversioned":
its module is compiled again in every new process and deleted at exit. With a
warm cache, two Theano bugs made every process re-run g++ on about ten small
modules of the seq2seq training function (~2 s each):

1. `CLinker.cmodule_key_` puts each Op's `__props__` into the version, and an
   empty tuple there counts as "no version". Every Op without parameters
   (`Alloc`, `Dot22`, `Dot22Scalar`, `ScalarFromTensor`, ...) therefore gets an
   unversioned key, although its C code is versioned. `version_empty_props`
   keeps such keys versioned, exactly as for Ops with parameters.
2. `COp.c_code_cache_version` (used by `DimShuffle`) is `hash()` of the Op's C
   source: a str hash, which Python randomizes per process (PYTHONHASHSEED).
   The key never matches the stored one, so the module is compiled again and
   stored again (one more copy in the cache per process).
   `stable_cop_version` uses a SHA-256 digest of the same source instead.

Processes sharing the compile dir also raced on `key.pkl` (the list of keys
of a module): `KeyData.save_pkl` truncates the file, then writes it, and a
process starting at that moment (its `ModuleCache.refresh`) reads an empty
file, takes the module for broken and deletes its whole folder, under the
feet of the processes using it (`FileNotFoundError` for `.../key.pkl`, then
`assert key not in self.keys` in `KeyData.add_key`, whose failed save had
left the key in). `atomic_save_pkl` writes a temporary file and renames it,
so a reader sees the old list or the new one; `add_key_once` takes the key
out again when the save fails, and adding a key already there only saves.

`install_cache_keys()` applies the three, `install_cold_notice()` the
first-compile notice: the patches `cache_keys` and `cold_notice` of
`seq2seq._theano.install()`. Each patch is applied only when
Theano's code is the buggy one, so a fixed Theano is left alone.
"""
from __future__ import absolute_import

import functools
import hashlib
import os
import pickle
import sys
import tempfile

# A compile dir with fewer compiled modules than this is "cold": the first
# seq2seq training function alone stores about 80.
COLD_CACHE_MODULES = 10

COLD_CACHE_NOTICE = ('seq2seq: Theano is compiling C code for the first time '
                     '(cached in %s); this takes a minute or two, once.')

# Stands for an empty `__props__` in a key's version (any non-empty value).
_EMPTY_PROPS = ('__props__ = ()',)

_noticed = []  # set once the compile dir has been checked in this process


def stable_cop_version(op):
    """`COp.c_code_cache_version`, with a digest that is the same in every process.

    Same structure as Theano's (an int, then the params type's version), but
    the int is taken from a SHA-256 of the C source instead of `hash()`.
    """
    source = '\0'.join(op.func_codes).encode('utf-8')
    version = (int(hashlib.sha256(source).hexdigest()[:15], 16),)
    if hasattr(op, 'params_type'):
        version += (op.params_type.c_code_cache_version(),)
    return version


def key_version(order):
    """The version part of a CLinker key for the Apply nodes `order`, or None.

    Theano's own loop (`CLinker.cmodule_key_`), except that an empty
    `__props__` counts as a version like any other tuple of properties. None
    when an Op or a Type really is unversioned.
    """
    version = []
    for node in order:
        if hasattr(node.op, 'c_code_cache_version_apply'):
            version.append(node.op.c_code_cache_version_apply(node))
        if hasattr(node.op, '__props__'):
            version.append(tuple(node.op.__props__) or _EMPTY_PROPS)
        for variable in list(node.inputs) + list(node.outputs):
            version.append(variable.type.c_code_cache_version())
    if not all(version):
        return None
    return tuple(version)


def version_empty_props(cmodule_key_):
    """Wrap `CLinker.cmodule_key_` so that Ops with no properties stay versioned."""
    @functools.wraps(cmodule_key_)
    def wrapper(self, fgraph, no_recycling, *args, **kwargs):
        key = cmodule_key_(self, fgraph, no_recycling, *args, **kwargs)
        if key is None or key[0]:
            return key
        version = key_version(self.schedule(fgraph))
        if version is None:
            return key
        return version, key[1]
    wrapper._seq2seq_patch = True
    return wrapper


def _source(function):
    """The source of `function`, or '' when it cannot be read."""
    import inspect
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):
        return ''


def _uses_builtin_hash(function):
    """Whether `function` is Theano's `hash(tuple(self.func_codes))` version."""
    names = getattr(getattr(function, '__code__', None), 'co_names', ())
    return 'hash' in names and 'func_codes' in names


def atomic_save_pkl(self):
    """`KeyData.save_pkl`, writing a temporary file renamed over `key.pkl`.

    A process reading `key.pkl` meanwhile gets the whole old file or the
    whole new one, never an empty one (which Theano's cache deletes).
    """
    from theano.gof.cmodule import _logger
    folder = os.path.dirname(self.key_pkl)
    handle, partial = tempfile.mkstemp(prefix='key.pkl.', suffix='.part', dir=folder)
    try:
        with os.fdopen(handle, 'wb') as stream:
            pickle.dump(self, stream, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, self.key_pkl)
    except pickle.PicklingError:
        _logger.warning('Cache leak due to unpickle-able key data %s', self.keys)
        if os.path.exists(self.key_pkl):
            os.remove(self.key_pkl)
        raise
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def add_key_once(self, key, save_pkl=True):
    """`KeyData.add_key` that leaves `keys` unchanged when saving fails with
    an OSError, and only saves when `key` is already there (Theano asserts)."""
    if key not in self.keys:
        self.keys.add(key)
        if save_pkl:
            try:
                self.save_pkl()
            except OSError:
                self.keys.discard(key)
                raise
    elif save_pkl:
        self.save_pkl()


def count_cached_modules(compiledir):
    """How many compiled modules (folders with a key.pkl) `compiledir` holds."""
    try:
        entries = os.listdir(compiledir)
    except OSError:  # not created yet: nothing is cached
        return 0
    return sum(1 for entry in entries
               if os.path.isfile(os.path.join(compiledir, entry, 'key.pkl')))


def is_cold(compiledir, threshold=COLD_CACHE_MODULES):
    """Whether `compiledir` is empty or nearly so (compiling will take minutes)."""
    if not isinstance(threshold, int) or threshold < 0:
        raise ValueError('threshold must be a non-negative int, got %r' % (threshold,))
    return count_cached_modules(compiledir) < threshold


def notice_cold_cache(compiledir=None, stream=None):
    """Say once per process, on stderr, that a cold compile cache will take a while.

    Only the first call in a process looks at the compile dir (default:
    `theano.config.compiledir`); returns True when it printed the notice.
    """
    if _noticed:
        return False
    _noticed.append(True)
    if compiledir is None:
        import theano
        compiledir = theano.config.compiledir
    if not is_cold(compiledir):
        return False
    stream = sys.stderr if stream is None else stream
    stream.write(COLD_CACHE_NOTICE % compiledir + '\n')
    stream.flush()
    return True


def notice_before_compiling(module_from_key):
    """Wrap `ModuleCache.module_from_key`: check the cache before the first module."""
    @functools.wraps(module_from_key)
    def wrapper(self, *args, **kwargs):
        if not _noticed:
            notice_cold_cache(self.dirname)
        return module_from_key(self, *args, **kwargs)
    wrapper._seq2seq_patch = True
    return wrapper


def install_cache_keys():
    """Apply the two cache-key fixes and the atomic `key.pkl` to Theano. Idempotent."""
    from theano.gof import cc, cmodule, op

    cop_version = op.COp.__dict__.get('c_code_cache_version')
    if cop_version is not None and _uses_builtin_hash(cop_version):
        op.COp.c_code_cache_version = stable_cop_version
    if not getattr(cc.CLinker.cmodule_key_, '_seq2seq_patch', False):
        cc.CLinker.cmodule_key_ = version_empty_props(cc.CLinker.cmodule_key_)
    # Only Theano's own writer (open(key_pkl, "wb")) is replaced.
    if 'open(self.key_pkl, "wb")' in _source(cmodule.KeyData.save_pkl):
        cmodule.KeyData.save_pkl = atomic_save_pkl
        cmodule.KeyData.add_key = add_key_once


def install_cold_notice():
    """Print the first-compile notice before Theano compiles into a cold cache.
    Idempotent."""
    from theano.gof import cmodule
    if not getattr(cmodule.ModuleCache.module_from_key, '_seq2seq_patch', False):
        cmodule.ModuleCache.module_from_key = notice_before_compiling(
            cmodule.ModuleCache.module_from_key)


def install():
    """Apply the cache-key fixes and the first-compile notice to Theano. Idempotent."""
    install_cache_keys()
    install_cold_notice()
