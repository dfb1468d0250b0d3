"""Faster first compiles: a precompiled header, and g++ runs in parallel.

With an empty Theano cache, compiling the training function of a small
seq2seq model runs g++ on about 85 C modules, one after the other, at ~1.5 s
each: about two minutes. Two changes, neither of which changes a compiled
module or its cache key:

1. **Precompiled header.** Every Theano module starts with the same headers
   (`Python.h`, NumPy's, `<iostream>`: ~69,000 lines after preprocessing), and
   parsing them is most of a module's g++ time. `PrecompiledHeaders` builds
   them once per set of compiler options into `<compiledir>/seq2seq/pch/` and
   each module is compiled with `-include` of it: ~0.8 s instead of ~1.6 s.
   GCC uses a `.gch` only when it was built with compatible options and reads
   the header text otherwise, so the result is the same either way.
2. **Parallel g++.** Theano's linker makes the C thunk of one node after the
   other, compiling each missing module before it moves on. When the first
   module of a function turns out to be missing (a cold cache),
   `ParallelBuilds` generates the C source of every node of that function and
   starts g++ for each module the cache lacks, `jobs` at a time, in worker
   threads; the linker then goes on in its own order and takes each module
   from its finished build instead of compiling it. A build that failed is
   compiled again the usual way, so Theano reports any error as before.

Set the environment variable `SEQ2SEQ_COMPILE_JOBS` to the number of
parallel g++ runs (default: the number of CPUs this process may use); `1`
turns the parallel builds off. `install()` applies both; `seq2seq._theano.backend`
calls it at import.
"""
from __future__ import absolute_import

import functools
import hashlib
import os
import shutil
import tempfile
import threading

JOBS_VARIABLE = 'SEQ2SEQ_COMPILE_JOBS'

# The includes every Theano C module starts with (CLinker puts each Op's and
# Type's `c_headers` first); <vector> and <algorithm> come with half of them.
PCH_INCLUDES = ('<Python.h>', '<iostream>', '"theano_mod_helper.h"', '<math.h>',
                '<numpy/arrayobject.h>', '<numpy/arrayscalars.h>', '<vector>',
                '<algorithm>')
PCH_NAME = 'seq2seq_pch.h'

# Only sources that begin like this get the header: nothing of theirs comes
# before Python.h, so including it first changes nothing.
MODULE_PREFIX = '#include <Python.h>\n'

# Options that only concern linking; all the others must match between the
# precompiled header and the modules that use it.
_LINK_ONLY_PREFIXES = ('-l', '-L', '-Wl,', '-shared')


def compile_jobs(environ=None):
    """How many g++ runs to keep going at once (`SEQ2SEQ_COMPILE_JOBS`)."""
    environ = os.environ if environ is None else environ
    text = environ.get(JOBS_VARIABLE)
    if text is None or text.strip() == '':
        try:
            return max(1, len(os.sched_getaffinity(0)))
        except AttributeError:  # not on Linux
            return max(1, os.cpu_count() or 1)
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        raise ValueError('%s must be a positive integer (parallel g++ runs; 1 = one at a '
                         'time), got %r' % (JOBS_VARIABLE, text))
    return jobs


def work_dir(compiledir):
    """`<compiledir>/seq2seq`, holding the precompiled headers and the builds.

    Theano's cache deletes empty folders of its compiledir, so this one always
    holds a file.
    """
    path = os.path.join(compiledir, 'seq2seq')
    readme = os.path.join(path, 'README')
    if not os.path.exists(readme):
        os.makedirs(path, exist_ok=True)
        with open(readme, 'w') as stream:
            stream.write('Precompiled headers (pch/) and parallel builds (build/) of '
                         'seq2seq._theano.compile_speed. Safe to delete.\n')
    return path


def header_text():
    """The precompiled header's source: PCH_INCLUDES, one per line."""
    return ''.join('#include %s\n' % name for name in PCH_INCLUDES)


def header_options(preargs, include_dirs, hide_symbols):
    """The g++ options a precompiled header must be built with to be used by a
    module compiled with `preargs` and `include_dirs` (as `compile_str` is)."""
    options = ['-g'] + [a for a in preargs if not a.startswith(_LINK_ONLY_PREFIXES)]
    options += ['-I' + d for d in include_dirs]
    if hide_symbols:
        options.append('-fvisibility=hidden')
    return options


