"""A fused attention decoder: the whole training loop in one Theano Op.

`seq2seq.layers.decoders.AttentionDecoder` runs as a `theano.scan` loop, the
reference: per step a dozen small GEMMs and elementwise Ops per cell, and a
gradient scan as long again. `AttentionForward` runs the forward loop in C
and `AttentionGrad` back-propagates through it in another, teacher-forced
(the inputs are known up front) or free running with a linear readout. A stack of D
cells (D = `depth`, 1 to MAX_DEPTH), all LSTM or all GRU (`cell`), additive
attention (Bahdanau et al. 2015) queried by the top cell and read by the
bottom one:

    for t in 0 .. time-1:
        q_t = h^D_{t-1} W_a                                  GEMM (batch, a)
        E_tj = tanh(P_j + q_t)                               P = H U_a, (batch, L, a)
        e_tj = E_tj . v
        alpha_t = softmax_j(e_tj) over the unmasked j; 0 where mask_j == 0
        ctx_t = sum_j alpha_tj H_j                           (batch, m)
        x^1_t = projected_t + ctx_t V                        GEMM (batch, G u_1)
        s^1_t = cell(x^1_t, s^1_{t-1}; U_1)
        for k in 2 .. D:
            x^k_t = (h^{k-1}_t * m_k) W_k + b_k                  GEMM (batch, G u_k)
            s^k_t = cell(x^k_t, s^k_{t-1}; U_k)

with G u gates per cell and s its states. An LSTM cell (G = 4, gate order
i, f, c, o; s = (h, c)) adds one GEMM, z = x + h_{t-1} U, and runs the step
of `seq2seq.ops.fused_lstm`; a GRU cell (G = 3, gate order z, r, h,
Keras 2.3.1's reset_after=False; s = h) two, whose second reads the reset
gate, as `seq2seq.ops.fused_gru`:

        (z_z, z_r) = x_zr + h_{t-1} U_zr;   hh = tanh(x_h + (r * h_{t-1}) U_h)
        h_t = z * h_{t-1} + (1 - z) * hh

Outside the loop, each as one GEMM over every step: projected = (x * m_1) W_1
+ b_1 (x: the teacher-forced inputs), the memory projection P = H U_a, and
the readout h^D_t W_y + ctx_t C_y + b_y from the Op's outputs.

Free running (`feedback=True`), the bottom cell reads the previous step's
linear readout x_{t-1} = h^D_{t-1} W_y + ctx_{t-1} C_y + b_y instead of a
target. Its projection folds into two kernels, F = W_y W_1 and G = C_y W_1,
computed once per batch outside the Op:

        x^1_t += h^D_{t-1} F + ctx_{t-1} G                   t >= 1, two GEMMs

with projected_0 = x_0 W_1 + b_1 and projected_t = b_y W_1 + b_1 after it
(`fused_feedback_loop` folds a decoder without attention the same way). m_k are the
decoder's dropout masks, one per sequence and the same at every step, as the
decoder's step (`Decoder.step`) applies them to each cell's input (ones
without dropout); the dropout masks the cells' inputs only, not the context
ctx_t. The attention weights alpha are an output too (`get_attention`).

A sequence whose memory steps are all masked attends to nothing: alpha and
ctx are 0, as in the scan. The softmax's gradient is zero on masked steps.

`inner_activation` hard_sigmoid or sigmoid, tanh elsewhere; float32 and
float64 (float32 uses the LSTM Op's vectorised rational tanh, within 3e-7 of
tanhf; float64 the C library's).

The Ops' inputs and outputs, flat, with D-1 groups for the cells above the
bottom one (`forward_input_names`, `forward_output_names`); the c's are an
LSTM stack's only:

    AttentionForward(inner_activation, depth, feedback, cell)
        in:  projected, h0, [c0], U, V, memory, P, W_a, v, memory_mask,
             then per cell k >= 2: W_k, b_k, m_k, h0_k, [c0_k], U_k;
             with feedback then F, G
        out: h_seq, [c_seq], context_seq, alpha_seq, then per cell k >= 2:
             h_seq_k, [c_seq_k]; then for the gradient only: gates,
             energies, then per cell k >= 2: gates_k
    AttentionGrad(inner_activation, depth, feedback, cell)
        in:  h0, [c0], U, V, memory, W_a, v, memory_mask, the upper cells'
             groups as above (then F, G), every output of AttentionForward,
             then the gradients reaching its visible outputs (h_seq ... )
        out: the gradients of AttentionForward's inputs but the memory mask
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from theano.gof import Apply
from theano.gradient import DisconnectedType, grad_not_implemented

from . import fused_gru, fused_lstm
from .c_helpers import (BlasOp, c_type_settings, check_choice, int8_mask_input,
                        output_grad_or_zeros)
from .c_helpers import DTYPES, check_float_inputs
from .numpy_reference import (attention_weights, gru_step, gru_step_backward, lstm_step,
                              lstm_step_backward)

INNER_ACTIVATIONS = fused_lstm.INNER_ACTIVATIONS

# The deepest stack the Op runs (its C holds every input array at once).
MAX_DEPTH = 8

# The cells a stack is made of (all of one kind), the states each carries,
# its gates per unit, and the Op whose cell maths it runs.
CELLS = ('lstm', 'gru')
CELL_STATES = {'lstm': ('h', 'c'), 'gru': ('h',)}
CELL_GATES = {'lstm': 4, 'gru': 3}
_CELL_OPS = {'lstm': fused_lstm, 'gru': fused_gru}
# A free-running decoder's feedback, folded into two kernels (`feedback=True`).
FEEDBACK_INPUT_NAMES = ('feedback_kernel', 'context_feedback_kernel')


def _initial_state_names(cell):
    return tuple('%s0' % state for state in CELL_STATES[cell])


def upper_input_names(cell='lstm'):
    """The names of the per-cell group of inputs of a cell above the bottom
    one, and their dimensions."""
    names = ('input_kernel', 'bias', 'dropout_mask') + _initial_state_names(cell) + (
        'recurrent_kernel',)
    return names, (2, 1, 2) + (2,) * len(CELL_STATES[cell]) + (2,)


def _bottom_inputs(cell):
    """The names of the bottom cell's and the attention's inputs, and their
    dimensions (the memory mask follows them)."""
    states = _initial_state_names(cell)
    names = ('projected',) + states + ('recurrent_kernel', 'context_kernel', 'memory',
                                       'memory_projection', 'query_kernel', 'attention_vector')
    return names, (3,) + (2,) * len(states) + (2, 2, 3, 3, 2, 1)


def memory_mask_index(cell='lstm'):
    """The position of the memory mask among AttentionForward's inputs."""
    return len(_bottom_inputs(cell)[0])


def forward_input_names(depth, feedback=False, cell='lstm'):
    """The names of AttentionForward's inputs, in order (the memory mask
    after the bottom cell's and the attention's)."""
    return list(_bottom_inputs(cell)[0]) + ['memory_mask'] + [
        '%s_%d' % (name, k) for k in range(2, depth + 1) for name in upper_input_names(cell)[0]
    ] + (list(FEEDBACK_INPUT_NAMES) if feedback else [])


def forward_output_names(depth, cell='lstm'):
    """The names of AttentionForward's outputs: the visible ones, then the
    ones its gradient reads."""
    upper = range(2, depth + 1)
    seqs = ['%s_seq' % state for state in CELL_STATES[cell]]
    visible = seqs + ['context_seq', 'alpha_seq'] + [
        '%s_%d' % (name, k) for k in upper for name in seqs]
    return visible + ['gates', 'energies'] + ['gates_%d' % k for k in upper]


def n_visible_outputs(depth, cell='lstm'):
    return 2 + len(CELL_STATES[cell]) * depth


def state_outputs(outputs, depth, cell='lstm'):
    """AttentionForward's outputs (a list, in its order) -> (per cell, bottom
    first, its state sequences [h_seq(, c_seq)], context_seq, alpha_seq)."""
    n_states = len(CELL_STATES[cell])
    cells = [list(outputs[:n_states])] + [
        list(outputs[2 + n_states * k:2 + n_states * (k + 1)]) for k in range(1, depth)]
    return cells, outputs[n_states], outputs[n_states + 1]


def unsupported_reason(decoder, teacher_forced, truncate_gradient=-1, dtype=None):
    """Why an attention decoder cannot run fused, or None.

    # Arguments
        decoder: its `seq2seq.ops.specs.DecoderSpec`.
        teacher_forced: whether it runs teacher-forced (training).
        truncate_gradient: the layer's truncate_gradient.
        dtype: the dtype of the graph, when known.
    """
    if not teacher_forced and decoder.readout_activation != 'linear':
        return ('the fused attention decoder runs free only with a linear readout (its '
                'feedback folds into two kernels), got readout_activation=%r'
                % decoder.readout_activation)
    if not teacher_forced and decoder.dropout:
        return ('the fused attention decoder runs free only without dropout (a dropout mask '
                'on the fed-back readout does not fold into a kernel), got dropout=%g'
                % decoder.dropout)
    if len(decoder.cells) > MAX_DEPTH:
        return ('the fused attention decoder runs up to %d cells, got depth %d'
                % (MAX_DEPTH, len(decoder.cells)))
    kinds = [cell.kind for cell in decoder.cells]
    if kinds[0] not in CELLS:
        return 'the fused attention decoder runs LSTM or GRU cells, got %s' % kinds[0]
    if len(set(kinds)) > 1:
        return ('the fused attention decoder runs a stack of one kind of cell, got %s'
                % ', '.join(kinds))
    op = _CELL_OPS[kinds[0]]
    for cell in decoder.cells:
        reason = op.unsupported_reason(cell, truncate_gradient, dtype)
        if reason:
            return reason.replace('the fused %s' % kinds[0].upper(),
                                  'the fused attention decoder')
    return None


