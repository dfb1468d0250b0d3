"""Bad calls to the Python API are refused by the package itself, before any
work: a one-line TypeError or ValueError (or, for a model file, an OSError)
that names the layer or function and the argument, never an error from deep
inside Keras, Theano or h5py. Also what those checks must let through: saved
configs, numpy booleans.

Nothing here compiles a Theano function except the test of get_attention's
input length against greedy_decode's (which compiles nothing either: both
refuse before)."""
import os
import shutil
import tempfile
import warnings

import keras
import numpy as np
from keras.utils.generic_utils import custom_object_scope

import seq2seq
from seq2seq import (AttentionDecoder, AttentionSeq2Seq, BidirectionalEncoder, LSTMDecoder,
                     LSTMDecoder2, LSTMEncoder, RecurrentDecoder, Seq2seq, Seq2Seq,
                     SimpleSeq2Seq, beam_search, greedy_search)
from seq2seq.conversation import ConversationLayout, conversation_model, fit_conversations
from seq2seq.models import ModelFileError, ProbabilityLossWarning, Seq2SeqModel

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'saved_models')


def fixture_path(name):
    return os.path.join(FIXTURES, name)


def assert_refused(exception, call, owner, *words):
    """call() raises `exception` with a one-line message that starts with
    `owner` and contains every one of `words`; returns the message."""
    try:
        call()
    except exception as error:
        message = str(error)
        assert '\n' not in message, message
        assert message.startswith(owner), '%r does not start with %r' % (message, owner)
        for word in words:
            assert word in message, '%r not in %r' % (word, message)
        return message
    raise AssertionError('%s not raised' % exception.__name__)


# -- 1. bad arguments of the layers and the model functions ---------------------------
# Each layer and model function with the arguments it needs; the bad one is added.
LAYERS = [
    ('RecurrentEncoder', LSTMEncoder, dict(output_dim=4)),
    ('BidirectionalEncoder', BidirectionalEncoder, dict(output_dim=4)),
    ('RecurrentDecoder', RecurrentDecoder, dict(output_dim=4, hidden_dim=4, output_length=3)),
    ('AttentionDecoder', AttentionDecoder, dict(output_dim=4, hidden_dim=4, output_length=3)),
    ('LSTMDecoder', LSTMDecoder, dict(dim=4, hidden_dim=4, output_length=3)),
    ('LSTMDecoder2', LSTMDecoder2, dict(dim=4, hidden_dim=4, output_length=3)),
    ('Seq2seq', Seq2seq, dict(output_dim=4, hidden_dim=4, output_length=3)),
]
MODELS = [
    ('SimpleSeq2Seq', SimpleSeq2Seq, dict(output_dim=4, output_length=3, input_dim=5,
                                          input_length=4)),
    ('Seq2Seq', Seq2Seq, dict(output_dim=4, output_length=3, input_dim=5, input_length=4)),
    ('AttentionSeq2Seq', AttentionSeq2Seq, dict(output_dim=4, output_length=3, input_dim=5,
                                                input_length=4)),
    ('conversation_model', conversation_model, dict(vocab_size=6, input_length=4,
                                                    output_length=3, embedding_dim=3,
                                                    hidden_dim=4, window=2)),
]
# Those taking input_dim and an output size called output_dim.
TAKE_INPUT_DIM = ('RecurrentEncoder', 'Seq2seq', 'SimpleSeq2Seq', 'Seq2Seq', 'AttentionSeq2Seq')


def _call(function, arguments, **bad):
    return lambda: function(**dict(arguments, **bad))


def test_a_bad_activation_name_is_refused_naming_it():
    for owner, function, arguments in LAYERS + MODELS:
        assert_refused(ValueError, _call(function, arguments, activation='relux'), owner,
                       "activation='relux'", "did you mean 'relu'")
        assert_refused(ValueError, _call(function, arguments, inner_activation='hard_sigmoidd'),
                       owner, 'inner_activation', "'hard_sigmoid'")


def test_a_bad_readout_activation_is_refused_naming_it():
    for owner, function, arguments in [LAYERS[2], LAYERS[3]] + MODELS[:3]:
        assert_refused(ValueError, _call(function, arguments, readout_activation='softmx'),
                       owner, "readout_activation='softmx'", "'softmax'")


