"""seq2seq.guards: bad data given to fit/evaluate/predict/... of a model
holding the package's layers is refused before any batch runs, with a
message naming the argument, the value and what was expected, and the
refused call changes no weight, optimizer state or remembered state."""
import os
import sys
import traceback

import numpy as np
from keras.layers import Dense, Embedding, Input, TimeDistributed
from keras.models import Model, Sequential
from keras.utils import Sequence

from seq2seq import Seq2seq
from seq2seq.layers import input_checks as guards
from seq2seq._theano import patches
from seq2seq.models.conversation import stateful_layers
from seq2seq.layers.losses import sparse_softmax_crossentropy

BATCH = 2          # the remembered state's batch size
LENGTH, DIM = 4, 3
OUT_LENGTH, OUT_DIM = 2, 3
VOCAB, CLASSES = 7, 5

_models = {}


def _rng(seed=0):
    return np.random.RandomState(seed)


def stateful_model():
    """Seq2seq(remember_state=True, batch_size=2), trained one batch (so the
    optimizer has its weights); built once."""
    if 'stateful' not in _models:
        model = Sequential([Seq2seq(output_dim=OUT_DIM, hidden_dim=4, output_length=OUT_LENGTH,
                                    input_dim=DIM, input_length=LENGTH, batch_size=BATCH,
                                    remember_state=True)])
        model.compile('adam', 'mse')
        model.train_on_batch(good_x(BATCH), good_y(BATCH))
        _models['stateful'] = model
    return _models['stateful']


def ids_model(loss=sparse_softmax_crossentropy):
    """Token ids -> Embedding(7) -> Seq2seq -> softmax over 5 classes."""
    key = ('ids', loss)
    if key not in _models:
        ids = Input(shape=(LENGTH,), dtype='int32', name='ids')
        embedded = Embedding(VOCAB, DIM, name='embedding')(ids)
        hidden = Seq2seq(output_dim=OUT_DIM, hidden_dim=4, output_length=OUT_LENGTH)(embedded)
        output = TimeDistributed(Dense(CLASSES, activation='softmax'), name='probs')(hidden)
        model = Model(ids, output)
        model.compile('adam', loss)
        model.train_on_batch(good_ids(BATCH), good_targets(BATCH))
        _models[key] = model
    return _models[key]


def good_x(n, seed=0):
    return _rng(seed).uniform(-1, 1, (n, LENGTH, DIM)).astype('float32')


def good_y(n, seed=1):
    return _rng(seed).uniform(-1, 1, (n, OUT_LENGTH, OUT_DIM)).astype('float32')


def good_ids(n, seed=2):
    return _rng(seed).randint(0, VOCAB, (n, LENGTH))


def good_targets(n, seed=3):
    return _rng(seed).randint(0, CLASSES, (n, OUT_LENGTH, 1))


def snapshot(model):
    """Weights, optimizer weights and remembered states, as copies."""
    arrays = [w.copy() for w in model.get_weights()]
    if getattr(model, 'optimizer', None) is not None:
        arrays += [w.copy() for w in model.optimizer.get_weights()]
    for layer in stateful_layers(model):
        arrays += [s.copy() for cell in layer.get_hidden_state() for s in cell]
    return arrays


def assert_refused(model, call, exception, *words):
    """call() raises `exception` from the seq2seq package with every word in
    its message, and the model is bit for bit what it was."""
    before = snapshot(model)
    try:
        call()
    except exception as error:
        message = str(error)
        for word in words:
            assert word in message, '%r not in %r' % (word, message)
        raising_file = traceback.extract_tb(sys.exc_info()[2])[-1].filename
        assert os.sep + 'seq2seq' + os.sep in raising_file \
            and 'site-packages' not in raising_file, raising_file
    else:
        raise AssertionError('%s not raised' % exception.__name__)
    after = snapshot(model)
    assert len(after) == len(before)
    for old, new in zip(before, after):
        assert np.array_equal(old, new), 'a refused call changed the model'


