"""The compiled layers against plain numpy loops (float64, 1e-6)."""
import numpy as np
from keras.layers import Input
from numpy.testing import assert_allclose

from seq2seq import LSTMDecoder, LSTMDecoder2, LSTMEncoder, Seq2seq
from tests import numpy_reference as ref
from tests.helpers import compiled, float64, random_array
from nose.plugins.attrib import attr

TOL = dict(rtol=1e-6, atol=1e-6)
# The scan loops are the reference; the fused C path must match numpy too.
IMPLEMENTATIONS = ('scan', 'fused')


def each_implementation():
    """Run a test's body once per implementation, building in float64."""
    for impl in IMPLEMENTATIONS:
        with float64():
            yield impl


def test_encoder_final_state_matches_numpy():
    for impl in each_implementation():
        x = random_array(3, 5, 4)
        layer = LSTMEncoder(implementation=impl, output_dim=6)
        f = compiled(layer, Input((5, 4)))
        expected_sequence, expected_h, _ = ref.lstm_encoder(x, layer.get_weights())
        assert_allclose(f([x])[0], expected_h, **TOL)


def test_encoder_sequences_match_numpy():
    for impl in each_implementation():
        x = random_array(2, 7, 3)
        layer = LSTMEncoder(implementation=impl, output_dim=5, return_sequences=True)
        f = compiled(layer, Input((7, 3)))
        expected_sequence, _, _ = ref.lstm_encoder(x, layer.get_weights())
        assert_allclose(f([x])[0], expected_sequence, **TOL)


def test_encoder_backwards_reads_last_step_first():
    for impl in each_implementation():
        x = random_array(2, 6, 3)
        layer = LSTMEncoder(implementation=impl, output_dim=4, go_backwards=True)
        f = compiled(layer, Input((6, 3)))
        _, expected_h, _ = ref.lstm_encoder(x[:, ::-1], layer.get_weights())
        assert_allclose(f([x])[0], expected_h, **TOL)


def test_masked_steps_keep_the_state():
    for impl in each_implementation():
        x = random_array(2, 6, 3)
        mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
        layer = LSTMEncoder(implementation=impl, output_dim=4)
        inputs = Input((6, 3))
        from keras import backend as K
        mask_input = K.placeholder((None, 6))
        f = K.function([inputs, mask_input], [layer(inputs, mask=mask_input)])
        _, expected_h, _ = ref.lstm_encoder(x, layer.get_weights(), mask=mask)
        assert_allclose(f([x, mask])[0], expected_h, **TOL)
        # The padded sequence ends in the state of the unpadded one.
        _, unpadded_h, _ = ref.lstm_encoder(x[:1, :4], layer.get_weights())
        assert_allclose(f([x, mask])[0][:1], unpadded_h, **TOL)


def test_decoder_feeds_back_its_output():
    for impl in each_implementation():
        v = random_array(3, 4)
        layer = LSTMDecoder(implementation=impl, dim=4, hidden_dim=6, output_length=5)
        f = compiled(layer, Input((4,)))
        w = layer.get_weights()
        zeros = np.zeros((3, 6))
        expected, _, _ = ref.lstm_decoder(v, w[:3], w[3:5], 5, zeros, zeros)
        assert_allclose(f([v])[0], expected, **TOL)


def test_decoder_starts_from_a_given_state():
    for impl in each_implementation():
        v, h0, c0 = random_array(2, 3), random_array(2, 5, seed=1), random_array(2, 5, seed=2)
        layer = LSTMDecoder(implementation=impl, dim=3, hidden_dim=5, output_length=4)
        f = compiled(layer, [Input((3,)), Input((5,)), Input((5,))])
        w = layer.get_weights()
        expected, _, _ = ref.lstm_decoder(v, w[:3], w[3:5], 4, h0, c0)
        assert_allclose(f([v, h0, c0])[0], expected, **TOL)


def test_cho_decoder_reads_the_context_at_every_step():
    for impl in each_implementation():
        v = random_array(2, 3)
        layer = LSTMDecoder2(implementation=impl, dim=3, hidden_dim=5, output_length=4)
        f = compiled(layer, Input((3,)))
        kernel, recurrent_kernel, bias, context_kernel, readout_kernel, readout_bias = \
            layer.get_weights()
        zeros = np.zeros((2, 5))
        expected, _, _ = ref.lstm_decoder(v, [kernel, recurrent_kernel, bias],
                                          [readout_kernel, readout_bias], 4, zeros, zeros,
                                          context_kernel=context_kernel)
        assert_allclose(f([v])[0], expected, **TOL)
        plain, _, _ = ref.lstm_decoder(v, [kernel, recurrent_kernel, bias],
                                       [readout_kernel, readout_bias], 4, zeros, zeros)
        assert not np.allclose(expected, plain), 'the context made no difference'


def _check_seq2seq(depth):
    for impl in each_implementation():
        x = random_array(2, 5, 3)
        layer = Seq2seq(implementation=impl, input_length=5, input_dim=3, hidden_dim=6, output_dim=4,
                        output_length=7, depth=depth)
        f = compiled(layer, Input((5, 3)))
        expected, _ = ref.seq2seq(x, layer.get_weights(), layer.depth, 7)
        got = f([x])[0]
        assert got.shape == (2, 7, 4)
        assert_allclose(got, expected, **TOL)


def test_seq2seq_depth_1_matches_numpy():
    _check_seq2seq(1)


@attr('slow')
def test_seq2seq_depth_2_matches_numpy():
    _check_seq2seq(2)


def test_seq2seq_depth_2_3_matches_numpy():
    _check_seq2seq((2, 3))
