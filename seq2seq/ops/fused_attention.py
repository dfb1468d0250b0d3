"""A fused attention decoder: the whole training loop in one Theano Op.

`seq2seq.layers.decoders.AttentionDecoder` runs as a `theano.scan` loop, the
reference: per step a dozen small GEMMs and elementwise Ops per cell, and a
gradient scan as long again. `AttentionForward` runs the forward loop in C
and `AttentionGrad` back-propagates through it in another, teacher-forced
(the inputs are known up front) or free running with a linear readout. A stack of D LSTM
cells (D = `depth`, 1 to MAX_DEPTH), additive attention (Bahdanau et al.
2015) queried by the top cell and read by the bottom one:

    for t in 0 .. time-1:
        q_t = h^D_{t-1} W_a                                  GEMM (batch, a)
        E_tj = tanh(P_j + q_t)                               P = H U_a, (batch, L, a)
        e_tj = E_tj . v
        alpha_t = softmax_j(e_tj) over the unmasked j; 0 where mask_j == 0
        ctx_t = sum_j alpha_tj H_j                           (batch, m)
        z^1_t = projected_t + h^1_{t-1} U_1 + ctx_t V        two GEMMs (batch, 4u_1)
        (h^1_t, c^1_t) = the LSTM step on z^1_t (as `seq2seq.ops.fused_lstm`)
        for k in 2 .. D:
            z^k_t = (h^{k-1}_t * m_k) W_k + b_k + h^k_{t-1} U_k     two GEMMs
            (h^k_t, c^k_t) = the LSTM step on z^k_t

Outside the loop, each as one GEMM over every step: projected = (x * m_1) W_1
+ b_1 (x: the teacher-forced inputs), the memory projection P = H U_a, and
the readout h^D_t W_y + ctx_t C_y + b_y from the Op's outputs.

Free running (`feedback=True`), the bottom cell reads the previous step's
linear readout x_{t-1} = h^D_{t-1} W_y + ctx_{t-1} C_y + b_y instead of a
target. Its projection folds into two kernels, F = W_y W_1 and G = C_y W_1,
computed once per batch outside the Op:

        z^1_t += h^D_{t-1} F + ctx_{t-1} G                   t >= 1, two GEMMs

with projected_0 = x_0 W_1 + b_1 and projected_t = b_y W_1 + b_1 after it
(`fused_feedback_loop` folds a decoder without attention the same way). m_k are the
decoder's dropout masks, one per sequence and the same at every step, as the
decoder's step (`Decoder.step`) applies them to each cell's input (ones
without dropout); the dropout masks the cells' inputs only, not the context
ctx_t. The attention weights alpha are an output too (`get_attention`).

A sequence whose memory steps are all masked attends to nothing: alpha and
ctx are 0, as in the scan. The softmax's gradient is zero on masked steps.

Gate order i, f, c, o; `inner_activation` hard_sigmoid or sigmoid, tanh
elsewhere; float32 and float64 (float32 uses the LSTM Op's vectorised
rational tanh, within 3e-7 of tanhf; float64 the C library's).

The Ops' inputs and outputs, flat, with D-1 groups for the cells above the
bottom one (`forward_input_names`, `forward_output_names`):

    AttentionForward(inner_activation, depth, feedback)
        in:  projected, h0, c0, U, V, memory, P, W_a, v, memory_mask,
             then per cell k >= 2: W_k, b_k, m_k, h0_k, c0_k, U_k;
             with feedback then F, G
        out: h_seq, c_seq, context_seq, alpha_seq, then per cell k >= 2:
             h_seq_k, c_seq_k; then for the gradient only: gates,
             energies, then per cell k >= 2: gates_k
    AttentionGrad(inner_activation, depth, feedback)
        in:  h0, c0, U, V, memory, W_a, v, memory_mask, the upper cells'
             groups as above (then F, G), every output of AttentionForward,
             then the gradients reaching its visible outputs (h_seq ... c_seq_D)
        out: the gradients of AttentionForward's inputs but the memory mask
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from theano.gof import Apply
from theano.gradient import DisconnectedType, grad_not_implemented

from . import fused_lstm
from .c_helpers import (BlasOp, c_type_settings, check_choice, int8_mask_input,
                        output_grad_or_zeros)
from .c_helpers import DTYPES, check_float_inputs
from .numpy_reference import attention_weights, lstm_step, lstm_step_backward

INNER_ACTIVATIONS = fused_lstm.INNER_ACTIVATIONS

# The deepest stack the Op runs (its C holds every input array at once).
MAX_DEPTH = 8

# The per-cell groups of the cells above the bottom one.
UPPER_INPUT_NAMES = ('input_kernel', 'bias', 'dropout_mask', 'h0', 'c0', 'recurrent_kernel')
UPPER_INPUT_NDIMS = (2, 1, 2, 2, 2, 2)
_BOTTOM_NAMES = ('projected', 'h0', 'c0', 'recurrent_kernel', 'context_kernel', 'memory',
                 'memory_projection', 'query_kernel', 'attention_vector')
_BOTTOM_NDIMS = (3, 2, 2, 2, 2, 3, 3, 2, 1)
# A free-running decoder's feedback, folded into two kernels (`feedback=True`).
FEEDBACK_INPUT_NAMES = ('feedback_kernel', 'context_feedback_kernel')


def forward_input_names(depth, feedback=False):
    """The names of AttentionForward's inputs, in order (the memory mask
    after the bottom cell's and the attention's)."""
    return list(_BOTTOM_NAMES) + ['memory_mask'] + [
        '%s_%d' % (name, k) for k in range(2, depth + 1) for name in UPPER_INPUT_NAMES] + (
        list(FEEDBACK_INPUT_NAMES) if feedback else [])


def forward_output_names(depth):
    """The names of AttentionForward's outputs: the visible ones, then the
    ones its gradient reads."""
    upper = range(2, depth + 1)
    visible = ['h_seq', 'c_seq', 'context_seq', 'alpha_seq'] + [
        '%s_%d' % (name, k) for k in upper for name in ('h_seq', 'c_seq')]
    return visible + ['gates', 'energies'] + ['gates_%d' % k for k in upper]


def n_visible_outputs(depth):
    return 4 + 2 * (depth - 1)


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
    for cell in decoder.cells:
        reason = fused_lstm.unsupported_reason(cell, truncate_gradient, dtype)
        if reason:
            return reason.replace('the fused LSTM', 'the fused attention decoder')
    return None


def attention_sequence(projected, h0, c0, recurrent_kernel, context_kernel, memory,
                       memory_projection, query_kernel, attention_vector, memory_mask=None,
                       inner_activation='hard_sigmoid', upper_cells=(), feedback_kernels=None):
    """Run the attention decoder over every step with `AttentionForward`.

    # Arguments
        projected: (time, batch, 4u), the teacher-forced inputs' x W + b (with
            dropout, (x * m) W + b).
        h0, c0: (batch, u), the bottom cell's initial state.
        recurrent_kernel: U (u, 4u).
        context_kernel: V (m, 4u).
        memory: H (batch, L, m).
        memory_projection: H U_a (batch, L, a).
        query_kernel: W_a (u_D, a), read by the top cell's state.
        attention_vector: v (a,).
        memory_mask: optional (batch, L); 0 marks a padded memory step.
        inner_activation: 'hard_sigmoid' or 'sigmoid'.
        upper_cells: per cell above the bottom one, bottom first, the tuple
            (input_kernel W_k (u_{k-1}, 4u_k), bias b_k (4u_k,), dropout
            mask m_k (batch, u_{k-1}) or None, h0_k, c0_k (batch, u_k),
            recurrent_kernel U_k (u_k, 4u_k)).
        feedback_kernels: free running, (F (u_D, 4u_1), G (m, 4u_1)): from
            the second step on, the bottom cell also reads h^D_{t-1} F +
            ctx_{t-1} G, the readout fed back (its bias goes in `projected`).

    # Returns
        (states, context_seq, alpha_seq): per cell, bottom first, its
        (h_seq, c_seq), each (time, batch, u_k); (time, batch, m);
        (time, batch, L).
    """
    memory = T.as_tensor_variable(memory)
    if memory_mask is None:
        memory_mask = T.ones(memory.shape[:2], dtype='int8')
    upper_inputs = []
    for input_kernel, bias, dropout_mask, cell_h0, cell_c0, cell_kernel in upper_cells:
        if dropout_mask is None:
            dropout_mask = T.ones((h0.shape[0], input_kernel.shape[0]), dtype=projected.dtype)
        upper_inputs += [input_kernel, bias, dropout_mask, cell_h0, cell_c0, cell_kernel]
    depth = 1 + len(upper_cells)
    feedback = list(feedback_kernels or ())
    outputs = AttentionForward(inner_activation, depth, bool(feedback))(
        projected, h0, c0, recurrent_kernel, context_kernel, memory, memory_projection,
        query_kernel, attention_vector, memory_mask, *(upper_inputs + feedback))
    states = [(outputs[0], outputs[1])] + [(outputs[4 + 2 * k], outputs[5 + 2 * k])
                                           for k in range(depth - 1)]
    return states, outputs[2], outputs[3]


# -- numpy versions of the maths (perform, and a readable reference) ----------

def _upper_groups(values, depth):
    """The per-cell groups of the cells above the bottom one, from a flat list."""
    n = len(UPPER_INPUT_NAMES)
    return [values[k * n:(k + 1) * n] for k in range(depth - 1)]


def numpy_forward(inputs, inner_activation, depth=1, feedback=False):
    """The forward loop in numpy: AttentionForward's inputs (a list, in its
    order) -> its outputs (a list, in its order). The gates (time, batch,
    4u_k) = (z_i, z_f, tanh(z_c), z_o) and the energies (time, batch, L, a)
    = tanh(P + q_t) are kept for the backward pass."""
    (projected, h0, c0, recurrent_kernel, context_kernel, memory, memory_projection,
     query_kernel, attention_vector, mask) = inputs[:10]
    n_upper = len(UPPER_INPUT_NAMES) * (depth - 1)
    upper = _upper_groups(inputs[10:10 + n_upper], depth)
    feedback_kernel, context_feedback_kernel = inputs[10 + n_upper:] if feedback else (None,) * 2
    time, batch, _ = projected.shape
    length, m = memory.shape[1:]
    dtype = projected.dtype
    states = [(h0, c0)] + [(group[3], group[4]) for group in upper]
    h_seqs = [np.empty((time,) + h.shape, dtype=dtype) for h, _ in states]
    c_seqs = [np.empty_like(h_seq) for h_seq in h_seqs]
    gates = [np.empty((time, batch, 4 * h.shape[1]), dtype=dtype) for h, _ in states]
    context_seq = np.empty((time, batch, m), dtype=dtype)
    alpha_seq = np.empty((time, batch, length), dtype=dtype)
    energies = np.empty((time, batch) + memory_projection.shape[1:], dtype=dtype)
    for t in range(time):
        query = states[-1][0].dot(query_kernel)                      # (batch, a)
        alpha, energy = attention_weights(memory_projection, query, attention_vector,
                                          mask)                  # (batch, L), (batch, L, a)
        context = np.einsum('bl,blm->bm', alpha, memory)              # (batch, m)
        h, c = states[0]
        z = projected[t] + h.dot(recurrent_kernel) + context.dot(context_kernel)
        if feedback and t > 0:
            # x_{t-1} W_1 without its bias: h^D_{t-1} F + ctx_{t-1} G
            z = z + states[-1][0].dot(feedback_kernel) + context_seq[t - 1].dot(
                context_feedback_kernel)                              # (batch, 4u_1)
        h, c, gates[0][t] = lstm_step(z, c, inner_activation)        # (batch, u_1)
        states[0] = (h, c)
        for k, (input_kernel, bias, dropout_mask, _, _, kernel) in enumerate(upper, 1):
            z = (h * dropout_mask).dot(input_kernel) + bias + states[k][0].dot(kernel)
            h, c, gates[k][t] = lstm_step(z, states[k][1], inner_activation)  # (batch, u_k)
            states[k] = (h, c)
        for k, (h, c) in enumerate(states):
            h_seqs[k][t], c_seqs[k][t] = h, c
        context_seq[t], alpha_seq[t], energies[t] = context, alpha, energy
    upper_seqs = [s for k in range(1, depth) for s in (h_seqs[k], c_seqs[k])]
    return ([h_seqs[0], c_seqs[0], context_seq, alpha_seq] + upper_seqs
            + [gates[0], energies] + gates[1:])


def numpy_backward(inputs, inner_activation, depth=1, feedback=False):
    """Back-propagation through the loop in numpy: AttentionGrad's inputs (a
    list, in its order) -> its outputs (the gradients of AttentionForward's
    inputs but the mask; memory's is through the context only: memory
    reaches the projection outside the Op)."""
    (h0, c0, recurrent_kernel, context_kernel, memory, query_kernel, attention_vector,
     mask) = inputs[:8]
    n_upper = len(UPPER_INPUT_NAMES) * (depth - 1)
    upper = _upper_groups(inputs[8:8 + n_upper], depth)
    n_params = 8 + n_upper + 2 * feedback
    feedback_kernel, context_feedback_kernel = inputs[8 + n_upper:n_params] if feedback \
        else (None,) * 2
    forward = inputs[n_params:n_params + 6 + 3 * (depth - 1)]
    output_grads = inputs[n_params + 6 + 3 * (depth - 1):]
    context_seq, alpha_seq = forward[2], forward[3]
    h_seqs = [forward[0]] + forward[4:4 + 2 * (depth - 1):2]
    c_seqs = [forward[1]] + forward[5:4 + 2 * (depth - 1):2]
    gates = [forward[4 + 2 * (depth - 1)]] + forward[6 + 2 * (depth - 1):]
    energies = forward[5 + 2 * (depth - 1)]
    dh_seqs = [output_grads[0]] + output_grads[4::2]
    dc_seqs = [output_grads[1]] + output_grads[5::2]
    d_context_seq, d_alpha_seq = output_grads[2], output_grads[3]
    h0s = [h0] + [group[3] for group in upper]
    c0s = [c0] + [group[4] for group in upper]
    kernels = [recurrent_kernel] + [group[5] for group in upper]

    time = gates[0].shape[0]
    dtype = h0.dtype
    d_gates = [np.zeros_like(g) for g in gates]
    d_kernels = [np.zeros_like(kernel) for kernel in kernels]
    dh_next = [np.zeros_like(h) for h in h0s]
    dc_next = [np.zeros_like(c) for c in c0s]
    d_inputs = [[np.zeros_like(group[0]), np.zeros(group[1].shape, dtype=dtype),
                 np.zeros_like(group[2])] for group in upper]
    d_context_kernel = np.zeros_like(context_kernel)
    d_memory = np.zeros_like(memory)
    d_projection = np.zeros(energies.shape[1:], dtype=dtype)
    d_query_kernel = np.zeros_like(query_kernel)
    d_vector = np.zeros_like(attention_vector)
    d_feedback_kernels = [np.zeros_like(k) for k in (feedback_kernel, context_feedback_kernel)
                          if k is not None]
    d_context_carry = np.zeros_like(context_seq[0])     # dz^1_{t+1} G^T, free running

    def previous(seqs, initial, k, t):
        return seqs[k][t - 1] if t > 0 else initial[k]

    for t in reversed(range(time)):
        # The cells above the bottom one, top first: each passes its input's
        # gradient (through its dropout mask) down to h^{k-1}_t.
        for k in reversed(range(1, depth)):
            input_kernel, _, dropout_mask = upper[k - 1][:3]
            dz, dc_next[k] = lstm_step_backward(
                gates[k][t], c_seqs[k][t], previous(c_seqs, c0s, k, t),
                dh_seqs[k][t] + dh_next[k], dc_seqs[k][t] + dc_next[k], inner_activation)
            d_gates[k][t] = dz
            d_kernels[k] += previous(h_seqs, h0s, k, t).T.dot(dz)
            below = h_seqs[k - 1][t]                                        # (batch, u_{k-1})
            d_inputs[k - 1][0] += (below * dropout_mask).T.dot(dz)
            d_inputs[k - 1][1] += dz.sum(axis=0)
            d_below = dz.dot(input_kernel.T)                                # (batch, u_{k-1})
            d_inputs[k - 1][2] += below * d_below
            dh_next[k - 1] += dropout_mask * d_below
            dh_next[k] = dz.dot(kernels[k].T)
        dz, dc_next[0] = lstm_step_backward(
            gates[0][t], c_seqs[0][t], previous(c_seqs, c0s, 0, t),
            dh_seqs[0][t] + dh_next[0], dc_seqs[0][t] + dc_next[0], inner_activation)
        d_gates[0][t] = dz
        d_kernels[0] += previous(h_seqs, h0s, 0, t).T.dot(dz)
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
        d_query_kernel += previous(h_seqs, h0s, depth - 1, t).T.dot(d_query)
        dh_next[0] = dz.dot(recurrent_kernel.T)
        dh_next[depth - 1] = dh_next[depth - 1] + d_query.dot(query_kernel.T)
        if feedback and t > 0:
            # z^1_t read h^D_{t-1} F and ctx_{t-1} G
            d_feedback_kernels[0] += h_seqs[depth - 1][t - 1].T.dot(dz)
            d_feedback_kernels[1] += context_seq[t - 1].T.dot(dz)
            dh_next[depth - 1] = dh_next[depth - 1] + dz.dot(feedback_kernel.T)
            d_context_carry = dz.dot(context_feedback_kernel.T)
        else:
            d_context_carry = np.zeros_like(d_context_carry)
    upper_grads = [g for k in range(1, depth)
                   for g in d_inputs[k - 1] + [dh_next[k], dc_next[k], d_kernels[k]]]
    return ([d_gates[0], dh_next[0], dc_next[0], d_kernels[0], d_context_kernel, d_memory,
             d_projection, d_query_kernel, d_vector] + upper_grads + d_feedback_kernels)


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
/* The per-cell input groups of the cells above the bottom one. */
#define ATTENTION_UPPER_INPUTS 6

/* One cell of the stack as the loops read it. Cell 0 (the bottom) reads
   the teacher-forced inputs (projected outside) and the context; cell
   k > 0 reads cell k-1's h_t through W, b and its dropout mask m
   (batch, in). */
template <typename T>
struct AttentionCell {
    npy_intp u, G, in;
    const T *h0, *c0, *U, *W, *b, *m;
};

/* The sizes of a call: time, batch, the bottom cell's units, memory length
   L, memory width m, attention width a, the top cell's units, and the
   shape each array of the forward and the backward pass has. */
struct AttentionSizes {
    npy_intp time, batch, units, length, m, a, top_units, G;
    /* Four slots each, the ones past an array's dimensions unused. */
    npy_intp gates[4], state[4], kernel[4], ctx_kernel[4], memory[4], projection[4];
    npy_intp query[4], vector[4], mask[4], seq[4], ctx[4], alpha[4], energy[4];

    AttentionSizes(npy_intp time_, PyArrayObject* h0, PyArrayObject* recurrent_kernel,
                   PyArrayObject* memory_, PyArrayObject* query_kernel, npy_intp top_units_)
        : time(time_), batch(PyArray_DIMS(h0)[0]), units(PyArray_DIMS(recurrent_kernel)[0]),
          length(PyArray_DIMS(memory_)[1]), m(PyArray_DIMS(memory_)[2]),
          a(PyArray_DIMS(query_kernel)[1]), top_units(top_units_), G(4 * units)
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
        attention_set_dims(seq, time, batch, units);
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

/* Reads and checks the upper cells' groups (W, b, m, h0, c0, U; `groups`
   points at cell 1's W) into cells[1 .. depth-1]; cells[0] is filled by
   the caller. The widest cell's units go to *widest. */
template <typename T>
static int attention_upper_cells(AttentionCell<T>* cells, int depth, PyArrayObject** groups,
                                 npy_intp batch, npy_intp* widest)
{
    *widest = cells[0].u;
    for (int k = 1; k < depth; ++k) {
        PyArrayObject** g = groups + ATTENTION_UPPER_INPUTS * (k - 1);
        AttentionCell<T>& cell = cells[k];
        cell.u = PyArray_DIMS(g[5])[0];
        cell.G = 4 * cell.u;
        cell.in = cells[k - 1].u;
        npy_intp kernel[2] = {cell.u, cell.G}, input_kernel[2] = {cell.in, cell.G};
        npy_intp bias[1] = {cell.G}, state[2] = {batch, cell.u}, mask[2] = {batch, cell.in};
        if (attention_check(g[0], "an upper cell's input_kernel (units below, 4 units)", 2,
                            input_kernel)
                || attention_check(g[1], "an upper cell's bias (4 units)", 1, bias)
                || attention_check(g[2], "an upper cell's dropout_mask (batch, units below)",
                                   2, mask)
                || attention_check(g[3], "an upper cell's h0 (batch, units)", 2, state)
                || attention_check(g[4], "an upper cell's c0 (batch, units)", 2, state)
                || attention_check(g[5], "an upper cell's recurrent_kernel (units, 4 units)",
                                   2, kernel))
            return -1;
        cell.W = (const T*)PyArray_DATA(g[0]);
        cell.b = (const T*)PyArray_DATA(g[1]);
        cell.m = (const T*)PyArray_DATA(g[2]);
        cell.h0 = (const T*)PyArray_DATA(g[3]);
        cell.c0 = (const T*)PyArray_DATA(g[4]);
        cell.U = (const T*)PyArray_DATA(g[5]);
        *widest = cell.u > *widest ? cell.u : *widest;
    }
    return 0;
}

/* The bottom cell as the loops read it (its input is projected outside). */
template <typename T>
static void attention_bottom_cell(AttentionCell<T>* cells, PyArrayObject* h0, PyArrayObject* c0,
                                  PyArrayObject* kernel)
{
    cells[0].u = PyArray_DIMS(kernel)[0];
    cells[0].G = 4 * cells[0].u;
    cells[0].in = 0;
    cells[0].h0 = (const T*)PyArray_DATA(h0);
    cells[0].c0 = (const T*)PyArray_DATA(c0);
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
        || attention_check(c0, "c0 (batch, units)", 2, s.state)
        || attention_check(kernel, "recurrent_kernel (units, 4 units)", 2, s.kernel)
        || attention_check(ctx_kernel, "context_kernel (memory dim, 4 units)", 2, s.ctx_kernel)
        || attention_check(memory, "memory (batch, length, dim)", 3, s.memory)
        || attention_check(query_kernel, "query_kernel (top units, attention dim)", 2, s.query)
        || attention_check(vector, "attention_vector (attention dim)", 1, s.vector)
        || attention_check(mask, "memory_mask (batch, length)", 2, s.mask)
        || s.check_blas_ints(widest);
}

/* The feedback kernels of a free-running decoder, checked: F (top units,
   4 units) and G (memory dim, 4 units), or NULLs without feedback. */
template <typename T>
static int attention_feedback_kernels(int feedback, PyArrayObject** kernels,
                                      const AttentionSizes& s, const T** F, const T** G)
{
    *F = *G = NULL;
    if (!feedback)
        return 0;
    const npy_intp f_dims[2] = {s.top_units, s.G}, g_dims[2] = {s.m, s.G};
    if (attention_check(kernels[0], "feedback_kernel (top units, 4 units)", 2, f_dims)
            || attention_check(kernels[1], "context_feedback_kernel (memory dim, 4 units)", 2,
                               g_dims))
        return -1;
    *F = (const T*)PyArray_DATA(kernels[0]);
    *G = (const T*)PyArray_DATA(kernels[1]);
    return 0;
}

/* in: projected, h0, c0, U, V, memory, P, W_a, v, mask, then per upper cell
   W, b, m, h0, c0, U; with feedback then F, G. out: h_seq, c_seq, ctx_seq,
   alpha_seq, per upper cell h_seq, c_seq; then gates, energies, per upper
   cell gates. */
template <typename T>
static int attention_forward(int kind, int typenum, int depth, int feedback,
                             PyArrayObject** in, PyArrayObject** out)
{
    if (attention_check_depth(depth))
        return -1;
    const int n_cells_in = 10 + ATTENTION_UPPER_INPUTS * (depth - 1);
    FusedHeldArrays held;
    if (!held.add_all(in, n_cells_in + 2 * feedback))
        return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *projected = x[0], *h0 = x[1], *c0 = x[2], *kernel = x[3];
    PyArrayObject *ctx_kernel = x[4], *memory = x[5], *projection = x[6];
    PyArrayObject *query_kernel = x[7], *vector = x[8], *mask = x[9];
    const npy_intp batch = PyArray_DIMS(h0)[0];
    AttentionCell<T> cells[ATTENTION_MAX_DEPTH];
    attention_bottom_cell<T>(cells, h0, c0, kernel);
    npy_intp widest = 0;
    if (attention_upper_cells<T>(cells, depth, x + 10, batch, &widest))
        return -1;
    const AttentionSizes s(PyArray_DIMS(projected)[0], h0, kernel, memory, query_kernel,
                           cells[depth - 1].u);
    const npy_intp G = s.G;
    if (attention_check(projected, "projected (time, batch, 4 units)", 3, s.gates)
            || attention_check(projection, "memory_projection (batch, length, attention dim)",
                               3, s.projection)
            || attention_check_shared(s, h0, c0, kernel, ctx_kernel, memory, query_kernel,
                                      vector, mask, widest))
        return -1;
    const T *F, *FG;
    if (attention_feedback_kernels<T>(feedback, x + n_cells_in, s, &F, &FG))
        return -1;
    const int n_visible = 4 + 2 * (depth - 1);
    if (fused_prepare_output(&out[0], 3, s.seq, typenum)
            || fused_prepare_output(&out[1], 3, s.seq, typenum)
            || fused_prepare_output(&out[2], 3, s.ctx, typenum)
            || fused_prepare_output(&out[3], 3, s.alpha, typenum)
            || fused_prepare_output(&out[n_visible], 3, s.gates, typenum)
            || fused_prepare_output(&out[n_visible + 1], 4, s.energy, typenum))
        return -1;
    for (int k = 1; k < depth; ++k) {
        npy_intp seq[3] = {s.time, batch, cells[k].u}, gates[3] = {s.time, batch, cells[k].G};
        if (fused_prepare_output(&out[4 + 2 * (k - 1)], 3, seq, typenum)
                || fused_prepare_output(&out[5 + 2 * (k - 1)], 3, seq, typenum)
                || fused_prepare_output(&out[n_visible + 1 + k], 3, gates, typenum))
            return -1;
    }
    const npy_intp q_dims[2] = {s.batch, s.a};
    const npy_intp x_dims[2] = {s.batch, widest};
    PyArrayObject* q_array = held.scratch(2, q_dims, typenum);
    PyArrayObject* x_array = held.scratch(2, x_dims, typenum);
    if (!q_array || !x_array)
        return -1;

    T* Hk[ATTENTION_MAX_DEPTH];
    T* Ck[ATTENTION_MAX_DEPTH];
    T* Zk[ATTENTION_MAX_DEPTH];
    for (int k = 0; k < depth; ++k) {
        Hk[k] = (T*)PyArray_DATA(out[k ? 4 + 2 * (k - 1) : 0]);
        Ck[k] = (T*)PyArray_DATA(out[k ? 5 + 2 * (k - 1) : 1]);
        Zk[k] = (T*)PyArray_DATA(out[k ? n_visible + 1 + k : n_visible]);
    }
    const T* PR = (const T*)PyArray_DATA(projected);
    const T* V = (const T*)PyArray_DATA(ctx_kernel);
    const T* HM = (const T*)PyArray_DATA(memory);
    const T* PM = (const T*)PyArray_DATA(projection);
    const T* WA = (const T*)PyArray_DATA(query_kernel);
    const T* VA = (const T*)PyArray_DATA(vector);
    const npy_int8* M = (const npy_int8*)PyArray_DATA(mask);
    T* CTX = (T*)PyArray_DATA(out[2]);
    T* A = (T*)PyArray_DATA(out[3]);
    T* E = (T*)PyArray_DATA(out[n_visible + 1]);
    T* Q = (T*)PyArray_DATA(q_array);
    T* X = (T*)PyArray_DATA(x_array);
    const npy_intp B = s.batch, u = s.units, L = s.length, m = s.m, a = s.a;
    const npy_intp top_u = s.top_units;
    const int iB = (int)B, iu = (int)u, iG = (int)G, im = (int)m, ia = (int)a;

    for (npy_intp t = 0; t < s.time; ++t) {
        if (B == 0)
            continue;
        /* q = h^D_{t-1} W_a */
        const T* top_prev = t ? Hk[depth - 1] + (t - 1) * B * top_u : cells[depth - 1].h0;
        if (top_u > 0 && ia > 0)
            fused_gemm('N', 'N', ia, iB, (int)top_u, (T)1, WA, ia, top_prev, (int)top_u,
                       (T)0, Q, ia);
        else
            memset(Q, 0, sizeof(T) * B * a);
        /* The bottom cell: z = projected_t + h_prev U + ctx V */
        const T* h_prev = t ? Hk[0] + (t - 1) * B * u : cells[0].h0;
        const T* c_prev = t ? Ck[0] + (t - 1) * B * u : cells[0].c0;
        T* z = Zk[0] + t * B * G;
        T* ctx = CTX + t * B * m;
        T* alpha = A + t * B * L;
        T* energy = E + t * B * L * a;
        memcpy(z, PR + t * B * G, sizeof(T) * B * G);
        if (iu > 0)
            fused_gemm('N', 'N', iG, iB, iu, (T)1, cells[0].U, iG, h_prev, iu, (T)1, z, iG);
        for (npy_intp b = 0; b < B; ++b)
            attention_row<T>(PM + b * L * a, HM + b * L * m, M + b * L, Q + b * a, VA,
                             energy + b * L * a, alpha + b * L, ctx + b * m, L, a, m);
        if (im > 0)
            fused_gemm('N', 'N', iG, iB, im, (T)1, V, iG, ctx, im, (T)1, z, iG);
        /* Free running: the readout x_{t-1} fed back, folded into
           h^D_{t-1} F + ctx_{t-1} G (its bias is in projected_t) */
        if (feedback && t > 0) {
            if (top_u > 0)
                fused_gemm('N', 'N', iG, iB, (int)top_u, (T)1, F, iG, top_prev, (int)top_u,
                           (T)1, z, iG);
            if (im > 0)
                fused_gemm('N', 'N', iG, iB, im, (T)1, FG, iG, CTX + (t - 1) * B * m, im,
                           (T)1, z, iG);
        }
        for (npy_intp b = 0; b < B; ++b)
            fused_forward_row_of<T>(kind, z + b * G, c_prev + b * u, Ck[0] + (t * B + b) * u,
                                    Hk[0] + (t * B + b) * u, u);
        /* The cells above: z^k = (h^{k-1}_t * m_k) W_k + b_k + h^k_{t-1} U_k */
        for (int k = 1; k < depth; ++k) {
            const AttentionCell<T>& cell = cells[k];
            const npy_intp uk = cell.u, Gk = cell.G, in = cell.in;
            const T* below = Hk[k - 1] + t * B * in;
            const T* hk_prev = t ? Hk[k] + (t - 1) * B * uk : cell.h0;
            const T* ck_prev = t ? Ck[k] + (t - 1) * B * uk : cell.c0;
            T* zk = Zk[k] + t * B * Gk;
            for (npy_intp j = 0; j < B * in; ++j)
                X[j] = below[j] * cell.m[j];
            for (npy_intp b = 0; b < B; ++b)
                memcpy(zk + b * Gk, cell.b, sizeof(T) * Gk);
            if (in > 0 && Gk > 0)
                fused_gemm('N', 'N', (int)Gk, iB, (int)in, (T)1, cell.W, (int)Gk, X, (int)in,
                           (T)1, zk, (int)Gk);
            if (uk > 0)
                fused_gemm('N', 'N', (int)Gk, iB, (int)uk, (T)1, cell.U, (int)Gk, hk_prev,
                           (int)uk, (T)1, zk, (int)Gk);
            for (npy_intp b = 0; b < B; ++b)
                fused_forward_row_of<T>(kind, zk + b * Gk, ck_prev + b * uk,
                                        Ck[k] + (t * B + b) * uk, Hk[k] + (t * B + b) * uk, uk);
        }
    }
    return 0;
}

/* dU = sum_t h_{t-1}^T dz_t = h0^T dz_0 + h_seq[:-1]^T dz[1:]: two GEMMs
   over every step (rows: time * batch); `cols` is dz's width. */
template <typename T>
static void attention_recurrent_kernel_grad(const T* DZ, const T* h0, const T* H, T* DU,
                                            npy_intp time, npy_intp B, npy_intp u,
                                            npy_intp cols)
{
    memset(DU, 0, sizeof(T) * u * cols);
    if (time == 0 || B == 0 || u == 0 || cols == 0)
        return;
    fused_gemm('N', 'T', (int)cols, (int)u, (int)B, (T)1, DZ, (int)cols, h0, (int)u, (T)0,
               DU, (int)cols);
    if (time > 1)
        fused_gemm('N', 'T', (int)cols, (int)u, (int)((time - 1) * B), (T)1, DZ + B * cols,
                   (int)cols, H, (int)u, (T)1, DU, (int)cols);
}

/* in: h0, c0, U, V, memory, W_a, v, mask, the upper cells' groups (W, b, m,
   h0, c0, U), every output of attention_forward, then the gradients of its
   visible outputs (h_seq, c_seq, ctx_seq, alpha_seq, per upper cell h_seq,
   c_seq); with feedback F and G after the upper cells' groups. out: d
   projected, dh0, dc0, dU, dV, d memory, d projection, dW_a, dv, then per
   upper cell dW, db, dm, dh0, dc0, dU; with feedback then dF, dG. */
template <typename T>
static int attention_backward(int kind, int typenum, int depth, int feedback,
                              PyArrayObject** in, PyArrayObject** out)
{
    if (attention_check_depth(depth))
        return -1;
    const int n_cells_in = 8 + ATTENTION_UPPER_INPUTS * (depth - 1);
    const int n_params = n_cells_in + 2 * feedback;
    const int n_visible = 4 + 2 * (depth - 1);
    const int n_forward = n_visible + 2 + (depth - 1);
    FusedHeldArrays held;
    if (!held.add_all(in, n_params + n_forward + n_visible))
        return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *h0 = x[0], *c0 = x[1], *kernel = x[2], *ctx_kernel = x[3], *memory = x[4];
    PyArrayObject *query_kernel = x[5], *vector = x[6], *mask = x[7];
    PyArrayObject** fwd = x + n_params;            /* the forward pass's outputs */
    PyArrayObject** grad = fwd + n_forward;        /* the gradients reaching the visible ones */
    PyArrayObject *h_seq = fwd[0], *c_seq = fwd[1], *ctx_seq = fwd[2], *alpha_seq = fwd[3];
    PyArrayObject *gates = fwd[n_visible], *energies = fwd[n_visible + 1];
    PyArrayObject *dh_seq = grad[0], *dc_seq = grad[1], *dctx_seq = grad[2];
    PyArrayObject* dalpha_seq = grad[3];
    const npy_intp batch = PyArray_DIMS(h0)[0];
    AttentionCell<T> cells[ATTENTION_MAX_DEPTH];
    attention_bottom_cell<T>(cells, h0, c0, kernel);
    npy_intp widest = 0;
    if (attention_upper_cells<T>(cells, depth, x + 8, batch, &widest))
        return -1;
    const AttentionSizes s(PyArray_DIMS(gates)[0], h0, kernel, memory, query_kernel,
                           cells[depth - 1].u);
    const npy_intp G = s.G;
    if (attention_check(gates, "gates (time, batch, 4 units)", 3, s.gates)
            || attention_check_shared(s, h0, c0, kernel, ctx_kernel, memory, query_kernel,
                                      vector, mask, widest)
            || attention_check(h_seq, "h_seq", 3, s.seq)
            || attention_check(c_seq, "c_seq", 3, s.seq)
            || attention_check(dh_seq, "dh_seq", 3, s.seq)
            || attention_check(dc_seq, "dc_seq", 3, s.seq)
            || attention_check(ctx_seq, "context_seq", 3, s.ctx)
            || attention_check(dctx_seq, "d context_seq", 3, s.ctx)
            || attention_check(alpha_seq, "alpha_seq", 3, s.alpha)
            || attention_check(dalpha_seq, "d alpha_seq", 3, s.alpha)
            || attention_check(energies, "energies", 4, s.energy))
        return -1;
    const T *F, *FG;
    if (attention_feedback_kernels<T>(feedback, x + n_cells_in, s, &F, &FG))
        return -1;
    for (int k = 1; k < depth; ++k) {
        npy_intp seq[3] = {s.time, batch, cells[k].u}, gk[3] = {s.time, batch, cells[k].G};
        if (attention_check(fwd[4 + 2 * (k - 1)], "an upper cell's h_seq", 3, seq)
                || attention_check(fwd[5 + 2 * (k - 1)], "an upper cell's c_seq", 3, seq)
                || attention_check(fwd[n_visible + 1 + k], "an upper cell's gates", 3, gk)
                || attention_check(grad[4 + 2 * (k - 1)], "an upper cell's dh_seq", 3, seq)
                || attention_check(grad[5 + 2 * (k - 1)], "an upper cell's dc_seq", 3, seq))
            return -1;
    }
    if (fused_prepare_output(&out[0], 3, s.gates, typenum)
            || fused_prepare_output(&out[1], 2, s.state, typenum)
            || fused_prepare_output(&out[2], 2, s.state, typenum)
            || fused_prepare_output(&out[3], 2, s.kernel, typenum)
            || fused_prepare_output(&out[4], 2, s.ctx_kernel, typenum)
            || fused_prepare_output(&out[5], 3, s.memory, typenum)
            || fused_prepare_output(&out[6], 3, s.projection, typenum)
            || fused_prepare_output(&out[7], 2, s.query, typenum)
            || fused_prepare_output(&out[8], 1, s.vector, typenum))
        return -1;
    /* The upper cells' gradient outputs mirror their input groups. */
    for (int k = 1; k < depth; ++k) {
        PyArrayObject** g = x + 8 + ATTENTION_UPPER_INPUTS * (k - 1);
        for (int j = 0; j < ATTENTION_UPPER_INPUTS; ++j)
            if (fused_prepare_output(&out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + j],
                                     PyArray_NDIM(g[j]), PyArray_DIMS(g[j]), typenum))
                return -1;
    }
    const int n_cells_out = 9 + ATTENTION_UPPER_INPUTS * (depth - 1);
    const npy_intp df_dims[2] = {s.top_units, s.G}, dg_dims[2] = {s.m, s.G};
    if (feedback && (fused_prepare_output(&out[n_cells_out], 2, df_dims, typenum)
                     || fused_prepare_output(&out[n_cells_out + 1], 2, dg_dims, typenum)))
        return -1;
    const npy_intp dq_dims[3] = {s.time, s.batch, s.a};
    const npy_intp dctx_dims[2] = {s.batch, s.m};
    const npy_intp de_dims[1] = {s.length};
    const npy_intp dv_dims[1] = {s.a};
    const npy_intp dx_dims[2] = {s.batch, widest};
    const npy_intp sum_dims[1] = {4 * widest};
    PyArrayObject* dq_array = held.scratch(3, dq_dims, typenum);
    PyArrayObject* dctx_array = held.scratch(2, dctx_dims, typenum);
    PyArrayObject* de_array = held.scratch(1, de_dims, typenum);
    PyArrayObject* dv_array = held.scratch(1, dv_dims, NPY_FLOAT64);
    PyArrayObject* dx_array = held.scratch(2, dx_dims, typenum);
    PyArrayObject* sum_array = held.scratch(1, sum_dims, NPY_FLOAT64);
    /* Free running: dL/dctx_{t-1} through step t's feedback, dz^1_t G^T */
    PyArrayObject* carry_array = held.scratch(2, dctx_dims, typenum);
    if (!dq_array || !dctx_array || !de_array || !dv_array || !dx_array || !sum_array
            || !carry_array)
        return -1;
    T* ctx_carry = (T*)PyArray_DATA(carry_array);
    memset(ctx_carry, 0, sizeof(T) * s.batch * s.m);
    /* Per upper cell: its dz at every step (for its weights' GEMMs). */
    T* DZk[ATTENTION_MAX_DEPTH];
    const T* Hk[ATTENTION_MAX_DEPTH];
    const T* Ck[ATTENTION_MAX_DEPTH];
    const T* Zk[ATTENTION_MAX_DEPTH];
    const T* DHk[ATTENTION_MAX_DEPTH];
    const T* DCk[ATTENTION_MAX_DEPTH];
    T* dh_next[ATTENTION_MAX_DEPTH];   /* dL/dh^k_t through step t+1 and cell k+1; then dh0 */
    T* dc_next[ATTENTION_MAX_DEPTH];
    DZk[0] = (T*)PyArray_DATA(out[0]);
    dh_next[0] = (T*)PyArray_DATA(out[1]);
    dc_next[0] = (T*)PyArray_DATA(out[2]);
    for (int k = 0; k < depth; ++k) {
        Hk[k] = (const T*)PyArray_DATA(fwd[k ? 4 + 2 * (k - 1) : 0]);
        Ck[k] = (const T*)PyArray_DATA(fwd[k ? 5 + 2 * (k - 1) : 1]);
        Zk[k] = (const T*)PyArray_DATA(fwd[k ? n_visible + 1 + k : n_visible]);
        DHk[k] = (const T*)PyArray_DATA(grad[k ? 4 + 2 * (k - 1) : 0]);
        DCk[k] = (const T*)PyArray_DATA(grad[k ? 5 + 2 * (k - 1) : 1]);
        if (k) {
            const npy_intp dz_dims[3] = {s.time, batch, cells[k].G};
            PyArrayObject* dz_array = held.scratch(3, dz_dims, typenum);
            if (!dz_array)
                return -1;
            DZk[k] = (T*)PyArray_DATA(dz_array);
            dh_next[k] = (T*)PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + 3]);
            dc_next[k] = (T*)PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + 4]);
        }
        memset(dh_next[k], 0, sizeof(T) * batch * cells[k].u);
        memset(dc_next[k], 0, sizeof(T) * batch * cells[k].u);
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
    T* DU = (T*)PyArray_DATA(out[3]);
    T* DV = (T*)PyArray_DATA(out[4]);
    T* DHM = (T*)PyArray_DATA(out[5]);
    T* DPM = (T*)PyArray_DATA(out[6]);
    T* DWA = (T*)PyArray_DATA(out[7]);
    T* DVA = (T*)PyArray_DATA(out[8]);
    T* DQ = (T*)PyArray_DATA(dq_array);
    T* dctx = (T*)PyArray_DATA(dctx_array);
    T* de = (T*)PyArray_DATA(de_array);
    T* DX = (T*)PyArray_DATA(dx_array);
    double* dv = (double*)PyArray_DATA(dv_array);
    double* sums = (double*)PyArray_DATA(sum_array);
    const npy_intp B = s.batch, u = s.units, L = s.length, m = s.m, a = s.a, time = s.time;
    const npy_intp top_u = s.top_units;
    const int iB = (int)B, iu = (int)u, iG = (int)G, im = (int)m, ia = (int)a;
    memset(DHM, 0, sizeof(T) * B * L * m);
    memset(DPM, 0, sizeof(T) * B * L * a);
    for (int k = 1; k < depth; ++k)    /* dm accumulates over the steps */
        memset(PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + 2]), 0,
               sizeof(T) * B * cells[k].in);

    for (npy_intp t = time - 1; t >= 0 && B > 0; --t) {
        /* The cells above the bottom one, top first: each passes its input's
           gradient, through its dropout mask, down to h^{k-1}_t. */
        for (int k = depth - 1; k >= 1; --k) {
            const AttentionCell<T>& cell = cells[k];
            const npy_intp uk = cell.u, Gk = cell.G, in = cell.in;
            const T* ck_prev = t ? Ck[k] + (t - 1) * B * uk : cell.c0;
            T* dz = DZk[k] + t * B * Gk;
            for (npy_intp b = 0; b < B; ++b) {
                const npy_intp row = t * B + b;
                fused_backward_row_of<T>(kind, Zk[k] + row * Gk, Ck[k] + row * uk,
                                         ck_prev + b * uk, DHk[k] + row * uk,
                                         DCk[k] + row * uk, dz + b * Gk, dh_next[k] + b * uk,
                                         dc_next[k] + b * uk, uk);
            }
            /* d below = dz W^T; dm += h^{k-1}_t * d below; dh^{k-1}_t += m * d below */
            if (in > 0 && Gk > 0)
                fused_gemm('T', 'N', (int)in, iB, (int)Gk, (T)1, cell.W, (int)Gk, dz, (int)Gk,
                           (T)0, DX, (int)in);
            else
                memset(DX, 0, sizeof(T) * B * in);
            T* DM = (T*)PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + 2]);
            const T* below = Hk[k - 1] + t * B * in;
            for (npy_intp j = 0; j < B * in; ++j) {
                DM[j] += below[j] * DX[j];
                dh_next[k - 1][j] += cell.m[j] * DX[j];
            }
            /* dL/dh^k_{t-1} = dz U_k^T (fused_backward_row zeroed dh_next) */
            if (uk > 0 && Gk > 0)
                fused_gemm('T', 'N', (int)uk, iB, (int)Gk, (T)1, cell.U, (int)Gk, dz, (int)Gk,
                           (T)1, dh_next[k], (int)uk);
        }
        const T* c_prev = t ? Ck[0] + (t - 1) * B * u : cells[0].c0;
        T* dz = DZk[0] + t * B * G;
        T* dq = DQ + t * B * a;
        for (npy_intp b = 0; b < B; ++b) {
            const npy_intp row = t * B + b;
            fused_backward_row_of<T>(kind, Zk[0] + row * G, Ck[0] + row * u, c_prev + b * u,
                                     DHk[0] + row * u, DCk[0] + row * u, dz + b * G,
                                     dh_next[0] + b * u, dc_next[0] + b * u, u);
        }
        /* d ctx = dctx_seq_t + dz V^T (+ dz^1_{t+1} G^T, free running) */
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
        /* dL/dh^1_{t-1} = dz U^T; the query read h^D_{t-1}: dq W_a^T */
        if (iu > 0 && iG > 0)
            fused_gemm('T', 'N', iu, iB, iG, (T)1, cells[0].U, iG, dz, iG, (T)1, dh_next[0],
                       iu);
        if (top_u > 0 && ia > 0)
            fused_gemm('T', 'N', (int)top_u, iB, ia, (T)1, WA, ia, dq, ia, (T)1,
                       dh_next[depth - 1], (int)top_u);
        /* Free running, t >= 1: z^1_t read h^D_{t-1} F and ctx_{t-1} G */
        if (feedback && t > 0) {
            if (top_u > 0 && iG > 0)
                fused_gemm('T', 'N', (int)top_u, iB, iG, (T)1, F, iG, dz, iG, (T)1,
                           dh_next[depth - 1], (int)top_u);
            if (im > 0 && iG > 0)
                fused_gemm('T', 'N', im, iB, iG, (T)1, FG, iG, dz, iG, (T)0, ctx_carry, im);
        }
    }
    /* The weights' gradients, each as GEMMs over every step at once:
       dU_k = sum_t h^k_{t-1}^T dz^k_t, dW_a = sum_t h^D_{t-1}^T dq_t,
       dV = ctx^T dz^1, dW_k = (h^{k-1} * m_k)^T dz^k, db_k = sum dz^k. */
    attention_recurrent_kernel_grad<T>(DZk[0], cells[0].h0, Hk[0], DU, time, B, u, G);
    attention_recurrent_kernel_grad<T>(DQ, cells[depth - 1].h0, Hk[depth - 1], DWA, time, B,
                                       top_u, a);
    memset(DV, 0, sizeof(T) * m * G);
    if (time > 0 && B > 0 && im > 0 && iG > 0)
        fused_gemm('N', 'T', iG, im, (int)(time * B), (T)1, DZk[0], iG, CTX, im, (T)0, DV, iG);
    for (int k = 1; k < depth; ++k) {
        const AttentionCell<T>& cell = cells[k];
        const npy_intp uk = cell.u, Gk = cell.G, in = cell.in;
        T* DW = (T*)PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1)]);
        T* DB = (T*)PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + 1]);
        T* DUk = (T*)PyArray_DATA(out[9 + ATTENTION_UPPER_INPUTS * (k - 1) + 5]);
        attention_recurrent_kernel_grad<T>(DZk[k], cell.h0, Hk[k], DUk, time, B, uk, Gk);
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
    }
    return 0;
}
#endif
"""

