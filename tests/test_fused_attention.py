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
from tests.helpers import assert_raises_with, float64, use_dropout_masks
from nose.plugins.attrib import attr

TOLERANCES = {'float32': dict(rtol=1e-5, atol=1e-5), 'float64': dict(rtol=1e-9, atol=1e-10)}

# Memory masks (batch 4, length 5): right padding, left padding, none, and
# a sequence with nothing to attend to (alpha and context are then 0).
MASK = np.array([[1, 1, 1, 0, 0],
                 [0, 0, 1, 1, 1],
                 [1, 1, 1, 1, 1],
                 [0, 0, 0, 0, 0]], dtype='int8')


def _op_inputs(dtype, time=3, batch=4, units=3, length=5, m=4, a=2, seed=0, upper_units=(),
               feedback=False, cell='lstm'):
    """Random values of AttentionForward's inputs (projected ... mask, then
    per upper cell of `upper_units` W, b, dropout mask, h0, [c0,] U; with
    `feedback` then the feedback kernels F, G)."""
    rng = np.random.RandomState(seed)
    gates = fused_attention.CELL_GATES[cell]
    n_states = len(fused_attention.CELL_STATES[cell])

    def uniform(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype)

    top = upper_units[-1] if upper_units else units
    values = ([uniform(time, batch, gates * units)]
              + [uniform(batch, units) for _ in range(n_states)]
              + [uniform(units, gates * units), uniform(m, gates * units),
                 uniform(batch, length, m), uniform(batch, length, a), uniform(top, a),
                 uniform(a), MASK[:batch, :length]])
    below = units
    for cell_units in upper_units:
        # A dropout mask as K.dropout draws it: 0, or 1 / keep.
        dropout_mask = (rng.uniform(0, 1, (batch, below)) > 0.3) / 0.7
        values += ([uniform(below, gates * cell_units), uniform(gates * cell_units),
                    dropout_mask.astype(dtype)]
                   + [uniform(batch, cell_units) for _ in range(n_states)]
                   + [uniform(cell_units, gates * cell_units)])
        below = cell_units
    if feedback:
        values += [uniform(top, gates * units), uniform(m, gates * units)]
    return values


def _symbolic(values):
    return [T.TensorType(str(v.dtype), (False,) * v.ndim)() for v in values]


def _differentiable(inputs, cell='lstm'):
    """Every input of AttentionForward but the memory mask."""
    mask_at = fused_attention.memory_mask_index(cell)
    return inputs[:mask_at] + inputs[mask_at + 1:]


def _grad_op_inputs(values, cell='lstm'):
    """AttentionGrad's parameters from AttentionForward's inputs: all but
    projected and the memory projection."""
    n_states = len(fused_attention.CELL_STATES[cell])
    return values[1:4 + n_states] + values[5 + n_states:]


def _op_and_gradient(dtype, inner_activation, upper_units=(), feedback=False, cell='lstm'):
    """A compiled function: inputs and output gradients -> the visible
    outputs and the gradients of every differentiable input."""
    depth = 1 + len(upper_units)
    values = _op_inputs(dtype, upper_units=upper_units, feedback=feedback, cell=cell)
    inputs = _symbolic(values)
    outputs = AttentionForward(inner_activation, depth, feedback, cell)(
        *inputs)[:fused_attention.n_visible_outputs(depth, cell)]
    output_grads = [T.TensorType(dtype, (False,) * 3)() for _ in outputs]
    cost = sum((o * g).sum() for o, g in zip(outputs, output_grads))
    grads = T.grad(cost, _differentiable(inputs, cell))
    function = theano.function(inputs + output_grads, outputs + grads)
    assert any(isinstance(n.op, AttentionGrad) for n in function.maker.fgraph.toposort())
    return function, values


# One cell; two; three of different widths (the query reads the top one).
STACKS = [(), (3,), (2, 5)]


def test_op_matches_numpy_reference():
    _assert_op_matches_numpy_reference('lstm')


def test_gru_op_matches_numpy_reference():
    """GRU cells (one state, three gates, the reset gate before U_h)."""
    _assert_op_matches_numpy_reference('gru')


