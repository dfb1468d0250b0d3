"""Turn the runner's raw results into a table and benchmarks/RESULTS.md.

Ratios compare our `Seq2seq` rows with the structurally closest row of each
other framework at the same size: `keras_state` (Keras' LSTMs, decoder started
from the encoder state; `keras_state_xent` for a `*_xent` row, so that both
sides use the same loss) and `torch_cell` (PyTorch, LSTMCell loop feeding back
its output, as `Seq2seq` does). Above 1 means ours is faster.
"""
import json
import os
import platform
import time

from benchmarks.models import ARRANGEMENTS, XENT_SUFFIX

KERAS_REFERENCE = 'keras_state'
TORCH_REFERENCE = 'torch_cell'
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

TRAIN_COLUMNS = ('size', 'row', 'train samples/s', 'ours/Keras', 'ours/PyTorch',
                 'compile cold (s)', 'compile warm (s)', 'peak RSS (MiB)', 'params', 'load')
DECODE_COLUMNS = ('size', 'row', 'sequences/s', 'compile warm (s)', 'compile cold (s)',
                  'peak RSS (MiB)', 'load')


def sanitize(text):
    """Machine paths out of `text`: the repository becomes '.', home '~'."""
    text = str(text).replace(REPO + os.sep, '').replace(REPO, '.')
    return text.replace(os.path.expanduser('~'), '~')


def _number(value, digits=1):
    return '—' if value is None else '%.*f' % (digits, value)


def _ok_row(results, size, row):
    for result in results['rows']:
        if result['size'] == size and result['row'] == row and result['status'] == 'ok':
            return result
    return None


# The attention training rows have their own PyTorch twin and no Keras one:
# row prefix -> the twin (the first prefix a row starts with: longer first).
G2P_TORCH_REFERENCES = {'attention_g2p_gru_': 'torch_attention_g2p_gru',
                        'attention_g2p_': 'torch_attention_g2p',
                        'attention_g2p2_': 'torch_attention_g2p2',
                        'teacher_g2p_gru_': 'torch_teacher_g2p_gru',
                        'teacher_g2p_': 'torch_teacher_g2p'}


# Rows with a PyTorch twin of their own, by name.
TORCH_TWINS = {'attention': 'torch_attention'}


def _g2p_prefix(row):
    return next((p for p in G2P_TORCH_REFERENCES if row.startswith(p)), None)


def _ratio(result, reference):
    if reference is None or not (result['row'].startswith('seq2seq_')
                                 or _g2p_prefix(result['row']) or result['row'] in TORCH_TWINS):
        return '—'
    return '%.2f' % (result['samples_per_s'] / reference['samples_per_s'])


def train_line(result, results):
    """One table line for a training row that ran."""
    keras_reference = KERAS_REFERENCE
    if result['row'].endswith(XENT_SUFFIX):
        keras_reference += XENT_SUFFIX     # the same loss on both sides
    keras = _ok_row(results, result['size'], keras_reference)
    torch = _ok_row(results, result['size'], TORCH_REFERENCE)
    prefix = _g2p_prefix(result['row'])
    if prefix:
        keras, torch = None, _ok_row(results, result['size'], G2P_TORCH_REFERENCES[prefix])
    if result['row'] in TORCH_TWINS:
        keras, torch = None, _ok_row(results, result['size'], TORCH_TWINS[result['row']])
    return (result['size'], result['row'], _number(result['samples_per_s']),
            _ratio(result, keras), _ratio(result, torch),
            _number(result.get('compile_cold_s')), _number(result.get('compile_warm_s')),
            _number(result['peak_rss_mib'], 0), '{:,}'.format(result['params']),
            _number(result.get('load'), 2))


def decode_line(result):
    return (result['size'], result['row'], _number(result['sequences_per_s']),
            _number(result.get('compile_warm_s')), _number(result.get('compile_cold_s')),
            _number(result['peak_rss_mib'], 0), _number(result.get('load'), 2))


def markdown_table(columns, lines):
    widths = [max(len(str(c)) for c in column) for column in zip(columns, *lines)]
    fmt = '| ' + ' | '.join('%%-%ds' % w for w in widths) + ' |'
    rule = '|' + '|'.join('-' * (w + 2) for w in widths) + '|'
    return '\n'.join([fmt % tuple(columns), rule] + [fmt % tuple(line) for line in lines])


def tables(results):
    """The Markdown tables (training, decoding) and the notes on rows that did not run."""
    ok = [r for r in results['rows'] if r['status'] == 'ok']
    train = [train_line(r, results) for r in ok if 'samples_per_s' in r]
    decode = [decode_line(r) for r in ok if 'sequences_per_s' in r]
    parts = []
    if train:
        parts.append(markdown_table(TRAIN_COLUMNS, train))
    if decode:
        parts.append('Decoding:\n\n' + markdown_table(DECODE_COLUMNS, decode))
    missing = ['- %s %s: %s — %s' % (r['size'], r['row'], r['status'],
                                     sanitize(r['note']).replace('\n', '\n    '))
               for r in results['rows'] if r['status'] != 'ok']
    if missing:
        parts.append('Rows without numbers:\n\n' + '\n'.join(missing))
    return '\n\n'.join(parts)


