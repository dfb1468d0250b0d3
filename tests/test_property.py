"""Property: a call of fit/evaluate/predict/*_on_batch of a model holding
the package's layers either works, with outputs of the right shape, or
raises a ValueError/TypeError from the seq2seq package (never from inside
Theano or Keras) and leaves the weights, the optimizer's weights and the
remembered states bit for bit as they were.

Hypothesis draws the model (with or without remember_state, depth 1 or 2,
vectors or token ids, the package's sparse loss or Keras' own), the call,
the number of samples, the batch_size argument, the sequence length and one
corruption of the data (or none). Whether the call must be refused is
worked out here from the drawn values, independently of the checks.

The fast tier draws from two of the four models (between them: vectors and
ids, remembered state and none, depth 1 and 2, the package's sparse loss);
the slow test from all four.
"""
import collections
import os
import sys
import traceback

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from keras.layers import Dense, Embedding, Input, TimeDistributed
from keras.models import Model
from nose.plugins.attrib import attr

import seq2seq
from seq2seq import Seq2seq
from seq2seq.models.conversation import stateful_layers
from seq2seq.layers.losses import sparse_softmax_crossentropy

PACKAGE_DIR = os.path.dirname(os.path.abspath(seq2seq.__file__))
DIM, OUT_LENGTH, OUT_DIM, VOCAB, CLASSES, HIDDEN = 3, 2, 3, 7, 5, 4
FIXED_LENGTH = 4        # the input length of the models with remembered state

# name -> (ids?, remembered batch size or None, depth, loss)
CONFIGS = {
    'vectors': (False, None, 1, 'mse'),
    'vectors_stateful_deep': (False, 2, 2, 'mse'),
    'ids_deep': (True, None, (2, 1), sparse_softmax_crossentropy),
    'ids_stateful': (True, 3, 1, 'sparse_categorical_crossentropy'),
}
_models = {}
_outcomes = collections.Counter()    # 'taken' / 'refused', over the drawn calls

CALLS = ('fit', 'evaluate', 'predict', 'train_on_batch', 'test_on_batch', 'predict_on_batch')
CORRUPTIONS = ('none', 'nan', 'inf', 'huge', 'feature_size', 'rank', 'complex', 'empty',
               'sample_mismatch', 'bad_id', 'fractional_id', 'negative_id', 'bad_target',
               'fractional_target', 'nan_target', 'target_shape')


def get_model(name):
    """The model `name` of CONFIGS, built, compiled and trained one batch once."""
    if name not in _models:
        ids, state_batch, depth, loss = CONFIGS[name]
        length = FIXED_LENGTH if state_batch else None
        stateful = dict(remember_state=True, batch_size=state_batch) if state_batch else {}
        if ids:
            source = Input(batch_shape=(state_batch, length), dtype='int32', name='source')
            tensor = Embedding(VOCAB, DIM, name='embedding')(source)
        else:
            source = tensor = Input(batch_shape=(state_batch, length, DIM), name='source')
        tensor = Seq2seq(output_dim=OUT_DIM, hidden_dim=HIDDEN, output_length=OUT_LENGTH,
                         depth=depth, **stateful)(tensor)
        if ids:
            tensor = TimeDistributed(Dense(CLASSES, activation='softmax'), name='probs')(tensor)
        model = Model(source, tensor)
        model.compile('adam', loss)
        n = state_batch or 2
        x, y = good_data(name, n, FIXED_LENGTH, np.random.RandomState(0))
        model.train_on_batch(x, y)
        _models[name] = model
    return _models[name]


def good_data(name, n, length, rng):
    ids = CONFIGS[name][0]
    if ids:
        x = rng.randint(0, VOCAB, (n, length))
        y = rng.randint(0, CLASSES, (n, OUT_LENGTH, 1))
    else:
        x = rng.uniform(-1, 1, (n, length, DIM)).astype('float32')
        y = rng.uniform(-1, 1, (n, OUT_LENGTH, OUT_DIM)).astype('float32')
    return x, y


def corrupt(name, corruption, x, y, rng):
    """x, y with `corruption` applied; (x, y, applies) where `applies` says
    whether this corruption means anything for this model."""
    ids = CONFIGS[name][0]
    position = tuple(rng.randint(0, size) for size in x.shape) if x.size else None
    target_position = tuple(rng.randint(0, size) for size in y.shape) if y.size else None
    if corruption in ('nan', 'inf', 'huge'):
        if ids or position is None:
            return x, y, False
        x = x.astype('float64')
        x[position] = {'nan': np.nan, 'inf': -np.inf, 'huge': 1e39}[corruption]
    elif corruption == 'feature_size':
        x = np.zeros(x.shape[:2] + (x.shape[2] + 2,)) if not ids else np.zeros(x.shape + (2,))
    elif corruption == 'rank':
        x = x[..., 0] if not ids else x[:, :, None]
    elif corruption == 'complex':
        x = x * (1 + 1j)
    elif corruption == 'sample_mismatch':
        y = np.concatenate([y, y[:1]]) if len(y) else y[:0]
        return x, y, len(x) > 0
    elif corruption in ('bad_id', 'fractional_id', 'negative_id'):
        if not ids or position is None:
            return x, y, False
        x = x.astype('float64')
        x[position] = {'bad_id': VOCAB, 'fractional_id': 2.5, 'negative_id': -1}[corruption]
    elif corruption in ('bad_target', 'fractional_target', 'nan_target'):
        if target_position is None or (not ids and corruption != 'nan_target'):
            return x, y, False
        y = y.astype('float64')
        y[target_position] = {'bad_target': CLASSES, 'fractional_target': 1.5,
                              'nan_target': np.nan}[corruption]
    elif corruption == 'target_shape':
        y = np.concatenate([y, y[:, :1]], axis=1)
    return x, y, corruption not in ('none', 'empty')