# -- the switch -------------------------------------------------------------------------
def test_the_checks_are_a_patch_that_can_be_switched_off():
    assert 'input_checks' in patches.PATCHES
    assert not patches.PATCHES['input_checks'].changes_theano
    assert 'input_checks' not in patches.enabled(environ={'SEQ2SEQ_PATCH_INPUT_CHECKS': '0'})
    assert 'input_checks' in patches.enabled(environ={'SEQ2SEQ_PATCH_THEANO': '0'})
    assert guards.is_installed()


def test_a_model_without_our_layers_is_left_alone():
    model = Sequential([Dense(2, input_shape=(3,))])
    model.compile('sgd', 'mse')
    assert guards.model_plan(model) is None
    x = np.full((2, 3), np.nan, dtype='float32')
    assert np.isnan(model.predict(x)).all()     # Keras' behaviour, unchecked


# -- non-finite values ----------------------------------------------------------------------
def test_nan_input_is_refused():
    model = stateful_model()
    x = good_x(BATCH)
    x[1, 2, 0] = np.nan
    assert_refused(model, lambda: model.fit(x, good_y(BATCH), verbose=0, shuffle=False),
                   ValueError, 'fit', 'x ', 'nan', '(1, 2, 0)', 'finite')


def test_inf_input_is_refused_in_predict_and_train_on_batch():
    model = stateful_model()
    x = good_x(BATCH)
    x[0, 0, 1] = -np.inf
    assert_refused(model, lambda: model.predict(x), ValueError, 'predict', '-inf', '(0, 0, 1)')
    assert_refused(model, lambda: model.train_on_batch(x, good_y(BATCH)), ValueError,
                   'train_on_batch', '-inf')


def test_a_float64_value_beyond_float32_is_refused():
    model = stateful_model()
    x = good_x(BATCH).astype('float64')
    x[0, 3, 2] = 1e39
    assert_refused(model, lambda: model.evaluate(x, good_y(BATCH), verbose=0), ValueError,
                   'evaluate', '1e+39', '(0, 3, 2)', 'float32')


def test_nan_target_and_nan_sample_weight_are_refused():
    model = stateful_model()
    y = good_y(BATCH)
    y[1, 1, 2] = np.nan
    assert_refused(model, lambda: model.test_on_batch(good_x(BATCH), y), ValueError,
                   'test_on_batch', 'y ', 'nan', '(1, 1, 2)')
    weights = np.array([1.0, np.nan])
    assert_refused(model, lambda: model.fit(good_x(BATCH), good_y(BATCH), sample_weight=weights,
                                            verbose=0, shuffle=False),
                   ValueError, 'sample_weight', 'nan')


def test_nan_validation_data_is_refused_before_training():
    model = stateful_model()
    val_x = good_x(BATCH)
    val_x[0, 0, 0] = np.nan
    assert_refused(model, lambda: model.fit(good_x(BATCH), good_y(BATCH), verbose=0,
                                            shuffle=False,
                                            validation_data=(val_x, good_y(BATCH))),
                   ValueError, 'validation_data[0]', 'nan')


# -- shapes and types ---------------------------------------------------------------------------
def test_wrong_feature_size_and_rank_are_refused():
    model = stateful_model()
    assert_refused(model, lambda: model.predict(np.zeros((BATCH, LENGTH, 5))), ValueError,
                   'predict', 'x ', '(batch, 4, 3)', '(2, 4, 5)')
    assert_refused(model, lambda: model.predict(np.zeros((BATCH, LENGTH))), ValueError,
                   'predict', '3 dimensions', '(2, 4)')
    assert_refused(model, lambda: model.fit(good_x(BATCH), np.zeros((BATCH, 3, OUT_DIM)),
                                            verbose=0, shuffle=False),
                   ValueError, 'fit', 'y ', '(batch, 2, 3)', '(2, 3, 3)')