def cpu_model():
    try:
        with open('/proc/cpuinfo') as handle:
            for line in handle:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown'


def memory_gib():
    try:
        with open('/proc/meminfo') as handle:
            kib = int(handle.readline().split()[1])
        return '%.0f GiB' % (kib / 2.0 ** 20)
    except (OSError, ValueError, IndexError):
        return 'unknown'


def torch_versions(results):
    for result in results['rows']:
        if 'versions' in result and 'torch' in result['versions']:
            return result['versions']
    return None


def machine_description(results):
    versions = results['capabilities']['versions']
    torch = torch_versions(results)
    lines = [
        '- CPU: %s, %d cores (`os.cpu_count()`), %s RAM; %s' % (
            cpu_model(), os.cpu_count(), memory_gib(), platform.platform()),
        '- BLAS as Theano sees it (`theano.config.blas.ldflags`): `%s`' % sanitize(versions['blas_ldflags']),
        '- Theano side: Python %s, theano-pymc %s, Keras %s, numpy %s, mkl %s, floatX=%s' % (
            versions['python'], versions['theano'], versions['keras'], versions['numpy'],
            versions['mkl'], versions['floatX']),
        ('- PyTorch side: Python %s, torch %s, %d intra-op threads' % (
            torch['python'], torch['torch'], torch['torch_threads']))
        if torch else '- PyTorch side: not run',
        '- Date: %s; load average (1, 5, 15 min) before %s, after %s' % (
            results['started'], _loads(results['load_before']), _loads(results['load_after'])),
        '- Code: %s' % (results.get('revision') or 'unknown revision'),
    ]
    return '\n'.join(lines)


def activity_note(results):
    """A warning when other processes shared the machine during the run."""
    loads = [results['load_before'][0]] + [r['load'] for r in results['rows'] if 'load' in r]
    busy = results.get('busy') or []
    # The run's own processes use every core (BLAS and PyTorch threads): a
    # load up to the core count is the run itself.
    if max(loads) <= os.cpu_count() and not busy:
        return ''
    return ('**Other processes were running during this run** (1-minute load average up to '
            '%.1f on %d cores; busy processes seen: %s), so the numbers are lower and noisier '
            'than on an idle machine.' % (max(loads), os.cpu_count(),
                                          ', '.join(busy[:12]) or 'none caught by ps'))


def _loads(loads):
    return ', '.join('%.2f' % value for value in loads)


def arrangements(results):
    rows = []
    for result in results['rows']:
        if result['row'] not in rows:
            rows.append(result['row'])
    return '\n'.join('- `%s`: %s' % (row, ARRANGEMENTS[row]) for row in rows if row in ARRANGEMENTS)


def render(results, sizes_note):
    """The whole RESULTS.md text."""
    quick = ' (--quick smoke run: tiny models, not real numbers)' if results['quick'] else ''
    return '\n\n'.join([
        '# Benchmark results%s' % quick,
        'Produced by `make bench` (`python -m benchmarks %s`); see README.md for '
        'what each row and column is.' % results.get('argv', ''),
        '## Machine\n\n' + machine_description(results),
        activity_note(results),
        '## Sizes\n\n' + sizes_note,
        '## Training\n\nSamples/s: whole epochs after a warm-up batch. Ratios: our '
        'row\'s samples/s over `%s` (Keras; `%s%s` for a `*%s` row, the same loss on '
        'both sides) and `%s` (PyTorch, whose CrossEntropyLoss is fused) at the same size; '
        'above 1 means ours is faster. Compile: the Theano training function, cold = empty '
        'compile dir, warm = the same dir in a new process. Peak RSS: `ru_maxrss` of the '
        'process that trained the row. Load: 1-minute load average when the row ended '
        '(2 = both cores busy).' % (KERAS_REFERENCE, KERAS_REFERENCE, XENT_SUFFIX,
                                    XENT_SUFFIX, TORCH_REFERENCE),
        tables(results),
        '## Rows\n\n' + arrangements(results),
    ]).replace('\n\n\n\n', '\n\n') + '\n'


def sizes_text(sizes, epochs):
    return '\n'.join(
        '- %s: vocabulary %d, embedding %d, hidden %d, %d steps in / %d out, depth %d, '
        'batch %d, %d samples per epoch, %d timed epoch(s)' % (
            s.name, s.vocab, s.embed, s.hidden, s.input_length, s.output_length, s.depth,
            s.batch, s.samples, epochs[s.name]) for s in sizes)


def write(results, options, sizes, epochs, log=print):
    """Print the table; write the Markdown report and the raw JSON."""
    text = render(results, sizes_text(sizes, epochs))
    log('\n' + tables(results) + '\n')
    for path, content in ((options.results, text),
                          (options.json, json.dumps(results, indent=1, sort_keys=True))):
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        with open(path, 'w') as handle:
            handle.write(content)
        log('[bench] wrote %s' % os.path.relpath(path))


def timestamp():
    return time.strftime('%Y-%m-%d %H:%M:%S %Z')
