"""The layers as Keras users meet them: shapes and values (against the numpy
reference), configs, models, errors."""
import numpy as np
from keras.layers import Activation, Embedding, Input
from keras.models import Model, Sequential
from numpy.testing import assert_allclose

from seq2seq import BidirectionalEncoder, LSTMDecoder, LSTMDecoder2, LSTMEncoder, Seq2seq
from tests import numpy_reference as ref
from tests.helpers import assert_raises_with


def _seq2seq(**overrides):
    args = dict(input_length=4, input_dim=3, hidden_dim=5, output_dim=6, output_length=7)
    args.update(overrides)
    return Seq2seq(**args)


def _embedded_seq2seq_reference(model, x):
    """What an Embedding -> Seq2seq model computes, in numpy (float64)."""
    embedding, layer = model.layers
    vectors = embedding.get_weights()[0].astype('float64')[x]
    expected, _ = ref.seq2seq(vectors, [w.astype('float64') for w in layer.get_weights()],
                              layer.depth, layer.output_length)
    return expected


def test_output_shapes_and_values_for_each_depth():
    for depth in [1, 2, (2, 3), [3, 1]]:
        assert _seq2seq(depth=depth).compute_output_shape((None, 4, 3)) == (None, 7, 6), depth
    # The values for one LSTM either side and for stacks of different depths
    # (an int or a list is the same pair of stacks).
    x = np.random.RandomState(0).randint(0, 10, (2, 4))
    for depth in [1, (2, 3)]:
        model = Sequential([Embedding(10, 3, input_length=4), _seq2seq(depth=depth)])
        assert model.output_shape == (None, 7, 6), depth
        assert_allclose(model.predict(x), _embedded_seq2seq_reference(model, x),
                        rtol=1e-4, atol=1e-5, err_msg=str(depth))


def test_depth_counts_the_stacked_lstms():
    layer = _seq2seq(depth=(2, 3))
    assert layer.depth == (2, 3)
    assert len(layer.encoder_cells) == 2
    assert len(layer.recurrent_cells()) == 5


def test_functional_api():
    inputs = Input((4, 3))
    layer = _seq2seq()
    outputs = Activation('softmax')(layer(inputs))
    model = Model(inputs, outputs)
    x = np.random.RandomState(0).rand(2, 4, 3)
    probabilities = model.predict(x)
    # The softmax of what the layer alone computes (in a Sequential of its own).
    logits = Sequential([layer]).predict(x)
    expected = np.exp(logits - logits.max(axis=-1, keepdims=True))
    expected /= expected.sum(axis=-1, keepdims=True)
    assert_allclose(probabilities, expected, rtol=1e-5, atol=1e-7)


def test_encoder_decoder_composed_in_the_functional_api():
    inputs = Input((5, 3))
    first = LSTMEncoder(output_dim=4, return_sequences=True)
    second = LSTMEncoder(output_dim=3)
    decoder = LSTMDecoder2(dim=3, hidden_dim=6, output_length=4)
    model = Model(inputs, decoder(second(first(inputs))))
    x = np.random.RandomState(1).uniform(-1, 1, (2, 5, 3))
    # numpy: the two encoders, then the Cho decoder from zeros reading the
    # context at every step.
    as64 = lambda layer: [w.astype('float64') for w in layer.get_weights()]  # noqa: E731
    sequence, _, _ = ref.lstm_encoder(x, as64(first))
    _, context, _ = ref.lstm_encoder(sequence, as64(second))
    kernel, recurrent_kernel, bias, context_kernel, readout_kernel, readout_bias = as64(decoder)
    zeros = np.zeros((2, 6))
    expected, _, _ = ref.lstm_decoder(context, (kernel, recurrent_kernel, bias),
                                      (readout_kernel, readout_bias), 4, zeros, zeros,
                                      context_kernel=context_kernel)
    assert_allclose(model.predict(x), expected, rtol=1e-4, atol=1e-5)


