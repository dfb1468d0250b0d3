"""`seq2seq serve` (seq2seq.app.serve): OpenNMT-py's REST protocol, batching
across requests, bad requests, shutdown.

A tiny attention model learns to reverse words (setup_module, ~25 s); its
answers differ from word to word, so an answer given to the wrong request
shows. Two kinds of tests:

* against real `seq2seq serve` processes (gunicorn) on free localhost
  ports, called with urllib (slow: each server loads and compiles its
  model in its worker): the round trip of an OpenNMT-py client, n-best and
  overrides, concurrent requests answering what one alone answers, every
  bad request, /health before and after loading, SIGTERM with a request in
  flight, the access log;
* in this process, on the WSGI application (`ServeApp`) and the queue:
  a failing decode, a timeout, /health while loading, the batches, the
  config file and the command's refusals.
"""
import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.error
import urllib.request
import wsgiref.util

from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_in, assert_less, assert_true
from numpy.testing import assert_allclose

from seq2seq.app import cli
from seq2seq.app.serve import (ConfigError, DecodingQueue, Job, ModelSpec, ServeApp,
                               load_translator, read_config)
from tests.helpers import ROOT
from tests.test_cli import TINY_MODEL, WORDS, reversal_tsv, run, write

FOLDER = MODEL_DIR = None


def setup_module():
    """The tiny model: it reverses every training word after 40 epochs."""
    global FOLDER, MODEL_DIR
    FOLDER = tempfile.mkdtemp()
    MODEL_DIR = os.path.join(FOLDER, 'model')
    status, _, err = run('train', '--train', reversal_tsv(os.path.join(FOLDER, 'train.tsv')),
                         '--model-dir', MODEL_DIR, '--epochs', '40', '--learning-rate', '0.05',
                         '--patience', '40', *TINY_MODEL)
    assert_equal(status, 0, err)


def teardown_module():
    shutil.rmtree(FOLDER)


# -- an HTTP client and a server process ------------------------------------------------
# No proxy: the environment's http_proxy must not see localhost requests.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def http(url, body=None, method=None, timeout=60):
    """(status, decoded JSON answer) of a request; `body` JSON-encoded
    unless it is bytes."""
    if body is not None and not isinstance(body, bytes):
        body = json.dumps(body).encode('utf-8')
    request = urllib.request.Request(url, data=body, method=method,
                                     headers={'Content-Type': 'application/json'})
    try:
        with OPENER.open(request, timeout=timeout) as response:
            return response.status, json.loads(response.read().decode('utf-8'))
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode('utf-8'))


def opennmt_client(url_root, sentences, model_id):
    """A client of OpenNMT-py's server, as its documentation's curl example
    and its server's answer shape make one: a {"src", "id"} per sentence,
    and the answer's first list holds each sentence's best translation, in
    order."""
    request = urllib.request.Request(
        url_root + '/translate', method='POST', headers={'Content-Type': 'application/json'},
        data=json.dumps([{'src': sentence, 'id': model_id} for sentence in sentences]).encode())
    with OPENER.open(request, timeout=60) as response:
        best = json.loads(response.read().decode('utf-8'))[0]
    return [(entry['tgt'], entry['pred_score']) for entry in best]


def free_port():
    probe = socket.socket()
    probe.bind(('127.0.0.1', 0))
    port = probe.getsockname()[1]
    probe.close()
    return port


class Server(object):
    """A `seq2seq serve --model-dir MODEL_DIR options` process on a free
    localhost port; its output goes to a log file."""

    def __init__(self, *options):
        self.port = free_port()
        self.url = 'http://127.0.0.1:%d/translator' % self.port
        self.log_path = os.path.join(FOLDER, 'serve-%d.log' % self.port)
        with open(self.log_path, 'wb') as log:
            self.process = subprocess.Popen(
                [sys.executable, '-m', 'seq2seq', 'serve', '--model-dir', MODEL_DIR,
                 '--port', str(self.port)] + list(options),
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)

    def wait_until_ready(self, seconds=300):
        """[(status, answer)] of the /health requests and of one /translate
        answered before /health said 200 (polled every 20 ms)."""
        before = []
        deadline = time.time() + seconds
        while time.time() < deadline:
            assert_equal(self.process.poll(), None, self.log())
            try:
                status, answer = http(self.url + '/health', timeout=5)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.02)    # not listening yet
                continue
            if status == 200:
                return before
            before.append((status, answer))
            if len(before) == 1:
                before.append(http(self.url + '/translate', [{'src': 'abc'}]))
            time.sleep(0.02)
        raise AssertionError('not ready after %d s:\n%s' % (seconds, self.log()))

    def log(self):
        with open(self.log_path) as f:
            return f.read()

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def predicted(*options):
    """{word: [(text, log-probability)]} of `seq2seq predict --n-best` on WORDS."""
    path = write(os.path.join(FOLDER, 'words.txt'), '\n'.join(WORDS) + '\n')
    status, out, err = run('predict', '--model-dir', MODEL_DIR, '--input', path, *options)
    assert_equal(status, 0, err)
    n_best = int(options[list(options).index('--n-best') + 1])
    lines = [line.split('\t') for line in out.splitlines()]
    return {word: [(text, float(score)) for text, score in lines[i * n_best:(i + 1) * n_best]]
            for i, word in enumerate(WORDS)}


