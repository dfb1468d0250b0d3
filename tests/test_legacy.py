"""Code written for the 2015 files runs unchanged: the 2015 positional
order of `Seq2seq`, the 2015 module paths (`seq2seq.lstm_encoder`,
`seq2seq.lstm_decoder`, `seq2seq.stateful_rnn`, `seq2seq.conversational`),
`Conversational` with remembered context, and the 2015 arguments that
cannot be honoured refused with what to do instead."""
import os
import shutil
import tempfile
import warnings

import numpy as np
from keras.layers import Activation, Dense, Embedding, Input
from keras.models import Model, Sequential, load_model
from numpy.testing import assert_allclose, assert_array_equal

from seq2seq.search import model_search as inference
from seq2seq.models.conversation import ConversationWindow
from seq2seq.legacy.conversational import Conversational, ShallowDecoderWarning
from seq2seq.legacy.lstm_decoder import LSTMDecoder, LSTMDecoder2
from seq2seq.legacy.lstm_encoder import LSTMEncoder
from seq2seq.layers.seq2seq_layer import Seq2seq
from seq2seq.legacy.stateful_rnn import StatefulRNN
from tests.helpers import assert_raises_with, compiled

VOCAB, EMBED, HIDDEN, LENGTH = 7, 4, 5, 3


def _ids(n, seed=0):
    return np.random.RandomState(seed).randint(1, VOCAB, (n, LENGTH))


# -- Seq2seq in the 2015 order -----------------------------------------------------------
def test_seq2seq_takes_the_2015_positional_order():
    # output_dim, hidden_dim, output_length, init, inner_init, forget_bias_init,
    # activation, inner_activation, weights, truncate_gradient, input_dim,
    # input_length, hidden_state, batch_size, depth, remember_state
    layer = Seq2seq(EMBED, HIDDEN, LENGTH, 'glorot_uniform', 'orthogonal', 'one', 'tanh',
                    'hard_sigmoid', None, -1, EMBED, LENGTH, None, 2, 2, True)
    by_keyword = Seq2seq(input_length=LENGTH, input_dim=EMBED, hidden_dim=HIDDEN,
                         output_dim=EMBED, output_length=LENGTH, batch_size=2, depth=2,
                         remember_state=True)
    config, expected = layer.get_config(), by_keyword.get_config()
    del config['name'], expected['name']
    assert config == expected
    assert (layer.output_dim, layer.hidden_dim, layer.output_length) == (EMBED, HIDDEN, LENGTH)
    assert layer.depth == (2, 2) and layer.remember_state and layer.batch_size == 2


def test_seq2seq_depth_as_int_tuple_or_list():
    for depth, pair in [(3, (3, 3)), ((1, 2), (1, 2)), ([2, 1], (2, 1))]:
        layer = Seq2seq(EMBED, HIDDEN, LENGTH, input_dim=EMBED, depth=depth)
        assert layer.depth == pair, depth
        assert len(layer.recurrent_cells()) == sum(pair)


def test_seq2seq_in_todays_positional_order_says_the_order_changed():
    # Seq2seq(input_length, input_dim, hidden_dim, output_dim, ...) positionally
    assert_raises_with(TypeError, lambda: Seq2seq(3, 4, 5, 6, 7), '2015', 'keyword', 'init=6')


def test_seq2seq_2015_nested_weights_are_refused():
    nested = [None, None, None]
    assert_raises_with(ValueError, lambda: Seq2seq(EMBED, HIDDEN, LENGTH, weights=nested),
                       'weights', '2015', 'set_weights')


def test_seq2seq_flat_weights_are_set_when_built():
    source = Sequential([Seq2seq(EMBED, HIDDEN, LENGTH, input_dim=EMBED, input_length=LENGTH)])
    weights = [w + 0.5 for w in source.get_weights()]
    target = Sequential([Seq2seq(EMBED, HIDDEN, LENGTH, weights=weights, input_dim=EMBED,
                                 input_length=LENGTH)])
    for given, got in zip(weights, target.get_weights()):
        assert_allclose(got, given)


