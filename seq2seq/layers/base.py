"""The base of every recurrent layer: `StatefulRNN` (remembered state) and
`CellLayer` (a layer that owns cells of one kind).

Every layer derives from `StatefulRNN`: with `remember_state=True` (and a
known `batch_size`) the (h, c) of each LSTM live in Theano shared variables,
each batch starts from them and writes its final states back, unless one
of them is NaN or inf (`seq2seq.layers.state_checks`).
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from keras import backend as K
from keras.engine.base_layer import Layer
from theano.tensor.opt import Assert

from ..util.checks import check_positive_int, owned
from .arguments import (KERAS_LAYER_KEYWORDS, check_cell_arguments, check_keywords,
                        constructor_keywords, layer_owner, positional_order)
from .cells import get_cell_class
from .recurrent import check_implementation, flatten_states
from .state_checks import (COUNTER_ATTRIBUTE, checked_state_array, describe,
                           guarded_state_updates, new_refusal_counter)


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
    `seq2seq.layers.state_checks.check_states_finite(model)` to raise on.
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
        owner = layer_owner(self, kwargs)
        check_positive_int('batch_size', batch_size, allow_none=True, owner=owner)
        if not isinstance(remember_state, (bool, np.bool_)):
            raise TypeError(owned(owner, 'remember_state must be True or False, got %r'
                                         % (remember_state,)))
        remember_state = bool(remember_state)
        if remember_state and batch_size is None:
            raise ValueError(owned(owner, 'remember_state=True needs batch_size: the hidden '
                                          'states are kept per sequence of a batch of fixed '
                                          'size'))
        if not isinstance(truncate_gradient, (int, np.integer)) or isinstance(truncate_gradient, bool):
            raise TypeError(owned(owner, 'truncate_gradient must be an int (-1 for full '
                                         'back-propagation), got %r' % (truncate_gradient,)))
        # What is left is Keras' (name, input_shape, ...): an unknown keyword
        # (a typo, a saved config of another version) is named here, not
        # refused by Keras as a tuple.
        check_keywords(owner, kwargs, KERAS_LAYER_KEYWORDS, constructor_keywords(type(self)))
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
            # reset by seq2seq.layers.state_checks.check_states_finite.
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
        up by one (`seq2seq.layers.state_checks.check_states_finite` raises on it).
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


def cell_kwargs(init, inner_init, forget_bias_init, activation, inner_activation):
    return dict(init=init, inner_init=inner_init, forget_bias_init=forget_bias_init,
                activation=activation, inner_activation=inner_activation)


def input_shape_kwargs(kwargs, input_dim, input_length, batch_size, remember_state):
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
        cell: 'lstm' (`seq2seq.layers.cells.LSTMCell`) or 'gru' (`GRUCell`).
        init, inner_init, forget_bias_init, activation, inner_activation:
            the cells' initializers and activations (the 2015 defaults).
        implementation: 'auto' (the default: 'fused' where it applies, else
            'scan'), 'scan' (the reference loops of `seq2seq.layers.recurrent`) or
            'fused' (`seq2seq.ops.fused_lstm`, `seq2seq.ops.fused_gru`: each
            LSTM's or GRU's whole sequence in one C Op, faster to compile and
            to run; where it does not apply, the scan loop runs with a
            `FusedFallbackWarning`).
        (and the arguments of `StatefulRNN`)
    """

    # Said of the positional order when a number lands on a cell argument.
    positional_order_note = None

    def __init__(self, cell='lstm', init='glorot_uniform', inner_init='orthogonal',
                 forget_bias_init='one', activation='tanh',
                 inner_activation='hard_sigmoid', implementation='auto', **kwargs):
        owner = layer_owner(self, kwargs)
        check_implementation(implementation, owner)
        self.cell_class = get_cell_class(cell, owner)
        self.cell_type = cell
        self.cell_kwargs = cell_kwargs(init, inner_init, forget_bias_init,
                                        activation, inner_activation)
        # Before any cell exists: the cells would pass a bad name to Keras,
        # whose error names neither the argument nor the layer.
        check_cell_arguments(owner, self.cell_kwargs,
                             positional_order(type(self), self.positional_order_note))
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

