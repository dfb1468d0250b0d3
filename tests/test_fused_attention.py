"""The fused attention decoder (seq2seq.ops.fused_attention) against its numpy
reference and against the scan loop of the same AttentionDecoder."""
import warnings

import keras
import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from keras.layers import Input
from numpy.testing import assert_allclose

from seq2seq import AttentionDecoder
from seq2seq.layers.losses import sparse_softmax_crossentropy
from seq2seq.models import AttentionSeq2Seq
from seq2seq.layers.decoder_core import FREE_RUNNING, TEACHER_FORCED
from seq2seq.ops import fused_attention
from seq2seq.ops.fused_attention import AttentionForward, AttentionGrad
from seq2seq.layers.recurrent import FusedFallbackWarning
from tests.helpers import assert_raises_with, float64
from nose.plugins.attrib import attr

TOLERANCES = {'float32': dict(rtol=1e-5, atol=1e-5), 'float64': dict(rtol=1e-9, atol=1e-10)}

# Memory masks (batch 4, length 5): right padding, left padding, none, and
# a sequence with nothing to attend to (alpha and context are then 0).
MASK = np.array([[1, 1, 1, 0, 0],
                 [0, 0, 1, 1, 1],
                 [1, 1, 1, 1, 1],
                 [0, 0, 0, 0, 0]], dtype='int8')


def _op_inputs(dtype, time=3, batch=4, units=3, length=5, m=4, a=2, seed=0):
    """Random values of AttentionForward's inputs (projected ... mask)."""
    rng = np.random.RandomState(seed)

    def uniform(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype)

    return [uniform(time, batch, 4 * units), uniform(batch, units), uniform(batch, units),
            uniform(units, 4 * units), uniform(m, 4 * units), uniform(batch, length, m),
            uniform(batch, length, a), uniform(units, a), uniform(a), MASK[:batch, :length]]


def _symbolic(values):
    return [T.TensorType(str(v.dtype), (False,) * v.ndim)() for v in values]


def _op_and_gradient(dtype, inner_activation):
    """A compiled function: inputs and output gradients -> the four outputs
    and the gradients of the nine differentiable inputs."""
    values = _op_inputs(dtype)
    inputs = _symbolic(values)
    outputs = AttentionForward(inner_activation)(*inputs)[:4]
    output_grads = [T.TensorType(dtype, (False,) * 3)() for _ in outputs]
    cost = sum((o * g).sum() for o, g in zip(outputs, output_grads))
    grads = T.grad(cost, inputs[:9])
    function = theano.function(inputs + output_grads, outputs + grads)
    assert any(isinstance(n.op, AttentionGrad) for n in function.maker.fgraph.toposort())
    return function, values


def test_op_matches_numpy_reference():
    for dtype in ('float32', 'float64'):
        for inner_activation in ('hard_sigmoid', 'sigmoid'):
            function, values = _op_and_gradient(dtype, inner_activation)
            forward = fused_attention.numpy_forward(*(values + [inner_activation]))
            rng = np.random.RandomState(1)
            output_grads = [rng.uniform(-1, 1, o.shape).astype(dtype) for o in forward[:4]]
            got = function(*(values + output_grads))
            for name, value, expected in zip(['h_seq', 'c_seq', 'context_seq', 'alpha_seq'],
                                             got[:4], forward[:4]):
                assert_allclose(value, expected, err_msg='%s %s %s' % (dtype, inner_activation,
                                                                        name),
                                **TOLERANCES[dtype])
            h0, c0, kernel, context_kernel, memory, _, query_kernel, vector, mask = values[1:]
            backward = fused_attention.numpy_backward(
                *([h0, c0, kernel, context_kernel, memory, query_kernel, vector, mask]
                  + list(forward) + output_grads + [inner_activation]))
            for name, value, expected in zip(fused_attention._FORWARD_NAMES, got[4:], backward):
                assert_allclose(value, expected, err_msg='%s %s d %s' % (dtype, inner_activation,
                                                                          name),
                                **TOLERANCES[dtype])


