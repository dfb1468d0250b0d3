"""Step-by-step decoding of a trained model: its compiled step functions.

Three modules, three concerns:
- `seq2seq.layers.decoders`: the decoder *layers* (RecurrentDecoder,
  AttentionDecoder, ...), Keras layers that a model trains.
- `seq2seq.search.numpy_search` (`seq2seq.decoding`): the *search*, greedy
  and beam, in plain numpy over any
  `step_fn(tokens, states) -> (log_probs, new_states)`; no Theano in it.
- this module (`seq2seq.inference`): the bridge, the compiled Theano
  functions that make a `step_fn` of a trained Keras model, and
  `greedy_decode` / `beam_decode` that run the search with them.

Every decoder layer of the package (`RecurrentDecoder`, `AttentionDecoder`,
the `Seq2seq` layer, `LSTMDecoder`, `LSTMDecoder2`) has the same decoding
interface, the very step its training loop runs:

    layer.decode_start(inputs, mask) -> first input, states, constants
    layer.decode_step(x_tm1, states, constants) -> seq2seq.layers.recurrent.DecodeStep

`DecoderStepper` finds that layer in any Keras model (a `Seq2SeqModel`, a
`Sequential` such as Embedding + Seq2seq + Activation('softmax'), or a model
holding another model), and compiles two functions:

    start(sources)   the model's graph up to the decoder's inputs (padding
                     masks included, e.g. from Embedding(mask_zero=True)),
                     then the decoder's first input, initial states and
                     per-batch constants (e.g. an attention memory and its
                     projection, computed once per batch, not per step)
                     A batch's sources are cut after the longest one's last
                     step where the model masks its padding and that gives
                     the same results (`ignores_trailing_padding`): the
                     search sorts them by length, so a batch of short words
                     is not encoded over the model's whole input length.
    step(x, rows, states)   one decoder step, then the layers after the
                     decoder (TimeDistributed(Dense), Activation, Dropout)
                     applied to that step, giving log-probabilities

For an `AttentionDecoder` of one LSTM cell whose output is the model's
output (`AttentionSeq2Seq`, the command line's attention model),
`FusedAttentionStepper` replaces the compiled step by one C Op
(`seq2seq.ops.fused_decode`), with the same values within float32 rounding;
a decoder built with implementation='scan' keeps the layer's own step, the
reference (`fused_step_reason` says which applies).

The per-batch constants stay in Theano shared variables for the whole search;
each hypothesis carries the index of its source (`rows`) and the compiled step
gathers the constants it needs, so a step transfers only the small states.
A model's steppers are compiled once and kept on the model (one per feedback
mode), so only the first decode call of a session pays the compile.

What a hypothesis feeds back after choosing a token (`feedback`):
- 'readout': the decoder's own output vector, as in training without teacher
  forcing and in `predict`. The next step then does not depend on the token
  chosen, so beam search ranks independent per-step choices and greedy search
  gives the argmax of `model.predict`.
- 'token': the one-hot vector of the chosen token, as the targets a
  teacher-forced model was trained on (the default for those models). Needs a
  decoder whose output size is the vocabulary.
The log-probabilities are the log-softmax of the model's output before its
final softmax (or of the output itself when it ends without one).

`greedy_decode` and `beam_decode` search an ensemble
(`seq2seq.search.ensemble.Ensemble`): a list of models, or one model, an
ensemble of one, whose stepper is the model's own. The search itself knows
only the stepper: an ensemble of several steps with an `EnsembleStepper`
over its members' steppers. A model without a feedback decoder (e.g.
`SimpleSeq2Seq`) is searched over the table of its per-step outputs
(`TableStepper`).
"""
from __future__ import absolute_import

import numpy as np
import theano
import theano.tensor as T
from keras import activations
from keras import backend as K
from keras.engine.network import Network
from keras.engine.input_layer import InputLayer
from keras.layers import (RNN, Activation, Add, Average, Bidirectional, Concatenate, Dense,
                          Dropout, Embedding, Masking, Maximum, Multiply, SpatialDropout1D,
                          Subtract, TimeDistributed)

from . import numpy_search
# EnsembleStepper is importable from here too, where earlier releases defined it.
from .ensemble import Ensemble, EnsembleStepper, check_model  # noqa: F401
from .numpy_search import beam_search, greedy_search
from ..layers.base import CellLayer
from ..layers.decoder_core import SEARCH_STEP
from ..layers.recurrent import flatten_states, unflatten_states
from ..util.checks import check_positive_int, owned

FEEDBACKS = ('readout', 'token')

# Layers that may follow the decoder: each acts on one output step alone.
_PER_STEP_LAYERS = (Dense, Activation, Dropout)

_CACHE_ATTRIBUTE = '_seq2seq_decoder_steppers'


# -- finding the decoder in a model ----------------------------------------------------
def is_decoder_layer(layer):
    """Whether `layer` has the decoding interface (`decode_start`/`decode_step`)."""
    return callable(getattr(layer, 'decode_step', None)) and \
        callable(getattr(layer, 'decode_start', None))


