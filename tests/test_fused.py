"""implementation='fused' (seq2seq.ops.fused_lstm) against the scan loops.

The scan loops are the reference (tests/test_reference.py checks them against
numpy); here the fused path must give the same outputs and the same gradients
on the same weights, in float32 to 1e-5.
"""
import warnings

import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from keras.layers import Input
from keras.models import Sequential
from keras.optimizers import Adam
from numpy.testing import assert_allclose

from seq2seq import LSTMDecoder, LSTMDecoder2, LSTMEncoder, Seq2seq
from seq2seq.ops import fused_lstm as fused
from seq2seq.layers.recurrent import FusedFallbackWarning
from tests.helpers import float64, random_array, use_dropout_masks
from nose.plugins.attrib import attr

TOL = dict(rtol=1e-5, atol=1e-5)


def _as_floatx(*arrays):
    return [np.asarray(a, dtype=K.floatx()) for a in arrays]


def _twin_layers(make_layer, make_inputs, mask=None):
    """The same layer with implementation 'scan' and 'fused', equal weights.

    Returns {implementation: (layer, inputs, outputs)}.
    """
    built = {}
    for implementation in ('scan', 'fused'):
        layer = make_layer(implementation)
        inputs = make_inputs()
        outputs = layer(inputs, mask=mask) if mask is not None else layer(inputs)
        built[implementation] = (layer, inputs if isinstance(inputs, list) else [inputs], outputs)
    built['fused'][0].set_weights(built['scan'][0].get_weights())
    return built


def _check_outputs_match(make_layer, make_inputs, values, mask=None, mask_value=None):
    built = _twin_layers(make_layer, make_inputs, mask)
    extra = [mask] if mask is not None else []
    extra_values = [mask_value] if mask is not None else []
    results = {}
    for implementation, (layer, inputs, outputs) in built.items():
        f = K.function(inputs + extra, [outputs], updates=layer.updates)
        results[implementation] = f(_as_floatx(*values) + extra_values)[0]
    assert_allclose(results['fused'], results['scan'], **TOL)
    return results['scan']


def _check_gradients_match(make_layer, make_inputs, values, mask=None, mask_value=None):
    """d loss / d every weight (and input) equal for scan and fused."""
    built = _twin_layers(make_layer, make_inputs, mask)
    extra = [mask] if mask is not None else []
    extra_values = [mask_value] if mask is not None else []
    grads = {}
    for implementation, (layer, inputs, outputs) in built.items():
        # A weighted sum, so that every output step and unit matters differently.
        weights = random_array(*K.int_shape(outputs)[1:], seed=7).astype(K.floatx())
        loss = T.sum(outputs * weights)
        wrt = layer.trainable_weights + inputs
        f = K.function(inputs + extra, K.gradients(loss, wrt))
        grads[implementation] = f(_as_floatx(*values) + extra_values)
    names = [w.name for w in built['scan'][0].trainable_weights] + ['input'] * len(values)
    assert len(grads['fused']) == len(names)
    for name, fused_grad, scan_grad in zip(names, grads['fused'], grads['scan']):
        assert np.abs(scan_grad).max() > 0, 'no gradient reached %s' % name
        assert_allclose(fused_grad, scan_grad, err_msg=name, **TOL)


# -- outputs -------------------------------------------------------------------

def test_encoder_final_state_matches_scan():
    _check_outputs_match(lambda impl: LSTMEncoder(output_dim=6, implementation=impl),
                         lambda: Input((5, 4)), [random_array(3, 5, 4)])


def test_encoder_sequence_matches_scan():
    _check_outputs_match(
        lambda impl: LSTMEncoder(output_dim=5, return_sequences=True, implementation=impl),
        lambda: Input((7, 3)), [random_array(2, 7, 3)])


def test_masked_encoder_matches_scan():
    mask = K.placeholder((None, 6))
    mask_value = np.array([[1, 1, 1, 1, 0, 0], [1, 0, 1, 1, 1, 1], [0, 0, 0, 0, 0, 0]])
    got = _check_outputs_match(
        lambda impl: LSTMEncoder(output_dim=4, return_sequences=True, implementation=impl),
        lambda: Input((6, 3)), [random_array(3, 6, 3)], mask=mask, mask_value=mask_value)
    # The padded steps did carry the state over (the mask mattered).
    assert_allclose(got[0, 4], got[0, 3])
    assert_allclose(got[2], 0)