def _assert_op_matches_numpy_reference(cell):
    for dtype in ('float32', 'float64'):
        for inner_activation, upper_units, feedback in [
                ('hard_sigmoid', (), False), ('sigmoid', (), False),
                ('hard_sigmoid', (3,), False), ('sigmoid', (2, 5), False),
                ('hard_sigmoid', (), True), ('sigmoid', (2, 5), True)]:
            depth = 1 + len(upper_units)
            n_visible = fused_attention.n_visible_outputs(depth, cell)
            function, values = _op_and_gradient(dtype, inner_activation, upper_units, feedback,
                                                cell)
            forward = fused_attention.numpy_forward(values, inner_activation, depth, feedback,
                                                    cell)
            rng = np.random.RandomState(1)
            output_grads = [rng.uniform(-1, 1, o.shape).astype(dtype)
                            for o in forward[:n_visible]]
            got = function(*(values + output_grads))
            case = '%s %s %s depth %d feedback %s' % (cell, dtype, inner_activation, depth,
                                                      feedback)
            names = fused_attention.forward_output_names(depth, cell)
            for name, value, expected in zip(names, got[:n_visible], forward):
                assert_allclose(value, expected, err_msg='%s %s' % (case, name),
                                **TOLERANCES[dtype])
            backward = fused_attention.numpy_backward(
                _grad_op_inputs(values, cell) + list(forward) + output_grads,
                inner_activation, depth, feedback, cell)
            names = _differentiable(fused_attention.forward_input_names(depth, feedback, cell),
                                    cell)
            assert len(names) == len(backward) == len(got) - n_visible
            for name, value, expected in zip(names, got[n_visible:], backward):
                assert_allclose(value, expected, err_msg='%s d %s' % (case, name),
                                **TOLERANCES[dtype])


def test_free_running_feedback_is_the_readout_fed_back():
    """The folded feedback (h^D_{t-1} F + ctx_{t-1} G, F = W_y W_1, G = C_y
    W_1) equals feeding the readout x_{t-1} = h^D_{t-1} W_y + ctx_{t-1} C_y
    + b_y back as the next step's input, x_{t-1} W_1 + b_1, in numpy."""
    rng = np.random.RandomState(11)
    for upper_units in ((), (2, 5)):
        values = _op_inputs('float64', time=4, upper_units=upper_units)
        top = upper_units[-1] if upper_units else 3
        dim = 2
        first = rng.uniform(-1, 1, (4, dim))
        input_kernel, input_bias = rng.uniform(-1, 1, (dim, 12)), rng.uniform(-1, 1, 12)
        readout_kernel, readout_bias = rng.uniform(-1, 1, (top, dim)), rng.uniform(-1, 1, dim)
        context_readout_kernel = rng.uniform(-1, 1, (4, dim))
        depth = 1 + len(upper_units)
        later = readout_bias.dot(input_kernel) + input_bias
        values[0] = np.concatenate([first.dot(input_kernel)[None] + input_bias,
                                    np.tile(later, (3, 4, 1))])
        folded = fused_attention.numpy_forward(
            values + [readout_kernel.dot(input_kernel), context_readout_kernel.dot(input_kernel)],
            'sigmoid', depth, feedback=True)
        # Step by step, feeding the readout back (one step per call).
        fed, state_values = [], list(values)
        x_prev = first
        for t in range(4):
            state_values[0] = (x_prev.dot(input_kernel) + input_bias)[None]
            step = fused_attention.numpy_forward(state_values, 'sigmoid', depth)
            top_h = step[0] if depth == 1 else step[4 + 2 * (depth - 2)]
            fed.append(step[0][0])
            x_prev = top_h[0].dot(readout_kernel) + step[2][0].dot(context_readout_kernel) \
                + readout_bias
            # The next step starts from this one's states.
            state_values[1], state_values[2] = step[0][0], step[1][0]
            for k in range(depth - 1):
                group = 10 + 6 * k
                state_values[group + 3] = step[4 + 2 * k][0]
                state_values[group + 4] = step[5 + 2 * k][0]
        assert_allclose(folded[0], np.array(fed), rtol=1e-10, atol=1e-12)