def _decoder_layers(network):
    found = []
    for layer in network.layers:
        if is_decoder_layer(layer):
            found.append(layer)
        elif isinstance(layer, Network):
            found.extend(_decoder_layers(layer))
    return found


def find_decoder(model, required=True):
    """The one decoder layer of `model` (searched inside nested models too),
    or None if it has none and not `required`.

    # Raises
        TypeError: `model` is not a Keras model.
        ValueError: it holds more than one decoder layer, or none when
            `required`.
    """
    check_model(model)
    found = _decoder_layers(model)
    if not found and not required:
        return None
    if not found:
        raise ValueError('model holds no decoder layer to decode step by step (one of '
                         'Seq2seq, LSTMDecoder, LSTMDecoder2, RecurrentDecoder, '
                         'AttentionDecoder)')
    if len(found) > 1:
        raise ValueError('model holds %d decoder layers (%s); step-by-step decoding needs '
                         'exactly one' % (len(found), ', '.join(l.name for l in found)))
    return found[0]


def _contains(network, layer):
    return any(l is layer or (isinstance(l, Network) and _contains(l, layer))
               for l in network.layers)


def layers_after(model, decoder):
    """The layers applied to the decoder's output to give the model's output,
    in order (inner models unrolled).

    # Raises
        ValueError: the model has several outputs, or a layer between the
            decoder and the output takes more than one input.
    """
    if len(model.outputs) != 1:
        raise ValueError('step-by-step decoding needs a model with one output, got %d'
                         % len(model.outputs))
    tensor, chain = model.outputs[0], []
    while True:
        layer, node_index, _ = tensor._keras_history
        if layer is decoder:
            return chain[::-1]
        if isinstance(layer, Network) and _contains(layer, decoder):
            return layers_after(layer, decoder) + chain[::-1]
        inputs = layer._inbound_nodes[node_index].input_tensors
        if len(inputs) != 1 or not hasattr(inputs[0], '_keras_history'):
            raise ValueError('layer %r between the decoder %r and the model output takes '
                             '%d inputs; step-by-step decoding needs a chain of per-step '
                             'layers after the decoder' % (layer.name, decoder.name, len(inputs)))
        chain.append(layer)
        tensor = inputs[0]


# Layers that, given a padding mask, read a source's steps up to its end
# only: per-step layers, and recurrent layers that carry their state over
# masked steps (Keras' and the package's).
_MASK_EXACT_LAYERS = (InputLayer, Dense, Activation, Dropout, SpatialDropout1D, RNN,
                      Bidirectional, CellLayer, Add, Subtract, Multiply, Average, Maximum)


def _mask_exact(layer):
    if isinstance(layer, TimeDistributed):
        return _mask_exact(layer.layer)
    if isinstance(layer, Concatenate):      # of features, not of steps
        return layer.axis == -1
    return isinstance(layer, _MASK_EXACT_LAYERS)


def _makes_padding_mask(layer):
    """Whether `layer`, reading a source directly, masks its zero padding."""
    if isinstance(layer, Embedding):
        return bool(layer.mask_zero)
    return isinstance(layer, Masking) and layer.mask_value == 0


def ignores_trailing_padding(model, source_inputs):
    """Whether the decoder's start reads each source only up to its last
    non-zero step, so the steps padded in every source of a batch can be
    cut before the batch is encoded, with the same results: each source
    input is read by an `Embedding(mask_zero=True)` (or `Masking(0)`) and
    every layer is per-step or a recurrent layer that carries its state over
    masked steps. The encoder then runs as many steps as the batch's longest
    source, not the model's input length. False for anything else (a nested
    model, a Lambda, a convolution, a stateful layer): those are encoded
    at full length."""
    sources = set(source_inputs)
    for layer in model.layers:
        if getattr(layer, 'stateful', False):
            return False
        if isinstance(layer, InputLayer):
            continue
        reads_source = any(tensor in sources for node in layer._inbound_nodes
                           for tensor in node.input_tensors)
        if reads_source:
            if not _makes_padding_mask(layer):
                return False
        elif not _mask_exact(layer):
            return False
    return bool(sources)


def source_lengths(x):
    """Per source of x (batch, time, ...): its length, up to its last step
    that is not all zeros (0 for a source of zeros only)."""
    nonzero = (x.reshape(x.shape[0], x.shape[1], -1) != 0).any(axis=2)   # (n, time)
    return np.where(nonzero.any(axis=1), x.shape[1] - np.argmax(nonzero[:, ::-1], axis=1), 0)


def cut_trailing_padding(sources):
    """Each (batch, time, ...) source array without the steps that are
    zero in every source of the batch (at least one step kept)."""
    cut = []
    for array in sources:
        array = np.asarray(array)
        if array.ndim < 2:
            cut.append(array)
            continue
        longest = int(source_lengths(array).max()) if len(array) else 0
        cut.append(array[:, :max(1, longest)])
    return cut


def start_sources(stepper, arrays):
    """The arrays a stepper's start function reads for a batch: those of
    its `source_inputs` (`select_sources`), cut after the batch's longest
    source where that gives the same results (`stepper.cut_padding`)."""
    sources = select_sources(stepper, arrays)
    return cut_trailing_padding(sources) if stepper.cut_padding else sources


