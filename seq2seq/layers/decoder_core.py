"""One decoder: the maths every decoder layer of the package runs.

A `Decoder` is a specification (a stack of cells, optional peek, optional
attention, a readout, dropout, and optionally cells above the feedback
loop), its weights (created on the Keras layer that owns it, in a fixed
order) and one step function. With x_0 the first input (batch, output_dim):

    input_t = x_{t-1}      free running: the previous output
            = y*_{t-1}     teacher forcing (training only): the previous target
    h^1_t = cell_1((input_t * m_1) W_1 + b_1 [+ x_0 V] [+ c_t V_c], s^1_{t-1})
    h^k_t = cell_k((h^{k-1}_t * m_k) W_k + b_k, s^k_{t-1})       k = 2 .. depth
    x_t = act(h^depth_t W_y + b_y [+ c_t C_y])                    fed back
    o_t = upper_n( ... upper_1(x_t))                             the output

with m_k the dropout masks (the same at every step of a sequence), x_0 V the
peek (Cho et al. 2014) and, with attention over a memory H (batch, L, m)
(Bahdanau et al. 2015), queried by the top cell's h^depth_{t-1}:

    e_tj = v_a . tanh(H_j U_a + h^depth_{t-1} W_a)
    alpha_t = softmax_j(e_tj)        over the unmasked steps j only
    c_t = sum_j alpha_tj H_j

The upper cells (the `Seq2seq` layer's decoder depth) read the fed-back
output and are not part of the loop.

`Decoder.step` is the one step function (Nematus' `one_step=True`): the
training scan (`Decoder.run`), `predict` and the search's compiled step
(`seq2seq.search.model_search`) all call it. `Decoder.run` also picks a
fused kernel (`seq2seq.ops`) where one applies, and `Decoder.fused_reason`
is the one place that says whether one applies and why not. The kernels
receive plain specifications (`kernel_spec`, activation names, the weight
tensors), never the layer.
"""
from __future__ import absolute_import

import collections

import theano
import theano.tensor as T
from keras import activations
from keras import backend as K

from ..ops import fused_attention, fused_decode, fused_lstm
from ..ops.specs import DecoderSpec
from .cells import activation_name
from .recurrent import (DecodeStep, encoder_fused_reason, flatten_states,
                        fused_cell_sequence, fused_feedback_loop, run_encoder,
                        unflatten_states, use_fused)

# What the decoder is run for, as `fused_reason` distinguishes it.
TEACHER_FORCED, FREE_RUNNING, SEARCH_STEP = 'teacher-forced', 'free-running', 'search step'


def masked_softmax(energy, mask, axis):
    """softmax of `energy` along `axis` over the steps where `mask` > 0.

    The max is taken over the unmasked steps only, so exp() cannot overflow,
    and masked steps get exactly zero. (Its numpy twin, for the fused Ops and
    the tests, is `seq2seq.ops.numpy_reference.masked_softmax`.)
    """
    masked_energy = T.switch(mask > 0, energy, -1e9)
    energy = masked_energy - masked_energy.max(axis=axis, keepdims=True)
    weights = T.exp(energy) * mask
    return weights / T.maximum(weights.sum(axis=axis, keepdims=True), 1e-12)


