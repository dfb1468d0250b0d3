"""Decoder layers for the models: a stack of cells that generates a sequence.

(The search over a trained decoder is `seq2seq.decoding`, plain numpy; the
compiled step functions that connect the two are `seq2seq.inference`.)

`RecurrentDecoder`, with x_0 its first input (batch, output_dim):

    input_t = x_{t-1}        free running: its own previous output
            = y*_{t-1}       teacher forcing, in training only: the previous
                             target (y*_{-1} = x_0)
    h^1_t = cell_1(input_t W_1 [+ x_0 V if peek] + b_1, s^1_{t-1})
    h^k_t = cell_k(h^{k-1}_t W_k + b_k, s^k_{t-1})              k = 2 .. depth
    x_t = readout_activation(h^depth_t W_y + b_y)                the output

`AttentionDecoder` also attends over a memory H (batch, input_length, m),
the encoder's outputs, at every step (Bahdanau et al. 2015):

    e_tj = v_a . tanh(H_j U_a + h^depth_{t-1} W_a)
    alpha_t = softmax_j(e_tj)             over the unmasked steps j only
    c_t = sum_j alpha_tj H_j
    cell_1's projected input += c_t V;    x_t = act(h^depth_t W_y + c_t C_y + b_y)

The per-step maths is one method, `step` (built on
`seq2seq.recurrent.feedback_step`), used both by the training/predict scan and
by step-by-step search (`seq2seq.inference`, through `decode_start` and
`decode_step`, the decoding interface every decoder layer of the package has).
"""
from __future__ import absolute_import

import collections

import numpy as np
import theano
import theano.tensor as T
from theano.compile.ops import deep_copy_op
from keras import activations
from keras import backend as K

from .layers import CellLayer, _check_positive_int
from .recurrent import (DecodeStep, feedback_step, flatten_states, run_feedback_decoder,
                        unflatten_states)

DecoderInputs = collections.namedtuple(
    'DecoderInputs', ['first', 'memory', 'memory_mask', 'states', 'teacher'])


def _masked_softmax(energy, mask, axis):
    """softmax of `energy` along `axis` over the steps where `mask` > 0.

    The max is taken over the unmasked steps only, so exp() cannot overflow,
    and masked steps get exactly zero.
    """
    masked_energy = T.switch(mask > 0, energy, -1e9)
    energy = masked_energy - masked_energy.max(axis=axis, keepdims=True)
    weights = T.exp(energy) * mask
    return weights / T.maximum(weights.sum(axis=axis, keepdims=True), 1e-12)


