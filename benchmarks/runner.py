"""Run the benchmark rows, each in processes of its own, and measure them.

    python -m benchmarks [--size small|large|all] [--epochs N] [--quick]
                         [--rows ROW,ROW...] [--no-cold] [--compiledir DIR]

The main process only orchestrates: every measurement happens in a child
process (`python -m benchmarks.runner child ...`), which writes its numbers to
a JSON file. Per Theano row:

1. a *cold* child, on an empty Theano `base_compiledir`, times the compilation
   of the training function;
2. a *warm* child, on that same directory, times it again (the C modules now
   come from the cache), then trains: one warm-up batch, then whole epochs,
   each timed. Its peak resident memory (`ru_maxrss`) is the row's memory.

A PyTorch row is one child run by the PyTorch venv's Python (no compilation:
PyTorch runs eagerly). Decoding rows time greedy and beam search with a
compiled single-step function of the model's decoder (`seq2seq.inference`).
"""
from __future__ import print_function

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from benchmarks import models

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH_DIR = os.path.join(REPO, 'benchmarks')
SCRATCH = os.path.join(BENCH_DIR, '.scratch')
TORCH_PYTHON = os.path.join(BENCH_DIR, '.venv-torch', 'bin', 'python')
CHILD_LOG = os.path.join(SCRATCH, 'children.jsonl')   # every child's result, appended

THEANO_ROWS = ('seq2seq_scan', 'seq2seq_fused', 'attention', 'keras_repeat', 'keras_state',
               'seq2seq_fused_xent', 'keras_state_xent', 'attention_g2p_fused',
               'attention_g2p_scan', 'attention_g2p2_fused', 'attention_g2p2_scan',
               'teacher_g2p_fused', 'teacher_g2p_scan', 'teacher_g2p_gru_fused',
               'teacher_g2p_gru_scan', 'attention_g2p_gru_fused', 'attention_g2p_gru_scan')
TORCH_ROWS = ('torch_lstm', 'torch_cell', 'torch_attention', 'torch_attention_g2p',
              'torch_attention_g2p2', 'torch_teacher_g2p', 'torch_teacher_g2p_gru',
              'torch_attention_g2p_gru')
DECODE_ROWS = ('decode_greedy', 'decode_beam5', 'decode_g2p_greedy', 'decode_g2p_beam5')
ALL_ROWS = THEANO_ROWS + TORCH_ROWS + DECODE_ROWS
DEFAULT_EPOCHS = {'small': 2, 'large': 1}
BEAM_SIZE = 5
DECODE_BATCHES = {'quick': 2, 'full': 4}


class ChildError(RuntimeError):
    """A measuring child process failed; the message says how."""


# -- command line ---------------------------------------------------------------

def parse_rows(text):
    """'a,b c' -> ['a', 'b', 'c'], each checked against ALL_ROWS."""
    rows = [r for part in text for r in part.replace(',', ' ').split()]
    unknown = [r for r in rows if r not in ALL_ROWS]
    if unknown:
        raise argparse.ArgumentTypeError(
            'unknown row(s) %s; the rows are: %s' % (', '.join(unknown), ', '.join(ALL_ROWS)))
    if not rows:
        raise argparse.ArgumentTypeError('--rows needs at least one row name')
    return [r for r in ALL_ROWS if r in rows]


