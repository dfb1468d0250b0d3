"""Recurrent cells: the per-step maths, and the weights it needs.

A cell is not a Keras layer. The layer that owns it calls `cell.build(layer,
input_dim, prefix)`, which creates the weights on that layer with
`layer.add_weight`, so that every weight of a seq2seq layer lives (and is
saved) in one place, in a fixed order.

A cell splits its step in two so that the input half can run outside the
scan loop, as one large matrix product over all time steps:

    projected = cell.project_inputs(x)             # x W + b, any leading axes
    output, states = cell.step(projected_t, states_tm1)

`states` is a list (LSTM: [h, c]); a cell's output is always `states[0]`.
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from keras import activations, initializers

from ..ops.specs import CellSpec
from ..util.checks import owned

# The 2015 (Keras 0.x) initializer names that Keras 2 spells differently.
_LEGACY_INITIALIZERS = {'one': 'ones', 'zero': 'zeros'}


def get_initializer(identifier):
    """A Keras initializer from a Keras 2 or a 2015 name (e.g. 'one')."""
    if isinstance(identifier, str):
        identifier = _LEGACY_INITIALIZERS.get(identifier, identifier)
    return initializers.get(identifier)


# Keras' named activations, with Theano's own functions of the same maths.
_NAMED_ACTIVATIONS = (
    ('tanh', (activations.tanh, T.tanh)),
    ('hard_sigmoid', (activations.hard_sigmoid, T.nnet.hard_sigmoid)),
    ('sigmoid', (activations.sigmoid, T.nnet.sigmoid)),
    ('linear', (activations.linear,)),
    ('softmax', (activations.softmax, T.nnet.softmax)),
    ('relu', (activations.relu, T.nnet.relu)),
)


def activation_name(function):
    """The name of an activation function, as the fused kernels read it:
    'tanh', 'hard_sigmoid', 'sigmoid', 'linear', 'softmax', 'relu', or
    '<name> (custom)' for any other function."""
    for name, functions in _NAMED_ACTIVATIONS:
        if any(function is f for f in functions):
            return name
    return '%s (custom)' % getattr(function, '__name__', repr(function))


class PerGateInitializer(object):
    """Initialise each gate's block of a stacked matrix separately.

    The 2015 layers kept one (input_dim, units) matrix per gate, each drawn
    from the initializer on its own (an orthogonal U_i, U_f, ...). A stacked
    (input_dim, n_gates * units) matrix gets the same distribution this way.
    """

    def __init__(self, initializer, n_gates):
        self.initializer = initializer
        self.n_gates = n_gates

    def __call__(self, shape, dtype=None):
        units = shape[-1] // self.n_gates
        block_shape = tuple(shape[:-1]) + (units,)
        blocks = [self._value(block_shape, dtype) for _ in range(self.n_gates)]
        return np.concatenate(blocks, axis=-1)

    def _value(self, shape, dtype):
        from keras import backend as K
        value = self.initializer(shape, dtype=dtype)
        return K.eval(value) if not isinstance(value, np.ndarray) else value


class GatedCell(object):
    """What the LSTM and GRU cells share: arguments, stacked weights, input
    projection and config. Subclasses set `n_gates`, `state_names` and
    define `step` (and `_bias_value` when the bias is not all zeros).

    # Arguments
        units: size of the hidden state.
        activation: activation of the candidate state (tanh).
        inner_activation: activation of the gates (hard_sigmoid, as in 2015).
        init: initializer of `kernel`, applied per gate.
        inner_init: initializer of `recurrent_kernel`, applied per gate.
        forget_bias_init: initializer of an LSTM's forget gate bias ('one').
    """

    n_gates = None
    state_names = ()
    kind = None          # 'lstm' or 'gru': the maths the fused kernels know by this name

    def __init__(self, units, activation='tanh', inner_activation='hard_sigmoid',
                 init='glorot_uniform', inner_init='orthogonal',
                 forget_bias_init='one'):
        self.units = units
        self.activation = activations.get(activation)
        self.inner_activation = activations.get(inner_activation)
        self.init = get_initializer(init)
        self.inner_init = get_initializer(inner_init)
        self.forget_bias_init = get_initializer(forget_bias_init)
        self.kernel = self.recurrent_kernel = self.bias = None

    @property
    def state_sizes(self):
        return [self.units] * len(self.state_names)

    @property
    def weights(self):
        """kernel, recurrent_kernel, bias: every weight of the cell."""
        return [self.kernel, self.recurrent_kernel, self.bias]

    def kernel_spec(self):
        """This cell as the fused kernels read it (`seq2seq.ops.specs.CellSpec`).
        A subclass that changes the step's maths is not its parent's kind:
        no kernel would run its own maths."""
        kind = self.kind
        kind_class = next(c for c in type(self).__mro__ if 'kind' in c.__dict__)
        for method in ('step', 'project_inputs'):
            if getattr(type(self), method) is not getattr(kind_class, method):
                kind = '%s, whose %s is not %s\'s' % (type(self).__name__, method,
                                                     kind_class.__name__)
        return CellSpec(kind=kind, units=self.units, activation=activation_name(self.activation),
                        inner_activation=activation_name(self.inner_activation))

    @property
    def recurrent_weights(self):
        """The weights the step uses inside the scan loop."""
        return [self.recurrent_kernel]

    def build(self, layer, input_dim, prefix):
        """Create this cell's weights on `layer`, named `prefix` + name."""
        self.kernel = self.build_input_kernel(layer, input_dim, prefix + 'kernel')
        self.recurrent_kernel = layer.add_weight(
            shape=(self.units, self.n_gates * self.units),
            initializer=PerGateInitializer(self.inner_init, self.n_gates),
            name=prefix + 'recurrent_kernel')
        self.bias = layer.add_weight(
            shape=(self.n_gates * self.units,), initializer=self._bias_value,
            name=prefix + 'bias')

    def build_input_kernel(self, layer, input_dim, name):
        """A (input_dim, n_gates * units) kernel for an input of this cell.

        The cell's own input uses one; a decoder that also reads a context
        vector at every step (Cho et al. 2014) adds another.
        """
        return layer.add_weight(
            shape=(input_dim, self.n_gates * self.units),
            initializer=PerGateInitializer(self.init, self.n_gates), name=name)

    def _bias_value(self, shape, dtype=None):
        return np.zeros(shape, dtype=dtype)

    def project_inputs(self, inputs):
        """x W + b: (..., input_dim) -> (..., n_gates * units)."""
        return T.dot(inputs, self.kernel) + self.bias

    def step(self, projected_t, states_tm1):
        """One step: returns (output_t, states_t); output_t is states_t[0]."""
        raise NotImplementedError

    def get_config(self):
        return {
            'units': self.units,
            'activation': activations.serialize(self.activation),
            'inner_activation': activations.serialize(self.inner_activation),
            'init': initializers.serialize(self.init),
            'inner_init': initializers.serialize(self.inner_init),
            'forget_bias_init': initializers.serialize(self.forget_bias_init),
        }