def test_backwards_encoder_matches_scan():
    _check_outputs_match(
        lambda impl: LSTMEncoder(output_dim=4, return_sequences=True, go_backwards=True,
                                 implementation=impl),
        lambda: Input((6, 3)), [random_array(2, 6, 3)])


def test_feedback_decoder_matches_scan():
    _check_outputs_match(
        lambda impl: LSTMDecoder(dim=3, hidden_dim=5, output_length=6, implementation=impl),
        lambda: [Input((3,)), Input((5,)), Input((5,))],
        [random_array(2, 3), random_array(2, 5, seed=1), random_array(2, 5, seed=2)])


def test_decoder_of_one_step_matches_scan():
    _check_outputs_match(
        lambda impl: LSTMDecoder(dim=3, hidden_dim=5, output_length=1, implementation=impl),
        lambda: Input((3,)), [random_array(2, 3)])


def test_cho_decoder_matches_scan():
    _check_outputs_match(
        lambda impl: LSTMDecoder2(dim=3, hidden_dim=5, output_length=4, implementation=impl),
        lambda: Input((3,)), [random_array(2, 3)])


def test_seq2seq_matches_scan():
    _check_outputs_match(
        lambda impl: Seq2seq(input_length=5, input_dim=3, hidden_dim=6, output_dim=4,
                             output_length=7, depth=(2, 3), implementation=impl),
        lambda: Input((5, 3)), [random_array(2, 5, 3)])


def _free_running_stack(depth, peek, state_input=False, cell='lstm'):
    from seq2seq import RecurrentDecoder

    def make_layer(implementation):
        return RecurrentDecoder(3, 5, 4, depth=depth, peek=peek, state_input=state_input,
                                inner_activation='sigmoid', implementation=implementation,
                                cell=cell)

    n_states = 1 if cell == 'gru' else 2

    def make_inputs():
        return ([Input((3,))] + [Input((5,)) for _ in range(n_states)] if state_input
                else Input((3,)))
    values = [random_array(2, 3)] + ([random_array(2, 5, seed=1 + k) for k in range(n_states)]
                                     if state_input else [])
    return make_layer, make_inputs, values


def _assert_free_running_stack_matches_scan(depth, peek, state_input, gradients, cell='lstm'):
    make_layer, make_inputs, values = _free_running_stack(depth, peek, state_input, cell)
    built = _twin_layers(make_layer, make_inputs)
    layer, inputs, outputs = built['fused']
    ops = [type(n.op).__name__ for n in
           K.function(inputs, [outputs]).function.maker.fgraph.toposort()]
    assert 'AttentionForward' in ops and 'Scan' not in ops, ops
    _check_outputs_match(make_layer, make_inputs, values)
    if gradients:
        _check_gradients_match(make_layer, make_inputs, values)


def test_free_running_stack_matches_scan():
    """A free-running stack of cells without attention (farizrahman4u's
    Seq2Seq with depth > 1) runs fused, attending to an empty memory: the
    scan's outputs, from a given state."""
    _assert_free_running_stack_matches_scan(2, peek=False, state_input=True, gradients=False)


@attr('slow')
def test_free_running_stack_gradients_match_scan():
    """... and every gradient, with peek, two and three cells."""
    _assert_free_running_stack_matches_scan(2, peek=False, state_input=True, gradients=True)
    _assert_free_running_stack_matches_scan(3, peek=True, state_input=False, gradients=True)


def test_free_running_gru_decoder_matches_scan():
    """A free-running GRU decoder without attention runs fused in the
    attention Op over an empty memory: the scan's outputs and gradients,
    from a given state."""
    _assert_free_running_stack_matches_scan(1, peek=False, state_input=True, gradients=True,
                                            cell='gru')


@attr('slow')
def test_free_running_gru_stack_with_peek_matches_scan():
    _assert_free_running_stack_matches_scan(2, peek=True, state_input=False, gradients=True,
                                            cell='gru')