def positive_int(text):
    """argparse type: an int >= 1, with a clear message otherwise."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    if value < 1:
        raise argparse.ArgumentTypeError('expected a positive integer, got %d' % value)
    return value


def build_parser():
    parser = argparse.ArgumentParser(
        prog='python -m benchmarks',
        description='Benchmark the Seq2seq layer against Keras LSTMs and PyTorch '
                    '(see benchmarks/README.md).')
    parser.add_argument('--size', choices=['small', 'large', 'all'], default='all',
                        help='model size (default: all)')
    parser.add_argument('--epochs', type=positive_int, default=None,
                        help='timed epochs per row (default: %s)' % ', '.join(
                            '%d for %s' % (n, s) for s, n in sorted(DEFAULT_EPOCHS.items())))
    parser.add_argument('--quick', action='store_true',
                        help='tiny models and 1 epoch: a smoke run; the results '
                             'go to benchmarks/.scratch unless --results is given')
    parser.add_argument('--rows', nargs='+', default=None, metavar='ROW',
                        help='rows to run, comma- or space-separated (default: all): '
                             + ', '.join(ALL_ROWS))
    parser.add_argument('--no-cold', dest='cold', action='store_false',
                        help='skip the cold-compile measurement')
    parser.add_argument('--compiledir', default=None,
                        help="Theano base_compiledir for every Theano child (default: a "
                             "fresh temporary one per row); implies --no-cold. "
                             "'inherit' keeps the caller's THEANO_FLAGS as they are")
    parser.add_argument('--theano-flags', default='',
                        help="extra THEANO_FLAGS for every Theano child, e.g. 'cxx=' (no C "
                             "compilation: a fast but unrepresentative smoke run)")
    parser.add_argument('--results', default=None,
                        help='Markdown report to write (default: benchmarks/RESULTS.md, '
                             'or benchmarks/.scratch/RESULTS-quick.md with --quick)')
    parser.add_argument('--json', default=None,
                        help='raw results as JSON (default: benchmarks/.scratch/results.json)')
    parser.add_argument('--torch-python', default=TORCH_PYTHON,
                        help='Python of the PyTorch venv (default: benchmarks/.venv-torch)')
    return parser


def parse_args(argv):
    parser = build_parser()
    options = parser.parse_args(argv)
    if options.rows is None:
        options.rows = list(ALL_ROWS)
    else:
        try:
            options.rows = parse_rows(options.rows)
        except argparse.ArgumentTypeError as error:
            parser.error('--rows: %s' % error)
    if options.compiledir is not None:
        options.cold = False
        if options.compiledir != 'inherit':
            options.compiledir = os.path.abspath(options.compiledir)
    if any(r in TORCH_ROWS for r in options.rows) and not os.path.exists(options.torch_python):
        parser.error('PyTorch rows need %s: run `make bench` (it creates the venv), pass '
                     '--torch-python, or leave the torch rows out with --rows'
                     % os.path.relpath(options.torch_python))
    quick = 'quick' if options.quick else 'full'
    options.results = options.results or (
        os.path.join(SCRATCH, 'RESULTS-quick.md') if options.quick
        else os.path.join(BENCH_DIR, 'RESULTS.md'))
    options.json = options.json or os.path.join(SCRATCH, 'results-%s.json' % quick)
    return options


def selected_sizes(options):
    """[(size name, Size)] for --size and --quick."""
    names = ['small', 'large'] if options.size == 'all' else [options.size]
    table = models.QUICK_SIZES if options.quick else models.SIZES
    return [(name, table[name]) for name in names]


def epochs_for(options, size_name):
    if options.epochs is not None:
        return options.epochs
    return 1 if options.quick else DEFAULT_EPOCHS[size_name]


# -- children -------------------------------------------------------------------

def theano_env(compiledir, extra_flags=''):
    """The environment of a Theano child: its own base_compiledir (unless
    'inherit'), then `extra_flags` (a THEANO_FLAGS string)."""
    env = dict(os.environ, KERAS_BACKEND='theano')
    flags = [f for f in env.get('THEANO_FLAGS', '').split(',') if f.strip()]
    if compiledir != 'inherit':
        flags = [f for f in flags if not f.strip().startswith('base_compiledir=')]
        flags.append('base_compiledir=' + compiledir)
    flags += [f for f in extra_flags.split(',') if f.strip()]
    env['THEANO_FLAGS'] = ','.join(flags)
    return env


def run_child(python, arguments, env):
    """Run `python -m benchmarks.runner child ARGUMENTS` and return its JSON."""
    os.makedirs(SCRATCH, exist_ok=True)
    handle, out = tempfile.mkstemp(suffix='.json', prefix='child-', dir=SCRATCH)
    os.close(handle)
    command = [python, '-m', 'benchmarks.runner', 'child', '--out', out] + arguments
    try:
        completed = subprocess.run(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, universal_newlines=True)
        if completed.returncode != 0:
            tail = '\n'.join(completed.stdout.strip().splitlines()[-15:])
            raise ChildError('%s exited with %d:\n%s' % (' '.join(arguments), completed.returncode, tail))
        with open(out) as handle:
            return json.load(handle)
    finally:
        os.remove(out)


def child_arguments(row, size_name, options, phase):
    arguments = ['--row', row, '--size', size_name, '--phase', phase,
                 '--epochs', str(epochs_for(options, size_name))]
    return arguments + (['--quick'] if options.quick else [])


def probe(options):
    """What the Theano side offers: seq2seq implementations, decoding, versions."""
    compiledir = options.compiledir or os.path.join(SCRATCH, 'compiledir-probe')
    return run_child(sys.executable, ['--phase', 'probe'],
                     theano_env(compiledir, options.theano_flags))


def run_theano_row(row, size_name, options):
    """Cold compile in one child, warm compile + training in another."""
    compiledir = options.compiledir or tempfile.mkdtemp(prefix='seq2seq-bench-theano-')
    env = theano_env(compiledir, options.theano_flags)
    try:
        if row in DECODE_ROWS:
            result = run_child(sys.executable, child_arguments(row, size_name, options, 'decode'), env)
            # One child only: its compile is cold on a fresh dir, warm on a given one.
            fresh = options.compiledir is None
            result['compile_cold_s' if fresh else 'compile_warm_s'] = result.pop('compile_s')
            return result
        cold = None
        if options.cold:
            cold = run_child(sys.executable, child_arguments(row, size_name, options, 'compile'), env)
        result = run_child(sys.executable, child_arguments(row, size_name, options, 'train'), env)
    finally:
        if options.compiledir is None:
            shutil.rmtree(compiledir, ignore_errors=True)
    compile_s = result.pop('compile_s')
    if cold is None and options.compiledir is None:
        # --no-cold on a fresh dir: the training child's compile was the cold one.
        result['compile_cold_s'], result['compile_warm_s'] = compile_s, None
    else:
        result['compile_warm_s'] = compile_s
        result['compile_cold_s'] = cold['compile_s'] if cold else None
    result['peak_rss_cold_mib'] = cold['peak_rss_mib'] if cold else None
    return result


def run_torch_row(row, size_name, options):
    env = dict(os.environ)
    return run_child(options.torch_python, child_arguments(row, size_name, options, 'train'), env)


def unavailable_reason(row, capabilities):
    """Why `row` cannot run on this checkout, or None."""
    implementations = capabilities['implementations']
    if models.split_loss(row)[1] and not capabilities.get('fused_loss'):
        return 'seq2seq.losses.sparse_softmax_crossentropy is not present'
    if models.split_loss(row)[0] == 'seq2seq_fused' and 'fused' not in implementations:
        return ('the layers have no implementation argument' if implementations == [None]
                else 'implementation="fused" is not available')
    if row in DECODE_ROWS and not capabilities['decoding']:
        return 'seq2seq/decoding.py (greedy_search, beam_search) is not present'
    return None


def run_row(row, size_name, options, capabilities):
    """One row's result dict; failures are recorded, never turned into numbers."""
    base = {'row': row, 'size': size_name, 'arrangement': models.ARRANGEMENTS.get(row, '')}
    reason = unavailable_reason(row, capabilities)
    if reason:
        return dict(base, status='unavailable', note=reason)
    started = time.time()
    try:
        result = (run_torch_row if row in TORCH_ROWS else run_theano_row)(row, size_name, options)
    except ChildError as error:
        return dict(base, status='failed', note=str(error))
    return dict(base, status='ok', wall_s=time.time() - started, **result)