def test_masked_memory_steps_get_no_attention():
    values = _op_inputs('float64')
    inputs = _symbolic(values)
    h_seq, _, context_seq, alpha_seq = theano.function(
        inputs, AttentionForward()(*inputs)[:4])(*values)
    assert not alpha_seq[:, 0, 3:].any() and not alpha_seq[:, 1, :2].any()
    assert_allclose(alpha_seq[:, :3].sum(axis=-1), 1.0, rtol=1e-12)
    # Nothing to attend to: no weight, a zero context, and no NaN.
    assert not alpha_seq[:, 3].any() and not context_seq[:, 3].any()
    assert np.isfinite(h_seq).all()


def test_verify_grad_float64():
    values = _op_inputs('float64', time=2, batch=3, units=2, length=3, m=2, a=2, seed=3)
    mask = values[-1]
    rng = np.random.RandomState(4)
    weights = [rng.uniform(-1, 1, (2, 3, n)) for n in (2, 2, 2, 3)]

    def cost(*differentiable):
        outputs = AttentionForward('sigmoid')(*(list(differentiable) + [mask]))[:4]
        return sum((o * w).sum() for o, w in zip(outputs, weights))

    theano.gradient.verify_grad(cost, values[:9], rng=np.random.RandomState(5), eps=1e-6,
                                abs_tol=1e-6, rel_tol=1e-5)


def test_make_node_checks_its_inputs():
    values = _op_inputs('float64')
    inputs = _symbolic(values)
    assert_raises_with(TypeError, lambda: AttentionForward()(inputs[1], *inputs[1:]),
                       'projected', '3-d')
    floats = [T.TensorType('float32', (False,) * v.ndim)() for v in values[:2]]
    assert_raises_with(TypeError, lambda: AttentionForward()(*(floats + inputs[2:])),
                       'c0', 'dtype float32')
    assert_raises_with(ValueError, lambda: AttentionForward('relu'), 'inner_activation')


# -- the layer: fused against scan --------------------------------------------------

def _decoder_graphs(dtype, readout_activation='softmax', inner_activation='hard_sigmoid',
                    dropout=0.0):
    """One teacher-forced AttentionDecoder run both ways on the same inputs.

    With `dropout`, both runs read one given dropout mask, the last input
    (batch, 3), instead of a random one.

    Returns (inputs, {implementation: [outputs, h, c, alpha, gradients...]}).
    """
    first, memory = Input((3,), dtype=dtype), Input((5, 4), dtype=dtype)
    teacher, mask = Input((4, 3), dtype=dtype), K.placeholder((None, 5))
    layer = AttentionDecoder(3, 6, 4, teacher_force=True, implementation='scan',
                             readout_activation=readout_activation,
                             inner_activation=inner_activation, dropout=dropout)
    layer([first, memory, teacher], mask=[None, mask, None])        # builds the layer
    inputs = [first, memory, teacher, mask]
    if dropout:
        dropout_mask = K.placeholder((None, 3), dtype=dtype)
        _use_dropout_mask(layer, dropout_mask)
        inputs.append(dropout_mask)
    parts = layer.split_inputs([first, memory, teacher], [None, mask, None])
    rng = np.random.RandomState(7)
    # A random weighting of every output: each gets its own gradient.
    weights = [rng.uniform(-1, 1, shape).astype(dtype)
               for shape in [(4, 4, 3), (4, 6), (4, 6), (4, 4, 5)]]
    graphs = {}
    for implementation in ('scan', 'fused'):
        layer.implementation = implementation
        outputs, finals, alpha = layer.run(parts, teacher=parts.teacher)
        results = [outputs, finals[0][0], finals[0][1], alpha]
        cost = sum((r * w).sum() for r, w in zip(results, weights))
        wrt = layer.trainable_weights + [first, memory, teacher]
        graphs[implementation] = results + T.grad(cost, wrt)
    return inputs, graphs


