"""SimpleSeq2Seq, Seq2Seq and AttentionSeq2Seq: the last release's README
snippets, teacher forcing, save/load, context, attention and reversed input."""
import os
import shutil
import tempfile

import keras
import numpy as np
from keras import backend as K
from keras.backend import theano_backend
from nose.plugins.attrib import attr
from numpy.testing import assert_allclose

import seq2seq  # noqa: F401  (registers the layers for load_model)
from seq2seq.models import AttentionSeq2Seq, Seq2Seq, SimpleSeq2Seq
from tests import numpy_reference as ref

RNG = np.random.RandomState(0)


def _fit_and_predict(model, x, y, inputs=None):
    """Train a few steps; the loss must fall (the targets are learnable)."""
    model.compile(loss='mse', optimizer='rmsprop')
    history = model.fit(inputs if inputs is not None else x, y, batch_size=16, epochs=10,
                        verbose=0)
    losses = history.history['loss']
    assert all(np.isfinite(losses)), losses
    assert losses[-1] < 0.9 * losses[0], 'the loss did not fall: %s' % losses
    return model.predict(x, batch_size=16)


def _data(output_dim=20):
    """Random inputs; the same target sequence for every one of them (what a
    model learns in a few steps through its output bias)."""
    y = np.repeat(RNG.rand(1, 8, output_dim), 16, axis=0)
    return RNG.rand(16, 7, 5), y


# -- the last farizrahman4u/seq2seq README snippets ----------------------------------
@attr('slow')
def test_readme_simple_seq2seq_depth_3():
    x, y = _data(8)
    model = SimpleSeq2Seq(input_dim=5, hidden_dim=10, output_length=8, output_dim=8, depth=3)
    assert _fit_and_predict(model, x, y).shape == (16, 8, 8)


@attr('slow')   # the depth-3 snippet is the fast tier's SimpleSeq2Seq README test
def test_readme_simple_seq2seq_depth_4_5():
    x, y = _data(8)
    model = SimpleSeq2Seq(input_dim=5, hidden_dim=10, output_length=8, output_dim=8,
                          depth=(4, 5))
    assert _fit_and_predict(model, x, y).shape == (16, 8, 8)


@attr('slow')   # compiling the training function of a depth-4 Seq2Seq: tens of seconds
def test_readme_seq2seq_depth_4():
    x, y = _data()
    model = Seq2Seq(batch_input_shape=(16, 7, 5), hidden_dim=10, output_length=8,
                    output_dim=20, depth=4)
    assert _fit_and_predict(model, x, y).shape == (16, 8, 20)


@attr('slow')
def test_readme_seq2seq_depth_4_peek():
    x, y = _data()
    model = Seq2Seq(batch_input_shape=(16, 7, 5), hidden_dim=10, output_length=8,
                    output_dim=20, depth=4, peek=True)
    assert _fit_and_predict(model, x, y).shape == (16, 8, 20)


@attr('slow')
def test_readme_attention_seq2seq_depth_4():
    x, y = _data()
    model = AttentionSeq2Seq(input_dim=5, input_length=7, hidden_dim=10, output_length=8,
                             output_dim=20, depth=4)
    assert _fit_and_predict(model, x, y).shape == (16, 8, 20)


# -- behaviour -----------------------------------------------------------------------
def test_teacher_forced_model_trains_on_targets_and_predicts_from_the_source_alone():
    x, y = _data()
    model = Seq2Seq(input_dim=5, input_length=7, hidden_dim=10, output_length=8,
                    output_dim=20, teacher_force=True)
    assert len(model.inputs) == 2
    predicted = _fit_and_predict(model, x, y, inputs=[x, y])
    assert predicted.shape == (16, 8, 20)
    # Prediction runs free: the targets, if given at all, are not read.
    assert_allclose(model.predict([x, np.zeros_like(y)]), predicted, rtol=1e-5, atol=1e-6)
    assert_allclose(model.predict([x, y]), predicted, rtol=1e-5, atol=1e-6)
    # evaluate, given the source alone, scores what predict gives.
    assert_allclose(model.evaluate(x, y, verbose=0), np.mean((predicted - y) ** 2), rtol=1e-4)


_LOOP_OPS = ('Scan', 'LSTMForward', 'LSTMGrad')