def attention_sequence(projected, initial_states, recurrent_kernel, context_kernel, memory,
                       memory_projection, query_kernel, attention_vector, memory_mask=None,
                       inner_activation='hard_sigmoid', upper_cells=(), feedback_kernels=None,
                       cell='lstm'):
    """Run the attention decoder over every step with `AttentionForward`.

    # Arguments
        projected: (time, batch, G u), the teacher-forced inputs' x W + b
            (with dropout, (x * m) W + b); G = 4 for LSTM cells, 3 for GRU.
        initial_states: the bottom cell's, [h0, c0] (LSTM) or [h0] (GRU),
            each (batch, u).
        recurrent_kernel: U (u, G u).
        context_kernel: V (m, G u).
        memory: H (batch, L, m).
        memory_projection: H U_a (batch, L, a).
        query_kernel: W_a (u_D, a), read by the top cell's state.
        attention_vector: v (a,).
        memory_mask: optional (batch, L); 0 marks a padded memory step.
        inner_activation: 'hard_sigmoid' or 'sigmoid'.
        upper_cells: per cell above the bottom one, bottom first, the tuple
            (input_kernel W_k (u_{k-1}, G u_k), bias b_k (G u_k,), dropout
            mask m_k (batch, u_{k-1}) or None, initial states (as
            `initial_states`, (batch, u_k) each), recurrent_kernel U_k
            (u_k, G u_k)).
        feedback_kernels: free running, (F (u_D, G u_1), G (m, G u_1)):
            from the second step on, the bottom cell also reads h^D_{t-1} F
            + ctx_{t-1} G, the readout fed back (its bias goes in `projected`).
        cell: 'lstm' or 'gru', the kind of every cell.

    # Returns
        (states, context_seq, alpha_seq): per cell, bottom first, its state
        sequences [h_seq, c_seq] or [h_seq], each (time, batch, u_k);
        (time, batch, m); (time, batch, L).
    """
    cell = check_choice('cell', cell, CELLS)
    memory = T.as_tensor_variable(memory)
    if memory_mask is None:
        memory_mask = T.ones(memory.shape[:2], dtype='int8')
    upper_inputs = []
    for input_kernel, bias, dropout_mask, cell_states, cell_kernel in upper_cells:
        if dropout_mask is None:
            dropout_mask = T.ones((initial_states[0].shape[0], input_kernel.shape[0]),
                                  dtype=projected.dtype)
        upper_inputs += [input_kernel, bias, dropout_mask] + list(cell_states) + [cell_kernel]
    depth = 1 + len(upper_cells)
    feedback = list(feedback_kernels or ())
    outputs = AttentionForward(inner_activation, depth, bool(feedback), cell)(
        projected, *(list(initial_states) + [
            recurrent_kernel, context_kernel, memory, memory_projection, query_kernel,
            attention_vector, memory_mask] + upper_inputs + feedback))
    return state_outputs(outputs, depth, cell)


# -- numpy versions of the maths (perform, and a readable reference) ----------

def _upper_groups(values, depth, cell):
    """The per-cell groups of the cells above the bottom one, from a flat
    list: (W, b, dropout mask, [initial states], U) each."""
    n = len(upper_input_names(cell)[0])
    n_states = len(CELL_STATES[cell])
    groups = [values[k * n:(k + 1) * n] for k in range(depth - 1)]
    return [(g[0], g[1], g[2], list(g[3:3 + n_states]), g[3 + n_states]) for g in groups]


def _cell_forward(cell, x, states, kernel, inner_activation):
    """One step of a cell from the input part x (batch, G u) of its
    pre-activations and its states at t-1: (its states at t, gates)."""
    if cell == 'lstm':
        h, c, gates = lstm_step(x + states[0].dot(kernel), states[1], inner_activation)
        return [h, c], gates
    h, gates = gru_step(x, states[0], kernel, inner_activation)
    return [h], gates


def _cell_backward(cell, gates, states, states_prev, d_states, kernel, inner_activation):
    """The backward of `_cell_forward`: from the step's gates, its states at
    t and t-1 and the gradients reaching the states at t, (dx (batch, G u),
    the gradients of the states at t-1, the kernel's gradient)."""
    h_prev = states_prev[0]
    if cell == 'lstm':
        dz, dc_prev = lstm_step_backward(gates, states[1], states_prev[1], d_states[0],
                                         d_states[1], inner_activation)
        return dz, [dz.dot(kernel.T), dc_prev], h_prev.T.dot(dz)
    dz, dh_prev, reset_h = gru_step_backward(gates, h_prev, kernel, d_states[0],
                                             inner_activation)
    units = h_prev.shape[1]
    d_kernel = np.concatenate([h_prev.T.dot(dz[:, :2 * units]),
                               reset_h.T.dot(dz[:, 2 * units:])], axis=1)   # (u, 3u)
    return dz, [dh_prev], d_kernel


def numpy_forward(inputs, inner_activation, depth=1, feedback=False, cell='lstm'):
    """The forward loop in numpy: AttentionForward's inputs (a list, in its
    order) -> its outputs (a list, in its order). The gates (time, batch,
    G u_k) (LSTM: (z_i, z_f, tanh(z_c), z_o); GRU: (z_z, z_r, hh)) and the
    energies (time, batch, L, a) = tanh(P + q_t) are kept for the backward
    pass."""
    n_states = len(CELL_STATES[cell])
    projected = inputs[0]
    (recurrent_kernel, context_kernel, memory, memory_projection, query_kernel,
     attention_vector, mask) = inputs[1 + n_states:8 + n_states]
    n_upper = len(upper_input_names(cell)[0]) * (depth - 1)
    upper = _upper_groups(inputs[8 + n_states:8 + n_states + n_upper], depth, cell)
    feedback_kernel, context_feedback_kernel = (inputs[8 + n_states + n_upper:] if feedback
                                                else (None,) * 2)
    time, batch, _ = projected.shape
    length, m = memory.shape[1:]
    dtype = projected.dtype
    states = [list(inputs[1:1 + n_states])] + [group[3] for group in upper]
    kernels = [recurrent_kernel] + [group[4] for group in upper]
    seqs = [[np.empty((time,) + s.shape, dtype=dtype) for s in cell_states]
            for cell_states in states]
    gates = [np.empty((time, batch, kernel.shape[1]), dtype=dtype) for kernel in kernels]
    context_seq = np.empty((time, batch, m), dtype=dtype)
    alpha_seq = np.empty((time, batch, length), dtype=dtype)
    energies = np.empty((time, batch) + memory_projection.shape[1:], dtype=dtype)
    for t in range(time):
        query = states[-1][0].dot(query_kernel)                      # (batch, a)
        alpha, energy = attention_weights(memory_projection, query, attention_vector,
                                          mask)                  # (batch, L), (batch, L, a)
        context = np.einsum('bl,blm->bm', alpha, memory)              # (batch, m)
        x = projected[t] + context.dot(context_kernel)               # (batch, G u_1)
        if feedback and t > 0:
            # x_{t-1} W_1 without its bias: h^D_{t-1} F + ctx_{t-1} G
            x = x + states[-1][0].dot(feedback_kernel) + context_seq[t - 1].dot(
                context_feedback_kernel)                              # (batch, G u_1)
        states[0], gates[0][t] = _cell_forward(cell, x, states[0], recurrent_kernel,
                                               inner_activation)     # (batch, u_1)
        for k, (input_kernel, bias, dropout_mask, _, kernel) in enumerate(upper, 1):
            x = (states[k - 1][0] * dropout_mask).dot(input_kernel) + bias  # (batch, G u_k)
            states[k], gates[k][t] = _cell_forward(cell, x, states[k], kernel,
                                                   inner_activation)  # (batch, u_k)
        for cell_seqs, cell_states in zip(seqs, states):
            for seq, state in zip(cell_seqs, cell_states):
                seq[t] = state
        context_seq[t], alpha_seq[t], energies[t] = context, alpha, energy
    upper_seqs = [s for cell_seqs in seqs[1:] for s in cell_seqs]
    return (seqs[0] + [context_seq, alpha_seq] + upper_seqs + [gates[0], energies]
            + gates[1:])


def numpy_backward(inputs, inner_activation, depth=1, feedback=False, cell='lstm'):
    """Back-propagation through the loop in numpy: AttentionGrad's inputs (a
    list, in its order) -> its outputs (the gradients of AttentionForward's
    inputs but the mask; memory's is through the context only: memory
    reaches the projection outside the Op)."""
    n_states = len(CELL_STATES[cell])
    (recurrent_kernel, context_kernel, memory, query_kernel, attention_vector,
     mask) = inputs[n_states:n_states + 6]
    n_upper = len(upper_input_names(cell)[0]) * (depth - 1)
    upper = _upper_groups(inputs[n_states + 6:n_states + 6 + n_upper], depth, cell)
    n_params = n_states + 6 + n_upper + 2 * feedback
    feedback_kernel, context_feedback_kernel = (inputs[n_states + 6 + n_upper:n_params]
                                                if feedback else (None,) * 2)
    n_visible = n_visible_outputs(depth, cell)
    forward = inputs[n_params:n_params + n_visible + 1 + depth]
    output_grads = inputs[n_params + n_visible + 1 + depth:]
    seqs, context_seq, alpha_seq = state_outputs(forward[:n_visible], depth, cell)
    d_seqs, d_context_seq, d_alpha_seq = state_outputs(output_grads, depth, cell)
    gates = [forward[n_visible]] + list(forward[n_visible + 2:])
    energies = forward[n_visible + 1]
    initials = [list(inputs[:n_states])] + [group[3] for group in upper]
    kernels = [recurrent_kernel] + [group[4] for group in upper]

    time = gates[0].shape[0]
    dtype = memory.dtype
    d_gates = [np.zeros_like(g) for g in gates]
    d_kernels = [np.zeros_like(kernel) for kernel in kernels]
    # Per cell, the gradients of its states at t through step t+1 and the
    # cell above (after the loop: of its initial states).
    d_next = [[np.zeros_like(s) for s in cell_states] for cell_states in initials]
    d_inputs = [[np.zeros_like(group[0]), np.zeros(group[1].shape, dtype=dtype),
                 np.zeros_like(group[2])] for group in upper]
    d_context_kernel = np.zeros_like(context_kernel)
    d_memory = np.zeros_like(memory)
    d_projection = np.zeros(energies.shape[1:], dtype=dtype)
    d_query_kernel = np.zeros_like(query_kernel)
    d_vector = np.zeros_like(attention_vector)
    d_feedback_kernels = [np.zeros_like(k) for k in (feedback_kernel, context_feedback_kernel)
                          if k is not None]
    d_context_carry = np.zeros_like(context_seq[0])     # dx^1_{t+1} G^T, free running

    def at(k, t):
        """Cell k's states at step t (its initial ones at t = -1)."""
        return [seq[t] for seq in seqs[k]] if t >= 0 else initials[k]

    def cell_backward(k, t):
        d_states = [d_seq[t] + d for d_seq, d in zip(d_seqs[k], d_next[k])]
        dz, d_next[k], d_kernel = _cell_backward(cell, gates[k][t], at(k, t), at(k, t - 1),
                                                 d_states, kernels[k], inner_activation)
        d_gates[k][t] = dz
        d_kernels[k] += d_kernel
        return dz

    for t in reversed(range(time)):
        # The cells above the bottom one, top first: each passes its input's
        # gradient (through its dropout mask) down to h^{k-1}_t.
        for k in reversed(range(1, depth)):
            input_kernel, _, dropout_mask = upper[k - 1][:3]
            dz = cell_backward(k, t)                                        # (batch, G u_k)
            below = seqs[k - 1][0][t]                                       # (batch, u_{k-1})
            d_inputs[k - 1][0] += (below * dropout_mask).T.dot(dz)
            d_inputs[k - 1][1] += dz.sum(axis=0)
            d_below = dz.dot(input_kernel.T)                                # (batch, u_{k-1})
            d_inputs[k - 1][2] += below * d_below
            d_next[k - 1][0] = d_next[k - 1][0] + dropout_mask * d_below
        dz = cell_backward(0, t)                                            # (batch, G u_1)
        d_context_kernel += context_seq[t].T.dot(dz)
        # The attention: context, softmax, energies; the query read h^D_{t-1}.
        d_context = d_context_seq[t] + dz.dot(context_kernel.T) + d_context_carry  # (batch, m)
        alpha = alpha_seq[t]                                                # (batch, L)
        d_alpha = d_alpha_seq[t] + np.einsum('bm,blm->bl', d_context, memory)
        d_memory += alpha[:, :, None] * d_context[:, None, :]
        d_energy = alpha * (d_alpha - (alpha * d_alpha).sum(axis=1, keepdims=True))
        d_energy = np.where(mask != 0, d_energy, 0)                         # (batch, L)
        energy = energies[t]                                                # (batch, L, a)
        d_vector += np.einsum('bl,bla->a', d_energy, energy)
        d_pre = d_energy[:, :, None] * attention_vector * (1 - energy * energy)
        d_projection += d_pre
        d_query = d_pre.sum(axis=1)                                         # (batch, a)
        d_query_kernel += at(depth - 1, t - 1)[0].T.dot(d_query)
        d_next[depth - 1][0] = d_next[depth - 1][0] + d_query.dot(query_kernel.T)
        if feedback and t > 0:
            # x^1_t read h^D_{t-1} F and ctx_{t-1} G
            d_feedback_kernels[0] += seqs[depth - 1][0][t - 1].T.dot(dz)
            d_feedback_kernels[1] += context_seq[t - 1].T.dot(dz)
            d_next[depth - 1][0] = d_next[depth - 1][0] + dz.dot(feedback_kernel.T)
            d_context_carry = dz.dot(context_feedback_kernel.T)
        else:
            d_context_carry = np.zeros_like(d_context_carry)
    upper_grads = [g for k in range(1, depth)
                   for g in d_inputs[k - 1] + d_next[k] + [d_kernels[k]]]
    return ([d_gates[0]] + d_next[0] + [d_kernels[0], d_context_kernel, d_memory,
                                        d_projection, d_query_kernel, d_vector]
            + upper_grads + d_feedback_kernels)