# -- a real server ------------------------------------------------------------------------
@attr('slow')
class TestServer(unittest.TestCase):
    """One server: default beam 2, beams up to 3, batches of up to 8 sources
    that wait up to 100 ms, bodies up to 4000 bytes."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server('--beam-size', '2', '--max-beam-size', '3', '--max-batch', '8',
                            '--batch-wait-ms', '100', '--max-request-bytes', '4000')
        cls.server.wait_until_ready()
        cls.url = cls.server.url

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_an_opennmt_client_gets_what_predict_writes(self):
        expected = predicted('--beam-size', '2', '--n-best', '1')
        answers = opennmt_client(self.url, WORDS, 0)
        assert_equal(len(answers), len(WORDS))
        for word, (text, score) in zip(WORDS, answers):
            assert_equal(text, word[::-1])          # the model reverses its training words
            assert_equal(text, expected[word][0][0])
            assert_allclose(score, expected[word][0][1], atol=5e-5)
        # The whole entry, as OpenNMT-py's server writes it; the source's
        # surrounding whitespace kept around the output.
        status, answer = http(self.url + '/translate', [{'src': ' abc\n', 'id': 0}])
        assert_equal(status, 200)
        assert_equal(answer, [[{'src': ' abc\n', 'tgt': ' cba\n', 'n_best': 1,
                                'pred_score': answers[0][1]}]])

    def test_models_and_health(self):
        status, models = http(self.url + '/models')
        assert_equal(status, 200)
        assert_equal(models, [{'model_id': 0, 'models': [MODEL_DIR], 'loaded': True,
                               'timeout': -1, 'opt': {'beam_size': 2, 'n_best': 1,
                                                      'batch_size': 8, 'max_beam_size': 3,
                                                      'length_penalty': 0.0},
                               'source_tokens': 'chars', 'target_tokens': 'chars',
                               'max_source_tokens': 4, 'attention': True}])
        status, health = http(self.url + '/health')
        assert_equal((status, health['status'], health['models']), (200, 'ok', [0]))

    def test_n_best_and_the_overrides_within_the_limits(self):
        words = ['abc', 'bdca']
        # n_best 2 from the default beam of 2; n_best 3 widens the beam to 3.
        for options, n_best, predict_options in (
                ({'n_best': 2}, 2, ('--beam-size', '2', '--n-best', '2')),
                ({'n_best': 3}, 3, ('--beam-size', '3', '--n-best', '3')),
                ({'beam_size': 3, 'n_best': 2}, 2, ('--beam-size', '3', '--n-best', '2')),
                ({'beam_size': 1}, 1, ('--beam-size', '1', '--n-best', '1'))):
            expected = predicted(*predict_options)
            status, answer = http(self.url + '/translate',
                                  [dict(options, src=word) for word in words])
            assert_equal(status, 200, answer)
            # OpenNMT-py's shape: one list per rank, an entry per source in each.
            assert_equal(len(answer), n_best)
            for rank, entries in enumerate(answer):
                assert_equal([entry['src'] for entry in entries], words)
                for word, entry in zip(words, entries):
                    assert_equal(entry['n_best'], n_best)
                    assert_equal(entry['tgt'], expected[word][rank][0])
                    assert_allclose(entry['pred_score'], expected[word][rank][1], atol=5e-5)
            for i in range(len(words)):
                scores = [answer[rank][i]['pred_score'] for rank in range(n_best)]
                assert_equal(scores, sorted(scores, reverse=True))

    def test_attention_on_request_is_the_models_attention(self):
        from seq2seq.app.translator import Translator
        status, answer = http(self.url + '/translate',
                              [{'src': 'bdca', 'beam_size': 1, 'attention': True},
                               {'src': 'cd', 'beam_size': 1}])
        assert_equal(status, 200, answer)
        first, second = answer[0]
        assert_equal(first['attention']['src'], list('bdca'))
        assert_equal(first['attention']['tgt'], list('acdb'))
        assert_true('attention' not in second)
        # What `seq2seq attention` plots for the greedy output, without its EOS row.
        outputs, read, weights = Translator(MODEL_DIR).attention(list('bdca'))
        assert_equal(outputs[:-1], list('acdb'))
        assert_allclose(first['attention']['weights'], weights[:4], atol=1e-5)

    def test_concurrent_requests_answer_what_each_alone_answers(self):
        requests = [[{'src': word}] for word in WORDS] + [
            [{'src': 'abc'}, {'src': 'dcb'}, {'src': 'cd'}], [{'src': 'bad', 'n_best': 2}],
            [{'src': 'cab', 'n_best': 2}]]
        alone = [http(self.url + '/translate', body) for body in requests]
        assert_true(all(status == 200 for status, _ in alone), alone)
        before = http(self.url + '/health')[1]['decoded']
        for _ in range(3):
            together = [None] * len(requests)
            start = threading.Barrier(len(requests))

            def send(i):
                start.wait()
                together[i] = http(self.url + '/translate', requests[i])

            threads = [threading.Thread(target=send, args=(i,)) for i in range(len(requests))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert_equal(together, alone)       # to the bit: pred_score too
        after = http(self.url + '/health')[1]['decoded']
        requests_decoded = after['requests'] - before['requests']
        assert_equal(requests_decoded, 3 * len(requests))
        # Batched: far fewer searches than requests (at most 8 sources each).
        assert_less(after['batches'] - before['batches'], requests_decoded // 2)

    def test_every_bad_request_gets_a_4xx_naming_the_field(self):
        pid = http(self.url + '/health')[1]['pid']
        cases = [
            ('malformed JSON', b'[{"src": "abc"', 400, ['not JSON']),
            ('not UTF-8', b'[{"src": "\xff"}]', 400, ['not UTF-8']),
            ('an object, not a list', {'src': 'abc'}, 400, ['JSON list', 'got an object']),
            ('an empty list', [], 400, ['empty list']),
            ('an item that is not an object', ['abc'], 400, ['[0]', 'got a string']),
            ('no src', [{'id': 0}], 400, ['[0].src is missing']),
            ('src not a string', [{'src': 'abc'}, {'src': 5}], 400, ['[1].src', 'a number']),
            ('an empty src', [{'src': '  '}], 400, ['[0].src is empty']),
            ('a source longer than the model reads', [{'src': 'abcdabcd'}], 400,
             ['[0].src', '8 tokens', 'at most 4']),
            ('an unknown model id', [{'src': 'abc', 'id': 7}], 400, ['[0].id', 'no model 7']),
            ('an id not an integer', [{'src': 'abc', 'id': '0'}], 400, ['[0].id', 'integer']),
            ('a beam beyond the limit', [{'src': 'abc', 'beam_size': 4}], 400,
             ['[0].beam_size', 'at most 3']),
            ('an n_best beyond the limit', [{'src': 'abc'}, {'src': 'cd', 'n_best': 5}], 400,
             ['[1].n_best', 'at most 3']),
            ('an n_best beyond the beam', [{'src': 'abc', 'beam_size': 2, 'n_best': 3}], 400,
             ['[0].n_best', 'beam_size >= 3']),
            ('an n_best of 0', [{'src': 'abc', 'n_best': 0}], 400, ['[0].n_best', 'positive']),
            ('two n_best in a request', [{'src': 'abc', 'n_best': 1}, {'src': 'cd', 'n_best': 2}],
             400, ['[1].n_best', 'one n_best']),
            ('attention not a boolean', [{'src': 'abc', 'attention': 'yes'}], 400,
             ['[0].attention']),
            ('an oversized body', [{'src': 'abc'}] * 300, 413, ['--max-request-bytes']),
        ]
        for what, body, status, words in cases:
            got, answer = http(self.url + '/translate', body, method='POST')
            assert_equal((got, answer.get('status')), (status, 'error'), (what, answer))
            for word in words:
                assert_in(word, answer['error'], what)
        assert_equal(http(self.url + '/translate')[0], 405)                 # a GET
        assert_equal(http(self.url + '/translation', [{'src': 'abc'}])[0], 404)
        # The same worker serves on.
        status, health = http(self.url + '/health')
        assert_equal((status, health['pid']), (200, pid))
        assert_equal(opennmt_client(self.url, ['dab'], 0)[0][0], 'bad')

    def test_one_access_log_line_per_request(self):
        http(self.url + '/translate', [{'src': 'abc'}, {'src': 'dc'}, {'src': 'cab'}])
        http(self.url + '/translate', [{'src': 'abcdabcd'}])
        log = self.server.log()
        assert_true(re.search(r'\[ACCESS\] POST /translator/translate 200 3 sources [\d.]+ ms\n',
                              log), log)
        assert_true(re.search(r'\[ACCESS\] POST /translator/translate 400 1 sources [\d.]+ ms\n',
                              log), log)


@attr('slow')
class TestStartAndStop(unittest.TestCase):
    """A server whose batches wait 5 s: a request stays in flight long
    enough to be there when SIGTERM comes."""

    @classmethod
    def setUpClass(cls):
        cls.server = Server('--batch-wait-ms', '5000')
        cls.before_ready = cls.server.wait_until_ready()

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def test_health_answers_ok_only_once_the_model_is_loaded(self):
        health = [answer for answer in self.before_ready if 'pid' in answer[1]]
        assert_true(health, 'no /health answer before the model was loaded')
        for status, answer in health:
            assert_equal((status, answer['status']), (503, 'loading'))
        translate = [answer for answer in self.before_ready if 'pid' not in answer[1]]
        assert_equal(translate[0][0], 503)
        assert_in('loading', translate[0][1]['error'])

    def test_sigterm_finishes_the_request_in_flight_and_accepts_no_more(self):
        answers = []
        thread = threading.Thread(target=lambda: answers.append(
            http(self.server.url + '/translate', [{'src': 'abcd'}])))
        thread.start()
        deadline = time.time() + 30
        while http(self.server.url + '/health')[1]['waiting'] != 1:
            assert_less(time.time(), deadline)
            time.sleep(0.05)
        self.server.process.send_signal(signal.SIGTERM)
        refused = False
        while not refused and time.time() < deadline:
            try:
                socket.create_connection(('127.0.0.1', self.server.port), timeout=1).close()
                time.sleep(0.05)
            except ConnectionRefusedError:
                refused = True
        assert_true(refused, 'new connections are still accepted after SIGTERM')
        assert_true(thread.is_alive(), 'the request was answered before the refusal')
        thread.join(60)
        assert_equal(answers, [(200, [[{'src': 'abcd', 'tgt': 'dcba', 'n_best': 1,
                                        'pred_score': answers[0][1][0][0]['pred_score']}]])])
        assert_equal(self.server.process.wait(60), 0)
        log = self.server.log()
        assert_in('Handling signal: term', log)
        assert_true(re.search(r'POST /translator/translate 200 1 sources', log), log)


# -- in this process: the application, the queue, the config, the command -------------
TRANSLATOR = None


def translator():
    """The tiny model's Translator, loaded once for every in-process app."""
    global TRANSLATOR
    if TRANSLATOR is None:
        TRANSLATOR = load_translator(ModelSpec(0, [MODEL_DIR]))
    return TRANSLATOR


