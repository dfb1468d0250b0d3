"""What the fused C Ops share: dtype tables, input checks, C helpers and the
cache version derived from their C source.

Every C snippet here has its own include guard, so an Op may embed it in its
support code and two Ops compiled into one module (Theano's 'c' linker) still
define each helper once.
"""
from __future__ import absolute_import

import hashlib
import inspect
import sys

import theano.tensor as T
from theano.gof import Op
from theano.gradient import DisconnectedType, grad_not_implemented
from theano.tensor.blas import ldflags
from theano.tensor.blas_headers import blas_header_text, blas_header_version

# The float dtypes the fused Ops compute in, and their C and NumPy names.
DTYPES = ('float32', 'float64')
C_TYPES = {'float32': 'float', 'float64': 'double'}
TYPENUMS = {'float32': 'NPY_FLOAT32', 'float64': 'NPY_FLOAT64'}

# -fno-trapping-math lets GCC if-convert clamps and maxima and so vectorise
# the Ops' row loops (no floating-point exception is ever enabled).
VECTORISE_FLAGS = ['-fno-trapping-math']


def c_type_settings(dtype):
    """`ctype` and `typenum` of a fused Op's C code for `dtype` (one of DTYPES)."""
    if dtype not in DTYPES:
        raise TypeError('the fused Ops support %s only, got %s' % (' and '.join(DTYPES), dtype))
    return dict(ctype=C_TYPES[dtype], typenum=TYPENUMS[dtype])


def check_float_inputs(names, values, what):
    """`values` as tensors of one float dtype (float32 or float64), each with
    the ndim `names` gives: [(name, ndim), ...]; TypeError naming the input."""
    values = [T.as_tensor_variable(v) for v in values]
    dtype = values[0].dtype
    for (name, ndim), value in zip(names, values):
        if value.ndim != ndim:
            raise TypeError('%s must be a %d-d tensor, got %d-d' % (name, ndim, value.ndim))
        if value.dtype != dtype:
            raise TypeError('%s must have dtype %s like %s, got %s'
                            % (name, dtype, names[0][0], value.dtype))
    if dtype not in DTYPES:
        raise TypeError('%s supports %s only, got %s' % (what, ' and '.join(DTYPES), dtype))
    return values


PREPARE_OUTPUT_C = r"""#ifndef SEQ2SEQ_PREPARE_OUTPUT
#define SEQ2SEQ_PREPARE_OUTPUT
/* A C-contiguous output of the given shape, reusing *out when it fits. */
static int fused_prepare_output(PyArrayObject** out, int nd, const npy_intp* dims, int typenum)
{
    if (*out && PyArray_NDIM(*out) == nd && PyArray_TYPE(*out) == typenum
            && PyArray_IS_C_CONTIGUOUS(*out)) {
        int same = 1;
        for (int d = 0; d < nd; ++d)
            same = same && PyArray_DIMS(*out)[d] == dims[d];
        if (same)
            return 0;
    }
    Py_XDECREF(*out);
    *out = (PyArrayObject*)PyArray_EMPTY(nd, (npy_intp*)dims, typenum, 0);
    return *out ? 0 : -1;
}
#endif

"""

ACCUMULATE_C = r"""#ifndef SEQ2SEQ_ACCUMULATE
#define SEQ2SEQ_ACCUMULATE
/* sum += x, accumulated in double (bias gradients summed over many rows). */
template <typename T>
static void fused_accumulate(double* __restrict sum, const T* __restrict x, npy_intp n)
{
    for (npy_intp j = 0; j < n; ++j)
        sum[j] += x[j];
}
#endif

"""

# Everything above, for an Op's support code.
SHARED_C = PREPARE_OUTPUT_C + ACCUMULATE_C

_versions = {}  # (Op class, extra) -> its version


def source_digest(*texts):
    """A 60-bit int digest of `texts`, the same in every process."""
    joined = '\0'.join(texts).encode('utf-8')
    return int(hashlib.sha256(joined).hexdigest()[:15], 16)