def test_2015_style_script_fits_and_predicts_after_embedding():
    model = Sequential()
    model.add(Embedding(VOCAB, EMBED, input_length=LENGTH))
    model.add(Seq2seq(EMBED, HIDDEN, LENGTH, input_dim=EMBED, input_length=LENGTH))
    model.compile(loss='mse', optimizer='rmsprop')
    x, y = _ids(4), np.random.RandomState(1).rand(4, LENGTH, EMBED)
    before = model.predict(x)
    history = model.fit(x, y, batch_size=4, epochs=5, verbose=0)
    after = model.predict(x)
    assert after.shape == (4, LENGTH, EMBED)
    # One batch an epoch: fit's first loss, computed before any update, is
    # the mse of what predict gave; every step on the fixed batch lowers it.
    losses = history.history['loss'] + [np.mean((after - y) ** 2)]
    assert_allclose(losses[0], np.mean((before - y) ** 2), rtol=1e-4)
    assert all(b < a for a, b in zip(losses, losses[1:])), losses


# -- the 2015 modules ------------------------------------------------------------------------
def test_2015_encoder_and_decoder_modules_keep_their_state():
    model = Sequential()
    model.add(LSTMEncoder(input_dim=EMBED, output_dim=HIDDEN, input_length=LENGTH,
                          return_sequences=False, remember_state=True, batch_size=2))
    model.add(Dense(EMBED))
    model.add(LSTMDecoder(EMBED, HIDDEN, LENGTH, batch_size=2, remember_state=True))
    x = np.random.RandomState(0).rand(2, LENGTH, EMBED)
    first = model.predict(x, batch_size=2)
    encoder, decoder = model.layers[0], model.layers[2]
    assert isinstance(encoder, StatefulRNN) and isinstance(decoder, StatefulRNN)
    h, c = encoder.get_hidden_state()                # the 2015 pair [h, c]
    assert h.shape == c.shape == (2, HIDDEN) and np.abs(h).sum() > 0
    assert not np.allclose(model.predict(x, batch_size=2), first)   # started from the state
    encoder.reset_hidden_state()
    decoder.reset_hidden_state()
    assert_allclose(model.predict(x, batch_size=2), first, rtol=1e-5, atol=1e-6)
    encoder.set_hidden_state([h, c])
    assert_allclose(encoder.get_hidden_state()[0], h)


def test_2015_encoder_hidden_state_argument_is_the_pair():
    h = np.full((2, HIDDEN), 0.25, dtype='float32')
    encoder = LSTMEncoder(HIDDEN, input_dim=EMBED, input_length=LENGTH, batch_size=2,
                          remember_state=True, hidden_state=[h, -h])
    assert_allclose(encoder.get_hidden_state()[1], -h)


def test_2015_encoder_decoder_argument_is_refused():
    decoder = LSTMDecoder(EMBED, HIDDEN, LENGTH)
    assert_raises_with(ValueError, lambda: LSTMEncoder(HIDDEN, input_dim=EMBED, decoder=decoder),
                       'decoder', 'return_state', 'Seq2seq')


def test_2015_per_gate_weights_are_refused_with_the_conversion():
    per_gate = [np.zeros((EMBED, HIDDEN))] * 12
    assert_raises_with(ValueError, lambda: LSTMEncoder(HIDDEN, weights=per_gate, input_dim=EMBED),
                       'Keras 2 layout', 'np.concatenate([W_i, W_f, W_c, W_o], axis=1)')
    assert_raises_with(ValueError, lambda: LSTMDecoder2(EMBED, HIDDEN, LENGTH, weights=per_gate),
                       'LSTMDecoder2', '6 arrays')