class FailsOn(object):
    """The tiny model's translator, except that decoding a batch holding
    `word` raises: what a decode that fails (out of memory, ...) looks like."""

    def __init__(self, word):
        self.translator, self.word = translator(), list(word)
        self.calls = []     # the sources of each call


    def __getattr__(self, name):
        return getattr(self.translator, name)

    def translate(self, sources, **options):
        self.calls.append([''.join(source) for source in sources])
        if self.word in [list(source) for source in sources]:
            raise MemoryError('cannot allocate 2 GB')
        return self.translator.translate(sources, **options)


def call(app, method, path, body=None):
    """(status, decoded JSON answer) of the WSGI app."""
    environ = {}
    wsgiref.util.setup_testing_defaults(environ)
    body = b'' if body is None else json.dumps(body).encode('utf-8')
    environ.update({'REQUEST_METHOD': method, 'PATH_INFO': path, 'SCRIPT_NAME': '',
                    'CONTENT_LENGTH': str(len(body)), 'wsgi.input': io.BytesIO(body)})
    started = []
    answer = b''.join(app(environ, lambda status, headers: started.append(status)))
    return int(started[0].split()[0]), json.loads(answer.decode('utf-8'))


def ready_app(load, **options):
    app = ServeApp([ModelSpec(0, [MODEL_DIR], beam_size=2)], load=load, **options).start()
    assert_true(app.ready.wait(300), app.load_error)
    return app