class _FusedAttentionOp(BlasOp):
    """What the forward and the gradient Op share: parameters and C setup."""

    __props__ = ('inner_activation', 'depth', 'feedback')

    def __init__(self, inner_activation='hard_sigmoid', depth=1, feedback=False):
        self.inner_activation = check_choice('inner_activation', inner_activation,
                                             INNER_ACTIVATIONS)
        if not 1 <= int(depth) <= MAX_DEPTH:
            raise ValueError('depth must be 1 to %d, got %r' % (MAX_DEPTH, depth))
        self.depth = int(depth)
        self.feedback = bool(feedback)
        super(_FusedAttentionOp, self).__init__()


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

    def _upper_inputs(self, values, dtype):
        """The upper cells' groups, checked: 6 inputs per cell above the bottom."""
        names = [('%s_%d' % (name, k + 2), ndim) for k in range(self.depth - 1)
                 for name, ndim in zip(UPPER_INPUT_NAMES, UPPER_INPUT_NDIMS)]
        return self._checked_group(values, names, 'of depth %d' % self.depth, 'upper cells',
                                   dtype)

    def _feedback_inputs(self, values, dtype):
        """The feedback kernels F, G, checked (none without feedback)."""
        names = list(zip(FEEDBACK_INPUT_NAMES, (2, 2))) if self.feedback else []
        return self._checked_group(values, names, 'with feedback=%s' % self.feedback,
                                   'feedback kernels', dtype)

    # -- C (BlasOp: BLAS, VECTORISE_FLAGS as the LSTM Op) ---------------------
    def _support_code_text(self):
        return fused_lstm._SUPPORT_CODE + _ATTENTION_C

    def _c_call(self, node, inputs, outputs, sub, function):
        return self._c_call_template % dict(
            c_type_settings(node.outputs[0].dtype),
            kind=fused_lstm.GATE_KINDS[self.inner_activation], function=function,
            depth=self.depth, feedback=int(self.feedback), n_in=len(inputs), n_out=len(outputs), inputs=', '.join(inputs),
            outputs=', '.join(outputs),
            copy_back='\n'.join('%s = out_arrays[%d];' % (o, k) for k, o in enumerate(outputs)),
            fail=sub['fail'])

    _c_call_template = """
        {
            PyArrayObject* in_arrays[%(n_in)s] = {%(inputs)s};
            PyArrayObject* out_arrays[%(n_out)s] = {%(outputs)s};
            int status = %(function)s<%(ctype)s>(%(kind)s, %(typenum)s, %(depth)s,
                                                 %(feedback)s, in_arrays, out_arrays);
            %(copy_back)s
            if (status != 0) {
                %(fail)s
            }
        }
        """


