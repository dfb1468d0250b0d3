"""The decoder layers: configurations of one decoder (`decoder_core.Decoder`).

    RecurrentDecoder   a stack of cells generating `output_length` vectors,
                       each fed back as the next input; optional peek,
                       teacher forcing, dropout, readout activation
    AttentionDecoder   the same, attending over a memory (Bahdanau et al. 2015)
    LSTMDecoder        (batch, dim) [+ initial h, c] -> (batch, output_length, dim):
                       one LSTM whose output at t-1 is its input at t
                       (Sutskever et al. 2014)
    LSTMDecoder2       the same, reading the input vector at every step as
                       well (Cho et al. 2014)

The equations are in `seq2seq.layers.decoder_core`. Every decoder layer of the
package (these and the `Seq2seq` layer) has the same decoding interface, the
very step its training loop runs:

    layer.decode_start(inputs, mask) -> first input, states, constants
    layer.decode_step(x_tm1, states, constants) -> seq2seq.layers.recurrent.DecodeStep

which `seq2seq.search.model_search` compiles for step-by-step search.
"""
from __future__ import absolute_import

import collections

import numpy as np
import theano
from theano.compile.ops import deep_copy_op
from keras import activations
from keras import backend as K

from ..util.checks import check_dropout, check_positive_int
from .arguments import checked_activation, layer_owner
from .base import CellLayer
from .decoder_core import Decoder
from .recurrent import flatten_states, unflatten_states

DecoderInputs = collections.namedtuple(
    'DecoderInputs', ['first', 'memory', 'memory_mask', 'states', 'teacher'])


