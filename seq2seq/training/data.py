"""Data helpers: text files of pairs, tokens, padded id arrays, batches
for teacher-forced training, one-hot targets and a toy task."""
from __future__ import absolute_import

import collections
import contextlib
import re

import numpy as np
from keras.utils import Sequence

from .vocab import EOS_ID, PAD_ID


def one_hot(ids, vocab_size, dtype='float32'):
    """(..., ) int ids -> (..., vocab_size) one-hot vectors."""
    ids = np.asarray(ids)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab_size):
        raise ValueError('ids must lie in [0, vocab_size=%d), got values in [%d, %d]'
                         % (vocab_size, ids.min(), ids.max()))
    eye = np.eye(vocab_size, dtype=dtype)
    return eye[ids]


def reversal_task(n_samples, length, vocab_size, seed=0):
    """Random sequences and their reversals: (x, y), both (n_samples, length).

    Token 0 is left out (it is the padding id of Embedding(mask_zero=True)).
    """
    if vocab_size < 2:
        raise ValueError('vocab_size must be at least 2 (token 0 is reserved), got %r'
                         % (vocab_size,))
    rng = np.random.RandomState(seed)
    x = rng.randint(1, vocab_size, size=(n_samples, length))
    return x, x[:, ::-1].copy()


def targets_with_eos(sequences, length, eos_id, pad_id=0):
    """Target sequences ending with `eos_id`, padded with `pad_id`.

    The convention the decoders' search expects: a target is its tokens, then
    EOS, then padding up to `length`; decoding stops after EOS.

    # Arguments
        sequences: iterable of token id sequences.
        length: the output length (room for the longest sequence and EOS).
        eos_id, pad_id: the end-of-sequence and padding ids.

    # Returns
        int32 array (n_sequences, length).
    """
    sequences = [list(s) for s in sequences]
    longest = max(len(s) for s in sequences) if sequences else 0
    if longest + 1 > length:
        raise ValueError('length=%d leaves no room for EOS after a sequence of %d tokens'
                         % (length, longest))
    targets = np.full((len(sequences), length), pad_id, dtype='int32')
    for row, sequence in enumerate(sequences):
        targets[row, :len(sequence)] = sequence
        targets[row, len(sequence)] = eos_id
    return targets


# -- text files ------------------------------------------------------------------------
TOKENIZATIONS = ('chars', 'words')


class DataFileError(ValueError):
    """A data file that cannot be read: `str()` names the file and the line."""

    def __init__(self, path, line, message):
        self.path, self.line, self.message = path, line, message
        where = '%s' % path if line is None else '%s, line %d' % (path, line)
        super(DataFileError, self).__init__('%s: %s' % (where, message))


def tokenize(text, tokens):
    """'chars': every character is a token; 'words': tokens split on whitespace."""
    if tokens == 'chars':
        return list(text)
    if tokens == 'words':
        return text.split()
    raise ValueError('tokens must be one of %s, got %r' % (TOKENIZATIONS, tokens))


def detokenize(tokens, tokenization):
    """The inverse of `tokenize`: characters joined with nothing, words with a space."""
    if tokenization not in TOKENIZATIONS:
        raise ValueError('tokenization must be one of %s, got %r'
                         % (TOKENIZATIONS, tokenization))
    return ('' if tokenization == 'chars' else ' ').join(tokens)


BYTE_ORDER_MARK = u'\ufeff'
# C0 and C1 control characters and DEL, except the tab: a NUL or an escape
# sequence in a data file is damage, not a token to learn.
CONTROL_CHARACTER = re.compile(u'[\x00-\x08\x0a-\x1f\x7f-\x9f]')


