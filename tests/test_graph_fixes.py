"""seq2seq._theano.graph_fixes: Theano's Dot22Scalar rewrite adds no second GEMM."""
import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from numpy.testing import assert_allclose

from seq2seq._theano import graph_fixes


def test_one_gemm_for_a_gradient_used_twice():
    """Adam's pattern, a * g and g ** 2 of one g = dot(x, w): one GEMM, not
    Theano's Dot22 plus a Dot22Scalar of the same product; same values."""
    x, w = T.matrix(), T.matrix()
    g = T.dot(x, w)
    f = theano.function([x, w], [np.asarray(0.1, K.floatx()) * g, g ** 2])
    gemms = [node for node in f.maker.fgraph.toposort()
             if type(node.op).__name__ in ('Dot22', 'Dot22Scalar', 'Gemm', 'Dot')]
    assert len(gemms) == 1, gemms
    rng = np.random.RandomState(4)
    xv, wv = rng.randn(3, 4).astype(K.floatx()), rng.randn(4, 5).astype(K.floatx())
    scaled, squared = f(xv, wv)
    assert_allclose(scaled, 0.1 * xv.dot(wv), rtol=1e-5)
    assert_allclose(squared, xv.dot(wv) ** 2, rtol=1e-5)


def test_a_lone_scaled_dot_still_becomes_dot22scalar():
    x, w = T.matrix(), T.matrix()
    f = theano.function([x, w], np.asarray(0.1, K.floatx()) * T.dot(x, w))
    ops = [type(node.op).__name__ for node in f.maker.fgraph.toposort()]
    assert 'Dot22Scalar' in ops, ops


def test_install_wraps_the_rewrite_once():
    from theano.tensor import blas
    graph_fixes.install()
    graph_fixes.install()
    transform = blas.local_dot22_to_dot22scalar.transform
    assert transform._seq2seq_patch
    assert not getattr(transform.__closure__[0].cell_contents, '_seq2seq_patch', False)
