"""`seq2seq serve`: trained models behind an HTTP API that speaks OpenNMT-py's
REST protocol (`onmt/bin/server.py`), so that its clients work unchanged,
with the requests that arrive together decoded in one batched search.

    seq2seq serve --model-dir g2p --beam-size 5
    curl -X POST -H 'Content-Type: application/json' \\
        -d '[{"src": "hello", "id": 0}]' http://127.0.0.1:5000/translator/translate
    # [[{"src": "hello", "tgt": "HH EH L OW", "n_best": 1, "pred_score": -0.0110855...}]]

The parts, each usable alone (docs/serving.md describes the protocol):

    ModelSpec, read_config  what is served: the --model-dir models (id 0) or
                            those of an OpenNMT-py style conf.json
    ServedModel             a loaded model: decodes token lists, reads the
                            attention of given outputs
    DecodingQueue           the jobs waiting for the decoder, taken in batches
    ServeApp                the WSGI application: routes, validation, JSON
                            errors, the access log, and the one thread that
                            loads the models and then decodes
    run_server              gunicorn around it: worker processes that each
                            load and compile the models once at start-up

Theano is not called from two threads at once: in a worker, the decoder
thread alone loads, compiles and decodes; the request threads read the
loaded models' vocabularies and configurations only.
"""
from __future__ import absolute_import

import json
import logging
import math
import os
import re
import socket
import sys
import threading
import time
import traceback

from .model_dir import check_trained

# The options of OpenNMT-py's conf.json a model's "opt" may hold here, and the
# keys of a model entry that ask nothing of this server: every model is
# loaded at start-up and stays loaded, so "load", "timeout" (to unload it)
# and "on_timeout" change nothing.
CONFIG_OPTIONS = ('beam_size', 'n_best', 'batch_size', 'max_beam_size', 'length_penalty')
CONFIG_IGNORED_KEYS = ('name', 'load', 'timeout', 'on_timeout')
# What a request's items may set besides "src" and "id" (other keys, such as
# OpenNMT-py's "ref", are ignored).
REQUEST_OPTIONS = ('beam_size', 'n_best', 'attention')

STATUS_OK, STATUS_ERROR = 'ok', 'error'
HTTP_STATUS = {200: '200 OK', 400: '400 Bad Request', 404: '404 Not Found',
               405: '405 Method Not Allowed', 413: '413 Payload Too Large',
               500: '500 Internal Server Error', 503: '503 Service Unavailable'}
# gunicorn's exit status for a worker that cannot start: the server stops
# (with the worker's reason in the log) instead of starting workers that
# fail the same way, one after another.
WORKER_BOOT_ERROR = 3

log = logging.getLogger('seq2seq.serve')
access_log = logging.getLogger('seq2seq.serve.access')


class ConfigError(ValueError):
    """A --config file that cannot be served: one line naming the file and
    the field."""


class RequestError(Exception):
    """A request answered with an error: its HTTP status and a message
    naming what is wrong (the field, for a bad request)."""

    def __init__(self, status, message, sources=0, headers=()):
        super(RequestError, self).__init__(message)
        self.status, self.message, self.sources, self.headers = status, message, sources, headers


def _json_type(value):
    """JSON's name for the type of a decoded value."""
    if value is None:
        return 'null'
    for kind, name in ((bool, 'a boolean'), (str, 'a string'), ((int, float), 'a number'),
                       (list, 'a list'), (dict, 'an object')):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


# -- what is served ----------------------------------------------------------------------
class ModelSpec(object):
    """A model the server answers for, before it is loaded.

    # Arguments
        model_id: the id requests name it by (an int, as OpenNMT-py's).
        model_dirs: directories written by `seq2seq train`; several are an
            ensemble (`seq2seq.app.translator.Translator`).
        beam_size, n_best: what a request that does not ask gets.
        max_batch: the most sources decoded together in one search.
        max_beam_size: the widest beam a request may ask for.
        length_penalty: GNMT's alpha for every beam search (see
            `Translator.translate`).
    """

    def __init__(self, model_id, model_dirs, beam_size=1, n_best=1, max_batch=64,
                 max_beam_size=None, length_penalty=0.0):
        self.model_id = model_id
        self.model_dirs = list(model_dirs)
        self.beam_size, self.n_best, self.max_batch = beam_size, n_best, max_batch
        self.max_beam_size = beam_size if max_beam_size is None else max_beam_size
        self.length_penalty = length_penalty

    def options(self):
        """The search options, as a conf.json "opt" holds them."""
        return dict(beam_size=self.beam_size, n_best=self.n_best, batch_size=self.max_batch,
                    max_beam_size=self.max_beam_size, length_penalty=self.length_penalty)


