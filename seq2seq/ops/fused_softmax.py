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
from theano.tensor.nnet import nnet
from theano.tensor.nnet.nnet import softmax_grad

from .c_helpers import (DTYPES, HELD_ARRAYS_C, SHARED_C, VECTORISE_FLAGS,  # noqa: F401
                        c_type_settings, cache_version, check_float_inputs)

SUPPORT_CODE = r"""
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

""" + SHARED_C + HELD_ARRAYS_C + r"""
/* Every target in [0, classes), or a ValueError naming the first that is not. */
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

/* dz = scale * p: the row's gradient before the target's -scale. */
template <typename T>
static void xent_grad_row(T* __restrict dz, const T* __restrict p, T scale, npy_intp classes)
{
    for (npy_intp j = 0; j < classes; ++j)
        dz[j] = scale * p[j];
}

/* What the kind of targets changes in the loss: the shapes they need, the
   check of their values, and one row's nll and gradient. Integer targets
   y (positions,): */
template <typename T>
struct xent_sparse_targets {
    typedef npy_int32 value_type;

    /* Where row n's targets start. */
    static npy_intp row_stride(npy_intp classes) { return 1; }

    static int check_forward_shapes(PyArrayObject* bias, PyArrayObject* targets,
                                    npy_intp positions, npy_intp classes)
    {
        if (PyArray_DIMS(bias)[0] != classes || PyArray_DIMS(targets)[0] != positions) {
            PyErr_Format(PyExc_ValueError, "sparse_softmax_crossentropy: logits (%ld, %ld) "
                         "need a bias of %ld classes and %ld targets, got %ld and %ld",
                         (long)positions, (long)classes, (long)classes, (long)positions,
                         (long)PyArray_DIMS(bias)[0], (long)PyArray_DIMS(targets)[0]);
            return -1;
        }
        return 0;
    }

    static int check_backward_shapes(PyArrayObject* dnll, PyArrayObject* targets,
                                     npy_intp positions, npy_intp classes)
    {
        if (PyArray_DIMS(dnll)[0] != positions || PyArray_DIMS(targets)[0] != positions) {
            PyErr_SetString(PyExc_ValueError, "sparse_softmax_crossentropy gradient: d nll, "
                            "probabilities and targets disagree on the number of positions");
            return -1;
        }
        return 0;
    }

    static int check_values(const npy_int32* y, npy_intp positions, npy_intp classes)
    {
        return xent_check_targets(y, positions, classes);
    }

    /* nll = log(sum) - (z_y + b_y - m), or Keras' clip of p_y: decided on
       the stored probability that the gradient tests too. */
    static T row_nll(const T* z, const T* b, T m, double log_sum, const T* p,
                     const npy_int32* y, npy_intp classes, int clip, double clip_lo,
                     double clip_hi)
    {
        const npy_int32 k = *y;
        if (clip && xent_clipped<T>(p[k], clip_lo, clip_hi))
            return (T)(-std::log(p[k] < clip_lo ? clip_lo : clip_hi));
        return (T)(log_sum - ((double)z[k] + b[k] - m));
    }

    /* d z = d nll * (p - one_hot(y)), or 0 on a clipped row (then false:
       nothing to add to d b). */
    static bool row_grad(T* dz, const T* p, T g, const npy_int32* y, npy_intp classes,
                         int clip, double clip_lo, double clip_hi)
    {
        const npy_int32 k = *y;
        if (clip && xent_clipped<T>(p[k], clip_lo, clip_hi)) {
            memset(dz, 0, classes * sizeof(T));
            return false;
        }
        xent_grad_row<T>(dz, p, g, classes);
        dz[k] -= g;
        return true;
    }
};

/* Dense targets t (positions, classes), e.g. one-hot rows. */
template <typename T>
struct xent_dense_targets {
    typedef T value_type;

    static npy_intp row_stride(npy_intp classes) { return classes; }

    static int check_forward_shapes(PyArrayObject* bias, PyArrayObject* targets,
                                    npy_intp positions, npy_intp classes)
    {
        if (PyArray_DIMS(bias)[0] != classes || PyArray_DIMS(targets)[0] != positions
                || PyArray_DIMS(targets)[1] != classes) {
            PyErr_Format(PyExc_ValueError, "categorical softmax crossentropy: logits (%ld, %ld) "
                         "need a bias of %ld classes and targets of the same shape, got %ld and "
                         "(%ld, %ld)", (long)positions, (long)classes, (long)classes,
                         (long)PyArray_DIMS(bias)[0], (long)PyArray_DIMS(targets)[0],
                         (long)PyArray_DIMS(targets)[1]);
            return -1;
        }
        return 0;
    }

    static int check_backward_shapes(PyArrayObject* dnll, PyArrayObject* targets,
                                     npy_intp positions, npy_intp classes)
    {
        if (PyArray_DIMS(dnll)[0] != positions || PyArray_DIMS(targets)[0] != positions
                || PyArray_DIMS(targets)[1] != classes) {
            PyErr_SetString(PyExc_ValueError, "categorical softmax crossentropy gradient: d nll, "
                            "probabilities and targets disagree on their shapes");
            return -1;
        }
        return 0;
    }

    /* Any values: a distribution, or not. */
    static int check_values(const T* t, npy_intp positions, npy_intp classes) { return 0; }

    /* nll = -sum_k t_k log(clip(p_k)), a term only where t_k != 0 (Keras'
       product is 0 there: its clipped log is finite). log p from the logits. */
    static T row_nll(const T* z, const T* b, T m, double log_sum, const T* p, const T* t,
                     npy_intp classes, int clip, double clip_lo, double clip_hi)
    {
        double total = 0;
        for (npy_intp k = 0; k < classes; ++k) {
            if (t[k] == 0)
                continue;
            double log_p = ((double)z[k] + b[k] - m) - log_sum;
            if (clip && xent_clipped<T>(p[k], clip_lo, clip_hi))
                log_p = std::log(p[k] < clip_lo ? clip_lo : clip_hi);
            total -= t[k] * log_p;
        }
        return (T)total;
    }

    /* d z_k = d nll * (p_k * sum_j a_j - a_k), a_k = t_k where p_k is not
       clipped, else 0 (the clip's zero gradient). */
    static bool row_grad(T* dz, const T* p, T g, const T* t, npy_intp classes, int clip,
                         double clip_lo, double clip_hi)
    {
        double kept = 0;
        for (npy_intp k = 0; k < classes; ++k) {
            const bool keep = t[k] != 0 && !(clip && xent_clipped<T>(p[k], clip_lo, clip_hi));
            dz[k] = keep ? t[k] : (T)0;
            kept += dz[k];
        }
        const T scale = (T)(g * kept);
        for (npy_intp k = 0; k < classes; ++k)
            dz[k] = scale * p[k] - g * dz[k];
        return true;
    }
};

/* The forward: nll (positions,) and the probabilities (positions, classes),
   row by row; Targets: xent_sparse_targets<T> or xent_dense_targets<T>. */
template <typename T, typename Targets>
static int xent_forward(int typenum, PyArrayObject* logits_in, PyArrayObject* bias_in,
                        PyArrayObject* targets_in, PyArrayObject** nll_out,
                        PyArrayObject** probs_out, int clip, double clip_lo, double clip_hi)
{
    typedef typename Targets::value_type Target;
    const npy_intp positions = PyArray_DIMS(logits_in)[0], classes = PyArray_DIMS(logits_in)[1];
    if (Targets::check_forward_shapes(bias_in, targets_in, positions, classes) != 0)
        return -1;
    FusedHeldArrays held;
    PyArrayObject* logits = held.add(logits_in);
    PyArrayObject* bias = held.add(bias_in);
    PyArrayObject* targets = held.add(targets_in);
    const npy_intp nll_dims[1] = {positions}, probs_dims[2] = {positions, classes};
    if (!(logits && bias && targets
            && Targets::check_values((const Target*)PyArray_DATA(targets), positions, classes) == 0
            && fused_prepare_output(nll_out, 1, nll_dims, typenum) == 0
            && fused_prepare_output(probs_out, 2, probs_dims, typenum) == 0))
        return -1;
    const T* Z = (const T*)PyArray_DATA(logits);
    const T* b = (const T*)PyArray_DATA(bias);
    const Target* Y = (const Target*)PyArray_DATA(targets);
    const npy_intp stride = Targets::row_stride(classes);
    T* nll = (T*)PyArray_DATA(*nll_out);
    T* P = (T*)PyArray_DATA(*probs_out);
    for (npy_intp n = 0; n < positions; ++n) {
        const T* z = Z + n * classes;
        T* p = P + n * classes;
        T m;
        const double sum = xent_row_exp<T>(z, b, p, classes, &m);
        const double log_sum = std::log(sum);
        xent_scale<T>(p, (T)(1.0 / sum), classes);
        nll[n] = Targets::row_nll(z, b, m, log_sum, p, Y + n * stride, classes, clip,
                                  clip_lo, clip_hi);
    }
    return 0;
}

/* The gradient: d logits row by row (Targets::row_grad), d b = the sum of
   the rows, in double. */
template <typename T, typename Targets>
static int xent_backward(int typenum, PyArrayObject* dnll_in, PyArrayObject* probs_in,
                         PyArrayObject* targets_in, PyArrayObject** dlogits_out,
                         PyArrayObject** dbias_out, int clip, double clip_lo, double clip_hi)
{
    typedef typename Targets::value_type Target;
    const npy_intp positions = PyArray_DIMS(probs_in)[0], classes = PyArray_DIMS(probs_in)[1];
    if (Targets::check_backward_shapes(dnll_in, targets_in, positions, classes) != 0)
        return -1;
    FusedHeldArrays held;
    PyArrayObject* dnll = held.add(dnll_in);
    PyArrayObject* probs = held.add(probs_in);
    PyArrayObject* targets = held.add(targets_in);
    const npy_intp dz_dims[2] = {positions, classes}, db_dims[1] = {classes};
    PyArrayObject* db_array = held.scratch(1, db_dims, NPY_FLOAT64);
    if (!(db_array && dnll && probs && targets
            && Targets::check_values((const Target*)PyArray_DATA(targets), positions, classes) == 0
            && fused_prepare_output(dlogits_out, 2, dz_dims, typenum) == 0
            && fused_prepare_output(dbias_out, 1, db_dims, typenum) == 0))
        return -1;
    double* db = (double*)PyArray_DATA(db_array);
    const T* g = (const T*)PyArray_DATA(dnll);
    const T* P = (const T*)PyArray_DATA(probs);
    const Target* Y = (const Target*)PyArray_DATA(targets);
    const npy_intp stride = Targets::row_stride(classes);
    T* dZ = (T*)PyArray_DATA(*dlogits_out);
    for (npy_intp n = 0; n < positions; ++n) {
        T* dz = dZ + n * classes;
        if (Targets::row_grad(dz, P + n * classes, g[n], Y + n * stride, classes, clip,
                              clip_lo, clip_hi))
            fused_accumulate<T>(db, dz, classes);
    }
    T* dbias = (T*)PyArray_DATA(*dbias_out);
    for (npy_intp j = 0; j < classes; ++j)
        dbias[j] = (T)db[j];
    return 0;
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
    """What the four Ops share: the clip, the inputs' checks and the C call.

    `clip`: None for the exact loss, or `(lo, hi)`: Keras' clip of the target's
    probability p to [lo, hi], so nll = -log(lo) where p < lo and -log(hi)
    where p > hi, with a zero gradient on those rows (as Keras' graph has).

    A subclass sets `_dense_targets` (targets (positions,) int32, or
    (positions, classes) in the logits' dtype), `_c_function` (`xent_forward`
    or `xent_backward`) and `_reference` (the numpy version, for `perform`).
    """

    __props__ = ('clip',)
    _dense_targets = False

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

    def _apply(self, float_inputs, values, output_ndims):
        """The Apply node on `values`: the two float inputs `float_inputs`
        names [(name, ndim)], then the targets; outputs of `output_ndims`."""
        if self._dense_targets:
            inputs = self._float_inputs(float_inputs + [('targets', 2)], values)
        else:
            inputs = self._float_inputs(float_inputs, values[:2]) + [
                self._targets_input(values[2])]
        dtype = inputs[0].dtype
        return Apply(self, inputs, [T.TensorType(dtype, (False,) * ndim)()
                                    for ndim in output_ndims])

    @staticmethod
    def _float_inputs(names, values):
        return check_float_inputs(names, values, 'sparse_softmax_crossentropy')

    @staticmethod
    def _targets_input(targets):
        targets = T.as_tensor_variable(targets)
        if targets.ndim != 1 or targets.dtype not in T.integer_dtypes:
            raise TypeError('targets must be a 1-d integer tensor, got %s' % (targets.type,))
        return T.cast(targets, 'int32')

    def perform(self, node, inputs, output_storage, params=None):
        if not self._dense_targets:
            # The classes: the columns of the one 2-d float input (the
            # logits, or the gradient's probabilities).
            classes = [x for x in inputs[:2] if x.ndim == 2][0].shape[1]
            _check_targets(inputs[2], classes)
        for storage, value in zip(output_storage, self._reference(*inputs, clip=self.clip)):
            storage[0] = value

    # -- C -------------------------------------------------------------------
    def c_support_code(self):
        return SUPPORT_CODE

    def c_headers(self):
        return ['<cmath>', '<math.h>', '<stdlib.h>', '<string.h>']

    def c_compile_args(self):
        return list(VECTORISE_FLAGS)

    def c_code_cache_version(self):
        # A digest of the C source: any edit of it gets a new module.
        return cache_version(self)

    def c_code(self, node, name, inputs, outputs, sub):
        # forward: (logits, bias, targets) -> (nll, probabilities);
        # gradient: (d nll, probabilities, targets) -> (d logits, d bias).
        params = sub['params']
        return """
        if (%(function)s<%(ctype)s, %(targets)s<%(ctype)s> >(
                %(typenum)s, %(in0)s, %(in1)s, %(in2)s, &%(out0)s, &%(out1)s,
                %(params)s->clip_on, %(params)s->clip_lo, %(params)s->clip_hi) != 0) {
            %(fail)s
        }
        """ % dict(c_type_settings(node.outputs[0].dtype), function=self._c_function,
                   targets='xent_dense_targets' if self._dense_targets else 'xent_sparse_targets',
                   in0=inputs[0], in1=inputs[1], in2=inputs[2], out0=outputs[0],
                   out1=outputs[1], params=params, fail=sub['fail'])


class SoftmaxCrossEntropyGrad(_SoftmaxXentOp):
    """Inputs: d nll (positions,), the forward's probabilities and targets.
    Outputs: d logits (positions, classes) and d bias (classes,)."""

    _c_function = 'xent_backward'
    _reference = staticmethod(numpy_backward)

    def make_node(self, dnll, probabilities, targets):
        return self._apply([('dnll', 1), ('probabilities', 2)], [dnll, probabilities, targets],
                           (2, 1))

    def infer_shape(self, node, input_shapes):
        return [input_shapes[1], (input_shapes[1][1],)]


class SoftmaxCategoricalCrossEntropyGrad(SoftmaxCrossEntropyGrad):
    """Inputs: d nll (positions,), the forward's probabilities and dense
    targets. Outputs: d logits (positions, classes) and d bias (classes,)."""

    _dense_targets = True
    _reference = staticmethod(numpy_backward_dense)


class SoftmaxCrossEntropy(_SoftmaxXentOp):
    """Inputs: logits (positions, classes), bias (classes,), targets
    (positions,) int32. Outputs: nll (positions,) and the softmax
    probabilities (positions, classes), which the gradient reuses."""

    _c_function = 'xent_forward'
    _reference = staticmethod(numpy_forward)
    _grad_op = SoftmaxCrossEntropyGrad

    def make_node(self, logits, bias, targets):
        return self._apply([('logits', 2), ('bias', 1)], [logits, bias, targets], (1, 2))

    def infer_shape(self, node, input_shapes):
        return [(input_shapes[0][0],), input_shapes[0]]

    def connection_pattern(self, node):
        return [[True, True], [True, True], [False, False]]

    def _logits_and_bias_grads(self, targets, outputs, output_grads):
        """(d nll, d logits, d bias): d nll zeros when nothing uses the loss;
        d logits and d bias through the loss (the gradient Op), and through
        the probabilities when they are used elsewhere too."""
        nll, probabilities = outputs
        dnll, dprobabilities = output_grads
        if isinstance(dnll.type, DisconnectedType):
            dnll = T.zeros_like(nll)
        dlogits, dbias = self._grad_op(self.clip)(dnll, probabilities, targets)
        if not isinstance(dprobabilities.type, DisconnectedType):
            # The probabilities used elsewhere too: softmax's own gradient.
            through_softmax = softmax_grad(dprobabilities, probabilities)
            dlogits = dlogits + through_softmax
            dbias = dbias + through_softmax.sum(axis=0)
        return dnll, dlogits, dbias

    def L_op(self, inputs, outputs, output_grads):
        _, dlogits, dbias = self._logits_and_bias_grads(inputs[2], outputs, output_grads)
        return [dlogits, dbias, DisconnectedType()()]


class SoftmaxCategoricalCrossEntropy(SoftmaxCrossEntropy):
    """`SoftmaxCrossEntropy` with dense targets (positions, classes) of the
    logits' dtype (one-hot rows, or any distribution): nll_n = -sum_k t_nk
    log(p_nk), each p_nk clipped to [lo, hi] when `clip` is given."""

    _dense_targets = True
    _reference = staticmethod(numpy_forward_dense)
    _grad_op = SoftmaxCategoricalCrossEntropyGrad

    def connection_pattern(self, node):
        return [[True, True], [True, True], [True, False]]

    def L_op(self, inputs, outputs, output_grads):
        dnll, dlogits, dbias = self._logits_and_bias_grads(inputs[2], outputs, output_grads)
        # d nll_n / d t_nk = -log(clip(p_nk)); Keras' targets are constants,
        # so this is only built when someone asks for it.
        probabilities = outputs[1]
        if self.clip is not None:
            probabilities = T.clip(probabilities, *[T.constant(bound, dtype=probabilities.dtype)
                                                    for bound in self.clip])
        log_p = T.log(probabilities)
        return [dlogits, dbias, -dnll.dimshuffle(0, 'x') * log_p]


def softmax_crossentropy(logits, bias, targets, clip=None):
    """nll (positions,) of integer `targets` under softmax(logits + bias);
    `clip=(lo, hi)` clips the target's probability as Keras does."""
    return SoftmaxCrossEntropy(clip)(logits, bias, targets)[0]


def softmax_categorical_crossentropy(logits, bias, targets, clip=None):
    """nll (positions,) of dense `targets` (positions, classes) under
    softmax(logits + bias); `clip=(lo, hi)` clips every probability as
    Keras' `categorical_crossentropy` does."""
    return SoftmaxCategoricalCrossEntropy(clip)(logits, bias, targets)[0]


# -- finding the logits under a softmax, for the losses and the Keras loss patch ----------
def softmax_input(probabilities):
    """(logits, bias) when `probabilities` is `softmax(logits + bias)` over the
    rows of a matrix, possibly reshaped afterwards (TimeDistributed); else None.
    A plain softmax gets a zero bias."""
    variable = probabilities
    while variable.owner is not None and isinstance(variable.owner.op, T.Reshape):
        variable = variable.owner.inputs[0]
    node = variable.owner
    if node is None or variable.ndim != 2:
        return None
    if isinstance(node.op, nnet.SoftmaxWithBias):
        return node.inputs[0], node.inputs[1]
    if isinstance(node.op, nnet.Softmax):
        return split_row_bias(node.inputs[0])
    return None


def split_row_bias(logits):
    """(x, b) when `logits` is `x + b` with b a vector added to every row
    (Dense's bias_add), so the fused Op adds it; else (logits, zeros)."""
    node = logits.owner
    if (node is not None and isinstance(node.op, T.Elemwise)
            and isinstance(node.op.scalar_op, theano.scalar.Add) and len(node.inputs) == 2):
        for row_input, other in (node.inputs, node.inputs[::-1]):
            source = row_input.owner
            if (source is not None and isinstance(source.op, T.DimShuffle)
                    and source.op.new_order == ('x', 0) and other.ndim == 2
                    and not other.broadcastable[0] and not other.broadcastable[1]):
                return other, source.inputs[0]
    return logits, T.zeros_like(logits[0])