def read_lines(path, stream=None, keep_blank=False):
    """(line number, text) of every non-blank line of a UTF-8 file, without
    the line end and without a byte-order mark at its start.

    # Arguments
        path: the file; with `stream`, the name errors give it (e.g.
            '<stdin>').
        stream: read these lines instead of opening `path`: a binary stream
            (decoded as UTF-8) or a text one (its lines taken as they are).
        keep_blank: keep the blank lines too (`seq2seq predict` writes an
            output line for every input line).

    # Raises
        DataFileError for a missing or unreadable file, bytes that are not
        UTF-8, a control character other than the tab (a NUL, an escape,
        a carriage return inside a line), or a file with no line.
    """
    if stream is None:
        try:
            stream = open(path, 'rb')
        except (IOError, OSError) as error:
            raise DataFileError(path, None, error.strerror or str(error))
        with stream:
            return read_lines(path, stream, keep_blank)
    lines = []
    for number, raw in enumerate(stream, 1):
        if isinstance(raw, bytes):
            try:
                raw = raw.decode('utf-8')
            except UnicodeDecodeError as error:
                raise DataFileError(path, number, 'not UTF-8 text (byte %d: %s)'
                                    % (error.start + 1, error.reason))
        if number == 1 and raw.startswith(BYTE_ORDER_MARK):
            # Editors on Windows start UTF-8 files with one; it is not text
            # (it would become a token of the first source).
            raw = raw[len(BYTE_ORDER_MARK):]
        text = raw.rstrip('\r\n')
        control = CONTROL_CHARACTER.search(text)
        if control:
            raise DataFileError(path, number, 'control character U+%04X at column %d: '
                                'remove it (a tab separates source and target; other '
                                'control characters are not text)'
                                % (ord(control.group()), control.start() + 1))
        if BYTE_ORDER_MARK in text:
            # Past the file's start it is what `cat a.tsv b.tsv` leaves of
            # b.tsv's mark: invisible, and a token if kept.
            raise DataFileError(path, number, 'byte-order mark U+FEFF at column %d: remove it '
                                '(files joined from files that start with one?)'
                                % (text.index(BYTE_ORDER_MARK) + 1))
        if keep_blank or text.strip():
            lines.append((number, text))
    if not lines:
        raise DataFileError(path, 1, 'the file is empty; expected lines of text')
    return lines


def read_tsv(path, source_tokens='chars', target_tokens='chars'):
    """Read `source<TAB>target` lines.

    # Returns
        a list of (line number, source tokens, target tokens).

    Raises DataFileError naming the file and line for a line without exactly
    one tab or with an empty side (and see `read_lines`).
    """
    pairs = []
    for number, text in read_lines(path):
        fields = text.split('\t')
        if len(fields) != 2:
            raise DataFileError(path, number, 'expected source<TAB>target, found %d tab(s)'
                                % (len(fields) - 1))
        source = tokenize(fields[0].strip(), source_tokens)
        target = tokenize(fields[1].strip(), target_tokens)
        if not source or not target:
            raise DataFileError(path, number, 'empty %s' % ('source' if not source else 'target'))
        pairs.append((number, source, target))
    return pairs


def drop_long_pairs(pairs, max_source_length=None, max_target_length=None):
    """The (line number, source tokens, target tokens) `pairs` whose source
    has at most `max_source_length` tokens and whose target at most
    `max_target_length` (None: any length).

    # Returns
        (kept pairs, line numbers of the pairs dropped).
    """
    kept, dropped = [], []
    for pair in pairs:
        number, source, target = pair
        if ((max_source_length is not None and len(source) > max_source_length)
                or (max_target_length is not None and len(target) > max_target_length)):
            dropped.append(number)
        else:
            kept.append(pair)
    return kept, dropped


# A sequence this many times longer than 99% of its side's sequences (and
# at least OUTLIER_MARGIN tokens longer) sets the model's length alone.
OUTLIER_FACTOR = 3
OUTLIER_MARGIN = 20


def length_outlier(pairs, side):
    """(line number, length, the length 99% of the pairs do not exceed) of
    the longest source (`side` 'source') or target ('target') of `pairs`
    when it is an outlier, else None.

    The model's input_length (output_length) is the longest sequence of the
    training data, and every source is padded to it at prediction: one line
    of 20,000 characters among words makes every array that long.
    """
    index = {'source': 1, 'target': 2}[side]
    lengths = np.array([len(pair[index]) for pair in pairs])
    longest = int(lengths.argmax())
    typical = int(np.percentile(lengths, 99, interpolation='lower'))
    if lengths[longest] > max(OUTLIER_FACTOR * typical, typical + OUTLIER_MARGIN):
        return pairs[longest][0], int(lengths[longest]), typical
    return None


def group_references(pairs):
    """[(source tokens, [target tokens, ...])] in first-seen order: the
    lines of one source (a word's several pronunciations) become one entry
    with several references."""
    grouped = collections.OrderedDict()
    for pair in pairs:
        source, target = pair[-2], pair[-1]
        grouped.setdefault(tuple(source), []).append(list(target))
    return [(list(source), targets) for source, targets in grouped.items()]


# -- ids -------------------------------------------------------------------------------
def pad_ids(sequences, length, pad_id=0, reverse=False):
    """Id sequences -> int32 array (n, length), padded on the right (each
    sequence reversed first when `reverse`), truncated to `length`."""
    padded = np.full((len(sequences), length), pad_id, dtype='int32')
    for row, sequence in enumerate(sequences):
        sequence = list(sequence)[::-1] if reverse else list(sequence)
        sequence = sequence[:length]
        padded[row, :len(sequence)] = sequence
    return padded