def test_input_dim_is_inferred_when_not_given():
    layer = Seq2seq(hidden_dim=5, output_dim=6, output_length=7, depth=2)
    model = Sequential([Embedding(10, 3, input_length=4), layer])
    assert layer.input_dim == 3
    x = np.random.RandomState(2).randint(0, 10, (3, 4))
    assert_allclose(model.predict(x), _embedded_seq2seq_reference(model, x),
                    rtol=1e-4, atol=1e-5)


def test_config_round_trips():
    layers = [_seq2seq(depth=(2, 3), batch_size=4, remember_state=True,
                       inner_activation='sigmoid', forget_bias_init='zero'),
              LSTMEncoder(output_dim=3, input_dim=2, return_sequences=True, go_backwards=True),
              LSTMDecoder(dim=3, hidden_dim=4, output_length=5, truncate_gradient=3),
              LSTMDecoder2(dim=3, hidden_dim=4, output_length=5),
              LSTMEncoder(output_dim=3, return_state=True, cell='gru', implementation='scan'),
              BidirectionalEncoder(output_dim=6, return_sequences=False, return_state=True,
                                   batch_size=2, remember_state=True)]
    for layer in layers:
        config = layer.get_config()
        clone = layer.__class__.from_config(config)
        assert clone.get_config() == config, layer
    assert layers[0].get_config()['depth'] == [2, 3]


def test_weights_follow_keras_lstm_layout():
    layer = _seq2seq()
    layer.build((None, 4, 3))
    shapes = {w.name.split('/')[-1]: w.get_value().shape for w in layer.weights}
    assert shapes['encoder_0_kernel'] == (3, 4 * 5)
    assert shapes['encoder_0_recurrent_kernel'] == (5, 4 * 5)
    bias = layer.encoder_cell.bias.get_value()
    # forget_bias_init='one': the forget gate's slice (gate order i, f, c, o).
    assert_allclose(bias[5:10], 1.0)
    assert not bias[:5].any() and not bias[10:].any()


def test_bad_arguments_are_named():
    assert_raises_with(TypeError, lambda: Seq2seq(input_length=4, input_dim=3, output_dim=6,
                                       output_length=7), 'hidden_dim')
    assert_raises_with(ValueError, lambda: _seq2seq(hidden_dim=0), 'hidden_dim', 'positive')
    assert_raises_with(TypeError, lambda: _seq2seq(output_length=2.5), 'output_length')
    assert_raises_with(ValueError, lambda: _seq2seq(depth=(1, 2, 3)), 'depth', 'pair')
    assert_raises_with(ValueError, lambda: _seq2seq(depth=0), 'depth')
    assert_raises_with(ValueError, lambda: _seq2seq(remember_state=True), 'batch_size')
    assert_raises_with(TypeError, lambda: _seq2seq(remember_state='yes'), 'remember_state')
    assert_raises_with(TypeError, lambda: _seq2seq(batch_size='10'), 'batch_size')
    assert_raises_with(ValueError, lambda: _seq2seq(activation='no_such_activation'), 'no_such_activation')


def test_input_of_the_wrong_width_is_refused():
    layer = _seq2seq(input_dim=3)
    assert_raises_with(ValueError, lambda: layer(Input((4, 5))), 'input_dim=3', '5')
    assert_raises_with(ValueError, lambda: LSTMDecoder(dim=3, hidden_dim=4, output_length=2)(Input((5,))),
            '(batch, 3)')


def test_softmax_cross_entropy_on_sequences():
    from keras import backend as K
    from seq2seq.layers.losses import softmax_cross_entropy
    logits = np.random.RandomState(0).randn(2, 3, 4)
    targets = np.eye(4)[np.array([[0, 1, 2], [3, 3, 0]])]
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    expected = -(targets * np.log(probs)).sum(-1)
    got = K.eval(softmax_cross_entropy(K.variable(targets), K.variable(logits)))
    assert_allclose(got, expected, rtol=1e-5)
