"""The options of the `seq2seq` command line, each defined once (after
OpenNMT-py's `onmt/opts.py`).

    parser = build_parser()
    args = parser.parse_args(['predict', '--model-dir', 'g2p', '--beam-size', '5'])
    validate_predict_args(args)        # CommandError: one line naming the option

The options come in groups, one function each, which adds to a command's
parser the options of the group that the command takes: `model_opts`,
`data_opts`, `training_opts`, `search_opts`, `rescoring_opts`,
`output_opts`. An option several commands take (`--model-dir`,
`--batch-size`) is defined once, its help (and whether it names several
directories) depending on the command. Each command has a validation
function, for what argparse cannot check one option at a time.
"""
from __future__ import absolute_import

import argparse
import os

from ..util.files import folder_problem

COMMANDS = (('train', 'train a model on a TSV file'),
            ('predict', 'decode sources, one per line'),
            ('evaluate', 'score a model on a TSV file'),
            ('score', 'the log-probability of given targets'),
            ('attention', 'plot the attention for one source'),
            ('chat', 'answer messages, one per line of standard input: a conversation'),
            ('serve', 'answer translation requests over HTTP (OpenNMT-py\'s REST API)'),
            ('distill', 'decode training sources with a teacher: a student\'s training file'))
# The commands that take several --model-dir (an ensemble) and search.
ENSEMBLE_COMMANDS = ('predict', 'evaluate', 'score', 'serve')
SEARCH_COMMANDS = ('predict', 'evaluate')
DEFAULTS = dict(model='attention', cell='lstm', hidden_dim=256, depth=1, embedding_dim=64,
                dropout=0.0, epochs=30, batch_size=64, learning_rate=0.001, patience=3, seed=0,
                maxibatch=20, beam_size=1, distill_beam_size=5, length_penalty=0.0,
                rescore_weight=0.5, rescore_nbest_weight=0.3)
# serve: OpenNMT-py's server's address and root; a 1 MiB body holds tens of
# thousands of words.
SERVE_DEFAULTS = dict(host='127.0.0.1', port=5000, url_root='/translator', workers=1, threads=32,
                      max_batch=64, batch_wait_ms=5.0, timeout=30.0, max_request_bytes=1 << 20)
METRICS = ('wer', 'per', 'bleu', 'accuracy', 'perplexity')
TOKENIZATIONS = ('chars', 'words')
# The train options config.json records (the model directory's settings).
RECORDED_TRAIN_OPTIONS = ('source_tokens', 'target_tokens', 'model', 'cell', 'hidden_dim',
                          'depth', 'embedding_dim', 'dropout', 'batch_size', 'learning_rate',
                          'lr_decay', 'reverse_source', 'reverse_target', 'patience', 'seed',
                          'maxibatch', 'max_source_length', 'max_target_length')


class CommandError(Exception):
    """An error the user can fix: printed as one line, exit status 2."""


# -- argparse types ---------------------------------------------------------------------
def _number(text, convert, accept, expected):
    """`convert(text)` when it converts and `accept`s it; otherwise the
    ArgumentTypeError argparse prints as 'argument --x: expected ..., got 'text''."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not accept(value):
        raise argparse.ArgumentTypeError('expected %s, got %r' % (expected, text))
    return value


def positive_int(text):
    """An integer >= 1."""
    return _number(text, int, lambda value: value >= 1, 'a positive integer')


def natural(text):
    """An integer >= 0."""
    return _number(text, int, lambda value: value >= 0, 'an integer >= 0')


def seed(text):
    """An integer in [0, 2**32): what numpy's RandomState takes."""
    return _number(text, int, lambda value: 0 <= value < 2 ** 32, 'an integer in [0, 2**32)')


def depth(text):
    """N (as deep in the encoder and the decoder) or E,D (encoder, decoder):
    an int, or a list of two."""
    try:
        layers = [positive_int(part) for part in text.split(',')]
    except argparse.ArgumentTypeError:
        layers = []
    if not 1 <= len(layers) <= 2:
        raise argparse.ArgumentTypeError('expected N or E,D (positive integers), got %r' % text)
    return layers[0] if len(layers) == 1 else layers


# NaN fails every comparison below, so no float type accepts it.
def positive_float(text):
    """A number > 0."""
    return _number(text, float, lambda value: value > 0, 'a positive number')


