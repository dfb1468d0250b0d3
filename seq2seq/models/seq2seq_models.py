"""Ready-made models with the names and arguments of the last
farizrahman4u/seq2seq release: `SimpleSeq2Seq`, `Seq2Seq`, `AttentionSeq2Seq`.

Each function returns a `Seq2SeqModel`, a Keras `Model` (compile, fit,
save, `keras.models.load_model`) with a few additions: `predict` from the
inputs alone for teacher-forced models, `get_context`, `get_attention`,
`greedy_decode` and `beam_decode`.

Papers:
[1] Sutskever et al. 2014, Sequence to Sequence Learning with Neural Networks
[2] Cho et al. 2014, Learning Phrase Representations using RNN Encoder-Decoder
[3] Bahdanau et al. 2015, Neural Machine Translation by Jointly Learning to
    Align and Translate
"""
from __future__ import absolute_import

import warnings

import numpy as np
from keras import backend as K
from keras.layers import (Activation, Concatenate, Dense, Dropout, Embedding, Input,
                          RepeatVector, TimeDistributed)
from keras.models import Model

from ..layers.arguments import check_function_arguments
from ..layers.cells import activation_name, get_cell_class
from ..layers.decoders import AttentionDecoder, RecurrentDecoder
from ..layers.encoders import BidirectionalEncoder, LSTMEncoder
from ..layers.recurrent import check_implementation
from ..search.model_search import check_sources
from ..util.checks import check_bool, check_depth, check_dropout, check_positive_int, is_int


class ProbabilityLossWarning(UserWarning):
    """A model is compiled with a loss on probabilities (categorical
    cross-entropy, ...) but its output is not a probability distribution
    (e.g. the default linear readout)."""


# What each loss on probabilities needs of the output: (what it reads, the
# output activations that give it, the readout_activation to suggest, the
# other way out).
_DISTRIBUTION = ('a probability distribution', ('softmax',), 'softmax',
                 ' (or a loss on logits such as seq2seq.losses.softmax_cross_entropy)')
# Sparse targets: no loss of the package reads logits with them.
_SPARSE_DISTRIBUTION = _DISTRIBUTION[:3] + ('',)
_PROBABILITIES = ('probabilities in (0, 1)', ('sigmoid', 'hard_sigmoid', 'softmax'), 'sigmoid',
                  '')
_POSITIVE = ('positive rates', ('softmax', 'sigmoid', 'hard_sigmoid', 'relu', 'softplus',
                                'exponential'), 'softplus', '')


def _probability_losses():
    """[(loss function, what it needs)]: Keras' losses on probabilities,
    under every name `keras.losses.get` resolves (kld, KLD, ...) and as the
    backend functions, and the package's sparse losses."""
    import keras.losses
    from ..layers import losses
    return [(keras.losses.categorical_crossentropy, _DISTRIBUTION),
            (K.categorical_crossentropy, _DISTRIBUTION),
            (keras.losses.sparse_categorical_crossentropy, _SPARSE_DISTRIBUTION),
            (K.sparse_categorical_crossentropy, _SPARSE_DISTRIBUTION),
            (keras.losses.kullback_leibler_divergence, _DISTRIBUTION),
            (losses.sparse_softmax_crossentropy, _SPARSE_DISTRIBUTION),
            (losses.masked_sparse_softmax_crossentropy, _SPARSE_DISTRIBUTION),
            (keras.losses.binary_crossentropy, _PROBABILITIES),
            (K.binary_crossentropy, _PROBABILITIES),
            (keras.losses.poisson, _POSITIVE)]


