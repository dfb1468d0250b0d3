"""The fused GRU (seq2seq.ops.fused_gru) against the scan loop of the same
GRU layers and against its numpy reference (seq2seq.ops.numpy_reference).

float64 compares exact maths (the C code uses the C library's tanh there):
outputs and gradients equal to 1e-10. Every comparison of a fused path
first checks that the graph really holds the GRU Op, so that a wiring that
silently ran the scan twice cannot pass.
"""
import warnings

import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from keras.layers import Input
from numpy.testing import assert_allclose
from theano.scan.op import Scan

from seq2seq import BidirectionalEncoder, LSTMEncoder
from seq2seq.layers.cells import GRUCell, LSTMCell
from seq2seq.layers.recurrent import FusedFallbackWarning, encoder_fused_reason
from seq2seq.models import SimpleSeq2Seq
from seq2seq.ops import fused_gru
from seq2seq.ops import numpy_reference as op_ref
from seq2seq.ops.fused_gru import GRUForward, GRUGrad
from tests import numpy_reference as ref
from tests.helpers import assert_raises_with, float64, random_array

EXACT = dict(rtol=1e-10, atol=1e-12)
FLOAT32 = dict(rtol=1e-5, atol=1e-5)

# (batch 3, time 6): right padding, a hole, and a sequence of padding only.
MASK = np.array([[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]], dtype='int8')


def _op_types(outputs):
    """The types of the Ops in the graph of `outputs`."""
    return set(type(node.op) for node in theano.gof.graph.io_toposort(
        theano.gof.graph.inputs(outputs), outputs))


def _assert_runs(outputs, fused):
    """The graph of `outputs` runs the GRU on GRUForward (fused) or in a scan."""
    types = _op_types(outputs)
    has_op = GRUForward in types
    has_scan = Scan in types
    assert has_op == fused and has_scan != fused, (fused, sorted(t.__name__ for t in types))


def _gru_layer_results(implementation, x, mask=None, **kwargs):
    """Outputs, and d (sum of outputs * fixed weights) / d [kernel,
    recurrent_kernel, bias, input], of LSTMEncoder(cell='gru'), with the
    weights of `kwargs['weights']` when given. Returns (values, weights)."""
    weights = kwargs.pop('weights', None)
    layer = LSTMEncoder(output_dim=5, return_sequences=True, cell='gru',
                        implementation=implementation, **kwargs)
    inputs = Input(x.shape[1:])
    mask_input = K.placeholder((None, x.shape[1]))
    outputs = layer(inputs, mask=mask_input) if mask is not None else layer(inputs)
    if weights is not None:
        layer.set_weights(weights)
    _assert_runs([outputs], fused=implementation == 'fused')
    output_weights = random_array(x.shape[0], x.shape[1], 5, seed=7).astype(K.floatx())
    grads = K.gradients(K.sum(outputs * output_weights), layer.trainable_weights + [inputs])
    feeds = [inputs] + ([mask_input] if mask is not None else [])
    values = K.function(feeds, [outputs] + grads)(
        [x.astype(K.floatx())] + ([mask] if mask is not None else []))
    return values, layer.get_weights(), output_weights


def _numpy_layer_results(x, weights, output_weights, mask, go_backwards, inner_activation):
    """What `_gru_layer_results` computes, with the numpy reference loops."""
    kernel, recurrent_kernel, bias = weights
    steps = slice(None, None, -1) if go_backwards else slice(None)
    projected = (x.dot(kernel) + bias).transpose(1, 0, 2)[steps]      # (time, batch, 3u)
    time_mask = None if mask is None else mask.T[steps]                # (time, batch)
    h0 = np.zeros((x.shape[0], recurrent_kernel.shape[0]))
    h_seq, gates = op_ref.gru_forward(projected, h0, recurrent_kernel, time_mask,
                                      inner_activation)
    d_projected, _, d_recurrent = op_ref.gru_backward(
        h0, recurrent_kernel, h_seq, gates, output_weights.transpose(1, 0, 2), time_mask,
        inner_activation)
    d_projected = d_projected[steps].transpose(1, 0, 2)                # (batch, time, 3u)
    d_kernel = np.einsum('bti,btg->ig', x, d_projected)
    return [h_seq.transpose(1, 0, 2), d_kernel, d_recurrent, d_projected.sum(axis=(0, 1)),
            d_projected.dot(kernel.T)]