def test_complex_strings_and_empty_arrays_are_refused():
    model = stateful_model()
    assert_refused(model, lambda: model.predict(good_x(BATCH) * 1j), TypeError,
                   'predict', 'complex')
    assert_refused(model, lambda: model.predict(np.full((BATCH, LENGTH, DIM), 'a')), TypeError,
                   'predict', 'numbers', '<U1')
    assert_refused(model, lambda: model.predict(np.zeros((0, LENGTH, DIM))), ValueError,
                   'predict', 'empty', '(0, 4, 3)')


def test_sample_counts_must_agree_and_the_inputs_be_counted_right():
    model = ids_model()
    assert_refused(model, lambda: model.fit(good_ids(4), good_targets(3), verbose=0),
                   ValueError, 'fit', 'same number of samples', '4', '3')
    assert_refused(model, lambda: model.predict([good_ids(2), good_ids(2)]), ValueError,
                   'predict', '1 array', 'ids', 'got 2')
    assert_refused(model, lambda: model.predict({'source': good_ids(2)}), ValueError,
                   'predict', "['ids']", "['source']")


# -- the remembered state's batch size ----------------------------------------------------------------
def test_predict_without_batch_size_uses_the_state_batch_size():
    model = stateful_model()
    before = snapshot(model)[:len(model.get_weights())]
    assert model.predict(good_x(3 * BATCH)).shape == (3 * BATCH, OUT_LENGTH, OUT_DIM)
    for old, new in zip(before, model.get_weights()):
        assert np.array_equal(old, new)


def test_predict_uses_the_state_batch_size_when_the_input_has_none():
    # Keras' default batch_size is 32 when the Input's batch size is not
    # fixed; the remembered state holds 2 rows.
    if 'free_input' not in _models:
        source = Input(shape=(LENGTH, DIM))
        output = Seq2seq(output_dim=OUT_DIM, hidden_dim=4, output_length=OUT_LENGTH,
                         batch_size=BATCH, remember_state=True)(source)
        _models['free_input'] = Model(source, output)
    model = _models['free_input']
    assert model.predict(good_x(3 * BATCH)).shape == (3 * BATCH, OUT_LENGTH, OUT_DIM)
    model.reset_states()
    assert_refused(model, lambda: model.predict(good_x(5)), ValueError, '5 samples',
                   'multiple of 2')


def test_another_batch_size_is_refused():
    model = stateful_model()
    assert_refused(model, lambda: model.predict(good_x(6), batch_size=3), ValueError,
                   'predict', 'batch_size=3', 'batch_size=2')
    assert_refused(model, lambda: model.fit(good_x(4), good_y(4), batch_size=4, verbose=0,
                                            shuffle=False),
                   ValueError, 'fit', 'batch_size=4', 'batch_size=2')
    assert_refused(model, lambda: model.predict(good_x(2), batch_size=0), ValueError,
                   'batch_size', '0')
    assert_refused(model, lambda: model.predict(good_x(2), batch_size='2'), TypeError,
                   'batch_size', "'2'")


def test_a_sample_count_not_a_multiple_of_the_state_batch_size_is_refused():
    model = stateful_model()
    assert_refused(model, lambda: model.fit(good_x(5), good_y(5), verbose=0, shuffle=False),
                   ValueError, 'fit', '5 samples', 'multiple of 2', 'hold 1')
    assert_refused(model, lambda: model.predict(good_x(1)), ValueError,
                   'predict', '1 samples', 'multiple of 2')
    assert_refused(model, lambda: model.fit(good_x(6), good_y(6), verbose=0, shuffle=False,
                                            validation_split=0.5),
                   ValueError, 'validation_split', '3 samples')


def test_a_batch_of_another_size_is_refused_by_the_batch_methods():
    model = stateful_model()
    assert_refused(model, lambda: model.train_on_batch(good_x(4), good_y(4)), ValueError,
                   'train_on_batch', '4 samples', 'exactly 2')
    assert_refused(model, lambda: model.predict_on_batch(good_x(1)), ValueError,
                   'predict_on_batch', '1 samples', 'exactly 2')