def _use_dropout_mask(layer, dropout_mask):
    """Makes `layer` read `dropout_mask` as its bottom cell's dropout mask,
    instead of a random draw: the scan and the fused loop both take the mask
    from the constants of `Decoder.start`."""
    start = layer.decoder.start

    def with_given_mask(*args):
        values = start(*args)
        assert 'dropout_0' in values, 'the layer makes no dropout mask'
        values['dropout_0'] = dropout_mask
        return values

    layer.decoder.start = with_given_mask


# A dropout mask as K.dropout(ones, 0.3) draws it, (batch 4, output_dim 3):
# dropped units are 0, kept ones scaled by 1 / 0.7; one sequence keeps all.
DROPOUT_MASK = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1]]) / 0.7


def _decoder_values(dtype, dropout=False):
    rng = np.random.RandomState(8)
    values = [rng.uniform(-1, 1, (4, 3)).astype(dtype),
              rng.uniform(-1, 1, (4, 5, 4)).astype(dtype),
              rng.uniform(-1, 1, (4, 4, 3)).astype(dtype),
              MASK.astype(dtype)]
    return values + [DROPOUT_MASK.astype(dtype)] if dropout else values


def test_layer_matches_scan_values_states_attention_and_gradients():
    _assert_fused_matches_scan(dropout=0.0)


@attr('slow')
def test_layer_with_dropout_matches_scan_for_a_given_mask():
    """Dropout masks the bottom cell's input x_{t-1} with one mask per
    sequence: the fused loop's values and every gradient (the teacher's,
    through the mask, too) are the scan's, padded memory steps included."""
    _assert_fused_matches_scan(dropout=0.3)


def _assert_fused_matches_scan(dropout):
    cases = [('float32', 'softmax', 'hard_sigmoid'), ('float64', 'linear', 'sigmoid')]
    for dtype, readout_activation, inner_activation in cases:
        with (float64() if dtype == 'float64' else _same_floatx()):
            inputs, graphs = _decoder_graphs(dtype, readout_activation, inner_activation,
                                             dropout)
            values = _decoder_values(dtype, dropout=bool(dropout))
            # The reference in Python implementations: compiles in seconds.
            scan = theano.function(inputs, graphs['scan'], mode='FAST_COMPILE')(*values)
            function = K.function(inputs, graphs['fused'])
            ops = [type(n.op).__name__ for n in function.function.maker.fgraph.toposort()]
            assert 'AttentionForward' in ops and 'Scan' not in ops, ops
            fused = function(values)
            names = ['outputs', 'final h', 'final c', 'attention'] + [
                'd %s' % n for n in ['kernel', 'recurrent_kernel', 'bias', 'readout_kernel',
                                     'readout_bias', 'memory_kernel', 'query_kernel',
                                     'vector', 'context_kernel', 'context_readout_kernel',
                                     'first', 'memory', 'teacher']]
            assert len(names) == len(fused)
            for name, got, expected in zip(names, fused, scan):
                assert_allclose(got, expected, err_msg='%s %s' % (dtype, name),
                                **TOLERANCES[dtype])
            assert not fused[3][3].any(), 'a fully masked memory got attention'


class _same_floatx(object):
    def __enter__(self):
        assert K.floatx() == 'float32'

    def __exit__(self, *args):
        return False