# -- the C implementation -------------------------------------------------------

# Row-major arrays and the column-major Fortran GEMM: a row-major C = A B is
# computed as C^T = B^T A^T (see seq2seq.ops.fused_lstm). The LSTM Op's C
# (fused_gemm, fused_tanh, the forward and backward row kernels) comes first.
_ATTENTION_C = r"""
#ifndef SEQ2SEQ_FUSED_ATTENTION
#define SEQ2SEQ_FUSED_ATTENTION

/* x . y, with eight partial sums so that GCC vectorises it. */
template <typename T>
static inline T attention_dot(const T* __restrict x, const T* __restrict y, npy_intp n)
{
    T s8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    npy_intp k = 0;
    for (; k + 8 <= n; k += 8)
        for (int r = 0; r < 8; ++r)
            s8[r] += x[k + r] * y[k + r];
    T s = 0;
    for (; k < n; ++k)
        s += x[k] * y[k];
    for (int r = 0; r < 8; ++r)
        s += s8[r];
    return s;
}

/* energy = tanh(p + q), one memory step's (a). */
template <typename T>
static inline void attention_energy(const T* __restrict p, const T* __restrict q,
                                    T* __restrict energy, npy_intp a)
{
    for (npy_intp k = 0; k < a; ++k)
        energy[k] = fused_tanh(p[k] + q[k]);
}

/* y += alpha x */
template <typename T>
static inline void attention_axpy(T alpha, const T* __restrict x, T* __restrict y, npy_intp n)
{
    for (npy_intp k = 0; k < n; ++k)
        y[k] += alpha * x[k];
}

/* One sequence's attention at one step: energies E (L, a), weights
   alpha (L), context ctx (m), from its memory H (L, m), projection P (L, a),
   mask (L) and query q (a). */
template <typename T>
static void attention_row(const T* P, const T* H, const npy_int8* mask, const T* q,
                          const T* v, T* E, T* alpha, T* ctx, npy_intp L, npy_intp a,
                          npy_intp m)
{
    T top = 0;
    int any = 0;
    for (npy_intp j = 0; j < L; ++j) {
        attention_energy(P + j * a, q, E + j * a, a);
        const T e = attention_dot(E + j * a, v, a);
        alpha[j] = e;
        if (mask[j] && (!any || e > top)) {
            top = e;
            any = 1;
        }
    }
    T total = 0;
    for (npy_intp j = 0; j < L; ++j) {
        const T w = mask[j] ? (T)std::exp(alpha[j] - top) : (T)0;
        alpha[j] = w;
        total += w;
    }
    total = total > (T)1e-12 ? total : (T)1e-12;
    memset(ctx, 0, sizeof(T) * m);
    for (npy_intp j = 0; j < L; ++j) {
        alpha[j] = alpha[j] / total;
        if (alpha[j] != (T)0)
            attention_axpy(alpha[j], H + j * m, ctx, m);
    }
}

/* The backward of attention_row for one sequence: from d ctx (m) and
   d alpha (L, from outside), adds to dH (L, m), dP (L, a), dq (a) and
   dv (a, in double). de: scratch (L). A step of zero weight (masked)
   contributes nothing. */
template <typename T>
static void attention_row_backward(const T* H, const T* E, const T* alpha, const T* v,
                                   const T* d_ctx, const T* d_alpha_out, T* dH, T* dP,
                                   T* dq, double* dv, T* de, npy_intp L, npy_intp a,
                                   npy_intp m)
{
    T weighted = 0;
    for (npy_intp j = 0; j < L; ++j) {
        de[j] = alpha[j] != (T)0 ? d_alpha_out[j] + attention_dot(d_ctx, H + j * m, m)
                                 : (T)0;
        weighted += alpha[j] * de[j];
    }
    for (npy_intp j = 0; j < L; ++j) {
        if (alpha[j] == (T)0)
            continue;
        attention_axpy(alpha[j], d_ctx, dH + j * m, m);
        const T d_energy = alpha[j] * (de[j] - weighted);
        const T* Ej = E + j * a;
        T* dPj = dP + j * a;
        for (npy_intp k = 0; k < a; ++k) {
            const T d_pre = d_energy * v[k] * ((T)1 - Ej[k] * Ej[k]);
            dPj[k] += d_pre;
            dq[k] += d_pre;
            dv[k] += (double)(d_energy * Ej[k]);
        }
    }
}

static int attention_check(PyArrayObject* a, const char* name, int nd, const npy_intp* dims)
{
    return fused_check_dims("fused attention", a, name, nd, dims);
}

static void attention_set_dims(npy_intp* dims, npy_intp d0, npy_intp d1, npy_intp d2 = 0,
                               npy_intp d3 = 0)
{
    dims[0] = d0;
    dims[1] = d1;
    dims[2] = d2;
    dims[3] = d3;
}

#define ATTENTION_MAX_DEPTH 8
/* The kinds of cell a stack is made of (all of one kind). */
#define ATTENTION_LSTM 0
#define ATTENTION_GRU 1

/* The states a cell carries (LSTM h, c; GRU h), its gates per unit, and
   the size of the input group of a cell above the bottom one (W, b, m, its
   initial states, U). */
static inline int attention_states(int cell_kind)
{
    return cell_kind == ATTENTION_GRU ? 1 : 2;
}

static inline int attention_gates(int cell_kind)
{
    return cell_kind == ATTENTION_GRU ? 3 : 4;
}

static inline int attention_upper_inputs(int cell_kind)
{
    return 4 + attention_states(cell_kind);
}

/* Where the forward pass's outputs are: state j (0: h, 1: c) of cell k,
   with S states per cell, and cell k's gates (n_visible: the number of
   visible outputs, 2 + S * depth). */
static inline int attention_state_output(int k, int j, int S)
{
    return k ? 2 + S * k + j : j;
}

static inline int attention_gates_output(int k, int n_visible)
{
    return k ? n_visible + 1 + k : n_visible;
}

/* One cell of the stack as the loops read it. Cell 0 (the bottom) reads
   the teacher-forced inputs (projected outside) and the context; cell
   k > 0 reads cell k-1's h_t through W, b and its dropout mask m
   (batch, in). c0 is NULL for a GRU cell. */
template <typename T>
struct AttentionCell {
    npy_intp u, G, in;
    const T *h0, *c0, *U, *W, *b, *m;
};

/* A state of a cell at step t-1 (its initial one at t = 0) and at step t,
   from its sequence (time, batch, u): NULL for a state the cell has not. */
template <typename T>
static inline const T* attention_previous(const T* seq, const T* initial, npy_intp t,
                                          npy_intp step_size)
{
    return !seq ? NULL : t ? seq + (t - 1) * step_size : initial;
}

template <typename T>
static inline T* attention_at(T* seq, npy_intp t, npy_intp step_size)
{
    return seq ? seq + t * step_size : NULL;
}

/* One cell's step, all B rows: z (B, G) holds the input part of its
   pre-activations; h_prev, c_prev are its states at t-1; writes h and c
   (LSTM) and leaves in z the gates the backward pass reads. An LSTM adds
   h_prev U; a GRU's reset gate multiplies h_prev before U_h, so it runs two
   recurrent GEMMs: z_zr += h_prev U_zr, RH = r h_prev ((B, u) scratch),
   z_h += RH U_h. */
template <typename T>
static void attention_cell_forward(int kind, int cell_kind, const AttentionCell<T>& cell,
                                   npy_intp B, const T* h_prev, const T* c_prev, T* z, T* h,
                                   T* c, T* RH)
{
    const npy_intp u = cell.u, G = cell.G;
    const int iB = (int)B, iu = (int)u, iG = (int)G;
    if (cell_kind == ATTENTION_LSTM) {
        if (iu > 0)
            fused_gemm('N', 'N', iG, iB, iu, (T)1, cell.U, iG, h_prev, iu, (T)1, z, iG);
        for (npy_intp b = 0; b < B; ++b)
            fused_forward_row_of<T>(kind, z + b * G, c_prev + b * u, c + b * u, h + b * u, u);
        return;
    }
    if (iu > 0) {
        fused_gemm('N', 'N', 2 * iu, iB, iu, (T)1, cell.U, iG, h_prev, iu, (T)1, z, iG);
        for (npy_intp b = 0; b < B; ++b)
            gru_reset_row_of<T>(kind, z + b * G, h_prev + b * u, RH + b * u, u);
        fused_gemm('N', 'N', iu, iB, iu, (T)1, cell.U + 2 * u, iG, RH, iu, (T)1, z + 2 * u,
                   iG);
    }
    for (npy_intp b = 0; b < B; ++b)
        gru_output_row_of<T>(kind, z + b * G, h_prev + b * u, h + b * u, u);
}

/* The backward of attention_cell_forward, all B rows: from the gradients
   reaching its states at t from outside (dh_out, dc_out) and through later
   steps and the cell above (dh_next, dc_next), dz (B, G), the gradient of
   the input part of its pre-activations; dh_next and dc_next become the
   gradients of its states at t-1 through this step. A GRU writes RH (B, u)
   = r h_{t-1}, U_h's input (for dU_h after the loop); DRH is (B, u)
   scratch. */
template <typename T>
static void attention_cell_backward(int kind, int cell_kind, const AttentionCell<T>& cell,
                                    npy_intp B, const T* Z, const T* h_prev, const T* c,
                                    const T* c_prev, const T* dh_out, const T* dc_out, T* dz,
                                    T* dh_next, T* dc_next, T* RH, T* DRH)
{
    const npy_intp u = cell.u, G = cell.G;
    const int iB = (int)B, iu = (int)u, iG = (int)G;
    if (cell_kind == ATTENTION_LSTM) {
        for (npy_intp b = 0; b < B; ++b)
            fused_backward_row_of<T>(kind, Z + b * G, c + b * u, c_prev + b * u, dh_out + b * u,
                                     dc_out + b * u, dz + b * G, dh_next + b * u,
                                     dc_next + b * u, u);
        /* dL/dh_{t-1} = dz U^T (the rows zeroed dh_next) */
        if (iu > 0 && iG > 0)
            fused_gemm('T', 'N', iu, iB, iG, (T)1, cell.U, iG, dz, iG, (T)1, dh_next, iu);
        return;
    }
    for (npy_intp b = 0; b < B; ++b)
        gru_backward_candidate_row_of<T>(kind, Z + b * G, h_prev + b * u, dh_out + b * u,
                                         dz + b * G, dh_next + b * u, RH + b * u, u);
    if (iu > 0) {
        /* d(r h_{t-1}) = dz_h U_h^T; then dz_r, and dh_{t-1} += dz_zr U_zr^T */
        fused_gemm('T', 'N', iu, iB, iu, (T)1, cell.U + 2 * u, iG, dz + 2 * u, iG, (T)0, DRH,
                   iu);
        for (npy_intp b = 0; b < B; ++b)
            gru_backward_reset_row_of<T>(kind, Z + b * G, h_prev + b * u, DRH + b * u,
                                         dz + b * G, dh_next + b * u, u);
        fused_gemm('T', 'N', iu, iB, 2 * iu, (T)1, cell.U, iG, dz, iG, (T)1, dh_next, iu);
    }
}

/* The sizes of a call: time, batch, the bottom cell's units, memory length
   L, memory width m, attention width a, the top cell's units, the bottom
   cell's gates G (gates per unit times units), and the shape each array of
   the forward and the backward pass has. */
struct AttentionSizes {
    npy_intp time, batch, units, length, m, a, top_units, G;
    /* Four slots each, the ones past an array's dimensions unused. */
    npy_intp gates[4], state[4], kernel[4], ctx_kernel[4], memory[4], projection[4];
    npy_intp query[4], vector[4], mask[4], ctx[4], alpha[4], energy[4];

    AttentionSizes(npy_intp time_, PyArrayObject* h0, PyArrayObject* recurrent_kernel,
                   PyArrayObject* memory_, PyArrayObject* query_kernel, npy_intp top_units_,
                   int n_gates)
        : time(time_), batch(PyArray_DIMS(h0)[0]), units(PyArray_DIMS(recurrent_kernel)[0]),
          length(PyArray_DIMS(memory_)[1]), m(PyArray_DIMS(memory_)[2]),
          a(PyArray_DIMS(query_kernel)[1]), top_units(top_units_), G(n_gates * units)
    {
        attention_set_dims(gates, time, batch, G);
        attention_set_dims(state, batch, units);
        attention_set_dims(kernel, units, G);
        attention_set_dims(ctx_kernel, m, G);
        attention_set_dims(memory, batch, length, m);
        attention_set_dims(projection, batch, length, a);
        attention_set_dims(query, top_units, a);
        attention_set_dims(vector, a, 0);
        attention_set_dims(mask, batch, length);
        attention_set_dims(ctx, time, batch, m);
        attention_set_dims(alpha, time, batch, length);
        attention_set_dims(energy, time, batch, length, a);
    }

    /* 0, or a ValueError when the GEMMs' sizes do not fit a BLAS int. */
    int check_blas_ints(npy_intp widest) const
    {
        if (time * batch > INT_MAX || G > INT_MAX || m > INT_MAX || 4 * widest > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "fused attention: too large for a BLAS int");
            return -1;
        }
        return 0;
    }
};

static int attention_check_depth(int depth)
{
    if (depth < 1 || depth > ATTENTION_MAX_DEPTH) {
        PyErr_Format(PyExc_ValueError, "fused attention: depth %d is not 1 to %d", depth,
                     ATTENTION_MAX_DEPTH);
        return -1;
    }
    return 0;
}

/* Reads and checks the upper cells' groups (W, b, m, h0, [c0,] U; `groups`
   points at cell 1's W) into cells[1 .. depth-1]; cells[0] is filled by
   the caller. The widest cell's units go to *widest. */
template <typename T>
static int attention_upper_cells(AttentionCell<T>* cells, int cell_kind, int depth,
                                 PyArrayObject** groups, npy_intp batch, npy_intp* widest)
{
    const int S = attention_states(cell_kind), n_gates = attention_gates(cell_kind);
    *widest = cells[0].u;
    for (int k = 1; k < depth; ++k) {
        PyArrayObject** g = groups + attention_upper_inputs(cell_kind) * (k - 1);
        PyArrayObject* kernel = g[3 + S];
        AttentionCell<T>& cell = cells[k];
        cell.u = PyArray_DIMS(kernel)[0];
        cell.G = n_gates * cell.u;
        cell.in = cells[k - 1].u;
        npy_intp kernel_dims[2] = {cell.u, cell.G}, input_kernel[2] = {cell.in, cell.G};
        npy_intp bias[1] = {cell.G}, state[2] = {batch, cell.u}, mask[2] = {batch, cell.in};
        if (attention_check(g[0], "an upper cell's input_kernel (units below, gates x units)",
                            2, input_kernel)
                || attention_check(g[1], "an upper cell's bias (gates x units)", 1, bias)
                || attention_check(g[2], "an upper cell's dropout_mask (batch, units below)",
                                   2, mask)
                || attention_check(g[3], "an upper cell's h0 (batch, units)", 2, state)
                || (S == 2 && attention_check(g[4], "an upper cell's c0 (batch, units)", 2,
                                              state))
                || attention_check(kernel,
                                   "an upper cell's recurrent_kernel (units, gates x units)",
                                   2, kernel_dims))
            return -1;
        cell.W = (const T*)PyArray_DATA(g[0]);
        cell.b = (const T*)PyArray_DATA(g[1]);
        cell.m = (const T*)PyArray_DATA(g[2]);
        cell.h0 = (const T*)PyArray_DATA(g[3]);
        cell.c0 = S == 2 ? (const T*)PyArray_DATA(g[4]) : NULL;
        cell.U = (const T*)PyArray_DATA(kernel);
        *widest = cell.u > *widest ? cell.u : *widest;
    }
    return 0;
}

/* The bottom cell as the loops read it (its input is projected outside;
   c0 NULL for a GRU). */
template <typename T>
static void attention_bottom_cell(AttentionCell<T>* cells, int cell_kind, PyArrayObject* h0,
                                  PyArrayObject* c0, PyArrayObject* kernel)
{
    cells[0].u = PyArray_DIMS(kernel)[0];
    cells[0].G = attention_gates(cell_kind) * cells[0].u;
    cells[0].in = 0;
    cells[0].h0 = (const T*)PyArray_DATA(h0);
    cells[0].c0 = c0 ? (const T*)PyArray_DATA(c0) : NULL;
    cells[0].U = (const T*)PyArray_DATA(kernel);
    cells[0].W = cells[0].b = cells[0].m = NULL;
}

/* The checks of the inputs the forward and the backward pass share. */
static int attention_check_shared(const AttentionSizes& s, PyArrayObject* h0, PyArrayObject* c0,
                                  PyArrayObject* kernel, PyArrayObject* ctx_kernel,
                                  PyArrayObject* memory, PyArrayObject* query_kernel,
                                  PyArrayObject* vector, PyArrayObject* mask, npy_intp widest)
{
    return attention_check(h0, "h0 (batch, units)", 2, s.state)
        || (c0 && attention_check(c0, "c0 (batch, units)", 2, s.state))
        || attention_check(kernel, "recurrent_kernel (units, gates x units)", 2, s.kernel)
        || attention_check(ctx_kernel, "context_kernel (memory dim, gates x units)", 2,
                           s.ctx_kernel)
        || attention_check(memory, "memory (batch, length, dim)", 3, s.memory)
        || attention_check(query_kernel, "query_kernel (top units, attention dim)", 2, s.query)
        || attention_check(vector, "attention_vector (attention dim)", 1, s.vector)
        || attention_check(mask, "memory_mask (batch, length)", 2, s.mask)
        || s.check_blas_ints(widest);
}

/* The feedback kernels of a free-running decoder, checked: F (top units,
   gates x units) and G (memory dim, gates x units), or NULLs without
   feedback. */
template <typename T>
static int attention_feedback_kernels(int feedback, PyArrayObject** kernels,
                                      const AttentionSizes& s, const T** F, const T** G)
{
    *F = *G = NULL;
    if (!feedback)
        return 0;
    const npy_intp f_dims[2] = {s.top_units, s.G}, g_dims[2] = {s.m, s.G};
    if (attention_check(kernels[0], "feedback_kernel (top units, gates x units)", 2, f_dims)
            || attention_check(kernels[1], "context_feedback_kernel (memory dim, gates x units)",
                               2, g_dims))
        return -1;
    *F = (const T*)PyArray_DATA(kernels[0]);
    *G = (const T*)PyArray_DATA(kernels[1]);
    return 0;
}

/* Free running with one LSTM cell, h_{t-1} is read by U and, from step 1
   on, by the feedback kernel F: one GEMM with U + F then does both, forward
   and backward (the sum (u, 4u) is formed once per call into scratch).
   *UF: the sum, or NULL where it does not apply. */
template <typename T>
static int attention_merge_feedback(int cell_kind, int depth, const AttentionCell<T>& bottom,
                                    const T* F, FusedHeldArrays& held, int typenum,
                                    const T** UF)
{
    *UF = NULL;
    if (!F || depth != 1 || cell_kind != ATTENTION_LSTM)
        return 0;
    const npy_intp dims[2] = {bottom.u, bottom.G};
    PyArrayObject* sum_array = held.scratch(2, dims, typenum);
    if (!sum_array)
        return -1;
    T* sum = (T*)PyArray_DATA(sum_array);
    for (npy_intp j = 0; j < bottom.u * bottom.G; ++j)
        sum[j] = bottom.U[j] + F[j];
    *UF = sum;
    return 0;
}

/* in: projected, h0, [c0,] U, V, memory, P, W_a, v, mask, then per upper
   cell W, b, m, h0, [c0,] U; with feedback then F, G (the c0's: LSTM cells
   only). out: h_seq, [c_seq,] ctx_seq, alpha_seq, per upper cell h_seq,
   [c_seq]; then gates, energies, per upper cell gates. */
template <typename T>
static int attention_forward(int kind, int cell_kind, int typenum, int depth, int feedback,
                             PyArrayObject** in, PyArrayObject** out)
{
    if (attention_check_depth(depth))
        return -1;
    const int S = attention_states(cell_kind);
    const int n_cells_in = 8 + S + attention_upper_inputs(cell_kind) * (depth - 1);
    FusedHeldArrays held;
    if (!held.add_all(in, n_cells_in + 2 * feedback))
        return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *projected = x[0], *h0 = x[1], *c0 = S == 2 ? x[2] : NULL;
    PyArrayObject** shared = x + 1 + S;
    PyArrayObject *kernel = shared[0], *ctx_kernel = shared[1], *memory = shared[2];
    PyArrayObject *projection = shared[3], *query_kernel = shared[4], *vector = shared[5];
    PyArrayObject* mask = shared[6];
    const npy_intp batch = PyArray_DIMS(h0)[0];
    AttentionCell<T> cells[ATTENTION_MAX_DEPTH];
    attention_bottom_cell<T>(cells, cell_kind, h0, c0, kernel);
    npy_intp widest = 0;
    if (attention_upper_cells<T>(cells, cell_kind, depth, x + 8 + S, batch, &widest))
        return -1;
    const AttentionSizes s(PyArray_DIMS(projected)[0], h0, kernel, memory, query_kernel,
                           cells[depth - 1].u, attention_gates(cell_kind));
    const npy_intp G = s.G;
    if (attention_check(projected, "projected (time, batch, gates x units)", 3, s.gates)
            || attention_check(projection, "memory_projection (batch, length, attention dim)",
                               3, s.projection)
            || attention_check_shared(s, h0, c0, kernel, ctx_kernel, memory, query_kernel,
                                      vector, mask, widest))
        return -1;
    const T *F, *FG;
    if (attention_feedback_kernels<T>(feedback, x + n_cells_in, s, &F, &FG))
        return -1;
    const int n_visible = 2 + S * depth;
    if (fused_prepare_output(&out[S], 3, s.ctx, typenum)
            || fused_prepare_output(&out[S + 1], 3, s.alpha, typenum)
            || fused_prepare_output(&out[n_visible + 1], 4, s.energy, typenum))
        return -1;
    T* Hk[ATTENTION_MAX_DEPTH];
    T* Ck[ATTENTION_MAX_DEPTH];   /* NULL for GRU cells */
    T* Zk[ATTENTION_MAX_DEPTH];
    for (int k = 0; k < depth; ++k) {
        npy_intp seq[3] = {s.time, batch, cells[k].u}, gates[3] = {s.time, batch, cells[k].G};
        for (int j = 0; j < S; ++j)
            if (fused_prepare_output(&out[attention_state_output(k, j, S)], 3, seq, typenum))
                return -1;
        if (fused_prepare_output(&out[attention_gates_output(k, n_visible)], 3, gates, typenum))
            return -1;
        Hk[k] = (T*)PyArray_DATA(out[attention_state_output(k, 0, S)]);
        Ck[k] = S == 2 ? (T*)PyArray_DATA(out[attention_state_output(k, 1, S)]) : NULL;
        Zk[k] = (T*)PyArray_DATA(out[attention_gates_output(k, n_visible)]);
    }
    const npy_intp q_dims[2] = {s.batch, s.a};
    const npy_intp x_dims[2] = {s.batch, widest};
    PyArrayObject* q_array = held.scratch(2, q_dims, typenum);
    PyArrayObject* x_array = held.scratch(2, x_dims, typenum);
    PyArrayObject* rh_array = held.scratch(2, x_dims, typenum);   /* a GRU's r h_{t-1} */
    const T* UF;
    if (!q_array || !x_array || !rh_array
            || attention_merge_feedback<T>(cell_kind, depth, cells[0], F, held, typenum, &UF))
        return -1;

    const T* PR = (const T*)PyArray_DATA(projected);
    const T* V = (const T*)PyArray_DATA(ctx_kernel);
    const T* HM = (const T*)PyArray_DATA(memory);
    const T* PM = (const T*)PyArray_DATA(projection);
    const T* WA = (const T*)PyArray_DATA(query_kernel);
    const T* VA = (const T*)PyArray_DATA(vector);
    const npy_int8* M = (const npy_int8*)PyArray_DATA(mask);
    T* CTX = (T*)PyArray_DATA(out[S]);
    T* A = (T*)PyArray_DATA(out[S + 1]);
    T* E = (T*)PyArray_DATA(out[n_visible + 1]);
    T* Q = (T*)PyArray_DATA(q_array);
    T* X = (T*)PyArray_DATA(x_array);
    T* RH = (T*)PyArray_DATA(rh_array);
    const npy_intp B = s.batch, u = s.units, L = s.length, m = s.m, a = s.a;
    const npy_intp top_u = s.top_units;
    const int iB = (int)B, iG = (int)G, im = (int)m, ia = (int)a;

    for (npy_intp t = 0; t < s.time; ++t) {
        if (B == 0)
            continue;
        /* q = h^D_{t-1} W_a */
        const T* top_prev = attention_previous<T>(Hk[depth - 1], cells[depth - 1].h0, t,
                                                  B * top_u);
        if (top_u > 0 && ia > 0)
            fused_gemm('N', 'N', ia, iB, (int)top_u, (T)1, WA, ia, top_prev, (int)top_u,
                       (T)0, Q, ia);
        else
            memset(Q, 0, sizeof(T) * B * a);
        /* The bottom cell: x = projected_t + ctx V (+ the feedback), then
           its recurrent part (attention_cell_forward). */
        const T* h_prev = attention_previous<T>(Hk[0], cells[0].h0, t, B * u);
        const T* c_prev = attention_previous<T>(Ck[0], cells[0].c0, t, B * u);
        T* z = Zk[0] + t * B * G;
        T* ctx = CTX + t * B * m;
        T* alpha = A + t * B * L;
        T* energy = E + t * B * L * a;
        memcpy(z, PR + t * B * G, sizeof(T) * B * G);
        for (npy_intp b = 0; b < B; ++b)
            attention_row<T>(PM + b * L * a, HM + b * L * m, M + b * L, Q + b * a, VA,
                             energy + b * L * a, alpha + b * L, ctx + b * m, L, a, m);
        if (im > 0)
            fused_gemm('N', 'N', iG, iB, im, (T)1, V, iG, ctx, im, (T)1, z, iG);
        /* Free running: the readout x_{t-1} fed back, folded into
           h^D_{t-1} F + ctx_{t-1} G (its bias is in projected_t; F is in
           UF where that applies) */
        if (feedback && t > 0) {
            if (top_u > 0 && !UF)
                fused_gemm('N', 'N', iG, iB, (int)top_u, (T)1, F, iG, top_prev, (int)top_u,
                           (T)1, z, iG);
            if (im > 0)
                fused_gemm('N', 'N', iG, iB, im, (T)1, FG, iG, CTX + (t - 1) * B * m, im,
                           (T)1, z, iG);
        }
        AttentionCell<T> bottom = cells[0];
        if (UF && t > 0)
            bottom.U = UF;       /* h_{t-1} (U + F): through U and the feedback at once */
        attention_cell_forward<T>(kind, cell_kind, bottom, B, h_prev, c_prev, z,
                                  Hk[0] + t * B * u, attention_at<T>(Ck[0], t, B * u), RH);
        /* The cells above: x^k = (h^{k-1}_t * m_k) W_k + b_k */
        for (int k = 1; k < depth; ++k) {
            const AttentionCell<T>& cell = cells[k];
            const npy_intp uk = cell.u, Gk = cell.G, in = cell.in;
            const T* below = Hk[k - 1] + t * B * in;
            T* zk = Zk[k] + t * B * Gk;
            for (npy_intp j = 0; j < B * in; ++j)
                X[j] = below[j] * cell.m[j];
            for (npy_intp b = 0; b < B; ++b)
                memcpy(zk + b * Gk, cell.b, sizeof(T) * Gk);
            if (in > 0 && Gk > 0)
                fused_gemm('N', 'N', (int)Gk, iB, (int)in, (T)1, cell.W, (int)Gk, X, (int)in,
                           (T)1, zk, (int)Gk);
            attention_cell_forward<T>(kind, cell_kind, cell, B,
                                      attention_previous<T>(Hk[k], cell.h0, t, B * uk),
                                      attention_previous<T>(Ck[k], cell.c0, t, B * uk), zk,
                                      Hk[k] + t * B * uk, attention_at<T>(Ck[k], t, B * uk), RH);
        }
    }
    return 0;
}

/* A cell's dU: an LSTM's sum_t h_{t-1}^T dz_t, a GRU's
   (gru_recurrent_kernel_grad) also reading RH (time, B, u) = r h_{t-1}. */
template <typename T>
static void attention_cell_kernel_grad(int cell_kind, const AttentionCell<T>& cell,
                                       const T* DZ, const T* H, const T* RH, T* DU,
                                       npy_intp time, npy_intp B)
{
    memset(DU, 0, sizeof(T) * cell.u * cell.G);
    if (cell_kind == ATTENTION_LSTM)
        fused_recurrent_kernel_grad<T>(DZ, cell.h0, H, DU, time, B, cell.u, cell.G, cell.G);
    else
        gru_recurrent_kernel_grad<T>(DZ, cell.h0, H, RH, DU, time, B, cell.u);
}

/* in: h0, [c0,] U, V, memory, W_a, v, mask, the upper cells' groups (W, b,
   m, h0, [c0,] U), every output of attention_forward, then the gradients of
   its visible outputs (h_seq, [c_seq,] ctx_seq, alpha_seq, per upper cell
   h_seq, [c_seq]); with feedback F and G after the upper cells' groups.
   out: d projected, dh0, [dc0,] dU, dV, d memory, d projection, dW_a, dv,
   then per upper cell dW, db, dm, dh0, [dc0,] dU; with feedback then dF,
   dG. */
template <typename T>
static int attention_backward(int kind, int cell_kind, int typenum, int depth, int feedback,
                              PyArrayObject** in, PyArrayObject** out)
{
    if (attention_check_depth(depth))
        return -1;
    const int S = attention_states(cell_kind), n_group = attention_upper_inputs(cell_kind);
    const int n_cells_in = 6 + S + n_group * (depth - 1);
    const int n_params = n_cells_in + 2 * feedback;
    const int n_visible = 2 + S * depth;
    const int n_forward = n_visible + 2 + (depth - 1);
    FusedHeldArrays held;
    if (!held.add_all(in, n_params + n_forward + n_visible))
        return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *h0 = x[0], *c0 = S == 2 ? x[1] : NULL;
    PyArrayObject** shared = x + S;
    PyArrayObject *kernel = shared[0], *ctx_kernel = shared[1], *memory = shared[2];
    PyArrayObject *query_kernel = shared[3], *vector = shared[4], *mask = shared[5];
    PyArrayObject** fwd = x + n_params;            /* the forward pass's outputs */
    PyArrayObject** grad = fwd + n_forward;        /* the gradients reaching the visible ones */
    PyArrayObject *ctx_seq = fwd[S], *alpha_seq = fwd[S + 1];
    PyArrayObject *gates = fwd[n_visible], *energies = fwd[n_visible + 1];
    PyArrayObject *dctx_seq = grad[S], *dalpha_seq = grad[S + 1];
    const npy_intp batch = PyArray_DIMS(h0)[0];
    AttentionCell<T> cells[ATTENTION_MAX_DEPTH];
    attention_bottom_cell<T>(cells, cell_kind, h0, c0, kernel);
    npy_intp widest = 0;
    if (attention_upper_cells<T>(cells, cell_kind, depth, x + 6 + S, batch, &widest))
        return -1;
    const AttentionSizes s(PyArray_DIMS(gates)[0], h0, kernel, memory, query_kernel,
                           cells[depth - 1].u, attention_gates(cell_kind));
    const npy_intp G = s.G;
    if (attention_check_shared(s, h0, c0, kernel, ctx_kernel, memory, query_kernel, vector,
                               mask, widest)
            || attention_check(ctx_seq, "context_seq", 3, s.ctx)
            || attention_check(dctx_seq, "d context_seq", 3, s.ctx)
            || attention_check(alpha_seq, "alpha_seq", 3, s.alpha)
            || attention_check(dalpha_seq, "d alpha_seq", 3, s.alpha)
            || attention_check(energies, "energies", 4, s.energy))
        return -1;
    for (int k = 0; k < depth; ++k) {
        npy_intp seq[3] = {s.time, batch, cells[k].u}, gk[3] = {s.time, batch, cells[k].G};
        if (attention_check(fwd[attention_gates_output(k, n_visible)],
                            "a cell's gates (time, batch, gates x units)", 3, gk))
            return -1;
        for (int j = 0; j < S; ++j)
            if (attention_check(fwd[attention_state_output(k, j, S)],
                                "a cell's state sequence (time, batch, units)", 3, seq)
                    || attention_check(grad[attention_state_output(k, j, S)],
                                       "the gradient of a cell's state sequence", 3, seq))
                return -1;
    }
    const T *F, *FG;
    if (attention_feedback_kernels<T>(feedback, x + n_cells_in, s, &F, &FG))
        return -1;
    if (fused_prepare_output(&out[0], 3, s.gates, typenum)
            || fused_prepare_output(&out[1], 2, s.state, typenum)
            || (S == 2 && fused_prepare_output(&out[2], 2, s.state, typenum))
            || fused_prepare_output(&out[1 + S], 2, s.kernel, typenum)
            || fused_prepare_output(&out[2 + S], 2, s.ctx_kernel, typenum)
            || fused_prepare_output(&out[3 + S], 3, s.memory, typenum)
            || fused_prepare_output(&out[4 + S], 3, s.projection, typenum)
            || fused_prepare_output(&out[5 + S], 2, s.query, typenum)
            || fused_prepare_output(&out[6 + S], 1, s.vector, typenum))
        return -1;
    /* The upper cells' gradient outputs mirror their input groups. */
    PyArrayObject** upper_out[ATTENTION_MAX_DEPTH];
    for (int k = 1; k < depth; ++k) {
        PyArrayObject** g = x + 6 + S + n_group * (k - 1);
        upper_out[k] = out + 7 + S + n_group * (k - 1);
        for (int j = 0; j < n_group; ++j)
            if (fused_prepare_output(&upper_out[k][j], PyArray_NDIM(g[j]), PyArray_DIMS(g[j]),
                                     typenum))
                return -1;
    }
    const int n_cells_out = 7 + S + n_group * (depth - 1);
    const npy_intp df_dims[2] = {s.top_units, s.G}, dg_dims[2] = {s.m, s.G};
    if (feedback && (fused_prepare_output(&out[n_cells_out], 2, df_dims, typenum)
                     || fused_prepare_output(&out[n_cells_out + 1], 2, dg_dims, typenum)))
        return -1;
    const npy_intp dq_dims[3] = {s.time, s.batch, s.a};
    const npy_intp dctx_dims[2] = {s.batch, s.m};
    const npy_intp de_dims[1] = {s.length};
    const npy_intp dv_dims[1] = {s.a};
    const npy_intp dx_dims[2] = {s.batch, widest};
    const npy_intp sum_dims[1] = {attention_gates(cell_kind) * widest};
    PyArrayObject* dq_array = held.scratch(3, dq_dims, typenum);
    PyArrayObject* dctx_array = held.scratch(2, dctx_dims, typenum);
    PyArrayObject* de_array = held.scratch(1, de_dims, typenum);
    PyArrayObject* dv_array = held.scratch(1, dv_dims, NPY_FLOAT64);
    PyArrayObject* dx_array = held.scratch(2, dx_dims, typenum);
    PyArrayObject* drh_array = held.scratch(2, dx_dims, typenum);   /* a GRU's d(r h_{t-1}) */
    PyArrayObject* sum_array = held.scratch(1, sum_dims, NPY_FLOAT64);
    /* Free running: dL/dctx_{t-1} through step t's feedback, dx^1_t G^T */
    PyArrayObject* carry_array = held.scratch(2, dctx_dims, typenum);
    const T* UF;
    if (!dq_array || !dctx_array || !de_array || !dv_array || !dx_array || !drh_array
            || !sum_array || !carry_array
            || attention_merge_feedback<T>(cell_kind, depth, cells[0], F, held, typenum, &UF))
        return -1;
    T* ctx_carry = (T*)PyArray_DATA(carry_array);
    memset(ctx_carry, 0, sizeof(T) * s.batch * s.m);
    T* DZk[ATTENTION_MAX_DEPTH];       /* per cell: its dz at every step */
    T* RHk[ATTENTION_MAX_DEPTH];       /* per GRU cell: r h_{t-1} at every step */
    const T* Hk[ATTENTION_MAX_DEPTH];
    const T* Ck[ATTENTION_MAX_DEPTH];
    const T* Zk[ATTENTION_MAX_DEPTH];
    const T* DHk[ATTENTION_MAX_DEPTH];
    const T* DCk[ATTENTION_MAX_DEPTH];
    T* dh_next[ATTENTION_MAX_DEPTH];   /* dL/dh^k_t through step t+1 and cell k+1; then dh0 */
    T* dc_next[ATTENTION_MAX_DEPTH];
    T* DUk[ATTENTION_MAX_DEPTH];
    for (int k = 0; k < depth; ++k) {
        Hk[k] = (const T*)PyArray_DATA(fwd[attention_state_output(k, 0, S)]);
        Zk[k] = (const T*)PyArray_DATA(fwd[attention_gates_output(k, n_visible)]);
        DHk[k] = (const T*)PyArray_DATA(grad[attention_state_output(k, 0, S)]);
        Ck[k] = DCk[k] = NULL;
        if (S == 2) {
            Ck[k] = (const T*)PyArray_DATA(fwd[attention_state_output(k, 1, S)]);
            DCk[k] = (const T*)PyArray_DATA(grad[attention_state_output(k, 1, S)]);
        }
        /* The outputs: the bottom cell's dz is d projected; an upper cell's
           dh0, [dc0,] dU follow its dW, db, dm. */
        PyArrayObject** cell_out = k ? upper_out[k] + 3 : out + 1;
        dh_next[k] = (T*)PyArray_DATA(cell_out[0]);
        dc_next[k] = S == 2 ? (T*)PyArray_DATA(cell_out[1]) : NULL;
        DUk[k] = (T*)PyArray_DATA(cell_out[S]);
        memset(dh_next[k], 0, sizeof(T) * batch * cells[k].u);
        if (S == 2)
            memset(dc_next[k], 0, sizeof(T) * batch * cells[k].u);
        const npy_intp dz_dims[3] = {s.time, batch, cells[k].G};
        const npy_intp rh_dims[3] = {s.time, batch, cells[k].u};
        PyArrayObject* dz_array = k ? held.scratch(3, dz_dims, typenum) : out[0];
        PyArrayObject* rh_array = S == 1 ? held.scratch(3, rh_dims, typenum) : NULL;
        if (!dz_array || (S == 1 && !rh_array))
            return -1;
        DZk[k] = (T*)PyArray_DATA(dz_array);
        RHk[k] = rh_array ? (T*)PyArray_DATA(rh_array) : NULL;
    }

    const T* V = (const T*)PyArray_DATA(ctx_kernel);
    const T* HM = (const T*)PyArray_DATA(memory);
    const T* WA = (const T*)PyArray_DATA(query_kernel);
    const T* VA = (const T*)PyArray_DATA(vector);
    const npy_int8* M = (const npy_int8*)PyArray_DATA(mask);
    const T* CTX = (const T*)PyArray_DATA(ctx_seq);
    const T* A = (const T*)PyArray_DATA(alpha_seq);
    const T* E = (const T*)PyArray_DATA(energies);
    const T* DCTX = (const T*)PyArray_DATA(dctx_seq);
    const T* DA = (const T*)PyArray_DATA(dalpha_seq);
    T* DV = (T*)PyArray_DATA(out[2 + S]);
    T* DHM = (T*)PyArray_DATA(out[3 + S]);
    T* DPM = (T*)PyArray_DATA(out[4 + S]);
    T* DWA = (T*)PyArray_DATA(out[5 + S]);
    T* DVA = (T*)PyArray_DATA(out[6 + S]);
    T* DQ = (T*)PyArray_DATA(dq_array);
    T* dctx = (T*)PyArray_DATA(dctx_array);
    T* de = (T*)PyArray_DATA(de_array);
    T* DX = (T*)PyArray_DATA(dx_array);
    T* DRH = (T*)PyArray_DATA(drh_array);
    double* dv = (double*)PyArray_DATA(dv_array);
    double* sums = (double*)PyArray_DATA(sum_array);
    const npy_intp B = s.batch, L = s.length, m = s.m, a = s.a, time = s.time;
    const npy_intp top_u = s.top_units;
    const int iB = (int)B, iG = (int)G, im = (int)m, ia = (int)a;
    memset(DHM, 0, sizeof(T) * B * L * m);
    memset(DPM, 0, sizeof(T) * B * L * a);
    for (int k = 1; k < depth; ++k)    /* dm accumulates over the steps */
        memset(PyArray_DATA(upper_out[k][2]), 0, sizeof(T) * B * cells[k].in);

    for (npy_intp t = time - 1; t >= 0 && B > 0; --t) {
        /* Every cell, top first: an upper cell passes its input's gradient,
           through its dropout mask, down to h^{k-1}_t. */
        for (int k = depth - 1; k >= 0; --k) {
            AttentionCell<T> cell = cells[k];
            if (k == 0 && UF && t > 0)
                cell.U = UF;     /* dz (U + F)^T: through U and the feedback at once */
            const npy_intp uk = cell.u, Gk = cell.G, in = cell.in;
            const npy_intp step = B * uk;
            T* dz = DZk[k] + t * B * Gk;
            attention_cell_backward<T>(kind, cell_kind, cell, B, Zk[k] + t * B * Gk,
                                       attention_previous<T>(Hk[k], cell.h0, t, step),
                                       attention_at<const T>(Ck[k], t, step),
                                       attention_previous<T>(Ck[k], cell.c0, t, step),
                                       DHk[k] + t * step, attention_at<const T>(DCk[k], t, step),
                                       dz, dh_next[k], dc_next[k],
                                       attention_at<T>(RHk[k], t, step), DRH);
            if (k == 0)
                break;
            /* d below = dz W^T; dm += h^{k-1}_t * d below; dh^{k-1}_t += m * d below */
            if (in > 0 && Gk > 0)
                fused_gemm('T', 'N', (int)in, iB, (int)Gk, (T)1, cell.W, (int)Gk, dz, (int)Gk,
                           (T)0, DX, (int)in);
            else
                memset(DX, 0, sizeof(T) * B * in);
            T* DM = (T*)PyArray_DATA(upper_out[k][2]);
            const T* below = Hk[k - 1] + t * B * in;
            for (npy_intp j = 0; j < B * in; ++j) {
                DM[j] += below[j] * DX[j];
                dh_next[k - 1][j] += cell.m[j] * DX[j];
            }
        }
        const T* dz = DZk[0] + t * B * G;
        T* dq = DQ + t * B * a;
        /* d ctx = dctx_seq_t + dz V^T (+ dx^1_{t+1} G^T, free running) */
        memcpy(dctx, DCTX + t * B * m, sizeof(T) * B * m);
        if (feedback)
            for (npy_intp j = 0; j < B * m; ++j)
                dctx[j] += ctx_carry[j];
        if (im > 0 && iG > 0)
            fused_gemm('T', 'N', im, iB, iG, (T)1, V, iG, dz, iG, (T)1, dctx, im);
        for (npy_intp b = 0; b < B; ++b) {
            const npy_intp row = t * B + b;
            attention_row_backward<T>(HM + b * L * m, E + row * L * a, A + row * L, VA,
                                      dctx + b * m, DA + row * L, DHM + b * L * m,
                                      DPM + b * L * a, dq + b * a, dv, de, L, a, m);
        }
        /* The query read h^D_{t-1}: dq W_a^T */
        if (top_u > 0 && ia > 0)
            fused_gemm('T', 'N', (int)top_u, iB, ia, (T)1, WA, ia, dq, ia, (T)1,
                       dh_next[depth - 1], (int)top_u);
        /* Free running, t >= 1: x^1_t read h^D_{t-1} F and ctx_{t-1} G */
        if (feedback && t > 0) {
            if (top_u > 0 && iG > 0 && !UF)
                fused_gemm('T', 'N', (int)top_u, iB, iG, (T)1, F, iG, dz, iG, (T)1,
                           dh_next[depth - 1], (int)top_u);
            if (im > 0 && iG > 0)
                fused_gemm('T', 'N', im, iB, iG, (T)1, FG, iG, dz, iG, (T)0, ctx_carry, im);
        }
    }
    /* The weights' gradients, each as GEMMs over every step at once:
       dU_k (attention_cell_kernel_grad), dW_a = sum_t h^D_{t-1}^T dq_t,
       dV = ctx^T dz^1, dW_k = (h^{k-1} * m_k)^T dz^k, db_k = sum dz^k. */
    for (int k = UF ? 1 : 0; k < depth; ++k)     /* with UF, dU follows dF below */
        attention_cell_kernel_grad<T>(cell_kind, cells[k], DZk[k], Hk[k], RHk[k], DUk[k], time,
                                      B);
    memset(DWA, 0, sizeof(T) * top_u * a);
    fused_recurrent_kernel_grad<T>(DQ, cells[depth - 1].h0, Hk[depth - 1], DWA, time, B, top_u,
                                   a, a);
    memset(DV, 0, sizeof(T) * m * G);
    if (time > 0 && B > 0 && im > 0 && iG > 0)
        fused_gemm('N', 'T', iG, im, (int)(time * B), (T)1, DZk[0], iG, CTX, im, (T)0, DV, iG);
    for (int k = 1; k < depth; ++k) {
        const AttentionCell<T>& cell = cells[k];
        const npy_intp Gk = cell.G, in = cell.in;
        T* DW = (T*)PyArray_DATA(upper_out[k][0]);
        T* DB = (T*)PyArray_DATA(upper_out[k][1]);
        memset(DW, 0, sizeof(T) * in * Gk);
        if (time > 0 && B > 0 && in > 0 && Gk > 0) {
            /* One step's masked inputs at a time: h^{k-1}_t * m_k (B, in). */
            for (npy_intp t = 0; t < time; ++t) {
                const T* below = Hk[k - 1] + t * B * in;
                for (npy_intp j = 0; j < B * in; ++j)
                    DX[j] = below[j] * cell.m[j];
                fused_gemm('N', 'T', (int)Gk, (int)in, iB, (T)1, DZk[k] + t * B * Gk,
                           (int)Gk, DX, (int)in, (T)1, DW, (int)Gk);
            }
        }
        memset(sums, 0, sizeof(double) * Gk);
        for (npy_intp row = 0; row < time * B; ++row)
            fused_accumulate(sums, DZk[k] + row * Gk, Gk);
        for (npy_intp j = 0; j < Gk; ++j)
            DB[j] = (T)sums[j];
    }
    for (npy_intp k = 0; k < a; ++k)
        DVA[k] = (T)dv[k];
    /* dF = sum_{t>=1} h^D_{t-1}^T dz^1_t, dG = sum_{t>=1} ctx_{t-1}^T dz^1_t */
    if (feedback) {
        T* DF = (T*)PyArray_DATA(out[n_cells_out]);
        T* DG = (T*)PyArray_DATA(out[n_cells_out + 1]);
        memset(DF, 0, sizeof(T) * top_u * G);
        memset(DG, 0, sizeof(T) * m * G);
        const int rows = (int)((time > 1 ? time - 1 : 0) * B);
        if (rows > 0 && iG > 0 && top_u > 0)
            fused_gemm('N', 'T', iG, (int)top_u, rows, (T)1, DZk[0] + B * G, iG,
                       Hk[depth - 1], (int)top_u, (T)0, DF, iG);
        if (rows > 0 && iG > 0 && im > 0)
            fused_gemm('N', 'T', iG, im, rows, (T)1, DZk[0] + B * G, iG, CTX, im, (T)0, DG,
                       iG);
        if (UF) {
            /* One cell: dU = h0^T dz_0 + sum_{t>=1} h_{t-1}^T dz_t = h0^T dz_0 + dF */
            const npy_intp u = s.units;
            memcpy(DUk[0], DF, sizeof(T) * u * G);
            if (time > 0 && B > 0 && u > 0 && iG > 0)
                fused_gemm('N', 'T', iG, (int)u, iB, (T)1, DZk[0], iG, cells[0].h0, (int)u,
                           (T)1, DUk[0], iG);
        }
    }
    return 0;
}
#endif
"""


