"""The remembered state stays finite: bad values given to set_hidden_state
are refused with nothing written, a batch ending in NaN/inf keeps the old
state (scan and fused loops) and check_states_finite says so, and
batch_size / input_length that contradict the input are refused when the
model is built."""
import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from keras.layers import Dense, Embedding, Input
from keras.models import Sequential

from seq2seq import LSTMDecoder, RecurrentEncoder, Seq2seq
from seq2seq.legacy.lstm_encoder import LSTMEncoder as LSTMEncoder2015
from seq2seq.models import SimpleSeq2Seq
from seq2seq.layers.state_checks import (check_states_finite, guarded_state_updates,
                                         new_refusal_counter, refused_batches)
from tests.helpers import assert_raises_with

BATCH = 2


def _seq2seq(implementation='scan', depth=(1, 2)):
    return Seq2seq(input_length=4, input_dim=3, hidden_dim=5, output_dim=3, output_length=2,
                   batch_size=BATCH, depth=depth, remember_state=True,
                   implementation=implementation)


def _model(implementation):
    model = Sequential()
    model.add(_seq2seq(implementation, depth=1))
    model.compile(loss='mse', optimizer='sgd')
    return model


def _state_bytes(layer):
    """The remembered states, exactly: the bytes of every array."""
    return [state.tobytes() for cell in layer.get_hidden_state() for state in cell]


def _random_state(layer, seed=0):
    rng = np.random.RandomState(seed)
    return [[rng.uniform(-1, 1, state.shape) for state in cell]
            for cell in layer.get_hidden_state()]


def _batch(seed=0):
    return np.random.RandomState(seed).uniform(-1, 1, (BATCH, 4, 3)).astype(K.floatx())


# -- set_hidden_state ----------------------------------------------------------------
def _with_last_array(state, value):
    """`state` with its last array (the c of the last cell) replaced: every
    array before it is valid, so a half-done write would show."""
    bad = [list(cell) for cell in state]
    bad[-1][-1] = value
    return bad


def test_set_hidden_state_refuses_bad_values_and_changes_nothing():
    assert K.floatx() == 'float32', 'the overflow case assumes float32 states'
    layer = _seq2seq()
    good = _random_state(layer)
    layer.set_hidden_state(good)
    before = _state_bytes(layer)
    shape = good[-1][-1].shape                                   # (2, 3)
    last = 'hidden_state[2][1]'
    nan, inf = np.array(good[-1][-1]), np.array(good[-1][-1])
    nan[1, 2], inf[0, 1] = np.nan, np.inf
    cases = [
        (ValueError, nan, [last, 'finite', '1 NaN', '(1, 2)']),
        (ValueError, inf, [last, 'finite', '1 inf', '(0, 1)']),
        (ValueError, -inf, [last, 'finite', '1 inf']),
        (ValueError, np.full(shape, 1e39), [last, 'float32', '1e+39', 'inf']),
        (TypeError, np.ones(shape) + 1j, [last, 'complex']),
        (TypeError, np.empty(shape, dtype=object), [last, 'real numbers', 'object']),
        (TypeError, np.full(shape, 'a'), [last, 'real numbers']),
        (TypeError, np.ones(shape, dtype=bool), [last, 'real numbers', 'bool']),
        (TypeError, None, [last, 'real numbers', 'None']),
        (TypeError, [[0.0, 1.0, 2.0], [0.0]], [last, 'real numbers']),   # ragged
        (ValueError, np.zeros((3, 2)), [last, '(2, 3)', '(3, 2)']),
        (ValueError, np.zeros(6), [last, '(2, 3)', '(6,)']),
    ]
    for error, value, words in cases:
        assert_raises_with(error, lambda: layer.set_hidden_state(_with_last_array(good, value)),
                           *words)
        assert _state_bytes(layer) == before, 'a refused call changed the state: %r' % words


