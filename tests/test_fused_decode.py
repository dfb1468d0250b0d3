"""The fused search step (seq2seq.ops.fused_decode) against its numpy
reference, and the fused stepper of seq2seq.inference against the layer's
own compiled step (the reference path)."""
import unittest

import numpy as np
import theano
import theano.tensor as T
from numpy.testing import assert_allclose

from seq2seq.search import model_search as inference
from seq2seq.search.numpy_search import beam_search, greedy_search
from seq2seq.models import AttentionSeq2Seq
from seq2seq.ops import fused_decode
from seq2seq.ops.fused_decode import AttentionDecodeStep
from tests.helpers import assert_raises_with

TOLERANCES = {'float32': dict(rtol=1e-5, atol=1e-5), 'float64': dict(rtol=1e-10, atol=1e-12)}

# Memory masks (3 sources, length 5): right padding, a hole, none, nothing
# to attend to (its weights are 0, its context 0).
MASK = np.array([[1, 1, 1, 0, 0],
                 [1, 0, 1, 1, 1],
                 [1, 1, 1, 1, 1],
                 [0, 0, 0, 0, 0]], dtype='int8')


def _op_inputs(dtype, tokens=True, rows=(0, 0, 1, 2, 3, 3, 2), units=3, n_in=5, n_out=4,
               a=6, seed=0):
    """Random inputs of AttentionDecodeStep: 7 rows over 4 sources."""
    rng = np.random.RandomState(seed)
    sources, length = MASK.shape
    batch = len(rows)

    def uniform(*shape):
        return rng.uniform(-1, 1, shape).astype(dtype)

    token_ids = rng.randint(0, n_in, size=batch) if tokens else np.zeros(0)
    return [uniform(batch, n_in), token_ids.astype('int64'), np.array(rows, dtype='int64'),
            uniform(batch, units), uniform(batch, units), uniform(n_in, 4 * units),
            uniform(4 * units), uniform(units, 4 * units + a), uniform(sources, length, a),
            uniform(sources, length, 4 * units), uniform(sources, length, n_out), MASK,
            uniform(a), uniform(units, n_out), uniform(n_out)]


def _compiled(values, **kwargs):
    symbols = [T.TensorType(str(v.dtype), (False,) * v.ndim)() for v in values]
    outputs = AttentionDecodeStep(**kwargs)(*symbols)
    function = theano.function(symbols, outputs)
    assert any(isinstance(n.op, AttentionDecodeStep) for n in function.maker.fgraph.toposort())
    return function


def test_op_matches_numpy_reference():
    for dtype in ('float32', 'float64'):
        for inner in ('hard_sigmoid', 'sigmoid'):
            for readout in ('softmax', 'linear'):
                for tokens in (True, False):
                    values = _op_inputs(dtype, tokens=tokens)
                    found = _compiled(values, inner_activation=inner, readout=readout)(*values)
                    expected = fused_decode.numpy_step(*(values + [inner, readout]))
                    for f, e in zip(found, expected):
                        assert f.dtype == dtype
                        assert_allclose(f, e, **TOLERANCES[dtype])


def test_token_rows_equal_one_hot_inputs():
    """A token fed back reads its row of the kernel: the same as its one-hot
    vector through the GEMM."""
    values = _op_inputs('float64', tokens=True)
    function = _compiled(values)
    one_hot = np.eye(values[0].shape[1])[values[1]]
    by_token = function(*values)
    by_vector = function(*([one_hot, np.zeros(0, dtype='int64')] + values[2:]))
    for f, e in zip(by_token, by_vector):
        assert_allclose(f, e, rtol=1e-12, atol=1e-13)


def test_a_source_with_nothing_to_attend_to_gets_no_context():
    """Source 3 is all masked: its rows get the step without any context,
    the same as a memory of zeros."""
    values = _op_inputs('float64')
    function = _compiled(values)
    zeroed = list(values)
    for position in (9, 10):                           # H V, H C_y of source 3
        zeroed[position] = values[position].copy()
        zeroed[position][3] = 0
    for f, e in zip(function(*values), function(*zeroed)):
        assert_allclose(f, e, rtol=1e-12, atol=1e-13)
    # Masked steps get no weight: changing their energies changes nothing.
    moved = list(values)
    moved[8] = values[8].copy()
    moved[8][MASK == 0] += 3.0
    for f, e in zip(function(*values), function(*moved)):
        assert_allclose(f, e, rtol=1e-12, atol=1e-13)


def test_log_probs_normalise_and_softmax_readout_is_their_exp():
    values = _op_inputs('float32')
    log_probs, x_t, _, _ = _compiled(values)(*values)
    assert_allclose(np.exp(log_probs).sum(axis=1), 1, rtol=1e-5)
    assert_allclose(x_t, np.exp(log_probs), rtol=1e-5)


def test_bad_rows_and_tokens_raise():
    values = _op_inputs('float32')
    function = _compiled(values)
    bad_rows = list(values)
    bad_rows[2] = values[2].copy()
    bad_rows[2][1] = 4
    assert_raises_with(IndexError, lambda: function(*bad_rows), 'rows[1] = 4')
    bad_tokens = list(values)
    bad_tokens[1] = values[1].copy()
    bad_tokens[1][0] = -1
    assert_raises_with(IndexError, lambda: function(*bad_tokens), 'tokens[0] = -1')