class TestApplication(unittest.TestCase):

    def test_a_failing_decode_answers_500_alone_and_the_next_request_succeeds(self):
        failing = FailsOn('dcb')
        app = ready_app(lambda spec: failing, batch_wait=0.5)
        del failing.calls[:]        # the warm-up's
        answers = {}

        def send(word):
            answers[word] = call(app, 'POST', '/translator/translate', [{'src': word}])

        threads = [threading.Thread(target=send, args=(word,)) for word in ('abc', 'dcb', 'cab')]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert_equal(answers['dcb'][0], 500)
        assert_equal(answers['dcb'][1], {'status': 'error',
                                         'error': 'decoding failed: MemoryError: cannot '
                                                  'allocate 2 GB'})
        # One batch of the three failed; then each was decoded alone (beside
        # a copy of itself), and only 'dcb' failed.
        assert_equal(sorted(failing.calls[0]), ['abc', 'cab', 'dcb'])
        assert_equal(sorted(failing.calls[1:]), [['abc', 'abc'], ['cab', 'cab'], ['dcb', 'dcb']])
        assert_equal(app.stats['batches'], 2)
        for word in ('abc', 'cab'):
            assert_equal(answers[word][0], 200)
            assert_equal(answers[word][1][0][0]['tgt'], word[::-1])
        assert_equal(call(app, 'POST', '/translator/translate', [{'src': 'bad'}])[1][0][0]['tgt'],
                     'dab')

    def test_a_request_not_answered_within_the_timeout_gets_a_503(self):
        app = ready_app(lambda spec: translator(), batch_wait=3.0, timeout=0.2)
        started = time.time()
        status, answer = call(app, 'POST', '/translator/translate', [{'src': 'abc'}])
        assert_less(time.time() - started, 2.0)
        assert_equal(status, 503)
        assert_in('--timeout', answer['error'])

    def test_health_is_503_while_the_models_load(self):
        loading = threading.Event()
        release = threading.Event()

        def load(spec):
            loading.set()
            release.wait(60)
            return translator()

        app = ServeApp([ModelSpec(0, [MODEL_DIR])], load=load).start()
        assert_true(loading.wait(60))
        assert_equal(call(app, 'GET', '/translator/health')[0], 503)
        assert_equal(call(app, 'GET', '/translator/models')[1][0]['loaded'], False)
        assert_equal(call(app, 'POST', '/translator/translate', [{'src': 'abc'}])[0], 503)
        release.set()
        assert_true(app.ready.wait(300))
        assert_equal(call(app, 'GET', '/translator/health')[0], 200)
        assert_equal(call(app, 'POST', '/translator/translate', [{'src': 'abc'}])[0], 200)

    def test_a_model_that_cannot_load_is_reported(self):
        reported = []

        def load(spec):
            raise IOError('model.h5: truncated file')

        app = ServeApp([ModelSpec(0, [MODEL_DIR])], load=load,
                       on_load_error=reported.append).start()
        deadline = time.time() + 60
        while not reported and time.time() < deadline:
            time.sleep(0.05)
        assert_equal(reported, ['OSError: model.h5: truncated file'])
        status, answer = call(app, 'GET', '/translator/health')
        assert_equal(status, 500)
        assert_in('truncated file', answer['error'])


