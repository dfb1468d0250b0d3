"""A fused GRU: a whole sequence in one Theano Op, forward and backward.

The GRU twin of `seq2seq.ops.fused_lstm`: `GRUForward` runs the recurrence
of `seq2seq.layers.cells.GRUCell` (Keras 2.3.1's GRU with
reset_after=False, gate order z, r, h) in one C loop, and `GRUGrad` (its
gradient) runs back-propagation through time in another:

    for t in 0 .. time-1:
        (z_z, z_r) = projected_zr_t + b_zr + h_{t-1} U_zr      # GEMM, (batch, 2u)
        z_t = inner_activation(z_z)        r_t = inner_activation(z_r)
        hh_t = tanh(projected_h_t + b_h + (r_t * h_{t-1}) U_h)  # GEMM, (batch, u)
        h_t = z_t * h_{t-1} + (1 - z_t) * hh_t
        where mask_t == 0: h_t = h_{t-1}

where projected_t = x_t W is computed outside by one large GEMM over all
steps and the bias b is added inside (its gradient, a sum over every step
and sequence, is accumulated inside `GRUGrad`). The reset gate multiplies
h_{t-1} before U_h (reset_after=False), so a step has two dependent GEMMs,
forward and backward, where the LSTM has one.

The gates' elementwise maths and the GEMM wrapper are the LSTM Op's
(`seq2seq.ops.c_helpers.GATE_MATH_C`): in float32, tanh is Eigen's rational
approximation (within 3e-7 of tanhf) and the sigmoid (1 + tanh(z/2)) / 2;
float64 uses the C library's tanh, so the float64 tests compare exact maths.

Supported: `activation` tanh, `inner_activation` hard_sigmoid or sigmoid,
full back-propagation, float32 and float64; an encoder's sequence (no input
shared over time, as the LSTM Op's decoder feedback needs). `unsupported_reason`
says why a cell cannot use it.
"""
from __future__ import absolute_import

import theano.tensor as T
from theano.gof import Apply
from theano.gradient import DisconnectedType

from .c_helpers import (CHECK_SHAPE_C, GATE_MATH_C, HELD_ARRAYS_C, SHARED_C, GatedSequenceOp,
                        cell_unsupported_reason, output_grad_or_zeros)
from .numpy_reference import gru_backward, gru_forward


def unsupported_reason(cell, truncate_gradient=-1, dtype=None):
    """Why a cell cannot run on the fused GRU, or None when it can.

    # Arguments
        cell: its `seq2seq.ops.specs.CellSpec`.
        truncate_gradient: the layer's truncate_gradient.
        dtype: the dtype of the graph, when known.
    """
    return cell_unsupported_reason(cell, 'gru', 'the fused GRU', 'a GRU cell',
                                   truncate_gradient, dtype)


def gru_sequence(projected, h0, recurrent_kernel, mask=None, inner_activation='hard_sigmoid',
                 bias=None):
    """Run a GRU over a whole sequence with `GRUForward`.

    # Arguments
        projected: (time, batch, 3 * units), x_t W for every step.
        h0: (batch, units), the initial state.
        recurrent_kernel: (units, 3 * units), U, gate order z, r, h.
        mask: optional (time, batch); where it is 0, h carries over.
        inner_activation: 'hard_sigmoid' or 'sigmoid'.
        bias: optional (3 * units,), added at every step (its gradient is
            summed inside the Op).

    # Returns
        h_seq: (time, batch, units).
    """
    projected = T.as_tensor_variable(projected)
    if bias is None:
        bias = T.zeros((recurrent_kernel.shape[1],), dtype=projected.dtype)
    op = GRUForward(inner_activation, masked=mask is not None)
    inputs = [projected, bias, h0, recurrent_kernel] + ([mask] if mask is not None else [])
    h_seq, _ = op(*inputs)
    return h_seq


# -- the C implementation -------------------------------------------------------