class PrecompiledHeaders(object):
    """One precompiled header per set of compiler options, built on first use."""

    def __init__(self, compiler, compiler_version=''):
        self.compiler = compiler
        self.compiler_version = compiler_version
        self._headers = {}   # options digest -> header path, or None if the build failed
        self._lock = threading.Lock()
        self._building = {}  # options digest -> lock held while it is built

    def flags(self, compiledir, preargs, include_dirs, hide_symbols):
        """`['-include', header]` for a module compiled with these options, or
        [] when no header could be built."""
        options = header_options(preargs, include_dirs, hide_symbols)
        # A new compiler or header list gets a new folder (GCC would ignore
        # the old .gch anyway, and the module would compile more slowly).
        identity = [self.compiler, self.compiler_version, header_text()] + options
        digest = hashlib.sha256('\0'.join(identity).encode()).hexdigest()[:20]
        with self._lock:
            if digest in self._headers:
                header = self._headers[digest]
                return ['-include', header] if header else []
            building = self._building.setdefault(digest, threading.Lock())
        with building:  # one thread builds, the others wait for it
            with self._lock:
                if digest in self._headers:
                    header = self._headers[digest]
                    return ['-include', header] if header else []
            header = self._build(os.path.join(work_dir(compiledir), 'pch', digest), options)
            with self._lock:
                self._headers[digest] = header
        return ['-include', header] if header else []

    def _build(self, folder, options):
        """Write the header and its .gch into `folder` (kept if already there);
        the header's path, or None when g++ failed."""
        from theano.gof.cmodule import output_subprocess_Popen
        header = os.path.join(folder, PCH_NAME)
        if os.path.exists(header + '.gch'):
            return header
        os.makedirs(folder, exist_ok=True)
        # Another process may build the same header at the same time: each
        # writes its own files and renames them, so a compiler reading them
        # sees a whole header and a whole .gch, or none.
        handle, text_part = tempfile.mkstemp(prefix=PCH_NAME + '.', suffix='.h', dir=folder)
        with os.fdopen(handle, 'w') as stream:
            stream.write(header_text())
        os.replace(text_part, header)
        handle, partial = tempfile.mkstemp(prefix=PCH_NAME + '.', suffix='.part', dir=folder)
        os.close(handle)
        try:
            _, _, status = output_subprocess_Popen(
                [self.compiler, '-x', 'c++-header'] + options + ['-o', partial, header])
            if status != 0:
                return None
            os.replace(partial, header + '.gch')
        finally:
            if os.path.exists(partial):
                os.remove(partial)
        return header


class _Job(object):
    """A module being compiled in a worker thread into its own folder."""

    def __init__(self, future, folder):
        self.future = future
        self.folder = folder


def job_key(module_name, src_code, include_dirs, lib_dirs, libs, preargs):
    """What makes two `compile_str` calls produce the same module."""
    parts = [module_name, src_code] + ['\1'.join(x or ()) for x in
                                       (include_dirs, lib_dirs, libs, preargs)]
    return hashlib.sha256('\0'.join(parts).encode('utf-8')).hexdigest()


