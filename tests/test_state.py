"""remember_state: hidden states that flow from batch to batch."""
import numpy as np
from keras.layers import Embedding, Input
from keras.models import Sequential
from numpy.testing import assert_allclose

from seq2seq import LSTMEncoder, Seq2seq
from tests import numpy_reference as ref
from tests.helpers import assert_raises_with, compiled, float64, random_array

TOL = dict(rtol=1e-6, atol=1e-6)


def _tiny_seq2seq(remember_state, depth=1, batch_size=2):
    return Seq2seq(input_length=4, input_dim=3, hidden_dim=5, output_dim=3,
                   output_length=4, batch_size=batch_size, depth=depth,
                   remember_state=remember_state)


def test_remembered_state_changes_the_next_output_until_reset():
    with float64():
        x = random_array(2, 4, 3)
        layer = _tiny_seq2seq(remember_state=True, depth=(2, 2))
        f = compiled(layer, Input(batch_shape=(2, 4, 3)))
        first = f([x])[0]
        second = f([x])[0]
        assert not np.allclose(first, second), 'the state did not carry over'
        layer.reset_hidden_state()
        for cell_states in layer.get_hidden_state():
            for state in cell_states:
                assert not state.any()
        assert_allclose(f([x])[0], first, **TOL)


def test_remembered_state_matches_numpy_over_two_batches():
    with float64():
        x1, x2 = random_array(2, 4, 3, seed=1), random_array(2, 4, 3, seed=2)
        layer = _tiny_seq2seq(remember_state=True, depth=(2, 2))
        f = compiled(layer, Input(batch_shape=(2, 4, 3)))
        expected1, finals = ref.seq2seq(x1, layer.get_weights(), (2, 2), 4)
        assert_allclose(f([x1])[0], expected1, **TOL)
        for got, want in zip(layer.get_hidden_state(), finals):
            assert_allclose(got[0], want[0], **TOL)
            assert_allclose(got[1], want[1], **TOL)
        expected2, _ = ref.seq2seq(x2, layer.get_weights(), (2, 2), 4, states=finals)
        assert_allclose(f([x2])[0], expected2, **TOL)


def test_without_remember_state_every_batch_starts_fresh():
    with float64():
        x = random_array(2, 4, 3)
        layer = _tiny_seq2seq(remember_state=False, depth=2)
        f = compiled(layer, Input((4, 3)))
        assert_allclose(f([x])[0], f([x])[0], **TOL)
        # ... whatever the batch size, since no state is kept.
        assert f([x[:1]])[0].shape == (1, 4, 3)


def test_encoder_in_two_chunks_equals_one_call():
    with float64():
        x = random_array(2, 8, 3)
        whole = LSTMEncoder(output_dim=4, batch_size=2, remember_state=True)
        chunked = LSTMEncoder(output_dim=4, batch_size=2, remember_state=True)
        f_whole = compiled(whole, Input(batch_shape=(2, 8, 3)))
        f_chunk = compiled(chunked, Input(batch_shape=(2, 4, 3)))
        chunked.set_weights(whole.get_weights())
        h_whole = f_whole([x])[0]
        f_chunk([x[:, :4]])
        h_chunked = f_chunk([x[:, 4:]])[0]
        assert_allclose(h_chunked, h_whole, **TOL)
        for a, b in zip(chunked.get_hidden_state()[0], whole.get_hidden_state()[0]):
            assert_allclose(a, b, **TOL)