def test_set_hidden_state_refuses_wrong_nesting_and_changes_nothing():
    layer = _seq2seq()
    good = _random_state(layer)
    layer.set_hidden_state(good)
    before = _state_bytes(layer)
    flat = [state for cell in good for state in cell]
    cases = [
        (flat, ['hidden_state', '3 lists', '6 entries']),
        (flat[:3], ['hidden_state[0]', '2 arrays', 'array of shape (2, 5)']),
        (good[:2], ['hidden_state', '3 lists', '2 entries']),
        (good + [good[0]], ['hidden_state', '3 lists', '4 entries']),
        ([good], ['hidden_state', '3 lists', '1 entries']),
        ([good[0], [good[1][0]], good[2]], ['hidden_state[1]', '2 arrays', '1 entries']),
        ({'h': 0}, ['hidden_state', '3 lists', 'dict']),
        (np.zeros((3, 2, BATCH, 3)), ['hidden_state', '3 lists', 'array of shape']),
    ]
    for value, words in cases:
        assert_raises_with(ValueError, lambda: layer.set_hidden_state(value), *words)
        assert _state_bytes(layer) == before, 'a refused call changed the state: %r' % words
    layer.set_hidden_state([[np.ones((BATCH, 5), dtype='int64')] * 2, good[1], good[2]])
    assert np.array_equal(layer.get_hidden_state()[0][0], np.ones((BATCH, 5)))  # ints are numbers


def test_2015_encoder_pair_is_checked_before_writing():
    encoder = LSTMEncoder2015(4, input_dim=3, input_length=5, batch_size=BATCH,
                              remember_state=True)
    h, c = np.full((BATCH, 4), 0.5), np.full((BATCH, 4), -0.5)
    encoder.set_hidden_state([h, c])
    before = _state_bytes(encoder)
    assert_raises_with(ValueError, lambda: encoder.set_hidden_state([h * 0, c * np.nan]),
                       'hidden_state[0][1]', 'c of cell 0', 'NaN')
    assert _state_bytes(encoder) == before
    encoder.set_hidden_state([h.tolist(), c.tolist()])      # the pair as nested lists
    assert _state_bytes(encoder) == before
    assert_raises_with(ValueError, lambda: LSTMEncoder2015(
        4, input_dim=3, batch_size=BATCH, remember_state=True, hidden_state=[h, c * np.inf]),
        'hidden_state[0][1]', 'inf')


# -- a batch whose final state is not finite -------------------------------------------
# The call guard of seq2seq.guards refuses NaN/inf data before a call, so a
# NaN state comes here from NaN weights (e.g. after training diverged).
def _refusal_message(model, call):
    """Run `call`, whose final state must be refused: check_states_finite
    raises, inside the call (the call guard runs it after fit, predict, ...)
    or right after it. Returns the message."""
    try:
        call()
        check_states_finite(model)
    except ValueError as error:
        return str(error)
    raise AssertionError('the non-finite state was not reported')


def _with_nan_kernel(model):
    """Set a NaN into the encoder's kernel; returns the finite weights."""
    weights = model.get_weights()
    poisoned = [w.copy() for w in weights]
    poisoned[0][0, 0] = np.nan
    model.set_weights(poisoned)
    return weights


def _check_nan_batch_keeps_the_state(implementation):
    model = _model(implementation)
    layer = model.layers[0]
    model.predict(_batch(1), batch_size=BATCH)
    kept = layer.get_hidden_state()
    before = _state_bytes(layer)
    assert all(np.abs(state).sum() > 0 for cell in kept for state in cell)
    weights = _with_nan_kernel(model)
    message = _refusal_message(model, lambda: model.predict(_batch(2), batch_size=BATCH))
    for word in ['non-finite hidden state', 'NaN/inf', 'kept', layer.name, '1 batch']:
        assert word in message, '%r not in %r' % (word, message)
    assert _state_bytes(layer) == before, 'a NaN batch changed the remembered state'
    assert refused_batches(model) == {layer.name: 0}          # reported, so reset
    # With finite weights again, a batch continues from the kept state, as
    # if the NaN batch had never run, and writes its own final state.
    model.set_weights(weights)
    x = _batch(3)
    after_refusal = model.predict(x, batch_size=BATCH)
    assert _state_bytes(layer) != before
    assert all(np.isfinite(state).all() for cell in layer.get_hidden_state() for state in cell)
    check_states_finite(model)
    layer.set_hidden_state(kept)
    assert np.array_equal(model.predict(x, batch_size=BATCH), after_refusal)


def test_nan_batch_keeps_the_state_scan():
    _check_nan_batch_keeps_the_state('scan')


def test_nan_batch_keeps_the_state_fused():
    _check_nan_batch_keeps_the_state('fused')


