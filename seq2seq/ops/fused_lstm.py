"""A fused LSTM: a whole sequence in one Theano Op, forward and backward.

The scan loops of `seq2seq.layers.recurrent` are the reference. They run a small
graph per step (a GEMM and a dozen elementwise Ops), and their gradient is a
second scan that Theano's optimizer takes long to compile. `LSTMForward`
runs the recurrence in one C loop instead, and `LSTMGrad` (its gradient)
runs back-propagation through time in another:

    for t in 0 .. time-1:
        z_t = projected_t + b + h_{t-1} U               # one GEMM, (batch, 4u)
        i_t = inner_activation(z_i)   f_t = inner_activation(z_f)
        g_t = tanh(z_c)               o_t = inner_activation(z_o)
        c_t = f_t * c_{t-1} + i_t * g_t
        h_t = o_t * tanh(c_t)
        where mask_t == 0: h_t = h_{t-1}, c_t = c_{t-1}

where projected_t = x_t W is computed outside by one large GEMM over all
steps, and the bias is added inside (so that its gradient, a sum over every
step and sequence, is accumulated inside `LSTMGrad` too). A decoder passes a
projected input shared by every step (broadcastable in time), which is never
repeated in memory. Gate order i, f, c, o, as `seq2seq.layers.cells.LSTMCell`.

The elementwise part of a step is vectorised: in float32, tanh is the
rational approximation of Eigen (within 3e-7 of tanhf), and the
sigmoid is (1 + tanh(z/2)) / 2; float64 uses the C library's tanh, so the
float64 tests compare exact maths.

Supported: `activation` tanh, `inner_activation` hard_sigmoid or sigmoid,
float32 and float64. `unsupported_reason` says why a cell cannot use it.
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from theano.gof import Apply
from theano.gradient import DisconnectedType

# The shared helpers, importable from here too (other fused Ops import them).
from .numpy_reference import lstm_step, lstm_step_backward
from .c_helpers import (CHECK_SHAPE_C, DTYPES, GATE_KINDS, GATE_MATH_C,  # noqa: F401
                        HELD_ARRAYS_C, INNER_ACTIVATIONS, PREPARE_OUTPUT_C, SHARED_C,
                        VECTORISE_FLAGS, BlasOp, GatedSequenceOp, c_type_settings,
                        cache_version, cell_unsupported_reason, check_choice,
                        check_float_inputs, int8_mask_input, output_grad_or_zeros)


def unsupported_reason(cell, truncate_gradient=-1, dtype=None):
    """Why a cell cannot run fused, or None when it can.

    # Arguments
        cell: its `seq2seq.ops.specs.CellSpec`.
        truncate_gradient: the layer's truncate_gradient.
        dtype: the dtype of the graph, when known.
    """
    return cell_unsupported_reason(cell, 'lstm', 'the fused LSTM', 'an LSTM cell',
                                   truncate_gradient, dtype)


def feedback_unsupported_reason(decoder, truncate_gradient=-1, dtype=None):
    """Why a free-running decoder without attention cannot run its loop as
    one `LSTMForward` (the readout folded into the recurrent kernel, see
    `seq2seq.layers.recurrent.fused_feedback_loop`), or None.

    # Arguments
        decoder: its `seq2seq.ops.specs.DecoderSpec`.
        truncate_gradient, dtype: as `unsupported_reason`.
    """
    if len(decoder.cells) != 1:
        return 'the fused decoder runs one cell, got a stack of %d' % len(decoder.cells)
    if decoder.dropout:
        return 'the fused decoder has no dropout; dropout=%g needs the scan loop' % decoder.dropout
    if decoder.readout_activation != 'linear':
        return ('the fused decoder feeds back a linear readout, got readout_activation %s'
                % decoder.readout_activation)
    reason = unsupported_reason(decoder.cells[0], truncate_gradient, dtype)
    return reason and reason.replace('the fused LSTM', 'the fused decoder')


def lstm_sequence(projected, h0, c0, recurrent_kernel, mask=None,
                  inner_activation='hard_sigmoid', bias=None, n_steps=None):
    """Run an LSTM over a whole sequence with `LSTMForward`.

    # Arguments
        projected: (time, batch, 4 * units), x_t W (+ b) for every step; a
            dimension that is broadcastable (of length 1) is shared by every
            step or sequence: a (1, batch, 4u) context is added at every step
            without being repeated.
        h0, c0: (batch, units), the initial states.
        recurrent_kernel: (units, 4 * units), U.
        mask: optional (time, batch); where it is 0, h and c carry over.
        inner_activation: 'hard_sigmoid' or 'sigmoid'.
        bias: optional (4 * units,), added at every step (its gradient is
            summed inside the Op).
        n_steps: the number of steps; needed when projected is broadcastable
            in time, else its first dimension.

    # Returns
        (h_seq, c_seq): each (time, batch, units).
    """
    projected = T.as_tensor_variable(projected)
    broadcast_time, broadcast_batch = projected.broadcastable[:2]
    if n_steps is None:
        if broadcast_time:
            raise ValueError('lstm_sequence: projected is broadcastable in time; '
                             'pass n_steps')
        n_steps = projected.shape[0]
    if bias is None:
        bias = T.zeros((recurrent_kernel.shape[1],), dtype=projected.dtype)
    op = LSTMForward(inner_activation, masked=mask is not None,
                     broadcast_time=bool(broadcast_time), broadcast_batch=bool(broadcast_batch))
    inputs = [projected, bias, h0, c0, recurrent_kernel, n_steps] + \
        ([mask] if mask is not None else [])
    h_seq, c_seq, _ = op(*inputs)
    return h_seq, c_seq


# -- numpy versions of the maths (perform, and a readable reference) ----------

def numpy_forward(projected, h0, c0, recurrent_kernel, mask, inner_activation):
    """The forward recurrence in numpy: (h_seq, c_seq, gates).

    `gates` holds, per step, what the backward pass needs:
    (z_i, z_f, tanh(z_c), z_o), the gate pre-activations except for the
    cell input. The gates are cheap to recompute from z (and recomputing
    them reproduces Theano's hard_sigmoid gradient exactly at the
    boundaries of its linear part); tanh(z_c) is not.
    """
    time, batch, _ = projected.shape
    units = h0.shape[1]
    h_seq = np.empty((time, batch, units), dtype=projected.dtype)
    c_seq = np.empty_like(h_seq)
    gates = np.empty_like(projected)
    h, c = h0, c0
    for t in range(time):
        z = projected[t] + h.dot(recurrent_kernel)                # (batch, 4u)
        h_new, c_new, gates[t] = lstm_step(z, c, inner_activation)
        if mask is not None:
            keep = mask[t][:, None] != 0                          # (batch, 1)
            h_new = np.where(keep, h_new, h)
            c_new = np.where(keep, c_new, c)
        h, c = h_new, c_new
        h_seq[t], c_seq[t] = h, c
    return h_seq, c_seq, gates


def numpy_backward(h0, c0, recurrent_kernel, h_seq, c_seq, gates, dh_seq, dc_seq,
                   mask, inner_activation):
    """Back-propagation through time in numpy.

    Returns (d_projected, d_h0, d_c0, d_recurrent_kernel).
    """
    time, batch, units = h_seq.shape
    dtype = h_seq.dtype
    d_projected = np.zeros(gates.shape, dtype=dtype)
    d_recurrent_kernel = np.zeros(recurrent_kernel.shape, dtype=dtype)
    dh_next = np.zeros((batch, units), dtype=dtype)   # dL/dh_t from step t+1
    dc_next = np.zeros((batch, units), dtype=dtype)
    for t in reversed(range(time)):
        h_prev = h_seq[t - 1] if t > 0 else h0
        c_prev = c_seq[t - 1] if t > 0 else c0
        dh = dh_seq[t] + dh_next
        dz, dc_prev = lstm_step_backward(gates[t], c_seq[t], c_prev, dh,
                                           dc_seq[t] + dc_next, inner_activation)
        dh_prev = np.zeros_like(dh)
        if mask is not None:
            # A padded step passed h and c through unchanged: so does its
            # gradient, and its gates get none.
            keep = mask[t][:, None] != 0
            dz = np.where(keep, dz, 0)
            dc_prev = np.where(keep, dc_prev, dc_seq[t] + dc_next)
            dh_prev = np.where(keep, 0, dh)
        d_projected[t] = dz
        dh_next = dh_prev + dz.dot(recurrent_kernel.T)
        dc_next = dc_prev
        d_recurrent_kernel += h_prev.T.dot(dz)
    return d_projected, dh_next, dc_next, d_recurrent_kernel


# -- the C implementation -------------------------------------------------------

# Shared by both Ops (Theano compiles it once per module); the gate maths
# and the GEMM wrapper are c_helpers.GATE_MATH_C, shared with the GRU Op.
SUPPORT_CODE = GATE_MATH_C + r"""
#ifndef SEQ2SEQ_FUSED_LSTM
#define SEQ2SEQ_FUSED_LSTM
#include <cmath>
#include <stdlib.h>
#include <string.h>