def job(model_id, sources, beam_size=1, max_batch=4):
    return Job(model_id, [['a']] * sources, beam_size, 1, [False] * sources, max_batch)


class TestDecodingQueue(unittest.TestCase):

    def test_a_batch_holds_the_jobs_that_search_alike_up_to_max_batch(self):
        queue = DecodingQueue(batch_wait=0.0)
        jobs = [job(0, 1), job(1, 1), job(0, 2), job(0, 1, beam_size=3), job(0, 2), job(0, 1)]
        for each in jobs:
            queue.put(each)
        # Model 0 with beam 1 first: 1 + 2 sources, then 2 more would pass 4.
        assert_equal(queue.take(), [jobs[0], jobs[2]])
        assert_equal(queue.take(), [jobs[1]])
        assert_equal(queue.take(), [jobs[3]])
        assert_equal(queue.take(), [jobs[4], jobs[5]])

    def test_the_first_job_waits_at_most_batch_wait_for_others(self):
        queue = DecodingQueue(batch_wait=0.3)
        first = job(0, 1)
        queue.put(first)
        threading.Timer(0.1, queue.put, [job(0, 1)]).start()
        batch = queue.take()
        assert_equal(len(batch), 2)
        assert_true(0.25 < time.monotonic() - first.arrived < 1.0)
        # A full batch goes at once; an abandoned job (timed out) not at all.
        jobs = [job(0, 2), job(0, 1), job(0, 2)]
        jobs[1].abandoned = True
        for each in jobs:
            queue.put(each)
        started = time.monotonic()
        assert_equal(queue.take(), [jobs[0], jobs[2]])
        assert_less(time.monotonic() - started, 0.2)