class _FusedAttentionOp(BlasOp):
    """What the forward and the gradient Op share: parameters and C setup."""

    __props__ = ('inner_activation', 'depth', 'feedback', 'cell')

    def __init__(self, inner_activation='hard_sigmoid', depth=1, feedback=False, cell='lstm'):
        self.inner_activation = check_choice('inner_activation', inner_activation,
                                             INNER_ACTIVATIONS)
        if not 1 <= int(depth) <= MAX_DEPTH:
            raise ValueError('depth must be 1 to %d, got %r' % (MAX_DEPTH, depth))
        self.depth = int(depth)
        self.feedback = bool(feedback)
        self.cell = check_choice('cell', cell, CELLS)
        super(_FusedAttentionOp, self).__init__()

    @property
    def n_states(self):
        return len(CELL_STATES[self.cell])

    @staticmethod
    def _mask_input(mask):
        return int8_mask_input(mask, 'memory_mask', '(batch, length)')

    @staticmethod
    def _tensor_type(dtype, ndim):
        return T.TensorType(dtype, (False,) * ndim)

    def _checked_group(self, values, names, owner, group, dtype):
        """`values` checked as the inputs `names` ((name, ndim) pairs) of
        `group`, of the bottom cell's `dtype`."""
        if len(values) != len(names):
            raise TypeError('a fused attention decoder %s takes %d inputs for its %s, got %d'
                            % (owner, len(names), group, len(values)))
        if not values:
            return []
        checked = check_float_inputs(names, values, 'the fused attention decoder')
        if checked[0].dtype != dtype:
            raise TypeError('%s must have dtype %s like the bottom cell, got %s'
                            % (names[0][0], dtype, checked[0].dtype))
        return checked

    def _n_upper_inputs(self):
        return len(upper_input_names(self.cell)[0]) * (self.depth - 1)

    def _upper_ndims(self):
        return list(upper_input_names(self.cell)[1]) * (self.depth - 1)

    def _upper_inputs(self, values, dtype):
        """The upper cells' groups, checked: W, b, m, the initial states and
        U per cell above the bottom."""
        group_names, ndims = upper_input_names(self.cell)
        names = [('%s_%d' % (name, k + 2), ndim) for k in range(self.depth - 1)
                 for name, ndim in zip(group_names, ndims)]
        return self._checked_group(values, names, 'of depth %d' % self.depth, 'upper cells',
                                   dtype)

    def _feedback_inputs(self, values, dtype):
        """The feedback kernels F, G, checked (none without feedback)."""
        names = list(zip(FEEDBACK_INPUT_NAMES, (2, 2))) if self.feedback else []
        return self._checked_group(values, names, 'with feedback=%s' % self.feedback,
                                   'feedback kernels', dtype)

    # -- C (BlasOp: BLAS, VECTORISE_FLAGS as the LSTM Op) ---------------------
    def _support_code_text(self):
        return fused_lstm.SUPPORT_CODE + fused_gru.SUPPORT_CODE + _ATTENTION_C

    def _c_call(self, node, inputs, outputs, sub, function):
        return self._c_call_template % dict(
            c_type_settings(node.outputs[0].dtype),
            kind=fused_lstm.GATE_KINDS[self.inner_activation], function=function,
            cell_kind='ATTENTION_%s' % self.cell.upper(), depth=self.depth,
            feedback=int(self.feedback), n_in=len(inputs), n_out=len(outputs),
            inputs=', '.join(inputs), outputs=', '.join(outputs),
            copy_back='\n'.join('%s = out_arrays[%d];' % (o, k) for k, o in enumerate(outputs)),
            fail=sub['fail'])

    _c_call_template = """
        {
            PyArrayObject* in_arrays[%(n_in)s] = {%(inputs)s};
            PyArrayObject* out_arrays[%(n_out)s] = {%(outputs)s};
            int status = %(function)s<%(ctype)s>(%(kind)s, %(cell_kind)s, %(typenum)s,
                                                 %(depth)s, %(feedback)s, in_arrays,
                                                 out_arrays);
            %(copy_back)s
            if (status != 0) {
                %(fail)s
            }
        }
        """