def busy_processes():
    """Other people's processes using CPU: 'name (%cpu)' for %cpu >= 10.

    `ps` reports %cpu over each process' lifetime: a rough but cheap sign of
    other compiles and tests sharing the machine. This process and its
    descendants (the rows, their compilers) are left out.
    """
    try:
        listing = subprocess.run(['ps', '-eo', 'pid,ppid,pcpu,comm', '--no-headers'],
                                 stdout=subprocess.PIPE, universal_newlines=True).stdout
    except OSError:
        return []
    processes = [line.split(None, 3) for line in listing.splitlines()]
    parent = {int(pid): int(ppid) for pid, ppid, _, _ in processes}

    def ours(pid):
        while pid > 1:
            if pid == os.getpid():
                return True
            pid = parent.get(pid, 1)
        return False

    return ['%s (%s%%)' % (name, pcpu) for pid, _, pcpu, name in processes
            if float(pcpu) >= 10 and not ours(int(pid))]


def git_revision():
    """HEAD's short hash, and the files of seq2seq/ changed since (if any)."""
    def git(*arguments):
        return subprocess.run(['git'] + list(arguments), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, universal_newlines=True).stdout.rstrip()
    try:
        head = git('rev-parse', '--short', 'HEAD')
        changed = git('status', '--porcelain', '--', 'seq2seq').splitlines()
    except OSError:
        return None
    if not head:
        return None
    return head + (' with uncommitted changes to %s' % ', '.join(
        line[3:] for line in changed) if changed else '')