class RecurrentDecoder(CellLayer):
    """Generates `output_length` vectors, each fed back as the next input.

    Inputs, in this order (a list when more than the first):
        first input x_0 (batch, output_dim), always;
        the memory (batch, input_length, m), for an `AttentionDecoder`;
        the initial state of the bottom cell, [h, c] (a GRU: [h]), each
            (batch, hidden_dim), with `state_input=True`;
        the targets (batch, output_length, output_dim), with
            `teacher_force=True`.

    # Arguments
        output_dim: size of x_0 and of every output.
        hidden_dim: size of every cell's state.
        output_length: number of steps generated.
        depth: number of stacked cells inside the loop.
        peek: the first cell also reads x_0 at every step (Cho et al. 2014).
        teacher_force: in training, step t reads the target of step t-1
            instead of its own output; predict and evaluate run free.
        state_input: the bottom cell's initial state is an input (e.g. an
            encoder's final state) instead of zeros or the remembered state.
        inner_broadcast_state: with `state_input`, the upper cells start from
            that state too; otherwise from zeros (or their remembered state).
        readout_activation: activation of the readout ('linear', 'softmax').
        dropout: fraction of each cell's input units dropped in training,
            the same units at every step of a sequence.
        (and the arguments of `CellLayer` and `StatefulRNN`)

    After a call, `last_attention` holds the attention weights of an
    attending decoder, (batch, output_length, input_length), else None.
    """

    attends = False
    # The weight names of the loop's cells and of the peek kernel.
    cell_prefix = 'decoder_%d_'
    peek_name = 'peek_kernel'

    def __init__(self, output_dim, hidden_dim, output_length, depth=1, peek=False,
                 teacher_force=False, state_input=False, inner_broadcast_state=True,
                 readout_activation='linear', dropout=0.0, **kwargs):
        owner = layer_owner(self, kwargs)
        for name, value in [('output_dim', output_dim), ('hidden_dim', hidden_dim),
                            ('output_length', output_length), ('depth', depth)]:
            check_positive_int(name, value, owner=owner)
        checked_activation(owner, 'readout_activation', readout_activation)
        check_dropout(dropout, owner)
        super(RecurrentDecoder, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.output_length = output_length
        self.teacher_force = teacher_force
        self.state_input = state_input
        self.inner_broadcast_state = inner_broadcast_state
        self.supports_masking = True
        self.decoder = Decoder([self.new_cell(hidden_dim) for _ in range(depth)], output_dim,
                               peek=peek, attends=self.attends,
                               readout_activation=readout_activation, dropout=dropout,
                               cell_prefix=self.cell_prefix, peek_name=self.peek_name)
        self._create_state_variables()
        self.last_attention = None

    # The specification's fields, as the layer's attributes.
    cells = property(lambda self: self.decoder.cells)
    depth = property(lambda self: self.decoder.depth)
    peek = property(lambda self: self.decoder.peek)
    dropout = property(lambda self: self.decoder.dropout)
    readout_activation = property(lambda self: self.decoder.readout_activation)

    def recurrent_cells(self):
        return list(self.decoder.cells)

    @property
    def states_per_cell(self):
        return len(self.decoder.cells[0].state_sizes)

    # -- inputs -----------------------------------------------------------------
    def split_inputs(self, inputs, masks=None):
        """The named parts of this layer's input list (see the class doc)."""
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        masks = list(masks) if isinstance(masks, (list, tuple)) else [masks] * len(inputs)
        expected = (1 + int(self.attends) + int(self.state_input) * self.states_per_cell
                    + int(self.teacher_force))
        if len(inputs) != expected:
            raise ValueError('%s takes %d inputs (first input%s%s%s), got %d'
                             % (self.name, expected, ', memory' if self.attends else '',
                                ', %d initial states' % self.states_per_cell
                                if self.state_input else '',
                                ', targets' if self.teacher_force else '', len(inputs)))
        position = 1
        memory = memory_mask = None
        if self.attends:
            memory, memory_mask = inputs[1], masks[1]
            position = 2
        states = None
        if self.state_input:
            n = self.states_per_cell
            states = inputs[position:position + n]
            position += n
        teacher = inputs[position] if self.teacher_force else None
        return DecoderInputs(inputs[0], memory, memory_mask, states, teacher)

    # -- weights ------------------------------------------------------------------
    def build(self, input_shape):
        shapes = input_shape if isinstance(input_shape, list) else [input_shape]
        parts = self.split_inputs(shapes)
        self.check_first_shape(parts.first)
        if parts.teacher is not None and tuple(parts.teacher[1:]) != (self.output_length,
                                                                        self.output_dim):
            raise ValueError('%s expects targets of shape (batch, %d, %d), got %s'
                             % (self.name, self.output_length, self.output_dim, parts.teacher))
        memory_dim = None
        if self.attends:
            if parts.memory is None or len(parts.memory) != 3:
                raise ValueError('%s expects a memory of shape (batch, input_length, dim), '
                                 'got %s' % (self.name, parts.memory))
            memory_dim = parts.memory[-1]
        self.decoder.build(self, memory_dim)
        self.built = True

    def check_first_shape(self, shape):
        if len(shape) != 2 or shape[-1] != self.output_dim:
            raise ValueError('%s expects a first input of shape (batch, %d), got %s'
                             % (self.name, self.output_dim, shape))

    # -- step-by-step decoding (seq2seq.search.model_search) --------------------------
    def step_cells(self):
        """The cells whose states `decode_step` carries, in order."""
        return self.decoder.step_cells

    def decode_start(self, inputs, mask=None):
        """(first input, initial states per cell, constants) for `decode_step`,
        from this layer's inputs and their masks."""
        parts = self.split_inputs(inputs, mask)
        return (parts.first, self.initial_state_list(parts),
                self.decoder.start(parts.first, parts.memory, parts.memory_mask))

    def decode_step(self, x_tm1, states_tm1, constants):
        """One free-running step: a `seq2seq.layers.recurrent.DecodeStep`."""
        return self.decoder.step(x_tm1, states_tm1, constants)

    @property
    def grouped_constants(self):
        """The constants a search may keep one row per source (`Decoder.attend`)."""
        return self.decoder.grouped_constants if self.attends else ()

    def trim_padding(self, constants):
        """The per-batch constants (numpy arrays by name) without the last
        input steps that are masked in every source of the batch. A masked
        step gets an attention weight of exactly 0 and adds exactly 0 to the
        context, so the steps' results are the same; the step then does not
        spend its time on padding."""
        if 'memory_mask' not in constants:
            return constants
        mask = constants['memory_mask']                                # (batch, L)
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 1
        if length == mask.shape[1]:
            return constants
        trimmed = dict(constants)
        for name in self.grouped_constants:
            trimmed[name] = np.ascontiguousarray(trimmed[name][:, :length])
        return trimmed

    # -- the loop -------------------------------------------------------------------
    def initial_state_list(self, parts):
        """Per cell, the states the loop starts from."""
        own = [self.initial_states(i, parts.first) for i in range(self.depth)]
        if parts.states is None:
            return own
        given = list(parts.states)
        return [given] + [given if self.inner_broadcast_state else own[i]
                          for i in range(1, self.depth)]

    def run(self, parts, teacher=None):
        """The whole sequence: (outputs (batch, T, dim), final states per
        cell, attention weights (batch, T, L) or None)."""
        return self.decoder.run(
            parts.first, self.initial_state_list(parts),
            self.decoder.start(parts.first, parts.memory, parts.memory_mask),
            self.output_length, teacher=teacher, implementation=self.implementation,
            truncate_gradient=self.truncate_gradient, name='%s_scan' % self.name)

    def _lazy_in_training(self, results):
        """The free-running loop of a teacher-forced layer, made so that the
        training function skips it.

        It is the alternative of `K.in_train_phase` in `call` (a lazy
        IfElse), and training feeds learning phase 1, yet Theano ran it, and
        its gradient scan, at every batch: (1) IfElse multiplies the
        alternative's gradient by 0 only after computing it, so the gradient
        is cut here (it is always 0 in training); (2) the optimizer's
        in-place weight updates must run after every reader of the weights,
        which made the loop a prerequisite of the update; reading copies of
        the weights instead, only the cheap copies are.
        """
        outputs, finals, alpha = results
        flat = [outputs] + flatten_states(finals) + ([alpha] if alpha is not None else [])
        # DeepCopyOp: a copy the optimizer keeps (it removes tensor_copy).
        copies = {w: deep_copy_op(w) for w in self.weights}
        flat = theano.clone(flat, replace=copies)
        flat = [theano.gradient.disconnected_grad(v) for v in flat]
        n_flat = len(flatten_states(finals))
        return (flat[0], unflatten_states(flat[1:1 + n_flat], self.cells),
                flat[1 + n_flat] if alpha is not None else None)

    def call(self, inputs, mask=None):
        parts = self.split_inputs(inputs, mask)
        outputs, finals, alpha = self.run(parts)
        if self.teacher_force:
            if not isinstance(K.learning_phase(), int):
                outputs, finals, alpha = self._lazy_in_training((outputs, finals, alpha))
            forced, forced_finals, forced_alpha = self.run(parts, teacher=parts.teacher)
            outputs = K.in_train_phase(forced, outputs)
            finals = [[K.in_train_phase(f, g) for f, g in zip(fs, gs)]
                      for fs, gs in zip(forced_finals, finals)]
            if alpha is not None:
                alpha = K.in_train_phase(forced_alpha, alpha)
        if self.teacher_force or self.dropout:
            outputs._uses_learning_phase = True
        self.last_attention = alpha
        self.remember(finals, parts.first)
        return outputs

    def compute_output_shape(self, input_shape):
        first = input_shape[0] if isinstance(input_shape, list) else input_shape
        return (first[0], self.output_length, self.output_dim)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {'output_dim': self.output_dim, 'hidden_dim': self.hidden_dim,
                  'output_length': self.output_length, 'depth': self.depth,
                  'peek': self.peek, 'teacher_force': self.teacher_force,
                  'state_input': self.state_input,
                  'inner_broadcast_state': self.inner_broadcast_state,
                  'readout_activation': activations.serialize(self.readout_activation),
                  'dropout': self.dropout}
        base = super(RecurrentDecoder, self).get_config()
        return dict(list(base.items()) + list(config.items()))


class AttentionDecoder(RecurrentDecoder):
    """`RecurrentDecoder` with additive attention over a memory (Bahdanau et
    al. 2015); see `seq2seq.layers.decoder_core` for the equations.

    Inputs: `[first input, memory, ...]`, the memory (batch, input_length, m)
    being the encoder's outputs; its mask (from `Embedding(mask_zero=True)`
    through the encoder) keeps padded steps out of the attention.

    Teacher-forced training of up to eight stacked LSTM cells runs
    `seq2seq.ops.fused_attention` unless implementation='scan'.
    """

    attends = True


class LSTMDecoder(RecurrentDecoder):
    """Generates a sequence from a vector; its output at t-1 is its input at t.

        x_0 = v;   (h_t, c_t) = LSTM(x_{t-1}, h_{t-1}, c_{t-1});   x_t = h_t W_x + b_x

    Called on `v` (batch, dim) it starts from its own state (zeros, or the
    remembered state); called on `[v, h, c]` it starts from the given state,
    e.g. an encoder's final state. A `RecurrentDecoder` of one cell, with
    the arguments and saved config of the first release.

    # Arguments
        dim: size of the input vector and of every output.
        hidden_dim: size of the LSTM's h and c.
        output_length: number of steps generated.
        (and the arguments of `StatefulRNN` and of the LSTM cell)
    """

    reads_context = False
    cell_prefix = ''
    peek_name = 'context_kernel'

    def __init__(self, dim, hidden_dim, output_length, **kwargs):
        owner = layer_owner(self, kwargs)
        check_positive_int('dim', dim, owner=owner)
        check_positive_int('hidden_dim', hidden_dim, owner=owner)
        check_positive_int('output_length', output_length, owner=owner)
        if 'input_shape' not in kwargs and 'batch_input_shape' not in kwargs:
            kwargs['input_shape'] = (dim,)
        super(LSTMDecoder, self).__init__(dim, hidden_dim, output_length,
                                          peek=self.reads_context, **kwargs)
        self.dim = dim

    def split_inputs(self, inputs, masks=None):
        """`v`, or `[v, h, c]`: the vector and, optionally, the initial states."""
        inputs = list(inputs) if isinstance(inputs, (list, tuple)) else [inputs]
        states = inputs[1:] or None
        return DecoderInputs(inputs[0], None, None, states, None)

    def check_first_shape(self, shape):
        if len(shape) != 2 or shape[-1] != self.dim:
            raise ValueError('%s expects a vector of shape (batch, %d), got %s'
                             % (self.name, self.dim, shape))

    def get_config(self):
        config = {'dim': self.dim, 'hidden_dim': self.hidden_dim,
                  'output_length': self.output_length}
        base = CellLayer.get_config(self)   # not RecurrentDecoder's: the first release's config
        return dict(list(base.items()) + list(config.items()))


class LSTMDecoder2(LSTMDecoder):
    """The Cho-style decoder: `LSTMDecoder` that also reads the input vector
    (the context) at every step (Cho et al. 2014):

        gates_t = x_{t-1} W + v V + h_{t-1} U + b

    `v V` is computed once per batch, outside the loop.
    """

    reads_context = True
