"""seq2seq._theano.install(): the patches, their switches, the opt-out, the
import order, and what `import seq2seq` registers with Keras."""
import json
import logging
import os
import warnings

from nose.plugins.attrib import attr

import seq2seq_startup
from seq2seq import _theano
from seq2seq._theano import backend, patches

from .helpers import assert_raises_with, run_python_code

# Variables that carry seq2seq's settings from this process to a child.
_INHERITED = ('THEANO_FLAGS', backend.ADDED_FLAGS_VARIABLE, 'KERAS_BACKEND',
              patches.OPT_OUT_VARIABLE, seq2seq_startup.OFF_VARIABLE) + \
    tuple(patches.variable(name) for name in patches.PATCHES)

# What a process sees of Theano: config values, and where the functions that
# seq2seq patches come from (Theano's own module, or one of ours).
THEANO_STATE = r'''
import json, logging, sys
import theano
from theano.gof import cc, cmodule, op, vm
from theano.tensor import blas
def origin(function):
    # The package whose file defines the code (functools.wraps copies the
    # wrapped function's name and module onto a wrapper).
    function = getattr(function, '__func__', function)
    parts = function.__code__.co_filename.split('/')
    package = max(('seq2seq', 'theano'), key=lambda p: max(
        [i for i, part in enumerate(parts) if part == p] or [-1]))
    return '%s.%s' % (package, function.__code__.co_name)
state = {
    'config': {name: str(eval('theano.config.' + name))
               for name in ('allow_gc', 'blas.ldflags', 'gcc.cxxflags')},
    'functions': {
        'CLinker.cmodule_key_': origin(cc.CLinker.cmodule_key_),
        'COp.c_code_cache_version': origin(op.COp.c_code_cache_version),
        'ModuleCache.module_from_key': origin(cmodule.ModuleCache.module_from_key),
        'GCC_compiler.compile_str': origin(cmodule.GCC_compiler.compile_str),
        'VM_Linker.make_all': origin(vm.VM_Linker.make_all),
        'local_dot22_to_dot22scalar': origin(blas.local_dot22_to_dot22scalar.transform),
    },
    'blas_log_filters': len(logging.getLogger('theano.tensor.blas').filters),
}
print('STATE ' + json.dumps(state, sort_keys=True))
'''


def _python(code, clean=True, **env_changes):
    """Run `code` in a new Python; `clean`: without this process's seq2seq
    settings. Returns (exit code, stdout, stderr)."""
    return run_python_code(code, env_changes, removed=_INHERITED if clean else (), timeout=600)


def _state(code, **env_changes):
    status, out, err = _python(code + THEANO_STATE, **env_changes)
    assert status == 0, err
    line = [line for line in out.splitlines() if line.startswith('STATE ')][-1]
    return json.loads(line[len('STATE '):])


# -- the opt-out --------------------------------------------------------------------

def test_opt_out_leaves_theano_exactly_as_it_was():
    """SEQ2SEQ_PATCH_THEANO=0: config, optimizer and compiler functions are
    Theano's own, as in a process that never saw seq2seq, even when the
    parent process's THEANO_FLAGS carry seq2seq's defaults."""
    untouched = _state('', KERAS_BACKEND='theano', SEQ2SEQ_STARTUP='0')
    opted_out = _state('import seq2seq', clean=False, SEQ2SEQ_PATCH_THEANO='0')
    assert opted_out == untouched
    assert all(origin.startswith('theano.') for origin in untouched['functions'].values())


def test_every_patch_changes_theano_without_the_opt_out():
    untouched = _state('', KERAS_BACKEND='theano', SEQ2SEQ_STARTUP='0')
    patched = _state('import seq2seq')
    for name, origin in patched['functions'].items():
        assert origin.startswith('seq2seq.'), (name, origin)
    assert patched['config']['allow_gc'] == 'False'
    assert patched['config']['gcc.cxxflags'] == '-g0'
    assert patched['blas_log_filters'] == untouched['blas_log_filters'] + 1


@attr('slow')
def test_layers_work_with_the_opt_out():
    """Opted out, a Seq2seq layer still compiles and predicts (a cold compile:
    the modules of Theano's default flags)."""
    status, out, err = _python(
        'import numpy as np, seq2seq\n'
        'from keras.models import Sequential\n'
        'model = Sequential([seq2seq.Seq2seq(input_length=3, input_dim=2, hidden_dim=4,\n'
        '                                    output_dim=2, output_length=3)])\n'
        'print(model.predict(np.ones((1, 3, 2))).shape)', SEQ2SEQ_PATCH_THEANO='0')
    assert status == 0, err
    assert out.strip().splitlines()[-1] == '(1, 3, 2)'


# -- switches, idempotence, versions -------------------------------------------------

def test_patch_names_and_order():
    """The environment and the flags first, Theano's functions once imported."""
    ours = ['backend', 'default_flags', 'quiet', 'cache_keys', 'compile_speed', 'graph_fix',
            'cold_notice']
    assert [name for name in patches.PATCHES if name in ours] == ours
    stages = [patch.stage for patch in patches.PATCHES.values()]
    assert stages == sorted(stages, key=[patches.BEFORE_KERAS, patches.AFTER_KERAS].index)