def test_sigmoid_gates_match_scan():
    _check_outputs_match(
        lambda impl: LSTMEncoder(output_dim=4, return_sequences=True,
                                 inner_activation='sigmoid', implementation=impl),
        lambda: Input((5, 3)), [random_array(2, 5, 3)])


# -- gradients -------------------------------------------------------------------


@attr('slow')
def test_seq2seq_gradients_match_scan():
    mask = K.placeholder((None, 5))
    _check_gradients_match(
        lambda impl: Seq2seq(input_length=5, input_dim=3, hidden_dim=6, output_dim=4,
                             output_length=4, depth=(2, 3), implementation=impl),
        lambda: Input((5, 3)), [random_array(3, 5, 3)],
        mask=mask, mask_value=np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 0, 1, 1, 0]]))


def test_backwards_encoder_gradients_match_scan():
    _check_gradients_match(
        lambda impl: LSTMEncoder(output_dim=4, return_sequences=True, go_backwards=True,
                                 inner_activation='sigmoid', implementation=impl),
        lambda: Input((5, 3)), [random_array(2, 5, 3)])


def test_cho_decoder_gradients_match_scan():
    _check_gradients_match(
        lambda impl: LSTMDecoder2(dim=3, hidden_dim=5, output_length=4, implementation=impl),
        lambda: [Input((3,)), Input((5,)), Input((5,))],
        [random_array(2, 3), random_array(2, 5, seed=1), random_array(2, 5, seed=2)])


def _op_inputs(rng, time, batch, units, projected_range=1.0):
    return [rng.uniform(-projected_range, projected_range, (time, batch, 4 * units)),
            rng.uniform(-1, 1, (batch, units)), rng.uniform(-1, 1, (batch, units)),
            # Small weights keep hard_sigmoid's input inside (-2.5, 2.5),
            # away from its kinks, where finite differences are meaningless.
            rng.uniform(-0.3, 0.3, (units, 4 * units))]


def _verify_op_grad(inner_activation, mask=None, last_h_only=False):
    rng = np.random.RandomState(3)
    with float64():
        def sequence(projected, h0, c0, recurrent_kernel):
            h_seq, c_seq = fused.lstm_sequence(
                projected, h0, c0, recurrent_kernel, inner_activation=inner_activation,
                mask=None if mask is None else T.constant(mask, dtype='int8'))
            if last_h_only:  # c_seq and most of h_seq get no gradient
                return h_seq[-1]
            return T.concatenate([h_seq, c_seq], axis=2)
        theano.gradient.verify_grad(sequence, _op_inputs(rng, 4, 3, 2), rng=rng)


def test_op_gradient_hard_sigmoid():
    _verify_op_grad('hard_sigmoid')


def test_op_gradient_sigmoid():
    _verify_op_grad('sigmoid')


def test_op_gradient_with_mask():
    _verify_op_grad('hard_sigmoid', mask=np.array([[1, 1, 0], [0, 1, 1], [1, 0, 1], [1, 1, 0]]))


def test_op_gradient_of_the_last_h_only():
    _verify_op_grad('sigmoid', last_h_only=True)


def test_hard_sigmoid_gradient_on_its_bounds_is_theanos():
    # Theano's clip passes the gradient at 0.2 z + 0.5 == 0 and == 1 too.
    with float64():
        units = 2
        projected = T.tensor3()
        h0 = T.zeros((1, units))
        kernel = T.zeros((units, 4 * units))
        h_seq, c_seq = fused.lstm_sequence(projected, h0, h0, kernel)
        z = projected[0]
        i, f = T.nnet.hard_sigmoid(z[:, :units]), T.nnet.hard_sigmoid(z[:, units:2 * units])
        o = T.nnet.hard_sigmoid(z[:, 3 * units:])
        c = f * 0 + i * T.tanh(z[:, 2 * units:3 * units])
        h = o * T.tanh(c)
        f = theano.function([projected], T.grad(h_seq.sum(), projected)[0] - T.grad(h.sum(), z))
        # z_i, z_o on the bounds (-2.5, 2.5) and just outside them.
        value = np.array([[[2.5, -2.5, 0, 0, 0.3, -0.4, 2.5, 2.5000001]]])
        assert_allclose(f(value), 0, atol=1e-12)


