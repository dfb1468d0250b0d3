"""Softmax cross-entropy on integer targets, fused: one Op forward, one back.

For logits z (positions, classes), a bias b (classes,) and targets
y (positions,):

    p_n = softmax(z_n + b)                      (positions, classes)
    nll_n = log(sum_k exp(z_nk + b_k - m_n)) - (z_ny + b_y - m_n),   m_n = max_k(z_nk + b_k)

and, given d nll (positions,):

    d z_nk = d nll_n * (p_nk - [k == y_n])      d b_k = sum_n d z_nk

This is what Keras' `sparse_categorical_crossentropy` computes on a softmax
output, without its (positions, classes) one-hot matrix, its renormalisation
and its clipped log (Theano's scalar loops, a pass each). Theano's own
`CrossentropySoftmaxArgmax1HotWithBias` fuses the same maths but calls the C
library's `exp` once per element; here, in float32, `exp` is a Cephes-style
polynomial that GCC vectorises (within 2 ulp of expf, tested), and the bias
gradient is summed in double inside the gradient Op. float64 uses the C
library's `exp`, so the float64 tests compare exact maths.

With `clip=(lo, hi)` (Keras' clip, lo = K.epsilon(), hi = 1 - lo) the loss
is Keras' `-log(clip(p_ny, lo, hi))`: `-log(lo)` or `-log(hi)` where p_ny is
outside [lo, hi], with a zero gradient on those rows (the clip's gradient is
zero there and only p_ny reaches the loss); the decision is made on the
stored p_ny, the same in the forward and the gradient Op. The clip is an Op
parameter, not part of the C code: one compiled module for every clip.

`SoftmaxCategoricalCrossEntropy` takes dense targets t (positions, classes)
instead, Keras' `categorical_crossentropy` (one-hot rows or any
distribution): nll_n = -sum_k t_nk log(clip(p_nk)), and
d z_nk = d nll_n * (p_nk sum_j a_nj - a_nk) with a_nk = t_nk where p_nk is
inside the clip, else 0.

`sparse_softmax_crossentropy` in `seq2seq.losses` is the user-facing loss;
`seq2seq._theano.keras_loss` rewrites Keras' own losses into these Ops.
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
import theano.scalar
from theano.gof import Apply, Op, ParamsType
from theano.gradient import DisconnectedType
from theano.tensor.nnet.nnet import softmax_grad

from .c_helpers import (DTYPES, SHARED_C, VECTORISE_FLAGS, c_type_settings,  # noqa: F401
                        cache_version, check_float_inputs)

_SUPPORT_CODE = r"""
#ifndef SEQ2SEQ_FUSED_SOFTMAX
#define SEQ2SEQ_FUSED_SOFTMAX
#include <cmath>
#include <string.h>

/* exp. float: range reduction x = n ln2 + r (ln2 in two parts), Cephes'
   polynomial for exp(r), then 2^n from the exponent bits. Arguments are
   clamped to [-87.3, 88.3], so results stay normal numbers: below -87.3 it
   returns ~1e-38 instead of a smaller one, which a softmax (whose sum is
   >= 1) cannot tell apart. Branch-free, so GCC vectorises the loops that
   call it. double: the C library's. */
