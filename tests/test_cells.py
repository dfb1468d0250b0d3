"""The cells against Keras 2.3.1's own LSTM and GRU, and a numpy GRU loop."""
import numpy as np
from keras import backend as K
from keras.layers import GRU, LSTM, Input
from numpy.testing import assert_allclose

from seq2seq import BidirectionalEncoder, LSTMEncoder
from tests import numpy_reference as ref
from tests.helpers import compiled, float64, random_array

TOL = dict(rtol=1e-6, atol=1e-6)


def _keras_output(layer, x):
    inputs = Input(x.shape[1:])
    return K.function([inputs], [layer(inputs)])([x])[0]


def test_lstm_matches_keras_lstm_with_the_same_weights():
    with float64():
        x = random_array(2, 5, 3)
        ours = LSTMEncoder(output_dim=4, return_sequences=True)
        got = compiled(ours, Input((5, 3)))([x])[0]
        keras_lstm = LSTM(4, recurrent_activation='hard_sigmoid', return_sequences=True)
        keras_lstm.build((None, 5, 3))
        keras_lstm.set_weights(ours.get_weights())
        assert_allclose(got, _keras_output(keras_lstm, x), **TOL)


def test_gru_matches_keras_gru_with_the_same_weights():
    with float64():
        x = random_array(2, 5, 3)
        ours = LSTMEncoder(output_dim=4, return_sequences=True, cell='gru')
        got = compiled(ours, Input((5, 3)))([x])[0]
        keras_gru = GRU(4, recurrent_activation='hard_sigmoid', reset_after=False,
                        return_sequences=True)
        keras_gru.build((None, 5, 3))
        keras_gru.set_weights(ours.get_weights())
        assert_allclose(got, _keras_output(keras_gru, x), **TOL)


def test_gru_matches_numpy():
    with float64():
        x = random_array(3, 6, 2)
        layer = LSTMEncoder(output_dim=5, cell='gru')
        got = compiled(layer, Input((6, 2)))([x])[0]
        assert_allclose(got, ref.gru_encoder(x, layer.get_weights())[1], **TOL)


def test_gru_state_is_one_vector():
    layer = LSTMEncoder(output_dim=5, cell='gru', batch_size=2, remember_state=True)
    assert [s.shape for s in layer.get_hidden_state()[0]] == [(2, 5)]


def test_bidirectional_encoder_matches_two_numpy_loops():
    with float64():
        x = random_array(2, 5, 3)
        mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
        layer = BidirectionalEncoder(output_dim=8)
        inputs, mask_input = Input((5, 3)), K.placeholder((None, 5))
        got = K.function([inputs, mask_input], [layer(inputs, mask=mask_input)])([x, mask])[0]
        weights = layer.get_weights()
        forward, _, _ = ref.lstm_encoder(x, weights[:3], mask=mask)
        backward, _, _ = ref.lstm_encoder(x[:, ::-1], weights[3:], mask=mask[:, ::-1])
        assert_allclose(got[:, :, :4], forward, **TOL)
        assert_allclose(got[:, :, 4:], backward[:, ::-1], **TOL)


def test_cell_argument_is_checked():
    try:
        LSTMEncoder(output_dim=3, cell='rnn')
    except ValueError as error:
        assert "'gru'" in str(error) and "'rnn'" in str(error)
    else:
        raise AssertionError('no ValueError')