def _teacher_forced_training(learning_phase, x, y):
    """A few Adam steps of Seq2Seq(teacher_force=True) from fixed initial weights.

    learning_phase: None (symbolic, as Keras trains), or 1, fixed before the
    model is built, so that its graph holds the teacher-forced loop only.
    Returns the weights after training, the loop ops of the training
    function and the loop ops that an in-place update waits for (sorted
    type names)."""
    saved = theano_backend._LEARNING_PHASE
    if learning_phase is not None:
        K.set_learning_phase(learning_phase)
    try:
        np.random.seed(4)
        model = Seq2Seq(input_dim=3, input_length=5, hidden_dim=6, output_length=4,
                        output_dim=5, teacher_force=True)
        model.compile(loss='mse', optimizer='adam')
        model._make_train_function()
        fgraph = model.train_function.function.maker.fgraph
        loops = sorted(type(n.op).__name__ for n in fgraph.toposort()
                       if type(n.op).__name__ in _LOOP_OPS)
        waited_for = set(node for prerequisites in fgraph.orderings().values()
                         for node in prerequisites)
        waited_loops = sorted(type(n.op).__name__ for n in waited_for
                              if type(n.op).__name__ in _LOOP_OPS)
        model.fit([x, y], y, batch_size=4, epochs=2, verbose=0, shuffle=False)
        return model.get_weights(), loops, waited_loops
    finally:
        theano_backend._LEARNING_PHASE = saved


@attr('slow')   # two teacher-forced models trained and their graphs inspected
def test_teacher_forced_training_skips_the_free_running_loop():
    """Training a teacher-forced Seq2Seq computes what it would with the
    learning phase fixed to 1: the free-running loop (predict's) adds no
    gradient loop, no in-place weight update waits for it, and the trained
    weights are the same."""
    x = RNG.rand(8, 5, 3)
    y = RNG.rand(8, 4, 5)
    trained, loops, waited_loops = _teacher_forced_training(None, x, y)
    reference, forced_loops, forced_waited_loops = _teacher_forced_training(1, x, y)
    # One more loop: the free-running one itself (the fused LSTM decoder), the
    # other branch of the learning phase's IfElse; not its gradient.
    assert loops == sorted(forced_loops + ['LSTMForward']), (loops, forced_loops)
    assert waited_loops == forced_waited_loops, (waited_loops, forced_waited_loops)
    for got, expected in zip(trained, reference):
        assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_hidden_dim_defaults_to_output_dim_and_gru_cells():
    model = Seq2Seq(input_dim=5, input_length=7, output_length=4, output_dim=6, cell='gru')
    decoder = model.decoder_layer
    assert decoder.hidden_dim == 6
    assert decoder.cells[0].__class__.__name__ == 'GRUCell'
    x, y = RNG.rand(16, 7, 5), np.repeat(RNG.rand(1, 4, 6), 16, axis=0)
    assert _fit_and_predict(model, x, y).shape == (16, 4, 6)


def test_context_vector_for_a_batch():
    x = RNG.rand(5, 7, 5)
    model = Seq2Seq(input_dim=5, input_length=7, hidden_dim=10, output_length=8, output_dim=20,
                    depth=2)
    context = model.get_context(x, batch_size=2)
    assert context.shape == (5, 10)
    encoder = model.get_layer('encoder_1')
    f = K.function([model.inputs[0]], [encoder.get_output_at(0)[0]])
    assert_allclose(context, f([x])[0], rtol=1e-5, atol=1e-6)


def test_attention_weights_for_a_batch():
    x = RNG.rand(3, 7, 5)
    model = AttentionSeq2Seq(input_dim=5, input_length=7, hidden_dim=10, output_length=8,
                             output_dim=20)
    attention = model.get_attention(x)
    memory = model.get_context(x)
    assert attention.shape == (3, 8, 7)
    assert memory.shape == (3, 7, 10)
    # The decoder run in numpy from the same first input and encoder outputs.
    first = K.function(model.inputs, [model.get_layer('first_input').output])([x])[0]
    decoder = model.get_layer('decoder')
    _, expected = ref.recurrent_decoder(first.astype('float64'), ref.named_weights(decoder), 1,
                                        8, memory=memory.astype('float64'))
    assert_allclose(attention, expected, rtol=1e-4, atol=1e-6)


def test_reverse_input_reads_the_source_backwards():
    x = RNG.rand(4, 7, 5)
    forward = Seq2Seq(input_dim=5, input_length=7, hidden_dim=6, output_length=3, output_dim=4)
    backward = Seq2Seq(input_dim=5, input_length=7, hidden_dim=6, output_length=3, output_dim=4,
                       reverse_input=True)
    backward.set_weights(forward.get_weights())
    assert_allclose(backward.predict(x), forward.predict(x[:, ::-1]), rtol=1e-5, atol=1e-6)


def test_stateful_model_carries_state_and_resets():
    x = RNG.rand(4, 7, 5)
    model = Seq2Seq(batch_input_shape=(4, 7, 5), hidden_dim=6, output_length=3, output_dim=4,
                    stateful=True, broadcast_state=False)
    first = model.predict(x, batch_size=4)
    assert not np.allclose(model.predict(x, batch_size=4), first)
    model.reset_states()
    assert_allclose(model.predict(x, batch_size=4), first, rtol=1e-5, atol=1e-6)