class RecurrentDecoder(CellLayer):
    """Generates `output_length` vectors, each fed back as the next input.

    Inputs, in this order (a list when more than the first):
        first input x_0 (batch, output_dim), always;
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
    """

    attends = False

    def __init__(self, output_dim, hidden_dim, output_length, depth=1, peek=False,
                 teacher_force=False, state_input=False, inner_broadcast_state=True,
                 readout_activation='linear', dropout=0.0, **kwargs):
        for name, value in [('output_dim', output_dim), ('hidden_dim', hidden_dim),
                            ('output_length', output_length), ('depth', depth)]:
            _check_positive_int(name, value)
        if not 0.0 <= dropout < 1.0:
            raise ValueError('dropout must be in [0, 1), got %r' % (dropout,))
        super(RecurrentDecoder, self).__init__(**kwargs)
        self.output_dim = output_dim
        self.hidden_dim = hidden_dim
        self.output_length = output_length
        self.depth = depth
        self.peek = peek
        self.teacher_force = teacher_force
        self.state_input = state_input
        self.inner_broadcast_state = inner_broadcast_state
        self.readout_activation = activations.get(readout_activation)
        self.dropout = float(dropout)
        self.supports_masking = True
        self.cells = [self.new_cell(hidden_dim) for _ in range(depth)]
        self._create_state_variables()
        self.last_attention = None

    def recurrent_cells(self):
        return list(self.cells)

    @property
    def states_per_cell(self):
        return len(self.cells[0].state_sizes)

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
        if len(parts.first) != 2 or parts.first[-1] != self.output_dim:
            raise ValueError('%s expects a first input of shape (batch, %d), got %s'
                             % (self.name, self.output_dim, parts.first))
        if parts.teacher is not None and tuple(parts.teacher[1:]) != (self.output_length,
                                                                        self.output_dim):
            raise ValueError('%s expects targets of shape (batch, %d, %d), got %s'
                             % (self.name, self.output_length, self.output_dim, parts.teacher))
        width = self.output_dim
        for i, cell in enumerate(self.cells):
            cell.build(self, width, 'decoder_%d_' % i)
            width = self.hidden_dim
        bottom = self.cells[0]
        if self.peek:
            self.peek_kernel = bottom.build_input_kernel(self, self.output_dim, 'peek_kernel')
        self.readout_kernel = self.add_weight(shape=(self.hidden_dim, self.output_dim),
                                              initializer=bottom.init, name='readout_kernel')
        self.readout_bias = self.add_weight(shape=(self.output_dim,), initializer='zeros',
                                            name='readout_bias')
        if self.attends:
            self.build_attention(parts.memory)
        self.built = True

    # -- the step ---------------------------------------------------------------
    def constants(self, parts):
        """Tensors the step reads at every step, computed once per batch.

        Returns an OrderedDict name -> tensor, each with the batch first.
        """
        constants = collections.OrderedDict()
        if self.peek:
            constants['peek'] = T.dot(parts.first, self.peek_kernel)  # (batch, G*u)
        if self.dropout:
            for i, cell in enumerate(self.cells):
                width = self.output_dim if i == 0 else self.hidden_dim
                ones = T.ones((parts.first.shape[0], width), dtype=K.floatx())
                constants['dropout_%d' % i] = K.in_train_phase(
                    K.dropout(ones, self.dropout), ones)             # (batch, width)
        return constants

    def bottom_extra(self, states_tm1, constants):
        """Terms added to the first cell's projected input (or None), to the
        readout (or None), and extra per-step outputs."""
        return constants.get('peek'), None, []

    def step(self, x_tm1, states_tm1, constants):
        """One step of the decoder.

        # Arguments
            x_tm1: (batch, output_dim), the input of this step.
            states_tm1: per cell, a list of (batch, hidden_dim).
            constants: the OrderedDict of `constants()`.

        # Returns
            (x_t, logits_t, states_t, extras): the output, the readout before
            its activation, the new states, and a list of extra per-step
            outputs (the attention weights of an AttentionDecoder).
        """
        extra, readout_extra, extras = self.bottom_extra(states_tm1, constants)
        logits, states_t = feedback_step(
            self.cells, (self.readout_kernel, self.readout_bias), x_tm1, states_tm1,
            input_extras=[extra] + [None] * (self.depth - 1),
            input_masks=[constants.get('dropout_%d' % i) for i in range(self.depth)],
            readout_extra=readout_extra)                           # (batch, dim)
        return self.readout_activation(logits), logits, states_t, extras

    # -- step-by-step decoding (seq2seq.inference) --------------------------------
    def step_cells(self):
        """The cells whose states `decode_step` carries, in order."""
        return list(self.cells)

    def decode_start(self, inputs, mask=None):
        """(first input, initial states per cell, constants) for `decode_step`,
        from this layer's inputs and their masks."""
        parts = self.split_inputs(inputs, mask)
        return parts.first, self.initial_state_list(parts), self.constants(parts)

    def decode_step(self, x_tm1, states_tm1, constants):
        """One free-running step: a `seq2seq.recurrent.DecodeStep`."""
        x_t, logits, states_t, _ = self.step(x_tm1, states_tm1, constants)
        return DecodeStep(feedback=x_t, output=x_t, logits=logits, states=states_t)

    # -- the loop -------------------------------------------------------------------
    def initial_state_list(self, parts):
        """Per cell, the states the loop starts from."""
        own = [self.initial_states(i, parts.first) for i in range(self.depth)]
        if parts.states is None:
            return own
        given = list(parts.states)
        return [given] + [given if self.inner_broadcast_state else own[i]
                          for i in range(1, self.depth)]

    def _fused_applies(self, teacher):
        return (self.implementation != 'scan' and teacher is None and self.depth == 1
                and not self.attends and not self.dropout
                and self.readout_activation is activations.get('linear'))

    def run(self, parts, teacher=None):
        """The whole sequence: (outputs (batch, T, dim), final states per cell,
        extras: list of (batch, T, ...))."""
        states = self.initial_state_list(parts)
        constants = self.constants(parts)
        if self._fused_applies(teacher):
            outputs, finals = run_feedback_decoder(
                self.cells, (self.readout_kernel, self.readout_bias), parts.first, states,
                self.output_length, context_projections=[constants.get('peek')],
                truncate_gradient=self.truncate_gradient, implementation=self.implementation)
            return outputs, finals, []
        return self._scan(parts.first, states, constants, teacher)

    def _scan(self, first, states, constants, teacher):
        names = list(constants)
        n_flat = len(flatten_states(states))
        n_extras = 1 if self.attends else 0
        sequences = []
        if teacher is not None:
            # Step t reads the target of step t-1; step 0 reads x_0.
            shifted = T.concatenate([first.dimshuffle(0, 'x', 1), teacher[:, :-1]], axis=1)
            sequences = [shifted.dimshuffle(1, 0, 2)]                   # (T, batch, dim)

        def scan_step(*args):
            position = 0
            if teacher is not None:
                x_tm1 = args[0]                                         # (batch, dim)
                position = 1
            x_prev = args[position]                                     # (batch, dim)
            flat = args[position + 1:position + 1 + n_flat]
            constant_values = args[position + 1 + n_flat:position + 1 + n_flat + len(names)]
            if teacher is None:
                x_tm1 = x_prev
            x_t, _, states_t, extras = self.step(
                x_tm1, unflatten_states(list(flat), self.cells),
                collections.OrderedDict(zip(names, constant_values)))
            return [x_t] + flatten_states(states_t) + list(extras)

        results, _ = theano.scan(
            scan_step,
            sequences=sequences,
            outputs_info=[first] + flatten_states(states) + [None] * n_extras,
            non_sequences=list(constants.values()) + self.trainable_weights,
            # Teacher-forced, as many steps as the targets (a trimmed batch's
            # may be fewer than output_length).
            n_steps=None if teacher is not None else self.output_length,
            truncate_gradient=self.truncate_gradient,
            strict=True,
            name='%s_scan' % self.name)
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        outputs = results[0].dimshuffle(1, 0, 2)                         # (batch, T, dim)
        finals = unflatten_states([r[-1] for r in results[1:1 + n_flat]], self.cells)
        extras = [r.dimshuffle(1, 0, 2) for r in results[1 + n_flat:]]   # (batch, T, ...)
        return outputs, finals, extras

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
        outputs, finals, extras = results
        flat = [outputs] + flatten_states(finals) + list(extras)
        # DeepCopyOp: a copy the optimizer keeps (it removes tensor_copy).
        copies = {w: deep_copy_op(w) for w in self.weights}
        flat = theano.clone(flat, replace=copies)
        flat = [theano.gradient.disconnected_grad(v) for v in flat]
        n_flat = len(flatten_states(finals))
        return (flat[0], unflatten_states(flat[1:1 + n_flat], self.cells),
                flat[1 + n_flat:])

    def call(self, inputs, mask=None):
        parts = self.split_inputs(inputs, mask)
        outputs, finals, extras = self.run(parts)
        if self.teacher_force:
            if not isinstance(K.learning_phase(), int):
                outputs, finals, extras = self._lazy_in_training((outputs, finals, extras))
            forced, forced_finals, forced_extras = self.run(parts, teacher=parts.teacher)
            outputs = K.in_train_phase(forced, outputs)
            finals = [[K.in_train_phase(f, g) for f, g in zip(fs, gs)]
                      for fs, gs in zip(forced_finals, finals)]
            extras = [K.in_train_phase(f, g) for f, g in zip(forced_extras, extras)]
        if self.teacher_force or self.dropout:
            outputs._uses_learning_phase = True
        self.last_attention = extras[0] if extras else None
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
    al. 2015); see the module doc for the equations.

    Inputs: `[first input, memory, ...]`, the memory (batch, input_length, m)
    being the encoder's outputs; its mask (from `Embedding(mask_zero=True)`
    through the encoder) keeps padded steps out of the attention.

    After a call, `last_attention` holds the attention weights,
    (batch, output_length, input_length).
    """

    attends = True

    def build_attention(self, memory_shape):
        if memory_shape is None or len(memory_shape) != 3:
            raise ValueError('%s expects a memory of shape (batch, input_length, dim), got %s'
                             % (self.name, memory_shape))
        memory_dim = memory_shape[-1]
        init = self.cells[0].init
        self.attention_memory_kernel = self.add_weight(
            shape=(memory_dim, self.hidden_dim), initializer=init, name='attention_memory_kernel')
        self.attention_query_kernel = self.add_weight(
            shape=(self.hidden_dim, self.hidden_dim), initializer=init,
            name='attention_query_kernel')
        self.attention_vector = self.add_weight(
            shape=(self.hidden_dim,), initializer='glorot_uniform', name='attention_vector')
        self.context_kernel = self.cells[0].build_input_kernel(self, memory_dim, 'context_kernel')
        self.context_readout_kernel = self.add_weight(
            shape=(memory_dim, self.output_dim), initializer=init, name='context_readout_kernel')

    def constants(self, parts):
        constants = super(AttentionDecoder, self).constants(parts)
        memory = parts.memory                                           # (batch, L, m)
        constants['memory'] = memory
        # H U_a does not change over the steps: once per batch.
        constants['memory_projection'] = T.dot(memory, self.attention_memory_kernel)  # (batch, L, u)
        if parts.memory_mask is not None:
            constants['memory_mask'] = T.cast(parts.memory_mask, K.floatx())   # (batch, L)
        else:
            constants['memory_mask'] = T.ones(memory.shape[:2], dtype=K.floatx())
        return constants

    def attention(self, query, constants):
        """alpha (batch, L) and context (batch, m) for a query (batch, u)."""
        energy = T.tanh(constants['memory_projection'] +
                        T.dot(query, self.attention_query_kernel).dimshuffle(0, 'x', 1))
        energy = T.dot(energy, self.attention_vector)                 # (batch, L)
        alpha = _masked_softmax(energy, constants['memory_mask'], axis=1)  # (batch, L)
        context = (alpha.dimshuffle(0, 1, 'x') * constants['memory']).sum(axis=1)  # (batch, m)
        return alpha, context

    def bottom_extra(self, states_tm1, constants):
        query = states_tm1[-1][0]                                      # top h_{t-1}
        if 'rows_per_source' in constants:
            return self._grouped_bottom_extra(query, constants)
        alpha, context = self.attention(query, constants)
        extra = T.dot(context, self.context_kernel) + constants.get('peek', 0.0)
        readout_extra = T.dot(context, self.context_readout_kernel)
        return extra, readout_extra, [alpha]

    # -- step-by-step decoding (seq2seq.inference) --------------------------------
    # Search runs k hypotheses per source (a beam). These constants stay one
    # row per source, (sources, L, ...), and the step reads them for its
    # (sources * k) rows by broadcasting, never copying a memory k times.
    grouped_constants = ('memory', 'memory_projection', 'memory_mask')

    def trim_padding(self, constants):
        """The per-batch constants (numpy arrays by name) without the last
        input steps that are masked in every source of the batch. A masked
        step gets an attention weight of exactly 0 and adds exactly 0 to the
        context, so the steps' results are the same; the step then does not
        spend its time on padding."""
        mask = constants['memory_mask']                                # (batch, L)
        used = np.flatnonzero(mask.any(axis=0))
        length = int(used[-1]) + 1 if used.size else 1
        if length == mask.shape[1]:
            return constants
        trimmed = dict(constants)
        for name in self.grouped_constants:
            if name in trimmed:
                trimmed[name] = np.ascontiguousarray(trimmed[name][:, :length])
        return trimmed

    def _grouped_bottom_extra(self, query, constants):
        """`bottom_extra` for rows grouped k per source: query (sources * k, u),
        the grouped constants (sources, L, ...), k = constants['rows_per_source'].
        The maths of `attention`, broadcast over the k rows of a source."""
        k = constants['rows_per_source']
        projection = constants['memory_projection']                   # (S, L, u)
        memory = constants['memory']                                   # (S, L, m)
        sources, units = projection.shape[0], projection.shape[2]
        queries = T.dot(query, self.attention_query_kernel).reshape((sources, k, units))
        energy = T.tanh(projection.dimshuffle(0, 'x', 1, 2)
                        + queries.dimshuffle(0, 1, 'x', 2))           # (S, k, L, u)
        energy = T.dot(energy, self.attention_vector)                 # (S, k, L)
        mask = constants['memory_mask'].dimshuffle(0, 'x', 1)          # (S, 1, L)
        alpha = _masked_softmax(energy, mask, axis=2)                 # (S, k, L)
        context = (alpha.dimshuffle(0, 1, 2, 'x')
                   * memory.dimshuffle(0, 'x', 1, 2)).sum(axis=2)     # (S, k, m)
        rows = sources * k
        context = context.reshape((rows, memory.shape[2]))            # (S * k, m)
        extra = T.dot(context, self.context_kernel) + constants.get('peek', 0.0)
        readout_extra = T.dot(context, self.context_readout_kernel)
        return extra, readout_extra, [alpha.reshape((rows, alpha.shape[2]))]

    # -- the fused loop (seq2seq.ops.fused_attention) -------------------------------
    def _fused_unsupported_reason(self, teacher, dtype=None):
        from .ops import fused_attention
        return fused_attention.unsupported_reason(self, teacher, dtype)

    def _fused_applies(self, teacher):
        return (self.implementation != 'scan'
                and self._fused_unsupported_reason(teacher) is None)

    def run(self, parts, teacher=None):
        """As `RecurrentDecoder.run`; teacher-forced training of one LSTM cell
        runs `seq2seq.ops.fused_attention` unless implementation='scan'."""
        from .recurrent import _use_fused
        reason = self._fused_unsupported_reason(teacher, parts.first.dtype)
        if not _use_fused(self.implementation, reason):
            return self._scan(parts.first, self.initial_state_list(parts),
                              self.constants(parts), teacher)
        return self._run_fused(parts, teacher)

    def _run_fused(self, parts, teacher):
        from .ops import fused_attention
        cell = self.cells[0]
        h0, c0 = self.initial_state_list(parts)[0]
        constants = self.constants(parts)
        # Step t reads the target of step t-1, step 0 reads x_0: all known, so
        # their projection x W + b is one GEMM over every step.
        shifted = T.concatenate([parts.first.dimshuffle(0, 'x', 1), teacher[:, :-1]],
                                axis=1)                                  # (batch, T, dim)
        if 'dropout_0' in constants:
            # The scan's step multiplies the cell's input x_{t-1} (not the
            # context) by the sequence's mask, the same at every step: here
            # once for all steps, before the projection.
            shifted = shifted * constants['dropout_0'].dimshuffle(0, 'x', 1)
        projected = cell.project_inputs(shifted.dimshuffle(1, 0, 2))    # (T, batch, 4u)
        memory = parts.memory                                            # (batch, L, m)
        projection = constants['memory_projection']                      # (batch, L, a)
        mask = None
        if parts.memory_mask is not None:
            mask = T.cast(T.gt(parts.memory_mask, 0), 'int8')            # (batch, L)
        h_seq, c_seq, context_seq, alpha_seq = fused_attention.attention_sequence(
            projected, h0, c0, cell.recurrent_kernel, self.context_kernel, memory, projection,
            self.attention_query_kernel, self.attention_vector, mask,
            inner_activation=fused_attention.inner_activation_name(cell.inner_activation))
        # The readout over every step at once, batch-major rows so that the
        # result reshapes to (batch, T, dim) without a copy.
        batch, steps = h_seq.shape[1], h_seq.shape[0]
        h_rows = T.reshape(h_seq.dimshuffle(1, 0, 2), (batch * steps, h_seq.shape[2]))
        context_rows = T.reshape(context_seq.dimshuffle(1, 0, 2),
                                 (batch * steps, context_seq.shape[2]))
        logits = (T.dot(h_rows, self.readout_kernel)
                  + T.dot(context_rows, self.context_readout_kernel)
                  + self.readout_bias)                                    # (batch * T, dim)
        if self.readout_activation is activations.get('softmax'):
            # A 2-d Softmax of x + b: seq2seq.losses.sparse_softmax_crossentropy
            # finds its logits and computes the loss with the fused Op.
            outputs = T.nnet.softmax(logits)
        else:
            outputs = self.readout_activation(logits)
        outputs = T.reshape(outputs, (batch, steps, self.output_dim))    # (batch, T, dim)
        finals = [[h_seq[-1], c_seq[-1]]]
        return outputs, finals, [alpha_seq.dimshuffle(1, 0, 2)]         # alpha (batch, T, L)


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
        check_positive_int('dim', dim)
        check_positive_int('hidden_dim', hidden_dim)
        check_positive_int('output_length', output_length)
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