def snapshot(model):
    arrays = [w.copy() for w in model.get_weights()]
    arrays += [w.copy() for w in model.optimizer.get_weights()]
    for layer in stateful_layers(model):
        arrays += [s.copy() for cell in layer.get_hidden_state() for s in cell]
    return arrays


def run(model, call, x, y, batch_size):
    if call == 'fit':
        return model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0, shuffle=False)
    if call == 'evaluate':
        return model.evaluate(x, y, batch_size=batch_size, verbose=0)
    if call == 'predict':
        return model.predict(x, batch_size=batch_size)
    if call == 'predict_on_batch':
        return model.predict_on_batch(x)
    return getattr(model, call)(x, y)


def must_refuse(name, call, n, batch_size, corrupted):
    """Whether the call must be refused, from the drawn values alone."""
    state_batch = CONFIGS[name][1]
    if corrupted or n == 0:
        return True
    if state_batch is None:
        return False
    if call.endswith('_on_batch'):
        return n != state_batch
    return n % state_batch != 0 or batch_size not in (None, state_batch)


def check_one_drawn_call(names):
    """The property, as a Hypothesis test drawing one of the models `names`."""
    @given(st.data())
    def check(data):
        _check_one_drawn_call(data, sorted(names))
    return check


def _check_one_drawn_call(data, names):
    name = data.draw(st.sampled_from(names), label='model')
    call = data.draw(st.sampled_from(CALLS), label='call')
    state_batch = CONFIGS[name][1]
    unit = state_batch or 1
    # About half the draws clean, half the sample counts whole batches, so
    # that both sides of the property are reached often.
    corruption = data.draw(st.one_of(st.just('none'), st.sampled_from(CORRUPTIONS)),
                           label='corruption')
    n = data.draw(st.one_of(st.integers(1, 3).map(lambda k: k * unit), st.integers(0, 7)),
                  label='samples')
    batch_size = data.draw(st.one_of(st.none(), st.just(unit), st.integers(1, 4)),
                           label='batch_size')
    length = FIXED_LENGTH if state_batch else data.draw(st.integers(1, 5), label='length')
    seed = data.draw(st.integers(0, 2 ** 16), label='seed')
    model = get_model(name)
    rng = np.random.RandomState(seed)
    x, y = good_data(name, n, length, rng)
    if corruption == 'empty':
        x, y = x[:0], y[:0]
        n = 0
    x, y, corrupted = corrupt(name, corruption, x, y, rng)
    if call.startswith('predict') and corruption in ('sample_mismatch', 'bad_target',
                                                     'fractional_target', 'nan_target',
                                                     'target_shape'):
        corrupted = False           # predict takes no targets
    refuse = must_refuse(name, call, n, batch_size, corrupted)
    before = snapshot(model)
    try:
        result = run(model, call, x, y, batch_size)
    except (ValueError, TypeError) as error:
        raising = traceback.extract_tb(sys.exc_info()[2])[-1].filename
        assert os.path.abspath(raising).startswith(PACKAGE_DIR + os.sep), \
            'raised from %s: %s' % (raising, error)
        assert refuse, 'a good call (%s, %s, n=%d) was refused: %s' % (name, call, n, error)
        for old, new in zip(before, snapshot(model)):
            assert np.array_equal(old, new), 'the refused call changed the model'
        _outcomes['refused'] += 1
        return
    _outcomes['taken'] += 1
    assert not refuse, 'a bad call (%s, %s, %s, n=%d, batch_size=%r) was taken' % (
        name, call, corruption, n, batch_size)
    classes = CLASSES if CONFIGS[name][0] else OUT_DIM
    if call.startswith('predict'):
        assert result.shape == (n, OUT_LENGTH, classes), result.shape
    elif call == 'fit':
        assert np.isfinite(result.history['loss'][-1])
    else:
        assert np.isfinite(result)


def _check_property(names, examples):
    _outcomes.clear()
    settings(max_examples=examples, deadline=None, derandomize=True, database=None,
             suppress_health_check=[HealthCheck.too_slow])(check_one_drawn_call(names))()
    # The draws reach both sides of the property.
    assert _outcomes['taken'] >= 5 and _outcomes['refused'] >= 5, dict(_outcomes)


# Between them, these two models have vectors and token ids, remembered state
# and none, a decoder stack deeper than one and the package's sparse loss.
FAST_CONFIGS = ('vectors_stateful_deep', 'ids_deep')


def test_every_call_works_or_is_refused_cleanly_with_nothing_changed():
    _check_property(FAST_CONFIGS, 30)


@attr('slow')   # all four models (each compiles three functions)
def test_every_call_on_every_model_works_or_is_refused_cleanly_with_nothing_changed():
    _check_property(CONFIGS, 50)