def test_teacher_forced_model_trains_like_scan():
    """A few Adam steps of AttentionSeq2Seq with the fused decoder and the
    fused loss give the scan's weights; the training function runs neither
    a scan gradient nor the free-running loop's gradient."""
    rng = np.random.RandomState(9)
    x = rng.uniform(-1, 1, (8, 5, 3))
    y = rng.randint(0, 6, (8, 4))
    y_one_hot = np.eye(6)[y]
    with float64():
        trained = {}
        for implementation in ('scan', 'auto'):
            np.random.seed(10)
            model = AttentionSeq2Seq(output_dim=6, output_length=4, hidden_dim=4, input_dim=3,
                                     input_length=5, teacher_force=True,
                                     readout_activation='softmax',
                                     implementation=implementation)
            # The scan reference in Python implementations: compiles in seconds.
            mode = 'FAST_COMPILE' if implementation == 'scan' else None
            model.compile(optimizer='adam', loss=sparse_softmax_crossentropy, mode=mode)
            model._make_train_function()
            nodes = model.train_function.function.maker.fgraph.toposort()
            names = [type(n.op).__name__ for n in nodes]
            scans = [n.op.name for n in nodes if type(n.op).__name__ == 'Scan']
            if implementation == 'auto':
                assert 'AttentionGrad' in names and 'SoftmaxCrossEntropy' in names, names
                # Only the free-running loop, behind the learning phase's IfElse,
                # and no in-place update has to wait for it (which would run it).
                assert all(not name.startswith('grad_of') for name in scans), scans
                orderings = model.train_function.function.maker.fgraph.orderings()
                assert not any(type(p.op).__name__ == 'Scan'
                               for prerequisites in orderings.values() for p in prerequisites)
            model.fit([x, y_one_hot], y[..., None], batch_size=4, epochs=2, verbose=0,
                      shuffle=False)
            trained[implementation] = model.get_weights()
        for got, expected in zip(trained['auto'], trained['scan']):
            assert_allclose(got, expected, rtol=1e-7, atol=1e-9)


# -- dropout ---------------------------------------------------------------------------

def test_verify_grad_with_dropout_float64():
    """The fused decoder's gradients with respect to its inputs, through a
    given dropout mask, against finite differences (padded memory steps too)."""
    with float64():
        first, memory, teacher = Input((3,)), Input((5, 4)), Input((4, 3))
        layer = AttentionDecoder(3, 2, 4, teacher_force=True, dropout=0.3,
                                 readout_activation='softmax', inner_activation='sigmoid')
        layer([first, memory, teacher])                               # builds the layer
        _use_dropout_mask(layer, T.constant(DROPOUT_MASK))
        memory_mask = T.constant(MASK.astype('float64'))
        rng = np.random.RandomState(11)
        weights = rng.uniform(-1, 1, (4, 4, 3))

        def cost(first, memory, teacher):
            parts = layer.split_inputs([first, memory, teacher], [None, memory_mask, None])
            outputs, _, _ = layer.run(parts, teacher=parts.teacher)
            return (outputs * weights).sum()

        values = [rng.uniform(-1, 1, shape) for shape in [(4, 3), (4, 5, 4), (4, 4, 3)]]
        first_value, memory_value, teacher_value = [theano.shared(v) for v in values]
        graph = cost(first_value, memory_value, teacher_value)
        assert any(isinstance(n.op, AttentionForward)
                   for n in theano.gof.graph.io_toposort([], [graph])), 'not the fused path'
        theano.gradient.verify_grad(cost, values, rng=np.random.RandomState(12), eps=1e-6,
                                    abs_tol=1e-6, rel_tol=1e-5)


def test_dropout_only_in_training_and_inference_matches_scan():
    """With the layer's own random masks: in inference (learning phase 0)
    dropout does nothing, and the fused loop, the scan and a layer without
    dropout agree; in training (phase 1) the masks change the outputs."""
    with float64():
        first, memory, teacher = Input((3,)), Input((5, 4)), Input((4, 3))
        memory_mask = K.placeholder((None, 5))
        layer = AttentionDecoder(3, 6, 4, teacher_force=True, dropout=0.5,
                                 readout_activation='softmax')
        layer([first, memory, teacher], mask=[None, memory_mask, None])
        parts = layer.split_inputs([first, memory, teacher], [None, memory_mask, None])
        assert layer.decoder.fused_reason(TEACHER_FORCED) is None
        outputs = []
        for implementation, dropout in [('fused', 0.5), ('scan', 0.5), ('fused', 0.0)]:
            layer.implementation, layer.decoder.dropout = implementation, dropout
            outputs.append(layer.run(parts, teacher=parts.teacher)[0])
        function = K.function([first, memory, teacher, memory_mask, K.learning_phase()],
                              outputs)
        ops = [type(n.op).__name__ for n in function.function.maker.fgraph.toposort()]
        assert ops.count('AttentionForward') == 2, ops
        values = _decoder_values('float64')
        fused, scan, no_dropout = function(values + [0])
        assert_allclose(fused, no_dropout, **TOLERANCES['float64'])
        assert_allclose(scan, no_dropout, **TOLERANCES['float64'])
        fused, scan, no_dropout = function(values + [1])
        assert np.abs(fused - no_dropout).max() > 1e-3, 'dropout changed nothing in training'
        assert np.abs(scan - no_dropout).max() > 1e-3