/* One batch row of a forward step. z: the row's (4u) pre-activations
   (z_i, z_f, z_c, z_o); z_c is replaced by g = tanh(z_c) for the backward
   pass. The rows are independent; the restrict pointers let GCC vectorise. */
template <typename T, int KIND>
static void fused_forward_row(T* __restrict z, const T* __restrict c_prev,
                              T* __restrict c, T* __restrict h, npy_intp units)
{
    for (npy_intp j = 0; j < units; ++j) {
        const T i = fused_gate<T, KIND>(z[j]);
        const T f = fused_gate<T, KIND>(z[units + j]);
        const T g = fused_tanh(z[2 * units + j]);
        const T o = fused_gate<T, KIND>(z[3 * units + j]);
        const T cj = f * c_prev[j] + i * g;
        z[2 * units + j] = g;
        c[j] = cj;
        h[j] = o * fused_tanh(cj);
    }
}

/* One batch row of a backward step: from the gradients reaching h_t and c_t
   from outside (dh_out, dc_out) and from step t+1 (dh_next, dc_next), the
   gates' gradient dz; dc_next becomes dL/dc_{t-1} through f, dh_next is
   zeroed (the GEMM with U^T adds dL/dh_{t-1}). */
template <typename T, int KIND>
static void fused_backward_row(const T* __restrict z, const T* __restrict c,
                               const T* __restrict c_prev, const T* __restrict dh_out,
                               const T* __restrict dc_out, T* __restrict dz,
                               T* __restrict dh_next, T* __restrict dc_next, npy_intp units)
{
    for (npy_intp j = 0; j < units; ++j) {
        const T z_i = z[j], z_f = z[units + j], g = z[2 * units + j], z_o = z[3 * units + j];
        const T i = fused_gate<T, KIND>(z_i), f = fused_gate<T, KIND>(z_f);
        const T o = fused_gate<T, KIND>(z_o);
        const T dh = dh_out[j] + dh_next[j];
        const T tanh_c = fused_tanh(c[j]);
        const T dc = dc_out[j] + dc_next[j] + dh * o * ((T)1 - tanh_c * tanh_c);
        dz[j] = dc * g * fused_gate_derivative<T, KIND>(z_i, i);
        dz[units + j] = dc * c_prev[j] * fused_gate_derivative<T, KIND>(z_f, f);
        dz[2 * units + j] = dc * i * ((T)1 - g * g);
        dz[3 * units + j] = dh * tanh_c * fused_gate_derivative<T, KIND>(z_o, o);
        dc_next[j] = dc * f;
        dh_next[j] = (T)0;
    }
}