# Shared by both Ops (Theano compiles it once per module). The loops are
# templates on the gate activation KIND, chosen once per call.
SUPPORT_CODE = GATE_MATH_C + SHARED_C + CHECK_SHAPE_C + HELD_ARRAYS_C + r"""
#ifndef SEQ2SEQ_FUSED_GRU
#define SEQ2SEQ_FUSED_GRU
#include <stdlib.h>
#include <string.h>

/* One batch row of a forward step, between its two GEMMs: z holds the row's
   (3u) pre-activations (z_z, z_r, x W_h + b_h); rh = r * h_prev, the input
   of the candidate's GEMM. The restrict pointers let GCC vectorise. */
template <typename T, int KIND>
static void gru_reset_row(const T* __restrict z, const T* __restrict h_prev,
                          T* __restrict rh, npy_intp units)
{
    for (npy_intp j = 0; j < units; ++j)
        rh[j] = fused_gate<T, KIND>(z[units + j]) * h_prev[j];
}

/* One batch row of a forward step, after both GEMMs: the candidate's
   pre-activation z[2u..3u) becomes hh = tanh(.) (kept for the backward
   pass), and h = z h_prev + (1 - z) hh, the scan's expression. */
template <typename T, int KIND>
static void gru_output_row(T* __restrict z, const T* __restrict h_prev, T* __restrict h,
                           npy_intp units)
{
    for (npy_intp j = 0; j < units; ++j) {
        const T update = fused_gate<T, KIND>(z[j]);
        const T hh = fused_tanh(z[2 * units + j]);
        z[2 * units + j] = hh;
        h[j] = update * h_prev[j] + ((T)1 - update) * hh;
    }
}

/* One batch row of a backward step, before the GEMM with U_h^T: with
   dh = dh_out + dh_next (the gradient of h_t from outside and from step
   t+1), the update gate's and the candidate's gradients
       dz_z = dh (h_prev - hh) z'      dz_h = dh (1 - z) (1 - hh^2);
   dh_next becomes dh z (the direct path to h_{t-1}; the reset gate's and
   the GEMMs' parts are added next), and rh = r h_prev, U_h's input. */
template <typename T, int KIND>
static void gru_backward_candidate_row(const T* __restrict z, const T* __restrict h_prev,
                                       const T* __restrict dh_out, T* __restrict dz,
                                       T* __restrict dh_next, T* __restrict rh,
                                       npy_intp units)
{
    for (npy_intp j = 0; j < units; ++j) {
        const T z_z = z[j], hh = z[2 * units + j];
        const T update = fused_gate<T, KIND>(z_z);
        const T dh = dh_out[j] + dh_next[j];
        dz[j] = dh * (h_prev[j] - hh) * fused_gate_derivative<T, KIND>(z_z, update);
        dz[2 * units + j] = dh * ((T)1 - update) * ((T)1 - hh * hh);
        dh_next[j] = dh * update;
        rh[j] = fused_gate<T, KIND>(z[units + j]) * h_prev[j];
    }
}

/* One batch row of a backward step, after d_rh = dz_h U_h^T (the gradient
   of r h_prev): the reset gate's dz_r = d_rh h_prev r', and d_rh r, the
   part of dL/dh_{t-1} through r h_prev. */
template <typename T, int KIND>
static void gru_backward_reset_row(const T* __restrict z, const T* __restrict h_prev,
                                   const T* __restrict d_rh, T* __restrict dz,
                                   T* __restrict dh_next, npy_intp units)
{
    for (npy_intp j = 0; j < units; ++j) {
        const T z_r = z[units + j];
        const T reset = fused_gate<T, KIND>(z_r);
        dz[units + j] = d_rh[j] * h_prev[j] * fused_gate_derivative<T, KIND>(z_r, reset);
        dh_next[j] += d_rh[j] * reset;
    }
}

/* The rows above for the gate activation `kind` (FUSED_HARD_SIGMOID or
   FUSED_SIGMOID) chosen at run time: the fused attention decoder's GRU
   cells (seq2seq.ops.fused_attention). */
template <typename T>
static inline void gru_reset_row_of(int kind, const T* z, const T* h_prev, T* rh,
                                    npy_intp units)
{
    if (kind == FUSED_HARD_SIGMOID)
        gru_reset_row<T, FUSED_HARD_SIGMOID>(z, h_prev, rh, units);
    else
        gru_reset_row<T, FUSED_SIGMOID>(z, h_prev, rh, units);
}

template <typename T>
static inline void gru_output_row_of(int kind, T* z, const T* h_prev, T* h, npy_intp units)
{
    if (kind == FUSED_HARD_SIGMOID)
        gru_output_row<T, FUSED_HARD_SIGMOID>(z, h_prev, h, units);
    else
        gru_output_row<T, FUSED_SIGMOID>(z, h_prev, h, units);
}

template <typename T>
static inline void gru_backward_candidate_row_of(int kind, const T* z, const T* h_prev,
                                                 const T* dh_out, T* dz, T* dh_next, T* rh,
                                                 npy_intp units)
{
    if (kind == FUSED_HARD_SIGMOID)
        gru_backward_candidate_row<T, FUSED_HARD_SIGMOID>(z, h_prev, dh_out, dz, dh_next, rh,
                                                          units);
    else
        gru_backward_candidate_row<T, FUSED_SIGMOID>(z, h_prev, dh_out, dz, dh_next, rh,
                                                     units);
}

template <typename T>
static inline void gru_backward_reset_row_of(int kind, const T* z, const T* h_prev,
                                             const T* d_rh, T* dz, T* dh_next, npy_intp units)
{
    if (kind == FUSED_HARD_SIGMOID)
        gru_backward_reset_row<T, FUSED_HARD_SIGMOID>(z, h_prev, d_rh, dz, dh_next, units);
    else
        gru_backward_reset_row<T, FUSED_SIGMOID>(z, h_prev, d_rh, dz, dh_next, units);
}

/* A GRU's dU (units, 3 units): dU_zr = sum_t h_{t-1}^T dz_zr_t and dU_h =
   sum_t (r h_{t-1})^T dz_h_t, from DZ (time, batch, 3u), h0, H (time,
   batch, u) and RH (time, batch, u) = r h_{t-1}: GEMMs over all steps at
   once into U's column blocks. DU must come zeroed. */
template <typename T>
static void gru_recurrent_kernel_grad(const T* DZ, const T* h0, const T* H, const T* RH, T* DU,
                                      npy_intp time, npy_intp batch, npy_intp units)
{
    const npy_intp n_gates = 3 * units;
    fused_recurrent_kernel_grad<T>(DZ, h0, H, DU, time, batch, units, 2 * units, n_gates);
    if (time > 0 && batch > 0 && units > 0)
        fused_gemm('N', 'T', (int)units, (int)units, (int)(time * batch), (T)1, DZ + 2 * units,
                   (int)n_gates, RH, (int)units, (T)0, DU + 2 * units, (int)n_gates);
}

/* The forward loop. P (time, batch, 3u) = x W; H (time, batch, u) and
   Z (time, batch, 3u) = (z_z, z_r, hh) are filled; RH is (batch, u) scratch.
   In the GEMMs, U_zr and U_h are column blocks of the row-major U (leading
   dimension 3u), and so are the (batch, 2u) and (batch, u) blocks of Z. */
template <typename T, int KIND>
static void gru_forward_steps(npy_intp time, npy_intp batch, npy_intp units, const T* P,
                              const T* bias, const T* h0, const T* U, const npy_int8* M,
                              T* H, T* Z, T* RH)
{
    const npy_intp n_gates = 3 * units;
    const int B = (int)batch, u = (int)units, G = (int)n_gates;
    for (npy_intp t = 0; t < time; ++t) {
        const T* h_prev = t ? H + (t - 1) * batch * units : h0;   /* (batch, u) */
        T* z = Z + t * batch * n_gates;                            /* (batch, 3u) */
        T* h = H + t * batch * units;                              /* (batch, u) */
        for (npy_intp b = 0; b < batch; ++b)
            fused_add_rows(z + b * n_gates, P + (t * batch + b) * n_gates, bias, n_gates);
        if (B == 0 || u == 0)
            continue;
        /* (z_z, z_r) += h_prev U_zr, i.e. z_zr^T += U_zr^T h_prev^T. */
        fused_gemm('N', 'N', 2 * u, B, u, (T)1, U, G, h_prev, u, (T)1, z, G);
        for (npy_intp b = 0; b < batch; ++b)
            gru_reset_row<T, KIND>(z + b * n_gates, h_prev + b * units, RH + b * units, units);
        /* candidate += (r h_prev) U_h. */
        fused_gemm('N', 'N', u, B, u, (T)1, U + 2 * units, G, RH, u, (T)1, z + 2 * units, G);
        for (npy_intp b = 0; b < batch; ++b) {
            T* zb = z + b * n_gates;
            T* hb = h + b * units;
            const T* hpb = h_prev + b * units;
            if (M && !M[t * batch + b]) {
                /* A padded step: h carries over. Its gates are not used by
                   the backward pass; store hh anyway, as numpy does. */
                for (npy_intp j = 0; j < units; ++j) {
                    zb[2 * units + j] = fused_tanh(zb[2 * units + j]);
                    hb[j] = hpb[j];
                }
                continue;
            }
            gru_output_row<T, KIND>(zb, hpb, hb, units);
        }
    }
}

/* The backward loop: DZ (time, batch, 3u), the gradient of the
   pre-activations (= of projected), and dh_next, which ends as dL/dh0.
   RH (time, batch, u) must come zeroed (a padded row's stays 0); DRH is
   (batch, u) scratch. */
template <typename T, int KIND>
static void gru_backward_steps(npy_intp time, npy_intp batch, npy_intp units, const T* h0,
                               const T* U, const T* H, const T* Z, const T* DH,
                               const npy_int8* M, T* DZ, T* dh_next, T* RH, T* DRH)
{
    const npy_intp n_gates = 3 * units;
    const int B = (int)batch, u = (int)units, G = (int)n_gates;
    for (npy_intp t = time - 1; t >= 0; --t) {
        const T* h_prev = t ? H + (t - 1) * batch * units : h0;   /* (batch, u) */
        T* dz = DZ + t * batch * n_gates;                          /* (batch, 3u) */
        T* rh = RH + t * batch * units;                            /* (batch, u) */
        for (npy_intp b = 0; b < batch; ++b) {
            const npy_intp row = t * batch + b;
            T* dzb = dz + b * n_gates;
            T* dhn = dh_next + b * units;
            if (M && !M[row]) {
                /* A padded step copied h: its gradient passes straight
                   through, and the gates get none. */
                const T* dhb = DH + row * units;
                for (npy_intp j = 0; j < units; ++j)
                    dhn[j] += dhb[j];
                memset(dzb, 0, sizeof(T) * n_gates);
                continue;
            }
            gru_backward_candidate_row<T, KIND>(Z + row * n_gates, h_prev + b * units,
                                                DH + row * units, dzb, dhn, rh + b * units,
                                                units);
        }
        if (B == 0 || u == 0)
            continue;
        /* d(r h_prev) = dz_h U_h^T, i.e. DRH^T = U_h dz_h^T (0 on padded rows). */
        fused_gemm('T', 'N', u, B, u, (T)1, U + 2 * units, G, dz + 2 * units, G, (T)0, DRH, u);
        for (npy_intp b = 0; b < batch; ++b) {
            if (M && !M[t * batch + b])
                continue;
            gru_backward_reset_row<T, KIND>(Z + (t * batch + b) * n_gates, h_prev + b * units,
                                            DRH + b * units, dz + b * n_gates,
                                            dh_next + b * units, units);
        }
        /* dh_next += (dz_z, dz_r) U_zr^T. */
        fused_gemm('T', 'N', u, B, 2 * u, (T)1, U, G, dz, G, (T)1, dh_next, u);
    }
}

static int gru_check_shape(PyArrayObject* a, const char* name, int nd, const npy_intp* dims)
{
    return fused_check_dims("fused GRU", a, name, nd, dims);
}

static int gru_check_blas_size(npy_intp time, npy_intp batch, npy_intp n_gates)
{
    if (time * batch > INT_MAX || n_gates > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fused GRU: too large for a BLAS int");
        return -1;
    }
    return 0;
}

/* Forward: h_seq (time, batch, units) and gates (time, batch, 3 units) =
   (z_z, z_r, hh) per step, from projected (time, batch, 3 units) = x W, the
   bias (3 units), h0 (batch, units), U (units, 3 units) and an optional
   int8 mask (time, batch). */
template <typename T>
static int fused_gru_forward(int kind, int typenum, PyArrayObject* projected_in,
                             PyArrayObject* bias_in, PyArrayObject* h0_in,
                             PyArrayObject* kernel_in, PyArrayObject* mask_in,
                             PyArrayObject** h_seq_out, PyArrayObject** gates_out)
{
    FusedHeldArrays held;
    PyArrayObject* projected = held.add(projected_in);
    PyArrayObject* bias = held.add(bias_in);
    PyArrayObject* h0 = held.add(h0_in);
    PyArrayObject* kernel = held.add(kernel_in);
    PyArrayObject* mask = held.add(mask_in);
    if (!projected || !bias || !h0 || !kernel || (mask_in && !mask))
        return -1;
    const npy_intp time = PyArray_DIMS(projected)[0], batch = PyArray_DIMS(h0)[0];
    const npy_intp units = PyArray_DIMS(kernel)[0], n_gates = 3 * units;
    const npy_intp state_dims[2] = {batch, units}, kernel_dims[2] = {units, n_gates};
    const npy_intp gates_dims[3] = {time, batch, n_gates}, seq_dims[3] = {time, batch, units};
    const npy_intp mask_dims[2] = {time, batch}, bias_dims[1] = {n_gates};
    if (gru_check_shape(kernel, "recurrent_kernel (units, 3 units)", 2, kernel_dims)
            || gru_check_shape(projected, "projected (time, batch, 3 units)", 3, gates_dims)
            || gru_check_shape(bias, "bias (3 units)", 1, bias_dims)
            || gru_check_shape(h0, "h0 (batch, units)", 2, state_dims)
            || (mask && gru_check_shape(mask, "mask (time, batch)", 2, mask_dims))
            || gru_check_blas_size(time, batch, n_gates))
        return -1;
    if (fused_prepare_output(h_seq_out, 3, seq_dims, typenum)
            || fused_prepare_output(gates_out, 3, gates_dims, typenum))
        return -1;
    PyArrayObject* rh = held.scratch(2, state_dims, typenum);
    if (!rh)
        return -1;
    const T* P = (const T*)PyArray_DATA(projected);
    const T* b = (const T*)PyArray_DATA(bias);
    const T* h = (const T*)PyArray_DATA(h0);
    const T* U = (const T*)PyArray_DATA(kernel);
    const npy_int8* M = mask ? (const npy_int8*)PyArray_DATA(mask) : NULL;
    T* H = (T*)PyArray_DATA(*h_seq_out);
    T* Z = (T*)PyArray_DATA(*gates_out);
    T* RH = (T*)PyArray_DATA(rh);
    if (kind == FUSED_HARD_SIGMOID)
        gru_forward_steps<T, FUSED_HARD_SIGMOID>(time, batch, units, P, b, h, U, M, H, Z, RH);
    else
        gru_forward_steps<T, FUSED_SIGMOID>(time, batch, units, P, b, h, U, M, H, Z, RH);
    return 0;
}

/* Backward: from dh_seq (time, batch, units), the gradient reaching each
   step's h from outside the recurrence, the gradients of projected, the
   bias, h0 and U. */
template <typename T>
static int fused_gru_backward(int kind, int typenum, PyArrayObject* h0_in,
                              PyArrayObject* kernel_in, PyArrayObject* h_seq_in,
                              PyArrayObject* gates_in, PyArrayObject* dh_seq_in,
                              PyArrayObject* mask_in, PyArrayObject** d_projected_out,
                              PyArrayObject** d_bias_out, PyArrayObject** dh0_out,
                              PyArrayObject** d_kernel_out)
{
    FusedHeldArrays held;
    PyArrayObject* h0 = held.add(h0_in);
    PyArrayObject* kernel = held.add(kernel_in);
    PyArrayObject* h_seq = held.add(h_seq_in);
    PyArrayObject* gates = held.add(gates_in);
    PyArrayObject* dh_seq = held.add(dh_seq_in);
    PyArrayObject* mask = held.add(mask_in);
    if (!h0 || !kernel || !h_seq || !gates || !dh_seq || (mask_in && !mask))
        return -1;
    const npy_intp time = PyArray_DIMS(gates)[0], batch = PyArray_DIMS(gates)[1];
    const npy_intp units = PyArray_DIMS(kernel)[0], n_gates = 3 * units;
    const npy_intp state_dims[2] = {batch, units}, kernel_dims[2] = {units, n_gates};
    const npy_intp gates_dims[3] = {time, batch, n_gates}, seq_dims[3] = {time, batch, units};
    const npy_intp mask_dims[2] = {time, batch}, bias_dims[1] = {n_gates};
    if (gru_check_shape(gates, "gates (time, batch, 3 units)", 3, gates_dims)
            || gru_check_shape(kernel, "recurrent_kernel (units, 3 units)", 2, kernel_dims)
            || gru_check_shape(h0, "h0 (batch, units)", 2, state_dims)
            || gru_check_shape(h_seq, "h_seq (time, batch, units)", 3, seq_dims)
            || gru_check_shape(dh_seq, "dh_seq (time, batch, units)", 3, seq_dims)
            || (mask && gru_check_shape(mask, "mask (time, batch)", 2, mask_dims))
            || gru_check_blas_size(time, batch, n_gates))
        return -1;
    if (fused_prepare_output(d_projected_out, 3, gates_dims, typenum)
            || fused_prepare_output(d_bias_out, 1, bias_dims, typenum)
            || fused_prepare_output(dh0_out, 2, state_dims, typenum)
            || fused_prepare_output(d_kernel_out, 2, kernel_dims, typenum))
        return -1;
    /* r h_{t-1} of every step (U_h's input, for its gradient after the
       loop), and the per-step gradient of r h_{t-1}. */
    PyArrayObject* rh = held.scratch(3, seq_dims, typenum);
    PyArrayObject* d_rh = held.scratch(2, state_dims, typenum);
    if (!rh || !d_rh)
        return -1;

    const T* H0 = (const T*)PyArray_DATA(h0);
    const T* U = (const T*)PyArray_DATA(kernel);
    const T* H = (const T*)PyArray_DATA(h_seq);
    const T* Z = (const T*)PyArray_DATA(gates);
    const T* DH = (const T*)PyArray_DATA(dh_seq);
    const npy_int8* M = mask ? (const npy_int8*)PyArray_DATA(mask) : NULL;
    T* DZ = (T*)PyArray_DATA(*d_projected_out);
    /* dL/dh_t through step t+1; after the loop it is dL/dh0, so it lives
       in that output. */
    T* dh_next = (T*)PyArray_DATA(*dh0_out);
    T* DU = (T*)PyArray_DATA(*d_kernel_out);
    T* RH = (T*)PyArray_DATA(rh);
    memset(dh_next, 0, sizeof(T) * batch * units);
    memset(DU, 0, sizeof(T) * units * n_gates);
    if (kind == FUSED_HARD_SIGMOID)
        gru_backward_steps<T, FUSED_HARD_SIGMOID>(time, batch, units, H0, U, H, Z, DH, M, DZ,
                                                  dh_next, RH, (T*)PyArray_DATA(d_rh));
    else
        gru_backward_steps<T, FUSED_SIGMOID>(time, batch, units, H0, U, H, Z, DH, M, DZ,
                                             dh_next, RH, (T*)PyArray_DATA(d_rh));

    gru_recurrent_kernel_grad<T>(DZ, H0, H, RH, DU, time, batch, units);
    /* d bias = the sum of every dz row, accumulated in double. */
    double* bias_sum = (double*)calloc((size_t)(n_gates ? n_gates : 1), sizeof(double));
    if (!bias_sum) {
        PyErr_NoMemory();
        return -1;
    }
    for (npy_intp row = 0; row < time * batch; ++row)
        fused_accumulate(bias_sum, DZ + row * n_gates, n_gates);
    T* d_bias = (T*)PyArray_DATA(*d_bias_out);
    for (npy_intp j = 0; j < n_gates; ++j)
        d_bias[j] = (T)bias_sum[j];
    free(bias_sum);
    return 0;
}
#endif
"""