def _check_layer(mask=None, go_backwards=False, inner_activation='hard_sigmoid'):
    with float64():
        x = random_array(3, 6, 4, seed=1)
        kwargs = dict(go_backwards=go_backwards, inner_activation=inner_activation)
        scan, weights, output_weights = _gru_layer_results('scan', x, mask, **kwargs)
        fused, _, _ = _gru_layer_results('fused', x, mask, weights=weights, **kwargs)
    numpy = _numpy_layer_results(x, weights, output_weights, mask, go_backwards,
                                 inner_activation)
    names = ['outputs', 'd kernel', 'd recurrent_kernel', 'd bias', 'd inputs']
    for name, f, s, n in zip(names, fused, scan, numpy):
        assert np.abs(s).max() > 0, 'nothing reached %s' % name
        assert_allclose(f, s, err_msg='fused/scan ' + name, **EXACT)
        assert_allclose(f, n, err_msg='fused/numpy ' + name, **EXACT)
    return fused[0]


# -- the encoder layer: fused = scan = numpy, at float64 ---------------------------

def test_encoder_matches_scan_and_numpy():
    _check_layer()


def test_masked_encoder_matches_scan_and_numpy():
    outputs = _check_layer(mask=MASK)
    # The padded steps did carry the state over (the mask mattered).
    assert_allclose(outputs[0, 4], outputs[0, 3], rtol=0, atol=0)
    assert_allclose(outputs[2], 0, rtol=0, atol=0)
    assert np.abs(outputs[1, 1] - outputs[1, 0]).max() == 0


def test_backwards_masked_encoder_with_sigmoid_gates_matches_scan_and_numpy():
    _check_layer(mask=MASK, go_backwards=True, inner_activation='sigmoid')


def test_fused_encoder_matches_the_independent_numpy_gru_loop():
    # tests/numpy_reference.gru_encoder is written from the equations,
    # without the package's numpy step.
    with float64():
        x = random_array(2, 5, 3, seed=2)
        layer = LSTMEncoder(output_dim=4, return_sequences=True, cell='gru',
                            implementation='fused')
        inputs = Input((5, 3))
        outputs = layer(inputs)
        _assert_runs([outputs], fused=True)
        got = K.function([inputs], [outputs])([x])[0]
    assert_allclose(got, ref.gru_encoder(x, layer.get_weights())[0], **EXACT)


def test_float32_encoder_is_close_to_float64():
    x = random_array(3, 6, 4, seed=3)
    with float64():
        exact, weights, _ = _gru_layer_results('fused', x, MASK)
    assert K.floatx() == 'float32'
    weights32 = [w.astype('float32') for w in weights]
    for implementation in ('fused', 'scan'):
        got, _, _ = _gru_layer_results(implementation, x, MASK, weights=weights32)
        for name, g, e in zip(['outputs', 'd kernel', 'd recurrent_kernel', 'd bias',
                               'd inputs'], got, exact):
            assert g.dtype == np.float32, name
            assert_allclose(g, e, err_msg='%s %s' % (implementation, name), **FLOAT32)


def test_auto_runs_the_fused_gru():
    layer = LSTMEncoder(output_dim=3, cell='gru')
    assert layer.implementation == 'auto'
    _assert_runs([layer(Input((4, 2)))], fused=True)
    bidirectional = BidirectionalEncoder(output_dim=6, cell='gru')
    outputs = bidirectional(Input((4, 2)))
    _assert_runs([outputs], fused=True)
    assert sum(isinstance(node.op, GRUForward) for node in theano.gof.graph.io_toposort(
        theano.gof.graph.inputs([outputs]), [outputs])) == 2


