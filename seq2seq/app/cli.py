"""The `seq2seq` command line: train, predict, evaluate, score, attention.

    seq2seq train --train train.tsv --valid dev.tsv --model-dir DIR
    seq2seq predict --model-dir DIR < inputs.txt > outputs.txt
    seq2seq evaluate --model-dir DIR --test test.tsv --metric wer per
    seq2seq score --model-dir DIR --input pairs.tsv > log_probs.txt
    seq2seq attention --model-dir DIR --source hello --out hello.png

Data files hold `source<TAB>target` lines (UTF-8); a source on several lines
has several references. A file that cannot be read ends the command with one
line naming the file and the line, and exit status 2.
"""
from __future__ import absolute_import, print_function

import argparse
import io
import os
import sys

USAGE_ERROR = 2
DEFAULTS = dict(model='attention', cell='lstm', hidden_dim=256, depth=1, embedding_dim=64,
                dropout=0.0, epochs=30, batch_size=64, learning_rate=0.001, patience=3, seed=0,
                maxibatch=20)
METRICS = ('wer', 'per', 'bleu', 'accuracy', 'perplexity')


class CommandError(Exception):
    """An error the user can fix: printed as one line, exit status 2."""


# -- arguments -------------------------------------------------------------------------
def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    if value < 1:
        raise argparse.ArgumentTypeError('expected a positive integer, got %r' % text)
    return value


def _depth(text):
    """N (as deep in the encoder and the decoder) or E,D (encoder, decoder)."""
    parts = text.split(',')
    if len(parts) > 2:
        raise argparse.ArgumentTypeError('expected N or E,D (positive integers), got %r' % text)
    try:
        depth = [_positive_int(part) for part in parts]
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError('expected N or E,D (positive integers), got %r' % text)
    return depth[0] if len(depth) == 1 else depth