def run_all(options, log=print):
    """Every selected row at every selected size: the raw results."""
    capabilities = probe(options)
    results = {'capabilities': capabilities, 'quick': options.quick, 'rows': [],
               'revision': git_revision(),
               'load_before': os.getloadavg(), 'busy': busy_processes(),
               'started': time.strftime('%Y-%m-%d %H:%M:%S %Z')}
    for size_name, size in selected_sizes(options):
        for row in options.rows:
            log('[bench] %s %s ...' % (size.name, row))
            result = run_row(row, size_name, options, capabilities)
            result.update(size=size.name, epochs=epochs_for(options, size_name),
                          load=os.getloadavg()[0])
            results['busy'] += [p for p in busy_processes() if p not in results['busy']]
            log('[bench] %s %s: %s' % (size.name, row, summary(result)))
            results['rows'].append(result)
    results['load_after'] = os.getloadavg()
    return results


def summary(result):
    if result['status'] != 'ok':
        return '%s (%s)' % (result['status'], result['note'].splitlines()[0])
    speed = result.get('samples_per_s') or result.get('sequences_per_s')
    return '%.1f/s, peak %.0f MiB' % (speed, result['peak_rss_mib'])


# -- measurement, inside a child -------------------------------------------------------

def peak_rss_mib():
    """This process' peak resident memory (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def timed_epochs(run_epoch, epochs):
    """Wall-clock seconds of each of `epochs` calls of run_epoch()."""
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        run_epoch()
        times.append(time.perf_counter() - start)
    return times


def throughput(samples, times):
    return {'epoch_s': times, 'samples_per_s': samples * len(times) / sum(times)}


def versions_theano():
    import keras
    import numpy
    import theano
    try:
        from importlib.metadata import version
        mkl = version('mkl')
    except Exception:  # noqa: BLE001 - the mkl package is optional
        mkl = None
    return {'python': sys.version.split()[0], 'theano': theano.__version__,
            'keras': keras.__version__, 'numpy': numpy.__version__, 'mkl': mkl,
            'blas_ldflags': theano.config.blas.ldflags, 'floatX': theano.config.floatX}


def child_probe(args):
    import importlib
    import seq2seq  # noqa: F401  (configures Theano and Keras)
    try:
        decoding = importlib.import_module('seq2seq.decoding')
        has_decoding = all(hasattr(decoding, f) for f in ('greedy_search', 'beam_search'))
    except ImportError:
        has_decoding = False
    try:
        has_fused_loss = hasattr(importlib.import_module('seq2seq.losses'),
                                 'sparse_softmax_crossentropy')
    except ImportError:
        has_fused_loss = False
    return {'implementations': models.seq2seq_implementations(), 'decoding': has_decoding,
            'fused_loss': has_fused_loss, 'versions': versions_theano()}


def child_theano(args, size):
    """Compile the training function; with phase 'train', train too."""
    import seq2seq  # noqa: F401  (configures Theano before Keras loads)
    if args.row in models.G2P_TRAIN_ROWS:
        return child_g2p_train(args)
    model = models.compile_keras_model(models.build_theano_model(args.row, size), args.row)
    start = time.perf_counter()
    model._make_train_function()    # what Keras' first fit() would compile
    result = {'compile_s': time.perf_counter() - start}
    if args.phase == 'train':
        x, y = models.token_data(size)
        y = y[..., None]            # sparse targets, one per output step
        model.train_on_batch(x[:size.batch], y[:size.batch])   # warm-up batch
        times = timed_epochs(lambda: model.fit(x, y, batch_size=size.batch, epochs=1,
                                               verbose=0, shuffle=False), args.epochs)
        result.update(throughput(size.samples, times))
        result['params'] = int(model.count_params())
    result['peak_rss_mib'] = peak_rss_mib()
    return result


def child_g2p_train(args):
    """An attention training row at G2P shapes (see `models.G2P_TRAIN`)."""
    g2p = models.QUICK_G2P_TRAIN if args.quick else models.G2P_TRAIN
    model = models.build_g2p_training(args.row, g2p)
    start = time.perf_counter()
    model._make_train_function()    # what Keras' first fit() would compile
    result = {'compile_s': time.perf_counter() - start}
    if args.phase == 'train':
        import numpy as np
        letters, phonemes = [np.array(a, dtype='int32') for a in models.g2p_training_data(g2p)]
        one_hot = np.eye(g2p['phonemes'], dtype='float32')[phonemes]
        inputs, targets, batch = [letters, one_hot], phonemes[..., None], g2p['batch']
        model.train_on_batch([letters[:batch], one_hot[:batch]], targets[:batch])  # warm-up
        times = timed_epochs(lambda: model.fit(inputs, targets, batch_size=batch, epochs=1,
                                               verbose=0, shuffle=False), args.epochs)
        result.update(throughput(g2p['words'], times))
        result['params'] = int(model.count_params())
    result['peak_rss_mib'] = peak_rss_mib()
    return result


def torch_training_result(model, train_batch, samples, batch, epochs):
    """Time a PyTorch row: a warm-up batch, then `epochs` whole epochs of
    `train_batch(start)` over `samples` in steps of `batch`."""
    import torch

    def train_epoch():
        for start in range(0, samples, batch):
            train_batch(start)

    train_batch(0)                                             # warm-up batch
    result = throughput(samples, timed_epochs(train_epoch, epochs))
    result.update({'compile_cold_s': None, 'compile_warm_s': None,
                   'params': sum(p.numel() for p in model.parameters()),
                   'peak_rss_mib': peak_rss_mib(),
                   'versions': {'python': sys.version.split()[0], 'torch': torch.__version__,
                                'torch_threads': torch.get_num_threads()}})
    return result


def child_torch_g2p(args):
    """The PyTorch twin of the attention training rows."""
    import torch
    torch.manual_seed(0)
    g2p = models.QUICK_G2P_TRAIN if args.quick else models.G2P_TRAIN
    kind, decoder_cells, cell = models.TORCH_G2P_ROWS[args.row]
    if kind == 'attention':
        model = models.build_torch_g2p_attention(g2p, decoder_cells, cell)
    else:
        model = models.build_torch_g2p_teacher(g2p, cell)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    letters, phonemes = [torch.tensor(a) for a in models.g2p_training_data(g2p)]
    one_hot = torch.nn.functional.one_hot(phonemes, g2p['phonemes']).float()
    batch = g2p['batch']

    def train_batch(start):
        optimizer.zero_grad()
        logits = model(letters[start:start + batch], one_hot[start:start + batch])
        loss = loss_fn(logits.reshape(-1, g2p['phonemes']),
                       phonemes[start:start + batch].reshape(-1))
        loss.backward()
        optimizer.step()

    return torch_training_result(model, train_batch, g2p['words'], batch, args.epochs)


def child_decode(args, size):
    """Time `seq2seq.inference.greedy_decode` / `beam_decode` of a model.

    compile_s: building the model and the first decode call of one source,
    which compiles (or, on a warm cache, loads) the start and step
    functions; first_decode_s: from the start of this function (importing
    seq2seq included) to that first result, the cold start of a command line.
    With phase 'decode', then times decoding whole batches of sources.
    """
    process_start = time.perf_counter()
    import seq2seq  # noqa: F401  (configures Theano before Keras loads)
    from seq2seq.search import model_search as inference
    g2p = args.row.startswith('decode_g2p')
    if g2p:
        shapes = models.QUICK_G2P if args.quick else models.G2P
        model = models.build_g2p_attention(shapes)
        x, batch_size = models.g2p_words(shapes), shapes['batch']
    else:
        model = models.build_theano_model('seq2seq_scan', size)   # scan, not the layer's default
        x, _ = models.token_data(size)
        x = x[:size.batch * DECODE_BATCHES['quick' if args.quick else 'full']]
        batch_size = size.batch
    beam = args.row.endswith('beam5')

    def decode(sources):
        if beam:
            return inference.beam_decode(model, sources, beam_size=BEAM_SIZE,
                                         batch_size=batch_size)
        return inference.greedy_decode(model, sources, batch_size=batch_size)

    start = time.perf_counter()
    decode(x[:1])                                   # compiles the start and step functions
    now = time.perf_counter()
    result = {'compile_s': now - start, 'first_decode_s': now - process_start}
    if args.phase == 'decode':
        decode(x[:2])                                          # warm-up
        start, cpu_start = time.perf_counter(), time.process_time()
        decode(x)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu_start
        # CPU seconds (all threads of this process): on a shared machine,
        # wall time also counts the time other processes held the cores.
        result.update({'sequences_per_s': len(x) / elapsed, 'decode_s': elapsed,
                       'decode_cpu_s': cpu, 'sequences_per_cpu_s': len(x) / cpu,
                       'sequences': len(x), 'batch_size': batch_size,
                       'params': int(model.count_params())})
    result['peak_rss_mib'] = peak_rss_mib()
    return result


def child_torch(args, size):
    """Train a PyTorch row (`torch_training_result`)."""
    if args.row in models.TORCH_G2P_ROWS:
        return child_torch_g2p(args)
    import torch
    torch.manual_seed(0)
    model = models.build_torch_model(args.row, size)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    x = torch.randint(1, size.vocab, (size.samples, size.input_length))
    y = torch.randint(1, size.vocab, (size.samples, size.output_length))

    def train_batch(start):
        xb, yb = x[start:start + size.batch], y[start:start + size.batch]
        optimizer.zero_grad()
        logits = model(xb)
        loss = loss_fn(logits.reshape(-1, size.vocab), yb.reshape(-1))
        loss.backward()
        optimizer.step()

    return torch_training_result(model, train_batch, size.samples, size.batch, args.epochs)


def child_main(argv):
    parser = argparse.ArgumentParser(prog='python -m benchmarks.runner child')
    parser.add_argument('--out', required=True)
    parser.add_argument('--phase', choices=['probe', 'compile', 'train', 'decode'], required=True)
    parser.add_argument('--row', choices=ALL_ROWS)
    parser.add_argument('--size', choices=sorted(models.SIZES))
    parser.add_argument('--epochs', type=positive_int, default=1)
    parser.add_argument('--quick', action='store_true')
    args = parser.parse_args(argv)
    size = (models.QUICK_SIZES if args.quick else models.SIZES).get(args.size)
    if args.phase == 'probe':
        result = child_probe(args)
    elif args.row in TORCH_ROWS:
        result = child_torch(args, size)
    elif args.row in DECODE_ROWS:
        result = child_decode(args, size)
    else:
        result = child_theano(args, size)
    with open(args.out, 'w') as handle:
        json.dump(result, handle)
    record = dict(result, row=args.row, phase=args.phase, size=args.size, quick=args.quick,
                  finished=time.strftime('%Y-%m-%d %H:%M:%S'))
    with open(CHILD_LOG, 'a') as handle:    # survives an interrupted run
        handle.write(json.dumps(record) + '\n')


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ['child']:
        return child_main(argv[1:])
    from benchmarks import report
    options = parse_args(argv)
    results = run_all(options)
    results['argv'] = ' '.join(argv)
    sizes = [size for _, size in selected_sizes(options)]
    epochs = {size.name: epochs_for(options, name) for name, size in selected_sizes(options)}
    report.write(results, options, sizes, epochs)
    return 0 if all(r['status'] != 'failed' for r in results['rows']) else 1


if __name__ == '__main__':
    sys.exit(main())