def test_make_node_checks_its_inputs():
    values = _op_inputs('float32')
    symbols = [T.TensorType(str(v.dtype), (False,) * v.ndim)() for v in values]
    wrong_ndim = list(symbols)
    wrong_ndim[3] = T.tensor3()
    assert_raises_with(TypeError, lambda: AttentionDecodeStep()(*wrong_ndim),
                       'h must be a 2-d tensor')
    float_rows = list(symbols)
    float_rows[2] = T.vector()
    assert_raises_with(TypeError, lambda: AttentionDecodeStep()(*float_rows),
                       'rows must be a 1-d integer tensor')
    assert_raises_with(ValueError, lambda: AttentionDecodeStep(readout='tanh'),
                       'readout must be one of')


# -- the fused stepper against the layer's own step -------------------------------------
def g2p_like_model(readout_activation='softmax', teacher_force=True, seed=0, **kwargs):
    """AttentionSeq2Seq as `seq2seq train --model attention` builds it, tiny:
    letter ids through Embedding(mask_zero=True), a bidirectional encoder.
    Keras draws the initial weights from numpy's global generator: seeded."""
    np.random.seed(seed)
    return AttentionSeq2Seq(output_dim=7, output_length=6, hidden_dim=8, input_dim=5,
                            input_length=6, source_vocab_size=9, teacher_force=teacher_force,
                            readout_activation=readout_activation, **kwargs)


def letters(n, seed):
    """Letter ids in [1, 9), right-padded with 0 (lengths 1 .. 6)."""
    rng = np.random.RandomState(seed)
    x = rng.randint(1, 9, size=(n, 6)).astype('int32')
    for row, used in enumerate(rng.randint(1, 7, size=n)):
        x[row, used:] = 0
    return x


def scale_weights(model, factor, seed):
    """Larger random weights, so that the steps' distributions are peaked
    and EOS ends hypotheses at different steps."""
    rng = np.random.RandomState(seed)
    model.set_weights([w + factor * rng.randn(*w.shape).astype(w.dtype)
                       for w in model.get_weights()])


class TestFusedStepperMatchesTheLayerStep(unittest.TestCase):
    def _assert_same_searches(self, model, x, feedback):
        fused = inference.FusedAttentionStepper(model, feedback)
        reference = inference.DecoderStepper(model, feedback)
        # EOS: the token greedy search picks most often after the first
        # step, so that hypotheses end at different steps.
        plain = greedy_search(reference.step_fn, reference.initial_states([x]), 6)[0]
        common = int(np.bincount(plain[:, 1:].ravel()).argmax())
        for eos_id in (None, common):
            tokens = []
            for stepper in (fused, reference):
                tokens.append(greedy_search(stepper.step_fn, stepper.initial_states([x]), 6,
                                            eos_id=eos_id))
            for found, expected in zip(*tokens):
                assert_allclose(found, expected, rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(tokens[0][0], tokens[1][0])
            for beam_size in (1, 3):
                results = [beam_search(stepper.step_fn, stepper.initial_states([x]), beam_size,
                                       6, eos_id=eos_id, n_best=beam_size)
                           for stepper in (fused, reference)]
                for mine, theirs in zip(*results):
                    self.assertEqual([list(h.tokens) for h in mine],
                                     [list(h.tokens) for h in theirs])
                    assert_allclose([h.log_prob for h in mine], [h.log_prob for h in theirs],
                                    rtol=1e-5, atol=1e-5)
                    self.assertEqual([h.finished for h in mine], [h.finished for h in theirs])
                if eos_id is not None:
                    lengths = set(len(h.tokens) for best in results[0] for h in best)
                    self.assertGreater(len(lengths), 1, 'EOS must end some hypotheses early')

    def test_teacher_forced_softmax_model_token_and_readout_feedback(self):
        model = g2p_like_model()
        scale_weights(model, 0.5, seed=1)
        x = letters(9, seed=2)
        self.assertIsInstance(inference.get_stepper(model), inference.FusedAttentionStepper)
        for feedback in ('token', 'readout'):
            self._assert_same_searches(model, x, feedback)

    def test_linear_readout_sigmoid_gates(self):
        model = g2p_like_model('linear', teacher_force=False, inner_activation='sigmoid')
        scale_weights(model, 0.5, seed=3)
        self._assert_same_searches(model, letters(7, seed=4), 'readout')

    def test_greedy_decode_is_predict(self):
        # As tests/test_inference.py for every other decoder: the fused
        # step's greedy choices are predict's argmax, with padded sources
        # sorted into batches (the batch's padding trimmed).
        model = g2p_like_model('softmax', teacher_force=False)
        scale_weights(model, 0.3, seed=5)
        x = letters(11, seed=6)
        probabilities = model.predict(x)
        for batch_size in (64, 3):
            tokens, _, log_probs = inference.greedy_decode(model, x, batch_size=batch_size)
            np.testing.assert_array_equal(tokens, probabilities.argmax(axis=-1))
            assert_allclose(log_probs, np.log(probabilities.max(axis=-1)).sum(axis=1),
                            rtol=1e-4, atol=1e-4)

    def test_which_models_get_the_fused_step(self):
        model = g2p_like_model()
        self.assertIsNone(inference.fused_step_reason(model))
        scan = g2p_like_model(implementation='scan')
        self.assertIn('scan', inference.fused_step_reason(scan))
        self.assertIsInstance(inference.get_stepper(scan), inference.DecoderStepper)
        deep = AttentionSeq2Seq(output_dim=4, output_length=3, hidden_dim=4, input_shape=(5, 3),
                                depth=(1, 2))
        self.assertIn('depth 2', inference.fused_step_reason(deep))
        assert_raises_with(ValueError, lambda: inference.FusedAttentionStepper(deep),
                           'depth 2')