def test_c_code_matches_numpy_perform():
    rng = np.random.RandomState(5)
    values = _op_inputs(rng, 5, 3, 4, projected_range=3.0) + \
        [np.array(rng.rand(5, 3) > 0.3, dtype='int8')]
    values = [v.astype('float32') if v.dtype == np.float64 else v for v in values]
    variables = [T.tensor3('float32'), T.matrix('float32'), T.matrix('float32'),
                 T.matrix('float32'), T.bmatrix()]
    h_seq, c_seq = fused.lstm_sequence(*variables)
    weights = rng.randn(5, 3, 4).astype('float32')
    grads = T.grad(T.sum(h_seq * weights) + T.sum(c_seq[-1]), variables[:4])
    results = [theano.function(variables, [h_seq, c_seq] + grads,
                               mode=theano.compile.Mode(linker=linker))(*values)
               for linker in ('cvm', 'py')]
    for c_result, numpy_result in zip(*results):
        assert_allclose(c_result, numpy_result, rtol=1e-5, atol=1e-6)


def _broadcast_case(rng, bt, bb, time=4, batch=3, units=2):
    """Inputs of lstm_sequence with a bias and a projected input shared
    over time (bt) and/or the batch (bb)."""
    projected = rng.uniform(-1, 1, (1 if bt else time, 1 if bb else batch, 4 * units))
    values = [projected, rng.uniform(-0.5, 0.5, 4 * units), rng.uniform(-1, 1, (batch, units)),
              rng.uniform(-1, 1, (batch, units)), rng.uniform(-0.3, 0.3, (units, 4 * units))]
    return time, values


def test_c_code_with_bias_and_broadcast_projected_matches_numpy():
    rng = np.random.RandomState(11)
    for bt, bb in [(False, False), (True, False), (False, True), (True, True)]:
        time, values = _broadcast_case(rng, bt, bb)
        values = [v.astype('float32') for v in values]
        projected = T.TensorType('float32', (bt, bb, False))('projected')
        variables = [projected, T.vector('bias', 'float32'), T.matrix('h0', 'float32'),
                     T.matrix('c0', 'float32'), T.matrix('kernel', 'float32')]
        h_seq, c_seq = fused.lstm_sequence(variables[0], *variables[2:], bias=variables[1],
                                           n_steps=time)
        weights = rng.randn(time, 3, 2).astype('float32')
        grads = T.grad(T.sum(h_seq * weights) + T.sum(c_seq[-1]), variables)
        results = [theano.function(variables, [h_seq, c_seq] + grads,
                                   mode=theano.compile.Mode(linker=linker))(*values)
                   for linker in ('cvm', 'py')]
        # The numpy perform expands projected + bias to every step and row.
        expanded = np.broadcast_to(values[0] + values[1], (time, 3, 8))
        reference = fused.numpy_forward(expanded, values[2], values[3], values[4], None,
                                        'hard_sigmoid')
        assert_allclose(results[0][0], reference[0], rtol=1e-5, atol=1e-6,
                        err_msg='broadcast_time=%s broadcast_batch=%s' % (bt, bb))
        assert results[0][2].shape == values[0].shape, (bt, bb)
        for c_result, numpy_result in zip(*results):
            assert_allclose(c_result, numpy_result, rtol=1e-5, atol=1e-6,
                            err_msg='broadcast_time=%s broadcast_batch=%s' % (bt, bb))


def test_op_gradient_with_bias_and_context_shared_over_time():
    rng = np.random.RandomState(4)
    with float64():
        time, values = _broadcast_case(rng, True, False)

        def sequence(projected, bias, h0, c0, recurrent_kernel):
            projected = T.patternbroadcast(projected, (True, False, False))
            h_seq, c_seq = fused.lstm_sequence(projected, h0, c0, recurrent_kernel,
                                               bias=bias, n_steps=time)
            return T.concatenate([h_seq, c_seq], axis=2)
        theano.gradient.verify_grad(sequence, values, rng=rng)