def non_negative_float(text):
    """A finite number >= 0."""
    return _number(text, float, lambda value: 0.0 <= value < float('inf'), 'a number >= 0')


def probability(text):
    """A number in [0, 1): a dropout rate (1 would drop everything)."""
    return _number(text, float, lambda value: 0.0 <= value < 1.0, 'a number in [0, 1)')


def fraction(text):
    """A number in (0, 1): a decay factor that changes the rate and keeps it > 0."""
    return _number(text, float, lambda value: 0.0 < value < 1.0, 'a number in (0, 1)')


def unit_interval(text):
    """A number in [0, 1]: a weight."""
    return _number(text, float, lambda value: 0.0 <= value <= 1.0, 'a number in [0, 1]')


def port(text):
    """A TCP port: an integer in [0, 65535] (0: any free port)."""
    return _number(text, int, lambda value: 0 <= value <= 65535, 'a port number in [0, 65535]')


class ShowDefaults(argparse.HelpFormatter):
    """Help lines end with the option's default, when it takes a value and
    has one (0 included: argparse's own formatter would show it too, but
    `action.default in (None, False)` would not)."""

    def _get_help_string(self, action):
        text = action.help or ''
        if (text and action.option_strings and action.nargs != 0
                and '%(default)' not in text and 'default:' not in text
                and action.default is not None and action.default != argparse.SUPPRESS):
            text += ' (default: %(default)s)'
        return text


# -- the groups -------------------------------------------------------------------------
def model_opts(parser, command):
    """The model directory (every command; distill's teacher) and, for
    train, the model written into it: architecture, widths, direction."""
    group = parser.add_argument_group('model options')
    if command == 'distill':
        # The teacher, not the model being made: the student is trained
        # by `train` on the file written, with its own --model-dir.
        group.add_argument('--teacher-dir', required=True, metavar='DIR', nargs='+',
                           help='the teacher\'s model directory, or several trained on the '
                           'same data: an ensemble (the mean of their probabilities)')
        return
    ensemble = command in ENSEMBLE_COMMANDS
    # serve: --model-dir or --config (validate_serve_args), so not required.
    group.add_argument('--model-dir', required=command != 'serve', metavar='DIR',
                       nargs='+' if ensemble else None, help={
                           'train': 'the directory the model, its vocabularies and its '
                                    'history are written to',
                           'predict': 'a model directory, or several trained on the same '
                                      'data: an ensemble (the mean of their probabilities)',
                           'attention': 'the model directory (an attention model)',
                           'chat': 'a run directory of a conversation model, as '
                                   'examples/chitchat.py train --run-dir writes it '
                                   '(model.h5, vocab.json, chat.json), or a model directory '
                                   'of examples/conversation.py',
                           'serve': 'a model directory, or several trained on the same data: '
                                    'an ensemble; served as model id 0 (or --config)',
                       }.get(command, 'a model directory, or several: an ensemble'))
    if command == 'serve':
        group.add_argument('--config', metavar='JSON',
                           help='several models, in OpenNMT-py\'s conf.json shape: models_root, '
                           'models: [{"id", "model", "opt": {"beam_size", "n_best", '
                           '"batch_size"}}] (docs/serving.md)')
    if command != 'train':
        return
    group.add_argument('--model', choices=('attention', 'seq2seq', 'simple'),
                       default=DEFAULTS['model'], help='attention: AttentionSeq2Seq, a '
                       'bidirectional encoder read through attention at every output step; '
                       'the best where outputs follow the source piece by piece (G2P, '
                       'transliteration, long sequences). seq2seq: Seq2Seq, the source as one '
                       'vector the decoder sees at every step (Cho et al.). simple: '
                       'SimpleSeq2Seq, one vector that starts the decoder (Sutskever et al.); '
                       'small and fast, e.g. short fixed-format tasks such as Keras\' addition '
                       'example, which it learns in minutes where attention is slower')
    group.add_argument('--cell', choices=('lstm', 'gru'), default=DEFAULTS['cell'],
                       help='the recurrent cell')
    group.add_argument('--hidden-dim', type=positive_int, default=DEFAULTS['hidden_dim'],
                       help='width of the recurrent layers')
    group.add_argument('--depth', type=depth, default=DEFAULTS['depth'], metavar='N|E,D',
                       help='recurrent layers in the encoder and in the decoder (E,D: E in '
                       'the encoder, D in the decoder; the fused attention decoder runs D=1)')
    group.add_argument('--embedding-dim', type=positive_int, default=DEFAULTS['embedding_dim'],
                       help='size of the token embeddings')
    group.add_argument('--dropout', type=probability, default=DEFAULTS['dropout'],
                       help='dropout between stacked layers')
    group.add_argument('--reverse-source', action='store_true',
                       help='read every source last token first')
    group.add_argument('--reverse-target', action='store_true',
                       help='generate every target last token first: a right-to-left model '
                       '(predict and evaluate give its outputs in reading order), e.g. for '
                       '--rescore-model-dir')


