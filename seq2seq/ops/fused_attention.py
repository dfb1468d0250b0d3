"""A fused attention decoder: the whole teacher-forced loop in one Theano Op.

`seq2seq.layers.decoders.AttentionDecoder` runs as a `theano.scan` loop, the
reference: per step a dozen small GEMMs and elementwise Ops, and a gradient
scan as long again. With teacher forcing the decoder's inputs are known up
front, so `AttentionForward` runs the forward loop in C and
`AttentionGrad` back-propagates through it in another. One LSTM cell
(depth 1), additive attention (Bahdanau et al. 2015):

    for t in 0 .. time-1:
        q_t = h_{t-1} W_a                                    GEMM (batch, a)
        E_tj = tanh(P_j + q_t)                               P = H U_a, (batch, L, a)
        e_tj = E_tj . v
        alpha_t = softmax_j(e_tj) over the unmasked j; 0 where mask_j == 0
        ctx_t = sum_j alpha_tj H_j                           (batch, m)
        z_t = projected_t + h_{t-1} U + ctx_t V              two GEMMs (batch, 4u)
        (h_t, c_t) = the LSTM step on z_t (as `seq2seq.ops.fused_lstm`)

Outside the loop, each as one GEMM over every step: projected = (x * m) W + b
(x: the teacher-forced inputs; m: the decoder's dropout mask, one per
sequence and the same at every step, as the decoder's step (`Decoder.step`) applies
it to the cell's input; 1 without dropout), the memory projection
P = H U_a, and the readout h_t W_y + ctx_t C_y + b_y from the Op's outputs
h_seq and ctx_seq. The attention weights alpha are an output too
(`get_attention`). (The scan's dropout masks the cell's input x only, not the
context ctx_t, so nothing of it happens inside the loop.)

A sequence whose memory steps are all masked attends to nothing: alpha and
ctx are 0, as in the scan. The softmax's gradient is zero on masked steps.

Gate order i, f, c, o; `inner_activation` hard_sigmoid or sigmoid, tanh
elsewhere; float32 and float64 (float32 uses the LSTM Op's vectorised
rational tanh, within 3e-7 of tanhf; float64 the C library's).
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


def unsupported_reason(decoder, teacher_forced, truncate_gradient=-1, dtype=None):
    """Why an attention decoder cannot run fused, or None.

    # Arguments
        decoder: its `seq2seq.ops.specs.DecoderSpec`.
        teacher_forced: whether it runs teacher-forced (training).
        truncate_gradient: the layer's truncate_gradient.
        dtype: the dtype of the graph, when known.
    """
    if not teacher_forced:
        return ('the fused attention decoder runs teacher-forced training only; '
                'free running feeds each readout back and runs the scan loop')
    if len(decoder.cells) != 1:
        return 'the fused attention decoder runs one cell, got depth %d' % len(decoder.cells)
    if decoder.peek:
        return 'the fused attention decoder does not support peek=True'
    reason = fused_lstm.unsupported_reason(decoder.cells[0], truncate_gradient, dtype)
    return reason and reason.replace('the fused LSTM', 'the fused attention decoder')


def attention_sequence(projected, h0, c0, recurrent_kernel, context_kernel, memory,
                       memory_projection, query_kernel, attention_vector, memory_mask=None,
                       inner_activation='hard_sigmoid'):
    """Run the attention decoder over every step with `AttentionForward`.

    # Arguments
        projected: (time, batch, 4u), the teacher-forced inputs' x W + b (with
            dropout, (x * m) W + b).
        h0, c0: (batch, u), the initial state.
        recurrent_kernel: U (u, 4u).
        context_kernel: V (m, 4u).
        memory: H (batch, L, m).
        memory_projection: H U_a (batch, L, a).
        query_kernel: W_a (u, a).
        attention_vector: v (a,).
        memory_mask: optional (batch, L); 0 marks a padded memory step.
        inner_activation: 'hard_sigmoid' or 'sigmoid'.

    # Returns
        (h_seq, c_seq, context_seq, alpha_seq): (time, batch, u) twice,
        (time, batch, m), (time, batch, L).
    """
    memory = T.as_tensor_variable(memory)
    if memory_mask is None:
        memory_mask = T.ones(memory.shape[:2], dtype='int8')
    outputs = AttentionForward(inner_activation)(
        projected, h0, c0, recurrent_kernel, context_kernel, memory, memory_projection,
        query_kernel, attention_vector, memory_mask)
    return outputs[:4]


# -- numpy versions of the maths (perform, and a readable reference) ----------

def numpy_forward(projected, h0, c0, recurrent_kernel, context_kernel, memory,
                  memory_projection, query_kernel, attention_vector, mask, inner_activation):
    """The forward loop in numpy.

    Returns (h_seq, c_seq, context_seq, alpha_seq, gates, energies): gates
    (time, batch, 4u) = (z_i, z_f, tanh(z_c), z_o) and energies
    (time, batch, L, a) = tanh(P + q_t) are kept for the backward pass.
    """
    time, batch, _ = projected.shape
    units = h0.shape[1]
    length, m = memory.shape[1:]
    dtype = projected.dtype
    h_seq = np.empty((time, batch, units), dtype=dtype)
    c_seq = np.empty_like(h_seq)
    context_seq = np.empty((time, batch, m), dtype=dtype)
    alpha_seq = np.empty((time, batch, length), dtype=dtype)
    gates = np.empty_like(projected)
    energies = np.empty((time, batch) + memory_projection.shape[1:], dtype=dtype)
    h, c = h0, c0
    for t in range(time):
        query = h.dot(query_kernel)                                   # (batch, a)
        alpha, energy = attention_weights(memory_projection, query, attention_vector,
                                          mask)                  # (batch, L), (batch, L, a)
        context = np.einsum('bl,blm->bm', alpha, memory)              # (batch, m)
        z = projected[t] + h.dot(recurrent_kernel) + context.dot(context_kernel)
        h, c, gates[t] = lstm_step(z, c, inner_activation)
        h_seq[t], c_seq[t], context_seq[t], alpha_seq[t] = h, c, context, alpha
        energies[t] = energy
    return h_seq, c_seq, context_seq, alpha_seq, gates, energies


def numpy_backward(h0, c0, recurrent_kernel, context_kernel, memory, query_kernel,
                   attention_vector, mask, h_seq, c_seq, context_seq, alpha_seq, gates,
                   energies, dh_seq, dc_seq, d_context_seq, d_alpha_seq, inner_activation):
    """Back-propagation through the loop in numpy.

    Returns the gradients of (projected, h0, c0, recurrent_kernel,
    context_kernel, memory, memory_projection, query_kernel,
    attention_vector); memory's is through the context only (memory
    reaches the projection outside the Op).
    """
    time, batch, units = h_seq.shape
    dtype = h_seq.dtype
    d_projected = np.zeros(gates.shape, dtype=dtype)
    d_recurrent = np.zeros_like(recurrent_kernel)
    d_context_kernel = np.zeros_like(context_kernel)
    d_memory = np.zeros_like(memory)
    d_projection = np.zeros(energies.shape[1:], dtype=dtype)
    d_query_kernel = np.zeros_like(query_kernel)
    d_vector = np.zeros_like(attention_vector)
    dh_next = np.zeros((batch, units), dtype=dtype)
    dc_next = np.zeros((batch, units), dtype=dtype)
    for t in reversed(range(time)):
        h_prev = h_seq[t - 1] if t > 0 else h0
        c_prev = c_seq[t - 1] if t > 0 else c0
        dh = dh_seq[t] + dh_next
        dz, dc_next = lstm_step_backward(gates[t], c_seq[t], c_prev, dh,
                                           dc_seq[t] + dc_next, inner_activation)
        d_projected[t] = dz
        d_recurrent += h_prev.T.dot(dz)
        d_context_kernel += context_seq[t].T.dot(dz)
        # The attention: context, softmax, energies.
        d_context = d_context_seq[t] + dz.dot(context_kernel.T)             # (batch, m)
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
        d_query_kernel += h_prev.T.dot(d_query)
        dh_next = dz.dot(recurrent_kernel.T) + d_query.dot(query_kernel.T)
    return (d_projected, dh_next, dc_next, d_recurrent, d_context_kernel, d_memory,
            d_projection, d_query_kernel, d_vector)


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

/* The sizes of a call: time, batch, units, memory length L, memory width m,
   attention width a (time from the caller, the others from h0, U, H, W_a),
   and the shape each array of the forward and the backward pass has. */
struct AttentionSizes {
    npy_intp time, batch, units, length, m, a, G;
    /* Four slots each, the ones past an array's dimensions unused. */
    npy_intp gates[4], state[4], kernel[4], ctx_kernel[4], memory[4], projection[4];
    npy_intp query[4], vector[4], mask[4], seq[4], ctx[4], alpha[4], energy[4];

    AttentionSizes(npy_intp time_, PyArrayObject* h0, PyArrayObject* recurrent_kernel,
                   PyArrayObject* memory_, PyArrayObject* query_kernel)
        : time(time_), batch(PyArray_DIMS(h0)[0]), units(PyArray_DIMS(recurrent_kernel)[0]),
          length(PyArray_DIMS(memory_)[1]), m(PyArray_DIMS(memory_)[2]),
          a(PyArray_DIMS(query_kernel)[1]), G(4 * units)
    {
        attention_set_dims(gates, time, batch, G);
        attention_set_dims(state, batch, units);
        attention_set_dims(kernel, units, G);
        attention_set_dims(ctx_kernel, m, G);
        attention_set_dims(memory, batch, length, m);
        attention_set_dims(projection, batch, length, a);
        attention_set_dims(query, units, a);
        attention_set_dims(vector, a, 0);
        attention_set_dims(mask, batch, length);
        attention_set_dims(seq, time, batch, units);
        attention_set_dims(ctx, time, batch, m);
        attention_set_dims(alpha, time, batch, length);
        attention_set_dims(energy, time, batch, length, a);
    }

    /* 0, or a ValueError when the GEMMs' sizes do not fit a BLAS int. */
    int check_blas_ints() const
    {
        if (time * batch > INT_MAX || G > INT_MAX || m > INT_MAX) {
            PyErr_SetString(PyExc_ValueError, "fused attention: too large for a BLAS int");
            return -1;
        }
        return 0;
    }
};

template <typename T>
static int attention_forward(int kind, int typenum, PyArrayObject** in, PyArrayObject** out)
{
    FusedHeldArrays held;
    if (!held.add_all(in, 10))
        return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *projected = x[0], *h0 = x[1], *c0 = x[2], *kernel = x[3];
    PyArrayObject *ctx_kernel = x[4], *memory = x[5], *projection = x[6];
    PyArrayObject *query_kernel = x[7], *vector = x[8], *mask = x[9];
    const AttentionSizes s(PyArray_DIMS(projected)[0], h0, kernel, memory, query_kernel);
    const npy_intp G = s.G;
    if (attention_check(projected, "projected (time, batch, 4 units)", 3, s.gates)
            || attention_check(h0, "h0 (batch, units)", 2, s.state)
            || attention_check(c0, "c0 (batch, units)", 2, s.state)
            || attention_check(kernel, "recurrent_kernel (units, 4 units)", 2, s.kernel)
            || attention_check(ctx_kernel, "context_kernel (memory dim, 4 units)", 2,
                               s.ctx_kernel)
            || attention_check(memory, "memory (batch, length, dim)", 3, s.memory)
            || attention_check(projection, "memory_projection (batch, length, attention dim)",
                               3, s.projection)
            || attention_check(query_kernel, "query_kernel (units, attention dim)", 2, s.query)
            || attention_check(vector, "attention_vector (attention dim)", 1, s.vector)
            || attention_check(mask, "memory_mask (batch, length)", 2, s.mask)
            || s.check_blas_ints())
        return -1;
    if (fused_prepare_output(&out[0], 3, s.seq, typenum)
            || fused_prepare_output(&out[1], 3, s.seq, typenum)
            || fused_prepare_output(&out[2], 3, s.ctx, typenum)
            || fused_prepare_output(&out[3], 3, s.alpha, typenum)
            || fused_prepare_output(&out[4], 3, s.gates, typenum)
            || fused_prepare_output(&out[5], 4, s.energy, typenum))
        return -1;
    const npy_intp q_dims[2] = {s.batch, s.a};
    PyArrayObject* q_array = held.scratch(2, q_dims, typenum);
    if (!q_array)
        return -1;

    const T* PR = (const T*)PyArray_DATA(projected);
    const T* U = (const T*)PyArray_DATA(kernel);
    const T* V = (const T*)PyArray_DATA(ctx_kernel);
    const T* HM = (const T*)PyArray_DATA(memory);
    const T* PM = (const T*)PyArray_DATA(projection);
    const T* WA = (const T*)PyArray_DATA(query_kernel);
    const T* VA = (const T*)PyArray_DATA(vector);
    const npy_int8* M = (const npy_int8*)PyArray_DATA(mask);
    T* H = (T*)PyArray_DATA(out[0]);
    T* C = (T*)PyArray_DATA(out[1]);
    T* CTX = (T*)PyArray_DATA(out[2]);
    T* A = (T*)PyArray_DATA(out[3]);
    T* Z = (T*)PyArray_DATA(out[4]);
    T* E = (T*)PyArray_DATA(out[5]);
    T* Q = (T*)PyArray_DATA(q_array);
    const npy_intp B = s.batch, u = s.units, L = s.length, m = s.m, a = s.a;
    const int iB = (int)B, iu = (int)u, iG = (int)G, im = (int)m, ia = (int)a;

    for (npy_intp t = 0; t < s.time; ++t) {
        const T* h_prev = t ? H + (t - 1) * B * u : (const T*)PyArray_DATA(h0);
        const T* c_prev = t ? C + (t - 1) * B * u : (const T*)PyArray_DATA(c0);
        T* z = Z + t * B * G;
        T* ctx = CTX + t * B * m;
        T* alpha = A + t * B * L;
        T* energy = E + t * B * L * a;
        if (B == 0)
            continue;
        /* q = h_prev W_a; z = projected_t + h_prev U */
        memcpy(z, PR + t * B * G, sizeof(T) * B * G);
        if (iu > 0) {
            fused_gemm('N', 'N', ia, iB, iu, (T)1, WA, ia, h_prev, iu, (T)0, Q, ia);
            fused_gemm('N', 'N', iG, iB, iu, (T)1, U, iG, h_prev, iu, (T)1, z, iG);
        } else {
            memset(Q, 0, sizeof(T) * B * a);
        }
        for (npy_intp b = 0; b < B; ++b)
            attention_row<T>(PM + b * L * a, HM + b * L * m, M + b * L, Q + b * a, VA,
                             energy + b * L * a, alpha + b * L, ctx + b * m, L, a, m);
        /* z += ctx V */
        if (im > 0)
            fused_gemm('N', 'N', iG, iB, im, (T)1, V, iG, ctx, im, (T)1, z, iG);
        for (npy_intp b = 0; b < B; ++b)
            fused_forward_row_of<T>(kind, z + b * G, c_prev + b * u, C + (t * B + b) * u,
                                    H + (t * B + b) * u, u);
    }
    return 0;
}

/* in: h0, c0, U, V, memory, W_a, v, mask, h_seq, c_seq, ctx_seq, alpha_seq,
   gates, energies, dh_seq, dc_seq, dctx_seq, dalpha_seq.
   out: d projected, dh0, dc0, dU, dV, d memory, d projection, dW_a, dv. */
template <typename T>
static int attention_backward(int kind, int typenum, PyArrayObject** in, PyArrayObject** out)
{
    FusedHeldArrays held;
    if (!held.add_all(in, 18))
        return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *h0 = x[0], *c0 = x[1], *kernel = x[2], *ctx_kernel = x[3], *memory = x[4];
    PyArrayObject *query_kernel = x[5], *vector = x[6], *mask = x[7], *h_seq = x[8];
    PyArrayObject *c_seq = x[9], *ctx_seq = x[10], *alpha_seq = x[11], *gates = x[12];
    PyArrayObject *energies = x[13], *dh_seq = x[14], *dc_seq = x[15], *dctx_seq = x[16];
    PyArrayObject* dalpha_seq = x[17];
    const AttentionSizes s(PyArray_DIMS(gates)[0], h0, kernel, memory, query_kernel);
    const npy_intp G = s.G;
    if (attention_check(gates, "gates (time, batch, 4 units)", 3, s.gates)
            || attention_check(h0, "h0 (batch, units)", 2, s.state)
            || attention_check(c0, "c0 (batch, units)", 2, s.state)
            || attention_check(ctx_kernel, "context_kernel (memory dim, 4 units)", 2,
                               s.ctx_kernel)
            || attention_check(vector, "attention_vector (attention dim)", 1, s.vector)
            || attention_check(mask, "memory_mask (batch, length)", 2, s.mask)
            || attention_check(h_seq, "h_seq", 3, s.seq)
            || attention_check(c_seq, "c_seq", 3, s.seq)
            || attention_check(dh_seq, "dh_seq", 3, s.seq)
            || attention_check(dc_seq, "dc_seq", 3, s.seq)
            || attention_check(ctx_seq, "context_seq", 3, s.ctx)
            || attention_check(dctx_seq, "d context_seq", 3, s.ctx)
            || attention_check(alpha_seq, "alpha_seq", 3, s.alpha)
            || attention_check(dalpha_seq, "d alpha_seq", 3, s.alpha)
            || attention_check(energies, "energies", 4, s.energy)
            || s.check_blas_ints())
        return -1;
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
    const npy_intp dq_dims[3] = {s.time, s.batch, s.a};
    const npy_intp dctx_dims[2] = {s.batch, s.m};
    const npy_intp de_dims[1] = {s.length};
    const npy_intp dv_dims[1] = {s.a};
    PyArrayObject* dq_array = held.scratch(3, dq_dims, typenum);
    PyArrayObject* dctx_array = held.scratch(2, dctx_dims, typenum);
    PyArrayObject* de_array = held.scratch(1, de_dims, typenum);
    PyArrayObject* dv_array = held.scratch(1, dv_dims, NPY_FLOAT64);
    if (!dq_array || !dctx_array || !de_array || !dv_array)
        return -1;

    const T* U = (const T*)PyArray_DATA(kernel);
    const T* V = (const T*)PyArray_DATA(ctx_kernel);
    const T* HM = (const T*)PyArray_DATA(memory);
    const T* WA = (const T*)PyArray_DATA(query_kernel);
    const T* VA = (const T*)PyArray_DATA(vector);
    const npy_int8* M = (const npy_int8*)PyArray_DATA(mask);
    const T* H = (const T*)PyArray_DATA(h_seq);
    const T* C = (const T*)PyArray_DATA(c_seq);
    const T* CTX = (const T*)PyArray_DATA(ctx_seq);
    const T* A = (const T*)PyArray_DATA(alpha_seq);
    const T* Z = (const T*)PyArray_DATA(gates);
    const T* E = (const T*)PyArray_DATA(energies);
    const T* DH = (const T*)PyArray_DATA(dh_seq);
    const T* DC = (const T*)PyArray_DATA(dc_seq);
    const T* DCTX = (const T*)PyArray_DATA(dctx_seq);
    const T* DA = (const T*)PyArray_DATA(dalpha_seq);
    T* DZ = (T*)PyArray_DATA(out[0]);
    T* dh_next = (T*)PyArray_DATA(out[1]);      /* dL/dh_t through step t+1; then dh0 */
    T* dc_next = (T*)PyArray_DATA(out[2]);
    T* DU = (T*)PyArray_DATA(out[3]);
    T* DV = (T*)PyArray_DATA(out[4]);
    T* DHM = (T*)PyArray_DATA(out[5]);
    T* DPM = (T*)PyArray_DATA(out[6]);
    T* DWA = (T*)PyArray_DATA(out[7]);
    T* DVA = (T*)PyArray_DATA(out[8]);
    T* DQ = (T*)PyArray_DATA(dq_array);
    T* dctx = (T*)PyArray_DATA(dctx_array);
    T* de = (T*)PyArray_DATA(de_array);
    double* dv = (double*)PyArray_DATA(dv_array);
    const npy_intp B = s.batch, u = s.units, L = s.length, m = s.m, a = s.a, time = s.time;
    const int iB = (int)B, iu = (int)u, iG = (int)G, im = (int)m, ia = (int)a;
    memset(dh_next, 0, sizeof(T) * B * u);
    memset(dc_next, 0, sizeof(T) * B * u);
    memset(DHM, 0, sizeof(T) * B * L * m);
    memset(DPM, 0, sizeof(T) * B * L * a);

    for (npy_intp t = time - 1; t >= 0 && B > 0; --t) {
        const T* c_prev = t ? C + (t - 1) * B * u : (const T*)PyArray_DATA(c0);
        T* dz = DZ + t * B * G;
        T* dq = DQ + t * B * a;
        for (npy_intp b = 0; b < B; ++b) {
            const npy_intp row = t * B + b;
            fused_backward_row_of<T>(kind, Z + row * G, C + row * u, c_prev + b * u,
                                     DH + row * u, DC + row * u, dz + b * G, dh_next + b * u,
                                     dc_next + b * u, u);
        }
        /* d ctx = dctx_seq_t + dz V^T */
        memcpy(dctx, DCTX + t * B * m, sizeof(T) * B * m);
        if (im > 0 && iG > 0)
            fused_gemm('T', 'N', im, iB, iG, (T)1, V, iG, dz, iG, (T)1, dctx, im);
        for (npy_intp b = 0; b < B; ++b) {
            const npy_intp row = t * B + b;
            attention_row_backward<T>(HM + b * L * m, E + row * L * a, A + row * L, VA,
                                      dctx + b * m, DA + row * L, DHM + b * L * m,
                                      DPM + b * L * a, dq + b * a, dv, de, L, a, m);
        }
        /* dL/dh_{t-1} = dz U^T + dq W_a^T (fused_backward_row zeroed dh_next) */
        if (iu > 0) {
            if (iG > 0)
                fused_gemm('T', 'N', iu, iB, iG, (T)1, U, iG, dz, iG, (T)1, dh_next, iu);
            if (ia > 0)
                fused_gemm('T', 'N', iu, iB, ia, (T)1, WA, ia, dq, ia, (T)1, dh_next, iu);
        }
    }
    /* The weights' gradients, each as GEMMs over every step at once:
       dU = sum_t h_{t-1}^T dz_t, dW_a = sum_t h_{t-1}^T dq_t, dV = ctx^T dz. */
    memset(DU, 0, sizeof(T) * u * G);
    memset(DV, 0, sizeof(T) * m * G);
    memset(DWA, 0, sizeof(T) * u * a);
    if (time > 0 && B > 0) {
        const T* h0_data = (const T*)PyArray_DATA(h0);
        const int rest = (int)((time - 1) * B);
        if (iu > 0 && iG > 0) {
            fused_gemm('N', 'T', iG, iu, iB, (T)1, DZ, iG, h0_data, iu, (T)0, DU, iG);
            if (rest > 0)
                fused_gemm('N', 'T', iG, iu, rest, (T)1, DZ + B * G, iG, H, iu, (T)1, DU, iG);
        }
        if (iu > 0 && ia > 0) {
            fused_gemm('N', 'T', ia, iu, iB, (T)1, DQ, ia, h0_data, iu, (T)0, DWA, ia);
            if (rest > 0)
                fused_gemm('N', 'T', ia, iu, rest, (T)1, DQ + B * a, ia, H, iu, (T)1, DWA, ia);
        }
        if (im > 0 && iG > 0)
            fused_gemm('N', 'T', iG, im, (int)(time * B), (T)1, DZ, iG, CTX, im, (T)0, DV, iG);
    }
    for (npy_intp k = 0; k < a; ++k)
        DVA[k] = (T)dv[k];
    return 0;
}
#endif
"""

