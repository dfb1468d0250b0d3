"""One step of a trained attention decoder for search, in one Theano Op.

Step-by-step search (`seq2seq.inference`) runs the decoder's step once per
output token for every live hypothesis. Compiled from the layer's own
`decode_step`, that step is a dozen small GEMMs and elementwise Ops, and the
energies' tanh over (rows, input_length, attention dim) calls the C library
per element. `AttentionDecodeStep` computes the same step of an
`AttentionDecoder` (one LSTM cell, additive attention, a linear or softmax
readout) in one C loop, rows r = 0 .. B-1 (the hypotheses), s = rows[r] the
source a row belongs to:

    [z_r | q_r] = h_{t-1,r} [U | W_a]                     one GEMM (B, 4u + a)
    z_r += x_r W + b          (a token fed back: row tokens[r] of W, plus b)
    e_rj = v . tanh(P_sj + q_r)   for the unmasked memory steps j of s
    alpha_r = softmax_j(e_r) over those steps (0 elsewhere)
    z_r += sum_j alpha_rj (H_sj V)                        ctx_r V
    (h_r, c_r) = the LSTM step on z_r
    logits_r = sum_j alpha_rj (H_sj C_y) + b_y + h_r W_y   one GEMM (B, n)
    log_probs_r = log_softmax(logits_r);   x_r = readout_activation(logits_r)

The per-source products P = H U_a, H V and H C_y are computed once per batch
(`seq2seq.inference.FusedAttentionStepper`), so the context's two GEMMs per
step become weighted sums over the few memory steps of a word, and every
hypothesis of a source reads its source's rows in place (no copy per beam).
In float32 the energies' tanh is the LSTM Op's vectorised rational tanh
(within 3e-7 of tanhf) and the softmaxes' exp the loss Op's vectorised
polynomial (within 2 ulp of expf); float64 uses the C library's (the
reference).
"""
from __future__ import absolute_import

import numpy as np
import theano.tensor as T
from theano.gof import Apply

from . import fused_lstm, fused_softmax
from .c_helpers import BlasOp, c_type_settings, check_float_inputs
from .numpy_reference import attention_weights, log_softmax, lstm_step

INNER_ACTIVATIONS = fused_lstm.INNER_ACTIVATIONS
READOUT_ACTIVATIONS = ('linear', 'softmax')


def unsupported_reason(decoder, head=(), dtype=None):
    """Why a decoder's search step cannot run as `AttentionDecodeStep`, or None.

    # Arguments
        decoder: its `seq2seq.ops.specs.DecoderSpec`.
        head: the names of the layers between the decoder and the model's output.
        dtype: the dtype of the graph, when known.
    """
    if not decoder.attends:
        return 'the fused search step runs an attention decoder'
    if head:
        return ('the fused search step needs the decoder to be the model\'s output '
                '(layers after it: %s)' % ', '.join(head))
    if len(decoder.cells) != 1:
        return 'the fused search step runs one cell, got depth %d' % len(decoder.cells)
    if decoder.upper_cells:
        return 'the fused search step runs no cells above the loop'
    if decoder.peek:
        return 'the fused search step does not support peek=True'
    if decoder.readout_activation not in READOUT_ACTIVATIONS:
        return ('the fused search step supports readout_activation %s only, got %s'
                % (' or '.join(READOUT_ACTIVATIONS), decoder.readout_activation))
    reason = fused_lstm.unsupported_reason(decoder.cells[0], -1, dtype)
    return reason and reason.replace('the fused LSTM', 'the fused search step')


# -- numpy: the maths, for perform and as the tests' reference ----------------

def numpy_step(x, tokens, rows, h, c, kernel, bias, recurrent_query_kernel, projection,
               memory_gates, memory_readout, mask, attention_vector, readout_kernel,
               readout_bias, inner_activation='hard_sigmoid', readout='softmax'):
    """One step in numpy; the arguments as `AttentionDecodeStep`'s inputs.

    Returns (log_probs, x_t, h_t, c_t).
    """
    units = h.shape[1]
    dtype = h.dtype
    zq = h.dot(recurrent_query_kernel)                                 # (B, 4u + a)
    z, query = zq[:, :4 * units], zq[:, 4 * units:]
    z = z + (kernel[tokens] if len(tokens) else x.dot(kernel)) + bias
    alpha, _ = attention_weights(projection[rows], query, attention_vector, mask[rows])
    alpha = alpha.astype(dtype)                                        # (B, L)
    z = z + np.einsum('bl,blg->bg', alpha, memory_gates[rows])
    h_t, c_t, _ = lstm_step(z, c, inner_activation)
    logits = (np.einsum('bl,bln->bn', alpha, memory_readout[rows]) + readout_bias
              + h_t.dot(readout_kernel))
    log_probs = log_softmax(logits).astype(dtype)
    x_t = np.exp(log_probs) if readout == 'softmax' else logits
    return log_probs, x_t.astype(dtype), h_t.astype(dtype), c_t.astype(dtype)