def test_masked_memory_steps_get_no_attention():
    for upper_units in STACKS:
        values = _op_inputs('float64', upper_units=upper_units)
        inputs = _symbolic(values)
        h_seq, _, context_seq, alpha_seq = theano.function(
            inputs, AttentionForward(depth=1 + len(upper_units))(*inputs)[:4])(*values)
        assert not alpha_seq[:, 0, 3:].any() and not alpha_seq[:, 1, :2].any()
        assert_allclose(alpha_seq[:, :3].sum(axis=-1), 1.0, rtol=1e-12)
        # Nothing to attend to: no weight, a zero context, and no NaN.
        assert not alpha_seq[:, 3].any() and not context_seq[:, 3].any()
        assert np.isfinite(h_seq).all()


def test_verify_grad_float64():
    _verify_op_grad('lstm')


def test_gru_verify_grad_float64():
    _verify_op_grad('gru')


def _verify_op_grad(cell):
    n_states = len(fused_attention.CELL_STATES[cell])
    mask_at = fused_attention.memory_mask_index(cell)
    for upper_units, feedback in [(units, False) for units in STACKS] + [((), True),
                                                                        ((3,), True)]:
        depth = 1 + len(upper_units)
        values = _op_inputs('float64', time=3 if feedback else 2, batch=3, units=2, length=3,
                            m=2, a=2, seed=3, upper_units=upper_units, feedback=feedback,
                            cell=cell)
        mask = values[mask_at]
        rng = np.random.RandomState(4)
        time = values[0].shape[0]
        output_shapes = [(time, 3, n) for n in (2,) * n_states + (2, 3)] + [
            (time, 3, n) for n in upper_units for _ in range(n_states)]
        weights = [rng.uniform(-1, 1, shape) for shape in output_shapes]

        def cost(*differentiable):
            inputs = list(differentiable[:mask_at]) + [mask] + list(differentiable[mask_at:])
            outputs = AttentionForward('sigmoid', depth, feedback, cell)(
                *inputs)[:len(weights)]
            return sum((o * w).sum() for o, w in zip(outputs, weights))

        # The dropout masks are inputs too: their gradient is checked with
        # the rest.
        theano.gradient.verify_grad(cost, _differentiable(values, cell),
                                    rng=np.random.RandomState(5), eps=1e-6, abs_tol=1e-6,
                                    rel_tol=1e-5)


def test_make_node_checks_its_inputs():
    values = _op_inputs('float64')
    inputs = _symbolic(values)
    assert_raises_with(TypeError, lambda: AttentionForward()(inputs[1], *inputs[1:]),
                       'projected', '3-d')
    floats = [T.TensorType('float32', (False,) * v.ndim)() for v in values[:2]]
    assert_raises_with(TypeError, lambda: AttentionForward()(*(floats + inputs[2:])),
                       'c0', 'dtype float32')
    assert_raises_with(ValueError, lambda: AttentionForward('relu'), 'inner_activation')
    assert_raises_with(ValueError, lambda: AttentionForward(depth=9), 'depth must be 1 to 8')
    assert_raises_with(ValueError, lambda: AttentionForward(cell='rnn'), 'cell', "'rnn'")
    # A GRU cell has no c0: an LSTM's inputs put U where the GRU reads it.
    assert_raises_with(TypeError, lambda: AttentionForward(cell='gru')(*inputs),
                       'memory', '3-d')
    # A stack of two takes its upper cell's six inputs.
    assert_raises_with(TypeError, lambda: AttentionForward(depth=2)(*inputs),
                       'takes 6 inputs for its upper cells, got 0')
    stacked = _symbolic(_op_inputs('float64', upper_units=(3,)))
    stacked[11] = T.matrix('bias_2', dtype='float64')
    assert_raises_with(TypeError, lambda: AttentionForward(depth=2)(*stacked), 'bias_2', '1-d')


