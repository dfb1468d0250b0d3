"""Decode text with a trained model directory (what `seq2seq predict`,
`evaluate` and `attention` run).

    translator = Translator('models/g2p')
    translator.translate([list('hello')], beam_size=5)   # [[(['HH', 'AH', ...], -0.42)]]

Several model directories trained on the same data make an ensemble:
`Translator(['models/a', 'models/b'])` searches and scores with the mean of
their probabilities (`seq2seq.search.ensemble.Ensemble`; one directory is an
ensemble of one, decoded and scored exactly as its model). A model trained
with `--reverse-target` generates its targets last token first; a
Translator hands them in and out in reading order.
"""
from __future__ import absolute_import

import numpy as np
from keras import backend as K

from ..layers.dropout_free import without_dropout
from ..search.ensemble import Ensemble
from ..search.model_search import beam_decode, greedy_decode
from ..training.data import (detokenize, encode_sources, encode_targets, one_hot, row_lengths,
                             tokenize)
from ..training.vocab import EOS_ID, PAD_ID
from .model_dir import ModelDirError, is_teacher_forced, load_model_dir


# What the models of an ensemble must share: they read the same ids and
# write the same tokens.
# The models of an ensemble also read the same lengths and generate in the
# same direction; a rescoring model only has to share the tokens.
_VOCABULARY_KEYS = ('source_tokens', 'target_tokens')
_ENSEMBLE_KEYS = _VOCABULARY_KEYS + ('input_length', 'output_length', 'reverse_source',
                                     'reverse_target')


def check_shared(first_dir, first, other_dir, other, keys, purpose='decode together'):
    """ModelDirError unless two loaded model directories' (config, source
    vocabulary, target vocabulary, ...) agree on `keys` and on their
    vocabularies."""
    first_config, first_source, first_target = first[:3]
    config, source_vocab, target_vocab = other[:3]
    for key in keys:
        if config.get(key) != first_config.get(key):
            raise ModelDirError('%s and %s cannot %s: %s is %r in one and %r in the other'
                                % (first_dir, other_dir, purpose, key, first_config.get(key),
                                   config.get(key)))
    for name, a, b in (('source', first_source, source_vocab),
                       ('target', first_target, target_vocab)):
        if a.tokens != b.tokens:
            raise ModelDirError('%s and %s cannot %s: their %s vocabularies differ (train '
                                'them on the same file)' % (first_dir, other_dir, purpose, name))


def _check_ensemble(model_dirs, loaded):
    for model_dir, other in zip(model_dirs[1:], loaded[1:]):
        check_shared(model_dirs[0], loaded[0], model_dir, other, _ENSEMBLE_KEYS)