class _FusedGRUOp(GatedSequenceOp):
    """What the forward and the gradient Op share: parameters and C setup
    (`GatedSequenceOp`: inner_activation, masked)."""

    what = 'the fused GRU'

    # -- C (BlasOp: BLAS, VECTORISE_FLAGS for the gates' clamps) ---------------
    def _support_code_text(self):
        return SUPPORT_CODE

    def _c_call(self, node, function, arguments, sub):
        """C calling `function`<ctype>(kind, typenum, arguments...), failing
        the thunk when it returns non-zero."""
        return """
        if (%(function)s<%(ctype)s>(%(kind)s, %(typenum)s, %(arguments)s) != 0) {
            %(fail)s
        }
        """ % dict(self._c_settings(node), function=function, arguments=', '.join(arguments),
                   fail=sub['fail'])


class GRUForward(_FusedGRUOp):
    """Runs a GRU over a whole sequence (see the module docstring).

    Inputs: projected (time, batch, 3u) = x W, bias (3u,), h0 (batch, u),
    recurrent_kernel (u, 3u), and with `masked=True` a mask (time, batch).

    Outputs: h_seq (time, batch, u) and gates (time, batch, 3u) =
    (z_z, z_r, hh) per step, the gates' pre-activations and the candidate,
    kept for the backward pass (it has no gradient of its own).

    # Arguments
        inner_activation: 'hard_sigmoid' or 'sigmoid', the gates' activation.
        masked: whether a mask input follows recurrent_kernel.
    """

    def make_node(self, projected, bias, h0, recurrent_kernel, mask=None):
        inputs = self._float_inputs(
            [('projected', 3), ('bias', 1), ('h0', 2), ('recurrent_kernel', 2)],
            [projected, bias, h0, recurrent_kernel]) + self._mask_input(mask)
        dtype = inputs[0].dtype
        return Apply(self, inputs, [self._sequence_type(dtype)() for _ in range(2)])

    def perform(self, node, inputs, output_storage):
        projected, bias, h0, recurrent_kernel = inputs[:4]
        mask = inputs[4] if self.masked else None
        results = gru_forward(projected + bias, h0, recurrent_kernel, mask,
                              self.inner_activation)
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        time, batch, n_gates = input_shapes[0]
        return [(time, batch, input_shapes[3][0]), (time, batch, n_gates)]

    def connection_pattern(self, node):
        # The mask only selects: no gradient flows to it.
        return [[True] * 2] * 4 + [[False] * 2] * int(self.masked)

    def L_op(self, inputs, outputs, output_grads):
        h_seq, gates = outputs
        dh_seq, d_gates = output_grads
        differentiable = inputs[:4]
        if not isinstance(d_gates.type, DisconnectedType):
            return self._gates_output_refused(inputs, len(differentiable))
        _, _, h0, recurrent_kernel = differentiable
        grads = GRUGrad(self.inner_activation, self.masked)(
            h0, recurrent_kernel, h_seq, gates, output_grad_or_zeros(dh_seq, h_seq),
            *inputs[4:])
        grads = [T.patternbroadcast(g, x.broadcastable) for g, x in zip(grads, differentiable)]
        return grads + [DisconnectedType()() for _ in inputs[4:]]   # the mask selects

    def c_code(self, node, name, inputs, outputs, sub):
        mask = inputs[4] if self.masked else 'NULL'
        return self._c_call(node, 'fused_gru_forward', list(inputs[:4]) + [mask] +
                            ['&' + o for o in outputs], sub)


