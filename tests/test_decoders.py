"""RecurrentDecoder and AttentionDecoder against plain numpy loops (float64)."""
import numpy as np
from keras import backend as K
from keras.layers import Input
from numpy.testing import assert_allclose

from seq2seq import AttentionDecoder, RecurrentDecoder
from tests import numpy_reference as ref
from tests.helpers import float64, random_array

TOL = dict(rtol=1e-6, atol=1e-6)


def _function(layer, inputs, train=False):
    output = layer(inputs if len(inputs) > 1 else inputs[0])
    function = K.function(inputs + [K.learning_phase()], [output])
    return lambda values: function(values + [int(train)])[0]


def test_stacked_decoder_with_peek_and_given_state_matches_numpy():
    with float64():
        first, h0, c0 = random_array(2, 3), random_array(2, 5, seed=1), random_array(2, 5, seed=2)
        layer = RecurrentDecoder(3, 5, 4, depth=2, peek=True, state_input=True)
        f = _function(layer, [Input((3,)), Input((5,)), Input((5,))])
        expected, _ = ref.recurrent_decoder(first, ref.named_weights(layer), 2, 4,
                                            states=[(h0, c0), (h0, c0)], peek=True)
        assert_allclose(f([first, h0, c0]), expected, **TOL)


def test_inner_broadcast_off_starts_upper_cells_from_zeros():
    with float64():
        first, h0, c0 = random_array(2, 3), random_array(2, 5, seed=1), random_array(2, 5, seed=2)
        layer = RecurrentDecoder(3, 5, 4, depth=2, state_input=True, inner_broadcast_state=False)
        f = _function(layer, [Input((3,)), Input((5,)), Input((5,))])
        zeros = np.zeros((2, 5))
        expected, _ = ref.recurrent_decoder(first, ref.named_weights(layer), 2, 4,
                                            states=[(h0, c0), (zeros, zeros)])
        assert_allclose(f([first, h0, c0]), expected, **TOL)


def test_teacher_forcing_reads_the_targets_in_training_only():
    with float64():
        first, targets = random_array(2, 3), random_array(2, 4, 3, seed=1)
        layer = RecurrentDecoder(3, 5, 4, teacher_force=True, readout_activation='softmax')
        inputs = [Input((3,)), Input((4, 3))]
        output = layer(inputs)
        function = K.function(inputs + [K.learning_phase()], [output])
        weights = ref.named_weights(layer)
        forced, _ = ref.recurrent_decoder(first, weights, 1, 4, teacher=targets,
                                          readout=ref.softmax)
        free, _ = ref.recurrent_decoder(first, weights, 1, 4, readout=ref.softmax)
        assert_allclose(function([first, targets, 1])[0], forced, **TOL)
        assert_allclose(function([first, targets, 0])[0], free, **TOL)
        assert_allclose(function([first, targets * 0, 0])[0], free, **TOL)


def test_attention_decoder_matches_numpy_and_ignores_masked_steps():
    with float64():
        first, memory = random_array(2, 3), random_array(2, 6, 4, seed=1)
        mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
        layer = AttentionDecoder(3, 5, 4)
        first_input, memory_input = Input((3,)), Input((6, 4))
        mask_input = K.placeholder((None, 6))
        output = layer([first_input, memory_input], mask=[None, mask_input])
        function = K.function([first_input, memory_input, mask_input],
                              [output, layer.last_attention])
        got, attention = function([first, memory, mask])
        expected, expected_attention = ref.recurrent_decoder(
            first, ref.named_weights(layer), 1, 4, memory=memory, memory_mask=mask)
        assert_allclose(got, expected, **TOL)
        assert_allclose(attention, expected_attention, **TOL)
        assert attention.shape == (2, 4, 6)
        assert_allclose(attention.sum(axis=-1), 1.0, **TOL)
        assert not attention[0, :, 4:].any(), 'padded steps got attention'
        # The padded memory gives what the unpadded one gives.
        short, _ = ref.recurrent_decoder(first[:1], ref.named_weights(layer), 1, 4,
                                         memory=memory[:1, :4])
        assert_allclose(got[:1], short, **TOL)


def test_decoder_config_round_trips():
    for layer in [RecurrentDecoder(3, 5, 4, depth=2, peek=True, teacher_force=True,
                                   state_input=True, inner_broadcast_state=False,
                                   readout_activation='softmax', dropout=0.25, cell='gru'),
                  AttentionDecoder(3, 6, 2, batch_size=4, remember_state=True)]:
        config = layer.get_config()
        assert layer.__class__.from_config(config).get_config() == config


def test_decoder_arguments_are_checked():
    for kwargs, words in [(dict(dropout=1.0), 'dropout'), (dict(depth=0), 'depth'),
                          (dict(cell='lstmx'), 'cell')]:
        args = dict(output_dim=3, hidden_dim=5, output_length=4)
        args.update(kwargs)
        try:
            RecurrentDecoder(**args)
        except ValueError as error:
            assert words in str(error)
        else:
            raise AssertionError('no ValueError for %r' % kwargs)
    layer = RecurrentDecoder(3, 5, 4, state_input=True)
    try:
        layer(Input((3,)))
    except ValueError as error:
        assert '3 inputs' in str(error)
    else:
        raise AssertionError('no ValueError for a missing state input')