def data_opts(parser, command):
    """What the command reads, how a line splits into tokens, and how many
    pairs or sources go through the model together."""
    if command == 'chat':
        return      # standard input, one message at a time; the run sets the tokens
    if command == 'serve':
        return      # the sources come in requests; --max-batch decodes them together
    group = parser.add_argument_group('data options')
    if command in ('train', 'distill'):
        group.add_argument('--train', required=True, metavar='TSV', help={
            'distill': 'training pairs: their distinct sources are decoded, each once'}.get(
                command, 'training pairs'))
    if command == 'distill':
        group.add_argument('--extra-words', metavar='FILE',
                           help='more sources, one per line (e.g. words the training file '
                           'lacks), decoded too')
    if command == 'train':
        group.add_argument('--valid', metavar='TSV',
                           help='validation pairs (best checkpoint, early stopping)')
        group.add_argument('--source-tokens', choices=TOKENIZATIONS, default='chars',
                           help='a source token is a character or a space-separated word')
        group.add_argument('--target-tokens', choices=TOKENIZATIONS, default='chars',
                           help='the same for targets')
        group.add_argument('--max-source-length', type=positive_int, metavar='N',
                           help='drop (and count) the training pairs whose source has more '
                           'than N tokens (default: keep every pair; the model reads sources '
                           'as long as the longest kept)')
        group.add_argument('--max-target-length', type=positive_int, metavar='N',
                           help='the same for targets')
    if command == 'evaluate':
        group.add_argument('--test', required=True, metavar='TSV',
                           help='test pairs; a source on several lines has several references')
    if command in ('predict', 'score'):
        group.add_argument('--input', required=command == 'score',
                           metavar='TSV' if command == 'score' else 'FILE', help={
                               'predict': 'one source per line (default: standard input)',
                               'score': 'source<TAB>target lines: one log-probability per '
                                        'pair, in order (blank lines skipped)'}[command])
    if command == 'attention':
        group.add_argument('--source', required=True, metavar='TEXT',
                           help='the source to decode, tokenized as at training')
    if command != 'attention':
        group.add_argument('--batch-size', type=positive_int, default=DEFAULTS['batch_size'],
                           help={'train': 'pairs per training step',
                                 'score': 'pairs scored together'}.get(
                                     command, 'sources decoded together'))


def training_opts(parser, command):
    """train: the optimisation, its schedule, stopping, seeding, resuming."""
    if command != 'train':
        return
    group = parser.add_argument_group('training options')
    group.add_argument('--epochs', type=positive_int, default=DEFAULTS['epochs'],
                       help='the total number of epochs (also with --resume)')
    # No argparse default: on --resume, a rate not given keeps the run's.
    group.add_argument('--learning-rate', type=positive_float, default=None,
                       help='Adam\'s step size (default: %g; with --resume: the rate from the '
                       'next epoch on, e.g. to lower it by hand)' % DEFAULTS['learning_rate'])
    group.add_argument('--lr-decay', type=fraction, default=None, metavar='FACTOR',
                       help='multiply the learning rate by FACTOR after every epoch without a '
                       'better validation loss (with --resume: from now on)')
    group.add_argument('--maxibatch', type=natural, default=DEFAULTS['maxibatch'], metavar='N',
                       help='sort each group of N batches by length, so that a batch holds '
                       'sequences of similar lengths and runs fewer steps (0: random batches)')
    group.add_argument('--patience', type=positive_int, default=DEFAULTS['patience'],
                       help='stop after this many epochs without a better validation loss')
    group.add_argument('--seed', type=seed, default=DEFAULTS['seed'],
                       help='seeds the initial weights, the shuffling and the dropout')
    group.add_argument('--resume', action='store_true',
                       help='continue the interrupted run in --model-dir')