def test_a_bad_initializer_name_is_refused_naming_it():
    for owner, function, arguments in LAYERS + MODELS:
        assert_refused(ValueError, _call(function, arguments, init='glorot_unifrom'), owner,
                       "init='glorot_unifrom'", "did you mean 'glorot_uniform'")
        assert_refused(ValueError, _call(function, arguments, forget_bias_init='ones_'), owner,
                       'forget_bias_init')


def test_an_unknown_keyword_is_refused_naming_it():
    for owner, function, arguments in LAYERS + MODELS:
        message = assert_refused(TypeError, _call(function, arguments, hiden_dim=4), owner,
                                 "unknown keyword argument 'hiden_dim'")
        if 'hidden_dim' in arguments or owner in ('SimpleSeq2Seq', 'Seq2Seq',
                                                  'AttentionSeq2Seq'):
            assert "did you mean 'hidden_dim'" in message, message


def test_a_bad_size_is_refused_naming_it():
    for owner, function, arguments in LAYERS + MODELS:
        size = 'dim' if 'dim' in arguments else \
            'vocab_size' if 'vocab_size' in arguments else 'output_dim'
        assert_refused(ValueError, _call(function, arguments, **{size: 0}), owner,
                       size, 'positive int', 'got 0')
        if owner in TAKE_INPUT_DIM:
            assert_refused(ValueError, _call(function, arguments, input_dim=-3), owner,
                           'input_dim', 'got -3')
        assert_refused(TypeError, _call(function, arguments, batch_size='8'), owner,
                       'batch_size', "got '8'")


def test_more_bad_model_arguments_name_the_model_function():
    arguments = MODELS[0][2]
    for bad, words in [(dict(input_shape=(4, -3)), ['input_shape', '(4, -3)']),
                       (dict(input_length=0), ['input_length']),
                       (dict(depth=(1, 0)), ['depth']),
                       (dict(dropout='0.5'), ['dropout']),
                       (dict(dropout=1.5), ['dropout']),
                       (dict(cell='lsmt'), ['cell', "'lstm'"]),
                       (dict(implementation='fast'), ['implementation', "'fused'"]),
                       (dict(stateful='yes'), ['stateful'])]:
        given = dict(arguments, **bad)
        if 'input_shape' in bad:
            del given['input_dim'], given['input_length']
        try:
            SimpleSeq2Seq(**given)
        except (TypeError, ValueError) as error:
            message = str(error)
            assert '\n' not in message and message.startswith('SimpleSeq2Seq: '), message
            assert all(word in message for word in words), (words, message)
        else:
            raise AssertionError('%r not refused' % (bad,))


def test_a_number_on_an_initializer_says_the_positional_order():
    # Seq2seq(input_length, input_dim, hidden_dim, output_dim, output_length)
    assert_refused(TypeError, lambda: Seq2seq(3, 4, 5, 6, 7), 'Seq2seq', 'init=6',
                   'Seq2seq(output_dim, hidden_dim, output_length, init, ...)', '2015',
                   'keyword')


def test_a_layer_name_is_in_the_message():
    assert_refused(ValueError, lambda: LSTMEncoder(4, activation='relux', name='enc'),
                   "RecurrentEncoder 'enc': ", 'activation')


def test_configs_round_trip_through_the_checks():
    """get_config / from_config (what load_model runs) passes the checks,
    with the saved initializer dicts and activation names; a corrupted
    config is refused naming the layer."""
    for owner, cls, arguments in LAYERS:
        layer = cls(activation='relu', init='he_normal', forget_bias_init='zero',
                    name='layer_%s' % owner, **arguments)
        config = layer.get_config()
        again = cls.from_config(config)
        assert again.get_config() == config, owner
        bad = dict(config, inner_activation='relux')
        assert_refused(ValueError, lambda: cls.from_config(bad),
                       "%s 'layer_%s'" % (owner, owner), "inner_activation='relux'")
        extra = dict(config, hiden_dim=3)
        assert_refused(TypeError, lambda: cls.from_config(extra),
                       "%s 'layer_%s'" % (owner, owner), 'hiden_dim')