def test_float32_tanh_is_within_3e_7_of_numpy():
    # With U = 0 and zero states, the gates output holds tanh(z_c) as the
    # Op computes it in float32 (a vectorised rational approximation).
    units = 4096
    z_c = np.linspace(-12, 12, units).astype('float32')
    projected = np.zeros((1, 1, 4 * units), dtype='float32')
    projected[0, 0, 2 * units:3 * units] = z_c
    zeros = np.zeros((1, units), dtype='float32')
    op = fused.LSTMForward()
    variables = [T.tensor3(dtype='float32'), T.vector(dtype='float32'),
                 T.matrix(dtype='float32'), T.matrix(dtype='float32'), T.matrix(dtype='float32')]
    gates = op(*(variables + [1]))[2]
    got = theano.function(variables, gates)(
        projected, np.zeros(4 * units, 'float32'), zeros, zeros,
        np.zeros((units, 4 * units), 'float32'))[0, 0, 2 * units:3 * units]
    assert np.abs(got - np.tanh(z_c.astype('float64'))).max() <= 3e-7
    assert np.all(np.abs(got) <= 1) and got[0] == -1 and got[-1] == 1
    assert_allclose(got[::-1], -got, rtol=0, atol=0)     # odd, like tanh


# -- training, configuration, fallbacks -----------------------------------------------

def test_fused_seq2seq_trains():
    rng = np.random.RandomState(0)
    x = rng.uniform(-1, 1, (32, 4, 3)).astype(K.floatx())
    y = x[:, ::-1, :2].copy()  # learn to reverse (part of) the sequence
    np.random.seed(0)
    model = Sequential([Seq2seq(input_length=4, input_dim=3, hidden_dim=8, output_dim=2,
                                output_length=4, implementation='fused')])
    model.compile(loss='mse', optimizer=Adam(lr=0.01))
    history = model.fit(x, y, batch_size=8, epochs=8, verbose=0, shuffle=False)
    losses = history.history['loss']
    assert losses[-1] < 0.9 * losses[0], losses


def test_implementation_is_in_the_config():
    layer = Seq2seq(input_length=4, input_dim=3, hidden_dim=5, output_dim=2,
                    output_length=3, implementation='fused')
    layer(Input((4, 3)))
    config = layer.get_config()
    assert config['implementation'] == 'fused'
    assert Seq2seq.from_config(config).implementation == 'fused'
    assert LSTMEncoder(output_dim=3).implementation == 'auto'


def test_unknown_implementation_is_refused():
    for make in [lambda: LSTMEncoder(output_dim=3, implementation='cudnn'),
                 lambda: LSTMDecoder2(dim=2, hidden_dim=3, output_length=2, implementation=None),
                 lambda: Seq2seq(hidden_dim=3, output_dim=2, output_length=2,
                                 implementation='Fused')]:
        try:
            make()
        except ValueError as error:
            assert 'implementation' in str(error) and "'scan', 'fused'" in str(error), error
        else:
            raise AssertionError('no ValueError')


@attr('slow')
def test_unsupported_cells_fall_back_to_scan_with_a_reason():
    cases = [(dict(activation='relu'), 'activation tanh'),
             (dict(inner_activation='tanh'), 'inner_activation'),
             (dict(truncate_gradient=2), 'truncate_gradient=2')]
    for kwargs, reason in cases:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            _check_outputs_match(
                lambda impl: LSTMEncoder(output_dim=3, implementation=impl, **kwargs),
                lambda: Input((4, 2)), [random_array(2, 4, 2)])
        messages = [str(w.message) for w in caught if issubclass(w.category, FusedFallbackWarning)]
        assert len(messages) == 1 and reason in messages[0], messages


def test_unsupported_reason():
    from seq2seq.layers.cells import GRUCell, LSTMCell
    assert fused.unsupported_reason(LSTMCell(3).kernel_spec()) is None
    assert fused.unsupported_reason(LSTMCell(3, inner_activation='sigmoid').kernel_spec()) is None
    assert 'float16' in fused.unsupported_reason(LSTMCell(3).kernel_spec(), dtype='float16')
    assert 'got gru' in fused.unsupported_reason(GRUCell(3).kernel_spec())

    # A subclass with its own maths is not an LSTM to the kernel: it would
    # silently lose its maths.
    class PeepholeCell(LSTMCell):
        def step(self, projected_t, states_tm1):
            return LSTMCell.step(self, projected_t, states_tm1)
    reason = fused.unsupported_reason(PeepholeCell(3).kernel_spec())
    assert "PeepholeCell, whose step is not LSTMCell's" in reason, reason

    class RenamedCell(LSTMCell):   # the same maths: still fused
        pass
    assert fused.unsupported_reason(RenamedCell(3).kernel_spec()) is None