/* fused_forward_row and fused_backward_row for the gate activation `kind`
   (FUSED_HARD_SIGMOID or FUSED_SIGMOID) chosen at run time. */
template <typename T>
static inline void fused_forward_row_of(int kind, T* z, const T* c_prev, T* c, T* h,
                                        npy_intp units)
{
    if (kind == FUSED_HARD_SIGMOID)
        fused_forward_row<T, FUSED_HARD_SIGMOID>(z, c_prev, c, h, units);
    else
        fused_forward_row<T, FUSED_SIGMOID>(z, c_prev, c, h, units);
}

template <typename T>
static inline void fused_backward_row_of(int kind, const T* z, const T* c, const T* c_prev,
                                         const T* dh_out, const T* dc_out, T* dz,
                                         T* dh_next, T* dc_next, npy_intp units)
{
    if (kind == FUSED_HARD_SIGMOID)
        fused_backward_row<T, FUSED_HARD_SIGMOID>(z, c, c_prev, dh_out, dc_out, dz, dh_next,
                                                  dc_next, units);
    else
        fused_backward_row<T, FUSED_SIGMOID>(z, c, c_prev, dh_out, dc_out, dz, dh_next,
                                             dc_next, units);
}

""" + SHARED_C + CHECK_SHAPE_C + HELD_ARRAYS_C + r"""
static int fused_check_shape(PyArrayObject* a, const char* name, int nd, const npy_intp* dims)
{
    return fused_check_dims("fused LSTM", a, name, nd, dims);
}

/* Forward: fills h_seq, c_seq (time, batch, units) and gates
   (time, batch, 4 units) = (z_i, z_f, tanh(z_c), z_o) per step, where
   z_t = projected[t, b] + bias + h_{t-1} U. projected is (time or 1,
   batch or 1, 4 units): a dimension of 1 flagged broadcast_* is the same
   for every step / row (a decoder's context), so it is never expanded. */