static inline float xent_exp(float x)
{
    x = x < -87.3f ? -87.3f : x;
    x = x > 88.3f ? 88.3f : x;
    const float n = std::floor(x * 1.44269504088896341f + 0.5f);
    x = x - n * 0.693359375f + n * 2.12194440e-4f;
    const float x2 = x * x;
    float y = 1.9875691500e-4f;
    y = y * x + 1.3981999507e-3f;
    y = y * x + 8.3334519073e-3f;
    y = y * x + 4.1665795894e-2f;
    y = y * x + 1.6666665459e-1f;
    y = y * x + 5.0000001201e-1f;
    y = y * x2 + x + 1.0f;
    const npy_int32 bits = ((npy_int32)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return y * scale;
}

static inline double xent_exp(double x) { return std::exp(x); }

/* p = exp(z + b - max(z + b)) for one row; returns the row's sum. Eight
   partial sums (and maxima) so that the reductions vectorise too. */
template <typename T>
static double xent_row_exp(const T* __restrict z, const T* __restrict b, T* __restrict p,
                           npy_intp classes, T* row_max)
{
    T m8[8];
    for (int k = 0; k < 8; ++k)
        m8[k] = -INFINITY;
    npy_intp j = 0;
    for (; j + 8 <= classes; j += 8)
        for (int k = 0; k < 8; ++k) {
            const T v = z[j + k] + b[j + k];
            m8[k] = v > m8[k] ? v : m8[k];
        }
    T m = -INFINITY;
    for (int k = 0; k < 8; ++k)
        m = m8[k] > m ? m8[k] : m;
    for (; j < classes; ++j)
        m = z[j] + b[j] > m ? z[j] + b[j] : m;
    for (j = 0; j < classes; ++j)
        p[j] = xent_exp(z[j] + b[j] - m);
    T s8[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (j = 0; j + 8 <= classes; j += 8)
        for (int k = 0; k < 8; ++k)
            s8[k] += p[j + k];
    double s = 0;
    for (int k = 0; k < 8; ++k)
        s += s8[k];
    for (; j < classes; ++j)
        s += p[j];
    *row_max = m;
    return s;
}

template <typename T>
static void xent_scale(T* __restrict p, T factor, npy_intp n)
{
    for (npy_intp j = 0; j < n; ++j)
        p[j] *= factor;
}

""" + SHARED_C + r"""/* Every target in [0, classes), or a ValueError naming the first that is not. */
static int xent_check_targets(const npy_int32* y, npy_intp positions, npy_intp classes)
{
    for (npy_intp n = 0; n < positions; ++n)
        if (y[n] < 0 || y[n] >= classes) {
            PyErr_Format(PyExc_ValueError,
                         "sparse_softmax_crossentropy: target %d at position %ld is not "
                         "a class index in [0, %ld)", (int)y[n], (long)n, (long)classes);
            return -1;
        }
    return 0;
}

/* Whether Keras' clip to [lo, hi] changes the probability q: then its
   gradient, and so the whole row's, is zero. */
template <typename T>
static inline bool xent_clipped(T q, double lo, double hi)
{
    return (double)q < lo || (double)q > hi;
}

template <typename T>
static int xent_forward(int typenum, PyArrayObject* logits_in, PyArrayObject* bias_in,
                        PyArrayObject* targets_in, PyArrayObject** nll_out,
                        PyArrayObject** probs_out, int clip, double clip_lo, double clip_hi)
{
    const npy_intp positions = PyArray_DIMS(logits_in)[0], classes = PyArray_DIMS(logits_in)[1];
    if (PyArray_DIMS(bias_in)[0] != classes || PyArray_DIMS(targets_in)[0] != positions) {
        PyErr_Format(PyExc_ValueError, "sparse_softmax_crossentropy: logits (%ld, %ld) need "
                     "a bias of %ld classes and %ld targets, got %ld and %ld",
                     (long)positions, (long)classes, (long)classes, (long)positions,
                     (long)PyArray_DIMS(bias_in)[0], (long)PyArray_DIMS(targets_in)[0]);
        return -1;
    }
    PyArrayObject* logits = PyArray_GETCONTIGUOUS(logits_in);
    PyArrayObject* bias = PyArray_GETCONTIGUOUS(bias_in);
    PyArrayObject* targets = PyArray_GETCONTIGUOUS(targets_in);
    const npy_intp nll_dims[1] = {positions}, probs_dims[2] = {positions, classes};
    int status = -1;
    if (logits && bias && targets
            && xent_check_targets((const npy_int32*)PyArray_DATA(targets), positions, classes) == 0
            && fused_prepare_output(nll_out, 1, nll_dims, typenum) == 0
            && fused_prepare_output(probs_out, 2, probs_dims, typenum) == 0) {
        const T* Z = (const T*)PyArray_DATA(logits);
        const T* b = (const T*)PyArray_DATA(bias);
        const npy_int32* y = (const npy_int32*)PyArray_DATA(targets);
        T* nll = (T*)PyArray_DATA(*nll_out);
        T* P = (T*)PyArray_DATA(*probs_out);
        for (npy_intp n = 0; n < positions; ++n) {
            const T* z = Z + n * classes;
            T* p = P + n * classes;
            T m;
            const double sum = xent_row_exp<T>(z, b, p, classes, &m);
            nll[n] = (T)(std::log(sum) - ((double)z[y[n]] + b[y[n]] - m));
            xent_scale<T>(p, (T)(1.0 / sum), classes);
            /* Keras' clip of the target's probability, decided on the stored
               probability that the gradient tests too. */
            if (clip && xent_clipped<T>(p[y[n]], clip_lo, clip_hi))
                nll[n] = (T)(-std::log(p[y[n]] < clip_lo ? clip_lo : clip_hi));
        }
        status = 0;
    }
    Py_XDECREF(logits);
    Py_XDECREF(bias);
    Py_XDECREF(targets);
    return status;
}

/* d z = d nll * (p - one_hot(y)), row by row, or 0 on a clipped row;
   d b = sum over rows, in double. */
template <typename T>
static void xent_grad_row(T* __restrict dz, const T* __restrict p, T scale, npy_intp classes)
{
    for (npy_intp j = 0; j < classes; ++j)
        dz[j] = scale * p[j];
}

template <typename T>
static int xent_backward(int typenum, PyArrayObject* dnll_in, PyArrayObject* probs_in,
                         PyArrayObject* targets_in, PyArrayObject** dlogits_out,
                         PyArrayObject** dbias_out, int clip, double clip_lo, double clip_hi)
{
    const npy_intp positions = PyArray_DIMS(probs_in)[0], classes = PyArray_DIMS(probs_in)[1];
    if (PyArray_DIMS(dnll_in)[0] != positions || PyArray_DIMS(targets_in)[0] != positions) {
        PyErr_SetString(PyExc_ValueError, "sparse_softmax_crossentropy gradient: d nll, "
                        "probabilities and targets disagree on the number of positions");
        return -1;
    }
    PyArrayObject* dnll = PyArray_GETCONTIGUOUS(dnll_in);
    PyArrayObject* probs = PyArray_GETCONTIGUOUS(probs_in);
    PyArrayObject* targets = PyArray_GETCONTIGUOUS(targets_in);
    const npy_intp dz_dims[2] = {positions, classes}, db_dims[1] = {classes};
    double* db = (double*)calloc(classes > 0 ? classes : 1, sizeof(double));
    int status = -1;
    if (!db)
        PyErr_NoMemory();
    else if (dnll && probs && targets
            && xent_check_targets((const npy_int32*)PyArray_DATA(targets), positions, classes) == 0
            && fused_prepare_output(dlogits_out, 2, dz_dims, typenum) == 0
            && fused_prepare_output(dbias_out, 1, db_dims, typenum) == 0) {
        const T* g = (const T*)PyArray_DATA(dnll);
        const T* P = (const T*)PyArray_DATA(probs);
        const npy_int32* y = (const npy_int32*)PyArray_DATA(targets);
        T* dZ = (T*)PyArray_DATA(*dlogits_out);
        for (npy_intp n = 0; n < positions; ++n) {
            T* dz = dZ + n * classes;
            if (clip && xent_clipped<T>(P[n * classes + y[n]], clip_lo, clip_hi)) {
                memset(dz, 0, classes * sizeof(T));
                continue;
            }
            xent_grad_row<T>(dz, P + n * classes, g[n], classes);
            dz[y[n]] -= g[n];
            fused_accumulate<T>(db, dz, classes);
        }
        T* dbias = (T*)PyArray_DATA(*dbias_out);
        for (npy_intp j = 0; j < classes; ++j)
            dbias[j] = (T)db[j];
        status = 0;
    }
    free(db);
    Py_XDECREF(dnll);
    Py_XDECREF(probs);
    Py_XDECREF(targets);
    return status;
}

/* Dense targets t (positions, classes), e.g. one-hot rows:
   nll_n = -sum_k t_nk log(clip(p_nk)), a term only where t_nk != 0 (Keras'
   product is 0 there: its clipped log is finite). log p from the logits. */
template <typename T>
static int xent_forward_dense(int typenum, PyArrayObject* logits_in, PyArrayObject* bias_in,
                              PyArrayObject* targets_in, PyArrayObject** nll_out,
                              PyArrayObject** probs_out, int clip, double clip_lo,
                              double clip_hi)
{
    const npy_intp positions = PyArray_DIMS(logits_in)[0], classes = PyArray_DIMS(logits_in)[1];
    if (PyArray_DIMS(bias_in)[0] != classes || PyArray_DIMS(targets_in)[0] != positions
            || PyArray_DIMS(targets_in)[1] != classes) {
        PyErr_Format(PyExc_ValueError, "categorical softmax crossentropy: logits (%ld, %ld) "
                     "need a bias of %ld classes and targets of the same shape, got %ld and "
                     "(%ld, %ld)", (long)positions, (long)classes, (long)classes,
                     (long)PyArray_DIMS(bias_in)[0], (long)PyArray_DIMS(targets_in)[0],
                     (long)PyArray_DIMS(targets_in)[1]);
        return -1;
    }
    PyArrayObject* logits = PyArray_GETCONTIGUOUS(logits_in);
    PyArrayObject* bias = PyArray_GETCONTIGUOUS(bias_in);
    PyArrayObject* targets = PyArray_GETCONTIGUOUS(targets_in);
    const npy_intp nll_dims[1] = {positions}, probs_dims[2] = {positions, classes};
    int status = -1;
    if (logits && bias && targets
            && fused_prepare_output(nll_out, 1, nll_dims, typenum) == 0
            && fused_prepare_output(probs_out, 2, probs_dims, typenum) == 0) {
        const T* Z = (const T*)PyArray_DATA(logits);
        const T* b = (const T*)PyArray_DATA(bias);
        const T* Y = (const T*)PyArray_DATA(targets);
        T* nll = (T*)PyArray_DATA(*nll_out);
        T* P = (T*)PyArray_DATA(*probs_out);
        for (npy_intp n = 0; n < positions; ++n) {
            const T* z = Z + n * classes;
            const T* t = Y + n * classes;
            T* p = P + n * classes;
            T m;
            const double sum = xent_row_exp<T>(z, b, p, classes, &m);
            const double log_sum = std::log(sum);
            xent_scale<T>(p, (T)(1.0 / sum), classes);
            double total = 0;
            for (npy_intp k = 0; k < classes; ++k) {
                if (t[k] == 0)
                    continue;
                double log_p = ((double)z[k] + b[k] - m) - log_sum;
                if (clip && xent_clipped<T>(p[k], clip_lo, clip_hi))
                    log_p = std::log(p[k] < clip_lo ? clip_lo : clip_hi);
                total -= t[k] * log_p;
            }
            nll[n] = (T)total;
        }
        status = 0;
    }
    Py_XDECREF(logits);
    Py_XDECREF(bias);
    Py_XDECREF(targets);
    return status;
}

/* d z_nk = d nll_n * (p_nk * sum_j a_nj - a_nk), a_nk = t_nk where p_nk is not
   clipped, else 0 (the clip's zero gradient); d b = sum over rows. */
template <typename T>
static int xent_backward_dense(int typenum, PyArrayObject* dnll_in, PyArrayObject* probs_in,
                               PyArrayObject* targets_in, PyArrayObject** dlogits_out,
                               PyArrayObject** dbias_out, int clip, double clip_lo,
                               double clip_hi)
{
    const npy_intp positions = PyArray_DIMS(probs_in)[0], classes = PyArray_DIMS(probs_in)[1];
    if (PyArray_DIMS(dnll_in)[0] != positions || PyArray_DIMS(targets_in)[0] != positions
            || PyArray_DIMS(targets_in)[1] != classes) {
        PyErr_SetString(PyExc_ValueError, "categorical softmax crossentropy gradient: d nll, "
                        "probabilities and targets disagree on their shapes");
        return -1;
    }
    PyArrayObject* dnll = PyArray_GETCONTIGUOUS(dnll_in);
    PyArrayObject* probs = PyArray_GETCONTIGUOUS(probs_in);
    PyArrayObject* targets = PyArray_GETCONTIGUOUS(targets_in);
    const npy_intp dz_dims[2] = {positions, classes}, db_dims[1] = {classes};
    double* db = (double*)calloc(classes > 0 ? classes : 1, sizeof(double));
    int status = -1;
    if (!db)
        PyErr_NoMemory();
    else if (dnll && probs && targets
            && fused_prepare_output(dlogits_out, 2, dz_dims, typenum) == 0
            && fused_prepare_output(dbias_out, 1, db_dims, typenum) == 0) {
        const T* g = (const T*)PyArray_DATA(dnll);
        const T* P = (const T*)PyArray_DATA(probs);
        const T* Y = (const T*)PyArray_DATA(targets);
        T* dZ = (T*)PyArray_DATA(*dlogits_out);
        for (npy_intp n = 0; n < positions; ++n) {
            const T* p = P + n * classes;
            const T* t = Y + n * classes;
            T* dz = dZ + n * classes;
            double kept = 0;
            for (npy_intp k = 0; k < classes; ++k) {
                const bool keep = t[k] != 0 && !(clip && xent_clipped<T>(p[k], clip_lo, clip_hi));
                dz[k] = keep ? t[k] : (T)0;
                kept += dz[k];
            }
            const T scale = (T)(g[n] * kept);
            for (npy_intp k = 0; k < classes; ++k)
                dz[k] = scale * p[k] - g[n] * dz[k];
            fused_accumulate<T>(db, dz, classes);
        }
        T* dbias = (T*)PyArray_DATA(*dbias_out);
        for (npy_intp j = 0; j < classes; ++j)
            dbias[j] = (T)db[j];
        status = 0;
    }
    free(db);
    Py_XDECREF(dnll);
    Py_XDECREF(probs);
    Py_XDECREF(targets);
    return status;
}

#endif
"""


def numpy_forward(logits, bias, targets, clip=None):
    """The reference: (nll (positions,), probabilities (positions, classes))."""
    shifted = logits + bias
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=1)
    rows = np.arange(len(targets))
    nll = np.log(total) - shifted[rows, targets]
    probabilities = (exp / total[:, None]).astype(logits.dtype)
    if clip is not None:
        picked = probabilities[rows, targets].astype('float64')
        nll = np.where(picked < clip[0], -np.log(clip[0]),
                       np.where(picked > clip[1], -np.log(clip[1]), nll))
    return nll.astype(logits.dtype), probabilities


def numpy_backward(dnll, probabilities, targets, clip=None):
    """The reference: (d logits, d bias)."""
    rows = np.arange(len(targets))
    dlogits = probabilities * dnll[:, None]
    dlogits[rows, targets] -= dnll
    if clip is not None:
        picked = probabilities[rows, targets].astype('float64')
        dlogits[(picked < clip[0]) | (picked > clip[1])] = 0
    return dlogits, dlogits.sum(axis=0, dtype='float64').astype(dlogits.dtype)


def numpy_forward_dense(logits, bias, targets, clip=None):
    """The reference for dense targets (positions, classes): (nll, probabilities)."""
    shifted = (logits + bias).astype('float64')
    shifted = shifted - shifted.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    probabilities = np.exp(log_p).astype(logits.dtype)
    if clip is not None:
        p = probabilities.astype('float64')
        log_p = np.where(p < clip[0], np.log(clip[0]),
                         np.where(p > clip[1], np.log(clip[1]), log_p))
    nll = -np.where(targets != 0, targets * log_p, 0).sum(axis=1)
    return nll.astype(logits.dtype), probabilities


def numpy_backward_dense(dnll, probabilities, targets, clip=None):
    """The reference for dense targets: (d logits, d bias)."""
    kept = np.where(targets != 0, targets, 0)
    if clip is not None:
        p = probabilities.astype('float64')
        kept = np.where((p < clip[0]) | (p > clip[1]), 0, kept)
    dlogits = (dnll[:, None] * (probabilities * kept.sum(axis=1, keepdims=True) - kept))
    dlogits = dlogits.astype(probabilities.dtype)
    return dlogits, dlogits.sum(axis=0, dtype='float64').astype(dlogits.dtype)


def _check_clip(clip):
    """None, or (lo, hi) as floats with 0 <= lo <= hi <= 1."""
    if clip is None:
        return None
    try:
        lo, hi = (float(bound) for bound in clip)
    except (TypeError, ValueError):
        raise TypeError('clip must be None or a pair (lo, hi) of numbers, got %r' % (clip,))
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError('clip must be (lo, hi) with 0 <= lo <= hi <= 1, got %r' % (clip,))
    return (lo, hi)


def _check_targets(targets, classes):
    if targets.size and (targets.min() < 0 or targets.max() >= classes):
        bad = int(np.flatnonzero((targets < 0) | (targets >= classes))[0])
        raise ValueError('sparse_softmax_crossentropy: target %d at position %d is not a '
                         'class index in [0, %d)' % (targets[bad], bad, classes))


class _SoftmaxXentOp(Op):
    """The C setup that the forward and the gradient Op share.

    `clip`: None for the exact loss, or `(lo, hi)`: Keras' clip of the target's
    probability p to [lo, hi], so nll = -log(lo) where p < lo and -log(hi)
    where p > hi, with a zero gradient on those rows (as Keras' graph has).
    """

    __props__ = ('clip',)

    # The clip reaches the C code as a parameter, not as literals: one
    # compiled module serves every clip.
    params_type = ParamsType(clip_on=theano.scalar.int32, clip_lo=theano.scalar.float64,
                             clip_hi=theano.scalar.float64)

    def __init__(self, clip=None):
        self.clip = _check_clip(clip)

    def get_params(self, node):
        lo, hi = self.clip if self.clip is not None else (0.0, 1.0)
        return self.params_type.get_params(clip_on=int(self.clip is not None),
                                           clip_lo=lo, clip_hi=hi)

    def c_support_code(self):
        return _SUPPORT_CODE

    def c_headers(self):
        return ['<cmath>', '<math.h>', '<stdlib.h>', '<string.h>']

    def c_compile_args(self):
        return list(VECTORISE_FLAGS)

    def c_code_cache_version(self):
        # A digest of the C source: any edit of it gets a new module.
        return cache_version(self)

    @staticmethod
    def _c_settings(node, sub):
        params = sub['params']
        return dict(c_type_settings(node.outputs[0].dtype), clip='%s->clip_on' % params,
                    clip_lo='%s->clip_lo' % params, clip_hi='%s->clip_hi' % params)

    @staticmethod
    def _float_inputs(names, values):
        return check_float_inputs(names, values, 'sparse_softmax_crossentropy')

    @staticmethod
    def _targets_input(targets):
        targets = T.as_tensor_variable(targets)
        if targets.ndim != 1 or targets.dtype not in T.integer_dtypes:
            raise TypeError('targets must be a 1-d integer tensor, got %s' % (targets.type,))
        return T.cast(targets, 'int32')


class SoftmaxCrossEntropy(_SoftmaxXentOp):
    """Inputs: logits (positions, classes), bias (classes,), targets
    (positions,) int32. Outputs: nll (positions,) and the softmax
    probabilities (positions, classes), which the gradient reuses."""

    def make_node(self, logits, bias, targets):
        logits, bias = self._float_inputs([('logits', 2), ('bias', 1)], [logits, bias])
        targets = self._targets_input(targets)
        return Apply(self, [logits, bias, targets], [T.vector(dtype=logits.dtype),
                                                     T.matrix(dtype=logits.dtype)])

    def perform(self, node, inputs, output_storage, params=None):
        logits, bias, targets = inputs
        _check_targets(targets, logits.shape[1])
        for storage, value in zip(output_storage,
                                  numpy_forward(logits, bias, targets, self.clip)):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        return [(input_shapes[0][0],), input_shapes[0]]

    def connection_pattern(self, node):
        return [[True, True], [True, True], [False, False]]

    def L_op(self, inputs, outputs, output_grads):
        logits, bias, targets = inputs
        nll, probabilities = outputs
        dnll, dprobabilities = output_grads
        if isinstance(dnll.type, DisconnectedType):
            dnll = T.zeros_like(nll)
        dlogits, dbias = SoftmaxCrossEntropyGrad(self.clip)(dnll, probabilities, targets)
        if not isinstance(dprobabilities.type, DisconnectedType):
            # The probabilities used elsewhere too: softmax's own gradient.
            through_softmax = softmax_grad(dprobabilities, probabilities)
            dlogits = dlogits + through_softmax
            dbias = dbias + through_softmax.sum(axis=0)
        return [dlogits, dbias, DisconnectedType()()]

    def c_code(self, node, name, inputs, outputs, sub):
        return """
        if (xent_forward<%(ctype)s>(%(typenum)s, %(logits)s, %(bias)s, %(targets)s,
                                    &%(nll)s, &%(probs)s,
                                    %(clip)s, %(clip_lo)s, %(clip_hi)s) != 0) {
            %(fail)s
        }
        """ % dict(self._c_settings(node, sub), logits=inputs[0], bias=inputs[1],
                   targets=inputs[2], nll=outputs[0], probs=outputs[1], fail=sub['fail'])


class SoftmaxCrossEntropyGrad(_SoftmaxXentOp):
    """Inputs: d nll (positions,), the forward's probabilities and targets.
    Outputs: d logits (positions, classes) and d bias (classes,)."""

    def make_node(self, dnll, probabilities, targets):
        dnll, probabilities = self._float_inputs([('dnll', 1), ('probabilities', 2)],
                                                 [dnll, probabilities])
        targets = self._targets_input(targets)
        return Apply(self, [dnll, probabilities, targets],
                     [T.matrix(dtype=dnll.dtype), T.vector(dtype=dnll.dtype)])

    def perform(self, node, inputs, output_storage, params=None):
        dnll, probabilities, targets = inputs
        _check_targets(targets, probabilities.shape[1])
        for storage, value in zip(output_storage,
                                  numpy_backward(dnll, probabilities, targets, self.clip)):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        return [input_shapes[1], (input_shapes[1][1],)]

    def c_code(self, node, name, inputs, outputs, sub):
        return """
        if (xent_backward<%(ctype)s>(%(typenum)s, %(dnll)s, %(probs)s, %(targets)s,
                                     &%(dlogits)s, &%(dbias)s,
                                     %(clip)s, %(clip_lo)s, %(clip_hi)s) != 0) {
            %(fail)s
        }
        """ % dict(self._c_settings(node, sub), dnll=inputs[0], probs=inputs[1],
                   targets=inputs[2], dlogits=outputs[0], dbias=outputs[1], fail=sub['fail'])


class SoftmaxCategoricalCrossEntropy(SoftmaxCrossEntropy):
    """`SoftmaxCrossEntropy` with dense targets (positions, classes) of the
    logits' dtype (one-hot rows, or any distribution): nll_n = -sum_k t_nk
    log(p_nk), each p_nk clipped to [lo, hi] when `clip` is given."""

    def make_node(self, logits, bias, targets):
        logits, bias, targets = self._float_inputs(
            [('logits', 2), ('bias', 1), ('targets', 2)], [logits, bias, targets])
        return Apply(self, [logits, bias, targets], [T.vector(dtype=logits.dtype),
                                                     T.matrix(dtype=logits.dtype)])

    def perform(self, node, inputs, output_storage, params=None):
        for storage, value in zip(output_storage, numpy_forward_dense(*inputs, clip=self.clip)):
            storage[0] = value

    def connection_pattern(self, node):
        return [[True, True], [True, True], [True, False]]

    def L_op(self, inputs, outputs, output_grads):
        logits, bias, targets = inputs
        nll, probabilities = outputs
        dnll, dprobabilities = output_grads
        if isinstance(dnll.type, DisconnectedType):
            dnll = T.zeros_like(nll)
        dlogits, dbias = SoftmaxCategoricalCrossEntropyGrad(self.clip)(
            dnll, probabilities, targets)
        if not isinstance(dprobabilities.type, DisconnectedType):
            through_softmax = softmax_grad(dprobabilities, probabilities)
            dlogits = dlogits + through_softmax
            dbias = dbias + through_softmax.sum(axis=0)
        # d nll_n / d t_nk = -log(clip(p_nk)); Keras' targets are constants,
        # so this is only built when someone asks for it.
        if self.clip is not None:
            probabilities = T.clip(probabilities, *[T.constant(bound, dtype=probabilities.dtype)
                                                    for bound in self.clip])
        log_p = T.log(probabilities)
        return [dlogits, dbias, -dnll.dimshuffle(0, 'x') * log_p]

    def c_code(self, node, name, inputs, outputs, sub):
        return """
        if (xent_forward_dense<%(ctype)s>(%(typenum)s, %(logits)s, %(bias)s, %(targets)s,
                                          &%(nll)s, &%(probs)s,
                                          %(clip)s, %(clip_lo)s, %(clip_hi)s) != 0) {
            %(fail)s
        }
        """ % dict(self._c_settings(node, sub), logits=inputs[0], bias=inputs[1],
                   targets=inputs[2], nll=outputs[0], probs=outputs[1], fail=sub['fail'])


class SoftmaxCategoricalCrossEntropyGrad(SoftmaxCrossEntropyGrad):
    """Inputs: d nll (positions,), the forward's probabilities and dense
    targets. Outputs: d logits (positions, classes) and d bias (classes,)."""

    def make_node(self, dnll, probabilities, targets):
        dnll, probabilities, targets = self._float_inputs(
            [('dnll', 1), ('probabilities', 2), ('targets', 2)], [dnll, probabilities, targets])
        return Apply(self, [dnll, probabilities, targets],
                     [T.matrix(dtype=dnll.dtype), T.vector(dtype=dnll.dtype)])

    def perform(self, node, inputs, output_storage, params=None):
        for storage, value in zip(output_storage, numpy_backward_dense(*inputs, clip=self.clip)):
            storage[0] = value

    def c_code(self, node, name, inputs, outputs, sub):
        return """
        if (xent_backward_dense<%(ctype)s>(%(typenum)s, %(dnll)s, %(probs)s, %(targets)s,
                                           &%(dlogits)s, &%(dbias)s,
                                           %(clip)s, %(clip_lo)s, %(clip_hi)s) != 0) {
            %(fail)s
        }
        """ % dict(self._c_settings(node, sub), dnll=inputs[0], probs=inputs[1],
                   targets=inputs[2], dlogits=outputs[0], dbias=outputs[1], fail=sub['fail'])


def softmax_crossentropy(logits, bias, targets, clip=None):
    """nll (positions,) of integer `targets` under softmax(logits + bias);
    `clip=(lo, hi)` clips the target's probability as Keras does."""
    return SoftmaxCrossEntropy(clip)(logits, bias, targets)[0]


def softmax_categorical_crossentropy(logits, bias, targets, clip=None):
    """nll (positions,) of dense `targets` (positions, classes) under
    softmax(logits + bias); `clip=(lo, hi)` clips every probability as
    Keras' `categorical_crossentropy` does."""
    return SoftmaxCategoricalCrossEntropy(clip)(logits, bias, targets)[0]
