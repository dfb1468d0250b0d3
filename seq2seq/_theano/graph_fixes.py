"""A fix to one of Theano's graph optimizations, applied at import.

`local_dot22_to_dot22scalar` (theano-pymc 1.0.11, `theano/tensor/blas.py`)
rewrites `a * dot(x, y)`, with `a` a scalar, into `Dot22Scalar(x, y, a)`: one
GEMM with alpha = a. When `dot(x, y)` is also used elsewhere, the plain
`Dot22` stays in the graph for those uses, and the rewrite *adds* a second
GEMM of the same size instead of saving an elementwise product. Adam does
exactly that with every weight gradient g: `m = beta_1 m + (1 - beta_1) g`
and `v = beta_2 v + (1 - beta_2) g^2`. For the (256 -> 1000) output layer of
a small seq2seq model that second GEMM is ~7 ms of a ~130 ms training step.

`install()` makes the rewrite skip a `Dot22` with other uses; a `Dot22` used
only by the product is still folded into its GEMM, as before.
"""
from __future__ import absolute_import


def only_dot22_with_one_client(transform):
    """Wraps the rewrite: no change when its Dot22 input has other clients."""
    def guarded(node):
        from theano.tensor.blas import _dot22
        for variable in node.inputs:
            owner = variable.owner
            if (owner is not None and owner.op == _dot22
                    and len(getattr(variable, 'clients', ())) > 1):
                return False
        return transform(node)
    guarded._seq2seq_patch = True
    return guarded


def install():
    """Apply the fix to Theano's optimizer. Idempotent."""
    from theano.tensor import blas
    rewrite = blas.local_dot22_to_dot22scalar
    if not getattr(rewrite.transform, '_seq2seq_patch', False):
        rewrite.transform = only_dot22_with_one_client(rewrite.transform)