class _Captured(Exception):
    """Raised inside the model's graph when it reaches the decoder."""

    def __init__(self, inputs, mask):
        super(_Captured, self).__init__('decoder inputs captured')
        self.inputs, self.mask = inputs, mask


def _layer_bookkeeping(network):
    """Every layer's updates and losses, to restore after a trace."""
    saved = []
    for layer in network.layers:
        for name in ('_updates', '_losses'):
            if isinstance(getattr(layer, name, None), list):
                saved.append((layer, name, list(getattr(layer, name))))
        for name in ('_per_input_updates', '_per_input_losses'):
            if isinstance(getattr(layer, name, None), dict):
                saved.append((layer, name, {k: list(v) for k, v in getattr(layer, name).items()}))
        if isinstance(layer, Network):
            saved.extend(_layer_bookkeeping(layer))
    return saved


def trace_decoder_inputs(model, decoder):
    """The decoder's inputs and their masks as symbolic functions of
    `model.inputs`: the model's graph is run again up to the decoder, masks
    included, so a padded source behind `Embedding(mask_zero=True)` is
    decoded as `model.predict` sees it.

    # Returns
        (inputs, mask): a tensor or list of tensors, and the matching mask(s).
    """
    def capture(inputs, mask=None, **kwargs):
        raise _Captured(inputs, mask)

    saved = _layer_bookkeeping(model)
    decoder.call = capture                   # an instance attribute: shadows the method
    try:
        model.run_internal_graph(list(model.inputs))
    except _Captured as captured:
        return captured.inputs, captured.mask
    finally:
        del decoder.call
        for layer, name, value in saved:
            setattr(layer, name, value)
    raise ValueError('the model\'s graph does not reach its decoder %r from its inputs'
                     % decoder.name)


# -- the layers after the decoder, one step at a time ----------------------------------
def _is_softmax(layer):
    return getattr(layer, 'activation', None) is activations.softmax


def step_log_probs(head, output, logits):
    """Log-probabilities (rows, vocab) of one step, from the decoder's
    `output` (and its pre-activation `logits`) through the `head` layers."""
    if not head:
        return T.nnet.logsoftmax(logits)
    x = output
    for position, layer in enumerate(head):
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        if not isinstance(inner, _PER_STEP_LAYERS):
            raise ValueError('layer %r after the decoder is not a per-step layer (%s, or '
                             'TimeDistributed of one); step-by-step decoding cannot run it'
                             % (layer.name, ', '.join(c.__name__ for c in _PER_STEP_LAYERS)))
        if position == len(head) - 1 and _is_softmax(inner):
            # log(softmax(z)) as logsoftmax(z): exact, and what the search ranks.
            if isinstance(inner, Dense):
                x = K.dot(x, inner.kernel)
                if inner.use_bias:
                    x = K.bias_add(x, inner.bias)
            return T.nnet.logsoftmax(x)                            # (rows, vocab)
        x = inner.call(x)
    return T.nnet.logsoftmax(x)


# -- the compiled functions -----------------------------------------------------------
def _placeholder_like(tensor, name):
    return T.TensorType(tensor.dtype, tensor.broadcastable)(name)


def _learning_phase():
    phase = K.learning_phase()
    return [phase] if isinstance(phase, theano.Variable) else []