# -- C -------------------------------------------------------------------------

_DECODE_C = r"""
#ifndef SEQ2SEQ_FUSED_DECODE
#define SEQ2SEQ_FUSED_DECODE

enum { DECODE_LINEAR = 0, DECODE_SOFTMAX = 1 };

/* A scratch buffer kept between calls (the step runs once per token: no
   allocation, and no fresh pages to fault in, per call). */
template <typename T>
static T* decode_scratch(npy_intp n)
{
    static T* buffer = NULL;
    static npy_intp size = 0;
    if (n > size) {
        T* grown = (T*)realloc(buffer, sizeof(T) * (n > 0 ? n : 1));
        if (!grown)
            return NULL;
        buffer = grown;
        size = n;
    }
    return buffer;
}

/* v . tanh(p + q) over (a), sixteen partial sums so that GCC vectorises it. */
template <typename T>
static inline T decode_energy(const T* __restrict p, const T* __restrict q,
                              const T* __restrict v, T* __restrict tmp, npy_intp a)
{
    for (npy_intp k = 0; k < a; ++k)
        tmp[k] = fused_tanh(p[k] + q[k]);
    T s16[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};
    npy_intp k = 0;
    for (; k + 16 <= a; k += 16)
        for (int r = 0; r < 16; ++r)
            s16[r] += tmp[k + r] * v[k + r];
    T s = 0;
    for (; k < a; ++k)
        s += tmp[k] * v[k];
    for (int r = 0; r < 16; ++r)
        s += s16[r];
    return s;
}

/* y += alpha x */
template <typename T>
static inline void decode_axpy(T alpha, const T* __restrict x, T* __restrict y, npy_intp n)
{
    for (npy_intp k = 0; k < n; ++k)
        y[k] += alpha * x[k];
}

static int decode_check(PyArrayObject* a, const char* name, int nd, const npy_intp* dims)
{
    int ok = PyArray_NDIM(a) == nd;
    for (int d = 0; ok && d < nd; ++d)
        ok = PyArray_DIMS(a)[d] == dims[d];
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "fused search step: %s has the wrong shape", name);
        return -1;
    }
    return 0;
}

/* Holds C-contiguous views (or copies) of the inputs and drops them. */
struct DecodeArrays {
    PyArrayObject* arrays[16];
    int n;
    DecodeArrays() : n(0) {}
    ~DecodeArrays() { for (int k = 0; k < n; ++k) Py_XDECREF(arrays[k]); }
    PyArrayObject* add(PyArrayObject* a)
    {
        PyArrayObject* c = a ? PyArray_GETCONTIGUOUS(a) : NULL;
        arrays[n++] = c;
        return c;
    }
};

/* in: x, tokens, rows, h, c, W, b, [U | W_a], P, HV, HC, mask, v, W_y, b_y.
   out: log_probs, x_t, h_t, c_t. */
template <typename T>
static int decode_step(int kind, int readout, int typenum, PyArrayObject** in,
                       PyArrayObject** out)
{
    DecodeArrays held;
    for (int k = 0; k < 15; ++k)
        if (!held.add(in[k]))
            return -1;
    PyArrayObject** x = held.arrays;
    PyArrayObject *xs = x[0], *tokens = x[1], *rows = x[2], *h = x[3], *c = x[4];
    PyArrayObject *kernel = x[5], *bias = x[6], *uw = x[7], *proj = x[8], *hv = x[9];
    PyArrayObject *hc = x[10], *mask = x[11], *vector = x[12], *wy = x[13], *by = x[14];
    const npy_intp B = PyArray_DIMS(h)[0], u = PyArray_DIMS(h)[1];
    const npy_intp G = 4 * u, n_in = PyArray_DIMS(kernel)[0];
    const npy_intp S = PyArray_DIMS(proj)[0], L = PyArray_DIMS(proj)[1];
    const npy_intp a = PyArray_DIMS(proj)[2], n = PyArray_DIMS(wy)[1];
    const npy_intp N = G + a;
    const int use_tokens = PyArray_DIMS(tokens)[0] > 0;
    const npy_intp x_dims[2] = {B, n_in}, tokens_dims[1] = {B}, state_dims[2] = {B, u};
    const npy_intp kernel_dims[2] = {n_in, G}, bias_dims[1] = {G}, uw_dims[2] = {u, N};
    const npy_intp hv_dims[3] = {S, L, G}, hc_dims[3] = {S, L, n}, mask_dims[2] = {S, L};
    const npy_intp vector_dims[1] = {a}, wy_dims[2] = {u, n}, by_dims[1] = {n};
    if (decode_check(xs, "x (rows, input dim)", 2, x_dims)
            || (use_tokens && decode_check(tokens, "tokens (rows,) or (0,)", 1, tokens_dims))
            || decode_check(rows, "rows (rows,)", 1, tokens_dims)
            || decode_check(c, "c (rows, units)", 2, state_dims)
            || decode_check(kernel, "kernel (input dim, 4 units)", 2, kernel_dims)
            || decode_check(bias, "bias (4 units)", 1, bias_dims)
            || decode_check(uw, "recurrent_query_kernel (units, 4 units + attention dim)", 2,
                            uw_dims)
            || decode_check(hv, "memory_gates (sources, length, 4 units)", 3, hv_dims)
            || decode_check(hc, "memory_readout (sources, length, output dim)", 3, hc_dims)
            || decode_check(mask, "mask (sources, length)", 2, mask_dims)
            || decode_check(vector, "attention_vector (attention dim)", 1, vector_dims)
            || decode_check(wy, "readout_kernel (units, output dim)", 2, wy_dims)
            || decode_check(by, "readout_bias (output dim)", 1, by_dims))
        return -1;
    if (B * N > INT_MAX || N > INT_MAX || n_in > INT_MAX || n > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "fused search step: too large for a BLAS int");
        return -1;
    }
    const npy_int64* TOK = (const npy_int64*)PyArray_DATA(tokens);
    const npy_int64* ROW = (const npy_int64*)PyArray_DATA(rows);
    for (npy_intp r = 0; r < B; ++r) {
        if (ROW[r] < 0 || ROW[r] >= S) {
            PyErr_Format(PyExc_IndexError, "fused search step: rows[%ld] = %ld is not a "
                         "source index in [0, %ld)", (long)r, (long)ROW[r], (long)S);
            return -1;
        }
        if (use_tokens && (TOK[r] < 0 || TOK[r] >= n_in)) {
            PyErr_Format(PyExc_IndexError, "fused search step: tokens[%ld] = %ld is not in "
                         "[0, %ld)", (long)r, (long)TOK[r], (long)n_in);
            return -1;
        }
    }
    const npy_intp out_dims[2] = {B, n};
    if (fused_prepare_output(&out[0], 2, out_dims, typenum)
            || fused_prepare_output(&out[1], 2, out_dims, typenum)
            || fused_prepare_output(&out[2], 2, state_dims, typenum)
            || fused_prepare_output(&out[3], 2, state_dims, typenum))
        return -1;
    T* ZQ = decode_scratch<T>(B * N + L + (a > n ? a : n));
    if (!ZQ) {
        PyErr_NoMemory();
        return -1;
    }
    T* alpha = ZQ + B * N;
    T* tmp = alpha + L;
    const T* X = (const T*)PyArray_DATA(xs);
    const T* H = (const T*)PyArray_DATA(h);
    const T* C = (const T*)PyArray_DATA(c);
    const T* W = (const T*)PyArray_DATA(kernel);
    const T* BI = (const T*)PyArray_DATA(bias);
    const T* UW = (const T*)PyArray_DATA(uw);
    const T* P = (const T*)PyArray_DATA(proj);
    const T* HV = (const T*)PyArray_DATA(hv);
    const T* HC = (const T*)PyArray_DATA(hc);
    const npy_int8* M = (const npy_int8*)PyArray_DATA(mask);
    const T* VA = (const T*)PyArray_DATA(vector);
    const T* WY = (const T*)PyArray_DATA(wy);
    const T* BY = (const T*)PyArray_DATA(by);
    T* LP = (T*)PyArray_DATA(out[0]);
    T* XT = (T*)PyArray_DATA(out[1]);
    T* HT = (T*)PyArray_DATA(out[2]);
    T* CT = (T*)PyArray_DATA(out[3]);
    if (B == 0)
        return 0;
    const int iB = (int)B, iu = (int)u, iN = (int)N, iG = (int)G, in_ = (int)n_in, inn = (int)n;

    /* [z | q] = h [U | W_a]; z += x W (the GEMM form of the input) */
    if (iu > 0)
        fused_gemm('N', 'N', iN, iB, iu, (T)1, UW, iN, H, iu, (T)0, ZQ, iN);
    else
        memset(ZQ, 0, sizeof(T) * B * N);
    if (!use_tokens && in_ > 0)
        fused_gemm('N', 'N', iG, iB, in_, (T)1, W, iG, X, in_, (T)1, ZQ, iN);

    for (npy_intp r = 0; r < B; ++r) {
        const npy_intp s = (npy_intp)ROW[r];
        T* z = ZQ + r * N;
        const T* q = z + G;
        const T* Ps = P + s * L * a;
        const npy_int8* Ms = M + s * L;
        /* the input's projection: a token's row of W, and the bias */
        if (use_tokens) {
            const T* w = W + (npy_intp)TOK[r] * G;
            for (npy_intp k = 0; k < G; ++k)
                z[k] += w[k] + BI[k];
        } else {
            for (npy_intp k = 0; k < G; ++k)
                z[k] += BI[k];
        }
        /* the attention weights over the source's unmasked steps */
        T top = 0;
        int any = 0;
        for (npy_intp j = 0; j < L; ++j) {
            if (!Ms[j])
                continue;
            const T e = decode_energy(Ps + j * a, q, VA, tmp, a);
            alpha[j] = e;
            if (!any || e > top) {
                top = e;
                any = 1;
            }
        }
        T total = 0;
        for (npy_intp j = 0; j < L; ++j) {
            const T w = Ms[j] ? xent_exp(alpha[j] - top) : (T)0;
            alpha[j] = w;
            total += w;
        }
        total = total > (T)1e-12 ? total : (T)1e-12;
        /* ctx V and ctx C_y as weighted sums of the source's H V and H C_y */
        T* logits = LP + r * n;
        memcpy(logits, BY, sizeof(T) * n);
        for (npy_intp j = 0; j < L; ++j) {
            const T w = alpha[j] / total;
            if (w == (T)0)
                continue;
            decode_axpy(w, HV + (s * L + j) * G, z, G);
            decode_axpy(w, HC + (s * L + j) * n, logits, n);
        }
        if (kind == FUSED_HARD_SIGMOID)
            fused_forward_row<T, FUSED_HARD_SIGMOID>(z, C + r * u, CT + r * u, HT + r * u, u);
        else
            fused_forward_row<T, FUSED_SIGMOID>(z, C + r * u, CT + r * u, HT + r * u, u);
    }
    /* logits += h_t W_y */
    if (iu > 0 && inn > 0)
        fused_gemm('N', 'N', inn, iB, iu, (T)1, WY, inn, HT, iu, (T)1, LP, inn);
    /* log_softmax(logits), and the readout: the logits or their softmax */
    for (npy_intp r = 0; r < B && n > 0; ++r) {
        T* lp = LP + r * n;
        T* xt = XT + r * n;
        if (readout == DECODE_LINEAR)
            memcpy(xt, lp, sizeof(T) * n);
        T top = lp[0];
        for (npy_intp k = 1; k < n; ++k)
            top = lp[k] > top ? lp[k] : top;
        T* p = readout == DECODE_SOFTMAX ? xt : tmp;
        for (npy_intp k = 0; k < n; ++k)
            p[k] = xent_exp(lp[k] - top);
        T total = 0;
        for (npy_intp k = 0; k < n; ++k)
            total += p[k];
        const T shift = top + (T)std::log(total);
        for (npy_intp k = 0; k < n; ++k)
            lp[k] -= shift;
        if (readout == DECODE_SOFTMAX)
            for (npy_intp k = 0; k < n; ++k)
                xt[k] /= total;
    }
    return 0;
}
#endif
"""