class AttentionForward(_FusedAttentionOp):
    """Runs the attention decoder (see the module docstring).

    Inputs: projected (time, batch, G u), h0, [c0] (batch, u), recurrent_kernel
    U (u, G u), context_kernel V (m, G u), memory H (batch, L, m),
    memory_projection P (batch, L, a), query_kernel W_a (u_D, a),
    attention_vector v (a,), memory_mask (batch, L) (cast to int8); then per
    cell above the bottom one input_kernel W_k (u_{k-1}, G u_k), bias b_k
    (G u_k,), dropout_mask m_k (batch, u_{k-1}), h0_k, [c0_k] (batch, u_k),
    recurrent_kernel U_k (u_k, G u_k); with feedback then feedback_kernel
    F (u_D, G u) and context_feedback_kernel (m, G u). G = 4 and the c's
    for LSTM cells, G = 3 for GRU ones.

    Outputs: h_seq, [c_seq] (time, batch, u), context_seq (time, batch, m),
    alpha_seq (time, batch, L), per upper cell h_seq_k, [c_seq_k]
    (time, batch, u_k); and for the gradient only gates (time, batch, G u),
    energies (time, batch, L, a) and per upper cell gates_k.

    # Arguments
        inner_activation: 'hard_sigmoid' or 'sigmoid', the gates' activation.
        depth: the number of cells, 1 to MAX_DEPTH.
        feedback: free running, the readout fed back (the two kernels).
        cell: 'lstm' or 'gru', the kind of every cell.
    """

    def make_node(self, *args):
        names, ndims = _bottom_inputs(self.cell)
        n_bottom = len(names)
        if len(args) <= n_bottom:
            raise TypeError('AttentionForward(cell=%r) takes %s, the memory mask and then '
                            'the upper cells\' inputs, got %d inputs'
                            % (self.cell, ', '.join(names), len(args)))
        inputs = check_float_inputs(list(zip(names, ndims)), list(args[:n_bottom]),
                                    'the fused attention decoder')
        dtype = inputs[0].dtype
        inputs.append(self._mask_input(args[n_bottom]))
        rest = args[n_bottom + 1:]
        n_upper = self._n_upper_inputs()
        inputs += self._upper_inputs(list(rest[:n_upper]), dtype)
        inputs += self._feedback_inputs(list(rest[n_upper:]), dtype)
        ndims = ([3] * n_visible_outputs(self.depth, self.cell) + [3, 4]
                 + [3] * (self.depth - 1))
        return Apply(self, inputs, [self._tensor_type(dtype, n)() for n in ndims])

    def perform(self, node, inputs, output_storage):
        results = numpy_forward(list(inputs), self.inner_activation, self.depth,
                                self.feedback, self.cell)
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        n_states = self.n_states
        projected, h0 = input_shapes[:2]
        memory, projection = input_shapes[3 + n_states:5 + n_states]
        time, batch, n_gates = projected
        upper = _upper_groups(input_shapes[8 + n_states:], self.depth, self.cell)
        seqs = [(time, batch, h0[1])] * n_states + [(time, batch, memory[2]),
                                                    (time, batch, memory[1])]
        for group in upper:
            seqs += [(time, batch, group[4][0])] * n_states
        gates = [(time, batch, n_gates), (time, batch, memory[1], projection[2])]
        return seqs + gates + [(time, batch, group[4][1]) for group in upper]

    def connection_pattern(self, node):
        n_out = len(node.outputs)
        pattern = [[True] * n_out for _ in node.inputs]
        pattern[memory_mask_index(self.cell)] = [False] * n_out
        return pattern

    def L_op(self, inputs, outputs, output_grads):
        n_visible = n_visible_outputs(self.depth, self.cell)
        mask_at = memory_mask_index(self.cell)
        differentiable = inputs[:mask_at] + inputs[mask_at + 1:]
        for grad in output_grads[n_visible:]:
            if not isinstance(grad.type, DisconnectedType):
                message = ('the gates and energies outputs of AttentionForward are for its '
                           'gradient only')
                grads = [grad_not_implemented(self, k, x, message)
                         for k, x in enumerate(inputs)]
                grads[mask_at] = DisconnectedType()()
                return grads
        grads_in = [output_grad_or_zeros(g, o)
                    for g, o in zip(output_grads[:n_visible], outputs[:n_visible])]
        # The gradient reads neither projected nor the memory projection:
        # the gates and the energies hold what it needs of them.
        n_states = self.n_states
        initial = list(inputs[1:1 + n_states])
        (recurrent_kernel, context_kernel, memory, _, query_kernel,
         attention_vector) = inputs[1 + n_states:mask_at]
        grads = AttentionGrad(self.inner_activation, self.depth, self.feedback, self.cell)(
            *(initial + [recurrent_kernel, context_kernel, memory, query_kernel,
                         attention_vector, inputs[mask_at]] + list(inputs[mask_at + 1:])
              + list(outputs) + grads_in))
        grads = [T.patternbroadcast(g, x.broadcastable) for g, x in zip(grads, differentiable)]
        return grads[:mask_at] + [DisconnectedType()()] + grads[mask_at:]

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_call(node, inputs, outputs, sub, 'attention_forward')


