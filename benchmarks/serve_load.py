"""Load test of `seq2seq serve`: words/s and latency under concurrent clients.

    python benchmarks/serve_load.py --model-dir g2p_output/model --beam-size 5

Starts `seq2seq serve` on a free localhost port (127.0.0.1 only), waits
until /health answers 200, then for 1, 8 and 32 concurrent clients sends
one word per request, then 16 words per request, each client on its own
keep-alive connection, each request the next words of the list. A cell
stops after --requests requests or --seconds seconds, whichever comes
first, so the whole run is bounded (6 cells plus loading). The baseline is
`seq2seq predict`'s batch decoding of the same words with the same beam
(`Translator.translate` with --batch-size 64, what predict runs, timed
after a warm-up in a child process, loading excluded; predict's whole run,
loading included, is reported beside it). Prints a Markdown table (words/s,
its ratio to predict's, p50 and p99 latency in ms, errors), the machine and
the command; the server stops (SIGTERM) at the end.

The words: --words FILE (one per line, or TSV: the first column), else the
model directory's validation file (config.json's "valid"); distinct ones
that the model reads whole, in the file's order, at most --max-words.
"""
from __future__ import print_function

import argparse
import http.client
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CLIENTS = (1, 8, 32)
WORDS_PER_REQUEST = (1, 16)

# Run in a child: predict's decoding of the words, timed without loading.
BASELINE = r'''
import json, sys, time
import seq2seq
from seq2seq.app.translator import Translator
model_dirs, path, beam_size, batch_size = json.loads(sys.argv[1])
translator = Translator(model_dirs)
with open(path) as f:
    sources = [translator.tokenize_source(line) for line in f.read().splitlines()]
translator.translate(sources[:batch_size], beam_size=beam_size, batch_size=batch_size)  # compile
started = time.time()
translator.translate(sources, beam_size=beam_size, batch_size=batch_size)
print(json.dumps({'seconds': time.time() - started, 'words': len(sources)}))
'''


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--model-dir', required=True, nargs='+', metavar='DIR',
                        help='the model served (several: an ensemble), e.g. the demo\'s '
                        'g2p_output/model (`make demo`)')
    parser.add_argument('--words', metavar='FILE',
                        help='the words sent (default: the model\'s validation file)')
    parser.add_argument('--max-words', type=int, default=2000,
                        help='the most distinct words used (default: %(default)s)')
    parser.add_argument('--beam-size', type=int, default=5, help='(default: %(default)s)')
    parser.add_argument('--workers', type=int, default=1,
                        help='server worker processes (default: %(default)s)')
    parser.add_argument('--max-batch', type=int, default=64, help='(default: %(default)s)')
    parser.add_argument('--batch-wait-ms', type=float, default=5.0,
                        help='(default: %(default)s)')
    parser.add_argument('--requests', type=int, default=3000,
                        help='the most requests per cell (default: %(default)s)')
    parser.add_argument('--seconds', type=float, default=20.0,
                        help='the most seconds per cell (default: %(default)s)')
    return parser.parse_args(argv)


def read_words(args):
    """The distinct words of --words (or the model's validation file) that
    the model reads whole, in order, at most --max-words."""
    with open(os.path.join(args.model_dir[0], 'config.json')) as f:
        config = json.load(f)
    path = args.words or config.get('valid') or config.get('train')
    if not path or not os.path.exists(path):
        sys.exit('serve_load: no words: give --words FILE (%s has no validation file)'
                 % args.model_dir[0])
    words, seen = [], set()
    with open(path, encoding='utf-8') as f:
        for line in f:
            word = line.split('\t')[0].strip()
            length = len(word) if config['source_tokens'] == 'chars' else len(word.split())
            if word and word not in seen and length <= config['input_length']:
                seen.add(word)
                words.append(word)
            if len(words) == args.max_words:
                break
    return words, path


def free_port():
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


def request(connection, method, path, body=None):
    """(status, decoded answer) on a keep-alive connection."""
    connection.request(method, path, body=body, headers={'Content-Type': 'application/json'})
    response = connection.getresponse()
    return response.status, json.loads(response.read().decode('utf-8'))


def wait_until_ready(port, process, seconds=900):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if process.poll() is not None:
            sys.exit('serve_load: the server stopped (exit status %d)' % process.returncode)
        try:
            connection = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
            if request(connection, 'GET', '/translator/health')[0] == 200:
                return
        except (OSError, http.client.HTTPException, ValueError):
            pass
        time.sleep(0.2)
    sys.exit('serve_load: the server was not ready after %d s' % seconds)