class _Batches(Sequence):
    def __init__(self, sizes):
        self.sizes = sizes

    def __len__(self):
        return len(self.sizes)

    def __getitem__(self, index):
        n = self.sizes[index]
        return good_x(n, seed=index), good_y(n, seed=index)


def test_a_partial_last_batch_of_a_sequence_is_refused_before_the_first_batch():
    model = stateful_model()
    assert_refused(model, lambda: model.fit_generator(_Batches([2, 2, 1]), epochs=1, verbose=0,
                                                      workers=0, shuffle=False),
                   ValueError, 'fit_generator', 'batch 2', '1 samples', 'exactly 2')
    assert_refused(model, lambda: model.predict_generator(_Batches([2, 1]), workers=0),
                   ValueError, 'predict_generator', '1 samples')


def test_validation_arrays_of_fit_generator_are_checked_before_the_first_batch():
    model = stateful_model()
    val_y = good_y(BATCH)
    val_y[0, 0, 0] = np.inf
    assert_refused(model, lambda: model.fit_generator(_Batches([2, 2]), epochs=1, verbose=0,
                                                      workers=0, shuffle=False,
                                                      validation_data=(good_x(BATCH), val_y)),
                   ValueError, 'fit_generator', 'validation_data[1]', 'inf')
    assert_refused(model, lambda: model.fit_generator(_Batches([2, 2]), epochs=1, verbose=0,
                                                      workers=0, shuffle=False,
                                                      validation_data=(good_x(3), good_y(3))),
                   ValueError, 'fit_generator', 'validation_data[0]', '3 samples')


def test_a_partial_batch_of_a_generator_is_refused_before_it_runs():
    model = stateful_model()

    def batches():
        yield good_x(2), good_y(2)
        yield good_x(1), good_y(1)

    after_one_batch = []

    def one_batch():
        model.train_on_batch(good_x(2), good_y(2))
        after_one_batch.extend(snapshot(model))

    saved = snapshot(model)
    one_batch()
    # Back to the saved state, then the generator: its first batch runs, the
    # partial second one is refused before it runs.
    _restore(model, saved)
    try:
        model.fit_generator(batches(), steps_per_epoch=2, epochs=1, verbose=0, workers=0)
    except ValueError as error:
        assert 'train_on_batch' in str(error) and '1 samples' in str(error), error
    else:
        raise AssertionError('the partial batch was not refused')
    for old, new in zip(after_one_batch, snapshot(model)):
        assert np.array_equal(old, new), 'the refused batch changed the model'


def _restore(model, arrays):
    n_weights = len(model.get_weights())
    n_optimizer = len(model.optimizer.get_weights())
    model.set_weights(arrays[:n_weights])
    model.optimizer.set_weights(arrays[n_weights:n_weights + n_optimizer])
    rest = arrays[n_weights + n_optimizer:]
    for layer in stateful_layers(model):
        states = layer.get_hidden_state()
        shaped = []
        for cell in states:
            shaped.append(rest[:len(cell)])
            rest = rest[len(cell):]
        layer.set_hidden_state(shaped)


# -- token ids ---------------------------------------------------------------------------------
def test_bad_token_ids_are_refused():
    model = ids_model()
    for value, words in [(-1, ['-1', '[0, 7)']), (VOCAB, ['7', '[0, 7)', 'input_dim=7']),
                         (2.7, ['2.7', 'whole-number']), (np.nan, ['nan', 'whole-number'])]:
        ids = good_ids(BATCH).astype('float64' if isinstance(value, float) else 'int64')
        ids[1, 3] = value
        assert_refused(model, lambda: model.fit(ids, good_targets(BATCH), verbose=0),
                       ValueError, 'fit', 'x ', "'embedding'", '(1, 3)', *words)
    ids = good_ids(BATCH).astype(bool)
    assert_refused(model, lambda: model.predict(ids), TypeError, 'predict', 'booleans')


def test_whole_float_ids_are_taken():
    model = ids_model()
    ids = good_ids(BATCH)
    assert np.array_equal(model.predict(ids.astype('float32')), model.predict(ids))


