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
from theano.gradient import DisconnectedType
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
struct FusedHeldArrays {
    PyArrayObject* arrays[32];
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