def test_nan_batch_in_training_keeps_the_state():
    model = _model('fused')
    layer = model.layers[0]
    layer.set_hidden_state(_random_state(layer, seed=4))
    before = _state_bytes(layer)
    _with_nan_kernel(model)
    message = _refusal_message(
        model, lambda: model.train_on_batch(_batch(5), np.zeros((BATCH, 2, 3))))
    assert layer.name in message and 'kept' in message
    assert _state_bytes(layer) == before


def test_guarded_updates_keep_every_state_if_one_entry_is_nan_or_inf():
    # The graph guard alone: two states, the second given with one bad entry.
    h, c = theano.shared(np.ones((2, 3))), theano.shared(np.ones((2, 3)) * 2)
    counter = new_refusal_counter('refused')
    new_h, new_c = T.dmatrix('new_h'), T.dmatrix('new_c')
    step = theano.function([new_h, new_c], [],
                           updates=guarded_state_updates([h, c], [new_h, new_c], counter))
    for bad in [np.nan, np.inf, -np.inf]:
        value = np.zeros((2, 3))
        value[1, 2] = bad
        step(np.full((2, 3), 5.0), value)
        assert np.array_equal(h.get_value(), np.ones((2, 3)))
        assert np.array_equal(c.get_value(), np.ones((2, 3)) * 2)
    assert counter.get_value() == 3
    step(np.full((2, 3), 5.0), np.full((2, 3), 6.0))
    assert np.array_equal(h.get_value(), np.full((2, 3), 5.0))
    assert np.array_equal(c.get_value(), np.full((2, 3), 6.0))
    assert counter.get_value() == 3


def test_check_states_finite_on_models_without_remembered_state():
    plain = Sequential([Dense(2, input_shape=(3,))])
    check_states_finite(plain)
    stateless = Sequential([Seq2seq(input_length=4, input_dim=3, hidden_dim=5, output_dim=3,
                                    output_length=2)])
    check_states_finite(stateless)
    assert refused_batches(stateless) == {}


# -- build-time checks -----------------------------------------------------------------
def test_input_length_that_contradicts_the_input_is_refused_when_built():
    layer = Seq2seq(input_length=4, hidden_dim=5, output_dim=3, output_length=2)
    assert_raises_with(ValueError, lambda: layer(Input((6, 3))),
                       layer.name, 'input_length=4', '6 steps')
    model = Sequential([Embedding(10, 3, input_length=6)])
    assert_raises_with(ValueError, lambda: model.add(
        Seq2seq(input_length=4, hidden_dim=5, output_dim=3, output_length=2)),
        'input_length=4', '6 steps')
    encoder = RecurrentEncoder(4, input_length=5)
    assert_raises_with(ValueError, lambda: encoder(Input((7, 3))), 'input_length=5', '7 steps')
    assert_raises_with(ValueError, lambda: SimpleSeq2Seq(
        output_dim=3, output_length=2, batch_input_shape=(8, 6, 3), input_length=4),
        'SimpleSeq2Seq', 'input_length=4', '(8, 6, 3)')
    # Matching or unknown lengths are accepted.
    Seq2seq(input_length=4, hidden_dim=5, output_dim=3, output_length=2)(Input((4, 3)))
    Seq2seq(input_length=4, hidden_dim=5, output_dim=3, output_length=2)(Input((None, 3)))


def test_batch_size_that_contradicts_the_input_is_refused_when_built():
    layer = Seq2seq(hidden_dim=5, output_dim=3, output_length=2, batch_size=BATCH,
                    remember_state=True)
    assert_raises_with(ValueError, lambda: layer(Input(batch_shape=(3, 4, 3))),
                       layer.name, 'batch_size=2', 'batch of 3')
    decoder = LSTMDecoder(3, 5, 2, batch_size=BATCH, remember_state=True)
    assert_raises_with(ValueError, lambda: decoder(Input(batch_shape=(5, 3))),
                       'batch_size=2', 'batch of 5')
    assert_raises_with(ValueError, lambda: SimpleSeq2Seq(
        output_dim=3, output_length=2, batch_input_shape=(8, 4, 3), batch_size=4, stateful=True),
        'SimpleSeq2Seq', 'batch_size=4', '(8, 4, 3)')
    # An unknown batch is not a contradiction (predict checks it per call).
    Seq2seq(hidden_dim=5, output_dim=3, output_length=2, batch_size=BATCH,
            remember_state=True)(Input((4, 3)))