def search_opts(parser, command):
    """predict and evaluate: the search (greedy or beam) and what it keeps;
    distill: the beam's width; chat and serve: evaluate's and predict's."""
    serving = command == 'serve'
    if command == 'chat':
        # An answer per message, searched as evaluate searches (--beam-size,
        # --length-penalty; no n-best, no rescoring).
        command = 'evaluate'
    if command == 'serve':
        # What a request that asks nothing gets, searched as predict
        # searches (--beam-size, --n-best, --length-penalty; no rescoring).
        command = 'predict'
    if command not in SEARCH_COMMANDS + ('distill',):
        return
    group = parser.add_argument_group('search options')
    # Distillation decodes by beam search (Kim & Rush's sequence-level
    # distillation); predict and evaluate are greedy unless asked, and
    # predict's beam is as wide as --n-best when not given (so no argparse
    # default there: validate_predict_args fills it).
    if command == 'distill':
        beam_default, beam_help = DEFAULTS['distill_beam_size'], '1: greedy search'
    else:
        beam_default = None
        beam_help = '1: greedy search (default: %d%s)' % (
            DEFAULTS['beam_size'], ', or N with --n-best N' if command == 'predict' else '')
    group.add_argument('--beam-size', type=positive_int, default=beam_default, help=beam_help)
    if command == 'distill':
        return
    group.add_argument('--length-penalty', type=non_negative_float,
                       default=DEFAULTS['length_penalty'], metavar='ALPHA',
                       help='with --beam-size > 1, rank hypotheses by log-probability / '
                       '((5 + length) / 6) ** ALPHA (GNMT); 0: by log-probability')
    if command == 'predict':
        group.add_argument('--n-best', type=positive_int, default=None, metavar='N',
                           help=('the hypotheses a request that asks for no n_best gets'
                                 if serving else 'write N lines per source, each with its '
                                 'log-probability after a tab') +
                           ' (N must not exceed --beam-size)')


def rescoring_opts(parser, command):
    """predict and evaluate: reranking the beam with other models' and
    another system's scores (`seq2seq.app.rescoring`, `seq2seq.app.nbest`)."""
    if command not in SEARCH_COMMANDS:
        return
    group = parser.add_argument_group('rescoring options (need --beam-size > 1)')
    group.add_argument('--rescore-model-dir', metavar='DIR', nargs='+', default=None,
                       help='rerank the beam\'s hypotheses by (1 - W) * their log-probability '
                       '+ W * their log-probability under these models (e.g. right-to-left '
                       'ones, trained with --reverse-target on the same data)')
    group.add_argument('--rescore-weight', type=unit_interval,
                       default=DEFAULTS['rescore_weight'], metavar='W',
                       help='the weight W of --rescore-model-dir')
    group.add_argument('--rescore-union', action='store_true',
                       help='the --rescore-model-dir models search too, and their beam\'s '
                       'hypotheses join the candidates (scored by both)')
    group.add_argument('--rescore-nbest', metavar='FILE', default=None,
                       help='another system\'s n-best lists, lines source<TAB>cost<TAB>target '
                       '(cost = -log p, as phonetisaurus-g2pfst prints them): add V * their '
                       'log-probability of each hypothesis (one outside its source\'s list '
                       'gets the list\'s worst - 1)')
    group.add_argument('--rescore-nbest-weight', type=unit_interval,
                       default=DEFAULTS['rescore_nbest_weight'], metavar='V',
                       help='the weight V of --rescore-nbest (the search gets 1 - W - V)')


def output_opts(parser, command):
    """What the command writes, and where."""
    group = parser.add_argument_group('output options')
    if command in ('predict', 'score'):
        group.add_argument('--output', metavar='FILE',
                           help='written whole or not at all (default: standard output)')
    if command == 'evaluate':
        group.add_argument('--metric', nargs='+', choices=METRICS, default=['wer', 'per'],
                           help='the metrics to print')
    if command in ('attention', 'distill'):
        group.add_argument('--out', required=True,
                           metavar='FILE.png' if command == 'attention' else 'TSV', help={
                               'attention': 'the heatmap: an output token per row, a source '
                                            'token per column',
                               'distill': 'source<TAB>teacher\'s output lines, one per '
                                          'distinct source (written whole or not at '
                                          'all)'}[command])
    if command == 'train':
        group.add_argument('--quiet', action='store_true',
                           help='no progress output during the epochs (without it: a progress '
                           'bar on a terminal, a line per epoch when standard output is a file '
                           'or a pipe)')