# -- Conversational --------------------------------------------------------------------------
def test_conversational_is_encoder_dense_and_cho_decoder_in_one_pass():
    """Conversational(depth=1) computes the 2015 stack LSTMEncoder -> Dense ->
    LSTMDecoder2 with the encoder's final state handed to the decoder in the
    same pass, given the same weights in the same order."""
    layer = Conversational(EMBED, HIDDEN, LENGTH, input_dim=EMBED, input_length=LENGTH, depth=1)
    one_layer = Sequential([layer])
    inputs = Input((LENGTH, EMBED))
    context, h, c = LSTMEncoder(HIDDEN, return_state=True)(inputs)
    vector = Dense(EMBED)(context)
    stack = Model(inputs, LSTMDecoder2(EMBED, HIDDEN, LENGTH)([vector, h, c]))
    rng = np.random.RandomState(2)
    weights = [rng.uniform(-0.5, 0.5, w.shape) for w in one_layer.get_weights()]
    one_layer.set_weights(weights)
    stack.set_weights(weights)
    x = rng.rand(3, LENGTH, EMBED)
    assert_allclose(one_layer.predict(x), stack.predict(x), rtol=1e-4, atol=1e-5)
    # The context is read at every step: without it the output changes.
    names = [w.name.split('/')[-1] for w in layer.weights]
    weights[names.index('decoder_0_context_kernel')][:] = 0
    one_layer.set_weights(weights)
    assert not np.allclose(one_layer.predict(x), stack.predict(x), atol=1e-3)


def test_context_sensitive_conversation_and_reset_between_conversations():
    model = Sequential()
    model.add(Embedding(VOCAB, EMBED, input_length=LENGTH))
    model.add(Conversational(VOCAB, HIDDEN, LENGTH, input_dim=EMBED, input_length=LENGTH,
                             batch_size=2, depth=2, context_sensitive=True))
    model.compile(loss='mse', optimizer='sgd')
    layer = model.layers[1]
    assert layer.remember_state and layer.peek
    exchanges = [_ids(2, seed) for seed in range(3)]
    targets = np.random.RandomState(5).rand(2, LENGTH, VOCAB)
    for x in exchanges:                              # one conversation, one exchange a batch
        model.fit(x, targets, batch_size=2, epochs=1, verbose=0, shuffle=False)
    layer.reset_hidden_state()                       # the conversation ended
    first = [model.predict(x, batch_size=2) for x in exchanges]
    layer.reset_hidden_state()
    again = [model.predict(x, batch_size=2) for x in exchanges]
    for a, b in zip(first, again):                   # a new conversation starts afresh
        assert_allclose(b, a, rtol=1e-5, atol=1e-6)
    layer.reset_hidden_state()
    alone = model.predict(exchanges[1], batch_size=2)
    assert not np.allclose(alone, first[1], atol=1e-5)   # the answer depends on the context


def test_conversational_warns_when_it_cannot_remember_its_output():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        Conversational(EMBED, HIDDEN, LENGTH, batch_size=2, depth=[2, 1], context_sensitive=True)
        Conversational(EMBED, HIDDEN, LENGTH, batch_size=2, depth=2, context_sensitive=True)
    shallow = [w for w in caught if issubclass(w.category, ShallowDecoderWarning)]
    assert len(shallow) == 1 and 'remember its previous output' in str(shallow[0].message)


def test_conversational_saves_and_loads():
    model = Sequential([Embedding(VOCAB, EMBED, input_length=LENGTH),
                        Conversational(EMBED, HIDDEN, LENGTH, input_dim=EMBED, depth=(1, 2))])
    model.compile(loss='mse', optimizer='sgd')
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, 'model.h5')
        model.save(path)
        loaded = load_model(path)
    finally:
        shutil.rmtree(folder)
    layer = loaded.layers[1]
    assert type(layer) is Conversational and layer.peek and layer.depth == (1, 2)
    x = _ids(2)
    assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)


def test_conversational_decodes_step_by_step_as_predict():
    # The Cho-style decoder reads the context in seq2seq.inference's steps too.
    model = Sequential([Embedding(VOCAB, EMBED, input_length=LENGTH),
                        Conversational(VOCAB, HIDDEN, LENGTH, input_dim=EMBED, depth=(1, 2)),
                        Activation('softmax')])
    x = _ids(3)
    tokens, _, _ = inference.greedy_decode(model, x, feedback='readout', batch_size=3)
    assert_array_equal(tokens, model.predict(x).argmax(axis=-1))