class ParallelBuilds(object):
    """g++ runs started ahead of Theano's linker, `jobs` at a time.

    `compile_module(location, py_module, **compile_kwargs)` compiles one
    module (in a worker thread here).
    """

    def __init__(self, compile_module, jobs):
        self.compile_module = compile_module
        self.jobs = jobs
        self._pool = self._pool_pid = None
        self._jobs = {}                 # job_key -> _Job
        self._lock = threading.Lock()
        self.started = 0                # builds started (for tests and curious users)
        self.used = 0                   # builds the linker took

    @property
    def pool(self):
        """The worker threads; new ones in a forked child, which has none."""
        from concurrent.futures import ThreadPoolExecutor
        if self._pool_pid != os.getpid():
            self._pool = ThreadPoolExecutor(max_workers=self.jobs,
                                            thread_name_prefix='seq2seq-g++')
            self._pool_pid = os.getpid()
            self._jobs = {}
        return self._pool

    def start(self, key, folder, compile_kwargs):
        """Compile into `folder` in a worker thread unless `key` is under way."""
        with self._lock:
            pool = self.pool
            if key in self._jobs:
                return None
            future = pool.submit(self.compile_module, folder, False, **compile_kwargs)
            job = self._jobs[key] = _Job(future, folder)
            self.started += 1
        return job

    def take(self, key, location, module_name):
        """Move a finished build of `key` into `location`; the library's path,
        or None (no such build, or it failed)."""
        from theano.gof.cmodule import get_lib_extension
        with self._lock:
            job = self._jobs.pop(key, None)
        if job is None:
            return None
        try:
            job.future.result()
        except Exception:  # compiled again by Theano, which reports the error
            shutil.rmtree(job.folder, ignore_errors=True)
            return None
        for name in os.listdir(job.folder):
            os.replace(os.path.join(job.folder, name), os.path.join(location, name))
        os.rmdir(job.folder)
        library = os.path.join(location, '%s.%s' % (module_name, get_lib_extension()))
        if not os.path.isfile(library):
            return None
        with self._lock:
            self.used += 1
        return library

    def drop(self, jobs):
        """Forget `jobs` the linker never took; their folders go once g++ is done."""
        for key, job in jobs:
            with self._lock:
                if self._jobs.get(key) is not job:
                    continue  # taken
                del self._jobs[key]
            if job.future.cancel():
                shutil.rmtree(job.folder, ignore_errors=True)
            else:
                folder = job.folder
                job.future.add_done_callback(
                    lambda _, folder=folder: shutil.rmtree(folder, ignore_errors=True))


class _LinkerFrame(object):
    """The nodes a `VM_Linker.make_all` call is making thunks for."""

    def __init__(self, order):
        self.order = order
        self.prefetched = False
        self.jobs = []   # (key, _Job) started for this frame


_frames = threading.local()


def _frame_stack():
    if not hasattr(_frames, 'stack'):
        _frames.stack = []
    return _frames.stack


def _makes_c_thunk(op):
    """Whether Theano's linker would compile a C module for `op` itself (Ops
    with their own `make_thunk`, such as Scan, compile in their own way)."""
    from theano.gof.op import Op
    return type(op).make_thunk is Op.make_thunk and hasattr(op, 'c_code')


def node_module(node):
    """The `compile_str` arguments of the C module Theano would compile for
    `node` now (module_name, src_code, include_dirs, lib_dirs, libs, preargs),
    or None when the cache already has it or the node has no C code. Mirrors
    `Op.make_c_thunk` and `CLinker.compile_cmodule`."""
    from theano.gof.cc import CLinker, get_module_cache
    from theano.gof.cmodule import get_module_hash
    from theano.gof.fg import FunctionGraph
    if not _makes_c_thunk(node.op):
        return None
    if any(getattr(v.type, 'dtype', '') == 'float16' for v in node.inputs + node.outputs):
        return None  # Theano falls back to Python code for these
    try:
        node.op.prepare_node(node, storage_map=None, compute_map=None, impl='c')
        linker = CLinker().accept(FunctionGraph(node.inputs, node.outputs), no_recycling=[])
        key = linker.cmodule_key()
        cache = get_module_cache()
        if key is not None and key in cache.entry_from_key:
            return None
        module = linker.get_dynamic_module()
        src_code = module.code()
        if key is not None and get_module_hash(src_code, key) in cache.module_hash_to_key_data:
            return None
        kwargs = dict(module_name=module.code_hash, src_code=src_code,
                      include_dirs=linker.header_dirs(), lib_dirs=linker.lib_dirs(),
                      libs=linker.libraries(), preargs=linker.compile_args())
    except Exception:  # no C code, or not compilable: the linker decides as usual
        return None
    return kwargs