# -- 2. loading a model file -----------------------------------------------------------
class TestLoadModel(object):

    def setup(self):
        self.directory = tempfile.mkdtemp()

    def teardown(self):
        shutil.rmtree(self.directory)

    def path(self, name, content):
        path = os.path.join(self.directory, name)
        with open(path, 'wb') as f:
            f.write(content)
        return path

    def test_a_missing_file(self):
        path = os.path.join(self.directory, 'missing.h5')
        message = assert_refused(ModelFileError, lambda: seq2seq.load_model(path),
                                 'load_model: ', path, 'does not exist')
        assert isinstance(ModelFileError(message), OSError)

    def test_a_truncated_file(self):
        with open(fixture_path('simple_seq2seq.h5'), 'rb') as f:
            content = f.read()
        path = self.path('truncated.h5', content[:2048])
        assert_refused(ModelFileError, lambda: seq2seq.load_model(path), 'load_model: ', path,
                       'truncated', '2048 of its %d bytes' % len(content))

    def test_a_text_file(self):
        path = self.path('notes.txt', b'not a model\n')
        assert_refused(ModelFileError, lambda: seq2seq.load_model(path), 'load_model: ', path,
                       'not an HDF5 file')

    def test_weights_alone(self):
        import h5py
        path = os.path.join(self.directory, 'weights.h5')
        with h5py.File(path, 'w') as f:
            f.attrs['layer_names'] = [b'dense_1']
        assert_refused(ModelFileError, lambda: seq2seq.load_model(path), 'load_model: ', path,
                       'no model configuration', 'load_weights')

    def test_a_path_that_is_no_file_name(self):
        assert_refused(TypeError, lambda: seq2seq.load_model(None), 'load_model: ', 'path')

    def test_loads_the_package_classes_even_where_another_took_their_names(self):
        """A saved model loads as keras.models.load_model loads it; with a
        user's class registered under RecurrentEncoder, Keras' load_model
        would build the user's class, seq2seq.load_model still ours."""
        path = fixture_path('simple_seq2seq.h5')
        expected = keras.models.load_model(path, compile=False)

        class RecurrentEncoder(keras.layers.Layer):
            pass

        with custom_object_scope({'RecurrentEncoder': RecurrentEncoder}):
            model = seq2seq.load_model(path, compile=False)
        assert isinstance(model, Seq2SeqModel)
        assert isinstance(model.get_layer('encoder_0'), LSTMEncoder)
        assert model.get_config() == expected.get_config()
        for loaded, saved in zip(model.get_weights(), expected.get_weights()):
            assert (loaded == saved).all()


# -- 3. a loss on probabilities, an output that is none --------------------------------
def _compile_warnings(model, loss):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        model.compile(optimizer='sgd', loss=loss)
    return [str(w.message) for w in caught if issubclass(w.category, ProbabilityLossWarning)]


def test_simple_seq2seq_takes_readout_activation_linear_by_default():
    model = SimpleSeq2Seq(output_dim=4, output_length=3, input_dim=5, input_length=4)
    readout = model.get_layer('readout').layer
    assert readout.activation is keras.activations.linear
    model = SimpleSeq2Seq(output_dim=4, output_length=3, input_dim=5, input_length=4,
                          readout_activation='softmax')
    assert model.get_layer('readout').layer.activation is keras.activations.softmax


def test_compiling_a_linear_output_with_a_probability_loss_warns():
    arguments = dict(output_dim=4, output_length=3, input_dim=5, input_length=4)
    linear = SimpleSeq2Seq(**arguments)
    for loss in ['categorical_crossentropy', 'kld', keras.losses.categorical_crossentropy,
                 keras.losses.CategoricalCrossentropy(),
                 seq2seq.losses.sparse_softmax_crossentropy]:
        found = _compile_warnings(linear, loss)
        assert len(found) == 1 and '\n' not in found[0], (loss, found)
        assert 'SimpleSeq2Seq' in found[0] and 'is linear' in found[0], found
        assert "readout_activation='softmax'" in found[0], found
    found = _compile_warnings(linear, 'binary_crossentropy')
    assert len(found) == 1 and "readout_activation='sigmoid'" in found[0], found
    # Not for a softmax readout, nor for losses that take any output.
    softmax = SimpleSeq2Seq(readout_activation='softmax', **arguments)
    assert _compile_warnings(softmax, 'categorical_crossentropy') == []
    assert _compile_warnings(linear, 'mse') == []
    assert _compile_warnings(linear, seq2seq.losses.softmax_cross_entropy) == []
    # The decoders' readout too.
    found = _compile_warnings(Seq2Seq(**arguments), 'sparse_categorical_crossentropy')
    assert len(found) == 1 and found[0].startswith("the output of Seq2Seq 'seq2seq'"), found