def serve_opts(parser, command):
    """serve: where the server listens, its worker processes, the batching
    of requests that arrive together, and the limits a request must keep
    (`seq2seq.app.serve`)."""
    if command != 'serve':
        return
    group = parser.add_argument_group('server options')
    group.add_argument('--host', default=SERVE_DEFAULTS['host'],
                       help='the address to listen on (0.0.0.0: every interface)')
    group.add_argument('--port', type=port, default=SERVE_DEFAULTS['port'],
                       help='the TCP port')
    group.add_argument('--url-root', default=SERVE_DEFAULTS['url_root'], metavar='PATH',
                       help='the routes: PATH/translate, PATH/models, PATH/health (OpenNMT-py\'s '
                       'default; / for none)')
    group.add_argument('--workers', type=positive_int, default=SERVE_DEFAULTS['workers'],
                       help='worker processes, each loading and compiling every model at '
                       'start-up (about one per core)')
    group.add_argument('--threads', type=positive_int, default=SERVE_DEFAULTS['threads'],
                       help='requests a worker takes at once: they wait for the decoder '
                       'together, so at least the concurrent clients to batch')
    group.add_argument('--max-batch', type=positive_int, default=SERVE_DEFAULTS['max_batch'],
                       metavar='N', help='the most sources decoded together in one search, '
                       'across requests')
    group.add_argument('--batch-wait-ms', type=non_negative_float,
                       default=SERVE_DEFAULTS['batch_wait_ms'], metavar='MS',
                       help='how long the first request of a batch waits for others (0: decode '
                       'at once what is waiting)')
    group.add_argument('--max-beam-size', type=positive_int, default=None, metavar='K',
                       help='the widest beam a request may ask for (default: --beam-size)')
    group.add_argument('--timeout', type=positive_float, default=SERVE_DEFAULTS['timeout'],
                       metavar='SECONDS', help='a request not answered by then gets a 503 error')
    group.add_argument('--max-request-bytes', type=positive_int,
                       default=SERVE_DEFAULTS['max_request_bytes'], metavar='BYTES',
                       help='a larger request body gets a 413 error')


GROUPS = (model_opts, data_opts, training_opts, search_opts, rescoring_opts, output_opts,
          serve_opts)


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse's parser, but a usage error is one line on stderr (exit
    status 2), like every other refusal of the command line: argparse's own
    prints the whole usage block above it, burying the line that matters."""

    def error(self, message):
        self.exit(2, '%s: error: %s (%s --help lists the options)\n'
                  % (self.prog, message, self.prog))


def build_parser():
    """The `seq2seq` parser: a sub-parser per command, each given the
    options of every group that the command takes."""
    parser = OneLineErrorParser(
        prog='seq2seq', description='Train, apply and score sequence-to-sequence models on '
        'text files of source<TAB>target lines.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    for name, description in COMMANDS:
        command = commands.add_parser(name, help=description, description=description,
                                      formatter_class=ShowDefaults)
        for add_options in GROUPS:
            add_options(command, name)
    return parser


# -- validation: what argparse cannot check one option at a time -------------------------
def validate_train_args(args):
    """CommandError for options that do not go together; fills in
    --learning-rate's default for a new run (on --resume, a rate not given
    keeps the run's). A resumed run's model options are its config.json's,
    so they are not checked."""
    if args.resume:
        return
    if args.model == 'attention' and args.hidden_dim % 2:
        raise CommandError('--model attention needs an even --hidden-dim (half per direction '
                           'of its bidirectional encoder), got %d' % args.hidden_dim)
    if args.learning_rate is None:
        args.learning_rate = DEFAULTS['learning_rate']


def _check_output(option, path):
    """CommandError for an output file that cannot be created (no such
    folder, ...), before any model loads: not after the decoding."""
    problem = path and folder_problem(path)
    if problem:
        raise CommandError('%s: %s' % (option, problem))


def validate_predict_args(args):
    """CommandError for options that do not go together or an --output
    that cannot be written. The rule of the Python API
    (`Translator.translate`): n_best must not exceed beam_size, and a beam
    size not given is n_best's (greedy without --n-best)."""
    _check_output('--output', args.output)
    if args.beam_size is None:
        args.beam_size = args.n_best or DEFAULTS['beam_size']
    elif args.n_best and args.n_best > args.beam_size:
        raise CommandError('--n-best %d needs --beam-size >= %d (the n best of a beam that '
                           'wide), got --beam-size %d: leave --beam-size out to search with a '
                           'beam of %d' % (args.n_best, args.n_best, args.beam_size, args.n_best))
    _validate_rescoring_args(args)