# -- the Op ------------------------------------------------------------------------------

def _op_values(rng, time=4, batch=3, units=2):
    # Small weights keep hard_sigmoid's input inside (-2.5, 2.5), away from
    # its kinks, where finite differences are meaningless.
    return [rng.uniform(-1, 1, (time, batch, 3 * units)), rng.uniform(-0.5, 0.5, 3 * units),
            rng.uniform(-1, 1, (batch, units)), rng.uniform(-0.3, 0.3, (units, 3 * units))]


def _verify_op_grad(inner_activation, mask=None, last_h_only=False):
    rng = np.random.RandomState(3)
    with float64():
        def sequence(projected, bias, h0, recurrent_kernel):
            h_seq = fused_gru.gru_sequence(
                projected, h0, recurrent_kernel, inner_activation=inner_activation, bias=bias,
                mask=None if mask is None else T.constant(mask, dtype='int8'))
            return h_seq[-1] if last_h_only else h_seq
        theano.gradient.verify_grad(sequence, _op_values(rng), rng=rng)


def test_op_gradients_are_the_numeric_ones():
    _verify_op_grad('hard_sigmoid')
    _verify_op_grad('sigmoid')
    _verify_op_grad('hard_sigmoid', mask=np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]]))
    _verify_op_grad('sigmoid', last_h_only=True)   # h_seq[:-1] gets no gradient from outside


def test_hard_sigmoid_gradient_on_its_bounds_is_theanos():
    # Theano's clip passes the gradient at 0.2 z + 0.5 == 0 and == 1 too.
    with float64():
        units = 2
        projected, h0 = T.tensor3(), T.matrix()
        # U_zr = 0 keeps the gates' pre-activations exactly the projected
        # values; U_h != 0 lets the reset gate's gradient through.
        kernel = T.concatenate([T.zeros((units, 2 * units)),
                                T.constant(np.array([[0.3, -0.2], [0.1, 0.4]]))], axis=1)
        h_seq = fused_gru.gru_sequence(projected, h0, kernel)
        z = projected[0]
        update, reset = T.nnet.hard_sigmoid(z[:, :units]), T.nnet.hard_sigmoid(z[:, units:2 * units])
        candidate = T.tanh(z[:, 2 * units:] + T.dot(reset * h0, kernel[:, 2 * units:]))
        h = update * h0 + (1 - update) * candidate
        f = theano.function([projected, h0],
                            [T.grad(h_seq.sum(), projected)[0] - T.grad(h.sum(), z),
                             T.grad(h.sum(), z)])
        # z_z and z_r on the bounds (-2.5, 2.5) and just outside them.
        difference, theanos = f(np.array([[[2.5, -2.5, -2.5, 2.5000001, 0.3, -0.4]]]),
                                np.array([[0.7, -0.9]]))
    assert_allclose(difference, 0, atol=1e-12)
    # The case is the bounds': on the upper one the gradient passes, just
    # outside it does not (on the lower one, 0.2 z + 0.5 rounds either way).
    assert theanos[0, 0] != 0 and theanos[0, 3] == 0, theanos


def _c_and_numpy(dtype, values, variables, outputs):
    return [theano.function(variables, outputs, mode=theano.compile.Mode(linker=linker))(*values)
            for linker in ('cvm', 'py')]