# -- 4, 5. get_attention and get_context check their input ----------------------------
def test_get_attention_refuses_another_input_length_as_greedy_decode_does():
    model = AttentionSeq2Seq(output_dim=3, output_length=3, input_dim=3, input_length=4,
                             hidden_dim=4)
    x = np.zeros((2, 6, 3), dtype='float32')
    words = ['x must have shape', '(2, 6, 3)', '6 steps', 'input_length=4']
    assert_refused(ValueError, lambda: model.get_attention(x), 'get_attention: ', *words)
    assert_refused(ValueError, lambda: model.get_context(x), 'get_context: ', *words)
    assert_refused(ValueError, lambda: model.greedy_decode(x), 'greedy_decode: ', *words)


def test_get_context_refuses_a_batch_size_below_one():
    model = SimpleSeq2Seq(output_dim=3, output_length=3, input_dim=3, input_length=4)
    x = np.zeros((2, 4, 3), dtype='float32')
    for batch_size, exception in [(0, ValueError), (-1, ValueError), (2.0, TypeError)]:
        assert_refused(exception, lambda: model.get_context(x, batch_size=batch_size),
                       'get_context: ', 'batch_size', 'got %r' % (batch_size,))


# -- 6. a step function that leaves no token possible ----------------------------------
def _table_step_fn(table):
    """A step_fn reading log-probabilities from `table` (source, step, vocab):
    each row's state is (its source, the step)."""
    def step_fn(tokens, states):
        sources, steps = states
        return table[sources, steps], [sources, steps + 1]
    return step_fn


def test_a_row_of_only_minus_inf_is_refused_naming_step_and_source():
    with np.errstate(divide='ignore'):
        table = np.log(np.full((2, 4, 3), 1 / 3.0))
    table[1, 2] = -np.inf                     # source 1 at its third step: nothing possible
    states = [np.arange(2), np.zeros(2, dtype='int64')]
    step_fn = _table_step_fn(table)
    message = assert_refused(ValueError, lambda: greedy_search(step_fn, states, 4), 'step 2',
                             'row 1', 'source 1', '-inf')
    assert 'row 1 (source 1 of the batch)' in message, message
    assert_refused(ValueError, lambda: beam_search(step_fn, states, 2, 4), 'step 2',
                   'source 1', '-inf')
    # Until then the search runs, and a source that ends before is fine.
    tokens, lengths, _ = greedy_search(step_fn, states, 2)
    assert list(lengths) == [2, 2]
    table[1, 2, 1] = 0.0                      # one possible token: no refusal
    assert list(greedy_search(step_fn, states, 4)[0][1]) == [0, 0, 1, 0]


# -- 7. shuffle in fit_conversations ---------------------------------------------------
class _RecordingModel(object):
    """What fit_conversations reads of a model: its layers (none remember
    states here) and fit, recorded instead of run."""
    layers = []

    def fit(self, x, y, **kwargs):
        self.fitted = kwargs
        return 'history'


def test_fit_conversations_takes_numpy_bools_and_names_a_non_bool():
    layout = ConversationLayout([2, 1], batch_size=2)
    x = layout.arrange(np.zeros((3, 4), dtype='int32'))
    y = layout.arrange(np.zeros((3, 3, 1), dtype='int32'))
    model = _RecordingModel()
    assert fit_conversations(model, layout, x, y, shuffle=np.False_) == 'history'
    assert model.fitted['shuffle'] is False
    assert fit_conversations(model, layout, x, y, shuffle=False) == 'history'
    message = assert_refused(ValueError, lambda: fit_conversations(model, layout, x, y,
                                                                   shuffle=np.True_),
                             'fit_conversations: ', 'shuffle=True', 'leave shuffle out')
    assert 'shuffle=False' not in message, message
    assert_refused(ValueError, lambda: fit_conversations(model, layout, x, y, shuffle='batch'),
                   'fit_conversations: ', "shuffle='batch'")
    assert_refused(TypeError, lambda: fit_conversations(model, layout, x, y, shuffle=0),
                   'fit_conversations: ', 'shuffle must be False', 'got 0 (int)')