def test_switches_from_the_environment_and_the_argument():
    everything = list(patches.PATCHES)
    changing = [name for name in everything if patches.PATCHES[name].changes_theano]
    assert patches.enabled(environ={}) == everything
    assert patches.enabled(environ={'SEQ2SEQ_PATCH_GRAPH_FIX': '0'}) == \
        [name for name in everything if name != 'graph_fix']
    # The opt-out keeps what does not change Theano (KERAS_BACKEND's default).
    assert patches.enabled(environ={'SEQ2SEQ_PATCH_THEANO': '0'}) == \
        [name for name in everything if name not in changing]
    assert 'backend' not in changing
    # A single patch's variable wins over the opt-out, the argument over both.
    assert patches.enabled(environ={'SEQ2SEQ_PATCH_THEANO': '0',
                                    'SEQ2SEQ_PATCH_CACHE_KEYS': '1'}) == \
        [name for name in everything if name not in changing or name == 'cache_keys']
    assert patches.enabled({'cache_keys': False}, environ={'SEQ2SEQ_PATCH_CACHE_KEYS': '1'}) == \
        [name for name in everything if name != 'cache_keys']
    assert patches.enabled(['graph_fix', 'backend'], environ={}) == ['backend', 'graph_fix']


def test_bad_switches_are_named():
    assert_raises_with(ValueError, lambda: patches.enabled({'graph_fixes': True}, environ={}),
                       "'graph_fixes'", 'graph_fix')
    assert_raises_with(ValueError, lambda: patches.enabled(
        environ={'SEQ2SEQ_PATCH_THEANO': 'maybe'}), 'SEQ2SEQ_PATCH_THEANO', "'maybe'")
    assert_raises_with(TypeError, lambda: patches.enabled('graph_fix', environ={}), 'patches')


def test_one_patch_switched_off_by_its_variable():
    state = _state('import seq2seq; from seq2seq import _theano\n'
                   'assert _theano.status()["graph_fix"] == "off", _theano.status()',
                   SEQ2SEQ_PATCH_GRAPH_FIX='0')
    assert state['functions']['local_dot22_to_dot22scalar'].startswith('theano.')
    assert state['functions']['CLinker.cmodule_key_'].startswith('seq2seq.')


def test_install_twice_adds_nothing_twice():
    import theano
    from theano.gof import cc, cmodule
    logger = logging.getLogger('theano.tensor.blas')
    before = (list(logger.filters), cc.CLinker.cmodule_key_, cmodule.GCC_compiler.compile_str,
              os.environ.get('THEANO_FLAGS'), theano.config.allow_gc)
    first = _theano.install()
    second = _theano.install()
    after = (list(logger.filters), cc.CLinker.cmodule_key_, cmodule.GCC_compiler.compile_str,
             os.environ.get('THEANO_FLAGS'), theano.config.allow_gc)
    assert first == second
    assert after == before
    backend.quiet_theano_logs()
    assert len(logger.filters) == len(before[0])


def test_a_patch_for_another_theano_version_is_skipped_with_a_warning():
    calls = []
    name = 'test_only_old_theano'
    patches.register(name, lambda: calls.append(1), 'a test patch', theano_version='0.9.0')
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            result = _theano.install({name: True})
        assert calls == []
        assert result[name].startswith('skipped: written for Theano 0.9.0')
        messages = [str(w.message) for w in caught
                    if issubclass(w.category, patches.PatchSkippedWarning)]
        assert len(messages) == 1 and name in messages[0] and '1.0.11' in messages[0], messages
    finally:
        del patches.PATCHES[name]
        patches._applied.pop(name, None)


def test_registering_a_patch_is_one_call():
    calls = []
    name = 'test_only_counter'
    patches.register(name, lambda: calls.append(1), 'a test patch')
    try:
        assert name in patches.enabled(environ={})
        assert name not in patches.enabled(environ={'SEQ2SEQ_PATCH_TEST_ONLY_COUNTER': '0'})
        _theano.install({name: True})
        _theano.install({name: True})
        assert calls == [1]
        assert _theano.status()[name] == 'applied'
    finally:
        del patches.PATCHES[name]
        patches._applied.pop(name, None)
    assert_raises_with(ValueError, lambda: patches.register('Bad-Name', len, 'x'), 'Bad-Name')


# -- import order -------------------------------------------------------------------

def test_keras_imported_first_gets_the_settings():
    """Old code: `import keras` first, KERAS_BACKEND unset. The start-up hook
    selects Theano and its flags before Keras loads."""
    state = _state('import keras\nimport seq2seq\n'
                   'assert keras.backend.backend() == "theano"')
    assert state['config']['allow_gc'] == 'False'
    assert state['config']['gcc.cxxflags'] == '-g0'
    mkl = backend.find_mkl_ldflags()
    if mkl is not None:
        assert state['config']['blas.ldflags'] == mkl
    assert all(o.startswith('seq2seq.') for o in state['functions'].values())