def validate_evaluate_args(args):
    """CommandError for options that do not go together."""
    if args.beam_size is None:
        args.beam_size = DEFAULTS['beam_size']
    _validate_rescoring_args(args)


def validate_score_args(args):
    """CommandError for an --output that cannot be written."""
    _check_output('--output', args.output)


def validate_attention_args(args):
    """CommandError for a --source without a token (either tokenization
    splits an empty or all-space text into none)."""
    if not args.source.strip():
        raise CommandError('--source is empty')
    _check_output('--out', args.out)


def _validate_rescoring_args(args):
    if args.rescore_union and not args.rescore_model_dir:
        raise CommandError('--rescore-union needs --rescore-model-dir')
    for option, value in (('--rescore-model-dir', args.rescore_model_dir),
                          ('--rescore-nbest', args.rescore_nbest)):
        if value and args.beam_size < 2:
            raise CommandError('%s reranks the beam\'s hypotheses: it needs --beam-size > 1, '
                               'got %d' % (option, args.beam_size))
    if (args.rescore_model_dir and args.rescore_nbest
            and args.rescore_weight + args.rescore_nbest_weight > 1.0):
        raise CommandError('--rescore-weight + --rescore-nbest-weight must be at most 1 (the '
                           'search gets the rest), got %g + %g'
                           % (args.rescore_weight, args.rescore_nbest_weight))


def validate_distill_args(args):
    """CommandError for an --out that cannot be written, or that would
    replace one of the files read (the training data would be lost)."""
    _check_output('--out', args.out)
    for option, path in (('--train', args.train), ('--extra-words', args.extra_words)):
        if path and os.path.abspath(path) == os.path.abspath(args.out):
            raise CommandError('--out %s is the %s file: write the distilled pairs to another '
                               'file' % (args.out, option))


def validate_chat_args(args):
    """Fills in --beam-size's default (greedy). The run directory is read,
    and refused with a line naming it, before any message."""
    if args.beam_size is None:
        args.beam_size = DEFAULTS['beam_size']


def validate_serve_args(args):
    """CommandError unless the models come from one of --model-dir and
    --config, or for defaults beyond the limits; fills in the defaults
    (predict's rule: the beam as wide as --n-best; --max-beam-size as wide
    as the beam) and drops --url-root's trailing slash. A --config file's
    contents are checked when it is read, before any worker starts."""
    if args.model_dir and args.config:
        raise CommandError('--model-dir and --config both name models: give one (a --config '
                           'entry names each model\'s directories)')
    if not args.model_dir and not args.config:
        raise CommandError('the models to serve: give --model-dir DIR or --config conf.json')
    if args.beam_size is None:
        args.beam_size = args.n_best or DEFAULTS['beam_size']
    elif args.n_best and args.n_best > args.beam_size:
        raise CommandError('--n-best %d needs --beam-size >= %d, got --beam-size %d'
                           % (args.n_best, args.n_best, args.beam_size))
    args.n_best = args.n_best or 1
    if args.max_beam_size is None:
        args.max_beam_size = args.beam_size
    elif args.max_beam_size < args.beam_size:
        raise CommandError('--max-beam-size %d is narrower than --beam-size %d, the beam of a '
                           'request that asks for none' % (args.max_beam_size, args.beam_size))
    if not args.url_root.startswith('/'):
        raise CommandError('--url-root must start with /, got %r' % args.url_root)
    args.url_root = args.url_root.rstrip('/')


VALIDATORS = {'train': validate_train_args, 'predict': validate_predict_args,
              'evaluate': validate_evaluate_args, 'score': validate_score_args,
              'chat': validate_chat_args,
              'serve': validate_serve_args,
              'attention': validate_attention_args, 'distill': validate_distill_args}