_WITHOUT_BLAS_SCRIPT = '''
import numpy as np, theano, theano.tensor as T
import seq2seq
from seq2seq.ops import fused_lstm as fused
assert theano.config.blas.ldflags == ''
rng = np.random.RandomState(0)
values = [rng.uniform(-1, 1, shape).astype('float32')
          for shape in [(3, 2, 8), (8,), (2, 2), (2, 2), (2, 8)]]
variables = [T.tensor3(dtype='float32'), T.vector(dtype='float32')] + \\
    [T.matrix(dtype='float32') for _ in range(3)]
h_seq, _ = fused.lstm_sequence(variables[0], *variables[2:], bias=variables[1])
outputs = [h_seq] + T.grad(h_seq.sum(), variables)
got = [theano.function(variables, outputs, mode=theano.compile.Mode(linker=linker))(*values)
       for linker in ('cvm', 'py')]
for c_result, numpy_result in zip(*got):
    np.testing.assert_allclose(c_result, numpy_result, rtol=1e-5, atol=1e-6)
print('ok')
'''


@attr('slow')
def test_fused_op_works_when_theano_has_no_blas_library():
    # With blas.ldflags empty Theano supplies NumPy-based [sd]gemm_; the Op
    # must link against those (a const-pointer call once missed them).
    import os
    import subprocess
    import sys
    env = dict(os.environ, THEANO_FLAGS='blas.ldflags=,base_compiledir=%s'
               % theano.config.base_compiledir)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')
    process = subprocess.run([sys.executable, '-c', _WITHOUT_BLAS_SCRIPT], env=env, cwd=root,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             universal_newlines=True, timeout=900)
    assert process.returncode == 0 and process.stdout.strip() == 'ok', process.stderr[-3000:]


# -- a teacher-forced decoder without attention: one LSTMForward per cell ------

def _teacher_forced_graphs(dtype, depth, peek, dropout, readout_activation,
                           inner_activation, cell='lstm'):
    """A teacher-forced RecurrentDecoder run both ways on the same inputs,
    with given dropout masks (the last inputs, one per cell) when `dropout`.

    Returns (inputs, {implementation: [outputs, h and c of each cell,
    gradients...]}, names of those)."""
    from seq2seq import RecurrentDecoder
    first, teacher = Input((3,), dtype=dtype), Input((4, 3), dtype=dtype)
    layer = RecurrentDecoder(3, 5, 4, depth=depth, peek=peek, teacher_force=True,
                             dropout=dropout, readout_activation=readout_activation,
                             inner_activation=inner_activation, implementation='scan',
                             cell=cell)
    layer([first, teacher])                                           # builds the layer
    inputs = [first, teacher]
    if dropout:
        masks = [K.placeholder((None, 3 if k == 0 else 5), dtype=dtype) for k in range(depth)]
        use_dropout_masks(layer, masks)
        inputs += masks
    parts = layer.split_inputs([first, teacher])
    rng = np.random.RandomState(3)
    weights = [rng.uniform(-1, 1, shape).astype(dtype)
               for shape in [(2, 4, 3)] + [(2, 5)] * (2 * depth)]
    wrt = layer.trainable_weights + [first, teacher]
    states = 'h' if cell == 'gru' else 'hc'
    names = (['outputs'] + ['final %s of cell %d' % (s, k) for k in range(depth) for s in states]
             + ['d %s' % w.name for w in wrt])
    graphs = {}
    for implementation in ('scan', 'fused'):
        layer.implementation = implementation
        outputs, finals, _ = layer.run(parts, teacher=parts.teacher)
        results = [outputs] + [s for final in finals for s in final]
        cost = sum((r * w).sum() for r, w in zip(results, weights))
        graphs[implementation] = results + T.grad(cost, wrt)
    return inputs, graphs, names