def _module_source(module_name):
    module = sys.modules.get(module_name)
    try:
        return inspect.getsource(module)
    except (OSError, TypeError):  # no source file (e.g. frozen)
        return repr(getattr(module, '__dict__', {}).get('__file__'))


def c_source_text(op):
    """What makes `op`'s compiled module: its support code, headers and
    compile flags, and the whole source of the modules defining its classes
    (outside Theano) and of this one. Whole modules, because a C template, a
    params type or a helper the C code uses may live anywhere in them."""
    parts = [op.c_support_code()]
    parts += [repr(sorted(method())) for method in (op.c_headers, op.c_compile_args)]
    modules = [cls.__module__ for cls in type(op).__mro__
               if cls.__module__.split('.')[0] not in ('theano', 'builtins')]
    for name in sorted(set(modules + [__name__])):
        parts.append(_module_source(name))
    return parts


def cache_version(op, *extra):
    """A `c_code_cache_version` for `op`: a digest of its C source text, then
    `extra` (e.g. the BLAS header's version).

    Theano finds a compiled module in its cache by this version, not by the
    code itself, so a version taken from the code means an edit of the C can
    never reuse a stale module from `~/.theano`, with no number to bump (any
    edit of the Op's module recompiles its few modules once). Computed once
    per Op class and process.
    """
    key = (type(op), extra)
    if key not in _versions:
        _versions[key] = (source_digest(*c_source_text(op)),) + tuple(extra)
    return _versions[key]


# -- what the BLAS-calling Ops (the LSTM, the attention decoder) share --------

def check_choice(name, value, choices):
    """`value` if it is one of `choices`, else a ValueError naming `name`."""
    if value not in choices:
        raise ValueError('%s must be one of %s, got %r'
                         % (name, ', '.join(repr(c) for c in choices), value))
    return value


def int8_mask_input(mask, name, axes):
    """`mask` as an int8 tensor; TypeError unless it is 2-d (`axes`, e.g.
    '(time, batch)', says what its dimensions are)."""
    mask = T.as_tensor_variable(mask)
    if mask.ndim != 2:
        raise TypeError('%s must be a 2-d %s tensor, got %d-d' % (name, axes, mask.ndim))
    return T.cast(mask, 'int8')


def output_grad_or_zeros(grad, output):
    """The gradient reaching `output`, zeros when nothing uses it."""
    if isinstance(grad.type, DisconnectedType):
        return T.zeros_like(output)
    return T.cast(grad, output.dtype)


CHECK_SHAPE_C = r"""#ifndef SEQ2SEQ_CHECK_SHAPE
#define SEQ2SEQ_CHECK_SHAPE
/* 0 when a has nd dimensions equal to dims; else a ValueError
   "<op>: <name> has the wrong shape (...)" and -1. */
static int fused_check_dims(const char* op, PyArrayObject* a, const char* name, int nd,
                            const npy_intp* dims)
{
    int ok = PyArray_NDIM(a) == nd;
    for (int d = 0; ok && d < nd; ++d)
        ok = PyArray_DIMS(a)[d] == dims[d];
    if (!ok) {
        PyErr_Format(PyExc_ValueError, "%s: %s has the wrong shape "
                     "(expected %d dimensions matching the other inputs)", op, name, nd);
        return -1;
    }
    return 0;
}
#endif

"""