def test_bad_model_arguments_are_named():
    cases = [
        (lambda: Seq2Seq(output_dim=4, output_length=3), TypeError, 'input_shape'),
        (lambda: Seq2Seq(output_dim=4, output_length=3, input_shape=(7,)), ValueError,
         '(batch, length, dim)'),
        (lambda: AttentionSeq2Seq(output_dim=4, output_length=3, input_dim=5, hidden_dim=7),
         ValueError, 'even hidden_dim'),
        (lambda: Seq2Seq(output_dim=4, output_length=3, input_dim=5, stateful=True),
         ValueError, 'batch_size'),
        (lambda: SimpleSeq2Seq(output_dim=4, output_length=0, input_dim=5), ValueError,
         'output_length'),
    ]
    for build, exception, words in cases:
        try:
            build()
        except exception as error:
            assert words in str(error), (words, str(error))
        else:
            raise AssertionError('%s not raised for %s' % (exception.__name__, words))


# -- save and load ---------------------------------------------------------------------
def _check_save_and_load(model, x, y, inputs=None):
    model.compile(loss='mse', optimizer='adam')
    model.fit(inputs if inputs is not None else x, y, epochs=1, batch_size=4, verbose=0)
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, 'model.h5')
        model.save(path)
        loaded = keras.models.load_model(path)
        assert type(loaded) is type(model)
        assert_allclose(loaded.predict(x), model.predict(x), rtol=1e-5, atol=1e-6)
        # Training goes on from the saved optimizer state.
        loaded.fit(inputs if inputs is not None else x, y, epochs=1, batch_size=4, verbose=0)
        assert not np.allclose(loaded.predict(x), model.predict(x))
    finally:
        shutil.rmtree(folder)
    return loaded


def test_save_and_load_gives_the_same_model_and_outputs():
    """load_model with no custom_objects: the same class, the same options,
    the same weights and the same outputs (the model compiled but not
    trained: no optimizer state, so no training function to compile)."""
    x = RNG.rand(4, 6, 3)
    model = Seq2Seq(input_dim=3, input_length=6, hidden_dim=6, output_length=4, output_dim=5,
                    peek=True)
    model.compile(loss='mse', optimizer='adam')
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, 'model.h5')
        model.save(path)
        loaded = keras.models.load_model(path)
    finally:
        shutil.rmtree(folder)
    assert type(loaded) is type(model)
    assert loaded.decoder_layer.peek
    for saved, got in zip(model.get_weights(), loaded.get_weights()):
        assert_allclose(got, saved)
    expected = model.predict(x)
    assert np.abs(expected).max() > 1e-3
    assert_allclose(loaded.predict(x), expected, rtol=1e-5, atol=1e-6)


@attr('slow')
def test_save_and_load_every_model():
    x = RNG.rand(8, 6, 3)
    y = RNG.rand(8, 4, 5)
    for build in [lambda: SimpleSeq2Seq(input_dim=3, input_length=6, hidden_dim=6,
                                        output_length=4, output_dim=5, depth=2),
                  lambda: Seq2Seq(input_dim=3, input_length=6, hidden_dim=6, output_length=4,
                                  output_dim=5, peek=True, depth=(2, 1)),
                  lambda: AttentionSeq2Seq(input_dim=3, input_length=6, hidden_dim=6,
                                           output_length=4, output_dim=5, cell='gru')]:
        _check_save_and_load(build(), x, y)


@attr('slow')   # trains, saves, loads (compiling the training function) and trains on
def test_save_and_load_teacher_forced_model():
    x = RNG.rand(8, 6, 3)
    y = RNG.rand(8, 4, 5)
    model = Seq2Seq(input_dim=3, input_length=6, hidden_dim=6, output_length=4, output_dim=5,
                    teacher_force=True)
    loaded = _check_save_and_load(model, x, y, inputs=[x, y])
    assert loaded.decoder_layer.teacher_force


def test_save_and_load_seed_layer_resets_the_remembered_state():
    from keras.layers import Embedding
    from keras.models import Sequential
    model = Sequential([Embedding(10, 3, input_length=4),
                        seq2seq.Seq2seq(input_length=4, input_dim=3, hidden_dim=5,
                                        output_dim=3, output_length=4, batch_size=2,
                                        remember_state=True)])
    model.compile(loss='mse', optimizer='sgd')
    x = RNG.randint(0, 10, (2, 4))
    model.predict(x, batch_size=2)
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, 'seed.h5')
        model.save(path)
        loaded = keras.models.load_model(path)
        assert all(not s.any() for cell in loaded.layers[1].get_hidden_state() for s in cell)
        model.layers[1].reset_hidden_state()
        assert_allclose(loaded.predict(x, batch_size=2), model.predict(x, batch_size=2),
                        rtol=1e-5, atol=1e-6)
    finally:
        shutil.rmtree(folder)