def run_cell(port, words, clients, per_request, max_requests, seconds):
    """{'words_per_s', 'p50', 'p99', 'errors', 'requests'} of `clients`
    threads sending `per_request` words per request."""
    lock = threading.Lock()
    state = dict(next=0, sent=0)
    latencies, errors, answered = [], [], [0]
    deadline = time.time() + seconds

    def client():
        connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
        while True:
            with lock:
                if state['sent'] >= max_requests or time.time() >= deadline:
                    return
                state['sent'] += 1
                start = state['next']
                state['next'] = (start + per_request) % len(words)
            batch = [words[(start + i) % len(words)] for i in range(per_request)]
            body = json.dumps([{'src': word, 'id': 0} for word in batch]).encode('utf-8')
            started = time.time()
            try:
                status, answer = request(connection, 'POST', '/translator/translate', body)
                ok = status == 200 and len(answer[0]) == per_request
            except (OSError, http.client.HTTPException, ValueError) as error:
                status, answer, ok = None, str(error), False
                connection.close()
                connection = http.client.HTTPConnection('127.0.0.1', port, timeout=60)
            elapsed = time.time() - started
            with lock:
                latencies.append(elapsed)
                if ok:
                    answered[0] += per_request
                else:
                    errors.append((status, answer))

    threads = [threading.Thread(target=client) for _ in range(clients)]
    started = time.time()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.time() - started
    latencies.sort()

    def percentile(p):
        return 1000 * latencies[min(len(latencies) - 1, int(p * len(latencies)))]

    return dict(words_per_s=answered[0] / elapsed, p50=percentile(0.50), p99=percentile(0.99),
                errors=len(errors), requests=len(latencies), first_error=errors[:1])


def baseline(args, words_path):
    """(words/s of predict's batch decoding, seconds of the whole `seq2seq
    predict` run, loading included)."""
    code = subprocess.run([sys.executable, '-c', BASELINE,
                           json.dumps([args.model_dir, words_path, args.beam_size, 64])],
                          cwd=ROOT, stdout=subprocess.PIPE, universal_newlines=True, check=True)
    timed = json.loads(code.stdout.strip().splitlines()[-1])
    started = time.time()
    subprocess.run([sys.executable, '-m', 'seq2seq', 'predict', '--model-dir'] + args.model_dir
                   + ['--input', words_path, '--beam-size', str(args.beam_size),
                      '--batch-size', '64'], cwd=ROOT, stdout=subprocess.DEVNULL, check=True)
    return timed['words'] / timed['seconds'], time.time() - started


def cpu_name():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or 'unknown CPU'


def main(argv=None):
    args = parse_args(argv)
    words, source = read_words(args)
    folder = tempfile.mkdtemp(prefix='serve_load_')
    words_path = os.path.join(folder, 'words.txt')
    with open(words_path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(words) + '\n')
    print('serve_load: %d words from %s; beam %d' % (len(words), source, args.beam_size),
          file=sys.stderr)
    predict_words_per_s, predict_seconds = baseline(args, words_path)
    port = free_port()
    log_path = os.path.join(folder, 'serve.log')
    with open(log_path, 'wb') as log:
        server = subprocess.Popen(
            [sys.executable, '-m', 'seq2seq', 'serve', '--model-dir'] + args.model_dir
            + ['--host', '127.0.0.1', '--port', str(port), '--beam-size', str(args.beam_size),
               '--workers', str(args.workers), '--threads', str(max(CLIENTS) * 2),
               '--max-batch', str(args.max_batch), '--batch-wait-ms', str(args.batch_wait_ms)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    rows = []
    try:
        wait_until_ready(port, server)
        run_cell(port, words, 8, 1, 50, 10)        # warm the connections and the search
        for per_request in WORDS_PER_REQUEST:
            for clients in CLIENTS:
                cell = run_cell(port, words, clients, per_request, args.requests, args.seconds)
                rows.append((clients, per_request, cell))
                print('serve_load: %d client(s), %d word(s) per request: %.0f words/s, %d '
                      'error(s)%s' % (clients, per_request, cell['words_per_s'], cell['errors'],
                                      ' %r' % cell['first_error'] if cell['errors'] else ''),
                      file=sys.stderr)
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            server.wait(120)
        except subprocess.TimeoutExpired:
            server.kill()
    load = os.getloadavg()
    print('## `seq2seq serve` under load\n')
    print('- Command: `python benchmarks/serve_load.py %s`' % ' '.join(
        sys.argv[1:] if argv is None else argv))
    print('- Model: %s; %d distinct words from %s; beam %d; server: %d worker(s), '
          '--max-batch %d, --batch-wait-ms %g' % (' '.join(args.model_dir), len(words), source,
                                                   args.beam_size, args.workers,
                                                   args.max_batch, args.batch_wait_ms))
    print('- Machine: %s, %d cores; Python %s; load average after (1, 5, 15 min): '
          '%.2f, %.2f, %.2f' % (cpu_name(), os.cpu_count(), platform.python_version(), *load))
    print('- Baseline: `seq2seq predict --beam-size %d --batch-size 64` decodes %.0f words/s '
          '(loading excluded; the whole predict run took %.1f s)\n'
          % (args.beam_size, predict_words_per_s, predict_seconds))
    print('| clients | words/request | requests | words/s | / predict | p50 (ms) | p99 (ms) '
          '| errors |')
    print('|---|---|---|---|---|---|---|---|')
    for clients, per_request, cell in rows:
        print('| %d | %d | %d | %.0f | %.2f | %.1f | %.1f | %d |'
              % (clients, per_request, cell['requests'], cell['words_per_s'],
                 cell['words_per_s'] / predict_words_per_s, cell['p50'], cell['p99'],
                 cell['errors']))
    print('\nServer log: %s' % log_path, file=sys.stderr)
    return 1 if any(cell['errors'] for _, _, cell in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