HELD_ARRAYS_C = r"""#ifndef SEQ2SEQ_HELD_ARRAYS
#define SEQ2SEQ_HELD_ARRAYS
/* Holds C-contiguous views (or copies) of an Op's inputs, and its scratch
   arrays, and drops them all when it goes out of scope. */
#define FUSED_MAX_HELD 160
struct FusedHeldArrays {
    PyArrayObject* arrays[FUSED_MAX_HELD];
    int n;
    FusedHeldArrays() : n(0) {}
    ~FusedHeldArrays() { for (int k = 0; k < n; ++k) Py_XDECREF(arrays[k]); }
    /* A C-contiguous a (NULL for a NULL a, or on failure). */
    PyArrayObject* add(PyArrayObject* a)
    {
        return hold(a ? PyArray_GETCONTIGUOUS(a) : NULL);
    }
    /* add() of each of the count arrays in[]; false as soon as one fails. */
    bool add_all(PyArrayObject** in, int count)
    {
        for (int k = 0; k < count; ++k)
            if (!add(in[k]))
                return false;
        return true;
    }
    /* A new zeroed array released with the others. */
    PyArrayObject* scratch(int nd, const npy_intp* dims, int typenum)
    {
        return hold((PyArrayObject*)PyArray_ZEROS(nd, (npy_intp*)dims, typenum, 0));
    }
    /* a (a new reference, or NULL), released with the others. */
    PyArrayObject* hold(PyArrayObject* a)
    {
        if (n == FUSED_MAX_HELD) {
            Py_XDECREF(a);
            PyErr_SetString(PyExc_ValueError, "fused Op: more arrays than it can hold");
            return NULL;
        }
        arrays[n++] = a;
        return a;
    }
};
#endif

"""


class BlasOp(Op):
    """An Op whose C code calls BLAS's GEMM: Theano's BLAS header, library
    and flags, VECTORISE_FLAGS, and a cache version that also follows the
    BLAS header's. A subclass gives its C in `_support_code_text()`."""

    def _support_code_text(self):
        raise NotImplementedError

    def c_support_code(self):
        return blas_header_text() + self._support_code_text()

    def c_headers(self):
        return ['<limits.h>', '<cmath>', '<stdlib.h>', '<string.h>']

    def c_libraries(self):
        return ldflags()

    def c_compile_args(self):
        return ldflags(libs=False, flags=True) + VECTORISE_FLAGS

    def c_lib_dirs(self):
        return ldflags(libs=False, libs_dir=True)

    def c_header_dirs(self):
        return ldflags(libs=False, include_dir=True)

    def c_code_cache_version(self):
        # A digest of the C source: any edit of it gets a new module.
        return cache_version(self, blas_header_version())


# -- what the gated cells' Ops (the LSTM, the GRU) share ----------------------

# The gate activations the fused cells compute, and each one's constant in
# the C code (fused_gate's KIND).
INNER_ACTIVATIONS = ('hard_sigmoid', 'sigmoid')
GATE_KINDS = {'hard_sigmoid': 'FUSED_HARD_SIGMOID', 'sigmoid': 'FUSED_SIGMOID'}


def cell_unsupported_reason(cell, kind, op_name, cell_name, truncate_gradient=-1, dtype=None):
    """Why `cell` (a `seq2seq.ops.specs.CellSpec`) cannot run on the fused
    Op `op_name` ('the fused LSTM') of cells of `kind` ('lstm'; `cell_name`,
    'an LSTM cell', says it in words), or None when it can: a tanh
    activation, INNER_ACTIVATIONS gates, full back-propagation and a dtype
    of DTYPES."""
    if cell.kind != kind:
        return '%s runs %s, got %s' % (op_name, cell_name, cell.kind)
    if cell.activation != 'tanh':
        return '%s supports activation tanh only, got %s' % (op_name, cell.activation)
    if cell.inner_activation not in INNER_ACTIVATIONS:
        return ('%s supports inner_activation %s only, got %s'
                % (op_name, ' or '.join(INNER_ACTIVATIONS), cell.inner_activation))
    if truncate_gradient != -1:
        return ('%s back-propagates through every step; '
                'truncate_gradient=%d needs the scan loop' % (op_name, truncate_gradient))
    if dtype is not None and dtype not in DTYPES:
        return '%s supports %s only, got %s' % (op_name, ' and '.join(DTYPES), dtype)
    return None