def encode_sources(sources, config, source_vocab):
    """Source token lists -> (n, input_length) int32 ids, as a model of
    `config` reads them at training and after: each cut to its
    `input_length` tokens, reversed when it was trained with
    --reverse-source, padded with PAD_ID; no EOS.

    # Arguments
        sources: token lists.
        config: the model directory's configuration (`input_length`,
            `reverse_source`).
        source_vocab: its source Vocabulary (unknown tokens get UNK_ID).
    """
    length = config['input_length']
    ids = [source_vocab.encode(list(tokens)[:length]) for tokens in sources]
    return pad_ids(ids, length, PAD_ID, reverse=bool(config.get('reverse_source')))


def encode_targets(targets, config, target_vocab):
    """Target token lists in reading order -> (n, output_length) int32 ids
    in the order a model of `config` generates them (last token first when
    it was trained with --reverse-target), each cut to `output_length - 1`
    tokens, then EOS, then PAD_ID.

    # Arguments
        targets: token lists, in reading order.
        config: the model directory's configuration (`output_length`,
            `reverse_target`; a configuration without it reads left to right).
        target_vocab: its target Vocabulary.
    """
    length = config['output_length']
    order = -1 if config.get('reverse_target') else 1
    ids = [target_vocab.encode(list(tokens)[::order][:length - 1]) + [EOS_ID]
           for tokens in targets]
    return pad_ids(ids, length, PAD_ID)


def encode_pairs(pairs, config, source_vocab, target_vocab):
    """The ids of (line number, source tokens, target tokens) `pairs`, as
    `read_tsv` gives them, for a model of `config`.

    # Arguments
        pairs: (line number, source tokens, target tokens) triples.
        config, source_vocab, target_vocab: the model directory's
            configuration and vocabularies.

    # Returns
        (x, y, cut): the `encode_sources` and `encode_targets` arrays, and
        the line numbers of the pairs longer than the model reads or writes,
        which those cut.
    """
    input_length, output_length = config['input_length'], config['output_length']
    cut = [line for line, source, target in pairs
           if len(source) > input_length or len(target) > output_length - 1]
    x = encode_sources([source for _, source, _ in pairs], config, source_vocab)
    y = encode_targets([target for _, _, target in pairs], config, target_vocab)
    return x, y, cut


def row_lengths(present):
    """Per row of a (n, length) boolean array, 1 + the index of its last True
    (0 for a row without one)."""
    present = np.asarray(present, dtype=bool)
    last = present.shape[1] - np.argmax(present[:, ::-1], axis=1)
    return np.where(present.any(axis=1), last, 0)


def target_weights(targets, eos_id):
    """(n, length) float32: 1 up to and including the first EOS, 0 after
    (the padding a loss should not count)."""
    targets = np.asarray(targets)
    is_eos = targets == eos_id
    after_eos = np.cumsum(is_eos, axis=1) - is_eos > 0
    return (~after_eos).astype('float32')