class GRUGrad(_FusedGRUOp):
    """The gradient of `GRUForward`: back-propagation through time.

    Inputs: h0, recurrent_kernel, and GRUForward's outputs h_seq, gates;
    dh_seq (time, batch, u), the gradient reaching each step's h from
    outside the recurrence; with `masked=True` the mask.

    Outputs: the gradients of projected, bias, h0 and recurrent_kernel:

        dh_t = dh_seq_t + dL/dh_t through step t+1
        dz_z_t = dh_t (h_{t-1} - hh_t) z'_t      dz_h_t = dh_t (1 - z_t) (1 - hh_t^2)
        dz_r_t = (dz_h_t U_h^T) h_{t-1} r'_t
        dL/dh_{t-1} through step t = dh_t z_t + (dz_h_t U_h^T) r_t + (dz_z_t, dz_r_t) U_zr^T
        d projected_t = dz_t         d bias = sum_t sum_b dz_t
        dU_zr = sum_t h_{t-1}^T (dz_z_t, dz_r_t)     dU_h = sum_t (r_t h_{t-1})^T dz_h_t

    where x' is the gate activation's derivative (hard_sigmoid: 0.2 where
    0 <= 0.2 z + 0.5 <= 1, else 0, as Theano's own gradient). A padded step
    passes dh through and gives its gates no gradient. The bias gradient is
    accumulated in double inside the Op.
    """

    def make_node(self, h0, recurrent_kernel, h_seq, gates, dh_seq, mask=None):
        inputs = self._float_inputs(
            [('h0', 2), ('recurrent_kernel', 2), ('h_seq', 3), ('gates', 3), ('dh_seq', 3)],
            [h0, recurrent_kernel, h_seq, gates, dh_seq]) + self._mask_input(mask)
        dtype = inputs[0].dtype
        outputs = [self._sequence_type(dtype, ndim)() for ndim in (3, 1, 2, 2)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        h0, recurrent_kernel, h_seq, gates, dh_seq = inputs[:5]
        mask = inputs[5] if self.masked else None
        d_projected, dh0, d_kernel = gru_backward(h0, recurrent_kernel, h_seq, gates, dh_seq,
                                                  mask, self.inner_activation)
        d_bias = d_projected.sum(axis=(0, 1), dtype='float64').astype(d_projected.dtype)
        for storage, value in zip(output_storage, [d_projected, d_bias, dh0, d_kernel]):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        h0, kernel, _, gates = input_shapes[:4]
        return [gates, (gates[2],), h0, kernel]

    def L_op(self, inputs, outputs, output_grads):
        return self._no_second_derivative(inputs)

    def c_code(self, node, name, inputs, outputs, sub):
        mask = inputs[5] if self.masked else 'NULL'
        return self._c_call(node, 'fused_gru_backward', list(inputs[:5]) + [mask] +
                            ['&' + o for o in outputs], sub)