DEFAULTS = dict(beam_size=1, n_best=1, max_batch=64, max_beam_size=1, length_penalty=0.0)


class TestConfig(unittest.TestCase):

    def config(self, content):
        path = write(os.path.join(FOLDER, 'conf.json'),
                     content if isinstance(content, str) else json.dumps(content))
        return path

    def test_opennmt_shape(self):
        specs = read_config(self.config({
            'models_root': '/models',
            'models': [{'id': 100, 'model': 'g2p', 'timeout': 600, 'load': True,
                        'opt': {'beam_size': 5, 'batch_size': 16}},
                       {'models': ['a', 'b'], 'model_root': '/other', 'opt': {'n_best': 2,
                                                                              'beam_size': 2}},
                       {'model': 'c'}]}), DEFAULTS)
        assert_equal([(s.model_id, s.model_dirs, s.beam_size, s.n_best, s.max_batch,
                       s.max_beam_size) for s in specs],
                     [(100, ['/models/g2p'], 5, 1, 16, 5),
                      (0, ['/other/a', '/other/b'], 2, 2, 64, 2),
                      (1, ['/models/c'], 1, 1, 64, 1)])

    def test_each_error_names_the_field(self):
        for content, words in (
                ('{"models": [', ['not JSON']),
                ({'models': []}, ['models:', 'empty list']),
                ({'models': [{'opt': {}}]}, ['models[0].model']),
                ({'models': [{'model': 'a', 'opt': {'gpu': 0}}]}, ['models[0].opt.gpu']),
                ({'models': [{'model': 'a', 'tokenizer': {}}]}, ['models[0].tokenizer']),
                ({'models': [{'model': 'a', 'id': 3}, {'model': 'b', 'id': 3}]},
                 ['models[1].id', 'twice']),
                ({'models': [{'model': 'a', 'opt': {'beam_size': 0}}]},
                 ['models[0].opt.beam_size', 'positive']),
                ({'models': [{'model': 'a', 'opt': {'n_best': 3, 'beam_size': 2}}]},
                 ['models[0].opt.n_best'])):
            path = self.config(content)
            try:
                read_config(path, DEFAULTS)
            except ConfigError as error:
                for word in [path] + words:
                    assert_in(word, str(error))
            else:
                raise AssertionError('%r read' % (content,))


class TestCommand(unittest.TestCase):
    """The refusals of `seq2seq serve`: one line, exit status 2, before any
    server starts."""

    def refused(self, *argv):
        status, out, err = run('serve', *argv)
        assert_equal(status, 2, (out, err))
        assert_equal(len(err.strip().splitlines()), 1, err)
        return err

    def test_refusals(self):
        assert_in('--model-dir DIR or --config', self.refused())
        assert_in('give one', self.refused('--model-dir', MODEL_DIR, '--config', 'conf.json'))
        assert_in('--n-best 3 needs --beam-size >= 3',
                  self.refused('--model-dir', MODEL_DIR, '--beam-size', '2', '--n-best', '3'))
        assert_in('--max-beam-size 2 is narrower than --beam-size 3',
                  self.refused('--model-dir', MODEL_DIR, '--beam-size', '3',
                               '--max-beam-size', '2'))
        assert_in('--url-root must start with /',
                  self.refused('--model-dir', MODEL_DIR, '--url-root', 'translator'))
        assert_in('no-model', self.refused('--model-dir', os.path.join(FOLDER, 'no-model')))
        path = write(os.path.join(FOLDER, 'bad-conf.json'), '{"models": [{"model": 3}]}')
        assert_in('models[0].model', self.refused('--config', path))
        taken = socket.socket()
        taken.bind(('127.0.0.1', 0))
        taken.listen(1)
        try:
            assert_in('cannot listen there', self.refused(
                '--model-dir', MODEL_DIR, '--port', str(taken.getsockname()[1])))
        finally:
            taken.close()