def _loss_needs(loss):
    """(loss name, what it needs) when `loss` (a name, a function or a Keras
    Loss object) reads probabilities, else None (a loss on logits, e.g.
    `from_logits=True` or `seq2seq.losses.softmax_cross_entropy`, mse, an
    unknown name Keras itself refuses)."""
    import keras.losses
    if isinstance(loss, str):
        try:
            loss = keras.losses.get(loss)
        except ValueError:
            return None
    if getattr(loss, '_fn_kwargs', {}).get('from_logits'):
        return None
    function = getattr(loss, 'fn', loss)     # a Keras Loss object wraps its function
    for known, needs in _probability_losses():
        if function is known:
            return getattr(function, '__name__', repr(function)), needs
    return None


def output_activation(model):
    """The name of the activation of `model`'s output ('linear', 'softmax',
    ...; see `seq2seq.layers.cells.activation_name`) when its last layer is
    a decoder, a Dense or an Activation (in a TimeDistributed or not), else
    None."""
    if len(model.outputs) != 1:
        return None
    layer = model.outputs[0]._keras_history[0]
    if isinstance(layer, TimeDistributed):
        layer = layer.layer
    if isinstance(layer, RecurrentDecoder):
        return activation_name(layer.readout_activation)
    if isinstance(layer, (Dense, Activation)):
        return activation_name(layer.activation)
    return None


def _model_function(model):
    """The model function that builds a model of this structure."""
    decoder = model.decoder_layer
    if decoder is None:
        return 'SimpleSeq2Seq'
    return 'AttentionSeq2Seq' if decoder.attends else 'Seq2Seq'


def warn_if_not_probabilities(model, loss):
    """Warn (`ProbabilityLossWarning`) when `loss` reads probabilities but
    the output of `model` (a `Seq2SeqModel`) is not what it needs: the
    loss would still run, on numbers it takes for probabilities, and the
    model would learn nothing sensible without a word."""
    losses = list(loss.values()) if isinstance(loss, dict) else \
        list(loss) if isinstance(loss, (list, tuple)) else [loss]
    activation = output_activation(model)
    # A custom activation may well give what the loss needs: no guess.
    if activation is None or activation.endswith('(custom)') or len(losses) != 1:
        return
    found = _loss_needs(losses[0])
    if found is None:
        return
    name, (what, activations_needed, suggestion, alternative) = found
    if activation in activations_needed:
        return
    warnings.warn("the output of %s %r is %s, not %s: loss %s needs readout_activation='%s'%s"
                  % (_model_function(model), model.name, activation, what, name, suggestion,
                     alternative), ProbabilityLossWarning, stacklevel=3)