def test_teacher_forced_decoder_without_attention_matches_scan():
    """One cell and a stack of two, with peek, a softmax or linear readout:
    the fused cells' outputs, every cell's final state and every gradient
    (the targets' too) are the scan's, and no scan is left in the graph."""
    _assert_teacher_forced_matches_scan([(1, False, 0.0, 'softmax', 'hard_sigmoid'),
                                         (2, True, 0.0, 'linear', 'sigmoid')])


def test_teacher_forced_gru_decoder_matches_scan():
    """The same for GRU cells: each cell one GRUForward."""
    _assert_teacher_forced_matches_scan([(2, True, 0.0, 'softmax', 'hard_sigmoid')], cell='gru')


@attr('slow')
def test_teacher_forced_decoder_with_dropout_matches_scan():
    """As above with dropout (given masks, one per cell), three cells too."""
    _assert_teacher_forced_matches_scan([(3, False, 0.3, 'softmax', 'sigmoid'),
                                         (2, True, 0.3, 'linear', 'hard_sigmoid')])
    _assert_teacher_forced_matches_scan([(2, False, 0.3, 'linear', 'sigmoid')], cell='gru')


def _assert_teacher_forced_matches_scan(cases, cell='lstm'):
    rng = np.random.RandomState(4)
    with float64():
        for depth, peek, dropout, readout_activation, inner_activation in cases:
            inputs, graphs, names = _teacher_forced_graphs('float64', depth, peek, dropout,
                                                           readout_activation,
                                                           inner_activation, cell)
            values = [rng.uniform(-1, 1, (2, 3)), rng.uniform(-1, 1, (2, 4, 3))]
            if dropout:
                values += [(rng.uniform(0, 1, (2, 3 if k == 0 else 5)) > 0.3) / 0.7
                           for k in range(depth)]
            scan = theano.function(inputs, graphs['scan'], mode='FAST_COMPILE')(*values)
            function = theano.function(inputs, graphs['fused'])
            ops = [type(n.op).__name__ for n in function.maker.fgraph.toposort()]
            op_name = 'GRUForward' if cell == 'gru' else 'LSTMForward'
            assert ops.count(op_name) == depth and 'Scan' not in ops, ops
            fused = function(*values)
            case = '%s depth %d peek %s dropout %s %s' % (cell, depth, peek, dropout,
                                                          readout_activation)
            assert len(names) == len(fused) == len(scan)
            for name, got, expected in zip(names, fused, scan):
                assert_allclose(got, expected, rtol=1e-9, atol=1e-10,
                                err_msg='%s: %s' % (case, name))


def test_teacher_forced_decoder_reasons():
    """A cell the fused encoders do not run or truncate_gradient keeps the
    scan, saying why; free running keeps its own rules (one cell, no
    dropout)."""
    from seq2seq import RecurrentDecoder
    from seq2seq.layers.decoder_core import FREE_RUNNING, TEACHER_FORCED
    stacked = RecurrentDecoder(3, 5, 4, depth=2, teacher_force=True, dropout=0.2)
    assert stacked.decoder.fused_reason(TEACHER_FORCED) is None
    assert 'without dropout' in stacked.decoder.fused_reason(FREE_RUNNING)
    assert RecurrentDecoder(3, 5, 4, depth=2).decoder.fused_reason(FREE_RUNNING) is None
    softmax = RecurrentDecoder(3, 5, 4, depth=2, readout_activation='softmax')
    assert 'linear readout' in softmax.decoder.fused_reason(FREE_RUNNING)
    gru = RecurrentDecoder(3, 5, 4, teacher_force=True, cell='gru')
    assert gru.decoder.fused_reason(TEACHER_FORCED) is None
    assert RecurrentDecoder(3, 5, 4, cell='gru').decoder.fused_reason(FREE_RUNNING) is None
    relu = RecurrentDecoder(3, 5, 4, teacher_force=True, activation='relu')
    reason = relu.decoder.fused_reason(TEACHER_FORCED)
    assert 'fused teacher-forced decoder' in reason and 'activation tanh only' in reason, \
        reason
    reason = stacked.decoder.fused_reason(TEACHER_FORCED, truncate_gradient=3)
    assert 'truncate_gradient=3' in reason, reason