_FORWARD_NAMES = ('projected', 'h0', 'c0', 'recurrent_kernel', 'context_kernel', 'memory',
                  'memory_projection', 'query_kernel', 'attention_vector')
_FORWARD_NDIMS = (3, 2, 2, 2, 2, 3, 3, 2, 1)


class _FusedAttentionOp(BlasOp):
    """What the forward and the gradient Op share: parameters and C setup."""

    __props__ = ('inner_activation',)

    def __init__(self, inner_activation='hard_sigmoid'):
        self.inner_activation = check_choice('inner_activation', inner_activation,
                                             INNER_ACTIVATIONS)
        super(_FusedAttentionOp, self).__init__()

    @staticmethod
    def _mask_input(mask):
        return int8_mask_input(mask, 'memory_mask', '(batch, length)')

    @staticmethod
    def _tensor_type(dtype, ndim):
        return T.TensorType(dtype, (False,) * ndim)

    # -- C (BlasOp: BLAS, VECTORISE_FLAGS as the LSTM Op) ---------------------
    def _support_code_text(self):
        return fused_lstm._SUPPORT_CODE + _ATTENTION_C

    def _c_call(self, node, inputs, outputs, sub, function):
        return self._c_call_template % dict(
            c_type_settings(node.outputs[0].dtype),
            kind=fused_lstm.GATE_KINDS[self.inner_activation], function=function,
            n_in=len(inputs), n_out=len(outputs), inputs=', '.join(inputs),
            outputs=', '.join(outputs),
            copy_back='\n'.join('%s = out_arrays[%d];' % (o, k) for k, o in enumerate(outputs)),
            fail=sub['fail'])

    _c_call_template = """
        {
            PyArrayObject* in_arrays[%(n_in)s] = {%(inputs)s};
            PyArrayObject* out_arrays[%(n_out)s] = {%(outputs)s};
            int status = %(function)s<%(ctype)s>(%(kind)s, %(typenum)s, in_arrays, out_arrays);
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
    memory_projection P (batch, L, a), query_kernel W_a (u, a),
    attention_vector v (a,), memory_mask (batch, L) (cast to int8).

    Outputs: h_seq, c_seq (time, batch, u), context_seq (time, batch, m),
    alpha_seq (time, batch, L), and for the gradient only gates
    (time, batch, 4u) and energies (time, batch, L, a).

    # Arguments
        inner_activation: 'hard_sigmoid' or 'sigmoid', the gates' activation.
    """

    def make_node(self, projected, h0, c0, recurrent_kernel, context_kernel, memory,
                  memory_projection, query_kernel, attention_vector, memory_mask):
        inputs = check_float_inputs(list(zip(_FORWARD_NAMES, _FORWARD_NDIMS)),
                                    [projected, h0, c0, recurrent_kernel, context_kernel,
                                     memory, memory_projection, query_kernel,
                                     attention_vector], 'the fused attention decoder')
        inputs.append(self._mask_input(memory_mask))
        dtype = inputs[0].dtype
        outputs = [self._tensor_type(dtype, 3)() for _ in range(5)] + \
            [self._tensor_type(dtype, 4)()]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        results = numpy_forward(*(list(inputs) + [self.inner_activation]))
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        projected, h0, _, _, _, memory, projection = input_shapes[:7]
        time, batch, n_gates = projected
        units = h0[1]
        length = memory[1]
        return [(time, batch, units), (time, batch, units), (time, batch, memory[2]),
                (time, batch, length), (time, batch, n_gates),
                (time, batch, length, projection[2])]

    def connection_pattern(self, node):
        return [[True] * 6] * 9 + [[False] * 6]

    def L_op(self, inputs, outputs, output_grads):
        differentiable = inputs[:9]
        for grad in output_grads[4:]:
            if not isinstance(grad.type, DisconnectedType):
                return [grad_not_implemented(self, k, x, 'the gates and energies outputs of '
                                             'AttentionForward are for its gradient only')
                        for k, x in enumerate(differentiable)] + [DisconnectedType()()]
        h_seq, c_seq, context_seq, alpha_seq, gates, energies = outputs
        grads_in = [output_grad_or_zeros(g, o) for g, o in zip(output_grads[:4], outputs[:4])]
        (_, h0, c0, recurrent_kernel, context_kernel, memory, _, query_kernel,
         attention_vector) = differentiable
        mask = inputs[9]
        grads = AttentionGrad(self.inner_activation)(
            h0, c0, recurrent_kernel, context_kernel, memory, query_kernel, attention_vector,
            mask, h_seq, c_seq, context_seq, alpha_seq, gates, energies, *grads_in)
        grads = [T.patternbroadcast(g, x.broadcastable) for g, x in zip(grads, differentiable)]
        return grads + [DisconnectedType()()]

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_call(node, inputs, outputs, sub, 'attention_forward')