def test_c_code_matches_numpy_perform():
    for dtype, tolerance in [('float64', EXACT), ('float32', dict(rtol=1e-5, atol=1e-6))]:
        for inner_activation in ('hard_sigmoid', 'sigmoid'):
            rng = np.random.RandomState(5)
            values = [v.astype(dtype) for v in _op_values(rng, time=5, units=4)]
            values[0] *= 3     # beyond hard_sigmoid's linear part too
            values.append(np.array(rng.rand(5, 3) > 0.3, dtype='int8'))
            variables = [T.tensor3(dtype=dtype), T.vector(dtype=dtype), T.matrix(dtype=dtype),
                         T.matrix(dtype=dtype), T.bmatrix()]
            h_seq = fused_gru.gru_sequence(variables[0], variables[2], variables[3],
                                           mask=variables[4], bias=variables[1],
                                           inner_activation=inner_activation)
            weights = rng.randn(5, 3, 4).astype(dtype)
            grads = T.grad(T.sum(h_seq * weights), variables[:4])
            c_results, numpy_results = _c_and_numpy(dtype, values, variables, [h_seq] + grads)
            for name, c, n in zip(['h_seq', 'd projected', 'd bias', 'd h0', 'd kernel'],
                                  c_results, numpy_results):
                assert c.dtype == dtype and np.abs(n).max() > 0, name
                assert_allclose(c, n, err_msg='%s %s %s' % (dtype, inner_activation, name),
                                **tolerance)


def test_empty_sequences_and_batches():
    # No step, or no row: empty sequences, and gradients of the right shapes, all 0.
    for time, batch in [(0, 2), (3, 0)]:
        values = [np.ones((time, batch, 6)), np.ones(6), np.ones((batch, 2)), np.ones((2, 6))]
        variables = [T.tensor3(dtype='float64'), T.vector(dtype='float64'),
                     T.matrix(dtype='float64'), T.matrix(dtype='float64')]
        h_seq = fused_gru.gru_sequence(variables[0], variables[2], variables[3], bias=variables[1])
        outputs = [h_seq] + T.grad(h_seq.sum(), variables)
        for got in _c_and_numpy('float64', values, variables, outputs):
            assert [g.shape for g in got] == [(time, batch, 2), (time, batch, 6), (6,),
                                              (batch, 2), (2, 6)]
            for g in got[1:]:
                assert_allclose(g, 0)


def test_wrong_shapes_are_refused_by_name():
    variables = [T.tensor3(dtype='float64'), T.matrix(dtype='float64'), T.matrix(dtype='float64')]
    h_seq = fused_gru.gru_sequence(*variables)
    f = theano.function(variables, h_seq)
    assert_raises_with(ValueError, lambda: f(np.ones((2, 3, 6)), np.ones((3, 2)), np.ones((2, 8))),
                       'fused GRU', 'recurrent_kernel (units, 3 units)')
    assert_raises_with(ValueError, lambda: f(np.ones((2, 3, 6)), np.ones((3, 3)), np.ones((2, 6))),
                       'fused GRU', 'h0 (batch, units)')


def test_op_arguments_are_checked():
    assert_raises_with(ValueError, lambda: GRUForward('tanh'), 'inner_activation', "'tanh'")
    assert_raises_with(TypeError, lambda: GRUForward(masked=1), 'masked')
    x3, x2, x1 = T.tensor3(), T.matrix(), T.vector()
    assert_raises_with(TypeError, lambda: GRUForward(masked=True)(x3, x1, x2, x2), 'pass a mask')
    assert_raises_with(TypeError, lambda: GRUForward()(x3, x1, x2, T.tensor3()),
                       'recurrent_kernel', '2-d')
    assert_raises_with(TypeError, lambda: GRUForward()(x3, x1, x2, T.imatrix()),
                       'recurrent_kernel', 'dtype')
    # h_seq's gradient is GRUGrad's; the gates output is for it only.
    h_seq, gates = GRUForward()(x3, x1, x2, x2)
    assert GRUGrad in _op_types(T.grad(h_seq.sum(), [x3, x1, x2]))
    assert_raises_with(Exception, lambda: T.grad(gates.sum(), x3), 'gates output')


# -- fallbacks ---------------------------------------------------------------------------

def _fallback_messages(make_layer):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        outputs = make_layer()(Input((4, 2)))
    _assert_runs([outputs], fused=False)
    return [str(w.message) for w in caught if issubclass(w.category, FusedFallbackWarning)]