class LSTMCell(GatedCell):
    """Long short-term memory cell (Hochreiter & Schmidhuber 1997).

    With `x_t` the input, `h_tm1`, `c_tm1` the previous hidden and cell state:

        i_t = inner_activation(x_t W_i + h_tm1 U_i + b_i)      # input gate
        f_t = inner_activation(x_t W_f + h_tm1 U_f + b_f)      # forget gate
        c_t = f_t * c_tm1 + i_t * activation(x_t W_c + h_tm1 U_c + b_c)
        o_t = inner_activation(x_t W_o + h_tm1 U_o + b_o)      # output gate
        h_t = o_t * activation(c_t)

    The weights are stacked as in Keras 2.3.1, gate order i, f, c, o:
    `kernel` (input_dim, 4 * units), `recurrent_kernel` (units, 4 * units),
    `bias` (4 * units,); the forget gate's bias starts at `forget_bias_init`.

    # Arguments
        See `GatedCell`.
    """

    n_gates = 4
    state_names = ('h', 'c')
    kind = 'lstm'

    def _bias_value(self, shape, dtype=None):
        units = self.units
        forget = self.forget_bias_init((units,), dtype=dtype)
        from keras import backend as K
        forget = K.eval(forget) if not isinstance(forget, np.ndarray) else forget
        bias = np.zeros(shape, dtype=dtype)
        bias[units:2 * units] = forget
        return bias

    def step(self, projected_t, states_tm1):
        """One step from the projected input and [h_tm1, c_tm1].

        Returns (h_t, [h_t, c_t]).
        """
        h_tm1, c_tm1 = states_tm1
        units = self.units
        z = projected_t + T.dot(h_tm1, self.recurrent_kernel)  # (batch, 4u)
        z_i = z[:, :units]
        z_f = z[:, units:2 * units]
        z_c = z[:, 2 * units:3 * units]
        z_o = z[:, 3 * units:]
        i = self.inner_activation(z_i)                          # (batch, u)
        f = self.inner_activation(z_f)                          # (batch, u)
        c = f * c_tm1 + i * self.activation(z_c)                # (batch, u)
        o = self.inner_activation(z_o)                          # (batch, u)
        h = o * self.activation(c)                              # (batch, u)
        return h, [h, c]


class GRUCell(GatedCell):
    """Gated recurrent unit (Cho et al. 2014).

        z_t = inner_activation(x_t W_z + h_tm1 U_z + b_z)      # update gate
        r_t = inner_activation(x_t W_r + h_tm1 U_r + b_r)      # reset gate
        hh_t = activation(x_t W_h + (r_t * h_tm1) U_h + b_h)   # candidate
        h_t = z_t * h_tm1 + (1 - z_t) * hh_t

    Weights stacked as in Keras 2.3.1's GRU (reset_after=False), gate order
    z, r, h: `kernel` (input_dim, 3 * units), `recurrent_kernel`
    (units, 3 * units), `bias` (3 * units,).

    # Arguments
        See `GatedCell`; `forget_bias_init` is unused (a GRU has no forget gate).
    """

    n_gates = 3
    state_names = ('h',)
    kind = 'gru'

    def step(self, projected_t, states_tm1):
        """One step from the projected input and [h_tm1]. Returns (h_t, [h_t])."""
        h_tm1, = states_tm1
        units = self.units
        recurrent_zr = T.dot(h_tm1, self.recurrent_kernel[:, :2 * units])  # (batch, 2u)
        z = self.inner_activation(projected_t[:, :units] + recurrent_zr[:, :units])
        r = self.inner_activation(projected_t[:, units:2 * units] + recurrent_zr[:, units:])
        candidate = self.activation(projected_t[:, 2 * units:] +
                                    T.dot(r * h_tm1, self.recurrent_kernel[:, 2 * units:]))
        h = z * h_tm1 + (1 - z) * candidate                     # (batch, u)
        return h, [h]


CELLS = {'lstm': LSTMCell, 'gru': GRUCell}


def get_cell_class(name, owner=None):
    """The cell class for 'lstm' or 'gru' (`owner`, the layer or model
    function asking, starts the message of a refusal)."""
    if not isinstance(name, str) or name not in CELLS:
        raise ValueError(owned(owner, "cell must be one of %s, got %r"
                               % (', '.join(repr(c) for c in sorted(CELLS)), name)))
    return CELLS[name]