def prefetch(frame, builds, compiledir):
    """Start a build for every module of `frame` the cache lacks."""
    frame.prefetched = True
    try:
        folder = os.path.join(work_dir(compiledir), 'build')
        os.makedirs(folder, exist_ok=True)
        for node in frame.order:
            kwargs = node_module(node)
            if kwargs is None:
                continue
            key = job_key(kwargs['module_name'], kwargs['src_code'], kwargs['include_dirs'],
                          kwargs['lib_dirs'], kwargs['libs'], kwargs['preargs'])
            job_folder = tempfile.mkdtemp(dir=folder)
            job = builds.start(key, job_folder, kwargs)
            if job is None:  # the same module is already being built
                os.rmdir(job_folder)
            else:
                frame.jobs.append((key, job))
    except OSError:  # e.g. a full disk: the linker compiles the rest itself
        pass


def compile_with_header(compile_str, headers):
    """`compile_str`, with the precompiled header for Theano's modules."""
    def compile_module(location, py_module, module_name, src_code, include_dirs=None,
                       lib_dirs=None, libs=None, preargs=None, hide_symbols=True):
        import theano
        from theano.gof import cmodule
        preargs = list(preargs or ())
        if src_code.startswith(MODULE_PREFIX):
            preargs += headers.flags(theano.config.compiledir, preargs,
                                     list(include_dirs or ()) + cmodule.std_include_dirs(),
                                     hide_symbols)
        return compile_str(module_name, src_code, location=location,
                           include_dirs=include_dirs, lib_dirs=lib_dirs, libs=libs,
                           preargs=preargs, py_module=py_module, hide_symbols=hide_symbols)
    return compile_module


def compile_str_wrapper(compile_module, builds):
    """A `GCC_compiler.compile_str` that compiles with `compile_module`, takes
    a parallel build when there is one, and starts them on the first miss."""
    def wrapper(module_name, src_code, location=None, include_dirs=None, lib_dirs=None,
                libs=None, preargs=None, py_module=True, hide_symbols=True):
        import theano
        from theano.gof import cmodule
        kwargs = dict(module_name=module_name, src_code=src_code, include_dirs=include_dirs,
                      lib_dirs=lib_dirs, libs=libs, preargs=preargs)
        stack = _frame_stack()
        if (builds is not None and py_module and location is not None
                and src_code.startswith(MODULE_PREFIX) and hide_symbols):
            if stack and not stack[-1].prefetched:
                prefetch(stack[-1], builds, theano.config.compiledir)
            key = job_key(module_name, src_code, include_dirs, lib_dirs, libs, preargs)
            library = builds.take(key, location, module_name)
            if library is not None:
                open(os.path.join(location, '__init__.py'), 'w').close()
                return cmodule.dlimport(library)
        return compile_module(location, py_module, hide_symbols=hide_symbols, **kwargs)
    wrapper._seq2seq_patch = True
    return wrapper


def make_all_wrapper(make_all, builds):
    """Wrap `VM_Linker.make_all` so that a cache miss inside it can start the
    builds of all its nodes."""
    @functools.wraps(make_all)
    def wrapper(self, *args, **kwargs):
        if self.c_thunks is False:  # Python thunks only: nothing to compile
            return make_all(self, *args, **kwargs)
        frame = _LinkerFrame(self.schedule(self.fgraph))
        stack = _frame_stack()
        stack.append(frame)
        try:
            return make_all(self, *args, **kwargs)
        finally:
            stack.pop()
            builds.drop(frame.jobs)
    wrapper._seq2seq_patch = True
    return wrapper


_installed = {}


def install(environ=None):
    """Apply the precompiled header and (jobs > 1) the parallel builds to
    Theano. Idempotent; returns the `ParallelBuilds`, or None when off."""
    import theano
    from theano.gof import cmodule, vm
    if _installed:
        return _installed['builds']
    jobs = compile_jobs(environ)
    headers = PrecompiledHeaders(theano.config.cxx, str(cmodule.gcc_version()))
    compile_module = compile_with_header(cmodule.GCC_compiler.compile_str, headers)
    builds = ParallelBuilds(compile_module, jobs) if jobs > 1 else None
    cmodule.GCC_compiler.compile_str = staticmethod(compile_str_wrapper(compile_module, builds))
    if builds is not None:
        vm.VM_Linker.make_all = make_all_wrapper(vm.VM_Linker.make_all, builds)
    _installed['builds'] = builds
    return builds