class TeacherForcedBatches(Sequence):
    """Batches for `fit_generator`: (inputs, targets, weights).

    Inputs are the source ids, and for a teacher-forced model also the
    targets as one-hot vectors (batch, output_length, vocab) the decoder
    reads shifted by one step; built per batch, so a large data set never
    exists one-hot in memory. Targets are ids (batch, output_length, 1) for
    a sparse loss; weights zero the positions after EOS.

    With `trim`, a batch is cut to its longest source and, for a
    teacher-forced model, its longest target (EOS included): the columns cut
    are padding in every row, which the masks and the zero weights make the
    model ignore, so the loss and its gradient are those of the padded batch
    while the loops run fewer steps.
    The weights are scaled by (kept length / full length), because Keras
    averages the weighted loss over every position of the batch. Such
    batches need a model that accepts them (`variable_length_batches`).

    With `maxibatch`, each epoch's shuffled order is cut into groups of
    `maxibatch` batches, each group is sorted by length and cut into batches,
    and the batches are shuffled: sequences of similar lengths share a batch,
    so trimmed batches are shorter still (the maxi-batches of Nematus).

    # Arguments
        x: (n, input_length) source ids.
        y: (n, output_length) target ids, each ending with EOS.
        vocab_size: the target vocabulary size (the one-hot width).
        batch_size: sequences per batch.
        teacher_force: also give the one-hot targets as an input.
        eos_id: the end-of-sequence id.
        shuffle_seed: shuffle the order every epoch (None: keep it).
        trim: cut every batch to its longest sequences (see above).
        maxibatch: batches per length-sorted group (None: no sorting).
    """

    def __init__(self, x, y, vocab_size, batch_size, teacher_force, eos_id, shuffle_seed=None,
                 trim=False, maxibatch=None):
        if len(x) != len(y):
            raise ValueError('x and y must hold as many sequences, got %d and %d'
                             % (len(x), len(y)))
        if len(x) == 0:
            raise ValueError('no sequences to make batches of')
        if maxibatch is not None and (isinstance(maxibatch, bool)
                                      or not isinstance(maxibatch, (int, np.integer))
                                      or maxibatch < 1):
            raise ValueError('maxibatch must be a positive int or None, got %r' % (maxibatch,))
        self.x, self.y = np.asarray(x), np.asarray(y)
        self.weights = target_weights(self.y, eos_id)
        self.vocab_size, self.batch_size = vocab_size, batch_size
        self.teacher_force, self.trim, self.maxibatch = teacher_force, trim, maxibatch
        # Steps each sequence needs: the source up to its last non-pad id,
        # the target up to its EOS.
        self.source_lengths = row_lengths(self.x != 0)
        self.target_lengths = row_lengths(self.weights > 0)
        self.rng = None if shuffle_seed is None else np.random.RandomState(shuffle_seed)
        self.order = np.arange(len(self.x))
        self.on_epoch_end()

    def __len__(self):
        return (len(self.x) + self.batch_size - 1) // self.batch_size

    def batch_rows(self, index):
        """The indices (into x and y) of the sequences of batch `index`."""
        return self.order[index * self.batch_size:(index + 1) * self.batch_size]

    def __getitem__(self, index):
        rows = self.batch_rows(index)
        x, y, weights = self.x[rows], self.y[rows], self.weights[rows]
        if self.trim:
            source_steps = max(1, int(self.source_lengths[rows].max()))
            # A model that is not teacher-forced always outputs output_length
            # steps, so only its sources are cut.
            target_steps = (max(1, int(self.target_lengths[rows].max())) if self.teacher_force
                            else self.y.shape[1])
            x, y = x[:, :source_steps], y[:, :target_steps]
            weights = weights[:, :target_steps] * (float(target_steps) / self.y.shape[1])
        inputs = [x, one_hot(y, self.vocab_size)] if self.teacher_force else x
        return inputs, y[..., None], weights

    def on_epoch_end(self):
        if self.rng is not None:
            self.rng.shuffle(self.order)
        if self.maxibatch is not None:
            self.order = self._sorted_in_maxibatches(self.order)

    def _sorted_in_maxibatches(self, order):
        """`order` with each group of `maxibatch` batches sorted by length
        (the longer of source and target, then their sum), then the batches
        shuffled (without a shuffle seed, kept in place)."""
        longer = np.maximum(self.source_lengths, self.target_lengths)
        total = self.source_lengths + self.target_lengths
        group = self.maxibatch * self.batch_size
        batches = []
        for start in range(0, len(order), group):
            rows = order[start:start + group]
            rows = rows[np.lexsort((total[rows], longer[rows]))]
            batches.extend(rows[i:i + self.batch_size]
                           for i in range(0, len(rows), self.batch_size))
        if self.rng is not None:
            # Every batch but the last holds batch_size sequences (what
            # batch_rows expects), so the one short batch stays last.
            full = [b for b in batches if len(b) == self.batch_size]
            short = [b for b in batches if len(b) != self.batch_size]
            self.rng.shuffle(full)
            batches = full + short
        return np.concatenate(batches)


@contextlib.contextmanager
def variable_length_batches(model):
    """Let `model`'s fit, train_on_batch and test_on_batch take batches
    shorter than its Inputs' declared lengths (`TeacherForcedBatches(trim=True)`).

    Keras checks every array against the Input's static shape; the Theano
    graph itself reads the lengths from the arrays. So while the block runs,
    Keras' check leaves the time axis (axis 1) free, and our checks
    (`seq2seq.guards`) refuse an array longer than declared, not a shorter
    one.
    """
    from ..layers.input_checks import DECLARED_FEED_SHAPES
    declared = dict(input=list(model._feed_input_shapes),
                    output=list(model._feed_output_shapes))
    setattr(model, DECLARED_FEED_SHAPES, declared)
    model._feed_input_shapes = [_free_steps(shape) for shape in declared['input']]
    model._feed_output_shapes = [_free_steps(shape) for shape in declared['output']]
    try:
        yield model
    finally:
        model._feed_input_shapes = declared['input']
        model._feed_output_shapes = declared['output']
        delattr(model, DECLARED_FEED_SHAPES)


def _free_steps(shape):
    """`shape` with its time axis (axis 1) free."""
    if shape is None or len(shape) < 2:
        return shape
    return (shape[0], None) + tuple(shape[2:])