# -- targets of the sparse losses ---------------------------------------------------------------
def test_bad_sparse_targets_are_refused():
    for loss in (sparse_softmax_crossentropy, 'sparse_categorical_crossentropy'):
        model = ids_model(loss)
        for value, words in [(CLASSES, ['5', '[0, 5)']), (-1, ['-1', '[0, 5)']),
                             (2.7, ['2.7', 'whole-number']), (np.nan, ['nan'])]:
            targets = good_targets(BATCH).astype(
                'float64' if isinstance(value, float) else 'int64')
            targets[0, 1, 0] = value
            assert_refused(model, lambda: model.fit(good_ids(BATCH), targets, verbose=0),
                           ValueError, 'fit', 'y ', '(0, 1, 0)', 'class ids', *words)


def test_sparse_targets_without_the_trailing_axis_train():
    for loss in (sparse_softmax_crossentropy, 'sparse_categorical_crossentropy'):
        model = ids_model(loss)
        ids, targets = good_ids(BATCH), good_targets(BATCH)
        with_axis = model.evaluate(ids, targets, verbose=0)
        without = model.evaluate(ids, targets[..., 0], verbose=0)
        assert np.allclose(with_axis, without), (with_axis, without)
        history = model.fit(ids, targets[..., 0], verbose=0, epochs=1)
        assert np.isfinite(history.history['loss'][0])


# -- after a call ----------------------------------------------------------------------------------
def test_the_remembered_states_are_checked_after_each_call():
    model = stateful_model()
    calls = []

    class Recorder(object):
        @staticmethod
        def check_states_finite(checked):
            calls.append(checked)

    saved = guards._state_checks.get('module')
    guards._state_checks['module'] = Recorder
    try:
        model.predict(good_x(BATCH))
        model.test_on_batch(good_x(BATCH), good_y(BATCH))
    finally:
        guards._state_checks['module'] = saved
    assert calls == [model, model]


# -- decoding ---------------------------------------------------------------------------------------
def test_decoding_refuses_bad_ids_and_nan_sources_before_compiling():
    from seq2seq.search import model_search as inference
    model = ids_model()
    for value, words in [(VOCAB, ['7', '[0, 7)']), (-1, ['-1']), (2.7, ['2.7'])]:
        ids = good_ids(BATCH).astype('float64' if isinstance(value, float) else 'int64')
        ids[0, 1] = value
        model.__dict__.pop(inference._CACHE_ATTRIBUTE, None)
        for decode in (inference.greedy_decode, inference.beam_decode):
            assert_refused(model, lambda: decode(model, ids), ValueError,
                           'x ', "'embedding'", '(0, 1)', *words)
            assert inference._CACHE_ATTRIBUTE not in model.__dict__, 'compiled before checking'
    model = stateful_model()
    x = good_x(BATCH)
    x[1, 0, 0] = np.nan
    assert_refused(model, lambda: inference.greedy_decode(model, x), ValueError,
                   'x ', 'nan', '(1, 0, 0)')


def test_a_step_fn_returning_probabilities_is_refused():
    from seq2seq.search.numpy_search import beam_search, greedy_search
    probabilities = np.array([[0.2, 0.5, 0.3], [0.6, 0.1, 0.3]])

    def step_fn(tokens, states):
        return probabilities, states

    for search, args in [(greedy_search, (3,)), (beam_search, (2, 3))]:
        try:
            search(step_fn, [np.zeros((2, 1))], *args)
        except ValueError as error:
            for word in ('log-probabilities', '0.6', 'row 1', 'token 0', 'np.log'):
                assert word in str(error), (word, str(error))
        else:
            raise AssertionError('probabilities were taken for log-probabilities')
    # Their logs are taken.
    tokens, _, _ = greedy_search(lambda t, s: (np.log(probabilities), s), [np.zeros((2, 1))], 2)
    assert tokens.tolist() == [[1, 1], [0, 0]]