def _natural(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError('expected an integer >= 0, got %r' % text)
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not value > 0:
        raise argparse.ArgumentTypeError('expected a positive number, got %r' % text)
    return value


def _seed(text):
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value < 2 ** 32:
        raise argparse.ArgumentTypeError('expected an integer in [0, 2**32), got %r' % text)
    return value


def _non_negative_float(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value < float('inf'):
        raise argparse.ArgumentTypeError('expected a number >= 0, got %r' % text)
    return value


def _probability(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError('expected a number in [0, 1), got %r' % text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError('expected a number in [0, 1), got %r' % text)
    return value


def _fraction(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError('expected a number in (0, 1), got %r' % text)
    return value


def _unit_interval(text):
    try:
        value = float(text)
    except ValueError:
        value = None
    if value is None or not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError('expected a number in [0, 1], got %r' % text)
    return value


class _ShowDefaults(argparse.HelpFormatter):
    """Help lines end with the option's default, when it has one."""

    def _get_help_string(self, action):
        text = action.help or ''
        if (text and action.option_strings and '%(default)' not in text
                and action.default not in (None, False, argparse.SUPPRESS)):
            text += ' (default: %(default)s)'
        return text


def build_parser():
    parser = argparse.ArgumentParser(
        prog='seq2seq', description='Train, apply and score sequence-to-sequence models on '
        'text files of source<TAB>target lines.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True

    formatter = dict(formatter_class=_ShowDefaults)
    train = commands.add_parser('train', help='train a model on a TSV file', **formatter)
    train.add_argument('--train', required=True, metavar='TSV', help='training pairs')
    train.add_argument('--valid', metavar='TSV',
                       help='validation pairs (best checkpoint, early stopping)')
    train.add_argument('--model-dir', required=True, metavar='DIR')
    train.add_argument('--source-tokens', choices=('chars', 'words'), default='chars',
                       help='a source token is a character or a space-separated word')
    train.add_argument('--target-tokens', choices=('chars', 'words'), default='chars',
                       help='the same for targets')
    train.add_argument('--model', choices=('attention', 'seq2seq', 'simple'),
                       default=DEFAULTS['model'], help='AttentionSeq2Seq (bidirectional '
                       'encoder), Seq2Seq or SimpleSeq2Seq')
    train.add_argument('--cell', choices=('lstm', 'gru'), default=DEFAULTS['cell'],
                       help='the recurrent cell')
    train.add_argument('--hidden-dim', type=_positive_int, default=DEFAULTS['hidden_dim'],
                       help='width of the recurrent layers')
    train.add_argument('--depth', type=_depth, default=DEFAULTS['depth'], metavar='N|E,D',
                       help='recurrent layers in the encoder and in the decoder (E,D: '
                       'E in the encoder, D in the decoder; the fused attention decoder '
                       'runs D=1)')
    train.add_argument('--embedding-dim', type=_positive_int,
                       default=DEFAULTS['embedding_dim'], help='size of the token embeddings')
    train.add_argument('--dropout', type=_probability, default=DEFAULTS['dropout'],
                       help='dropout between stacked layers')
    train.add_argument('--epochs', type=_positive_int, default=DEFAULTS['epochs'],
                       help='the total number of epochs (also with --resume)')
    train.add_argument('--batch-size', type=_positive_int, default=DEFAULTS['batch_size'],
                       help='pairs per training step')
    train.add_argument('--learning-rate', type=_positive_float, default=None,
                       help='Adam\'s step size (default: %g; with --resume: the rate from the '
                       'next epoch on, e.g. to lower it by hand)' % DEFAULTS['learning_rate'])
    train.add_argument('--lr-decay', type=_fraction, default=None, metavar='FACTOR',
                       help='multiply the learning rate by FACTOR after every epoch '
                       'without a better validation loss (with --resume: from now on)')
    train.add_argument('--maxibatch', type=_natural, default=DEFAULTS['maxibatch'], metavar='N',
                       help='sort each group of N batches by length, so that a batch holds '
                       'sequences of similar lengths and runs fewer steps (0: random batches)')
    train.add_argument('--reverse-source', action='store_true',
                       help='read every source last token first')
    train.add_argument('--reverse-target', action='store_true',
                       help='generate every target last token first: a right-to-left '
                       'model (predict and evaluate give its outputs in reading order), '
                       'e.g. for --rescore-model-dir')
    train.add_argument('--patience', type=_positive_int, default=DEFAULTS['patience'],
                       help='stop after this many epochs without a better validation loss')
    train.add_argument('--seed', type=_seed, default=DEFAULTS['seed'],
                       help='seeds the initial weights, the shuffling and the dropout')
    train.add_argument('--resume', action='store_true',
                       help='continue the interrupted run in --model-dir')
    train.add_argument('--quiet', action='store_true', help='no progress bar')

    predict = commands.add_parser('predict', help='decode sources, one per line',
                                  **formatter)
    predict.add_argument('--model-dir', required=True, metavar='DIR', nargs='+',
                         help='a model directory, or several trained on the same data: an '
                         'ensemble (the mean of their probabilities)')
    predict.add_argument('--beam-size', type=_positive_int, default=1,
                         help='1: greedy search')
    _add_length_penalty(predict)
    predict.add_argument('--n-best', type=_positive_int, default=None,
                         help='write N lines per source, each with its log-probability '
                         'after a tab')
    predict.add_argument('--batch-size', type=_positive_int, default=64,
                         help='sources decoded together')
    _add_rescoring(predict)
    predict.add_argument('--input', metavar='FILE', help='default: standard input')
    predict.add_argument('--output', metavar='FILE', help='default: standard output')

    evaluate = commands.add_parser('evaluate', help='score a model on a TSV file',
                                   **formatter)
    evaluate.add_argument('--model-dir', required=True, metavar='DIR', nargs='+',
                          help='a model directory, or several: an ensemble')
    evaluate.add_argument('--test', required=True, metavar='TSV')
    evaluate.add_argument('--metric', nargs='+', choices=METRICS, default=['wer', 'per'],
                          help='the metrics to print')
    evaluate.add_argument('--beam-size', type=_positive_int, default=1,
                          help='1: greedy search')
    evaluate.add_argument('--batch-size', type=_positive_int, default=64,
                          help='sources decoded together')
    _add_length_penalty(evaluate)
    _add_rescoring(evaluate)

    score = commands.add_parser('score', help='the log-probability of given targets',
                                **formatter)
    score.add_argument('--model-dir', required=True, metavar='DIR', nargs='+',
                       help='a model directory, or several: an ensemble')
    score.add_argument('--input', required=True, metavar='TSV',
                       help='source<TAB>target lines: one log-probability per pair, in '
                       'order (blank lines skipped)')
    score.add_argument('--batch-size', type=_positive_int, default=64,
                       help='pairs scored together')
    score.add_argument('--output', metavar='FILE', help='default: standard output')

    attention = commands.add_parser('attention', help='plot the attention for one source')
    attention.add_argument('--model-dir', required=True, metavar='DIR')
    attention.add_argument('--source', required=True, metavar='TEXT')
    attention.add_argument('--out', required=True, metavar='FILE.png')
    return parser


def _add_length_penalty(command):
    command.add_argument('--length-penalty', type=_non_negative_float, default=0.0,
                         metavar='ALPHA', help='with --beam-size > 1, rank hypotheses by '
                         'log-probability / ((5 + length) / 6) ** ALPHA (GNMT); 0: by '
                         'log-probability')


def _add_rescoring(command):
    command.add_argument('--rescore-model-dir', metavar='DIR', nargs='+', default=None,
                         help='rerank the beam\'s hypotheses by (1 - W) * their '
                         'log-probability + W * their log-probability under these models '
                         '(e.g. right-to-left ones, trained with --reverse-target on the '
                         'same data); needs --beam-size > 1')
    command.add_argument('--rescore-weight', type=_unit_interval, default=0.5, metavar='W',
                         help='the weight W of --rescore-model-dir')
    command.add_argument('--rescore-union', action='store_true',
                         help='the --rescore-model-dir models search too, and their beam\'s '
                         'hypotheses join the candidates (scored by both)')
    command.add_argument('--rescore-nbest', metavar='FILE', default=None,
                         help='another system\'s n-best lists, lines source<TAB>cost<TAB>target '
                         '(cost = -log p, as phonetisaurus-g2pfst prints them): add V * their '
                         'log-probability of each hypothesis (one outside its source\'s list '
                         'gets the list\'s worst - 1); needs --beam-size > 1')
    command.add_argument('--rescore-nbest-weight', type=_unit_interval, default=0.3,
                         metavar='V', help='the weight V of --rescore-nbest (the search gets '
                         '1 - W - V)')


def _warn(message):
    print('seq2seq: warning: %s' % message, file=sys.stderr)


# -- train -----------------------------------------------------------------------------
def _encode_pairs(pairs, path, config, source_vocab, target_vocab):
    """(x, y) id arrays of (line, source, target) triples; sources and
    targets too long for the model are cut, with one warning per file."""
    from .data import pad_ids
    from .vocab import EOS_ID
    input_length, output_length = config['input_length'], config['output_length']
    if config.get('reverse_target'):
        pairs = [(line, source, target[::-1]) for line, source, target in pairs]
    too_long = [line for line, source, target in pairs
                if len(source) > input_length or len(target) > output_length - 1]
    if too_long:
        _warn('%s: %d pair(s) longer than the model (source %d, target %d tokens) are cut, '
              'first on line %d' % (path, len(too_long), input_length, output_length - 1,
                                    too_long[0]))
    x = pad_ids([source_vocab.encode(s[:input_length]) for _, s, _ in pairs], input_length,
                reverse=config['reverse_source'])
    y = pad_ids([target_vocab.encode(t[:output_length - 1]) + [EOS_ID] for _, _, t in pairs],
                output_length)
    return x, y


def _new_run(args, pairs):
    """Config, vocabularies and a compiled model for a fresh run."""
    from .callbacks import set_seed
    from .model_dir import build_model, compile_model, write_config, CONFIG
    from .vocab import Vocabulary
    if os.path.exists(os.path.join(args.model_dir, CONFIG)):
        raise CommandError('%s already holds a model: continue it with --resume, or choose '
                           'another --model-dir' % args.model_dir)
    if args.model == 'attention' and args.hidden_dim % 2:
        raise CommandError('--model attention needs an even --hidden-dim (half per direction '
                           'of its bidirectional encoder), got %d' % args.hidden_dim)
    if args.learning_rate is None:
        args.learning_rate = DEFAULTS['learning_rate']
    source_vocab = Vocabulary.build(source for _, source, _ in pairs)
    target_vocab = Vocabulary.build(target for _, _, target in pairs)
    config = {name: getattr(args, name) for name in (
        'source_tokens', 'target_tokens', 'model', 'cell', 'hidden_dim', 'depth',
        'embedding_dim', 'dropout', 'batch_size', 'learning_rate', 'lr_decay',
        'reverse_source', 'reverse_target', 'patience', 'seed', 'maxibatch')}
    config.update(input_length=max(len(source) for _, source, _ in pairs),
                  output_length=max(len(target) for _, _, target in pairs) + 1,
                  train=args.train, valid=args.valid)
    write_config(args.model_dir, config, source_vocab, target_vocab)
    set_seed(args.seed)     # Keras' initialisers and the dropout streams' seeds
    model = compile_model(build_model(config, len(source_vocab), len(target_vocab)),
                          config['learning_rate'])
    return config, source_vocab, target_vocab, model, None


def _resumed_run(args):
    """Config, vocabularies, the last checkpoint and the training state.

    The checkpoint holds the training state, the random states and the
    optimizer state (`seq2seq.callbacks.save_checkpoint`); one an earlier
    version wrote holds the model only, and the state is read from
    train_state.json (the dropout masks then differ from an uninterrupted
    run's, but are the same from one such resume to another)."""
    from .callbacks import (LAST_CHECKPOINT, TRAIN_STATE, load_checkpoint, load_train_state,
                            set_seed)
    from .model_dir import read_config, write_config
    config, source_vocab, target_vocab = read_config(args.model_dir)
    checkpoint = os.path.join(args.model_dir, LAST_CHECKPOINT)
    if not os.path.exists(checkpoint):
        raise CommandError('%s has no checkpoint to resume from (no epoch finished yet): '
                           'train again without --resume' % args.model_dir)
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


def train(args):
    from .callbacks import CheckpointAndEarlyStopping, make_validation_scorer
    from .data import TeacherForcedBatches, read_tsv, variable_length_batches
    from .model_dir import is_teacher_forced
    from .vocab import EOS_ID
    if args.resume:
        config, source_vocab, target_vocab, model, state = _resumed_run(args)
    else:
        config = state = None
    tokens = (config or vars(args))
    pairs = read_tsv(args.train, tokens['source_tokens'], tokens['target_tokens'])
    valid = (read_tsv(args.valid, tokens['source_tokens'], tokens['target_tokens'])
             if args.valid else None)
    if not args.resume:
        config, source_vocab, target_vocab, model, state = _new_run(args, pairs)
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
        # Each batch cut to its longest sequences: the same loss, fewer steps.
        x, y = _encode_pairs(pairs, path, config, source_vocab, target_vocab)
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
                            verbose=0 if args.quiet else 1, workers=0, shuffle=False)
    print('%s: best %s loss %.4f; model, vocabularies, history.csv and loss.png written'
          % (args.model_dir, 'validation' if validation else 'training', checkpoint.best))
    return 0


# -- rescoring -------------------------------------------------------------------------
def _check_rescoring(args, config):
    """Usage errors of the rescoring options; returns the --rescore-nbest
    scores (read now, before any model loads), or None."""
    if args.rescore_union and not args.rescore_model_dir:
        raise CommandError('--rescore-union needs --rescore-model-dir')
    for option, value in (('--rescore-model-dir', args.rescore_model_dir),
                          ('--rescore-nbest', args.rescore_nbest)):
        if value and args.beam_size < 2:
            raise CommandError('%s reranks the beam\'s hypotheses: it needs --beam-size > 1, '
                               'got %d' % (option, args.beam_size))
    if not args.rescore_nbest:
        return None
    if args.rescore_model_dir and args.rescore_weight + args.rescore_nbest_weight > 1.0:
        raise CommandError('--rescore-weight + --rescore-nbest-weight must be at most 1 (the '
                           'search gets the rest), got %g + %g'
                           % (args.rescore_weight, args.rescore_nbest_weight))
    from .nbest import NbestScores
    return NbestScores.read(args.rescore_nbest, config['source_tokens'],
                            config['target_tokens'])


def _with_rescoring(args, translator, nbest):
    """What searches: the translator, or a Reranker of its beam with the
    --rescore-model-dir models and the --rescore-nbest scores."""
    if not args.rescore_model_dir and nbest is None:
        return translator
    from .rescoring import Reranker
    from .translator import Translator
    rescorer = Translator(args.rescore_model_dir) if args.rescore_model_dir else None
    return Reranker(translator, rescorer, args.rescore_weight if rescorer else 0.0,
                    union=args.rescore_union, nbest=nbest,
                    nbest_weight=args.rescore_nbest_weight if nbest else 0.0)


def _rescoring_summary(args):
    """How evaluate's header line describes the reranking."""
    parts = []
    if args.rescore_model_dir:
        parts.append('rescored by %s with weight %g%s' % (
            ' '.join(args.rescore_model_dir), args.rescore_weight,
            ', candidates of both searches' if args.rescore_union else ''))
    if args.rescore_nbest:
        parts.append('n-best scores of %s with weight %g' % (args.rescore_nbest,
                                                              args.rescore_nbest_weight))
    return ''.join(', ' + part for part in parts)


# -- predict ---------------------------------------------------------------------------
def _input_lines(path):
    """(line number, text) of every line of the predict input, blank ones
    included (each gets an output line)."""
    from .data import DataFileError
    name = path or '<stdin>'
    if path:
        try:
            stream = open(path, 'rb')
        except (IOError, OSError) as error:
            raise DataFileError(path, None, error.strerror or str(error))
    else:
        stream = getattr(sys.stdin, 'buffer', sys.stdin)
    lines = []
    try:
        for number, raw in enumerate(stream, 1):
            if not isinstance(raw, bytes):
                raw = raw.encode('utf-8')
            try:
                lines.append((number, raw.decode('utf-8').rstrip('\r\n')))
            except UnicodeDecodeError as error:
                raise DataFileError(name, number, 'not UTF-8 text (byte %d: %s)'
                                    % (error.start + 1, error.reason))
    finally:
        if path:
            stream.close()
    if not lines:
        raise DataFileError(name, 1, 'the input is empty; expected one source per line')
    return lines


def predict(args):
    from .translator import Translator
    n_best = args.n_best or 1
    if n_best > args.beam_size:
        args.beam_size = n_best         # n-best lists need a beam at least that wide
    from .model_dir import check_trained
    configs = [check_trained(model_dir)[0]          # the model directories, the n-best
               for model_dir in args.model_dir + (args.rescore_model_dir or [])]
    nbest = _check_rescoring(args, configs[0])      # file, then the input, fail before
    lines = _input_lines(args.input)                # the models load
    translator = Translator(args.model_dir)
    search = _with_rescoring(args, translator, nbest)
    name = args.input or '<stdin>'
    sources = []
    for number, text in lines:
        tokens = translator.tokenize_source(text)
        if not tokens:
            _warn('%s, line %d: empty source' % (name, number))
        for problem in translator.problems(tokens):
            _warn('%s, line %d: %s' % (name, number, problem))
        sources.append(tokens)
    decoded = search.translate(sources, beam_size=args.beam_size, n_best=n_best,
                               batch_size=args.batch_size, length_penalty=args.length_penalty)
    written = []
    for hypotheses in decoded:
        for tokens, log_prob in hypotheses[:n_best]:
            text = translator.detokenize_target(tokens)
            written.append('%s\t%.4f\n' % (text, log_prob) if args.n_best else text + '\n')
        # A source the search found fewer hypotheses for still gets n_best lines.
        written.extend(['\t-inf\n'] * (n_best - len(hypotheses)))
    if args.output:             # a temporary file, renamed: never half an output file
        from .vocab import write_text_atomically
        write_text_atomically(args.output, ''.join(written))
    else:
        sys.stdout.write(''.join(written))
        sys.stdout.flush()
    return 0


# -- evaluate --------------------------------------------------------------------------
def evaluate(args):
    from . import metrics
    from .data import group_references, read_tsv
    from .model_dir import check_trained
    from .translator import Translator
    config = [check_trained(model_dir) for model_dir in args.model_dir][0][0]
    for model_dir in args.rescore_model_dir or []:
        check_trained(model_dir)
    nbest = _check_rescoring(args, config)
    pairs = read_tsv(args.test, config['source_tokens'], config['target_tokens'])
    translator = Translator(args.model_dir)
    search = _with_rescoring(args, translator, nbest)
    grouped = group_references(pairs)
    sources = [source for source, _ in grouped]
    references = [targets for _, targets in grouped]
    unknown = sum(1 for s in sources if translator.source_vocab.unknown(s))
    if unknown:
        _warn('%s: %d source(s) hold tokens the model does not know (read as <unk>)'
              % (args.test, unknown))
    results = []
    if set(args.metric) & {'wer', 'per', 'bleu', 'accuracy'}:
        hypotheses = [h[0][0] for h in search.translate(
            sources, beam_size=args.beam_size, batch_size=args.batch_size,
            length_penalty=args.length_penalty)]
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
            _, right, counted = translator.reference_log_probs(
                [p[1] for p in pairs], [p[2] for p in pairs], args.batch_size)
            results.append(('token accuracy', '%.2f%%' % (100 * right[counted].mean())))
        elif metric == 'perplexity':
            log_probs, _, _ = translator.reference_log_probs(
                [p[1] for p in pairs], [p[2] for p in pairs], args.batch_size)
            results.append(('perplexity', '%.4f' % metrics.perplexity(log_probs)))
    print('%s: %d sources, %d references, beam size %d%s%s'
          % (args.test, len(sources), len(pairs), args.beam_size,
             ', length penalty %g' % args.length_penalty if args.length_penalty else '',
             _rescoring_summary(args)))
    for name, value in results:
        print('%s\t%s' % (name, value))
    return 0


# -- score -----------------------------------------------------------------------------
def score(args):
    from .data import read_tsv
    from .model_dir import check_trained
    from .translator import Translator
    config = [check_trained(model_dir) for model_dir in args.model_dir][0][0]
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
    written = ''.join('%.4f\n' % log_prob for log_prob in log_probs)
    if args.output:
        from .vocab import write_text_atomically
        write_text_atomically(args.output, written)
    else:
        sys.stdout.write(written)
        sys.stdout.flush()
    return 0


# -- attention -------------------------------------------------------------------------
def attention(args):
    from .plots import plot_attention
    from .translator import Translator
    from .vocab import EOS_ID
    translator = Translator(args.model_dir)
    tokens = translator.tokenize_source(args.source)
    if not tokens:
        raise CommandError('--source is empty')
    for problem in translator.problems(tokens):
        _warn('--source: %s' % problem)
    try:
        outputs, read, weights = translator.attention(tokens)
    except ValueError as error:
        raise CommandError(str(error))
    plot_attention(weights, read, outputs, args.out)
    eos = translator.target_vocab.tokens[EOS_ID]
    print('%s -> %s; attention heatmap written to %s'
          % (args.source, translator.detokenize_target([t for t in outputs if t != eos]),
             args.out))
    return 0


COMMANDS = {'train': train, 'predict': predict, 'evaluate': evaluate, 'score': score,
            'attention': attention}


def main(argv=None):
    """Run a command; returns the exit status (2 for a usage or file error,
    printed as one line on stderr)."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:
        return exit.code
    import seq2seq  # noqa: F401  (selects Keras' Theano backend first)
    from .data import DataFileError
    from .model_dir import ModelDirError
    try:
        return COMMANDS[args.command](args)
    except (CommandError, DataFileError, ModelDirError) as error:
        print('seq2seq %s: error: %s' % (args.command, error), file=sys.stderr)
        return USAGE_ERROR
    except KeyboardInterrupt:
        print('seq2seq %s: interrupted' % args.command, file=sys.stderr)
        return 130


if __name__ == '__main__':
    sys.exit(main())
