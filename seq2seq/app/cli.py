"""The `seq2seq` command line: train, predict, evaluate, score, attention,
distill.

    seq2seq train --train train.tsv --valid dev.tsv --model-dir DIR
    seq2seq predict --model-dir DIR < inputs.txt > outputs.txt
    seq2seq evaluate --model-dir DIR --test test.tsv --metric wer per
    seq2seq score --model-dir DIR --input pairs.tsv > log_probs.txt
    seq2seq attention --model-dir DIR --source hello --out hello.png
    seq2seq chat --model-dir RUN_DIR [--beam-size K] < messages.txt
    seq2seq serve --model-dir DIR [--beam-size K] [--port 5000]   # docs/serving.md
    seq2seq distill --teacher-dir DIR [DIR ...] --train train.tsv --out distilled.tsv

Data files hold `source<TAB>target` lines (UTF-8); a source on several lines
has several references. A file that cannot be read ends the command with one
line naming the file and the line, and exit status 2.

The options and their validation are `seq2seq.app.opts`; a command here
calls the library (`Translator`, `Reranker`, `seq2seq.training`) and prints.
"""
from __future__ import absolute_import, print_function

import contextlib
import os
import sys

from ..util.files import remove_dead_temporaries
from .opts import VALIDATORS, CommandError, RECORDED_TRAIN_OPTIONS, build_parser

USAGE_ERROR = 2


def _warn(message):
    print('seq2seq: warning: %s' % message, file=sys.stderr)