def test_model_with_dropout_trains_on_the_fused_path():
    """AttentionSeq2Seq(dropout=0.3, teacher_force=True) runs the fused
    decoder in training, with no scan gradient, and its loss goes down."""
    rng = np.random.RandomState(13)
    x = rng.uniform(-1, 1, (16, 5, 3))
    y = rng.randint(0, 6, (16, 4))
    y_one_hot = np.eye(6)[y]
    np.random.seed(14)
    model = AttentionSeq2Seq(output_dim=6, output_length=4, hidden_dim=8, input_dim=3,
                             input_length=5, teacher_force=True, dropout=0.3,
                             readout_activation='softmax')
    decoder = model.get_layer('decoder')
    assert decoder.dropout == 0.3
    assert decoder.decoder.fused_reason(TEACHER_FORCED) is None
    model.compile(optimizer=keras.optimizers.Adam(0.02), loss=sparse_softmax_crossentropy)
    model._make_train_function()
    nodes = model.train_function.function.maker.fgraph.toposort()
    names = [type(n.op).__name__ for n in nodes]
    assert 'AttentionGrad' in names, names
    assert not any(n.op.name.startswith('grad_of') for n in nodes
                   if type(n.op).__name__ == 'Scan')
    history = model.fit([x, y_one_hot], y[..., None], batch_size=8, epochs=30, verbose=0,
                        shuffle=False)
    losses = history.history['loss']
    assert np.mean(losses[-3:]) < 0.7 * losses[0], losses


# -- where the fused decoder does not apply -----------------------------------------

def _fallback_warnings(implementation, **kwargs):
    first, memory, teacher = Input((3,)), Input((5, 4)), Input((4, 3))
    layer = AttentionDecoder(3, 6, 4, implementation=implementation, **kwargs)
    inputs = [first, memory, teacher] if layer.teacher_force else [first, memory]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        layer(inputs)
    return [str(w.message) for w in caught if issubclass(w.category, FusedFallbackWarning)]


def test_fallback_warnings():
    # Free running (predict, or no teacher forcing) runs the scan loop, with
    # a warning under 'fused' only.
    caught = _fallback_warnings('fused')
    assert len(caught) == 1 and 'teacher-forced' in caught[0], caught
    assert not _fallback_warnings('auto')
    # Teacher-forced, but not what the Op computes: the scan, and a warning
    # naming why (for the forced loop and for the free-running one).
    caught = _fallback_warnings('fused', teacher_force=True, depth=2)
    assert len(caught) == 2 and any('got depth 2' in c for c in caught), caught
    assert not _fallback_warnings('auto', teacher_force=True, depth=2)


def test_unsupported_reasons():
    for kwargs, words in [(dict(depth=2), 'depth 2'), (dict(peek=True), 'peek'),
                          (dict(cell='gru'), 'got gru'),
                          (dict(truncate_gradient=2), 'truncate_gradient=2'),
                          (dict(activation='relu'), 'activation tanh only'),
                          (dict(inner_activation='relu'), 'inner_activation')]:
        layer = AttentionDecoder(3, 6, 4, teacher_force=True, **kwargs)
        reason = layer.decoder.fused_reason(TEACHER_FORCED,
                                            truncate_gradient=layer.truncate_gradient)
        assert reason is not None and words in reason, (kwargs, reason)
        assert 'fused attention decoder' in reason, reason
    for kwargs in [dict(inner_activation='sigmoid'), dict(dropout=0.5)]:
        layer = AttentionDecoder(3, 6, 4, teacher_force=True, **kwargs)
        assert layer.decoder.fused_reason(TEACHER_FORCED) is None, kwargs
    assert 'teacher-forced' in layer.decoder.fused_reason(FREE_RUNNING)