class DecoderStepper(object):
    """Compiled start and step functions for the decoder of `model`.

    Get one with `get_stepper(model, feedback)`, which compiles it once per
    model and feedback mode and keeps it on the model.

    # Arguments
        model: a Keras model holding one decoder layer (see the module doc).
        feedback: 'readout' or 'token' (default: 'token' for a teacher-forced
            decoder, 'readout' otherwise).
        group_rows: read the decoder's `grouped_constants` (an attention
            memory) once per source for the k hypotheses of that source;
            False gathers them per hypothesis row (the same values, slower).

    # Attributes
        decoder: the decoder layer.
        source_inputs: the model inputs the search reads (a teacher-forced
            model's targets are not among them).
        output_length: the decoder's number of steps (the default max_length).
        max_steps: None, it can take any number of steps.

    A stepper keeps the constants of the batch being searched in shared
    variables: run one search at a time with it.
    """

    max_steps = None

    def __init__(self, model, feedback=None, group_rows=True):
        decoder = _attach_decoder(self, model, feedback)
        self.group_rows = bool(group_rows)
        vocab_size = K.int_shape(model.outputs[0])[-1]
        if self.feedback == 'token' and vocab_size != decoder.output_dim:
            raise ValueError('feedback=\'token\' feeds back the one-hot chosen token, but the '
                             'decoder %r reads vectors of size %d and the model outputs %s '
                             'scores per step (use feedback=\'readout\')'
                             % (decoder.name, decoder.output_dim, vocab_size))
        self._compile()

    def _compile(self):
        decoder, cells = self.decoder, self.decoder.step_cells()
        inputs, mask = trace_decoder_inputs(self.model, decoder)
        first, states, constants = decoder.decode_start(inputs, mask)
        states = flatten_states(states)
        self.n_states = len(states)
        self.constant_names = list(constants)
        start_outputs = [first] + states + list(constants.values())
        # The sources are the model inputs the start graph reads: a
        # teacher-forced model's targets are not read by free-running steps.
        graph_inputs = set(theano.gof.graph.inputs(start_outputs))
        self.source_inputs = [t for t in self.model.inputs if t in graph_inputs]
        self.cut_padding = ignores_trailing_padding(self.model, self.source_inputs)
        self._start = theano.function(self.source_inputs + _learning_phase(), start_outputs,
                                      on_unused_input='ignore', allow_input_downcast=True,
                                      name='decoder_start')

        # Per-batch constants: shared variables, set once per batch. Each
        # hypothesis row gathers its source's row inside the step, except the
        # decoder's grouped constants (an attention memory): the rows then come
        # k per source, (sources * k), and those are read per source.
        self._constants = [theano.shared(np.zeros((1,) * c.ndim, dtype=c.dtype),
                                         broadcastable=c.broadcastable, name='const_' + name)
                           for name, c in constants.items()]
        grouped = set(getattr(decoder, 'grouped_constants', ())) & set(constants)
        if not self.group_rows:
            grouped = set()
        self.grouped = bool(grouped)
        x_tm1 = _placeholder_like(first, 'x_tm1')                  # (rows, dim)
        rows = T.lvector('source_rows')                             # (rows,) source of each row
        sources = T.lvector('sources')                              # (S,) with grouped rows
        rows_per_source = T.lscalar('rows_per_source')              # k
        state_inputs = [_placeholder_like(s, 'state_%d' % i) for i, s in enumerate(states)]
        step_constants = type(constants)(
            (name, shared[sources] if name in grouped else shared[rows])
            for name, shared in zip(constants, self._constants))
        if grouped:
            step_constants['rows_per_source'] = rows_per_source
        step = decoder.decode_step(x_tm1, unflatten_states(state_inputs, cells), step_constants)
        log_probs = step_log_probs(self.head, step.output, step.logits)  # (rows, vocab)
        self._step = theano.function([x_tm1, rows, sources, rows_per_source] + state_inputs
                                     + _learning_phase(),
                                     [step.feedback, log_probs] + flatten_states(step.states),
                                     on_unused_input='ignore', allow_input_downcast=True,
                                     name='decoder_step')

    def initial_states(self, sources):
        """The search states for a batch of sources, [x_prev, source rows] +
        the decoder's states, each with the batch first; the batch's
        constants go to the shared variables. `sources`: the arrays of
        `source_inputs`, or of every model input (see `select_sources`)."""
        sources = start_sources(self, sources)
        results = self._start(*(list(sources) + [0] * len(_learning_phase())))
        first, states, constants = (results[0], results[1:1 + self.n_states],
                                    results[1 + self.n_states:])
        if hasattr(self.decoder, 'trim_padding'):
            named = self.decoder.trim_padding(dict(zip(self.constant_names, constants)))
            constants = [named[name] for name in self.constant_names]
        for shared, value in zip(self._constants, constants):
            shared.set_value(value, borrow=True)
        rows = np.arange(len(first), dtype='int64')
        return [np.asarray(first), rows] + [np.asarray(s) for s in states]

    def step_fn(self, tokens, states):
        """`seq2seq.decoding`'s step function."""
        x_prev, rows, decoder_states = states[0], states[1], states[2:]
        if tokens is None or self.feedback == 'readout':
            x_in = x_prev               # the first input, or the parent's output
        else:
            x_in = np.zeros((len(tokens), self.feedback_dim), dtype=x_prev.dtype)
            x_in[np.arange(len(tokens)), tokens] = 1
        inputs = [x_in] + list(decoder_states)
        grid = _Grid(rows) if self.grouped else None
        if grid is None:
            arguments = [x_in, rows, rows[:0], 1]
        else:
            inputs = [grid.scatter(a) for a in inputs]
            arguments = [inputs[0], np.repeat(grid.sources, grid.k), grid.sources, grid.k]
        results = self._step(*(arguments + inputs[1:] + [0] * len(_learning_phase())))
        if grid is not None:
            results = [grid.gather(a) for a in results]
        x_t, log_probs, new_states = results[0], results[1], results[2:]
        return log_probs, [x_t, rows] + list(new_states)