class AttentionGrad(_FusedAttentionOp):
    """The gradient of `AttentionForward`: back-propagation through the loop.

    Inputs: h0, c0, recurrent_kernel, context_kernel, memory, query_kernel,
    attention_vector, memory_mask; AttentionForward's six outputs; the
    gradients reaching h_seq, c_seq, context_seq and alpha_seq from outside.

    Outputs: the gradients of projected, h0, c0, recurrent_kernel,
    context_kernel, memory (through the context), memory_projection,
    query_kernel and attention_vector:

        dh_t = dh_seq_t + dz_{t+1} U^T + dq_{t+1} W_a^T
        dz_t: the LSTM step's gradient (seq2seq.ops.fused_lstm.LSTMGrad)
        dctx_t = dctx_seq_t + dz_t V^T
        dalpha_tj = dalpha_seq_tj + dctx_t . H_j
        de_tj = alpha_tj (dalpha_tj - sum_k alpha_tk dalpha_tk)
        dP_j += de_tj v (1 - E_tj^2);   dq_t = sum_j de_tj v (1 - E_tj^2)
        dv = sum de_tj E_tj (in double);  dH_j += alpha_tj dctx_t
        dU = sum_t h_{t-1}^T dz_t,  dW_a = sum_t h_{t-1}^T dq_t,  dV = sum_t ctx_t^T dz_t
    """

    def make_node(self, h0, c0, recurrent_kernel, context_kernel, memory, query_kernel,
                  attention_vector, mask, h_seq, c_seq, context_seq, alpha_seq, gates,
                  energies, dh_seq, dc_seq, d_context_seq, d_alpha_seq):
        names = [('h0', 2), ('c0', 2), ('recurrent_kernel', 2), ('context_kernel', 2),
                 ('memory', 3), ('query_kernel', 2), ('attention_vector', 1)]
        first = check_float_inputs(names, [h0, c0, recurrent_kernel, context_kernel, memory,
                                           query_kernel, attention_vector],
                                   'the fused attention decoder')
        names = [('h_seq', 3), ('c_seq', 3), ('context_seq', 3), ('alpha_seq', 3),
                 ('gates', 3), ('energies', 4), ('dh_seq', 3), ('dc_seq', 3),
                 ('d_context_seq', 3), ('d_alpha_seq', 3)]
        rest = check_float_inputs(names, [h_seq, c_seq, context_seq, alpha_seq, gates,
                                          energies, dh_seq, dc_seq, d_context_seq,
                                          d_alpha_seq], 'the fused attention decoder')
        if rest[0].dtype != first[0].dtype:
            raise TypeError('h_seq must have dtype %s like h0, got %s'
                            % (first[0].dtype, rest[0].dtype))
        inputs = first + [self._mask_input(mask)] + rest
        dtype = first[0].dtype
        ndims = [3, 2, 2, 2, 2, 3, 3, 2, 1]
        outputs = [self._tensor_type(dtype, n)() for n in ndims]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        results = numpy_backward(*(list(inputs) + [self.inner_activation]))
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        h0, c0, kernel, ctx_kernel, memory, query_kernel, vector = input_shapes[:7]
        gates, energies = input_shapes[12], input_shapes[13]
        projection = (memory[0], memory[1], energies[3])
        return [gates, h0, c0, kernel, ctx_kernel, memory, projection, query_kernel, vector]

    def L_op(self, inputs, outputs, output_grads):
        return [grad_not_implemented(self, k, x, 'the fused attention decoder has no '
                                     'second derivative')
                for k, x in enumerate(inputs)]

    def c_code(self, node, name, inputs, outputs, sub):
        return self._c_call(node, inputs, outputs, sub, 'attention_backward')