class Decoder(object):
    """A decoder's specification, weights and step (see the module doc).

    # Arguments
        cells: the cells inside the feedback loop, bottom first (not built).
        output_dim: size of x_0 and of every fed-back output x_t.
        peek: the bottom cell also reads x_0 at every step.
        attends: attention over a memory (given to `start`).
        readout_activation: activation of the readout ('linear', 'softmax').
        dropout: fraction of each loop cell's input units dropped in
            training, the same units at every step of a sequence.
        upper_cells: cells above the loop, each as wide as `output_dim`.
        cell_prefix: weight name prefix of cell k ('decoder_%d_', or '' for
            one cell named as a plain LSTM's weights).
        peek_name: the weight name of the peek kernel V.
    """

    def __init__(self, cells, output_dim, peek=False, attends=False,
                 readout_activation='linear', dropout=0.0, upper_cells=(),
                 cell_prefix='decoder_%d_', peek_name='peek_kernel'):
        self.cells = list(cells)
        self.upper_cells = list(upper_cells)
        self.output_dim = output_dim
        self.peek = peek
        self.attends = attends
        self.readout_activation = activations.get(readout_activation)
        self.dropout = float(dropout)
        self.cell_prefix = cell_prefix
        self.peek_name = peek_name

    @property
    def depth(self):
        return len(self.cells)

    @property
    def step_cells(self):
        """Every cell whose states `step` carries: the loop's, then the upper ones."""
        return self.cells + self.upper_cells

    def _prefix(self, index):
        return self.cell_prefix % index if '%' in self.cell_prefix else self.cell_prefix

    # -- weights ----------------------------------------------------------------------
    def build(self, layer, memory_dim=None):
        """Create the weights on `layer`, in the order saved files hold them:
        the loop's cells, the peek kernel, the readout, the attention, the
        upper cells."""
        width = self.output_dim
        for i, cell in enumerate(self.cells):
            cell.build(layer, width, self._prefix(i))
            width = cell.units
        bottom, top_units = self.cells[0], self.cells[-1].units
        self.peek_kernel = None
        if self.peek:
            self.peek_kernel = bottom.build_input_kernel(layer, self.output_dim, self.peek_name)
        self.readout_kernel = layer.add_weight(shape=(top_units, self.output_dim),
                                               initializer=bottom.init, name='readout_kernel')
        self.readout_bias = layer.add_weight(shape=(self.output_dim,), initializer='zeros',
                                             name='readout_bias')
        if self.attends:
            init = bottom.init
            self.attention_memory_kernel = layer.add_weight(
                shape=(memory_dim, top_units), initializer=init, name='attention_memory_kernel')
            self.attention_query_kernel = layer.add_weight(
                shape=(top_units, top_units), initializer=init, name='attention_query_kernel')
            self.attention_vector = layer.add_weight(
                shape=(top_units,), initializer='glorot_uniform', name='attention_vector')
            self.context_kernel = bottom.build_input_kernel(layer, memory_dim, 'context_kernel')
            self.context_readout_kernel = layer.add_weight(
                shape=(memory_dim, self.output_dim), initializer=init,
                name='context_readout_kernel')
        for j, cell in enumerate(self.upper_cells):
            cell.build(layer, self.output_dim, self._prefix(len(self.cells) + j))

    # -- the step ---------------------------------------------------------------------
    def start(self, first, memory=None, memory_mask=None):
        """The tensors every step reads, computed once per batch: an
        OrderedDict name -> tensor, each with the batch first."""
        constants = collections.OrderedDict()
        if self.peek:
            constants['peek'] = T.dot(first, self.peek_kernel)          # (batch, G*u)
        if self.dropout:
            width = self.output_dim
            for i, cell in enumerate(self.cells):
                ones = T.ones((first.shape[0], width), dtype=K.floatx())
                constants['dropout_%d' % i] = K.in_train_phase(
                    K.dropout(ones, self.dropout), ones)                 # (batch, width)
                width = cell.units
        if self.attends:
            constants['memory'] = memory                                 # (batch, L, m)
            # H U_a does not change over the steps: once per batch.
            constants['memory_projection'] = T.dot(memory, self.attention_memory_kernel)
            if memory_mask is not None:
                constants['memory_mask'] = T.cast(memory_mask, K.floatx())   # (batch, L)
            else:
                constants['memory_mask'] = T.ones(memory.shape[:2], dtype=K.floatx())
        return constants

    # Search runs k hypotheses per source (a beam). These constants may stay
    # one row per source, (sources, L, ...), with constants['rows_per_source']
    # = k (a scalar tensor): `attend` then reads them for the (sources * k)
    # rows by broadcasting, never copying a memory k times.
    grouped_constants = ('memory', 'memory_projection', 'memory_mask')

    def attend(self, query, constants):
        """alpha (rows, L) and context (rows, m) for a query (rows, a); the
        rows come k = constants['rows_per_source'] per source of the memory
        (a beam), or one per source (training, predict, greedy search)."""
        k = constants.get('rows_per_source')
        projection = constants['memory_projection']                    # (S, L, a)
        memory = constants['memory']                                    # (S, L, m)
        queries = T.dot(query, self.attention_query_kernel)            # (rows, a)
        if k is None:
            # One row per source: the group axis is a broadcast one, so the
            # graph holds no reshape (its shape arithmetic would be in-place
            # work that the training step waits on the free-running loop for).
            queries = queries.dimshuffle(0, 'x', 1)                     # (S, 1, a)
        else:
            queries = queries.reshape((projection.shape[0], k, projection.shape[2]))  # (S, k, a)
        energy = T.tanh(projection.dimshuffle(0, 'x', 1, 2)
                        + queries.dimshuffle(0, 1, 'x', 2))            # (S, k, L, a)
        energy = T.dot(energy, self.attention_vector)                  # (S, k, L)
        mask = constants['memory_mask'].dimshuffle(0, 'x', 1)           # (S, 1, L)
        alpha = masked_softmax(energy, mask, axis=2)                   # (S, k, L)
        context = (alpha.dimshuffle(0, 1, 2, 'x')
                   * memory.dimshuffle(0, 'x', 1, 2)).sum(axis=2)      # (S, k, m)
        if k is None:
            return alpha[:, 0], context[:, 0]                           # (S, L), (S, m)
        rows = projection.shape[0] * k
        return (alpha.reshape((rows, alpha.shape[2])),                  # (rows, L)
                context.reshape((rows, memory.shape[2])))               # (rows, m)

    def step(self, x_tm1, states_tm1, constants, with_upper=True):
        """One step.

        # Arguments
            x_tm1: (batch, output_dim), the input of this step.
            states_tm1: per cell of `step_cells` (of `cells` without
                `with_upper`), a list of (batch, size).
            constants: the OrderedDict of `start`.
            with_upper: also step the upper cells (search); `run` runs them
                over the whole sequence instead.

        # Returns
            a `DecodeStep`: the fed-back x_t, the output o_t, the logits
            (the readout before its activation; o_t with upper cells), the
            new states, and the attention weights alpha_t (or None).
        """
        bottom_extra = constants.get('peek')
        readout_extra = alpha = None
        if self.attends:
            alpha, context = self.attend(states_tm1[self.depth - 1][0], constants)
            attended = T.dot(context, self.context_kernel)                  # (batch, G*u)
            bottom_extra = attended if bottom_extra is None else attended + bottom_extra
            readout_extra = T.dot(context, self.context_readout_kernel)     # (batch, dim)
        layer_input = x_tm1
        states_t = []
        for i, (cell, cell_states) in enumerate(zip(self.cells, states_tm1)):
            mask = constants.get('dropout_%d' % i)
            if mask is not None:
                layer_input = layer_input * mask                            # (batch, width)
            projected = cell.project_inputs(layer_input)                    # (batch, G*u)
            if i == 0 and bottom_extra is not None:
                projected = projected + bottom_extra
            layer_input, new_states = cell.step(projected, cell_states)     # (batch, u)
            states_t.append(new_states)
        logits = T.dot(layer_input, self.readout_kernel) + self.readout_bias  # (batch, dim)
        if readout_extra is not None:
            logits = logits + readout_extra
        x_t = self.readout_activation(logits)                               # (batch, dim)
        output = x_t
        if with_upper and self.upper_cells:
            for cell, cell_states in zip(self.upper_cells, states_tm1[self.depth:]):
                output, new_states = cell.step(cell.project_inputs(output), cell_states)
                states_t.append(new_states)                                 # (batch, dim)
            logits = output
        return DecodeStep(feedback=x_t, output=output, logits=logits, states=states_t,
                          attention=alpha)

    # -- the fused kernels ----------------------------------------------------------
    def kernel_spec(self):
        """The decoder as the fused kernels read it: plain names and numbers."""
        return DecoderSpec(
            cells=[cell.kernel_spec() for cell in self.cells], peek=self.peek,
            attends=self.attends, dropout=self.dropout,
            readout_activation=activation_name(self.readout_activation),
            upper_cells=[cell.kernel_spec() for cell in self.upper_cells])

    def fused_reason(self, purpose, dtype=None, truncate_gradient=-1, head=()):
        """Why this decoder cannot run fused for `purpose` (TEACHER_FORCED,
        FREE_RUNNING or SEARCH_STEP), or None when it can. `head`: the
        names of the layers after the decoder in a model (search)."""
        spec = self.kernel_spec()
        if purpose == SEARCH_STEP:
            return fused_decode.unsupported_reason(spec, head, dtype)
        if self.attends:
            return fused_attention.unsupported_reason(
                spec, purpose == TEACHER_FORCED, truncate_gradient, dtype)
        if purpose == FREE_RUNNING and self._free_running_in_attention_op():
            return fused_attention.unsupported_reason(spec, False, truncate_gradient, dtype)
        if purpose == TEACHER_FORCED:
            # Each cell runs over the whole sequence as an encoder's does.
            for cell in spec.cells:
                reason = encoder_fused_reason(cell, truncate_gradient, dtype)
                if reason:
                    return 'the fused teacher-forced decoder runs its cells as encoders: ' + reason
            return None
        return fused_lstm.feedback_unsupported_reason(spec, truncate_gradient, dtype)

    # -- the loop -------------------------------------------------------------------------
    def run(self, first, states, constants, n_steps, teacher=None, implementation='auto',
            truncate_gradient=-1, name='decoder_scan'):
        """The whole sequence: (outputs (batch, T, dim), final states per cell
        of `step_cells`, attention weights (batch, T, L) or None).

        # Arguments
            first: x_0 (batch, output_dim).
            states: per cell of `step_cells`, a list of (batch, size).
            constants: from `start`.
            n_steps: the number of steps of a free-running decoder.
            teacher: the targets (batch, T, output_dim) of teacher forcing,
                or None; T steps then (a trimmed batch's T may be fewer than
                `n_steps`).
            implementation: 'auto', 'scan' or 'fused' (`seq2seq.layers.recurrent`).
        """
        loop_states = states[:self.depth]
        purpose = FREE_RUNNING if teacher is None else TEACHER_FORCED
        reason = self.fused_reason(purpose, first.dtype, truncate_gradient)
        if not use_fused(implementation, reason):
            outputs, finals, alpha = self._scan(first, loop_states, constants, n_steps, teacher,
                                                truncate_gradient, name)
        elif self.attends or (teacher is None and self._free_running_in_attention_op()):
            outputs, finals, alpha = self._fused_attention(first, loop_states, constants,
                                                           teacher, n_steps)
        elif teacher is not None:
            outputs, finals = self._fused_teacher_forced(first, loop_states, constants, teacher)
            alpha = None
        else:
            outputs, final = fused_feedback_loop(
                self.cells[0], (self.readout_kernel, self.readout_bias), first, loop_states[0],
                n_steps, constants.get('peek'))
            finals, alpha = [final], None
        for cell, cell_states in zip(self.upper_cells, states[self.depth:]):
            outputs, cell_finals = run_encoder(
                cell, outputs, list(cell_states), truncate_gradient=truncate_gradient,
                implementation=implementation)                           # (batch, T, dim)
            finals.append(cell_finals)
        return outputs, finals, alpha

    def _scan(self, first, states, constants, n_steps, teacher, truncate_gradient, name):
        names = list(constants)
        n_flat = len(flatten_states(states))
        sequences = []
        if teacher is not None:
            # Step t reads the target of step t-1; step 0 reads x_0.
            shifted = T.concatenate([first.dimshuffle(0, 'x', 1), teacher[:, :-1]], axis=1)
            sequences = [shifted.dimshuffle(1, 0, 2)]                   # (T, batch, dim)

        def scan_step(*args):
            position = 1 if teacher is not None else 0
            x_prev = args[position]                                     # (batch, dim)
            x_tm1 = args[0] if teacher is not None else x_prev          # (batch, dim)
            flat = args[position + 1:position + 1 + n_flat]
            constant_values = args[position + 1 + n_flat:position + 1 + n_flat + len(names)]
            step = self.step(x_tm1, unflatten_states(list(flat), self.cells),
                             collections.OrderedDict(zip(names, constant_values)),
                             with_upper=False)
            extras = [step.attention] if self.attends else []
            return [step.feedback] + flatten_states(step.states) + extras

        weights = [w for cell in self.cells for w in cell.weights] + self.loop_weights()
        results, _ = theano.scan(
            scan_step,
            sequences=sequences,
            outputs_info=[first] + flatten_states(states) + [None] * int(self.attends),
            non_sequences=list(constants.values()) + weights,
            n_steps=None if teacher is not None else n_steps,
            truncate_gradient=truncate_gradient,
            strict=True,
            name=name)
        results = list(results) if isinstance(results, (list, tuple)) else [results]
        outputs = results[0].dimshuffle(1, 0, 2)                         # (batch, T, dim)
        finals = unflatten_states([r[-1] for r in results[1:1 + n_flat]], self.cells)
        alpha = results[1 + n_flat].dimshuffle(1, 0, 2) if self.attends else None  # (batch, T, L)
        return outputs, finals, alpha

    def loop_weights(self):
        """The weights the loop reads besides its cells'."""
        weights = [self.readout_kernel, self.readout_bias]
        if self.peek:
            weights.append(self.peek_kernel)
        if self.attends:
            weights += [self.attention_memory_kernel, self.attention_query_kernel,
                        self.attention_vector, self.context_kernel,
                        self.context_readout_kernel]
        return weights

    def _free_running_in_attention_op(self):
        """Whether a free-running loop without attention runs in the
        attention Op, over an empty memory: all but one LSTM cell, which
        `fused_feedback_loop` runs as one LSTMForward."""
        return self.depth > 1 or self.cells[0].kernel_spec().kind != 'lstm'

    def _fused_attention(self, first, states, constants, teacher, n_steps):
        """A stack of LSTM or GRU cells with attention in one Op
        (`seq2seq.ops.fused_attention`), teacher-forced or free running. A
        free-running loop without attention runs in it too
        (`_free_running_in_attention_op`), attending to an empty memory:
        with no memory steps and widths of 0, every attention GEMM has a
        zero dimension and is skipped."""
        cell = self.cells[0]
        constants = (self._attention_inputs(constants) if self.attends
                     else self._empty_attention(first, constants))
        feedback_kernels = None
        if teacher is not None:
            # The inputs of every step are known: their projection x W + b is
            # one GEMM over every step. (The dropout masks the input x_{t-1},
            # not the context.)
            projected = cell.project_inputs(
                self._shifted_teacher(first, teacher, constants))       # (T, batch, G*u)
        else:
            # Free running with a linear readout (fused_reason): x_{t-1} W_1
            # = h^D_{t-1} (W_y W_1) + ctx_{t-1} (C_y W_1) + b_y W_1, so the Op
            # takes the two products as kernels and step t >= 1 the constant
            # b_y W_1 + b_1 as its projected input.
            first_projected = cell.project_inputs(first)                # (batch, G*u)
            later = T.dot(self.readout_bias, cell.kernel) + cell.bias   # (G*u,)
            # Every later row holds `later`: written as an outer product with
            # a column of ones, not T.alloc, so that its gradient is one
            # GEMM over the rows instead of Theano's float64 Sum over two
            # axes (7% of the `attention` benchmark row's time).
            batch = first.shape[0]
            ones = T.ones(((n_steps - 1) * batch, 1), dtype=later.dtype)
            later_rows = T.dot(ones, later.dimshuffle('x', 0))          # ((T-1)*batch, G*u)
            projected = T.concatenate([
                first_projected.dimshuffle('x', 0, 1),
                later_rows.reshape((n_steps - 1, batch, later.shape[0]))])  # (T, batch, G*u)
            feedback_kernels = (T.dot(self.readout_kernel, cell.kernel),         # (u_D, G*u)
                                T.dot(constants['context_readout_kernel'], cell.kernel))  # (m, G*u)
        if 'peek' in constants:
            # x_0 V, the same at every step.
            projected = projected + constants['peek'].dimshuffle('x', 0, 1)
        # The cells above read the cell below inside the loop, through their
        # own dropout masks (None: no dropout).
        upper_cells = [(upper.kernel, upper.bias, constants.get('dropout_%d' % k),
                        list(upper_states), upper.recurrent_kernel)
                       for k, (upper, upper_states) in enumerate(zip(self.cells[1:], states[1:]),
                                                                 1)]
        memory_mask = constants['memory_mask']                           # (batch, L)
        spec = cell.kernel_spec()
        cell_seqs, context_seq, alpha_seq = fused_attention.attention_sequence(
            projected, list(states[0]), cell.recurrent_kernel, constants['context_kernel'],
            constants['memory'], constants['memory_projection'],
            constants['attention_query_kernel'], constants['attention_vector'],
            T.cast(T.gt(memory_mask, 0), 'int8'),
            inner_activation=spec.inner_activation, upper_cells=upper_cells,
            feedback_kernels=feedback_kernels, cell=spec.kind)
        finals = [[seq[-1] for seq in seqs] for seqs in cell_seqs]   # (batch, u) each
        if not self.attends:
            return self._readout_every_step(cell_seqs[-1][0]), finals, None
        outputs = self._readout_every_step(cell_seqs[-1][0], context_seq)  # (batch, T, dim)
        return outputs, finals, alpha_seq.dimshuffle(1, 0, 2)

    def _attention_inputs(self, constants):
        """What the fused Op reads of the attention: the per-batch
        `constants` (the memory, its projection and mask) and the weights."""
        named = collections.OrderedDict(constants)
        named.update(context_kernel=self.context_kernel,
                     attention_query_kernel=self.attention_query_kernel,
                     attention_vector=self.attention_vector,
                     context_readout_kernel=self.context_readout_kernel)
        return named

    def _empty_attention(self, first, constants):
        """What the fused Op reads of an attention over nothing: a memory of
        no steps and no width, zero-sized kernels."""
        dtype, batch = first.dtype, first.shape[0]
        gates = self.cells[0].kernel.shape[1]
        top_units = self.cells[-1].units
        named = collections.OrderedDict(constants)
        named.update(memory=T.zeros((batch, 0, 0), dtype=dtype),
                     memory_projection=T.zeros((batch, 0, 0), dtype=dtype),
                     memory_mask=T.zeros((batch, 0), dtype=dtype),
                     context_kernel=T.zeros((0, gates), dtype=dtype),
                     attention_query_kernel=T.zeros((top_units, 0), dtype=dtype),
                     attention_vector=T.zeros((0,), dtype=dtype),
                     context_readout_kernel=T.zeros((0, self.output_dim), dtype=dtype))
        return named

    def _shifted_teacher(self, first, teacher, constants):
        """The bottom cell's inputs of every step, time-major (T, batch,
        dim): step t reads the target of step t-1, step 0 reads x_0; with
        dropout, times the sequence's mask (the same at every step, as the
        step applies it)."""
        shifted = T.concatenate([first.dimshuffle(0, 'x', 1), teacher[:, :-1]],
                                axis=1)                                  # (batch, T, dim)
        if 'dropout_0' in constants:
            shifted = shifted * constants['dropout_0'].dimshuffle(0, 'x', 1)
        return shifted.dimshuffle(1, 0, 2)                               # (T, batch, dim)

    def _readout_every_step(self, h_seq, context_seq=None):
        """act(h_t W_y + b_y [+ ctx_t C_y]) for every step at once, from
        time-major (T, batch, u) sequences: (batch, T, dim)."""
        # Batch-major rows, so that the result reshapes to (batch, T, dim)
        # without a copy.
        batch, steps = h_seq.shape[1], h_seq.shape[0]
        h_rows = T.reshape(h_seq.dimshuffle(1, 0, 2), (batch * steps, h_seq.shape[2]))
        logits = T.dot(h_rows, self.readout_kernel)                      # (batch * T, dim)
        if context_seq is not None:
            context_rows = T.reshape(context_seq.dimshuffle(1, 0, 2),
                                     (batch * steps, context_seq.shape[2]))
            logits = logits + T.dot(context_rows, self.context_readout_kernel)
        # The bias last: the softmax then reads (x) + b with b a vector, the
        # form Theano fuses with it (with the bias added before the
        # context's GEMM the G2P model trained 8% slower).
        logits = logits + self.readout_bias
        if activation_name(self.readout_activation) == 'softmax':
            # A 2-d Softmax of x + b: seq2seq.layers.losses.sparse_softmax_crossentropy
            # finds its logits and computes the loss with the fused Op.
            outputs = T.nnet.softmax(logits)
        else:
            outputs = self.readout_activation(logits)
        return T.reshape(outputs, (batch, steps, self.output_dim))       # (batch, T, dim)

    def _fused_teacher_forced(self, first, states, constants, teacher):
        """Teacher-forced training of a stack of LSTM or GRU cells without
        attention: once the cell below has run, a cell's inputs at every
        step are known, so each cell is one `LSTMForward` or `GRUForward`
        over the whole sequence (`seq2seq.ops.fused_lstm`, `fused_gru`) and
        its input projection, the peek and the readout one GEMM each over
        every step."""
        layer_input = self._shifted_teacher(first, teacher, constants)  # (T, batch, dim)
        finals = []
        for i, (cell, cell_states) in enumerate(zip(self.cells, states)):
            mask = constants.get('dropout_%d' % i)
            if i > 0 and mask is not None:
                layer_input = layer_input * mask.dimshuffle('x', 0, 1)   # (T, batch, u_{i-1})
            # x W only: the Op adds b at every step and sums its gradient.
            projected = T.dot(layer_input, cell.kernel)                  # (T, batch, G*u)
            if i == 0 and 'peek' in constants:
                # x_0 V, the same at every step.
                projected = projected + constants['peek'].dimshuffle('x', 0, 1)
            layer_input, cell_finals = fused_cell_sequence(
                cell, projected, list(cell_states))                      # (T, batch, u)
            finals.append(cell_finals)
        return self._readout_every_step(layer_input), finals