class FusedAttentionStepper(object):
    """The search step of an attention decoder as one C Op
    (`seq2seq.ops.fused_decode.AttentionDecodeStep`): the fast path of
    `DecoderStepper`, for an `AttentionDecoder` of one LSTM cell whose
    output is the model's output (e.g. `AttentionSeq2Seq`). Same interface,
    same values (within float32 rounding).

    The start function also computes, once per batch, the memory's products
    with the context's kernels (H V, H C_y) and the projection H U_a, all
    without the steps padded in every source of the batch; they stay in
    shared variables for the batch's search, and every hypothesis row reads
    its source's rows in place.

    # Arguments
        model, feedback: as `DecoderStepper`.

    # Raises
        ValueError: the model's decoder cannot run this step
            (`seq2seq.ops.fused_decode.unsupported_reason`).
    """

    grouped = False
    max_steps = None

    def __init__(self, model, feedback=None):
        _attach_decoder(self, model, feedback)
        reason = fused_step_reason(model, self.decoder)
        if reason is not None:
            raise ValueError(reason)
        self._compile()

    def _compile(self):
        from ..ops import fused_decode
        layer = self.decoder
        decoder = layer.decoder          # its `seq2seq.layers.decoder_core.Decoder`
        cell = decoder.cells[0]
        inputs, mask = trace_decoder_inputs(self.model, layer)
        first, states, constants = layer.decode_start(inputs, mask)
        h0, c0 = flatten_states(states)
        self.source_inputs = [t for t in self.model.inputs
                              if t in set(theano.gof.graph.inputs([first, h0, c0]
                                                                  + list(constants.values())))]
        self.cut_padding = ignores_trailing_padding(self.model, self.source_inputs)
        memory = constants['memory']                                    # (S, L, m)
        used = T.gt(constants['memory_mask'], 0)                         # (S, L)
        # Without the last steps padded in every source of the batch.
        positions = T.arange(1, used.shape[1] + 1)
        length = T.maximum(T.max(positions * T.max(used, axis=0)), 1)
        memory = memory[:, :length]
        batch_constants = [
            T.dot(memory, decoder.attention_memory_kernel),             # P = H U_a (S, L', a)
            T.dot(memory, decoder.context_kernel),                      # H V (S, L', 4u)
            T.dot(memory, decoder.context_readout_kernel),              # H C_y (S, L', n)
            T.cast(used[:, :length], 'int8'),                           # (S, L')
            T.concatenate([cell.recurrent_kernel, decoder.attention_query_kernel],
                          axis=1)]                                      # [U | W_a] (u, 4u + a)
        self._start = theano.function(self.source_inputs + _learning_phase(),
                                      [first, h0, c0] + batch_constants,
                                      on_unused_input='ignore', allow_input_downcast=True,
                                      name='fused_decoder_start')
        self._constants = [theano.shared(np.zeros((1,) * c.ndim, dtype=c.dtype),
                                         broadcastable=(False,) * c.ndim, name=name)
                           for name, c in zip(('projection', 'memory_gates', 'memory_readout',
                                               'mask', 'recurrent_query_kernel'),
                                              batch_constants)]
        x_tm1 = _placeholder_like(first, 'x_tm1')                  # (rows, dim)
        tokens = T.lvector('tokens')                                # (rows,) or (0,)
        rows = T.lvector('source_rows')                             # (rows,)
        h_tm1, c_tm1 = _placeholder_like(h0, 'h_tm1'), _placeholder_like(c0, 'c_tm1')
        projection, memory_gates, memory_readout, memory_mask, recurrent_query = \
            self._constants
        spec = decoder.kernel_spec()
        op = fused_decode.AttentionDecodeStep(inner_activation=spec.cells[0].inner_activation,
                                              readout=spec.readout_activation)
        log_probs, x_t, h_t, c_t = op(
            x_tm1, tokens, rows, h_tm1, c_tm1, cell.kernel, cell.bias, recurrent_query,
            projection, memory_gates, memory_readout, memory_mask, decoder.attention_vector,
            decoder.readout_kernel, decoder.readout_bias)
        self._step = theano.function([x_tm1, tokens, rows, h_tm1, c_tm1],
                                     [x_t, log_probs, h_t, c_t],
                                     on_unused_input='ignore', allow_input_downcast=True,
                                     name='fused_decoder_step')
        self._no_tokens = np.zeros(0, dtype='int64')

    def initial_states(self, sources):
        """[x_0, source rows, h, c] for a batch of sources (as
        `DecoderStepper.initial_states`); the batch's constants go to the
        shared variables."""
        sources = start_sources(self, sources)
        results = self._start(*(list(sources) + [0] * len(_learning_phase())))
        first, h0, c0 = results[:3]
        for shared, value in zip(self._constants, results[3:]):
            shared.set_value(value, borrow=True)
        rows = np.arange(len(first), dtype='int64')
        return [np.asarray(first), rows, np.asarray(h0), np.asarray(c0)]

    def step_fn(self, tokens, states):
        """`seq2seq.decoding`'s step function."""
        x_prev, rows, h, c = states
        if tokens is None or self.feedback == 'readout':
            tokens = self._no_tokens    # the first input, or the parent's output
        x_t, log_probs, h_t, c_t = self._step(x_prev, tokens, rows, h, c)
        return log_probs, [x_t, rows, h_t, c_t]