# The GEMM wrapper and the gates' elementwise maths, in C. Everything is
# C-contiguous and row-major; the Fortran GEMM is column-major, so a
# row-major C = A B is computed as the column-major C^T = B^T A^T (a block
# of columns of a row-major matrix is a column-major matrix whose leading
# dimension is the full row).
# The casts to non-const pointers matter when Theano has no BLAS library
# (blas.ldflags empty): its NumPy-based [sd]gemm_ is then a C++ overload
# taking float*, and a const float* call would bind to the undefined
# extern "C" declaration instead.
GATE_MATH_C = r"""#ifndef SEQ2SEQ_GATE_MATH
#define SEQ2SEQ_GATE_MATH
#include <cmath>

enum { FUSED_HARD_SIGMOID = 0, FUSED_SIGMOID = 1 };

static inline void fused_gemm(char ta, char tb, int m, int n, int k, float alpha,
                              const float* a, int lda, const float* b, int ldb,
                              float beta, float* c, int ldc)
{
    sgemm_(&ta, &tb, &m, &n, &k, &alpha, (float*)a, &lda, (float*)b, &ldb, &beta, c, &ldc);
}

static inline void fused_gemm(char ta, char tb, int m, int n, int k, double alpha,
                              const double* a, int lda, const double* b, int ldb,
                              double beta, double* c, int ldc)
{
    dgemm_(&ta, &tb, &m, &n, &k, &alpha, (double*)a, &lda, (double*)b, &ldb, &beta, c, &ldc);
}

/* A recurrent kernel's gradient: the first `cols` columns of dU (units,
   ld) = sum_t h_{t-1}^T dz_t = h0^T dz_0 + H[:-1]^T dz[1:], two GEMMs over
   every step at once (dU^T = dz^T h_prev); DZ (time, batch, ld), of whose
   rows the first `cols` are read; H (time, batch, units), h0 (batch,
   units). Zero-sized problems leave dU as it is. */
template <typename T>
static void fused_recurrent_kernel_grad(const T* DZ, const T* h0, const T* H, T* DU,
                                        npy_intp time, npy_intp batch, npy_intp units,
                                        npy_intp cols, npy_intp ld)
{
    if (time == 0 || batch == 0 || units == 0 || cols == 0)
        return;
    fused_gemm('N', 'T', (int)cols, (int)units, (int)batch, (T)1, DZ, (int)ld, h0, (int)units,
               (T)0, DU, (int)ld);
    if (time > 1)
        fused_gemm('N', 'T', (int)cols, (int)units, (int)((time - 1) * batch), (T)1,
                   DZ + batch * ld, (int)ld, H, (int)units, (T)1, DU, (int)ld);
}

template <typename T> static inline T fused_clamp(T x, T lo, T hi)
{
    x = x < lo ? lo : x;
    return x > hi ? hi : x;
}

/* tanh. float: the rational approximation of Eigen,
   x P(x^2) / Q(x^2) on [-7.9053, 7.9053], within 3e-7 of tanhf and exactly
   +-1 beyond. Unlike a call to tanhf, GCC vectorises it (with
   -fno-trapping-math): the elementwise part of a step then costs a fraction
   of its GEMM. double: the C library's, so float64 stays the reference. */
static inline float fused_tanh(float x)
{
    x = fused_clamp(x, -7.90531110763549805f, 7.90531110763549805f);
    const float x2 = x * x;
    float p = -2.76076847742355e-16f;
    p = p * x2 + 2.00018790482477e-13f;
    p = p * x2 - 8.60467152213735e-11f;
    p = p * x2 + 5.12229709037114e-08f;
    p = p * x2 + 1.48572235717979e-05f;
    p = p * x2 + 6.37261928875436e-04f;
    p = p * x2 + 4.89352455891786e-03f;
    float q = 1.19825839466702e-06f;
    q = q * x2 + 1.18534705686654e-04f;
    q = q * x2 + 2.26843463243900e-03f;
    q = q * x2 + 4.89352518554385e-03f;
    return x * p / q;
}

static inline double fused_tanh(double x) { return std::tanh(x); }

/* The gate activation, as Theano computes it; sigmoid(z) = (1 + tanh(z/2)) / 2
   shares tanh's vectorised form. */
template <typename T, int KIND> static inline T fused_gate(T z)
{
    if (KIND == FUSED_HARD_SIGMOID)
        return fused_clamp(z * (T)0.2 + (T)0.5, (T)0, (T)1);   /* clip(0.2 z + 0.5, 0, 1) */
    return (T)0.5 * fused_tanh((T)0.5 * z) + (T)0.5;
}

/* d gate / d z; hard_sigmoid: 0.2 where 0 <= 0.2 z + 0.5 <= 1 (Theano's
   clip passes the gradient on its bounds too), else 0. Branch-free, so that
   the loops around it vectorise. */
template <typename T, int KIND> static inline T fused_gate_derivative(T z, T gate)
{
    if (KIND == FUSED_HARD_SIGMOID) {
        const T y = z * (T)0.2 + (T)0.5;
        return (T)((y >= (T)0) & (y <= (T)1)) * (T)0.2;
    }
    return gate * ((T)1 - gate);
}

/* out = a + b, row by row. */
template <typename T>
static void fused_add_rows(T* __restrict out, const T* __restrict a, const T* __restrict b,
                           npy_intp n)
{
    for (npy_intp j = 0; j < n; ++j)
        out[j] = a[j] + b[j];
}

#endif

"""