template <typename T>
static int fused_lstm_forward(int kind, int typenum, int broadcast_time, int broadcast_batch,
                              PyArrayObject* projected_in, PyArrayObject* bias_in,
                              PyArrayObject* h0_in, PyArrayObject* c0_in,
                              PyArrayObject* kernel_in, PyArrayObject* n_steps_in,
                              PyArrayObject* mask_in, PyArrayObject** h_seq_out,
                              PyArrayObject** c_seq_out, PyArrayObject** gates_out)
{
    FusedHeldArrays held;
    PyArrayObject* projected = held.add(projected_in);
    PyArrayObject* bias = held.add(bias_in);
    PyArrayObject* h0 = held.add(h0_in);
    PyArrayObject* c0 = held.add(c0_in);
    PyArrayObject* kernel = held.add(kernel_in);
    PyArrayObject* mask = held.add(mask_in);
    if (!projected || !bias || !h0 || !c0 || !kernel || (mask_in && !mask))
        return -1;
    const npy_intp time = (npy_intp)*(npy_int64*)PyArray_DATA(n_steps_in);
    const npy_intp batch = PyArray_DIMS(h0)[0];
    const npy_intp units = PyArray_DIMS(kernel)[0], n_gates = 4 * units;
    const npy_intp state_dims[2] = {batch, units}, kernel_dims[2] = {units, n_gates};
    const npy_intp projected_dims[3] = {broadcast_time ? 1 : time,
                                        broadcast_batch ? 1 : batch, n_gates};
    const npy_intp gates_dims[3] = {time, batch, n_gates}, seq_dims[3] = {time, batch, units};
    const npy_intp mask_dims[2] = {time, batch}, bias_dims[1] = {n_gates};
    if (time < 0) {
        PyErr_SetString(PyExc_ValueError, "fused LSTM: n_steps must be >= 0");
        return -1;
    }
    if (fused_check_shape(kernel, "recurrent_kernel (units, 4 units)", 2, kernel_dims)
            || fused_check_shape(projected, "projected (n_steps or 1, batch or 1, 4 units)",
                                 3, projected_dims)
            || fused_check_shape(bias, "bias (4 units)", 1, bias_dims)
            || fused_check_shape(h0, "h0 (batch, units)", 2, state_dims)
            || fused_check_shape(c0, "c0 (batch, units)", 2, state_dims)
            || (mask && fused_check_shape(mask, "mask (n_steps, batch)", 2, mask_dims)))
        return -1;
    if (time * batch > INT_MAX || n_gates > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fused LSTM: too large for a BLAS int");
        return -1;
    }
    if (fused_prepare_output(h_seq_out, 3, seq_dims, typenum)
            || fused_prepare_output(c_seq_out, 3, seq_dims, typenum)
            || fused_prepare_output(gates_out, 3, gates_dims, typenum))
        return -1;

    const T* P = (const T*)PyArray_DATA(projected);
    const T* bias_data = (const T*)PyArray_DATA(bias);
    const T* U = (const T*)PyArray_DATA(kernel);
    const npy_int8* M = mask ? (const npy_int8*)PyArray_DATA(mask) : NULL;
    T* H = (T*)PyArray_DATA(*h_seq_out);
    T* C = (T*)PyArray_DATA(*c_seq_out);
    T* Z = (T*)PyArray_DATA(*gates_out);
    const int B = (int)batch, u = (int)units, G = (int)n_gates;
    const npy_intp p_step = broadcast_time ? 0 : (broadcast_batch ? 1 : batch) * n_gates;
    const npy_intp p_row = broadcast_batch ? 0 : n_gates;

    for (npy_intp t = 0; t < time; ++t) {
        const T* h_prev = t ? H + (t - 1) * batch * units : (const T*)PyArray_DATA(h0);
        const T* c_prev = t ? C + (t - 1) * batch * units : (const T*)PyArray_DATA(c0);
        T* z = Z + t * batch * n_gates;                            /* (batch, 4u) */
        T* h = H + t * batch * units;                              /* (batch, u) */
        T* c = C + t * batch * units;
        /* z = projected_t + bias + h_prev U, i.e. z^T = U^T h_prev^T + z^T. */
        for (npy_intp b = 0; b < batch; ++b)
            fused_add_rows(z + b * n_gates, P + t * p_step + b * p_row, bias_data, n_gates);
        if (B > 0 && u > 0)
            fused_gemm('N', 'N', G, B, u, (T)1, U, G, h_prev, u, (T)1, z, G);
        for (npy_intp b = 0; b < batch; ++b) {
            T* zb = z + b * n_gates;
            T* hb = h + b * units;
            T* cb = c + b * units;
            const T* hpb = h_prev + b * units;
            const T* cpb = c_prev + b * units;
            if (M && !M[t * batch + b]) {
                /* A padded step: the state carries over. The gates are not
                   used by the backward pass; keep the slot defined anyway. */
                for (npy_intp j = 0; j < units; ++j) {
                    zb[2 * units + j] = fused_tanh(zb[2 * units + j]);
                    hb[j] = hpb[j];
                    cb[j] = cpb[j];
                }
                continue;
            }
            fused_forward_row_of<T>(kind, zb, cpb, cb, hb, units);
        }
    }
    return 0;
}

/* Backward: from dL/dh_seq and dL/dc_seq (the gradients reaching each
   step's outputs from outside the recurrence), the gradients of
   projected (summed over its broadcast dimensions), bias, h0, c0 and the
   recurrent kernel. */