class AttentionForward(_FusedAttentionOp):
    """Runs the teacher-forced attention decoder (see the module docstring).

    Inputs: projected (time, batch, 4u), h0, c0 (batch, u), recurrent_kernel
    U (u, 4u), context_kernel V (m, 4u), memory H (batch, L, m),
    memory_projection P (batch, L, a), query_kernel W_a (u_D, a),
    attention_vector v (a,), memory_mask (batch, L) (cast to int8); then per
    cell above the bottom one input_kernel W_k (u_{k-1}, 4u_k), bias b_k
    (4u_k,), dropout_mask m_k (batch, u_{k-1}), h0_k, c0_k (batch, u_k),
    recurrent_kernel U_k (u_k, 4u_k).

    Outputs: h_seq, c_seq (time, batch, u), context_seq (time, batch, m),
    alpha_seq (time, batch, L), per upper cell h_seq_k, c_seq_k
    (time, batch, u_k); and for the gradient only gates (time, batch, 4u),
    energies (time, batch, L, a) and per upper cell gates_k.

    # Arguments
        inner_activation: 'hard_sigmoid' or 'sigmoid', the gates' activation.
        depth: the number of cells, 1 to MAX_DEPTH.
    """

    def make_node(self, projected, h0, c0, recurrent_kernel, context_kernel, memory,
                  memory_projection, query_kernel, attention_vector, memory_mask, *rest):
        inputs = check_float_inputs(list(zip(_BOTTOM_NAMES, _BOTTOM_NDIMS)),
                                    [projected, h0, c0, recurrent_kernel, context_kernel,
                                     memory, memory_projection, query_kernel,
                                     attention_vector], 'the fused attention decoder')
        dtype = inputs[0].dtype
        inputs.append(self._mask_input(memory_mask))
        n_upper = len(UPPER_INPUT_NAMES) * (self.depth - 1)
        inputs += self._upper_inputs(list(rest[:n_upper]), dtype)
        inputs += self._feedback_inputs(list(rest[n_upper:]), dtype)
        ndims = [3] * n_visible_outputs(self.depth) + [3, 4] + [3] * (self.depth - 1)
        return Apply(self, inputs, [self._tensor_type(dtype, n)() for n in ndims])

    def perform(self, node, inputs, output_storage):
        results = numpy_forward(list(inputs), self.inner_activation, self.depth,
                                self.feedback)
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        projected, h0, _, _, _, memory, projection = input_shapes[:7]
        time, batch, n_gates = projected
        upper = _upper_groups(input_shapes[10:], self.depth)
        seqs = [(time, batch, h0[1])] * 2 + [(time, batch, memory[2]),
                                             (time, batch, memory[1])]
        for group in upper:
            seqs += [(time, batch, group[5][0])] * 2
        gates = [(time, batch, n_gates), (time, batch, memory[1], projection[2])]
        return seqs + gates + [(time, batch, group[5][1]) for group in upper]

    def connection_pattern(self, node):
        n_out = len(node.outputs)
        pattern = [[True] * n_out for _ in node.inputs]
        pattern[9] = [False] * n_out                          # the memory mask
        return pattern

    def L_op(self, inputs, outputs, output_grads):
        n_visible = n_visible_outputs(self.depth)
        differentiable = inputs[:9] + inputs[10:]
        for grad in output_grads[n_visible:]:
            if not isinstance(grad.type, DisconnectedType):
                message = ('the gates and energies outputs of AttentionForward are for its '
                           'gradient only')
                grads = [grad_not_implemented(self, k, x, message)
                         for k, x in enumerate(inputs)]
                grads[9] = DisconnectedType()()
                return grads
        grads_in = [output_grad_or_zeros(g, o)
                    for g, o in zip(output_grads[:n_visible], outputs[:n_visible])]
        (_, h0, c0, recurrent_kernel, context_kernel, memory, _, query_kernel,
         attention_vector) = inputs[:9]
        mask = inputs[9]
        grads = AttentionGrad(self.inner_activation, self.depth, self.feedback)(
            h0, c0, recurrent_kernel, context_kernel, memory, query_kernel, attention_vector,
            mask, *(list(inputs[10:]) + list(outputs) + grads_in))
        grads = [T.patternbroadcast(g, x.broadcastable) for g, x in zip(grads, differentiable)]
        return grads[:9] + [DisconnectedType()()] + grads[9:]

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_call(node, inputs, outputs, sub, 'attention_forward')