class Seq2SeqModel(Model):
    """A Keras Model whose graph holds one of our decoders.

    Everything here is found from the graph, so it works as well on a model
    loaded with `keras.models.load_model`.
    """

    def compile(self, optimizer, loss=None, *args, **kwargs):
        """As Keras' compile; warns (`ProbabilityLossWarning`) when the loss
        reads probabilities (categorical_crossentropy, ...) but the output
        is not one (e.g. the default linear readout_activation)."""
        warn_if_not_probabilities(self, loss)
        return super(Seq2SeqModel, self).compile(optimizer, loss, *args, **kwargs)

    # -- parts of the graph -------------------------------------------------------
    @property
    def decoder_layer(self):
        """The model's RecurrentDecoder (or AttentionDecoder), or None."""
        decoders = [layer for layer in self.layers if isinstance(layer, RecurrentDecoder)]
        return decoders[0] if decoders else None

    def _decoder_input_tensors(self):
        decoder = self.decoder_layer
        if decoder is None:
            raise ValueError('this model has no RecurrentDecoder; step-by-step decoding '
                             'needs a Seq2Seq or AttentionSeq2Seq model')
        return decoder.get_input_at(0)

    def _teacher_input_index(self):
        """Index in self.inputs of the targets a teacher-forced model reads."""
        decoder = self.decoder_layer
        if decoder is None or not decoder.teacher_force:
            return None
        teacher = decoder.split_inputs(self._decoder_input_tensors()).teacher
        for i, tensor in enumerate(self.inputs):
            if tensor is teacher:
                return i
        return None

    def source_inputs(self):
        """The model inputs other than a teacher-forced model's targets."""
        teacher = self._teacher_input_index()
        return [t for i, t in enumerate(self.inputs) if i != teacher]

    # -- inputs -------------------------------------------------------------------
    def complete_inputs(self, x):
        """x with zero targets added when a teacher-forced model gets only its
        source: predict and evaluate run free, so the targets are not read."""
        teacher = self._teacher_input_index()
        if teacher is None:
            return x
        given = list(x) if isinstance(x, (list, tuple)) else [x]
        if len(given) == len(self.inputs):
            return given
        if len(given) != len(self.inputs) - 1:
            raise ValueError('this model takes %d inputs (or %d without the targets), got %d'
                             % (len(self.inputs), len(self.inputs) - 1, len(given)))
        batch = len(given[0])
        shape = (batch,) + tuple(K.int_shape(self.inputs[teacher])[1:])
        given.insert(teacher, np.zeros(shape, dtype=K.floatx()))
        return given

    def predict(self, x, *args, **kwargs):
        """As Keras' predict; a teacher-forced model needs its source only."""
        return super(Seq2SeqModel, self).predict(self.complete_inputs(x), *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """As Keras' evaluate; a teacher-forced model needs its source only."""
        return super(Seq2SeqModel, self).evaluate(self.complete_inputs(x), y, *args, **kwargs)

    # -- inspection ---------------------------------------------------------------
    def _run_on_batches(self, outputs, x, batch_size, owner):
        """`outputs` for the sources `x`, `batch_size` at a time. `x` and
        `batch_size` are checked first, as `greedy_decode` checks them
        (a source of another length than the model's would run, and give
        weights over steps the model was not built for)."""
        check_positive_int('batch_size', batch_size, owner=owner)
        x = check_sources(self, x, owner)
        teacher = self._teacher_input_index()
        if teacher is not None and len(x) == len(self.inputs):
            del x[teacher]      # free running: the targets are not read
        inputs = self.source_inputs()
        function = K.function(inputs + [K.learning_phase()], outputs)
        results = []
        for start in range(0, len(x[0]), batch_size):
            batch = [array[start:start + batch_size] for array in x]
            results.append(function(batch + [0]))
        return [np.concatenate([r[i] for r in results]) for i in range(len(outputs))]

    def get_context(self, x, batch_size=32):
        """The encoder's output for a batch of inputs: the context vector
        (batch, hidden_dim), or for an attention model the memory
        (batch, input_length, hidden_dim)."""
        return self._run_on_batches([self._context_tensor()], x, batch_size, 'get_context')[0]

    def _context_tensor(self):
        decoder = self.decoder_layer
        if decoder is None:
            # SimpleSeq2Seq: the input of its 'context' Dense layer.
            return self.get_layer('context').get_input_at(0)
        parts = decoder.split_inputs(self._decoder_input_tensors())
        if parts.memory is not None:
            return parts.memory
        # Seq2Seq: the input of the Dense layer that makes x_0.
        return parts.first._keras_history[0].get_input_at(0)

    def get_attention(self, x, batch_size=32):
        """Attention weights (batch, output_length, input_length) of an
        AttentionSeq2Seq model for a batch of inputs (free running)."""
        decoder = self.decoder_layer
        if decoder is None or not decoder.attends:
            raise ValueError('get_attention needs an AttentionSeq2Seq model')
        if decoder.last_attention is None:
            raise ValueError('get_attention: the attention decoder has not been called yet')
        return self._run_on_batches([decoder.last_attention], x, batch_size,
                                    'get_attention')[0]

    # -- remembered state ---------------------------------------------------------
    def reset_hidden_state(self, rows=None):
        """Clear the remembered states of a `stateful=True` model: every row
        (rows=None, as `reset_states()`), or only the given rows of the batch
        (a conversation ended there); see `seq2seq.conversation`."""
        from .conversation import reset_hidden_state
        reset_hidden_state(self, rows)

    def fit(self, x=None, y=None, *args, **kwargs):
        """As Keras' fit; warns (`ShuffledStateWarning`) when a model with
        remembered state is fit with shuffling, Keras' default."""
        from .conversation import warn_if_shuffled
        warn_if_shuffled(self, args[6] if len(args) > 6 else kwargs.get('shuffle', True))
        return super(Seq2SeqModel, self).fit(x, y, *args, **kwargs)

    # -- search -------------------------------------------------------------------
    def greedy_decode(self, x, max_length=None, eos_id=None, feedback=None, batch_size=64):
        """Token ids by greedy search; see `seq2seq.inference.greedy_decode`."""
        from ..search.model_search import greedy_decode
        return greedy_decode(self, x, max_length=max_length, eos_id=eos_id,
                             feedback=feedback, batch_size=batch_size)

    def beam_decode(self, x, beam_size=5, max_length=None, eos_id=None, length_penalty=0.0,
                    n_best=1, feedback=None, batch_size=64):
        """n-best hypotheses by beam search; see `seq2seq.inference.beam_decode`."""
        from ..search.model_search import beam_decode
        return beam_decode(self, x, beam_size=beam_size, max_length=max_length,
                           eos_id=eos_id, length_penalty=length_penalty, n_best=n_best,
                           feedback=feedback, batch_size=batch_size)


# -- arguments ------------------------------------------------------------------------
def _shape_argument(function, name, value):
    """input_shape or batch_input_shape as a tuple whose entries are None
    or positive ints (Keras would refuse them deep in the graph)."""
    if not isinstance(value, (list, tuple)):
        raise TypeError('%s: %s must be a tuple, got %r' % (function, name, value))
    for entry in value:
        if entry is not None and (not is_int(entry) or entry < 1):
            raise ValueError('%s: %s must hold positive ints (or None), got %r'
                             % (function, name, tuple(value)))
    return tuple(value)


def _batch_input_shape(function, input_shape, input_dim, input_length, batch_input_shape,
                       batch_size, source_vocab_size=None):
    for name, value in [('input_dim', input_dim), ('input_length', input_length),
                        ('batch_size', batch_size)]:
        check_positive_int(name, value, allow_none=True, owner=function)
    if source_vocab_size is not None:
        # Token ids: (batch, length) ints, embedded into input_dim-vectors.
        check_positive_int('source_vocab_size', source_vocab_size, owner=function)
        if input_dim is None:
            raise TypeError('%s(source_vocab_size=...) needs input_dim, the size of the '
                            'token embeddings' % function)
        return (batch_size, input_length, input_dim)
    if batch_input_shape is not None:
        shape = _shape_argument(function, 'batch_input_shape', batch_input_shape)
    elif input_shape is not None:
        shape = (batch_size,) + _shape_argument(function, 'input_shape', input_shape)
    elif input_dim is not None:
        shape = (batch_size, input_length, input_dim)
    else:
        raise TypeError('%s needs the input shape: input_shape=(length, dim), '
                        'input_dim (and input_length), or batch_input_shape' % function)
    if len(shape) != 3:
        raise ValueError('%s takes sequences of vectors: the input shape must be '
                         '(batch, length, dim), got %s' % (function, shape))
    for name, value, axis in [('batch_size', batch_size, 0), ('input_length', input_length, 1),
                              ('input_dim', input_dim, 2)]:
        # Given beside input_shape / batch_input_shape, they must agree with it.
        if value is not None and shape[axis] is not None and value != shape[axis]:
            raise ValueError('%s was given %s=%r but its input shape %s has %r there'
                             % (function, name, value, shape, shape[axis]))
    return shape


def _common(function, output_dim, output_length, hidden_dim, depth, dropout, stateful, shape):
    check_positive_int('output_dim', output_dim, owner=function)
    check_positive_int('output_length', output_length, owner=function)
    hidden_dim = output_dim if hidden_dim is None else hidden_dim
    check_positive_int('hidden_dim', hidden_dim, owner=function)
    depth = check_depth(depth, owner=function)
    check_dropout(dropout, owner=function)
    stateful = check_bool('stateful', stateful, owner=function)
    if stateful and shape[0] is None:
        raise ValueError('%s(stateful=True) needs the batch size: pass batch_size or '
                         'batch_input_shape' % function)
    return hidden_dim, depth


def _rnn_kwargs(stateful, shape, cell, implementation, cell_kwargs):
    kwargs = dict(cell_kwargs, cell=cell, implementation=implementation,
                  remember_state=bool(stateful))
    if stateful:
        kwargs['batch_size'] = shape[0]
    return kwargs


def _maybe_dropout(tensor, dropout):
    return Dropout(dropout)(tensor) if dropout else tensor


def _prepare(model_function, output_dim, output_length, hidden_dim, input_shape, input_dim,
             input_length, batch_input_shape, batch_size, depth, dropout, stateful, cell,
             implementation, cell_kwargs, source_vocab_size=None, readout_activation=None):
    """Check a model's arguments; returns (source Input, the encoder's input
    tensor, hidden_dim, depth, keyword arguments of its recurrent layers).

    Every argument is checked here, before any layer exists, so a bad one
    is refused in one line naming `model_function` (a layer would name
    itself, e.g. "RecurrentEncoder 'encoder_0'", or Keras nothing).

    With `source_vocab_size` the source Input holds token ids (batch,
    input_length) and the encoder reads them through
    `Embedding(source_vocab_size, input_dim, mask_zero=True)` in the same
    graph, so id 0 is padding and padded steps are masked (also in the
    models' step-by-step search, which starts from the source Input).
    """
    function = model_function.__name__
    check_function_arguments(function, model_function, cell_kwargs, readout_activation)
    get_cell_class(cell, function)
    check_implementation(implementation, function)
    shape = _batch_input_shape(function, input_shape, input_dim, input_length,
                               batch_input_shape, batch_size, source_vocab_size)
    hidden_dim, depth = _common(function, output_dim, output_length, hidden_dim, depth,
                                dropout, stateful, shape)
    rnn = _rnn_kwargs(stateful, shape, cell, implementation, cell_kwargs)
    if source_vocab_size is None:
        source = Input(batch_shape=shape, name='source')
        return source, source, hidden_dim, depth, rnn
    source = Input(batch_shape=shape[:2], dtype='int32', name='source')
    embedded = Embedding(source_vocab_size, shape[2], mask_zero=True,
                         name='source_embedding')(source)
    return source, embedded, hidden_dim, depth, rnn


def _targets_input(source, output_length, output_dim):
    """The Input of a teacher-forced model's targets."""
    batch = K.int_shape(source)[0]
    return Input(batch_shape=(batch, output_length, output_dim), name='targets')


# -- the models -----------------------------------------------------------------------
def SimpleSeq2Seq(output_dim, output_length, hidden_dim=None, input_shape=None,
                  input_dim=None, input_length=None, batch_input_shape=None, batch_size=None,
                  depth=1, dropout=0.0, stateful=False, cell='lstm', reverse_input=False,
                  implementation='auto', source_vocab_size=None, readout_activation='linear',
                  **cell_kwargs):
    """Encoder, repeated context, decoder.

        C = encoder(X)                          the last h of the encoder stack
        Y = decoder(RepeatVector(Dense(C)))     a stack reading C at every step
        output = TimeDistributed(Dense(output_dim, activation=readout_activation))(Y)

    # Arguments
        output_dim, output_length: the output's shape.
        hidden_dim: width of every recurrent layer (default output_dim).
        input_shape / input_dim + input_length / batch_input_shape
            (+ batch_size): the input's shape, as in Keras.
        depth: int or (encoder depth, decoder depth).
        dropout: dropout between the stacked layers.
        stateful: keep the hidden states from batch to batch (needs the
            batch size); `model.reset_states()` clears them.
        cell: 'lstm' or 'gru'.
        reverse_input: read the source last step first (Sutskever et al.).
        implementation: 'auto', 'scan' or 'fused' (see `seq2seq.layers.CellLayer`).
        source_vocab_size: the source holds token ids (batch, input_length),
            0 being padding, read through `Embedding(source_vocab_size,
            input_dim, mask_zero=True)` (input_dim is then the embedding
            size); the default takes vectors (batch, input_length, input_dim).
        readout_activation: activation of the outputs ('linear', the last
            release's readout; 'softmax' to output probabilities, e.g. for
            loss='categorical_crossentropy').
        cell_kwargs: init, inner_init, forget_bias_init, activation,
            inner_activation.
    """
    source, tensor, hidden_dim, depth, rnn = _prepare(
        SimpleSeq2Seq, output_dim, output_length, hidden_dim, input_shape, input_dim,
        input_length, batch_input_shape, batch_size, depth, dropout, stateful, cell,
        implementation, cell_kwargs, source_vocab_size, readout_activation)
    for i in range(depth[0]):
        last = i == depth[0] - 1
        tensor = LSTMEncoder(hidden_dim, return_sequences=not last,
                             go_backwards=reverse_input and i == 0,
                             name='encoder_%d' % i, **rnn)(tensor)
        tensor = _maybe_dropout(tensor, dropout)
    tensor = Dense(hidden_dim, name='context')(tensor)
    tensor = RepeatVector(output_length)(tensor)
    for i in range(depth[1]):
        tensor = LSTMEncoder(hidden_dim, return_sequences=True, name='decoder_%d' % i,
                             **rnn)(tensor)
        tensor = _maybe_dropout(tensor, dropout)
    output = TimeDistributed(Dense(output_dim, activation=readout_activation),
                             name='readout')(tensor)
    return Seq2SeqModel(source, output, name='simple_seq2seq')


def Seq2Seq(output_dim, output_length, hidden_dim=None, input_shape=None, input_dim=None,
            input_length=None, batch_input_shape=None, batch_size=None, depth=1,
            broadcast_state=True, inner_broadcast_state=True, teacher_force=False,
            peek=False, dropout=0.0, stateful=False, cell='lstm', reverse_input=False,
            readout_activation='linear', implementation='auto', source_vocab_size=None,
            **cell_kwargs):
    """Encoder-decoder with state transfer [1], optionally peeking [2].

        encoder: a stack of recurrent layers over X; with
            inner_broadcast_state each layer starts from the final state of
            the layer below
        C = the top layer's last h;  x_0 = Dense(output_dim)(C)
        decoder: a stack inside the loop, x_t fed back as the next input;
            with broadcast_state it starts from the top encoder layer's final
            state (all its layers, with inner_broadcast_state); with
            peek=True the bottom cell also reads x_0 at every step [2].

    # Arguments
        teacher_force: train with `fit([x, y], y)`: step t reads the target
            of step t-1. The model still predicts from `x` alone, feeding
            back its own outputs.
        readout_activation: activation of the decoder's outputs ('linear' as
            in the last release; 'softmax' to output probabilities, fed back
            as such).
        (the others as `SimpleSeq2Seq`)
    """
    source, tensor, hidden_dim, depth, rnn = _prepare(
        Seq2Seq, output_dim, output_length, hidden_dim, input_shape, input_dim, input_length,
        batch_input_shape, batch_size, depth, dropout, stateful, cell, implementation,
        cell_kwargs, source_vocab_size, readout_activation)
    states = None
    for i in range(depth[0]):
        last = i == depth[0] - 1
        encoder = LSTMEncoder(hidden_dim, return_sequences=not last, return_state=True,
                              go_backwards=reverse_input and i == 0, name='encoder_%d' % i,
                              **rnn)
        chained = inner_broadcast_state and states is not None
        outputs = encoder([tensor] + states if chained else tensor)
        tensor, states = outputs[0], outputs[1:]
        tensor = _maybe_dropout(tensor, dropout)
    first = Dense(output_dim, name='context_to_output')(tensor)
    decoder_inputs = [first] + (states if broadcast_state else [])
    inputs = [source]
    if teacher_force:
        targets = _targets_input(source, output_length, output_dim)
        decoder_inputs.append(targets)
        inputs.append(targets)
    decoder = RecurrentDecoder(output_dim, hidden_dim, output_length, depth=depth[1],
                               peek=peek, teacher_force=teacher_force,
                               state_input=broadcast_state,
                               inner_broadcast_state=inner_broadcast_state,
                               readout_activation=readout_activation, dropout=dropout,
                               name='decoder', **rnn)
    output = decoder(decoder_inputs if len(decoder_inputs) > 1 else first)
    return Seq2SeqModel(inputs, output, name='seq2seq')


def AttentionSeq2Seq(output_dim, output_length, hidden_dim=None, input_shape=None,
                     input_dim=None, input_length=None, batch_input_shape=None,
                     batch_size=None, depth=1, bidirectional=True, dropout=0.0, stateful=False,
                     cell='lstm', teacher_force=False, readout_activation='linear',
                     implementation='auto', source_vocab_size=None, **cell_kwargs):
    """Encoder-decoder with additive attention [3].

        H = encoder(X)            every step's output of the encoder stack,
                                  bidirectional by default (hidden_dim / 2 per
                                  direction)
        x_0 = tanh(Dense(output_dim)(summary of H))   the first input
        decoder: at every step, attention weights over H from the previous
            state, their weighted sum c_t read by the bottom cell and by the
            readout; outputs fed back as the next inputs.

    `model.get_attention(x)` gives the weights (batch, output_length,
    input_length). Masked (padded) input steps get zero weight.

    # Arguments
        bidirectional: a bidirectional encoder (hidden_dim must be even).
        (the others as `Seq2Seq`)
    """
    source, tensor, hidden_dim, depth, rnn = _prepare(
        AttentionSeq2Seq, output_dim, output_length, hidden_dim, input_shape, input_dim,
        input_length, batch_input_shape, batch_size, depth, dropout, stateful, cell,
        implementation, cell_kwargs, source_vocab_size, readout_activation)
    if bidirectional and hidden_dim % 2:
        raise ValueError('AttentionSeq2Seq: bidirectional=True needs an even hidden_dim '
                         '(half per direction), got %d' % hidden_dim)
    for i in range(depth[0]):
        last = i == depth[0] - 1
        if bidirectional:
            encoder = BidirectionalEncoder(hidden_dim, return_sequences=True, return_state=last,
                                           name='encoder_%d' % i, **rnn)
        else:
            encoder = LSTMEncoder(hidden_dim, return_sequences=True, return_state=last,
                                  name='encoder_%d' % i, **rnn)
        outputs = encoder(tensor)
        tensor = outputs[0] if last else outputs
        tensor = _maybe_dropout(tensor, dropout)
    # The summary: the final h of each direction (of the top layer).
    if bidirectional:
        n_states = len(outputs[1:]) // 2
        summary = Concatenate(name='summary')([outputs[1], outputs[1 + n_states]])
    else:
        summary = outputs[1]
    first = Dense(output_dim, activation='tanh', name='first_input')(summary)
    decoder_inputs = [first, tensor]
    inputs = [source]
    if teacher_force:
        targets = _targets_input(source, output_length, output_dim)
        decoder_inputs.append(targets)
        inputs.append(targets)
    decoder = AttentionDecoder(output_dim, hidden_dim, output_length, depth=depth[1],
                               teacher_force=teacher_force,
                               readout_activation=readout_activation, dropout=dropout,
                               name='decoder', **rnn)
    output = decoder(decoder_inputs)
    return Seq2SeqModel(inputs, output, name='attention_seq2seq')