class _Grid(object):
    """Hypothesis rows laid out k per source, (sources * k) rows, for a step
    that reads per-source constants by broadcasting.

    Rows of one source go to consecutive slots (in their order); sources with
    fewer than k rows get filler rows (zeros), computed and dropped.
    """

    def __init__(self, row_sources):
        n = len(row_sources)
        self.order = np.argsort(row_sources, kind='stable')        # rows by source
        sorted_sources = row_sources[self.order]
        self.sources, starts, counts = np.unique(sorted_sources, return_index=True,
                                                 return_counts=True)
        self.k = int(counts.max())
        group = np.repeat(np.arange(len(self.sources)), counts)
        self.slots = group * self.k + (np.arange(n) - starts[group])  # grid slot of sorted row
        self.identity = (len(self.sources) * self.k == n
                         and np.array_equal(self.order, np.arange(n)))
        self.size = len(self.sources) * self.k

    def scatter(self, array):
        """(n, ...) rows -> (sources * k, ...) grid."""
        if self.identity:
            return array
        grid = np.zeros((self.size,) + array.shape[1:], dtype=array.dtype)
        grid[self.slots] = array[self.order]
        return grid

    def gather(self, grid):
        """(sources * k, ...) grid -> (n, ...) rows in the original order."""
        if self.identity:
            return grid
        rows = np.empty((len(self.order),) + grid.shape[1:], dtype=grid.dtype)
        rows[self.order] = grid[self.slots]
        return rows


class TableStepper(object):
    """The step function of a model without a feedback decoder (e.g.
    `SimpleSeq2Seq`): its output steps do not depend on the tokens chosen, so
    the log-probabilities of every step come from one forward pass per batch
    (`predict`'s), and the search reads them step by step.

    # Attributes
        output_length, max_steps: the model's number of output steps, the
            most a search can take.

    # Raises
        ValueError: the model's output is not (batch, steps, vocab).
    """

    feedback = 'readout'
    grouped = False

    def __init__(self, model):
        output = model.outputs[0] if len(model.outputs) == 1 else None
        shape = K.int_shape(output) if output is not None else None
        if shape is None or len(shape) != 3 or not isinstance(shape[1], int):
            raise ValueError('model holds no decoder layer to decode step by step (one of '
                             'Seq2seq, LSTMDecoder, LSTMDecoder2, RecurrentDecoder, '
                             'AttentionDecoder), and its output is not one score vector per '
                             'step (batch, steps, vocab) to search over: got %s'
                             % (None if shape is None else (shape,)))
        self.model = model
        self.decoder = None
        self.source_inputs = list(model.inputs)
        self.output_length = self.max_steps = shape[1]
        layer = output._keras_history[0]
        inner = layer.layer if isinstance(layer, TimeDistributed) else layer
        steps = output
        if _is_softmax(inner) and getattr(output, 'owner', None) is not None:
            # log(softmax) of the last layer: Theano rewrites it as logsoftmax.
            log_probs = T.log(steps)
        else:
            flat = T.reshape(steps, (-1, steps.shape[2]))
            log_probs = T.reshape(T.nnet.logsoftmax(flat), steps.shape)
        self._table = theano.function(self.source_inputs + _learning_phase(), log_probs,
                                      on_unused_input='ignore', allow_input_downcast=True,
                                      name='decoder_table')

    def initial_states(self, sources):
        """[step index, source row] per source; the batch's log-probabilities
        (batch, steps, vocab) are kept for the steps."""
        sources = select_sources(self, sources)
        self._log_probs = self._table(*(list(sources) + [0] * len(_learning_phase())))
        n = len(self._log_probs)
        return [np.zeros(n, dtype='int64'), np.arange(n, dtype='int64')]

    def step_fn(self, tokens, states):
        steps, rows = states
        if steps[0] >= self.output_length:
            raise ValueError('max_length must be at most the model\'s %d output steps'
                             % self.output_length)
        return self._log_probs[rows, steps], [steps + 1, rows]


def _attach_decoder(stepper, model, feedback):
    """Set what every step-by-step stepper knows of its model: `model`, its
    `decoder`, the `feedback` mode, `feedback_dim`, `output_length` and the
    `head` (the layers after the decoder). Returns the decoder."""
    decoder = find_decoder(model)
    stepper.feedback = resolve_feedback(decoder, feedback)
    stepper.model = model
    stepper.decoder = decoder
    stepper.feedback_dim = int(decoder.output_dim)
    stepper.output_length = decoder.output_length
    stepper.head = layers_after(model, decoder)
    return decoder


def resolve_feedback(decoder, feedback):
    """`feedback`, or the decoder's default when it is None."""
    if feedback is None:
        return 'token' if getattr(decoder, 'teacher_force', False) else 'readout'
    if feedback not in FEEDBACKS:
        raise ValueError('feedback must be one of %s or None, got %r' % (FEEDBACKS, feedback))
    return feedback


def _graph_signature(model):
    return (tuple(id(layer) for layer in model.layers), tuple(id(t) for t in model.outputs))