_INPUT_NAMES = (('x', 2), ('h', 2), ('c', 2), ('kernel', 2), ('bias', 1),
                ('recurrent_query_kernel', 2), ('projection', 3), ('memory_gates', 3),
                ('memory_readout', 3), ('attention_vector', 1), ('readout_kernel', 2),
                ('readout_bias', 1))


class AttentionDecodeStep(BlasOp):
    """One search step of an attention decoder (see the module docstring).

    Inputs: x (B, n_in) the step's input vectors (read when `tokens` is
    empty), tokens (B,) or (0,) int64 the tokens fed back (row tokens[r] of
    the input kernel), rows (B,) int64 each row's source, h, c (B, u),
    kernel W (n_in, 4u), bias b (4u,), recurrent_query_kernel [U | W_a]
    (u, 4u + a), projection P = H U_a (S, L, a), memory_gates H V
    (S, L, 4u), memory_readout H C_y (S, L, n), mask (S, L) (cast to int8),
    attention_vector v (a,), readout_kernel W_y (u, n), readout_bias b_y (n,).

    Outputs: log_probs (B, n), x_t = readout_activation(logits) (B, n),
    h_t, c_t (B, u).

    # Arguments
        inner_activation: 'hard_sigmoid' or 'sigmoid', the gates' activation.
        readout: 'softmax' or 'linear', the decoder's readout activation.
    """

    __props__ = ('inner_activation', 'readout')

    def __init__(self, inner_activation='hard_sigmoid', readout='softmax'):
        if inner_activation not in INNER_ACTIVATIONS:
            raise ValueError('inner_activation must be one of %s, got %r'
                             % (', '.join(repr(a) for a in INNER_ACTIVATIONS), inner_activation))
        if readout not in READOUT_ACTIVATIONS:
            raise ValueError('readout must be one of %s, got %r'
                             % (', '.join(repr(a) for a in READOUT_ACTIVATIONS), readout))
        self.inner_activation = inner_activation
        self.readout = readout
        super(AttentionDecodeStep, self).__init__()

    @staticmethod
    def _index_input(value, name):
        value = T.as_tensor_variable(value)
        if value.ndim != 1 or value.dtype not in T.integer_dtypes:
            raise TypeError('%s must be a 1-d integer tensor, got %d-d %s'
                            % (name, value.ndim, value.dtype))
        return T.cast(value, 'int64')

    def make_node(self, x, tokens, rows, h, c, kernel, bias, recurrent_query_kernel,
                  projection, memory_gates, memory_readout, mask, attention_vector,
                  readout_kernel, readout_bias):
        floats = check_float_inputs(
            _INPUT_NAMES, [x, h, c, kernel, bias, recurrent_query_kernel, projection,
                           memory_gates, memory_readout, attention_vector, readout_kernel,
                           readout_bias], 'the fused search step')
        mask = T.as_tensor_variable(mask)
        if mask.ndim != 2:
            raise TypeError('mask must be a 2-d (sources, length) tensor, got %d-d' % mask.ndim)
        x, h, c = floats[:3]
        inputs = ([x, self._index_input(tokens, 'tokens'), self._index_input(rows, 'rows'), h, c]
                  + floats[3:9] + [T.cast(T.neq(mask, 0), 'int8')] + floats[9:])
        matrix = T.TensorType(h.dtype, (False, False))
        return Apply(self, inputs, [matrix() for _ in range(4)])

    def perform(self, node, inputs, output_storage):
        inputs = list(inputs)
        if inputs[2].size and (inputs[2].min() < 0 or inputs[2].max() >= len(inputs[8])):
            raise IndexError('fused search step: rows must be source indices in [0, %d)'
                             % len(inputs[8]))
        results = numpy_step(*(inputs + [self.inner_activation, self.readout]))
        for storage, value in zip(output_storage, results):
            storage[0] = value

    def infer_shape(self, node, input_shapes):
        rows, units = input_shapes[3]
        n = input_shapes[13][1]
        return [(rows, n), (rows, n), (rows, units), (rows, units)]

    def grad(self, inputs, output_grads):
        raise NotImplementedError('the fused search step has no gradient (it decodes)')

    # -- C ---------------------------------------------------------------------
    def _support_code_text(self):
        # The LSTM Op's C (fused_gemm, fused_tanh, fused_forward_row,
        # fused_prepare_output) and the loss Op's vectorised exp (xent_exp) first.
        return fused_lstm.SUPPORT_CODE + fused_softmax.SUPPORT_CODE + _DECODE_C

    def c_code(self, node, name, inputs, outputs, sub):
        settings = c_type_settings(node.outputs[0].dtype)
        return """
        {
            PyArrayObject* in_arrays[%(n_in)d] = {%(inputs)s};
            PyArrayObject* out_arrays[4] = {%(outputs)s};
            int status = decode_step<%(ctype)s>(%(kind)s, %(readout)s, %(typenum)s,
                                                in_arrays, out_arrays);
            %(copy_back)s
            if (status != 0) {
                %(fail)s
            }
        }
        """ % dict(settings, n_in=len(inputs), inputs=', '.join(inputs),
                   outputs=', '.join(outputs),
                   kind={'hard_sigmoid': 'FUSED_HARD_SIGMOID',
                         'sigmoid': 'FUSED_SIGMOID'}[self.inner_activation],
                   readout={'linear': 'DECODE_LINEAR', 'softmax': 'DECODE_SOFTMAX'}[self.readout],
                   copy_back='\n'.join('%s = out_arrays[%d];' % (o, k)
                                       for k, o in enumerate(outputs)),
                   fail=sub['fail'])