def test_op_refuses_inconsistent_upper_shapes():
    """A wrong shape reaching the C code is a ValueError naming the input."""
    values = _op_inputs('float64', upper_units=(3,))
    values[12] = values[12][:, :2]                # the upper cell's dropout mask
    inputs = _symbolic(values)
    function = theano.function(inputs, AttentionForward(depth=2)(*inputs)[:4])
    assert_raises_with(ValueError, lambda: function(*values), 'dropout_mask',
                       'wrong shape')


# -- the layer: fused against scan --------------------------------------------------

def _decoder_graphs(dtype, readout_activation='softmax', inner_activation='hard_sigmoid',
                    dropout=0.0, depth=1, free_running=False, peek=False, cell='lstm'):
    """One teacher-forced AttentionDecoder run both ways on the same inputs
    (`free_running`: one that feeds its readout back).

    With `dropout`, both runs read given dropout masks, one per cell (the
    last inputs: (batch, 3) for the bottom cell, (batch, 6) above),
    instead of random ones.

    Returns (inputs, {implementation: [outputs, the states of each cell,
    alpha, gradients...]}, names of those).
    """
    first, memory = Input((3,), dtype=dtype), Input((5, 4), dtype=dtype)
    teacher, mask = Input((4, 3), dtype=dtype), K.placeholder((None, 5))
    layer = AttentionDecoder(3, 6, 4, teacher_force=not free_running, implementation='scan',
                             readout_activation=readout_activation,
                             inner_activation=inner_activation, dropout=dropout, depth=depth,
                             peek=peek, cell=cell)
    sources = [first, memory] if free_running else [first, memory, teacher]
    layer(sources, mask=[None, mask, None][:len(sources)])          # builds the layer
    inputs = sources + [mask]
    if dropout:
        dropout_masks = [K.placeholder((None, 3 if k == 0 else 6), dtype=dtype)
                         for k in range(depth)]
        use_dropout_masks(layer, dropout_masks)
        inputs += dropout_masks
    parts = layer.split_inputs(sources, [None, mask, None][:len(sources)])
    rng = np.random.RandomState(7)
    # A random weighting of every output: each gets its own gradient.
    states = fused_attention.CELL_STATES[cell]
    shapes = [(4, 4, 3)] + [(4, 6)] * (len(states) * depth) + [(4, 4, 5)]
    weights = [rng.uniform(-1, 1, shape).astype(dtype) for shape in shapes]
    wrt = layer.trainable_weights + sources
    names = (['outputs'] + ['final %s of cell %d' % (s, k) for k in range(depth) for s in states]
             + ['attention'] + ['d %s' % w.name for w in wrt])
    graphs = {}
    for implementation in ('scan', 'fused'):
        layer.implementation = implementation
        outputs, finals, alpha = layer.run(parts, teacher=None if free_running else parts.teacher)
        results = [outputs] + [s for final in finals for s in final] + [alpha]
        cost = sum((r * w).sum() for r, w in zip(results, weights))
        graphs[implementation] = results + T.grad(cost, wrt)
    return inputs, graphs, names


# A dropout mask as K.dropout(ones, 0.3) draws it, (batch 4, output_dim 3):
# dropped units are 0, kept ones scaled by 1 / 0.7; one sequence keeps all.
DROPOUT_MASK = np.array([[0, 1, 1], [1, 0, 1], [1, 1, 1], [0, 0, 1]]) / 0.7


def _decoder_values(dtype, dropout=False, depth=1, free_running=False):
    rng = np.random.RandomState(8)
    values = [rng.uniform(-1, 1, (4, 3)).astype(dtype),
              rng.uniform(-1, 1, (4, 5, 4)).astype(dtype),
              rng.uniform(-1, 1, (4, 4, 3)).astype(dtype),
              MASK.astype(dtype)]
    if free_running:
        del values[2]
    if not dropout:
        return values
    upper_masks = [((rng.uniform(0, 1, (4, 6)) > 0.3) / 0.7).astype(dtype)
                   for _ in range(depth - 1)]
    return values + [DROPOUT_MASK.astype(dtype)] + upper_masks