class GatedSequenceOp(BlasOp):
    """What the forward and gradient Ops of a gated cell over a sequence
    share (`fused_lstm`, `fused_gru`): the gate activation and whether a
    (time, batch) mask input comes last, their checks, and the C settings.
    A subclass names itself in `what` ('the fused LSTM')."""

    __props__ = ('inner_activation', 'masked')
    what = None

    def __init__(self, inner_activation='hard_sigmoid', masked=False):
        check_choice('inner_activation', inner_activation, INNER_ACTIVATIONS)
        if not isinstance(masked, bool):
            raise TypeError('masked must be True or False, got %r' % (masked,))
        self.inner_activation = inner_activation
        self.masked = masked
        super(GatedSequenceOp, self).__init__()

    def _float_inputs(self, names, values):
        return check_float_inputs(names, values, self.what)

    def _mask_input(self, mask):
        """[the mask as int8], or [] for an Op built without one."""
        if mask is None:
            if self.masked:
                raise TypeError('this %s was built with masked=True: pass a mask'
                                % type(self).__name__)
            return []
        if not self.masked:
            raise TypeError('this %s was built with masked=False: pass no mask'
                            % type(self).__name__)
        return [int8_mask_input(mask, 'mask', '(time, batch)')]

    @staticmethod
    def _sequence_type(dtype, ndim=3):
        return T.TensorType(dtype, (False,) * ndim)

    def _gates_output_refused(self, inputs, n_differentiable):
        """The forward Op's gradients when something differentiates its
        gates output, which only its gradient Op reads: refused for the
        first `n_differentiable` inputs, none for the rest (they count or
        select: n_steps, the mask)."""
        why = 'the gates output of %s is for its own gradient only' % type(self).__name__
        return ([grad_not_implemented(self, k, x, why)
                 for k, x in enumerate(inputs[:n_differentiable])] +
                [DisconnectedType()() for _ in inputs[n_differentiable:]])

    def _no_second_derivative(self, inputs):
        """The gradient Op's L_op: back-propagation through time is not
        differentiated again."""
        return [grad_not_implemented(self, k, x, '%s has no second derivative' % self.what)
                for k, x in enumerate(inputs)]

    def _c_settings(self, node):
        return dict(c_type_settings(node.outputs[0].dtype),
                    kind=GATE_KINDS[self.inner_activation])