def _write(path, text):
    """`text` to the file `path` (a temporary file, renamed: never half an
    output file), or to standard output when `path` is None."""
    if path:
        from ..util.files import write_text_atomically
        write_text_atomically(path, text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()


# -- train -----------------------------------------------------------------------------
def _new_run(args, pairs, held):
    """Config, vocabularies and a compiled model for a fresh run; the
    directory's lock goes into the ExitStack `held`."""
    from ..training.seeding import set_seed
    from ..training.vocab import Vocabulary
    from .model_dir import CONFIG, build_model, compile_model, lock_model_dir, write_config
    if not os.path.isdir(args.model_dir):
        os.makedirs(args.model_dir)
    held.enter_context(lock_model_dir(args.model_dir))
    if os.path.exists(os.path.join(args.model_dir, CONFIG)):
        raise CommandError('%s already holds a model: continue it with --resume, or choose '
                           'another --model-dir' % args.model_dir)
    # Temporary files of runs killed while writing (loss.png, the
    # vocabularies, ...); a refused run above leaves them.
    remove_dead_temporaries(args.model_dir)
    source_vocab = Vocabulary.build(source for _, source, _ in pairs)
    target_vocab = Vocabulary.build(target for _, _, target in pairs)
    config = {name: getattr(args, name) for name in RECORDED_TRAIN_OPTIONS}
    config.update(input_length=max(len(source) for _, source, _ in pairs),
                  output_length=max(len(target) for _, _, target in pairs) + 1,
                  train=args.train, valid=args.valid)
    write_config(args.model_dir, config, source_vocab, target_vocab)
    set_seed(args.seed)     # Keras' initialisers and the dropout streams' seeds
    model = compile_model(build_model(config, len(source_vocab), len(target_vocab)),
                          config['learning_rate'])
    return config, source_vocab, target_vocab, model, None


def _resumed_run(args, held):
    """Config, vocabularies, the last checkpoint and the training state;
    the directory's lock goes into the ExitStack `held`.

    A run that stopped before its first checkpoint (killed in epoch 1, even
    while writing last.h5) starts again from epoch 1 with the directory's
    configuration and vocabularies, as `train` would have (state None).

    The checkpoint holds the training state, the random states and the
    optimizer state (`seq2seq.training.checkpoints.save_checkpoint`); one an
    earlier version wrote holds the model only, and the state is read from
    train_state.json (the dropout masks then differ from an uninterrupted
    run's, but are the same from one such resume to another)."""
    from ..training.checkpoints import (LAST_CHECKPOINT, TRAIN_STATE, load_checkpoint,
                                        load_train_state)
    from ..training.seeding import set_seed
    from .model_dir import (build_model, check_config_complete, compile_model, lock_model_dir,
                            read_config, write_config)
    held.enter_context(lock_model_dir(args.model_dir))
    config, source_vocab, target_vocab = read_config(args.model_dir)
    checkpoint = os.path.join(args.model_dir, LAST_CHECKPOINT)
    remove_dead_temporaries(args.model_dir)     # of runs killed while writing
    if not os.path.exists(checkpoint):
        check_config_complete(args.model_dir, config)
        if args.learning_rate is not None:
            config['learning_rate'] = args.learning_rate
        print('%s: no epoch was checkpointed before the run stopped; training from epoch 1 '
              'with its configuration and vocabularies' % args.model_dir)
        set_seed(config['seed'])    # as _new_run: the same initial weights
        model = compile_model(build_model(config, len(source_vocab), len(target_vocab)),
                              config['learning_rate'])
        return config, source_vocab, target_vocab, model, None
    # What a checkpoint without random states (an earlier version's) leaves
    # to numpy's generator (the dropout streams' seeds) is then still seeded.
    set_seed(config.get('seed', 0))
    try:
        model, state = load_checkpoint(checkpoint)
    except Exception as error:  # h5py and Keras raise many kinds
        raise CommandError('%s: cannot load the checkpoint (%s: %s)'
                           % (checkpoint, type(error).__name__, error))
    if state is None:
        state = load_train_state(args.model_dir)
    if state is None:
        raise CommandError('%s has no training state to resume from (%s is missing): '
                           'train again without --resume' % (args.model_dir, TRAIN_STATE))
    if args.learning_rate is not None:
        # The callback sets the optimizer to the state's rate when training
        # begins; history.csv records it from the next epoch on.
        state['learning_rate'] = args.learning_rate
    if args.lr_decay is not None and args.lr_decay != config.get('lr_decay'):
        config['lr_decay'] = args.lr_decay      # a schedule changed mid-run is recorded
        write_config(args.model_dir, config, source_vocab, target_vocab)
    return config, source_vocab, target_vocab, model, state


def _training_pairs(path, settings, warn_outliers):
    """The pairs of the training file `path`, read with the tokenization of
    `settings` (the train options or a model directory's config), without
    those longer than its max_source_length / max_target_length (counted
    on standard output). With `warn_outliers`, a warning names the line of a
    source or target so much longer than the others that it alone would
    set the model's length."""
    from ..training.data import drop_long_pairs, length_outlier, read_tsv
    pairs = read_tsv(path, settings['source_tokens'], settings['target_tokens'])
    limits = dict(source=settings.get('max_source_length'),
                  target=settings.get('max_target_length'))
    pairs, dropped = drop_long_pairs(pairs, limits['source'], limits['target'])
    if dropped:
        print('%s: %d pair(s) longer than %s dropped, first on line %d'
              % (path, len(dropped), ' or '.join('--max-%s-length %d' % (side, limit)
                                                 for side, limit in sorted(limits.items())
                                                 if limit is not None), dropped[0]))
    if not pairs:
        raise CommandError('%s: no pair is within --max-source-length / --max-target-length'
                           % path)
    for side in ('source', 'target') if warn_outliers else ():
        outlier = length_outlier(pairs, side)
        if outlier:
            line, length, typical = outlier
            _warn('{path}, line {line}: a {side} of {length} tokens, where 99% of the {side}s '
                  'have at most {typical}: the model will take {side}s that long and pad '
                  'every {side} it reads to that length; --max-{side}-length N drops the '
                  'longer pairs'.format(path=path, line=line, side=side, length=length,
                                        typical=typical))
    return pairs


def train(args):
    # The model directory stays locked until the command ends.
    with contextlib.ExitStack() as held:
        return _train(args, held)


def _train(args, held):
    from ..training.callbacks import CheckpointAndEarlyStopping, make_validation_scorer
    from ..training.data import (TeacherForcedBatches, encode_pairs, read_tsv,
                                 variable_length_batches)
    from ..training.vocab import EOS_ID
    from .model_dir import is_teacher_forced
    if args.resume:
        config, source_vocab, target_vocab, model, state = _resumed_run(args, held)
    else:
        config = state = None
    # A resumed run reads its data as it was first read: its config's
    # tokenization and length limits (None in an earlier version's config).
    settings = (config or vars(args))
    pairs = _training_pairs(args.train, settings, warn_outliers=not args.resume)
    valid = (read_tsv(args.valid, settings['source_tokens'], settings['target_tokens'])
             if args.valid else None)
    if not args.resume:
        config, source_vocab, target_vocab, model, state = _new_run(args, pairs, held)
    done = state['epoch'] if state else 0
    if state and state.get('stopped_early'):
        print('%s: training stopped early after epoch %d; nothing to resume'
              % (args.model_dir, done))
        return 0
    if done >= args.epochs:
        print('%s: %d epoch(s) done already (--epochs %d); nothing to do'
              % (args.model_dir, done, args.epochs))
        return 0

    def batches(pairs, path, seed, maxibatch=None):
        x, y, cut = encode_pairs(pairs, config, source_vocab, target_vocab)
        if cut:
            _warn('%s: %d pair(s) longer than the model (source %d, target %d tokens) are cut, '
                  'first on line %d' % (path, len(cut), config['input_length'],
                                        config['output_length'] - 1, cut[0]))
        # Each batch cut to its longest sequences: the same loss, fewer steps.
        return TeacherForcedBatches(x, y, len(target_vocab), config['batch_size'],
                                    is_teacher_forced(config), EOS_ID, shuffle_seed=seed,
                                    trim=True, maxibatch=maxibatch)

    # A model directory of an earlier version, without the setting, keeps
    # its random batches.
    train_batches = batches(pairs, args.train, config['seed'], config.get('maxibatch') or None)
    for _ in range(done):       # the order of epoch done + 1, as in an uninterrupted run
        train_batches.on_epoch_end()
    valid_batches = batches(valid, args.valid, None) if valid else None
    print('%s: %d training pairs, %d validation pairs; vocabularies %d source, %d target '
          'tokens; sources up to %d tokens, targets up to %d; epochs %d to %d'
          % (args.model_dir, len(pairs), len(valid or ()), len(source_vocab), len(target_vocab),
             config['input_length'], config['output_length'] - 1, done + 1, args.epochs))
    sys.stdout.flush()
    validation = (make_validation_scorer(model, valid_batches, is_teacher_forced(config))
                  if valid_batches else None)
    checkpoint = CheckpointAndEarlyStopping(args.model_dir, patience=config['patience'],
                                            state=state, validation=validation,
                                            lr_decay=config.get('lr_decay'))
    with variable_length_batches(model):
        model.fit_generator(train_batches, epochs=args.epochs, initial_epoch=done,
                            callbacks=[checkpoint],
                            verbose=progress_verbosity(args.quiet, sys.stdout),
                            workers=0, shuffle=False)
    print('%s: best %s loss %.4f; model, vocabularies, history.csv and loss.png written'
          % (args.model_dir, 'validation' if validation else 'training', checkpoint.best))
    return 0


def progress_verbosity(quiet, stream):
    """Keras' `verbose` for fit: 0 with --quiet; a progress bar (1) on a
    terminal; one line per epoch (2) into a file or a pipe, where a bar
    would write a line per batch."""
    if quiet:
        return 0
    return 1 if getattr(stream, 'isatty', lambda: False)() else 2


# -- searching: the translator, reranked or not ------------------------------------------
def _check_search(args):
    """(the first model's config, the --rescore-nbest scores or None): every
    model directory and the n-best file are checked before the data is read
    and any model loads."""
    from .model_dir import check_trained
    configs = [check_trained(model_dir)[0]
               for model_dir in args.model_dir + (args.rescore_model_dir or [])]
    if not args.rescore_nbest:
        return configs[0], None
    from .nbest import NbestScores
    return configs[0], NbestScores.read(args.rescore_nbest, configs[0]['source_tokens'],
                                        configs[0]['target_tokens'])


def _load_search(args, nbest):
    """(translator, what searches): the --model-dir models, and a Reranker
    of their beam with the --rescore-model-dir models and the --rescore-nbest
    scores when they are given."""
    from .translator import Translator
    translator = Translator(args.model_dir)
    if not args.rescore_model_dir and nbest is None:
        return translator, translator
    from .rescoring import Reranker
    rescorer = Translator(args.rescore_model_dir) if args.rescore_model_dir else None
    return translator, Reranker(translator, rescorer, args.rescore_weight if rescorer else 0.0,
                                union=args.rescore_union, nbest=nbest,
                                nbest_weight=args.rescore_nbest_weight if nbest else 0.0)


def _search_summary(args):
    """How evaluate's header line describes the search and its reranking."""
    parts = ['beam size %d' % args.beam_size]
    if args.length_penalty:
        parts.append('length penalty %g' % args.length_penalty)
    if args.rescore_model_dir:
        parts.append('rescored by %s with weight %g%s' % (
            ' '.join(args.rescore_model_dir), args.rescore_weight,
            ', candidates of both searches' if args.rescore_union else ''))
    if args.rescore_nbest:
        parts.append('n-best scores of %s with weight %g' % (args.rescore_nbest,
                                                              args.rescore_nbest_weight))
    return ', '.join(parts)


# -- predict ---------------------------------------------------------------------------
def predict(args):
    from ..training.data import read_lines
    _, nbest = _check_search(args)
    name = args.input or '<stdin>'
    stdin = None if args.input else getattr(sys.stdin, 'buffer', sys.stdin)
    lines = read_lines(name, stdin, keep_blank=True)     # each line gets an output line
    translator, search = _load_search(args, nbest)
    sources = []
    for number, text in lines:
        tokens = translator.tokenize_source(text)
        if not tokens:
            _warn('%s, line %d: empty source' % (name, number))
        for problem in translator.problems(tokens):
            _warn('%s, line %d: %s' % (name, number, problem))
        sources.append(tokens)
    n_best = args.n_best or 1
    decoded = search.translate(sources, beam_size=args.beam_size, n_best=n_best,
                               batch_size=args.batch_size, length_penalty=args.length_penalty)
    written = []
    for hypotheses in decoded:
        for tokens, log_prob in hypotheses[:n_best]:
            text = translator.detokenize_target(tokens)
            written.append('%s\t%.4f\n' % (text, log_prob) if args.n_best else text + '\n')
        # A source the search found fewer hypotheses for still gets n_best lines.
        written.extend(['\t-inf\n'] * (n_best - len(hypotheses)))
    _write(args.output, ''.join(written))
    return 0


# -- evaluate --------------------------------------------------------------------------
def evaluate(args):
    from ..training import metrics
    from ..training.data import group_references, read_tsv
    config, nbest = _check_search(args)
    pairs = read_tsv(args.test, config['source_tokens'], config['target_tokens'])
    translator, search = _load_search(args, nbest)
    grouped = group_references(pairs)
    sources = [source for source, _ in grouped]
    references = [targets for _, targets in grouped]
    unknown = sum(1 for s in sources if translator.source_vocab.unknown(s))
    if unknown:
        _warn('%s: %d source(s) hold tokens the model does not know (read as <unk>)'
              % (args.test, unknown))
    asked = set(args.metric)
    if asked & {'wer', 'per', 'bleu', 'accuracy'}:
        hypotheses = [h[0][0] for h in search.translate(
            sources, beam_size=args.beam_size, batch_size=args.batch_size,
            length_penalty=args.length_penalty)]
    if asked & {'accuracy', 'perplexity'}:     # one teacher-forced pass serves both
        log_probs, right, counted = translator.reference_log_probs(
            [source for _, source, _ in pairs], [target for _, _, target in pairs],
            args.batch_size)
    results = []
    for metric in args.metric:
        if metric == 'wer':
            results.append(('WER', '%.2f%%' % (100 * metrics.word_error_rate(hypotheses,
                                                                            references))))
        elif metric == 'per':
            results.append(('PER', '%.2f%%' % (100 * metrics.token_error_rate(hypotheses,
                                                                             references))))
        elif metric == 'bleu':
            results.append(('BLEU', '%.2f' % metrics.corpus_bleu(hypotheses, references)))
        elif metric == 'accuracy':
            results.append(('exact match', '%.2f%%' % (100 * metrics.exact_match(
                hypotheses, references))))
            results.append(('token accuracy', '%.2f%%' % (100 * right[counted].mean())))
        elif metric == 'perplexity':
            results.append(('perplexity', '%.4f' % metrics.perplexity(log_probs)))
    print('%s: %d sources, %d references, %s'
          % (args.test, len(sources), len(pairs), _search_summary(args)))
    for name, value in results:
        print('%s\t%s' % (name, value))
    return 0


# -- score -----------------------------------------------------------------------------
def score(args):
    from ..training.data import read_tsv
    from .model_dir import check_trained
    from .translator import Translator
    config = check_trained(args.model_dir[0])[0]
    for model_dir in args.model_dir[1:]:
        check_trained(model_dir)
    pairs = read_tsv(args.input, config['source_tokens'], config['target_tokens'])
    translator = Translator(args.model_dir)
    for line, source, target in pairs:
        for problem in translator.problems(source):
            _warn('%s, line %d: %s' % (args.input, line, problem))
        if len(target) > translator.output_length - 1:
            _warn('%s, line %d: a target of %d tokens, the model writes %d: the rest is cut '
                  'off' % (args.input, line, len(target), translator.output_length - 1))
    log_probs = translator.score([source for _, source, _ in pairs],
                                 [target for _, _, target in pairs], args.batch_size)
    _write(args.output, ''.join('%.4f\n' % log_prob for log_prob in log_probs))
    return 0


# -- attention -------------------------------------------------------------------------
def attention(args):
    from ..training.plots import plot_attention
    from ..training.vocab import EOS_ID
    from .translator import Translator
    translator = Translator(args.model_dir)
    tokens = translator.tokenize_source(args.source)
    for problem in translator.problems(tokens):
        _warn('--source: %s' % problem)
    try:
        outputs, read, weights = translator.attention(tokens)
    except ValueError as error:     # not an attention model
        raise CommandError(str(error))
    plot_attention(weights, read, outputs, args.out)
    eos = translator.target_vocab.tokens[EOS_ID]
    print('%s -> %s; attention heatmap written to %s'
          % (args.source, translator.detokenize_target([t for t in outputs if t != eos]),
             args.out))
    return 0


# -- distill ---------------------------------------------------------------------------
def distill(args):
    import time
    from ..training.data import read_lines, read_tsv
    from .distill import distill as decode, distill_sources, write_distilled
    from .model_dir import check_trained
    from .translator import Translator
    # Every directory and file is checked and read before a model loads.
    config = [check_trained(model_dir)[0] for model_dir in args.teacher_dir][0]
    pairs = read_tsv(args.train, config['source_tokens'], config['target_tokens'])
    extra = read_lines(args.extra_words) if args.extra_words else ()
    sources = distill_sources(pairs, extra, config['source_tokens'],
                              extra_path=args.extra_words)
    from_train = len(distill_sources(pairs))
    teacher = Translator(args.teacher_dir)
    unknown = sum(1 for source in sources if teacher.source_vocab.unknown(source))
    too_long = sum(1 for source in sources if len(source) > teacher.input_length)
    if unknown or too_long:
        _warn('%d source(s) hold tokens the teacher does not know (read as <unk>), %d are '
              'longer than it reads (cut)' % (unknown, too_long))
    started = time.time()
    distilled = decode(teacher, sources, beam_size=args.beam_size, batch_size=args.batch_size)
    seconds = time.time() - started
    written, empty = write_distilled(args.out, teacher, distilled)
    if empty:
        _warn('%d source(s) left out: the teacher\'s output is empty' % empty)
    print('seq2seq distill: %d sources decoded (%d from %s, %d more from %s) with beam size '
          '%d in %.1f s; %d lines written to %s'
          % (len(sources), from_train, args.train, len(sources) - from_train,
             args.extra_words or 'no --extra-words', args.beam_size, seconds, written,
             args.out), file=sys.stderr)
    return 0


# -- chat ------------------------------------------------------------------------------
def chat(args):
    from .chat import Chat, converse
    session = Chat.load(args.model_dir)
    stdin = getattr(sys.stdin, 'buffer', sys.stdin)
    # readline until it gives '' (b''), the end of input, rather than
    # iteration, which may wait for more lines: each answer comes (flushed)
    # as soon as its line is typed.
    converse(session, iter(stdin.readline, stdin.read(0)), lambda text: _write(None, text),
             _warn, beam_size=args.beam_size, length_penalty=args.length_penalty)
    return 0


# -- serve -----------------------------------------------------------------------------
def serve(args):
    from .serve import (ConfigError, ModelSpec, check_models, listen_problem, read_config,
                        run_server)
    defaults = dict(beam_size=args.beam_size, n_best=args.n_best, max_batch=args.max_batch,
                    max_beam_size=args.max_beam_size, length_penalty=args.length_penalty)
    if args.config:
        try:
            specs = read_config(args.config, defaults)
        except ConfigError as error:
            raise CommandError(str(error))
    else:
        specs = [ModelSpec(0, args.model_dir, **defaults)]
    # Refused here in one line, not by each worker after the server started.
    check_models(specs)
    problem = listen_problem(args.host, args.port)
    if problem:
        raise CommandError('--host %s --port %d: cannot listen there (%s)'
                           % (args.host, args.port, problem))
    try:
        import gunicorn  # noqa: F401  (an extra of setup.py: the other commands need none)
    except ImportError:
        raise CommandError('the server needs gunicorn: pip install \'seq2seq[serve]\' (or '
                           'gunicorn==23.0.0; 21.2.0 on Python 3.6)')
    return run_server(specs, host=args.host, port=args.port, url_root=args.url_root,
                      workers=args.workers, threads=args.threads,
                      batch_wait_ms=args.batch_wait_ms, timeout=args.timeout,
                      max_request_bytes=args.max_request_bytes)


COMMANDS = {'train': train, 'predict': predict, 'evaluate': evaluate, 'score': score,
            'chat': chat,
            'serve': serve,
            'attention': attention, 'distill': distill}


def main(argv=None):
    """Run a command; returns the exit status (2 for a usage or file error,
    printed as one line on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code
    import seq2seq  # noqa: F401  (selects Keras' Theano backend first)
    from ..training.checkpoints import CheckpointWriteError
    from ..training.data import DataFileError
    from ..util.files import FileWriteError
    from .model_dir import ModelDirError
    try:
        VALIDATORS[args.command](args)
        return COMMANDS[args.command](args)
    except (CommandError, DataFileError, ModelDirError, FileWriteError,
            CheckpointWriteError) as error:
        print('seq2seq %s: error: %s' % (args.command, error), file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print('seq2seq %s: interrupted' % args.command, file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