def test_layer_matches_scan_values_states_attention_and_gradients():
    _assert_fused_matches_scan(dropout=0.0)


def test_stacked_layer_matches_scan_values_states_attention_and_gradients():
    """Two cells: the query reads the top cell, the context feeds the bottom
    one; every cell's final state and every weight's gradient are the
    scan's."""
    _assert_fused_matches_scan(dropout=0.0, depth=2)


def test_free_running_layer_matches_scan():
    """Free running with a linear readout (the farizrahman4u AttentionSeq2Seq):
    the readout fed back inside the fused loop gives the scan's outputs,
    states, attention and every gradient, with one cell and with two."""
    linear = [('float32', 'linear', 'hard_sigmoid'), ('float64', 'linear', 'sigmoid')]
    _assert_fused_matches_scan(dropout=0.0, cases=linear, free_running=True)
    _assert_fused_matches_scan(dropout=0.0, depth=2, cases=linear[1:], free_running=True)


def test_gru_layer_matches_scan():
    """GRU cells (cell='gru') run fused too: the scan's outputs, states,
    attention and gradients, two cells teacher-forced and free running."""
    _assert_fused_matches_scan(dropout=0.0, depth=2, cell='gru',
                               cases=[('float64', 'softmax', 'hard_sigmoid')])
    _assert_fused_matches_scan(dropout=0.0, depth=2, cell='gru', free_running=True,
                               cases=[('float64', 'linear', 'sigmoid')])


@attr('slow')
def test_gru_layer_float32_dropout_and_peek_match_scan():
    _assert_fused_matches_scan(dropout=0.0, cell='gru')
    _assert_fused_matches_scan(dropout=0.3, depth=2, cell='gru')
    _assert_fused_matches_scan(dropout=0.0, cell='gru', free_running=True, peek=True,
                               cases=[('float32', 'linear', 'hard_sigmoid')])


@attr('slow')
def test_peek_matches_scan():
    """peek=True (x_0 read by the bottom cell at every step, Cho et al.
    2014) runs fused, teacher-forced and free running."""
    case = [('float64', 'linear', 'sigmoid')]
    _assert_fused_matches_scan(dropout=0.0, cases=case, peek=True)
    _assert_fused_matches_scan(dropout=0.0, depth=2, cases=case, free_running=True, peek=True)


@attr('slow')
def test_three_cells_match_scan():
    _assert_fused_matches_scan(dropout=0.0, depth=3, cases=[('float64', 'linear', 'sigmoid')])


@attr('slow')
def test_layer_with_dropout_matches_scan_for_a_given_mask():
    """Dropout masks each cell's input (x_{t-1} for the bottom one, the
    cell below's h_t above) with one mask per sequence: the fused loop's
    values and every gradient (the teacher's, through the mask, too) are the
    scan's, padded memory steps included."""
    _assert_fused_matches_scan(dropout=0.3)
    _assert_fused_matches_scan(dropout=0.3, depth=2)


def _assert_fused_matches_scan(dropout, depth=1, cases=None, free_running=False, peek=False,
                               cell='lstm'):
    cases = cases or [('float32', 'softmax', 'hard_sigmoid'), ('float64', 'linear', 'sigmoid')]
    for dtype, readout_activation, inner_activation in cases:
        with (float64() if dtype == 'float64' else _same_floatx()):
            inputs, graphs, names = _decoder_graphs(dtype, readout_activation,
                                                    inner_activation, dropout, depth,
                                                    free_running, peek, cell)
            values = _decoder_values(dtype, dropout=bool(dropout), depth=depth,
                                     free_running=free_running)
            # The reference in Python implementations: compiles in seconds.
            scan = theano.function(inputs, graphs['scan'], mode='FAST_COMPILE')(*values)
            function = K.function(inputs, graphs['fused'])
            ops = [type(n.op).__name__ for n in function.function.maker.fgraph.toposort()]
            assert 'AttentionForward' in ops and 'Scan' not in ops, ops
            fused = function(values)
            assert len(names) == len(fused) == len(scan)
            for name, got, expected in zip(names, fused, scan):
                assert_allclose(got, expected,
                                err_msg='%s %s depth %d %s' % (cell, dtype, depth, name),
                                **TOLERANCES[dtype])
            assert not fused[names.index('attention')][3].any(), \
                'a fully masked memory got attention'


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
    """The fused decoder's gradients with respect to its inputs, through
    given dropout masks, against finite differences (padded memory steps
    too), for one cell and for two."""
    for depth in (1, 2):
        _verify_decoder_grad_with_dropout(depth)


