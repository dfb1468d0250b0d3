"""Faster first compiles: the precompiled header and the parallel g++ builds
give the same modules, and a warm cache compiles nothing."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading

from nose.plugins.attrib import attr

from seq2seq._theano import compile_speed

from .helpers import assert_raises_with

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')

# Compiles a function of seven C nodes, checks its values against NumPy and
# reports what the builds did; `-H` re-runs one module's g++ command to see
# whether g++ reads the precompiled header (a line "! <header>.gch").
COMPILE_AND_REPORT = r'''
import glob, json, os, subprocess, tempfile
import numpy as np
import seq2seq, theano, theano.tensor as T
from theano.gof import cmodule
from seq2seq._theano import compile_speed

commands = []
run = cmodule.output_subprocess_Popen
def recorded(command, *args, **kwargs):
    commands.append(list(command))
    return run(command, *args, **kwargs)
cmodule.output_subprocess_Popen = recorded

x, y = T.matrix(), T.matrix()
f = theano.function([x, y], [T.exp(x) * y + 3 * T.sqrt(abs(x)), T.tanh(x).sum(axis=0),
                             T.dot(x, y.T), (x ** 2).max(axis=1), T.concatenate([x, y])])
a = np.random.RandomState(0).rand(3, 4).astype(theano.config.floatX)
b = np.random.RandomState(1).rand(3, 4).astype(theano.config.floatX)
expected = [np.exp(a) * b + 3 * np.sqrt(abs(a)), np.tanh(a).sum(0), a.dot(b.T),
            (a ** 2).max(1), np.concatenate([a, b])]
builds = compile_speed._installed['builds']
work = os.path.join(theano.config.compiledir, 'seq2seq')
# g++ runs for modules of the graph (not Theano's own helper, cutils_ext)
modules = [c for c in commands if '-shared' in c and 'cutils_ext' not in c[c.index('-o') + 1]]
with_header = [c for c in modules if '-include' in c]
header_used = None
if with_header:
    command = list(with_header[0])
    output = command.index('-o') + 1
    command[output] = os.path.join(tempfile.mkdtemp(), 'check.so')  # not in the cache
    process = subprocess.run(command + ['-H'], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True)
    header = command[command.index('-include') + 1]
    header_used = process.returncode == 0 and ('! ' + header + '.gch') in process.stderr
print(json.dumps({
    'values_ok': all(np.allclose(r, e, rtol=1e-5) for r, e in zip(f(a, b), expected)),
    'started': builds.started if builds else None,
    'used': builds.used if builds else None,
    'gcc_runs': len(modules),
    'parallel_runs': len([c for c in modules if os.path.join(work, 'build') in c[c.index('-o') + 1]]),
    'with_header': len(with_header),
    'header_used': header_used,
    'headers': glob.glob(os.path.join(work, 'pch', '*', '*.gch')),
    'left_in_build': os.listdir(os.path.join(work, 'build')) if os.path.isdir(os.path.join(work, 'build')) else [],
}))
'''


def _compile_in_new_process(compiledir, jobs=None):
    env = dict(os.environ)
    env['THEANO_FLAGS'] = ','.join(f for f in [env.get('THEANO_FLAGS', ''),
                                               'base_compiledir=' + compiledir] if f)
    env.pop(compile_speed.JOBS_VARIABLE, None)
    if jobs is not None:
        env[compile_speed.JOBS_VARIABLE] = str(jobs)
    process = subprocess.run([sys.executable, '-c', COMPILE_AND_REPORT], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=900)
    assert process.returncode == 0, process.stderr
    return json.loads(process.stdout.strip().splitlines()[-1])


@attr('slow')
def test_cold_compile_in_parallel_then_warm_compile_runs_no_gcc():
    base = tempfile.mkdtemp(prefix='seq2seq-compile-speed-')
    try:
        cold = _compile_in_new_process(base, jobs=2)
        assert cold['values_ok']
        # The linker's modules were built by the workers and taken by the
        # linker; nothing was compiled twice or left behind. (The optimizer's
        # constant folding compiles its own modules, one at a time.)
        assert cold['started'] >= 5, cold
        assert cold['used'] == cold['started'], cold
        assert cold['parallel_runs'] == cold['started'], cold
        assert cold['gcc_runs'] <= cold['started'] + 2, cold
        assert cold['left_in_build'] == [], cold
        # One precompiled header, and g++ really reads it.
        assert len(cold['headers']) == 1, cold
        assert cold['with_header'] == cold['gcc_runs'], cold
        assert cold['header_used'], cold

        warm = _compile_in_new_process(base, jobs=2)
        assert warm['values_ok']
        assert warm['gcc_runs'] == 0 and warm['started'] == 0, warm
    finally:
        shutil.rmtree(base, ignore_errors=True)


@attr('slow')
def test_one_job_compiles_in_order_with_the_header():
    base = tempfile.mkdtemp(prefix='seq2seq-compile-speed-')
    try:
        serial = _compile_in_new_process(base, jobs=1)
        assert serial['values_ok']
        assert serial['started'] is None and serial['parallel_runs'] == 0, serial
        assert serial['gcc_runs'] >= 5
        assert serial['with_header'] == serial['gcc_runs'] and serial['header_used'], serial
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_jobs_come_from_the_environment():
    assert compile_speed.compile_jobs({'SEQ2SEQ_COMPILE_JOBS': '3'}) == 3
    assert compile_speed.compile_jobs({'SEQ2SEQ_COMPILE_JOBS': '1'}) == 1
    assert compile_speed.compile_jobs({}) >= 1
    for bad in ('0', '-2', 'two', '1.5'):
        assert_raises_with(ValueError, lambda: compile_speed.compile_jobs(
            {'SEQ2SEQ_COMPILE_JOBS': bad}), 'SEQ2SEQ_COMPILE_JOBS', 'positive integer', bad)


def test_header_options_keep_what_the_header_depends_on():
    options = compile_speed.header_options(
        ['-O3', '-march=native', '-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION', '-fPIC',
         '-lmkl_rt', '-L/opt/lib', '-Wl,-rpath,/opt/lib', '-shared'],
        ['/inc/a', '/inc/b'], hide_symbols=True)
    assert options == ['-g', '-O3', '-march=native',
                       '-DNPY_NO_DEPRECATED_API=NPY_1_7_API_VERSION', '-fPIC',
                       '-I/inc/a', '-I/inc/b', '-fvisibility=hidden']
    assert '-fvisibility=hidden' not in compile_speed.header_options([], [], False)


def test_failed_build_is_left_to_theano_and_cleaned_up():
    def failing(location, py_module, **kwargs):
        open(os.path.join(location, 'mod.cpp'), 'w').close()
        raise RuntimeError('g++ failed')

    builds = compile_speed.ParallelBuilds(failing, jobs=2)
    folder, location = tempfile.mkdtemp(), tempfile.mkdtemp()
    try:
        builds.start('k', folder, {'module_name': 'm', 'src_code': ''})
        assert builds.take('k', location, 'm') is None
        assert not os.path.exists(folder)
        assert os.listdir(location) == []
        assert builds.take('k', location, 'm') is None  # taken once only
        assert builds.used == 0 and builds.started == 1
    finally:
        shutil.rmtree(location, ignore_errors=True)


def test_finished_build_moves_into_the_linkers_folder():
    calls = []

    def writes_library(location, py_module, module_name, src_code):
        calls.append((location, py_module, module_name))
        with open(os.path.join(location, module_name + '.so'), 'w') as stream:
            stream.write(src_code)

    builds = compile_speed.ParallelBuilds(writes_library, jobs=2)
    folder, location, second = tempfile.mkdtemp(), tempfile.mkdtemp(), tempfile.mkdtemp()
    try:
        job = builds.start('k', folder, {'module_name': 'm', 'src_code': 'code'})
        job.future.result(timeout=30)
        # The worker built into the job's own folder, as a plain library.
        assert job.folder == folder
        assert calls == [(folder, False, 'm')], calls
        assert os.listdir(folder) == ['m.so']
        # The same key again while the first is not taken: no second build.
        assert builds.start('k', second, {'module_name': 'm', 'src_code': ''}) is None
        assert builds.started == 1 and len(calls) == 1
        library = builds.take('k', location, 'm')
        assert library == os.path.join(location, 'm.so')
        assert open(library).read() == 'code'
        assert not os.path.exists(folder) and builds.used == 1
    finally:
        shutil.rmtree(location, ignore_errors=True)
        shutil.rmtree(second, ignore_errors=True)


def test_functions_compiled_through_the_patch_compute_numpys_values_and_recompile_nothing():
    """In this process (the patch installed, a warm cache after the first
    compile): a function of several C nodes gives numpy's values, and the
    same graph compiled again finds every module in the cache (no g++, no
    parallel build started)."""
    import numpy as np
    import theano
    import theano.tensor as T
    from theano.gof import cmodule

    x, y = T.matrix(), T.matrix()
    outputs = [T.exp(x) * y + 3 * T.sqrt(abs(x)), T.tanh(x).sum(axis=0), T.dot(x, y.T),
               (x ** 2).max(axis=1), T.concatenate([x, y])]
    a = np.random.RandomState(0).rand(3, 4).astype(theano.config.floatX)
    b = np.random.RandomState(1).rand(3, 4).astype(theano.config.floatX)
    expected = [np.exp(a) * b + 3 * np.sqrt(abs(a)), np.tanh(a).sum(0), a.dot(b.T),
                (a ** 2).max(1), np.concatenate([a, b])]
    for got, want in zip(theano.function([x, y], outputs)(a, b), expected):
        assert np.allclose(got, want, rtol=1e-5), (got, want)
    builds = compile_speed._installed.get('builds')
    started = builds.started if builds is not None else 0
    compiled = []
    patched = cmodule.GCC_compiler.__dict__['compile_str']
    assert getattr(patched.__func__, '_seq2seq_patch', False), 'compile_speed is not installed'

    def counting(module_name, *args, **kwargs):
        compiled.append(module_name)
        return patched.__func__(module_name, *args, **kwargs)

    cmodule.GCC_compiler.compile_str = staticmethod(counting)
    try:
        again = theano.function([x, y], outputs)
    finally:
        cmodule.GCC_compiler.compile_str = patched
    assert compiled == [], compiled
    assert (builds.started if builds is not None else 0) == started
    for got, want in zip(again(a, b), expected):
        assert np.allclose(got, want, rtol=1e-5), (got, want)


def test_builds_nobody_took_are_dropped_with_their_folders():
    release = threading.Event()

    def slow(location, py_module, module_name, src_code):
        release.wait(30)
        open(os.path.join(location, module_name + '.so'), 'w').close()

    builds = compile_speed.ParallelBuilds(slow, jobs=1)
    running, queued = tempfile.mkdtemp(), tempfile.mkdtemp()
    jobs = [('a', builds.start('a', running, {'module_name': 'a', 'src_code': ''})),
            ('b', builds.start('b', queued, {'module_name': 'b', 'src_code': ''}))]
    builds.drop(jobs)
    assert not os.path.exists(queued)       # cancelled before it ran
    release.set()
    builds.pool.shutdown(wait=True)
    assert not os.path.exists(running)      # removed once g++ was done
    assert builds.take('a', tempfile.mkdtemp(), 'a') is None


def test_a_forked_child_gets_its_own_workers():
    builds = compile_speed.ParallelBuilds(lambda location, py_module, **kwargs: None, jobs=2)
    parent_pool = builds.pool
    assert builds.pool is parent_pool
    builds._pool_pid = -1  # as seen from a child after os.fork(): the threads are gone
    assert builds.pool is not parent_pool
    folder = tempfile.mkdtemp()
    builds.start('k', folder, {'module_name': 'm', 'src_code': ''})
    builds.pool.shutdown(wait=True)
    assert os.path.isdir(folder)


def test_a_new_compiler_gets_a_new_header():
    """The header's folder depends on the compiler's version and the options,
    so an upgraded g++ never meets a .gch built by the old one."""
    base = tempfile.mkdtemp(prefix='seq2seq-pch-')
    built = []

    class Recording(compile_speed.PrecompiledHeaders):
        def _build(self, folder, options):
            built.append(folder)
            return os.path.join(folder, compile_speed.PCH_NAME)

    try:
        old = Recording('g++', '11.2.0').flags(base, ['-O3'], ['/inc'], True)
        again = Recording('g++', '11.2.0').flags(base, ['-O3'], ['/inc'], True)
        new = Recording('g++', '12.2.0').flags(base, ['-O3'], ['/inc'], True)
        other = Recording('g++', '12.2.0').flags(base, ['-O2'], ['/inc'], True)
        assert old == again and old[0] == '-include'
        assert len({old[1], new[1], other[1]}) == 3
        assert built == [os.path.dirname(old[1]), os.path.dirname(old[1]),
                         os.path.dirname(new[1]), os.path.dirname(other[1])]
    finally:
        shutil.rmtree(base, ignore_errors=True)