def test_conversation_window_over_conversational_equals_one_exchange_at_a_time():
    # seq2seq.conversation trains a Conversational layer across exchanges:
    # the window computes what the context-sensitive layer computes exchange
    # by exchange, with the same weights.
    inner = Conversational(EMBED, HIDDEN, 2, input_dim=EMBED, input_length=LENGTH)
    window = ConversationWindow(inner, 2, batch_size=2, remember_state=True)
    f_window = compiled(window, Input(batch_shape=(2, 2, LENGTH, EMBED)))
    single = Conversational(EMBED, HIDDEN, 2, input_dim=EMBED, input_length=LENGTH,
                            batch_size=2, context_sensitive=True)
    f_single = compiled(single, Input(batch_shape=(2, LENGTH, EMBED)))
    single.set_weights(inner.get_weights())
    x = np.random.RandomState(6).rand(2, 2, LENGTH, EMBED).astype('float32')
    got = f_window([x])[0]
    for t in range(2):
        assert_allclose(got[:, t], f_single([x[:, t]])[0], rtol=1e-5, atol=1e-6)


# -- installing on each Python -------------------------------------------------------------
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), '..')


def _setup_arguments():
    from distutils.core import run_setup
    cwd = os.getcwd()
    os.chdir(ROOT)   # setup.py reads README.md from the current folder
    try:
        return run_setup('setup.py', stop_after='init')
    finally:
        os.chdir(cwd)


def test_pip_install_brings_mkl_on_x86_64_linux_and_names_the_tested_pythons():
    from pkg_resources import Requirement
    distribution = _setup_arguments()
    # setuptools keeps a requirement with a marker as the extra ':marker' (the
    # wheel's Requires-Dist with that marker); the extra 'mkl' has none.
    requirements = [Requirement.parse(r + extra.replace(':', ';', 1))
                    for extra, names in distribution.extras_require.items()
                    if extra.startswith(':') for r in names]
    requirements += [Requirement.parse(r) for r in distribution.install_requires]
    mkl = [r for r in requirements if r.name == 'mkl']
    assert len(mkl) == 1 and mkl[0].marker is not None, requirements
    linux = {'platform_system': 'Linux', 'platform_machine': 'x86_64'}
    assert mkl[0].marker.evaluate(linux)
    assert not mkl[0].marker.evaluate({'platform_system': 'Darwin', 'platform_machine': 'arm64'})
    assert distribution.python_requires == '>=3.6, <3.9'
    versions = [c.rsplit(' ', 1)[-1] for c in distribution.get_classifiers()
                if c.startswith('Programming Language :: Python :: 3.')]
    assert versions == ['3.6', '3.7', '3.8']
    for version in ('3.6', '3.7'):       # each has the requirement file `make PYTHON=` uses
        assert os.path.exists(os.path.join(ROOT, 'requirements-%s.txt' % version))


def test_make_python_selects_its_own_venv_and_requirements():
    import subprocess
    # Run from `make test-older PYTHON=3.7`, make's own variables (MAKEFLAGS
    # carries PYTHON=3.7) would reach these sub-makes: start them clean.
    env = {k: v for k, v in os.environ.items()
           if k not in ('MAKEFLAGS', 'MFLAGS', 'MAKELEVEL', 'MAKEOVERRIDES', 'PYTHON')}
    output = subprocess.run(['make', '-n', '-B', 'venv', 'PYTHON=3.6'], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            universal_newlines=True).stdout
    assert '.venv-3.6/bin/python -m pip install --quiet -r requirements-3.6.txt' in output, \
        output
    default = subprocess.run(['make', '-n', '-B', 'venv'], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             universal_newlines=True).stdout
    assert '.venv/bin/python -m pip install --quiet -r requirements.txt' in default, default