class Translator(object):
    """One loaded model directory, or several as an ensemble: tokens in,
    tokens out.

    # Arguments
        model_dir: a directory written by `seq2seq train`, or a list of
            them trained on the same data (same vocabularies and lengths):
            an ensemble, whose searches and scores use the mean of the
            models' probabilities. The first one's configuration and model
            serve everything else (`config`, `model`, `attention`).

    # Attributes
        ensemble: the models as one `seq2seq.search.ensemble.Ensemble`,
            what the searches and the scores run.
        models, configs, model_dirs: per model directory, in order.
        model, config, model_dir: the first one's.

    # Raises
        ModelDirError: a directory cannot be loaded, or the models of an
            ensemble do not share their vocabularies and lengths.
    """

    def __init__(self, model_dir):
        model_dirs = list(model_dir) if isinstance(model_dir, (list, tuple)) else [model_dir]
        if not model_dirs:
            raise ValueError('model_dir must be a directory or a non-empty list of them')
        loaded = [load_model_dir(d) for d in model_dirs]
        _check_ensemble(model_dirs, loaded)
        self.model_dir, self.model_dirs = model_dirs[0], model_dirs
        self.config, self.source_vocab, self.target_vocab, _ = loaded[0]
        self.ensemble = Ensemble([model for _, _, _, model in loaded])
        self.models, self.model = self.ensemble.models, self.ensemble.model
        self.configs = [config for config, _, _, _ in loaded]
        self.input_length = self.config['input_length']
        self.output_length = self.config['output_length']
        self.reverse_target = bool(self.config.get('reverse_target'))
        self._forced = None

    # -- text <-> tokens ----------------------------------------------------------------
    def tokenize_source(self, text):
        return tokenize(text.strip(), self.config['source_tokens'])

    def tokenize_target(self, text):
        return tokenize(text.strip(), self.config['target_tokens'])

    def detokenize_target(self, tokens):
        return detokenize(tokens, self.config['target_tokens'])

    def problems(self, source_tokens):
        """What will be lost reading these tokens: a list of messages."""
        messages = []
        unknown = self.source_vocab.unknown(source_tokens)
        if unknown:
            messages.append('unknown token(s) %s read as %s'
                            % (' '.join(repr(t) for t in sorted(set(unknown))),
                               self.source_vocab.tokens[2]))
        if len(source_tokens) > self.input_length:
            messages.append('%d tokens, the model reads %d: the rest is cut off'
                            % (len(source_tokens), self.input_length))
        return messages

    def encode_sources(self, sources):
        """Token lists -> (n, input_length) ids, as at training (EOS-free,
        reversed when the model was trained on reversed sources, cut to
        input_length): `seq2seq.training.data.encode_sources`."""
        return encode_sources(sources, self.config, self.source_vocab)

    def _in_generation_order(self, tokens):
        """Reading order <-> the order the model generates in (the same
        function both ways)."""
        return list(tokens)[::-1] if self.reverse_target else list(tokens)

    def encode_targets(self, targets):
        """Token lists in reading order -> (n, output_length) ids in the
        order the model generates them (reversed for a model trained with
        --reverse-target), ending with EOS, cut to fit as at training:
        `seq2seq.training.data.encode_targets`."""
        return encode_targets(targets, self.config, self.target_vocab)

    # -- decoding -----------------------------------------------------------------------
    def translate(self, sources, beam_size=None, n_best=1, batch_size=64, length_penalty=0.0):
        """Per source token list, a list of n_best (tokens, log-probability),
        best first. beam_size 1 is greedy search; a beam ranks its hypotheses
        by log-probability / ((5 + length) / 6) ** length_penalty (GNMT).
        n_best must not exceed beam_size; beam_size None is n_best (greedy
        for one output), the rule of `seq2seq predict --n-best`."""
        if beam_size is None:
            beam_size = n_best
        if n_best > beam_size:
            raise ValueError('n_best=%d needs beam_size >= n_best, got beam_size=%d'
                             % (n_best, beam_size))
        if not sources:
            return []
        x = self.encode_sources(sources)
        if beam_size == 1:
            tokens, _, log_probs = greedy_decode(self.ensemble, x, eos_id=EOS_ID,
                                                 batch_size=batch_size)
            hypotheses = [[(row, lp)] for row, lp in zip(tokens, log_probs)]
        else:
            results = beam_decode(self.ensemble, x, beam_size=beam_size, eos_id=EOS_ID,
                                  n_best=n_best, batch_size=batch_size,
                                  length_penalty=length_penalty)
            hypotheses = [[(h.tokens, h.log_prob) for h in hyps] for hyps in results]
        return [[(self._in_generation_order(self.target_vocab.decode(ids)), float(log_prob))
                 for ids, log_prob in hyps] for hyps in hypotheses]

    # -- teacher-forced scoring ---------------------------------------------------------
    @staticmethod
    def _forced_function(model, outputs):
        """A function of (source ids, target ids) running the decoder on the
        given targets: the training phase of a teacher-forced model, without
        its dropout."""
        return K.function(model.inputs + [K.learning_phase()], without_dropout(outputs))

    def _forced_inputs(self, config, x, y):
        """The inputs of `_forced_function` for a model trained with
        `config`: a model that is not teacher-forced reads its own outputs
        (the test phase)."""
        if is_teacher_forced(config):
            return [x, one_hot(y, len(self.target_vocab)), 1]
        return [x, 0]

    def reference_log_probs(self, sources, targets, batch_size=64):
        """(n, output_length) log-probabilities of each reference token (EOS
        included; NaN after it) and (n, output_length) booleans: whether the
        model's most probable token there is the reference's, given the
        reference's previous tokens (teacher forcing; the model's own
        outputs for a model that is not teacher-forced). An ensemble's
        log-probabilities are those its search sees: the ensemble's
        `mean_log_probs` of its models'."""
        x = self.encode_sources(sources)
        y = self.encode_targets(targets)
        if self._forced is None:
            self._forced = [self._forced_function(model, [model.output])
                            for model in self.models]
        log_probs = np.full(y.shape, np.nan, dtype='float32')
        right = np.zeros(y.shape, dtype=bool)
        for rows, xb, yb in self._forced_batches(x, y, batch_size):
            # The models output probabilities; a 0 (float32 underflow) is
            # read as 1e-30, a finite log-probability.
            table = self.ensemble.mean_log_probs(
                [np.log(np.maximum(forced(self._forced_inputs(config, xb, yb))[0], 1e-30))
                 for forced, config in zip(self._forced, self.configs)])
            log_probs[rows, :yb.shape[1]] = np.take_along_axis(table, yb[..., None],
                                                               axis=-1)[..., 0]
            right[rows, :yb.shape[1]] = table.argmax(axis=-1) == yb
        is_eos = y == EOS_ID
        after_eos = np.cumsum(is_eos, axis=1) - is_eos > 0
        log_probs[after_eos] = np.nan
        return log_probs, np.where(after_eos, False, right), ~after_eos

    def _forced_batches(self, x, y, batch_size):
        """(rows, source ids, target ids) per batch. For teacher-forced
        models the pairs are sorted by length and each batch is cut to its
        longest source and target, as training batches are: the graph reads
        the lengths from the arrays, and the masks make the padding count
        for nothing, so only the time spent changes. A model that is not
        teacher-forced always runs output_length steps: its batches are
        taken in order, uncut."""
        if not all(is_teacher_forced(config) for config in self.configs):
            for start in range(0, len(x), batch_size):
                rows = np.arange(start, min(start + batch_size, len(x)))
                yield rows, x[rows], y[rows]
            return
        source_lengths, target_lengths = row_lengths(x != PAD_ID), row_lengths(y != PAD_ID)
        order = np.lexsort((-target_lengths, -source_lengths))     # longest first
        for start in range(0, len(x), batch_size):
            rows = order[start:start + batch_size]
            source_steps = max(1, int(source_lengths[rows].max()))
            target_steps = int(target_lengths[rows].max())      # EOS: at least 1
            yield rows, x[rows, :source_steps], y[rows, :target_steps]

    def score(self, sources, targets, batch_size=64):
        """(n,) float64: the log-probability of each target token list
        (EOS included) given its source, by teacher forcing: for an
        ensemble, the log of the mean of the models' probabilities at each
        step (`Ensemble.mean_log_probs`, as its search). A target longer
        than the model's output length is cut as at training."""
        if len(sources) != len(targets):
            raise ValueError('sources and targets must be as many, got %d and %d'
                             % (len(sources), len(targets)))
        if not sources:
            return np.zeros(0)
        log_probs, _, counted = self.reference_log_probs(sources, targets, batch_size)
        return np.where(counted, log_probs, 0.0).sum(axis=1, dtype='float64')

    def attention(self, source_tokens):
        """(output tokens with the final EOS when the search finished,
        source tokens as the model read them, weights (len(outputs), len(sources))) for one source:
        greedy decoding, then the attention of the decoder fed those
        tokens. The outputs come in the order the model generated them (last
        token first for a model trained with --reverse-target)."""
        decoder = self.model.decoder_layer
        if decoder is None or not decoder.attends:
            raise ValueError('%s is not an attention model (trained with --model %s)'
                             % (self.model_dir, self.config['model']))
        output = self.translate([source_tokens])[0][0][0]
        x = self.encode_sources([source_tokens])
        y = self.encode_targets([output])
        output = self._in_generation_order(output)
        function = self._forced_function(self.model, [decoder.last_attention])
        weights = function([x, one_hot(y, len(self.target_vocab)), 1])[0][0]
        read = source_tokens[:self.input_length]
        if self.config['reverse_source']:
            read = read[::-1]
        if len(output) < self.output_length:        # finished: the EOS step too
            output = output + [self.target_vocab.tokens[EOS_ID]]
        return output, read, weights[:len(output), :len(read)]