def read_config(path, defaults):
    """[ModelSpec] of a conf.json in OpenNMT-py's shape:

        {"models_root": "./available_models",
         "models": [{"id": 100, "model": "g2p", "opt": {"beam_size": 5}},
                    {"id": 101, "models": ["g2p", "g2p_seed1"]}]}

    "model" (one directory) or "models" (an ensemble) are read below
    "models_root" (default ./available_models, as OpenNMT-py) or the
    entry's own "model_root"; a model without "id" gets the lowest free id
    from 0 on (OpenNMT-py's counter). "opt" may set CONFIG_OPTIONS
    ("batch_size": the sources decoded together, --max-batch); those it
    leaves out are `defaults`' (the command line's). ConfigError names the
    file and the field of anything else."""
    try:
        with open(path, 'rb') as f:
            text = f.read().decode('utf-8')
    except (IOError, OSError) as error:
        raise ConfigError('%s: cannot be read (%s)' % (path, error.strerror or error))
    except UnicodeDecodeError as error:
        raise ConfigError('%s: not UTF-8 text (%s)' % (path, error))
    try:
        config = json.loads(text)
    except ValueError as error:
        raise ConfigError('%s: not JSON (%s)' % (path, error))

    def fail(field, message):
        raise ConfigError('%s: %s: %s' % (path, field, message))

    if not isinstance(config, dict):
        fail('the top level', 'expected an object {"models_root": ..., "models": [...]}, got '
             '%s' % _json_type(config))
    root = config.get('models_root', './available_models')
    if not isinstance(root, str):
        fail('models_root', 'expected a folder name (a string), got %s' % _json_type(root))
    entries = config.get('models')
    if not isinstance(entries, list) or not entries:
        fail('models', 'expected a non-empty list of models, got %s' % (
            'nothing' if entries is None else _json_type(entries) if entries else 'an empty list'))
    known = {'id', 'model', 'models', 'model_root', 'opt'} | set(CONFIG_IGNORED_KEYS)
    specs, taken, next_id = [], set(), 0
    for index, entry in enumerate(entries):
        field = 'models[%d]' % index
        if not isinstance(entry, dict):
            fail(field, 'expected an object {"id", "model", "opt"}, got %s' % _json_type(entry))
        unknown = sorted(set(entry) - known)
        if unknown:
            fail('%s.%s' % (field, unknown[0]), 'not a key seq2seq serve reads (it reads %s; '
                 'tokenization is the model directory\'s)' % ', '.join(sorted(known)))
        if 'models' in entry:
            names = entry['models']
            if (not isinstance(names, list) or not names
                    or not all(isinstance(name, str) for name in names)):
                fail(field + '.models', 'expected a non-empty list of model directories')
        elif isinstance(entry.get('model'), str):
            names = [entry['model']]
        else:
            fail(field + '.model', 'expected a model directory (a string), got %s'
                 % ('nothing' if 'model' not in entry else _json_type(entry['model'])))
        model_root = entry.get('model_root', root)
        if not isinstance(model_root, str):
            fail(field + '.model_root', 'expected a folder name (a string)')
        model_id = entry.get('id')
        if model_id is None:
            model_id = next_id
            while model_id in taken:
                model_id += 1
            next_id = model_id + 1
        elif not _is_int(model_id):
            fail(field + '.id', 'expected an integer, got %s' % _json_type(model_id))
        elif model_id in taken:
            fail(field + '.id', 'model id %d is given twice' % model_id)
        taken.add(model_id)
        opt = entry.get('opt', {})
        if not isinstance(opt, dict):
            fail(field + '.opt', 'expected an object, got %s' % _json_type(opt))
        for key, value in opt.items():
            name = '%s.opt.%s' % (field, key)
            if key not in CONFIG_OPTIONS:
                fail(name, 'not an option of seq2seq serve (it takes %s)'
                     % ', '.join(CONFIG_OPTIONS))
            if key == 'length_penalty':
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not (
                        0 <= value < float('inf')):
                    fail(name, 'expected a number >= 0, got %r' % (value,))
            elif not _is_int(value) or value < 1:
                fail(name, 'expected a positive integer, got %r' % (value,))
        beam_size = opt.get('beam_size', defaults['beam_size'])
        n_best = opt.get('n_best', min(defaults['n_best'], beam_size))
        max_beam_size = opt.get('max_beam_size', max(defaults['max_beam_size'], beam_size))
        if n_best > beam_size:
            fail(field + '.opt.n_best', '%d needs beam_size >= %d, got beam_size %d'
                 % (n_best, n_best, beam_size))
        if beam_size > max_beam_size:
            fail(field + '.opt.max_beam_size', '%d is narrower than beam_size %d'
                 % (max_beam_size, beam_size))
        specs.append(ModelSpec(model_id, [os.path.join(model_root, name) for name in names],
                               beam_size=beam_size, n_best=n_best,
                               max_batch=opt.get('batch_size', defaults['max_batch']),
                               max_beam_size=max_beam_size,
                               length_penalty=float(opt.get('length_penalty',
                                                            defaults['length_penalty']))))
    return specs