def get_stepper(model, feedback=None):
    """The model's `DecoderStepper` for `feedback`, compiled on first use and
    kept on the model. It is compiled again if the model's layers change
    (e.g. `Sequential.add`); new weights (training, `load_weights`) need no
    recompile: the compiled functions read the model's weight variables."""
    decoder = find_decoder(model, required=False)
    if decoder is None:
        if feedback not in (None, 'readout'):
            raise ValueError('feedback must be None or \'readout\' for a model without a '
                             'feedback decoder (its steps do not read the chosen token), got %r'
                             % (feedback,))
        feedback = 'table'
    else:
        feedback = resolve_feedback(decoder, feedback)
    cache = model.__dict__.get(_CACHE_ATTRIBUTE)
    signature = _graph_signature(model)
    if cache is None or cache['signature'] != signature:
        cache = {'signature': signature, 'steppers': {}}
        model.__dict__[_CACHE_ATTRIBUTE] = cache
    if feedback not in cache['steppers']:
        if decoder is None:
            stepper = TableStepper(model)
        elif fused_step_reason(model, decoder) is None:
            stepper = FusedAttentionStepper(model, feedback)
        else:
            stepper = DecoderStepper(model, feedback)
        cache['steppers'][feedback] = stepper
    return cache['steppers'][feedback]


def fused_step_reason(model, decoder=None):
    """Why `get_stepper` gives `model` the layer's own step (`DecoderStepper`)
    rather than the fused one (`FusedAttentionStepper`), or None. A decoder
    built with implementation='scan' keeps its own step, the reference."""
    decoder = find_decoder(model) if decoder is None else decoder
    if getattr(decoder, 'implementation', 'auto') == 'scan':
        return 'the decoder has implementation=\'scan\''
    head = [layer.name for layer in layers_after(model, decoder)]
    return decoder.decoder.fused_reason(SEARCH_STEP, K.floatx(), head=head)


def clear_cache(model):
    """Forget the compiled step functions kept on `model`."""
    model.__dict__.pop(_CACHE_ATTRIBUTE, None)


# -- checks -----------------------------------------------------------------------------
def _steps_note(expected, shape):
    """': 6 steps where the model was built for input_length=4' when the
    time axis is what differs, else ''."""
    if (len(shape) == len(expected) and len(shape) > 1 and expected[1] is not None
            and shape[1] != expected[1]):
        return ': %d steps where the model was built for input_length=%d' % (shape[1],
                                                                              expected[1])
    return ''


def check_sources(model, x, owner=None):
    """x as a list of arrays matching the model's inputs, checked against
    their declared shapes; a teacher-forced model's targets may be left out
    (a stepper drops them if given, see `select_sources`). `owner`, e.g.
    'get_attention', starts the message of a refusal."""
    if x is None:
        raise TypeError(owned(owner, 'x must be a numpy array (or a list of them, one per '
                                     'model input), got None'))
    given = list(x) if isinstance(x, (list, tuple)) else [x]
    arrays = []
    for array in given:
        try:
            arrays.append(np.asarray(array))
        except Exception:
            raise TypeError(owned(owner, 'x must hold numpy arrays, got %r'
                                  % type(array).__name__))
    if any(a.dtype == object for a in arrays):
        raise TypeError(owned(owner, 'x must hold numeric arrays of one shape each (pad the '
                                     'sources to one length), got an object array'))
    inputs = list(model.inputs)
    if len(arrays) not in (len(inputs), len(inputs) - 1) or not arrays:
        raise ValueError(owned(owner, 'x must hold %d array(s), one per model input, got %d'
                               % (len(inputs), len(arrays))))
    counts = set(len(a) if a.ndim else -1 for a in arrays)
    if len(counts) != 1:
        raise ValueError(owned(owner, 'the arrays of x must have the same number of sources, '
                                      'got %s' % sorted(counts)))
    if counts == {0}:
        raise ValueError(owned(owner, 'x holds no sources (its first axis is empty)'))
    for array, tensor in zip(arrays, inputs):
        expected = K.int_shape(tensor)
        if array.ndim != len(expected) or any(
                e is not None and e != a for e, a in zip(expected[1:], array.shape[1:])):
            raise ValueError(owned(owner, 'x must have shape %s (the model input %r), got %s%s'
                                   % (('(n,) + %s' % (tuple(expected[1:]),)), tensor.name,
                                      array.shape, _steps_note(expected, array.shape))))
    from ..layers.input_checks import check_source_values  # token ids in the vocabulary, finite floats
    check_source_values(model, arrays, method=owner or 'decoding')
    return arrays


def select_sources(stepper, arrays):
    """The arrays of `stepper.source_inputs`, in order, from `arrays`: one
    per input of the stepper's model, or already the sources. Every
    stepper picks its own in `initial_states`, so the search hands every
    stepper, and every member of an ensemble, the arrays it was given."""
    inputs = list(stepper.model.inputs)
    if len(arrays) == len(inputs):
        return [arrays[inputs.index(t)] for t in stepper.source_inputs]
    if len(arrays) != len(stepper.source_inputs):
        raise ValueError('x must hold %d array(s) (the sources), got %d'
                         % (len(stepper.source_inputs), len(arrays)))
    return arrays


def _batches(arrays, batch_size):
    for start in range(0, len(arrays[0]), batch_size):
        yield [a[start:start + batch_size] for a in arrays]