def test_encoder_state_reaches_the_decoder_in_the_same_pass():
    # With the bridge zeroed the decoder's input vector is a constant, so the
    # input can only reach the output through the encoder's final state. The
    # 2015 layer copied that state after the call: a fresh layer then decoded
    # every first batch from zeros, giving the same output for any input.
    with float64():
        layer = _tiny_seq2seq(remember_state=True)
        f = compiled(layer, Input(batch_shape=(2, 4, 3)))
        weights = layer.get_weights()
        bridge_kernel = [w.name for w in layer.weights].index(layer.bridge_kernel.name)
        weights[bridge_kernel] = np.zeros_like(weights[bridge_kernel])
        layer.set_weights(weights)
        a = f([random_array(2, 4, 3, seed=1)])[0]
        layer.reset_hidden_state()
        b = f([random_array(2, 4, 3, seed=2)])[0]
        assert not np.allclose(a, b)
        expected, _ = ref.seq2seq(random_array(2, 4, 3, seed=2), weights, (1, 1), 4)
        assert_allclose(b, expected, **TOL)


def test_state_structure_and_set_hidden_state():
    layer = _tiny_seq2seq(remember_state=True, depth=(2, 3))
    state = layer.get_hidden_state()
    # Two encoder LSTMs (widths 3 and 5), the decoder (5), two upper decoder LSTMs (3).
    assert [[s.shape for s in cell] for cell in state] == \
        [[(2, 3)] * 2, [(2, 5)] * 2, [(2, 5)] * 2, [(2, 3)] * 2, [(2, 3)] * 2]
    new = [[np.full(s.shape, i + 0.5) for s in cell] for i, cell in enumerate(state)]
    layer.set_hidden_state(new)
    for got, want in zip(layer.get_hidden_state(), new):
        assert_allclose(got[0], want[0])
        assert_allclose(got[1], want[1])


def test_set_hidden_state_rejects_wrong_structure_and_shapes():
    layer = _tiny_seq2seq(remember_state=True)
    state = layer.get_hidden_state()
    assert_raises_with(ValueError, lambda: layer.set_hidden_state(state[:1]), 'hidden_state', '2 lists')
    assert_raises_with(ValueError, lambda: layer.set_hidden_state([state[0], state[1][:1]]),
            'hidden_state[1]', '2 arrays')
    bad = [list(cell) for cell in state]
    bad[1][0] = np.zeros((3, 5))
    assert_raises_with(ValueError, lambda: layer.set_hidden_state(bad), 'hidden_state[1][0]', '(2, 5)')


def test_state_methods_without_remember_state():
    layer = _tiny_seq2seq(remember_state=False)
    layer.reset_hidden_state()  # nothing to reset: no error
    assert_raises_with(ValueError, layer.get_hidden_state, 'remember_state=False')


def test_hidden_state_argument_sets_the_initial_state():
    start = [[np.full((2, 4), 0.25), np.full((2, 4), -0.5)]]
    layer = LSTMEncoder(output_dim=4, batch_size=2, remember_state=True, hidden_state=start)
    assert_allclose(layer.get_hidden_state()[0][1], start[0][1])


def test_fit_predict_and_evaluate_carry_the_state():
    model = Sequential()
    model.add(Embedding(10, 3, input_length=4))
    model.add(_tiny_seq2seq(remember_state=True))
    model.compile(loss='mse', optimizer='sgd')
    layer = model.layers[1]
    x = np.random.RandomState(0).randint(0, 10, (4, 4))
    y = np.random.RandomState(1).rand(4, 4, 3)
    for run in [lambda: model.fit(x, y, batch_size=2, epochs=1, verbose=0, shuffle=False),
                lambda: model.predict(x, batch_size=2),
                lambda: model.evaluate(x, y, batch_size=2, verbose=0)]:
        layer.reset_hidden_state()
        run()
        assert all(s.any() for cell in layer.get_hidden_state() for s in cell)


def test_a_batch_of_the_wrong_size_is_refused_with_a_clear_message():
    model = Sequential()
    model.add(Embedding(10, 3, input_length=4))
    model.add(_tiny_seq2seq(remember_state=True))
    x = np.zeros((3, 4), dtype='int32')
    assert_raises_with(Exception, lambda: model.predict(x, batch_size=3), 'batch_size=2',
            'exactly 2 sequences')