def check_models(specs):
    """ModelDirError for a model directory that holds no trained model:
    before any worker starts, rather than in each of them."""
    for spec in specs:
        for model_dir in spec.model_dirs:
            check_trained(model_dir)


def listen_problem(host, port):
    """Why the server could not listen on host:port ('Address already in
    use', ...), or None: a one-line refusal before the workers start."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, 0,
                                                             socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        return 'no such host (%s)' % error.strerror
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)    # as gunicorn binds
        probe.bind(address)
    except OSError as error:
        return error.strerror or str(error)
    finally:
        probe.close()
    return None


# -- a loaded model ----------------------------------------------------------------------
class ServedModel(object):
    """A ModelSpec's translator, loaded, with the attention function of an
    attention model compiled (both at start-up, before the first request).

    # Arguments
        spec: the ModelSpec.
        translator: its `Translator` (the first model of an ensemble gives
            the attention, as `seq2seq attention` does).
    """

    def __init__(self, spec, translator):
        from keras import backend as K
        from ..layers.dropout_free import without_dropout
        self.spec, self.translator = spec, translator
        self.config = translator.config
        self.input_length = translator.input_length
        decoder = getattr(translator.model, 'decoder_layer', None)
        self.attends = bool(decoder is not None and decoder.attends)
        self._attention = None
        if self.attends:
            # The decoder fed the given outputs (teacher forcing, as
            # `Translator.attention`), its dropout at its expected value.
            model = translator.model
            self._attention = K.function(model.inputs + [K.learning_phase()],
                                         without_dropout([decoder.last_attention]))

    def warm_up(self):
        """Decode one source (and read its attention): the step functions
        compile now, not on the first request."""
        source = [self.translator.source_vocab.tokens[-1]]
        hypotheses = self.decode([source], self.spec.beam_size, 1)
        if self.attends:
            self.attention([source], [hypotheses[0][0][0]])

    def _chunks(self, rows):
        """`rows` in chunks of at most max_batch, each of at least two rows:
        a chunk of one is decoded beside a copy of itself. A lone row goes
        through BLAS's one-row (matrix-vector) path, whose sums round
        differently from the rows of a batch (the log-probabilities of a
        trained G2P model differ in their 7th digit), while the rows of any
        two batches of two or more agree to the bit: so a source is decoded
        to the same answer alone as beside any others. Yields (rows to
        decode, how many are real)."""
        for start in range(0, len(rows), self.spec.max_batch):
            chunk = rows[start:start + self.spec.max_batch]
            yield (chunk * 2 if len(chunk) == 1 else chunk), len(chunk)

    def decode(self, sources, beam_size, n_best):
        """Per source token list, up to n_best (tokens, log-probability),
        best first: `Translator.translate` with the spec's length penalty,
        max_batch sources per search."""
        hypotheses = []
        for rows, real in self._chunks(list(sources)):
            hypotheses.extend(self.translator.translate(
                rows, beam_size=beam_size, n_best=n_best, batch_size=len(rows),
                length_penalty=self.spec.length_penalty)[:real])
        return hypotheses

    def attention(self, sources, outputs):
        """Per (source tokens, output tokens) pair, the attention weights:
        a row per output token, a column per source token, both in reading
        order (the sources are within the model's input length)."""
        from ..training.data import one_hot
        translator = self.translator
        weights = []
        pairs = list(zip(sources, outputs))
        for rows, real in self._chunks(pairs):
            x = translator.encode_sources([source for source, _ in rows])
            y = translator.encode_targets([output for _, output in rows])
            table = self._attention([x, one_hot(y, len(translator.target_vocab)), 1])[0]
            for (source, output), grid in zip(rows[:real], table):
                # Rows in generation order, columns as the model read the source.
                grid = grid[:len(output), :len(source)]
                if translator.reverse_target:
                    grid = grid[::-1]
                if self.config.get('reverse_source'):
                    grid = grid[:, ::-1]
                weights.append([[round(float(w), 5) for w in row] for row in grid])
        return weights

    def describe(self):
        """The /models entry of the loaded model: `describe_spec`'s with
        what a client needs to send sources (their tokenization, most
        tokens) and whether it can ask for the attention."""
        entry = describe_spec(self.spec, loaded=True)
        entry.update(source_tokens=self.config['source_tokens'],
                     target_tokens=self.config['target_tokens'],
                     max_source_tokens=self.input_length, attention=self.attends)
        return entry


def describe_spec(spec, loaded=False):
    """A /models entry in OpenNMT-py's shape: model_id, opt, models,
    loaded, and timeout -1 (never unloaded)."""
    return dict(model_id=spec.model_id, opt=spec.options(), models=spec.model_dirs,
                loaded=loaded, timeout=-1)


# -- batching across requests ------------------------------------------------------------
class Job(object):
    """The sources of one request for one model, then its answer: per
    source its hypotheses (and attention weights where asked), or the
    reason decoding failed. `done` is set when either is there."""

    def __init__(self, model_id, sources, beam_size, n_best, attention, max_batch,
                 length_penalty=0.0):
        self.model_id, self.sources = model_id, sources
        self.beam_size, self.n_best, self.wants_attention = beam_size, n_best, attention
        self.max_batch = max_batch
        # The jobs a search can decode together: the same model, beam and
        # penalty (n_best only cuts the beam's list at the end).
        self.key = (model_id, beam_size, length_penalty)
        self.arrived = time.monotonic()
        self.done = threading.Event()
        self.abandoned = False      # its request timed out: not worth decoding
        self.hypotheses = self.attention = self.error = None

    def finish(self, hypotheses, attention):
        self.hypotheses, self.attention = hypotheses, attention
        self.done.set()

    def fail(self, reason):
        self.error = reason
        self.done.set()


class DecodingQueue(object):
    """The jobs waiting for the decoder, in arrival order.

    `take()` gives a batch: the oldest job and the jobs after it that search
    the same way, up to its max_batch sources, as soon as that many wait or
    the oldest has waited `batch_wait` seconds (a job that waited while the
    decoder was busy goes at once, with what came meanwhile). A job larger
    than max_batch goes alone (decoded max_batch sources at a time).
    """

    def __init__(self, batch_wait):
        self.batch_wait = batch_wait
        self._jobs = []
        self._changed = threading.Condition()

    def put(self, job):
        with self._changed:
            self._jobs.append(job)
            self._changed.notify()

    def __len__(self):
        return len(self._jobs)

    def take(self):
        """The next batch of jobs (a list); waits for one."""
        with self._changed:
            while True:
                self._jobs = [job for job in self._jobs if not job.abandoned]
                if not self._jobs:
                    self._changed.wait()
                    continue
                batch, full = self._batch()
                left = self._jobs[0].arrived + self.batch_wait - time.monotonic()
                if full or left <= 0:
                    break
                self._changed.wait(left)
            taken = set(id(job) for job in batch)
            self._jobs = [job for job in self._jobs if id(job) not in taken]
            return batch

    def _batch(self):
        """(the jobs the oldest would be decoded with now, whether no more fit)."""
        first = self._jobs[0]
        batch, count = [first], len(first.sources)
        for job in self._jobs[1:]:
            if count >= first.max_batch:
                break
            if job.key == first.key:
                if count + len(job.sources) > first.max_batch:
                    return batch, True
                batch.append(job)
                count += len(job.sources)
        return batch, count >= first.max_batch


def load_translator(spec):
    """The default loader of ServeApp: the spec's Translator."""
    from .translator import Translator
    return Translator(spec.model_dirs)


# -- the WSGI application ----------------------------------------------------------------
class ServeApp(object):
    """The server's WSGI application: OpenNMT-py's routes under `url_root`,

        POST {url_root}/translate   [{"src": "hello", "id": 100}, ...] ->
                                    [[{"src", "tgt", "n_best", "pred_score"}, ...]]
        GET  {url_root}/models      the models and their options
        GET  {url_root}/health      200 {"status": "ok"} once every model is
                                    loaded and compiled; 503 before

    each answer JSON, each error {"status": "error", "error": "..."} with a
    4xx status naming the field of a bad request, 500 for a decode that
    failed, 503 while loading or when a request times out.

    # Arguments
        specs: the ModelSpecs served (the first is the one of requests
            that name no id).
        url_root: the routes' prefix ('' or '/translator': OpenNMT-py's).
        batch_wait: seconds the first request of a batch waits for others.
        timeout: seconds a request waits for its answer before a 503.
        max_request_bytes: the largest request body taken (413 above).
        load: spec -> translator; `load_translator` unless given.
        on_load_error: called with the message when a model cannot be
            loaded (run_server's stops the worker); /health answers 500
            with it.

    `start()` starts the decoder thread, which loads the models, then
    decodes the queue's batches until the process ends.
    """

    def __init__(self, specs, url_root='/translator', batch_wait=0.005, timeout=30.0,
                 max_request_bytes=1 << 20, load=load_translator, on_load_error=None):
        if not specs:
            raise ValueError('specs must name at least one model')
        self.specs = list(specs)
        self.url_root = url_root.rstrip('/')
        self.timeout, self.max_request_bytes = timeout, max_request_bytes
        self.queue = DecodingQueue(batch_wait)
        self._load, self._on_load_error = load, on_load_error
        self.models = {}            # model id -> ServedModel, once all are loaded
        self.ready = threading.Event()
        self.load_error = None
        self.stats = dict(requests=0, batches=0, sources=0)     # decoded, this worker
        self._thread = None

    # -- the decoder thread -------------------------------------------------------------
    def start(self):
        """Start the decoder thread (once); returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run_decoder, name='seq2seq-decoder')
            # A daemon: it never returns, and must not keep an exiting process
            # alive (gunicorn waits for the requests in flight, not for it).
            self._thread.daemon = True
            self._thread.start()
        return self

    def _run_decoder(self):
        try:
            self._load_models()
        except Exception as error:      # h5py, Keras and Theano raise many kinds
            self.load_error = '%s: %s' % (type(error).__name__, error)
            log.error('cannot serve: %s\n%s', self.load_error, traceback.format_exc())
            if self._on_load_error is not None:
                self._on_load_error(self.load_error)
            return
        while True:
            self._decode(self.queue.take())

    def _load_models(self):
        models = {}
        for spec in self.specs:
            started = time.time()
            served = ServedModel(spec, self._load(spec))
            served.warm_up()
            models[spec.model_id] = served
            log.info('model %d (%s) loaded and compiled in %.1f s', spec.model_id,
                     ' '.join(spec.model_dirs), time.time() - started)
        self.models = models
        self.ready.set()
        log.info('ready: model(s) %s', ', '.join(str(spec.model_id) for spec in self.specs))

    def _decode(self, jobs):
        """Decode a batch together; when that fails, each job alone, so
        that a job the model cannot decode fails alone (500) and the others
        get their answers."""
        try:
            self._decode_together(jobs)
        except Exception as error:
            if len(jobs) == 1:
                reason = '%s: %s' % (type(error).__name__, error)
                log.error('decoding failed: %s\n%s', reason, traceback.format_exc())
                jobs[0].fail(reason)
                return
            for job in jobs:
                self._decode([job])

    def _decode_together(self, jobs):
        model = self.models[jobs[0].model_id]
        sources = [source for job in jobs for source in job.sources]
        hypotheses = model.decode(sources, jobs[0].beam_size, max(job.n_best for job in jobs))
        start = 0
        for job in jobs:
            mine = [hyps[:job.n_best] for hyps in hypotheses[start:start + len(job.sources)]]
            start += len(job.sources)
            attention = None
            if any(job.wants_attention):
                asked = [(source, tokens) for source, wants, hyps in
                         zip(job.sources, job.wants_attention, mine) if wants
                         for tokens, _ in hyps]
                weights = iter(model.attention(*zip(*asked)) if asked else ())
                attention = [[next(weights) for _ in hyps] if wants else None
                             for wants, hyps in zip(job.wants_attention, mine)]
            job.finish(mine, attention)
        self.stats['requests'] += len(jobs)
        self.stats['batches'] += 1
        self.stats['sources'] += len(sources)

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ, start_response):
        started = time.monotonic()
        method = environ.get('REQUEST_METHOD', 'GET')
        path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
        headers = []
        try:
            status, answer, sources = self._route(environ, method, path)
        except RequestError as error:
            status, sources, headers = error.status, error.sources, list(error.headers)
            answer = {'status': STATUS_ERROR, 'error': error.message}
        except Exception as error:      # a bug here: the request fails, the worker serves on
            log.error('%s %s failed\n%s', method, path, traceback.format_exc())
            status, sources = 500, 0
            answer = {'status': STATUS_ERROR, 'error': 'internal error: %s: %s'
                      % (type(error).__name__, error)}
        body = json.dumps(answer, ensure_ascii=False).encode('utf-8')
        start_response(HTTP_STATUS[status], [('Content-Type', 'application/json; charset=utf-8'),
                                             ('Content-Length', str(len(body)))] + headers)
        access_log.info('%s %s %d %d sources %.1f ms', method, path, status, sources,
                        1000 * (time.monotonic() - started))
        return [body]

    def _route(self, environ, method, path):
        """(status, JSON answer, sources in the request)."""
        routes = {'/translate': ('POST', self._translate), '/models': ('GET', self._list_models),
                  '/health': ('GET', self._health)}
        if not path.startswith(self.url_root) or path[len(self.url_root):] not in routes:
            raise RequestError(404, 'no route %s: the routes are %s' % (
                path, ', '.join('%s %s%s' % (verb, self.url_root, route)
                                for route, (verb, _) in sorted(routes.items()))))
        verb, handler = routes[path[len(self.url_root):]]
        if method != verb:
            raise RequestError(405, '%s takes %s, got %s' % (path, verb, method),
                               headers=[('Allow', verb)])
        return handler(environ)

    def _health(self, environ):
        if self.load_error:
            return 500, {'status': STATUS_ERROR, 'error': 'a model cannot be loaded: %s'
                         % self.load_error}, 0
        if not self.ready.is_set():
            return 503, {'status': 'loading', 'pid': os.getpid()}, 0
        return 200, {'status': STATUS_OK, 'pid': os.getpid(),
                     'models': [spec.model_id for spec in self.specs],
                     'decoded': dict(self.stats), 'waiting': len(self.queue)}, 0

    def _list_models(self, environ):
        loaded = self.ready.is_set()
        return 200, [self.models[spec.model_id].describe() if loaded else describe_spec(spec)
                     for spec in self.specs], 0

    def _read_body(self, environ):
        """The request body (bytes), RequestError 413 past max_request_bytes."""
        limit = self.max_request_bytes
        too_large = RequestError(413, 'the request body is larger than this server takes: at '
                                 'most %d bytes (--max-request-bytes)' % limit)
        length = environ.get('CONTENT_LENGTH') or ''
        if length.strip():
            try:
                length = int(length)
            except ValueError:
                raise RequestError(400, 'the Content-Length header is not a number: %r' % length)
            if length > limit:
                raise too_large
            return environ['wsgi.input'].read(length) if length else b''
        body = environ['wsgi.input'].read(limit + 1)      # chunked: no length given
        if len(body) > limit:
            raise too_large
        return body

    def _translate(self, environ):
        items, count = self._parse(self._read_body(environ))
        model_id = self._model_id(items)
        if self.load_error:
            raise RequestError(500, 'a model cannot be loaded: %s' % self.load_error, count)
        if not self.ready.is_set():
            raise RequestError(503, 'the models are still loading: GET %s/health answers 200 '
                               'when they are ready' % self.url_root, count)
        model = self.models[model_id]
        sources, wants_attention = [], []
        for index, item in enumerate(items):
            sources.append(self._source(model, index, item, count))
            wants_attention.append(self._attention_asked(model, index, item, count))
        beam_size, n_best = self._search(model.spec, items, count)
        job = Job(model_id, sources, beam_size, n_best, wants_attention, model.spec.max_batch,
                  model.spec.length_penalty)
        self.queue.put(job)
        if not job.done.wait(self.timeout):
            job.abandoned = True
            raise RequestError(503, 'no answer within %g s (--timeout): the server is busy, '
                               'try again' % self.timeout, count)
        if job.error is not None:
            raise RequestError(500, 'decoding failed: %s' % job.error, count)
        return 200, self._answer(model, items, job, n_best), count

    def _parse(self, body):
        """(the request's items, how many): RequestError 400 for a body that
        is not a non-empty JSON list of objects."""
        try:
            items = json.loads(body.decode('utf-8'))
        except UnicodeDecodeError as error:
            raise RequestError(400, 'the body is not UTF-8 text (%s)' % error)
        except ValueError as error:
            raise RequestError(400, 'the body is not JSON (%s)' % error)
        if not isinstance(items, list):
            raise RequestError(400, 'the body must be a JSON list of {"src": ...} objects, got '
                               '%s' % _json_type(items))
        if not items:
            raise RequestError(400, 'the body is an empty list: no "src" to translate')
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                raise RequestError(400, '[%d]: expected an object {"src": ...}, got %s'
                                   % (index, _json_type(item)), len(items))
        return items, len(items)

    def _model_id(self, items):
        """The model of a request: its first item's "id" (OpenNMT-py's rule),
        which the others must not contradict; the first model without one."""
        ids = [(index, item['id']) for index, item in enumerate(items) if 'id' in item]
        if not ids:
            return self.specs[0].model_id
        known = [spec.model_id for spec in self.specs]
        for index, model_id in ids:
            if not _is_int(model_id):
                raise RequestError(400, '[%d].id: expected a model id (an integer), got %s'
                                   % (index, _json_type(model_id)), len(items))
            if model_id not in known:
                raise RequestError(400, '[%d].id: no model %d here (models: %s)'
                                   % (index, model_id, ', '.join(str(k) for k in known)),
                                   len(items))
            if model_id != ids[0][1]:
                raise RequestError(400, '[%d].id: model %d where [%d] asks model %d: a request '
                                   'goes to one model' % (index, model_id, ids[0][0], ids[0][1]),
                                   len(items))
        return ids[0][1]

    def _source(self, model, index, item, count):
        if 'src' not in item:
            raise RequestError(400, '[%d].src is missing' % index, count)
        text = item['src']
        if not isinstance(text, str):
            raise RequestError(400, '[%d].src: expected a string, got %s'
                               % (index, _json_type(text)), count)
        tokens = model.translator.tokenize_source(text)
        if not tokens:
            raise RequestError(400, '[%d].src is empty' % index, count)
        if len(tokens) > model.input_length:
            raise RequestError(400, '[%d].src: %d tokens (%s), the model reads at most %d'
                               % (index, len(tokens), model.config['source_tokens'],
                                  model.input_length), count)
        return tokens

    def _attention_asked(self, model, index, item, count):
        asked = item.get('attention', False)
        if not isinstance(asked, bool):
            raise RequestError(400, '[%d].attention: expected true or false, got %s'
                               % (index, _json_type(asked)), count)
        if asked and not model.attends:
            raise RequestError(400, '[%d].attention: model %d is not an attention model (trained '
                               'with --model %s)' % (index, model.spec.model_id,
                                                     model.config.get('model')), count)
        return asked

    def _search(self, spec, items, count):
        """(beam size, n_best) of a request: what its items ask (one value
        each for the request, as its answer has one list per rank), within
        the spec's limits; the spec's own where they ask nothing. A request
        asking more n-best than the default beam gets a beam that wide."""
        asked = {}
        for name in ('beam_size', 'n_best'):
            given = [(index, item[name]) for index, item in enumerate(items) if name in item]
            for index, value in given:
                if not _is_int(value) or value < 1:
                    raise RequestError(400, '[%d].%s: expected a positive integer, got %s'
                                       % (index, name, json.dumps(value)), count)
                if value != given[0][1]:
                    raise RequestError(400, '[%d].%s: %d where [%d] asks %d: a request has one '
                                       '%s' % (index, name, value, given[0][0], given[0][1],
                                               name), count)
            if given:
                asked[name] = given[0]
        n_best = asked['n_best'][1] if 'n_best' in asked else None
        if 'beam_size' in asked:
            field, beam_size = '[%d].beam_size' % asked['beam_size'][0], asked['beam_size'][1]
            if n_best is None:
                n_best = min(spec.n_best, beam_size)
        else:
            beam_size = max(spec.beam_size, n_best or 1)
            field = '[%d].n_best' % asked['n_best'][0] if 'n_best' in asked else 'beam_size'
            n_best = n_best or spec.n_best
        if beam_size > spec.max_beam_size:
            raise RequestError(400, '%s: a beam of %d, this server searches at most %d '
                               '(--max-beam-size)' % (field, beam_size, spec.max_beam_size), count)
        if n_best > beam_size:
            raise RequestError(400, '[%d].n_best: %d needs beam_size >= %d, got %d'
                               % (asked['n_best'][0], n_best, n_best, beam_size), count)
        return beam_size, n_best

    def _answer(self, model, items, job, n_best):
        """OpenNMT-py's answer: one list per rank (n_best lists), each with
        an entry per source in order. A source for which the search found
        fewer hypotheses gets tgt "" and pred_score null in the ranks
        it lacks."""
        detokenize = model.translator.detokenize_target
        ranks = [[] for _ in range(n_best)]
        for index, item in enumerate(items):
            text = item['src']
            # OpenNMT-py gives the output the source's leading and trailing
            # whitespace (a newline kept at the end of a line, ...).
            head = re.match(r'\s*', text).group()
            tail = text[len(text.rstrip()):] if text.strip() else ''
            hypotheses = job.hypotheses[index]
            for rank in range(n_best):
                entry = dict(src=text, tgt='', n_best=n_best, pred_score=None)
                if rank < len(hypotheses):
                    tokens, log_prob = hypotheses[rank]
                    entry.update(tgt=head + detokenize(tokens) + tail, pred_score=log_prob)
                    if job.attention is not None and job.attention[index] is not None:
                        entry['attention'] = dict(src=job.sources[index], tgt=list(tokens),
                                                  weights=job.attention[index][rank])
                ranks[rank].append(entry)
        return ranks


# -- the server --------------------------------------------------------------------------
def _log_handler(stream, label):
    """A handler writing gunicorn's line format: [time] [pid] [LABEL] message."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter('[%(asctime)s] [%(process)d] [' + label + '] '
                                           '%(message)s', '%Y-%m-%d %H:%M:%S %z'))
    return handler