def _by_length(ensemble, arrays):
    """An order of the sources, longest first, so that a batch holds
    sources of similar lengths (an attention decoder then skips the steps
    padded in all of them, see `AttentionDecoder.trim_padding`). A source's
    length: up to its last step that is not all zeros. None for a stateful
    model or ensemble member (a row continues the same row of the previous
    batch) or sources without a time axis. Every other source is decoded on
    its own, so the order does not change the results, only the speed."""
    if ensemble.stateful:
        return None
    x = arrays[0]
    if x.ndim < 2 or x.shape[1] < 2:
        return None
    return np.argsort(-source_lengths(x), kind='stable')


def _unsort(values, order):
    """values[i] belongs to source order[i]: back in source order."""
    if order is None:
        return values
    if isinstance(values, list):
        result = [None] * len(values)
        for position, source in enumerate(order):
            result[source] = values[position]
        return result
    result = np.empty_like(values)
    result[order] = values
    return result


def _check_max_length(stepper, max_length):
    if stepper.max_steps is not None and max_length > stepper.max_steps:
        raise ValueError('max_length must be at most %d for this model: it (or a model of the '
                         'ensemble) has no feedback decoder, only its %d output steps; got %d'
                         % (stepper.max_steps, stepper.max_steps, max_length))


def _check_search_args(eos_id, max_length):
    numpy_search.check_optional_token_id('eos_id', eos_id)
    if max_length is not None:
        numpy_search.check_positive_int('max_length', max_length)


# -- the searches -----------------------------------------------------------------------
def _search_setup(model, x, feedback, max_length, owner):
    """(stepper, source arrays longest first, their order, max_length) for a
    search over `model` (a Keras model, a list of them or an `Ensemble`)."""
    ensemble = Ensemble(model)
    if feedback not in (None,) + FEEDBACKS:
        raise ValueError('feedback must be one of %s or None, got %r' % (FEEDBACKS, feedback))
    arrays = x
    for member in ensemble.models:
        arrays = check_sources(member, arrays, owner)
    stepper = ensemble.stepper(lambda member: get_stepper(member, feedback))
    max_length = stepper.output_length if max_length is None else max_length
    _check_max_length(stepper, max_length)
    order = _by_length(ensemble, arrays)
    if order is not None:
        arrays = [a[order] for a in arrays]
    return stepper, arrays, order, max_length


def greedy_decode(model, x, max_length=None, eos_id=None, feedback=None, batch_size=64):
    """Greedy search over a batch of sources.

    # Arguments
        model: a Keras model holding one decoder layer (see the module doc),
            or a list of such models trained on the same vocabularies, or
            an `Ensemble` of them: searched as one model with the mean of
            their probabilities (see `seq2seq.search.ensemble`).
        x: the sources (what `model.predict` takes, without targets).
        max_length: most tokens per sequence (default: the decoder's
            output_length).
        eos_id: the end-of-sequence token: a sequence stops after it.
        feedback: 'readout' or 'token' (see the module doc).
        batch_size: sources per compiled call.

    # Returns
        (tokens, lengths, log_probs): tokens (batch, steps) padded with
        eos_id (or 0) after the end; lengths and summed log-probabilities
        per sequence.
    """
    _check_search_args(eos_id, max_length)
    batch_size = check_positive_int('batch_size', batch_size)
    stepper, arrays, order, max_length = _search_setup(model, x, feedback, max_length,
                                                       'greedy_decode')
    results = [greedy_search(stepper.step_fn, stepper.initial_states(batch), max_length,
                             eos_id=eos_id) for batch in _batches(arrays, batch_size)]
    width = max(r[0].shape[1] for r in results)
    pad = 0 if eos_id is None else eos_id
    tokens = np.concatenate([np.pad(r[0], ((0, 0), (0, width - r[0].shape[1])),
                                    constant_values=pad) for r in results])
    return (_unsort(tokens, order), _unsort(np.concatenate([r[1] for r in results]), order),
            _unsort(np.concatenate([r[2] for r in results]), order))


def beam_decode(model, x, beam_size=5, max_length=None, eos_id=None, length_penalty=0.0,
                n_best=1, feedback=None, batch_size=64):
    """Beam search over a batch of sources.

    # Arguments
        beam_size, length_penalty, n_best: see `seq2seq.decoding.beam_search`.
        (the others as `greedy_decode`)

    # Returns
        One list per source of up to n_best `Hypothesis` (tokens, log_prob,
        score, finished), best first.
    """
    _check_search_args(eos_id, max_length)
    beam_size = numpy_search.check_positive_int('beam_size', beam_size)
    numpy_search.check_length_penalty(length_penalty)
    numpy_search.check_n_best(n_best, beam_size)
    batch_size = check_positive_int('batch_size', batch_size)
    stepper, arrays, order, max_length = _search_setup(model, x, feedback, max_length,
                                                       'beam_decode')
    hypotheses = []
    for batch in _batches(arrays, batch_size):
        hypotheses.extend(beam_search(stepper.step_fn, stepper.initial_states(batch),
                                      beam_size, max_length, eos_id=eos_id,
                                      length_penalty=length_penalty, n_best=n_best))
    return _unsort(hypotheses, order)