def test_unsupported_settings_fall_back_to_scan_with_a_reason():
    cases = [(dict(activation='relu'), 'the fused GRU supports activation tanh only, got relu'),
             (dict(inner_activation='tanh'),
              'the fused GRU supports inner_activation hard_sigmoid or sigmoid only, got tanh'),
             (dict(truncate_gradient=2),
              'the fused GRU back-propagates through every step; truncate_gradient=2 needs '
              'the scan loop')]
    for kwargs, reason in cases:
        messages = _fallback_messages(
            lambda: LSTMEncoder(output_dim=3, cell='gru', implementation='fused', **kwargs))
        assert messages == ["implementation='fused' falls back to the scan loop: " + reason], \
            messages
        # 'auto' falls back without a word.
        assert _fallback_messages(
            lambda: LSTMEncoder(output_dim=3, cell='gru', **kwargs)) == [], kwargs


def test_unsupported_reasons():
    assert fused_gru.unsupported_reason(GRUCell(3).kernel_spec()) is None
    assert fused_gru.unsupported_reason(GRUCell(3, inner_activation='sigmoid').kernel_spec()) \
        is None
    assert fused_gru.unsupported_reason(GRUCell(3).kernel_spec(), dtype='float16') == \
        'the fused GRU supports float32 and float64 only, got float16'
    assert fused_gru.unsupported_reason(LSTMCell(3).kernel_spec()) == \
        'the fused GRU runs a GRU cell, got lstm'
    # The encoder picks the Op by the cell's kind.
    assert encoder_fused_reason(GRUCell(3).kernel_spec()) is None
    assert encoder_fused_reason(LSTMCell(3).kernel_spec()) is None
    assert 'the fused GRU' in encoder_fused_reason(GRUCell(3, activation='relu').kernel_spec())

    # A subclass with its own maths is not a GRU to the kernel.
    class ResetAfterCell(GRUCell):
        def step(self, projected_t, states_tm1):
            return GRUCell.step(self, projected_t, states_tm1)
    assert encoder_fused_reason(ResetAfterCell(3).kernel_spec()) == \
        "the fused encoders run LSTM and GRU cells, got ResetAfterCell, whose step is not " \
        "GRUCell's"


# -- a GRU model --------------------------------------------------------------------------

def _model_results(implementation, tokens, weights=None):
    """SimpleSeq2Seq(cell='gru') over padded token ids (every layer of it a
    GRU encoder: the masked first, reversed, one; the decoder stack), its
    outputs and d (weighted sum of outputs) / d every trainable weight."""
    model = SimpleSeq2Seq(output_dim=3, output_length=4, hidden_dim=5, input_length=6,
                          input_dim=4, source_vocab_size=9, depth=(2, 2), cell='gru',
                          reverse_input=True, implementation=implementation)
    if weights is not None:
        model.set_weights(weights)
    _assert_runs([model.output], fused=implementation != 'scan')
    output_weights = random_array(tokens.shape[0], 4, 3, seed=4)
    grads = K.gradients(K.sum(model.output * output_weights), model.trainable_weights)
    values = K.function([model.input], [model.output] + grads)([tokens])
    return values, model.get_weights(), [w.name for w in model.trainable_weights]


def test_gru_model_matches_its_scan_twin():
    tokens = np.array([[3, 1, 4, 1, 5, 0], [2, 7, 0, 0, 0, 0], [8, 6, 2, 6, 4, 3]])
    with float64():
        scan, weights, names = _model_results('scan', tokens)
        fused, _, _ = _model_results('auto', tokens, weights)
    assert len(fused) == len(names) + 1
    for name, f, s in zip(['outputs'] + names, fused, scan):
        assert np.abs(s).max() > 0, 'nothing reached %s' % name
        assert_allclose(f, s, err_msg=name, **EXACT)