def test_without_the_hook_the_flags_are_applied_once_theano_is_imported():
    """No start-up hook, `import keras` first on Theano: seq2seq still sets
    the flags in theano.config (for every function compiled afterwards)."""
    state = _state('import keras\nimport seq2seq', KERAS_BACKEND='theano',
                   SEQ2SEQ_STARTUP='0')
    assert state['config']['allow_gc'] == 'False'
    assert state['config']['gcc.cxxflags'] == '-g0'
    mkl = backend.find_mkl_ldflags()
    if mkl is not None:
        assert state['config']['blas.ldflags'] == mkl


def test_the_users_flags_win_when_theano_was_imported_first():
    state = _state('import keras\nimport seq2seq', KERAS_BACKEND='theano',
                   SEQ2SEQ_STARTUP='0', THEANO_FLAGS='allow_gc=True,gcc.cxxflags=-O1')
    assert state['config']['allow_gc'] == 'True'
    assert state['config']['gcc.cxxflags'] == '-O1'


def test_start_up_hook_switches():
    assert seq2seq_startup.wanted({}) == (True, True)
    assert seq2seq_startup.wanted({'SEQ2SEQ_STARTUP': '0'}) == (False, False)
    assert seq2seq_startup.wanted({'SEQ2SEQ_PATCH_THEANO': '0'}) == (True, False)
    assert seq2seq_startup.wanted({'SEQ2SEQ_PATCH_THEANO': '0',
                                   'SEQ2SEQ_PATCH_DEFAULT_FLAGS': '1'}) == (True, True)
    assert seq2seq_startup.wanted({'SEQ2SEQ_PATCH_BACKEND': '0'}) == (False, True)


def test_start_up_hook_imports_neither_keras_nor_theano():
    status, out, err = _python('import sys, os\n'
                               'print("keras" in sys.modules, "theano" in sys.modules, '
                               'os.environ.get("KERAS_BACKEND"))')
    assert status == 0, err
    assert out.split() == ['False', 'False', 'theano']


# -- without Keras on Theano -------------------------------------------------------

_DECODE = ('import numpy as np, sys\n'
           'from seq2seq.decoding import greedy_search\n'
           'table = np.log(np.full((3, 4), 0.25))\n'
           'table[:, 2] = 0.0\n'
           'def step(tokens, states):\n'
           '    return np.repeat(table[:1], len(states[0]), axis=0), states\n'
           'result = greedy_search(step, [np.zeros((2, 1))], max_length=3)\n'
           'print("keras" in sys.modules, "theano" in sys.modules)\n'
           'print(np.asarray(result[0]).tolist())\n')


def _decoding_without(**env):
    status, out, err = _python(_DECODE + 'from seq2seq import Seq2seq\n', **env)
    lines = out.splitlines()
    return status, lines, err


def test_decoding_imports_with_another_keras_backend():
    status, lines, err = _decoding_without(KERAS_BACKEND='tensorflow')
    assert lines[0] == 'False False', lines
    assert lines[1] == '[[2, 2, 2], [2, 2, 2]]', lines
    assert status != 0 and 'KERAS_BACKEND=theano' in err, err  # the layers say why


def test_decoding_imports_without_keras_installed():
    status, out, err = _python('import sys; sys.modules["keras"] = None\n' + _DECODE)
    assert status == 0, err
    assert out.splitlines()[1] == '[[2, 2, 2], [2, 2, 2]]'


# -- custom objects -------------------------------------------------------------------

def test_a_users_class_of_the_same_name_is_not_replaced():
    import seq2seq

    class Seq2seq(object):
        pass

    registry = {'Seq2seq': Seq2seq}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        registered = seq2seq.register_custom_objects(
            {'Seq2seq': seq2seq.Seq2seq, 'LSTMEncoder': seq2seq.LSTMEncoder}, registry)
    assert registry == {'Seq2seq': Seq2seq, 'LSTMEncoder': seq2seq.LSTMEncoder}
    assert registered == ['LSTMEncoder']
    assert [w.category for w in caught] == [seq2seq.CustomObjectWarning]
    assert "'Seq2seq'" in str(caught[0].message)
    # Registering the same objects again is no conflict.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        seq2seq.register_custom_objects({'LSTMEncoder': seq2seq.LSTMEncoder}, registry)
    assert caught == []


def test_import_keeps_a_users_custom_object():
    status, out, err = _python(
        'import keras\n'
        'from keras.utils.generic_utils import get_custom_objects\n'
        'class Seq2seq(keras.layers.Layer): pass\n'
        'get_custom_objects()["Seq2seq"] = Seq2seq\n'
        'import seq2seq\n'
        'print(get_custom_objects()["Seq2seq"] is Seq2seq, '
        'get_custom_objects()["LSTMEncoder"] is seq2seq.LSTMEncoder)')
    assert status == 0, err
    assert out.split() == ['True', 'True']
    assert 'CustomObjectWarning' in err and "'Seq2seq'" in err
