"""Keras layers: the stateful base, the LSTM encoder and the LSTM decoders.

    RecurrentEncoder  (batch, time, input_dim) -> (batch, output_dim)
                   or the whole sequence (return_sequences=True); an LSTM
                   or a GRU (`LSTMEncoder` is the same class, its old name)
    LSTMDecoder    (batch, dim) [+ initial h, c] -> (batch, output_length, dim);
                   its output at t-1 is its input at t (Sutskever et al. 2014)
    LSTMDecoder2   the same, reading the input vector at every step as well
                   (Cho et al. 2014)

Every layer derives from `StatefulRNN`: with `remember_state=True` (and a
known `batch_size`) the (h, c) of each LSTM live in Theano shared variables,
each batch starts from them and writes its final states back, unless one
of them is NaN or inf (`seq2seq.state_checks`).
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from keras import backend as K
from keras.engine.base_layer import Layer
from theano.tensor.opt import Assert

from .cells import get_cell_class
import collections

from .recurrent import (DecodeStep, check_implementation, feedback_step, flatten_states,
                        run_encoder, run_feedback_decoder)
from .state_checks import (COUNTER_ATTRIBUTE, checked_state_array, describe,
                           guarded_state_updates, new_refusal_counter)


def _check_positive_int(name, value, allow_none=False):
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError('%s must be a positive int%s, got %r'
                        % (name, ' or None' if allow_none else '', value))
    if value <= 0:
        raise ValueError('%s must be a positive int, got %r' % (name, value))


def check_depth(depth):
    """`depth` as an (encoder, decoder) pair of positive ints."""
    if isinstance(depth, (list, tuple)):
        if len(depth) != 2:
            raise ValueError('depth must be an int or a pair (encoder depth, '
                             'decoder depth), got %r' % (depth,))
        pair = tuple(depth)
    else:
        pair = (depth, depth)
    for d in pair:
        _check_positive_int('depth', d)
    return (int(pair[0]), int(pair[1]))


class StatefulRNN(Layer):
    """Base of every recurrent layer here: owns the cells and their state.

    With `remember_state=True`, each cell's states are Theano shared
    variables of shape (batch_size, size), read at the start of every batch
    of fit, predict and evaluate, and overwritten with the batch's final
    states (Keras runs them as the layer's `updates`, as for its own
    `stateful` layers). With `remember_state=False` every batch starts from
    zeros.

    A final state with any NaN or inf entry is not written: every state of
    the layer keeps its value and a counter records the refused batch, for
    `seq2seq.state_checks.check_states_finite(model)` to raise on.
    `set_hidden_state` checks every array before writing any. When the
    layer is called on Keras tensors, `batch_size` (and `input_length`, for
    layers taking it) must agree with the inputs' static shapes.

    # Arguments
        batch_size: the number of sequences in every batch; required with
            `remember_state=True`.
        remember_state: carry the hidden states over from batch to batch.
            Keras calls this `stateful` (the layer's `stateful` attribute is
            this value, and the models of `seq2seq.models` take it as
            `stateful=`): one concept, two spellings.
        hidden_state: optional initial values for the remembered states, in
            the structure `get_hidden_state()` returns.
        truncate_gradient: steps of back-propagation through time (-1: all).
    """

    def __init__(self, batch_size=None, remember_state=False, hidden_state=None,
                 truncate_gradient=-1, **kwargs):
        _check_positive_int('batch_size', batch_size, allow_none=True)
        if not isinstance(remember_state, bool):
            raise TypeError('remember_state must be True or False, got %r'
                            % (remember_state,))
        if remember_state and batch_size is None:
            raise ValueError('remember_state=True needs batch_size: the hidden '
                             'states are kept per sequence of a batch of fixed size')
        if not isinstance(truncate_gradient, (int, np.integer)) or isinstance(truncate_gradient, bool):
            raise TypeError('truncate_gradient must be an int (-1 for full '
                            'back-propagation), got %r' % (truncate_gradient,))
        super(StatefulRNN, self).__init__(**kwargs)
        self.batch_size = batch_size
        self.remember_state = remember_state
        self.truncate_gradient = int(truncate_gradient)
        # Keras collects the updates of `stateful` layers into predict and
        # evaluate as well as fit.
        self.stateful = remember_state
        self._initial_hidden_state = hidden_state
        self._state_variables = None   # a list, so Keras does not count them as weights
        setattr(self, COUNTER_ATTRIBUTE, None)

    # -- static shapes, checked when the layer is called on Keras tensors -------
    def assert_input_compatibility(self, inputs):
        """Keras' check of the inputs, run by `__call__` before `build` and
        at every call: here also `batch_size` and `input_length` against the
        inputs' static shapes, so that a contradiction is refused when the
        model is built rather than when it runs."""
        super(StatefulRNN, self).assert_input_compatibility(inputs)
        shapes = [getattr(x, '_keras_shape', None) for x in
                  (inputs if isinstance(inputs, (list, tuple)) else [inputs])]
        self.check_static_shapes([shape for shape in shapes if shape is not None])

    def check_static_shapes(self, shapes):
        """Refuse static input shapes (tuples, None where unknown) that
        contradict `batch_size` (every input's axis 0) or `input_length`
        (axis 1 of the first input, for layers that take it)."""
        for k, shape in enumerate(shapes):
            if (self.batch_size is not None and len(shape) > 0 and shape[0] is not None
                    and shape[0] != self.batch_size):
                raise ValueError('%s was given batch_size=%d but its input %d has a batch of '
                                 '%d (shape %s); build the Input with batch_shape=(%d, ...) '
                                 'or give the layer batch_size=%d'
                                 % (self.name, self.batch_size, k, shape[0], shape,
                                    self.batch_size, shape[0]))
        input_length = getattr(self, 'input_length', None)
        if input_length is not None and shapes and len(shapes[0]) > 1:
            length = shapes[0][1]
            if length is not None and length != input_length:
                raise ValueError('%s was given input_length=%d but its input has %d steps '
                                 '(shape %s)' % (self.name, input_length, length, shapes[0]))

    # -- the cells, defined by subclasses ---------------------------------
    def recurrent_cells(self):
        """Every cell of this layer, in the order of `get_hidden_state()`."""
        raise NotImplementedError

    def _create_state_variables(self):
        """Called by subclasses once their cells exist."""
        if not self.remember_state:
            return
        self._state_variables = [
            [K.zeros((self.batch_size, size), name='%s_state_%d_%s' % (self.name, i, state_name))
             for size, state_name in zip(cell.state_sizes, cell.state_names)]
            for i, cell in enumerate(self.recurrent_cells())]
        if getattr(self, COUNTER_ATTRIBUTE, None) is None:
            # Batches whose final state was refused as non-finite, read and
            # reset by seq2seq.state_checks.check_states_finite.
            setattr(self, COUNTER_ATTRIBUTE,
                    new_refusal_counter('%s_nonfinite_state_batches' % self.name))
        if self._initial_hidden_state is not None:
            self.set_hidden_state(self._initial_hidden_state)
            self._initial_hidden_state = None

    # -- states in the graph ----------------------------------------------
    def initial_states(self, cell_index, batch_like):
        """The states cell `cell_index` starts a batch from.

        `batch_like` is any tensor whose first axis is the batch.
        """
        cell = self.recurrent_cells()[cell_index]
        if not self.remember_state:
            batch = batch_like.shape[0]
            return [T.zeros((batch, size), dtype=K.floatx()) for size in cell.state_sizes]
        message = ('%s was built with batch_size=%d and remember_state=True, so '
                   'every batch must hold exactly %d sequences: pass '
                   'batch_size=%d to fit/predict/evaluate and use a number of '
                   'samples divisible by it' % (self.name, self.batch_size,
                                                self.batch_size, self.batch_size))
        same_batch = T.eq(batch_like.shape[0], self.batch_size)
        return [Assert(message)(state, same_batch) for state in self._state_variables[cell_index]]

    def remember(self, final_states, inputs):
        """Write the final states back to the shared variables (as updates).

        If any entry of any final state is NaN or inf, every state of the
        layer keeps its value instead and the layer's refusal counter goes
        up by one (`seq2seq.state_checks.check_states_finite` raises on it).
        """
        if not self.remember_state:
            return
        self.add_update(guarded_state_updates(flatten_states(self._state_variables),
                                              flatten_states(final_states),
                                              getattr(self, COUNTER_ATTRIBUTE)), inputs)

    # -- the user's view of the state -----------------------------------------
    def _require_state(self, what):
        if not self.remember_state:
            raise ValueError('%s cannot %s: it was built with remember_state=False, '
                             'so it keeps no hidden state between batches (build it '
                             'with remember_state=True and batch_size=N)' % (self.name, what))

    def get_hidden_state(self):
        """The remembered states: one list per cell ([h, c] for an LSTM) of
        arrays (batch_size, size), cells in the order of `recurrent_cells()`."""
        self._require_state('get_hidden_state()')
        return [[K.get_value(v) for v in cell_vars] for cell_vars in self._state_variables]

    def set_hidden_state(self, hidden_state):
        """Set the remembered states from the structure `get_hidden_state()` returns.

        Every array is checked first (structure, shape, real finite numbers
        within the range of floatx); if one is refused, with a `ValueError`
        or `TypeError` naming it, no state is changed.
        """
        self._require_state('set_hidden_state()')
        arrays = self._checked_hidden_state(hidden_state)
        for variable, value in zip(flatten_states(self._state_variables), arrays):
            K.set_value(variable, value)

    def _checked_hidden_state(self, hidden_state):
        """`hidden_state` as a flat list of arrays, each checked against its variable."""
        cells = self.recurrent_cells()
        names = [cell.state_names for cell in cells]
        if not isinstance(hidden_state, (list, tuple)) or len(hidden_state) != len(cells):
            raise ValueError('hidden_state must be a list of %d lists (one per cell, each [%s]), '
                             'got %s' % (len(cells), ', '.join(names[0]), describe(hidden_state)))
        arrays = []
        for i, (given, cell_vars) in enumerate(zip(hidden_state, self._state_variables)):
            if not isinstance(given, (list, tuple)) or len(given) != len(cell_vars):
                raise ValueError('hidden_state[%d] must be a list of %d arrays (%s), got %s'
                                 % (i, len(cell_vars), ', '.join(names[i]), describe(given)))
            for j, (value, variable) in enumerate(zip(given, cell_vars)):
                arrays.append(checked_state_array(
                    value, 'hidden_state[%d][%d] (%s of cell %d)' % (i, j, names[i][j], i),
                    K.get_value(variable).shape, variable.dtype))
        return arrays

    def reset_hidden_state(self, rows=None):
        """Set the remembered states to zero (call it after each conversation).

        # Arguments
            rows: None (every row of the batch), or an int or a list of ints
                in [0, batch_size): only those rows, e.g. the rows whose
                conversation just ended while the others go on
                (`seq2seq.conversation.ConversationLayout`). The other rows
                keep their states exactly.

        A layer with remember_state=False has nothing to reset.
        """
        if not self.remember_state:
            return
        rows = self._checked_rows(rows)
        for variable in flatten_states(self._state_variables):
            value = K.get_value(variable)
            if rows is None:
                value = np.zeros_like(value)
            else:
                value = value.copy()
                value[rows] = 0
            K.set_value(variable, value)

    def _checked_rows(self, rows):
        """`rows` of `reset_hidden_state` as a list of ints (None: every row)."""
        if rows is None:
            return None
        given = [rows] if np.ndim(rows) == 0 else list(np.asarray(rows, dtype=object).ravel())
        for row in given:
            if (isinstance(row, (bool, np.bool_)) or not isinstance(row, (int, np.integer))
                    or not 0 <= row < self.batch_size):
                raise ValueError('rows must be None or ints in [0, %d) (the rows of a batch of '
                                 'batch_size=%d), got %r' % (self.batch_size, self.batch_size,
                                                              rows))
        return sorted(set(int(row) for row in given))

    def reset_states(self):
        """Keras' name for `reset_hidden_state()` (used by `Model.reset_states()`)."""
        self.reset_hidden_state()

    def get_config(self):
        config = {'batch_size': self.batch_size,
                  'remember_state': self.remember_state,
                  'truncate_gradient': self.truncate_gradient}
        base = super(StatefulRNN, self).get_config()
        return dict(list(base.items()) + list(config.items()))


def _cell_kwargs(init, inner_init, forget_bias_init, activation, inner_activation):
    return dict(init=init, inner_init=inner_init, forget_bias_init=forget_bias_init,
                activation=activation, inner_activation=inner_activation)


def _input_shape_kwargs(kwargs, input_dim, input_length, batch_size, remember_state):
    """The seed's input_dim/input_length arguments as Keras 2 input shapes."""
    if input_dim is not None and 'input_shape' not in kwargs and 'batch_input_shape' not in kwargs:
        if remember_state:
            kwargs['batch_input_shape'] = (batch_size, input_length, input_dim)
        else:
            kwargs['input_shape'] = (input_length, input_dim)
    return kwargs


class CellLayer(StatefulRNN):
    """A recurrent layer built from cells of one kind, with their arguments.

    # Arguments
        cell: 'lstm' (`seq2seq.cells.LSTMCell`) or 'gru' (`GRUCell`).
        init, inner_init, forget_bias_init, activation, inner_activation:
            the cells' initializers and activations (the 2015 defaults).
        implementation: 'auto' (the default: 'fused' where it applies, else
            'scan'), 'scan' (the reference loops of `seq2seq.recurrent`) or
            'fused' (`seq2seq.ops.fused_lstm`: each LSTM's whole sequence in one C Op,
            faster to compile and to run; where it does not apply, the scan
            loop runs with a `FusedFallbackWarning`).
        (and the arguments of `StatefulRNN`)
    """

    def __init__(self, cell='lstm', init='glorot_uniform', inner_init='orthogonal',
                 forget_bias_init='one', activation='tanh',
                 inner_activation='hard_sigmoid', implementation='auto', **kwargs):
        check_implementation(implementation)
        self.cell_class = get_cell_class(cell)
        self.cell_type = cell
        self.cell_kwargs = _cell_kwargs(init, inner_init, forget_bias_init,
                                        activation, inner_activation)
        self.implementation = implementation
        super(CellLayer, self).__init__(**kwargs)

    def new_cell(self, units):
        return self.cell_class(units, **self.cell_kwargs)

    def get_config(self):
        cell = self.recurrent_cells()[0].get_config()
        config = {key: cell[key] for key in self.cell_kwargs}
        config['implementation'] = self.implementation
        config['cell'] = self.cell_type
        base = super(CellLayer, self).get_config()
        return dict(list(base.items()) + list(config.items()))


class RecurrentEncoder(CellLayer):
    """Encodes a sequence into one vector: the cell's last output (an LSTM
    by default, a GRU with cell='gru'). `LSTMEncoder` is the same class.

    Called on a sequence it starts from its own state (zeros, or the
    remembered state); called on `[sequence, h, c]` (a GRU: `[sequence, h]`)
    it starts from the given state, e.g. the final state of the layer below.

    # Arguments
        output_dim: size of the LSTM's h and c (the output vector).
        input_dim, input_length: the input's shape, when it is the first layer.
        return_sequences: output every step's h, (batch, time, output_dim),
            to stack another encoder on top.
        return_state: also output the final states: `[output, h, c]`.
        go_backwards: read the sequence last step first (outputs in the order
            read).
        cell: 'lstm' or 'gru' (see `CellLayer`).
        (and the arguments of `StatefulRNN` and of the cell)

    A mask (e.g. from `Embedding(mask_zero=True)`) makes padded steps carry
    the state over, so the final state is that of the unpadded sequence,
    whether the padding is on the left or on the right.
    """

    def __init__(self, output_dim, input_dim=None, input_length=None,
                 return_sequences=False, return_state=False, go_backwards=False, **kwargs):
        _check_positive_int('output_dim', output_dim)
        _check_positive_int('input_dim', input_dim, allow_none=True)
        _check_positive_int('input_length', input_length, allow_none=True)
        kwargs = _input_shape_kwargs(kwargs, input_dim, input_length,
                                     kwargs.get('batch_size'), kwargs.get('remember_state', False))
        super(RecurrentEncoder, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.input_dim = input_dim
        self.input_length = input_length
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.go_backwards = go_backwards
        self.supports_masking = True
        self.cell = self.new_cell(output_dim)
        self._create_state_variables()

    def recurrent_cells(self):
        return [self.cell]

    def build(self, input_shape):
        sequence_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        if len(sequence_shape) != 3:
            raise ValueError('%s expects input of shape (batch, time, input_dim), got %s'
                             % (self.name, sequence_shape))
        if isinstance(input_shape, list) and len(input_shape) != 1 + len(self.cell.state_sizes):
            raise ValueError('%s takes a sequence and %d initial states (%s), got %d inputs'
                             % (self.name, len(self.cell.state_sizes),
                                ', '.join(self.cell.state_names), len(input_shape)))
        self.cell.build(self, sequence_shape[-1], '')
        self.built = True

    def call(self, inputs, mask=None):
        if isinstance(inputs, list):
            sequence, states = inputs[0], list(inputs[1:])
            mask = mask[0] if isinstance(mask, list) else mask
        else:
            sequence, states = inputs, self.initial_states(0, inputs)
        outputs, final_states = run_encoder(
            self.cell, sequence, states, mask=mask,
            go_backwards=self.go_backwards, truncate_gradient=self.truncate_gradient,
            implementation=self.implementation)
        self.remember([final_states], sequence)
        output = outputs if self.return_sequences else final_states[0]
        if self.return_state:
            return [output] + list(final_states)
        return output

    def compute_output_shape(self, input_shape):
        sequence_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        if self.return_sequences:
            output_shape = (sequence_shape[0], sequence_shape[1], self.output_dim)
        else:
            output_shape = (sequence_shape[0], self.output_dim)
        if self.return_state:
            return [output_shape] + [(sequence_shape[0], size) for size in self.cell.state_sizes]
        return output_shape

    def compute_mask(self, inputs, mask=None):
        mask = mask[0] if isinstance(mask, list) else mask
        output_mask = mask if self.return_sequences else None
        if output_mask is not None and self.go_backwards:
            output_mask = output_mask[:, ::-1]   # the outputs come in the order read
        if self.return_state:
            return [output_mask] + [None] * len(self.cell.state_sizes)
        return output_mask

    def get_config(self):
        config = {'output_dim': self.output_dim, 'input_dim': self.input_dim,
                  'input_length': self.input_length,
                  'return_sequences': self.return_sequences,
                  'return_state': self.return_state,
                  'go_backwards': self.go_backwards}
        base = super(RecurrentEncoder, self).get_config()
        return dict(list(base.items()) + list(config.items()))


# The name of the last release, when the encoder could only hold an LSTM; the
# same class, so both names load a saved model.
LSTMEncoder = RecurrentEncoder


class BidirectionalEncoder(CellLayer):
    """Two encoders over the same sequence, one reading it backwards; their
    outputs are concatenated step by step (Bahdanau et al. 2015):

        H_j = [h_fwd_j ; h_bwd_j]       (batch, time, 2 * units_per_direction)

    Without `return_sequences` the output is [last forward h ; last backward
    h]. Backward outputs are put back in input order, so H_j describes input
    step j from both sides.

    # Arguments
        output_dim: size of the concatenated output (even: half per direction).
        return_sequences: output every step.
        return_state: also output the final states, forward then backward:
            `[output, h_fwd, c_fwd, h_bwd, c_bwd]` (a GRU: `[output, h_fwd, h_bwd]`).
        cell: 'lstm' or 'gru'.
        (and the arguments of `StatefulRNN` and of the cells)
    """

    def __init__(self, output_dim, return_sequences=True, return_state=False, **kwargs):
        _check_positive_int('output_dim', output_dim)
        if output_dim % 2:
            raise ValueError('output_dim of a BidirectionalEncoder must be even (half '
                             'per direction), got %d' % output_dim)
        super(BidirectionalEncoder, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.supports_masking = True
        self.forward_cell = self.new_cell(output_dim // 2)
        self.backward_cell = self.new_cell(output_dim // 2)
        self._create_state_variables()

    def recurrent_cells(self):
        return [self.forward_cell, self.backward_cell]

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError('%s expects input of shape (batch, time, input_dim), got %s'
                             % (self.name, input_shape))
        self.forward_cell.build(self, input_shape[-1], 'forward_')
        self.backward_cell.build(self, input_shape[-1], 'backward_')
        self.built = True

    def call(self, inputs, mask=None):
        forward, forward_finals = run_encoder(
            self.forward_cell, inputs, self.initial_states(0, inputs), mask=mask,
            truncate_gradient=self.truncate_gradient, implementation=self.implementation)
        backward, backward_finals = run_encoder(
            self.backward_cell, inputs, self.initial_states(1, inputs), mask=mask,
            go_backwards=True, truncate_gradient=self.truncate_gradient,
            implementation=self.implementation)                 # last step first
        self.remember([forward_finals, backward_finals], inputs)
        if self.return_sequences:
            output = T.concatenate([forward, backward[:, ::-1]], axis=-1)  # (batch, time, 2u)
        else:
            output = T.concatenate([forward_finals[0], backward_finals[0]], axis=-1)  # (batch, 2u)
        if self.return_state:
            return [output] + list(forward_finals) + list(backward_finals)
        return output

    def compute_output_shape(self, input_shape):
        if self.return_sequences:
            output_shape = (input_shape[0], input_shape[1], self.output_dim)
        else:
            output_shape = (input_shape[0], self.output_dim)
        if self.return_state:
            n_states = 2 * len(self.forward_cell.state_sizes)
            return [output_shape] + [(input_shape[0], self.output_dim // 2)] * n_states
        return output_shape

    def compute_mask(self, inputs, mask=None):
        output_mask = mask if self.return_sequences else None
        if self.return_state:
            return [output_mask] + [None] * (2 * len(self.forward_cell.state_sizes))
        return output_mask

    def get_config(self):
        config = {'output_dim': self.output_dim, 'return_sequences': self.return_sequences,
                  'return_state': self.return_state}
        base = super(BidirectionalEncoder, self).get_config()
        return dict(list(base.items()) + list(config.items()))


class LSTMDecoder(CellLayer):
    """Generates a sequence from a vector; its output at t-1 is its input at t.

        x_0 = v;   (h_t, c_t) = LSTM(x_{t-1}, h_{t-1}, c_{t-1});   x_t = h_t W_x + b_x

    Called on `v` (batch, dim) it starts from its own state (zeros, or the
    remembered state); called on `[v, h, c]` it starts from the given state,
    e.g. an encoder's final state.

    # Arguments
        dim: size of the input vector and of every output.
        hidden_dim: size of the LSTM's h and c.
        output_length: number of steps generated.
        (and the arguments of `StatefulRNN` and of the LSTM cell)
    """

    reads_context = False

    def __init__(self, dim, hidden_dim, output_length, **kwargs):
        _check_positive_int('dim', dim)
        _check_positive_int('hidden_dim', hidden_dim)
        _check_positive_int('output_length', output_length)
        if 'input_shape' not in kwargs and 'batch_input_shape' not in kwargs:
            kwargs['input_shape'] = (dim,)
        super(LSTMDecoder, self).__init__(**kwargs)
        self.dim = dim
        self.output_dim = dim
        self.hidden_dim = hidden_dim
        self.output_length = output_length
        self.cell = self.new_cell(hidden_dim)
        self._create_state_variables()

    def recurrent_cells(self):
        return [self.cell]

    def build(self, input_shape):
        vector_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        if len(vector_shape) != 2 or vector_shape[-1] != self.dim:
            raise ValueError('%s expects a vector of shape (batch, %d), got %s'
                             % (self.name, self.dim, vector_shape))
        self.cell.build(self, self.dim, '')
        if self.reads_context:
            self.context_kernel = self.cell.build_input_kernel(self, self.dim, 'context_kernel')
        self.readout_kernel = self.add_weight(
            shape=(self.hidden_dim, self.dim), initializer=self.cell.init, name='readout_kernel')
        self.readout_bias = self.add_weight(
            shape=(self.dim,), initializer='zeros', name='readout_bias')
        self.built = True

    def call(self, inputs, mask=None):
        vector, states, constants = self.decode_start(inputs, mask)
        context = [constants['context']] if self.reads_context else None
        outputs, final_states = run_feedback_decoder(
            [self.cell], (self.readout_kernel, self.readout_bias), vector, states,
            self.output_length, context_projections=context,
            truncate_gradient=self.truncate_gradient, implementation=self.implementation)
        self.remember(final_states, vector)
        return outputs

    # -- step-by-step decoding (seq2seq.inference) --------------------------------
    def step_cells(self):
        """The cells whose states `decode_step` carries."""
        return [self.cell]

    def decode_start(self, inputs, mask=None):
        """(first input v, initial states [[h, c]], constants): the given
        states, or the layer's own (zeros or remembered)."""
        if isinstance(inputs, list):
            vector, given_states = inputs[0], [list(inputs[1:])]
        else:
            vector, given_states = inputs, None
        states = given_states or [self.initial_states(0, vector)]
        constants = collections.OrderedDict()
        if self.reads_context:
            constants['context'] = T.dot(vector, self.context_kernel)  # constant over steps: once
        return vector, states, constants

    def decode_step(self, x_tm1, states_tm1, constants):
        """One step of `call`'s loop (`seq2seq.recurrent.feedback_step`)."""
        x_t, states_t = feedback_step(
            [self.cell], (self.readout_kernel, self.readout_bias), x_tm1, states_tm1,
            input_extras=[constants.get('context')])            # (batch, dim)
        return DecodeStep(feedback=x_t, output=x_t, logits=x_t, states=states_t)

    def compute_output_shape(self, input_shape):
        vector_shape = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (vector_shape[0], self.output_length, self.dim)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {'dim': self.dim, 'hidden_dim': self.hidden_dim,
                  'output_length': self.output_length}
        base = super(LSTMDecoder, self).get_config()
        return dict(list(base.items()) + list(config.items()))


class LSTMDecoder2(LSTMDecoder):
    """The Cho-style decoder: `LSTMDecoder` that also reads the input vector
    (the context) at every step (Cho et al. 2014):

        gates_t = x_{t-1} W + v V + h_{t-1} U + b

    `v V` is computed once per batch, outside the loop.
    """

    reads_context = True