template <typename T>
static int fused_lstm_backward(int kind, int typenum, int broadcast_time, int broadcast_batch,
                               PyArrayObject* h0_in, PyArrayObject* c0_in,
                               PyArrayObject* kernel_in, PyArrayObject* h_seq_in,
                               PyArrayObject* c_seq_in, PyArrayObject* gates_in,
                               PyArrayObject* dh_seq_in, PyArrayObject* dc_seq_in,
                               PyArrayObject* mask_in, PyArrayObject** d_projected_out,
                               PyArrayObject** d_bias_out, PyArrayObject** dh0_out,
                               PyArrayObject** dc0_out, PyArrayObject** d_kernel_out)
{
    FusedHeldArrays held;
    PyArrayObject* h0 = held.add(h0_in);
    PyArrayObject* c0 = held.add(c0_in);
    PyArrayObject* kernel = held.add(kernel_in);
    PyArrayObject* h_seq = held.add(h_seq_in);
    PyArrayObject* c_seq = held.add(c_seq_in);
    PyArrayObject* gates = held.add(gates_in);
    PyArrayObject* dh_seq = held.add(dh_seq_in);
    PyArrayObject* dc_seq = held.add(dc_seq_in);
    PyArrayObject* mask = held.add(mask_in);
    if (!h0 || !c0 || !kernel || !h_seq || !c_seq || !gates || !dh_seq || !dc_seq
            || (mask_in && !mask))
        return -1;
    const npy_intp time = PyArray_DIMS(gates)[0], batch = PyArray_DIMS(gates)[1];
    const npy_intp units = PyArray_DIMS(kernel)[0], n_gates = 4 * units;
    const npy_intp state_dims[2] = {batch, units}, kernel_dims[2] = {units, n_gates};
    const npy_intp gates_dims[3] = {time, batch, n_gates}, seq_dims[3] = {time, batch, units};
    const npy_intp projected_dims[3] = {broadcast_time ? 1 : time,
                                        broadcast_batch ? 1 : batch, n_gates};
    const npy_intp mask_dims[2] = {time, batch}, bias_dims[1] = {n_gates};
    if (fused_check_shape(gates, "gates (time, batch, 4 units)", 3, gates_dims)
            || fused_check_shape(kernel, "recurrent_kernel (units, 4 units)", 2, kernel_dims)
            || fused_check_shape(h0, "h0 (batch, units)", 2, state_dims)
            || fused_check_shape(c0, "c0 (batch, units)", 2, state_dims)
            || fused_check_shape(h_seq, "h_seq (time, batch, units)", 3, seq_dims)
            || fused_check_shape(c_seq, "c_seq (time, batch, units)", 3, seq_dims)
            || fused_check_shape(dh_seq, "dh_seq (time, batch, units)", 3, seq_dims)
            || fused_check_shape(dc_seq, "dc_seq (time, batch, units)", 3, seq_dims)
            || (mask && fused_check_shape(mask, "mask (time, batch)", 2, mask_dims)))
        return -1;
    if (time * batch > INT_MAX || n_gates > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fused LSTM: too large for a BLAS int");
        return -1;
    }
    const int reduced = broadcast_time || broadcast_batch;
    if (fused_prepare_output(d_projected_out, 3, projected_dims, typenum)
            || fused_prepare_output(d_bias_out, 1, bias_dims, typenum)
            || fused_prepare_output(dh0_out, 2, state_dims, typenum)
            || fused_prepare_output(dc0_out, 2, state_dims, typenum)
            || fused_prepare_output(d_kernel_out, 2, kernel_dims, typenum))
        return -1;
    /* dz for every step: the projected gradient itself, or a scratch array
       that is then summed over projected's broadcast dimensions. */
    PyArrayObject* dz_all = reduced       /* released with the inputs */
        ? held.hold((PyArrayObject*)PyArray_EMPTY(3, (npy_intp*)gates_dims, typenum, 0)) : NULL;
    if (reduced && !dz_all)
        return -1;

    const T* U = (const T*)PyArray_DATA(kernel);
    const T* H = (const T*)PyArray_DATA(h_seq);
    const T* C = (const T*)PyArray_DATA(c_seq);
    const T* Z = (const T*)PyArray_DATA(gates);
    const T* DH = (const T*)PyArray_DATA(dh_seq);
    const T* DC = (const T*)PyArray_DATA(dc_seq);
    const npy_int8* M = mask ? (const npy_int8*)PyArray_DATA(mask) : NULL;
    T* DZ = (T*)PyArray_DATA(reduced ? dz_all : *d_projected_out);
    /* dh_next, dc_next: dL/dh_t and dL/dc_t through step t+1; after the
       loop they are dL/dh0 and dL/dc0, so they live in those outputs. */
    T* dh_next = (T*)PyArray_DATA(*dh0_out);
    T* dc_next = (T*)PyArray_DATA(*dc0_out);
    T* DU = (T*)PyArray_DATA(*d_kernel_out);
    const int B = (int)batch, u = (int)units, G = (int)n_gates;
    memset(dh_next, 0, sizeof(T) * batch * units);
    memset(dc_next, 0, sizeof(T) * batch * units);
    memset(DU, 0, sizeof(T) * units * n_gates);

    for (npy_intp t = time - 1; t >= 0; --t) {
        const T* c_prev = t ? C + (t - 1) * batch * units : (const T*)PyArray_DATA(c0);
        T* dz = DZ + t * batch * n_gates;
        for (npy_intp b = 0; b < batch; ++b) {
            const npy_intp row = (t * batch + b);
            const T* zb = Z + row * n_gates;
            const T* cb = C + row * units;
            const T* dhb = DH + row * units;
            const T* dcb = DC + row * units;
            const T* cpb = c_prev + b * units;
            T* dzb = dz + b * n_gates;
            T* dhn = dh_next + b * units;
            T* dcn = dc_next + b * units;
            if (M && !M[row]) {
                /* A padded step copied h and c: their gradients pass
                   straight through, and the gates get none. */
                for (npy_intp j = 0; j < units; ++j) {
                    dhn[j] += dhb[j];
                    dcn[j] += dcb[j];
                }
                memset(dzb, 0, sizeof(T) * n_gates);
                continue;
            }
            fused_backward_row_of<T>(kind, zb, cb, cpb, dhb, dcb, dzb, dhn, dcn, units);
        }
        /* dh_next += dz U^T, i.e. dh_next^T += U dz^T. Padded rows keep the
           gradient passed through above (their dz is 0). */
        if (B > 0 && u > 0)
            fused_gemm('T', 'N', u, B, G, (T)1, U, G, dz, G, (T)1, dh_next, u);
    }
    /* dU = sum_t h_{t-1}^T dz_t, two GEMMs over all steps at once. */
    fused_recurrent_kernel_grad<T>(DZ, (const T*)PyArray_DATA(h0), H, DU, time, batch, units,
                                   n_gates, n_gates);
    /* The sums over steps and rows, in double: d bias = sum of every dz row,
       d projected = dz summed over projected's broadcast dimensions. */
    double* sums = (double*)calloc((size_t)(n_gates * (reduced ? batch + 1 : 1)), sizeof(double));
    if (!sums) {
        PyErr_NoMemory();
        return -1;
    }
    double* bias_sum = sums;
    double* row_sums = sums + n_gates;             /* (batch, 4u): summed over time */
    for (npy_intp t = 0; t < time; ++t)
        for (npy_intp b = 0; b < batch; ++b) {
            const T* dzb = DZ + (t * batch + b) * n_gates;
            fused_accumulate(bias_sum, dzb, n_gates);
            if (broadcast_time && !broadcast_batch)
                fused_accumulate(row_sums + b * n_gates, dzb, n_gates);
        }
    T* d_bias = (T*)PyArray_DATA(*d_bias_out);
    for (npy_intp j = 0; j < n_gates; ++j)
        d_bias[j] = (T)bias_sum[j];
    if (reduced) {
        T* DP = (T*)PyArray_DATA(*d_projected_out);
        if (broadcast_time && broadcast_batch) {
            for (npy_intp j = 0; j < n_gates; ++j)
                DP[j] = (T)bias_sum[j];
        } else if (broadcast_time) {
            for (npy_intp k = 0; k < batch * n_gates; ++k)
                DP[k] = (T)row_sums[k];
        } else {
            /* Broadcast over the batch only: sum each step's rows. */
            for (npy_intp t = 0; t < time; ++t) {
                double* step_sum = row_sums;
                memset(step_sum, 0, sizeof(double) * n_gates);
                for (npy_intp b = 0; b < batch; ++b)
                    fused_accumulate(step_sum, DZ + (t * batch + b) * n_gates, n_gates);
                for (npy_intp j = 0; j < n_gates; ++j)
                    DP[t * n_gates + j] = (T)step_sum[j];
            }
        }
    }
    free(sums);
    return 0;
}
#endif
"""


class _FusedLSTMOp(GatedSequenceOp):
    """What the forward and the gradient Op share: parameters and C setup
    (those of every gated cell's Op in `GatedSequenceOp`).

    `broadcast_time`, `broadcast_batch`: whether `projected` is one row
    shared by every step / every sequence of the batch (its dimension is 1).
    """

    __props__ = ('inner_activation', 'masked', 'broadcast_time', 'broadcast_batch')
    what = 'the fused LSTM'

    def __init__(self, inner_activation='hard_sigmoid', masked=False,
                 broadcast_time=False, broadcast_batch=False):
        super(_FusedLSTMOp, self).__init__(inner_activation, masked)
        for name, value in [('broadcast_time', broadcast_time),
                            ('broadcast_batch', broadcast_batch)]:
            if not isinstance(value, bool):
                raise TypeError('%s must be True or False, got %r' % (name, value))
        self.broadcast_time = broadcast_time
        self.broadcast_batch = broadcast_batch

    def _projected_type(self, dtype):
        return T.TensorType(dtype, (self.broadcast_time, self.broadcast_batch, False))

    # -- C (BlasOp: BLAS, VECTORISE_FLAGS for the gates' clamps) ---------------
    def _support_code_text(self):
        return SUPPORT_CODE

    def _c_settings(self, node):
        return dict(super(_FusedLSTMOp, self)._c_settings(node),
                    broadcast_time=int(self.broadcast_time),
                    broadcast_batch=int(self.broadcast_batch))


class LSTMForward(_FusedLSTMOp):
    """Runs an LSTM over a whole sequence (see the module docstring).

    Inputs: projected (time, batch, 4u) -- (1, ...) with broadcast_time,
    (..., 1, ...) with broadcast_batch --, bias (4u,), h0 (batch, u),
    c0 (batch, u), recurrent_kernel (u, 4u), n_steps (int64 scalar), and
    with `masked=True` a mask (time, batch).

    Outputs: h_seq (time, batch, u), c_seq (time, batch, u) and gates
    (time, batch, 4u) = (z_i, z_f, tanh(z_c), z_o) per step, kept for the
    backward pass (it has no gradient of its own).

    # Arguments
        inner_activation: 'hard_sigmoid' or 'sigmoid', the gates' activation.
        masked: whether a mask input follows n_steps.
        broadcast_time, broadcast_batch: see `_FusedLSTMOp`.
    """

    def make_node(self, projected, bias, h0, c0, recurrent_kernel, n_steps, mask=None):
        inputs = self._float_inputs(
            [('projected', 3), ('bias', 1), ('h0', 2), ('c0', 2), ('recurrent_kernel', 2)],
            [projected, bias, h0, c0, recurrent_kernel])
        # The flags decide the layout; a mismatched projected fails at run time.
        inputs[0] = T.patternbroadcast(inputs[0], (self.broadcast_time, self.broadcast_batch,
                                                   False))
        n_steps = T.as_tensor_variable(n_steps)
        if n_steps.ndim != 0 or n_steps.dtype not in T.integer_dtypes:
            raise TypeError('n_steps must be an integer scalar, got %s' % (n_steps.type,))
        inputs += [T.cast(n_steps, 'int64')] + self._mask_input(mask)
        dtype = inputs[0].dtype
        outputs = [self._sequence_type(dtype)() for _ in range(3)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        projected, bias, h0, c0, recurrent_kernel, n_steps = inputs[:6]
        mask = inputs[6] if self.masked else None
        full = np.broadcast_to(projected + bias, (int(n_steps), h0.shape[0], bias.shape[0]))
        results = numpy_forward(full, h0, c0, recurrent_kernel, mask, self.inner_activation)
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        n_steps = node.inputs[5]
        batch = input_shapes[2][0]
        units = input_shapes[4][0]
        return [(n_steps, batch, units), (n_steps, batch, units), (n_steps, batch, 4 * units)]

    def connection_pattern(self, node):
        # n_steps counts and the mask only selects: no gradient flows to them.
        return [[True] * 3] * 5 + [[False] * 3] * (2 if self.masked else 1)

    def L_op(self, inputs, outputs, output_grads):
        h_seq, c_seq, gates = outputs
        dh_seq, dc_seq, d_gates = output_grads
        differentiable = inputs[:5]
        if not isinstance(d_gates.type, DisconnectedType):
            return self._gates_output_refused(inputs, len(differentiable))
        dh_seq = output_grad_or_zeros(dh_seq, h_seq)
        dc_seq = output_grad_or_zeros(dc_seq, c_seq)
        projected, bias, h0, c0, recurrent_kernel = differentiable
        mask = inputs[6:]
        grads = LSTMGrad(self.inner_activation, self.masked, self.broadcast_time,
                         self.broadcast_batch)(
            h0, c0, recurrent_kernel, h_seq, c_seq, gates, dh_seq, dc_seq, *mask)
        grads = [T.patternbroadcast(g, x.broadcastable) for g, x in zip(grads, differentiable)]
        return grads + self._disconnected_grads()

    def _disconnected_grads(self):
        return [DisconnectedType()() for _ in range(2 if self.masked else 1)]

    def c_code(self, node, name, inputs, outputs, sub):
        settings = self._c_settings(node)
        mask = inputs[6] if self.masked else 'NULL'
        return """
        if (fused_lstm_forward<%(ctype)s>(%(kind)s, %(typenum)s, %(broadcast_time)s,
                                          %(broadcast_batch)s, %(projected)s, %(bias)s,
                                          %(h0)s, %(c0)s, %(kernel)s, %(n_steps)s, %(mask)s,
                                          &%(h_seq)s, &%(c_seq)s, &%(gates)s) != 0) {
            %(fail)s
        }
        """ % dict(settings, projected=inputs[0], bias=inputs[1], h0=inputs[2], c0=inputs[3],
                   kernel=inputs[4], n_steps=inputs[5], mask=mask, h_seq=outputs[0],
                   c_seq=outputs[1], gates=outputs[2], fail=sub['fail'])


class LSTMGrad(_FusedLSTMOp):
    """The gradient of `LSTMForward`: back-propagation through time.

    Inputs: h0, c0, recurrent_kernel, and LSTMForward's outputs h_seq, c_seq,
    gates; dh_seq, dc_seq (time, batch, u), the gradients reaching each
    step's h and c from outside the recurrence; with `masked=True` the mask.

    Outputs: the gradients of projected (summed over its broadcast
    dimensions), bias, h0, c0 and recurrent_kernel:

        dh_t = dh_seq_t + dz_{t+1} U^T        dc_t = dc_seq_t + dc_{t+1} f_{t+1}
        dc_t += dh_t o_t (1 - tanh(c_t)^2)
        dz_t = (dc_t g_t i'_t, dc_t c_{t-1} f'_t, dc_t i_t (1 - g_t^2),
                dh_t tanh(c_t) o'_t)
        d bias = sum_t sum_b dz_t        dU = sum_t h_{t-1}^T dz_t

    where x' is the gate activation's derivative (hard_sigmoid: 0.2 where
    0 <= 0.2 z + 0.5 <= 1, else 0, as Theano's own gradient). A padded step
    passes dh and dc through and gives its gates no gradient. The sums are
    accumulated in double inside the Op (not by Theano Sums over the whole
    (time, batch, 4u) gradient afterwards).
    """

    def make_node(self, h0, c0, recurrent_kernel, h_seq, c_seq, gates, dh_seq, dc_seq,
                  mask=None):
        inputs = self._float_inputs(
            [('h0', 2), ('c0', 2), ('recurrent_kernel', 2), ('h_seq', 3), ('c_seq', 3),
             ('gates', 3), ('dh_seq', 3), ('dc_seq', 3)],
            [h0, c0, recurrent_kernel, h_seq, c_seq, gates, dh_seq, dc_seq]) \
            + self._mask_input(mask)
        dtype = inputs[0].dtype
        outputs = [self._projected_type(dtype)(), self._sequence_type(dtype, 1)()] + \
                  [self._sequence_type(dtype, 2)() for _ in range(3)]
        return Apply(self, inputs, outputs)

    def perform(self, node, inputs, output_storage):
        mask = inputs[8] if self.masked else None
        d_gates, dh0, dc0, d_kernel = numpy_backward(
            *(list(inputs[:8]) + [mask, self.inner_activation]))
        axes = tuple(axis for axis, flag in enumerate([self.broadcast_time,
                                                        self.broadcast_batch]) if flag)
        d_projected = d_gates.sum(axis=axes, keepdims=True, dtype='float64') if axes else d_gates
        d_bias = d_gates.sum(axis=(0, 1), dtype='float64')
        results = [d_projected.astype(d_gates.dtype), d_bias.astype(d_gates.dtype),
                   dh0, dc0, d_kernel]
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        h0, c0, kernel, _, _, gates = input_shapes[:6]
        time, batch, n_gates = gates
        projected = (1 if self.broadcast_time else time, 1 if self.broadcast_batch else batch,
                     n_gates)
        return [projected, (n_gates,), h0, c0, kernel]

    def L_op(self, inputs, outputs, output_grads):
        return self._no_second_derivative(inputs)

    def c_code(self, node, name, inputs, outputs, sub):
        settings = self._c_settings(node)
        names = dict(zip(['h0', 'c0', 'kernel', 'h_seq', 'c_seq', 'gates', 'dh_seq', 'dc_seq'],
                         inputs[:8]))
        names.update(zip(['d_projected', 'd_bias', 'dh0', 'dc0', 'd_kernel'], outputs))
        names['mask'] = inputs[8] if self.masked else 'NULL'
        return """
        if (fused_lstm_backward<%(ctype)s>(%(kind)s, %(typenum)s, %(broadcast_time)s,
                                           %(broadcast_batch)s, %(h0)s, %(c0)s, %(kernel)s,
                                           %(h_seq)s, %(c_seq)s, %(gates)s, %(dh_seq)s,
                                           %(dc_seq)s, %(mask)s, &%(d_projected)s,
                                           &%(d_bias)s, &%(dh0)s, &%(dc0)s,
                                           &%(d_kernel)s) != 0) {
            %(fail)s
        }
        """ % dict(settings, fail=sub['fail'], **names)