def configure_logging(stream=None):
    """The server's log and its access log (one line per request: method,
    path, status, sources, milliseconds) on `stream` (standard error)."""
    stream = stream or sys.stderr
    for logger, label in ((log, '%(levelname)s'), (access_log, 'ACCESS')):
        logger.handlers[:] = [_log_handler(stream, label)]
        logger.setLevel(logging.INFO)
        logger.propagate = False


def run_server(specs, host='127.0.0.1', port=5000, url_root='/translator', workers=1,
               threads=32, batch_wait_ms=5.0, timeout=30.0, max_request_bytes=1 << 20):
    """Serve `specs` with gunicorn until SIGTERM or SIGINT; returns the
    exit status (gunicorn's: 0 after a graceful stop, 3 when a worker
    could not load a model).

    gunicorn's master process binds host:port and starts `workers` worker
    processes (gthread: `threads` request threads each, so that that many
    requests wait for a batch together); each worker builds its own
    ServeApp, whose decoder thread loads and compiles every model before
    /health answers 200. SIGTERM stops accepting connections and lets the
    requests in flight finish (within their timeout) before the workers
    exit; a request not answered within `timeout` seconds gets a 503.
    """
    from gunicorn.app.base import BaseApplication

    def stop_worker(reason):
        # The master then stops the server: each worker would fail alike.
        logging.shutdown()
        os._exit(WORKER_BOOT_ERROR)

    def build_app():
        configure_logging()
        return ServeApp(specs, url_root=url_root, batch_wait=batch_wait_ms / 1000.0,
                        timeout=timeout, max_request_bytes=max_request_bytes,
                        on_load_error=stop_worker).start()

    def when_ready(server):
        log.info('seq2seq serve: %d worker(s) loading model(s) %s; POST http://%s:%d%s/translate '
                 '(GET %s/health answers 200 when a worker is ready)', workers,
                 ', '.join('%d (%s)' % (spec.model_id, ' '.join(spec.model_dirs))
                           for spec in specs), host, port, url_root, url_root)

    class Server(BaseApplication):
        def load_config(self):
            settings = dict(
                bind=['[%s]:%d' % (host, port) if ':' in host else '%s:%d' % (host, port)],
                workers=workers, worker_class='gthread', threads=threads,
                # In-flight requests finish within their own timeout after a
                # SIGTERM; a worker silent (not even its heartbeat) for much
                # longer than a request may take is stuck, and replaced.
                # (gunicorn takes whole seconds.)
                graceful_timeout=int(math.ceil(timeout + batch_wait_ms / 1000.0)) + 1,
                timeout=int(max(60, math.ceil(2 * timeout))), keepalive=5,
                accesslog=None, errorlog='-', loglevel='info', proc_name='seq2seq-serve',
                when_ready=when_ready)
            for name, value in settings.items():
                self.cfg.set(name, value)

        def load(self):
            return build_app()

    configure_logging()
    master = os.getpid()
    try:
        Server().run()
    except SystemExit as stop:
        if os.getpid() != master:
            raise       # a worker's exit: it leaves the process, not this function
        return stop.code or 0       # gunicorn's master exits when the server stops
    return 0
