"""Variable-length sequences: zero padding with Embedding(mask_zero=True)."""
import numpy as np
from keras.layers import Embedding, Input
from keras.models import Model, Sequential
from numpy.testing import assert_allclose

from seq2seq import BidirectionalEncoder, LSTMEncoder
from seq2seq.models import AttentionSeq2Seq, Seq2Seq

TOL = dict(rtol=1e-5, atol=1e-6)
SEQUENCES = [[3, 1, 4], [1, 5, 9, 2, 6], [5]]


def _pad(sequences, length, side):
    padded = np.zeros((len(sequences), length), dtype='int32')
    for row, sequence in enumerate(sequences):
        if side == 'right':
            padded[row, :len(sequence)] = sequence
        else:
            padded[row, length - len(sequence):] = sequence
    return padded


def _encoder_model(layer, length):
    model = Sequential([Embedding(10, 4, mask_zero=True, input_length=length), layer])
    model.compile(loss='mse', optimizer='sgd')
    return model


def test_padding_gives_the_final_state_of_the_unpadded_sequence():
    for cell in ['lstm', 'gru']:
        model = _encoder_model(LSTMEncoder(6, cell=cell), 7)
        right = model.predict(_pad(SEQUENCES, 7, 'right'))
        left = model.predict(_pad(SEQUENCES, 7, 'left'))
        assert_allclose(left, right, **TOL)
        # The first sequence (3 of 7 steps) alone, unpadded, in a model of its
        # length (one more compile: one sequence is enough).
        sequence = SEQUENCES[0]
        alone = Sequential([Embedding(10, 4, input_length=len(sequence)),
                            LSTMEncoder(6, cell=cell)])
        alone.set_weights(model.get_weights())
        assert_allclose(right[0], alone.predict(np.array([sequence]))[0], **TOL)
        assert not np.allclose(right[0], right[1], **TOL)


def test_masked_steps_repeat_the_previous_output():
    model = _encoder_model(LSTMEncoder(6, return_sequences=True), 7)
    outputs = model.predict(_pad(SEQUENCES, 7, 'right'))
    assert_allclose(outputs[0, 3:], np.repeat(outputs[0, 2:3], 4, axis=0), **TOL)


def test_bidirectional_encoder_ignores_padding_on_either_side():
    model = _encoder_model(BidirectionalEncoder(6, return_sequences=False), 7)
    assert_allclose(model.predict(_pad(SEQUENCES, 7, 'left')),
                    model.predict(_pad(SEQUENCES, 7, 'right')), **TOL)


def _embedded(seq2seq_model, length):
    ids = Input((length,), dtype='int32')
    vectors = Embedding(10, 4, mask_zero=True)(ids)
    return Model(ids, seq2seq_model(vectors))


def test_seq2seq_model_output_does_not_depend_on_the_padding_side():
    model = _embedded(Seq2Seq(input_dim=4, input_length=7, hidden_dim=6, output_length=3,
                              output_dim=5, depth=2), 7)
    assert_allclose(model.predict(_pad(SEQUENCES, 7, 'left')),
                    model.predict(_pad(SEQUENCES, 7, 'right')), **TOL)


def test_attention_model_gives_padding_no_weight():
    model = AttentionSeq2Seq(input_dim=4, input_length=7, hidden_dim=6, output_length=3,
                             output_dim=5)
    embedded = _embedded(model, 7)
    right = embedded.predict(_pad(SEQUENCES, 7, 'right'))
    left = embedded.predict(_pad(SEQUENCES, 7, 'left'))
    assert_allclose(left, right, **TOL)