class AttentionGrad(_FusedAttentionOp):
    """The gradient of `AttentionForward`: back-propagation through the loop.

    Inputs: h0, c0, recurrent_kernel, context_kernel, memory, query_kernel,
    attention_vector, memory_mask; the upper cells' groups as
    AttentionForward takes them; AttentionForward's outputs; the gradients
    reaching its visible outputs (h_seq, c_seq, context_seq, alpha_seq, per
    upper cell h_seq_k, c_seq_k) from outside.

    Outputs: the gradients of projected, h0, c0, recurrent_kernel,
    context_kernel, memory (through the context), memory_projection,
    query_kernel and attention_vector, then of each upper cell's group:

        dh^D_t = dh_seq^D_t + dz^D_{t+1} U_D^T + dq_{t+1} W_a^T
        dh^k_t = dh_seq^k_t + dz^k_{t+1} U_k^T + m_{k+1} * (dz^{k+1}_t W_{k+1}^T)
        dz^k_t: the LSTM step's gradient (seq2seq.ops.fused_lstm.LSTMGrad)
        dctx_t = dctx_seq_t + dz^1_t V^T
        dalpha_tj = dalpha_seq_tj + dctx_t . H_j
        de_tj = alpha_tj (dalpha_tj - sum_k alpha_tk dalpha_tk)
        dP_j += de_tj v (1 - E_tj^2);   dq_t = sum_j de_tj v (1 - E_tj^2)
        dv = sum de_tj E_tj (in double);  dH_j += alpha_tj dctx_t
        dU_k = sum_t h^k_{t-1}^T dz^k_t,  dW_a = sum_t h^D_{t-1}^T dq_t,
        dV = sum_t ctx_t^T dz^1_t,  dW_k = sum_t (h^{k-1}_t * m_k)^T dz^k_t,
        db_k = sum_t dz^k_t (in double),  dm_k = sum_t h^{k-1}_t * (dz^k_t W_k^T)

    (D = depth; with depth 1 the first line is the only one.)
    """

    def make_node(self, h0, c0, recurrent_kernel, context_kernel, memory, query_kernel,
                  attention_vector, mask, *rest):
        names = [('h0', 2), ('c0', 2), ('recurrent_kernel', 2), ('context_kernel', 2),
                 ('memory', 3), ('query_kernel', 2), ('attention_vector', 1)]
        first = check_float_inputs(names, [h0, c0, recurrent_kernel, context_kernel, memory,
                                           query_kernel, attention_vector],
                                   'the fused attention decoder')
        dtype = first[0].dtype
        n_upper = len(UPPER_INPUT_NAMES) * (self.depth - 1)
        n_params = n_upper + 2 * self.feedback
        upper = self._upper_inputs(list(rest[:n_upper]), dtype)
        feedback = self._feedback_inputs(list(rest[n_upper:n_params]), dtype)
        output_names = forward_output_names(self.depth)
        n_visible = n_visible_outputs(self.depth)
        names = [(name, 4 if name == 'energies' else 3) for name in output_names] + [
            ('d_' + name, 3) for name in output_names[:n_visible]]
        if len(rest) - n_params != len(names):
            raise TypeError('AttentionGrad of depth %d takes %d inputs, got %d'
                            % (self.depth, 8 + n_params + len(names), 8 + len(rest)))
        sequences = check_float_inputs(names, list(rest[n_params:]),
                                       'the fused attention decoder')
        if sequences[0].dtype != dtype:
            raise TypeError('h_seq must have dtype %s like h0, got %s'
                            % (dtype, sequences[0].dtype))
        inputs = first + [self._mask_input(mask)] + upper + feedback + sequences
        ndims = list(_BOTTOM_NDIMS) + [n for _ in range(self.depth - 1)
                                       for n in UPPER_INPUT_NDIMS] + [2] * len(feedback)
        return Apply(self, inputs, [self._tensor_type(dtype, n)() for n in ndims])

    def perform(self, node, inputs, output_storage):
        results = numpy_backward(list(inputs), self.inner_activation, self.depth,
                                 self.feedback)
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        h0, c0, kernel, ctx_kernel, memory, query_kernel, vector = input_shapes[:7]
        n_params = len(UPPER_INPUT_NAMES) * (self.depth - 1) + 2 * self.feedback
        forward = input_shapes[8 + n_params:]
        n_visible = n_visible_outputs(self.depth)
        gates, energies = forward[n_visible], forward[n_visible + 1]
        projection = (memory[0], memory[1], energies[3])
        return ([gates, h0, c0, kernel, ctx_kernel, memory, projection, query_kernel, vector]
                + list(input_shapes[8:8 + n_params]))

    def L_op(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, k, x, 'the fused attention decoder has no '
                                     'second derivative')
                for k, x in enumerate(inputs)]

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_call(node, inputs, outputs, sub, 'attention_backward')