class AttentionGrad(_FusedAttentionOp):
    """The gradient of `AttentionForward`: back-propagation through the loop.

    Inputs: h0, [c0,] recurrent_kernel, context_kernel, memory, query_kernel,
    attention_vector, memory_mask; the upper cells' groups as
    AttentionForward takes them (then the feedback kernels); AttentionForward's
    outputs; the gradients reaching its visible outputs (h_seq, [c_seq,]
    context_seq, alpha_seq, per upper cell h_seq_k, [c_seq_k]) from outside.

    Outputs: the gradients of projected, h0, [c0,] recurrent_kernel,
    context_kernel, memory (through the context), memory_projection,
    query_kernel and attention_vector, then of each upper cell's group
    (then of the feedback kernels):

        dh^D_t = dh_seq^D_t + (through step t+1) + dq_{t+1} W_a^T
        dh^k_t = dh_seq^k_t + (through step t+1) + m_{k+1} * (dx^{k+1}_t W_{k+1}^T)
        dx^k_t, and the part through step t+1: the cell's step gradient
            (seq2seq.ops.fused_lstm.LSTMGrad: dz U^T; fused_gru.GRUGrad)
        dctx_t = dctx_seq_t + dx^1_t V^T
        dalpha_tj = dalpha_seq_tj + dctx_t . H_j
        de_tj = alpha_tj (dalpha_tj - sum_k alpha_tk dalpha_tk)
        dP_j += de_tj v (1 - E_tj^2);   dq_t = sum_j de_tj v (1 - E_tj^2)
        dv = sum de_tj E_tj (in double);  dH_j += alpha_tj dctx_t
        dU_k: LSTM sum_t h^k_{t-1}^T dz^k_t; GRU the same for U_zr and
            sum_t (r h^k_{t-1})^T dx^k_h for U_h
        dW_a = sum_t h^D_{t-1}^T dq_t,  dV = sum_t ctx_t^T dx^1_t,
        dW_k = sum_t (h^{k-1}_t * m_k)^T dx^k_t,
        db_k = sum_t dx^k_t (in double),  dm_k = sum_t h^{k-1}_t * (dx^k_t W_k^T)

    (D = depth; with depth 1 the first line is the only one.)
    """

    def make_node(self, *args):
        n_states = self.n_states
        # The bottom cell's and the attention's inputs but the two whose
        # gradient needs nothing of them (the gates and energies hold it).
        names = [(name, ndim) for name, ndim in zip(*_bottom_inputs(self.cell))
                 if name not in ('projected', 'memory_projection')]
        output_names = forward_output_names(self.depth, self.cell)
        n_visible = n_visible_outputs(self.depth, self.cell)
        n_params = self._n_upper_inputs() + 2 * self.feedback
        n_expected = n_states + 6 + n_params + len(output_names) + n_visible
        if len(args) != n_expected:
            raise TypeError('AttentionGrad of depth %d takes %d inputs, got %d'
                            % (self.depth, n_expected, len(args)))
        first = check_float_inputs(names, list(args[:n_states + 5]),
                                   'the fused attention decoder')
        dtype = first[0].dtype
        rest = args[n_states + 6:]
        n_upper = self._n_upper_inputs()
        upper = self._upper_inputs(list(rest[:n_upper]), dtype)
        feedback = self._feedback_inputs(list(rest[n_upper:n_params]), dtype)
        names = [(name, 4 if name == 'energies' else 3) for name in output_names] + [
            ('d_' + name, 3) for name in output_names[:n_visible]]
        sequences = check_float_inputs(names, list(rest[n_params:]),
                                       'the fused attention decoder')
        if sequences[0].dtype != dtype:
            raise TypeError('h_seq must have dtype %s like h0, got %s'
                            % (dtype, sequences[0].dtype))
        inputs = (first + [self._mask_input(args[n_states + 5])] + upper + feedback
                  + sequences)
        ndims = list(_bottom_inputs(self.cell)[1]) + self._upper_ndims() + [2] * len(feedback)
        return Apply(self, inputs, [self._tensor_type(dtype, n)() for n in ndims])

    def perform(self, node, inputs, output_storage):
        results = numpy_backward(list(inputs), self.inner_activation, self.depth,
                                 self.feedback, self.cell)
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        n_states = self.n_states
        states = list(input_shapes[:n_states])
        kernel, ctx_kernel, memory, query_kernel, vector = input_shapes[n_states:n_states + 5]
        n_params = self._n_upper_inputs() + 2 * self.feedback
        forward = input_shapes[n_states + 6 + n_params:]
        n_visible = n_visible_outputs(self.depth, self.cell)
        gates, energies = forward[n_visible], forward[n_visible + 1]
        projection = (memory[0], memory[1], energies[3])
        return ([gates] + states + [kernel, ctx_kernel, memory, projection, query_kernel,
                                    vector]
                + list(input_shapes[n_states + 6:n_states + 6 + n_params]))

    def L_op(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, k, x, 'the fused attention decoder has no '
                                     'second derivative')
                for k, x in enumerate(inputs)]

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_call(node, inputs, outputs, sub, 'attention_backward')