def _verify_decoder_grad_with_dropout(depth):
    with float64():
        first, memory, teacher = Input((3,)), Input((5, 4)), Input((4, 3))
        layer = AttentionDecoder(3, 2, 4, teacher_force=True, dropout=0.3, depth=depth,
                                 readout_activation='softmax', inner_activation='sigmoid')
        layer([first, memory, teacher])                               # builds the layer
        upper_mask = np.array([[0, 1], [1, 1], [1, 0], [1, 1]]) / 0.7   # (batch, hidden 2)
        use_dropout_masks(layer, [T.constant(DROPOUT_MASK)]
                           + [T.constant(upper_mask)] * (depth - 1))
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
    # Free running with a linear readout runs fused; with a softmax readout
    # (a teacher-forced model's predict) the scan loop, with a warning under
    # 'fused' only.
    assert not _fallback_warnings('fused')
    assert not _fallback_warnings('fused', depth=2)
    caught = _fallback_warnings('fused', readout_activation='softmax')
    assert len(caught) == 1 and 'linear readout' in caught[0], caught
    assert not _fallback_warnings('auto', readout_activation='softmax')
    # Teacher-forced, but not what the Op computes: the scan, and a warning
    # naming why (for the forced loop and for the free-running one).
    caught = _fallback_warnings('fused', teacher_force=True, activation='relu')
    assert len(caught) == 2 and all('activation tanh only' in c for c in caught), caught
    assert not _fallback_warnings('auto', teacher_force=True, activation='relu')
    assert not _fallback_warnings('fused', teacher_force=True, cell='gru')
    # Dropout: the teacher-forced loop runs fused, the free-running one not.
    caught = _fallback_warnings('fused', teacher_force=True, depth=2, dropout=0.2)
    assert len(caught) == 1 and 'without dropout' in caught[0], caught


def test_unsupported_reasons():
    for kwargs, words in [(dict(depth=9), 'up to 8 cells, got depth 9'),
                          (dict(cell='gru', truncate_gradient=2), 'truncate_gradient=2'),
                          (dict(truncate_gradient=2), 'truncate_gradient=2'),
                          (dict(activation='relu'), 'activation tanh only'),
                          (dict(inner_activation='relu'), 'inner_activation')]:
        layer = AttentionDecoder(3, 6, 4, teacher_force=True, **kwargs)
        reason = layer.decoder.fused_reason(TEACHER_FORCED,
                                            truncate_gradient=layer.truncate_gradient)
        assert reason is not None and words in reason, (kwargs, reason)
        assert 'fused attention decoder' in reason, reason
    for kwargs in [dict(inner_activation='sigmoid'), dict(dropout=0.5), dict(depth=3),
                   dict(peek=True), dict(cell='gru', depth=2)]:
        layer = AttentionDecoder(3, 6, 4, teacher_force=True, **kwargs)
        assert layer.decoder.fused_reason(TEACHER_FORCED) is None, kwargs
    for kwargs, words in [(dict(readout_activation='softmax'), "got readout_activation='softmax'"),
                          (dict(dropout=0.1), 'got dropout=0.1')]:
        layer = AttentionDecoder(3, 6, 4, **kwargs)
        reason = layer.decoder.fused_reason(FREE_RUNNING)
        assert reason is not None and words in reason, (kwargs, reason)
    for kwargs in [dict(), dict(depth=3), dict(teacher_force=True), dict(peek=True),
                   dict(cell='gru')]:
        layer = AttentionDecoder(3, 6, 4, **kwargs)
        assert layer.decoder.fused_reason(FREE_RUNNING) is None, kwargs
