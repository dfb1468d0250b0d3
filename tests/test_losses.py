"""seq2seq.losses.sparse_softmax_crossentropy and its fused Ops
(seq2seq.ops.fused_softmax), against plain numpy and against Keras' own
sparse_categorical_crossentropy.
"""
import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from keras.layers import Activation, Dense, Embedding, Input, TimeDistributed
from keras.models import Model, Sequential
from numpy.testing import assert_allclose

from seq2seq import Seq2seq
from seq2seq._theano import keras_loss as keras_loss_rewrite
from seq2seq.ops import fused_softmax
from seq2seq.layers.losses import sparse_softmax_crossentropy
from tests.helpers import assert_raises_with, float64
from nose.plugins.attrib import attr


def _numpy_nll(logits, bias, targets):
    """-log softmax(logits + bias)[target], row by row, in float64."""
    z = logits.astype('float64') + bias
    z = z - z.max(axis=1, keepdims=True)
    log_probs = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_probs[np.arange(len(targets)), targets]


def _problem(positions=13, classes=37, dtype='float32', scale=4.0, seed=0):
    rng = np.random.RandomState(seed)
    return ((rng.randn(positions, classes) * scale).astype(dtype),
            rng.randn(classes).astype(dtype),
            rng.randint(0, classes, positions).astype('int32'),
            rng.randn(positions).astype(dtype))


def _op_function(dtype, linker='cvm'):
    """nll, probabilities, d logits and d bias of sum(nll * weights)."""
    logits, bias = T.matrix(dtype=dtype), T.vector(dtype=dtype)
    targets, weights = T.ivector(), T.vector(dtype=dtype)
    nll, probabilities = fused_softmax.SoftmaxCrossEntropy()(logits, bias, targets)
    dlogits, dbias = theano.grad((nll * weights).sum(), [logits, bias])
    return theano.function([logits, bias, targets, weights],
                           [nll, probabilities, dlogits, dbias],
                           mode=theano.compile.Mode(linker=linker))


def _reference(logits, bias, targets, weights):
    nll = _numpy_nll(logits, bias, targets)
    z = logits.astype('float64') + bias
    probabilities = np.exp(z - z.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    dlogits = probabilities * weights[:, None]
    dlogits[np.arange(len(targets)), targets] -= weights
    return nll, probabilities, dlogits, dlogits.sum(axis=0)


def test_fused_op_matches_numpy():
    """C code and numpy perform, float32 and float64, against the reference:
    the loss, the probabilities and both gradients."""
    for dtype, tol in (('float32', 2e-6), ('float64', 1e-12)):
        values = _problem(dtype=dtype)
        expected = _reference(*values)
        for linker in ('cvm', 'py'):
            got = _op_function(dtype, linker)(*values)
            for name, g, e in zip(('nll', 'probabilities', 'dlogits', 'dbias'), got, expected):
                assert g.dtype == dtype, (name, g.dtype)
                assert_allclose(g, e, rtol=tol, atol=tol, err_msg='%s %s %s' % (dtype, linker, name))


def test_fused_op_vocabulary_sized_rows():
    """Rows as wide as a vocabulary (not a multiple of 8, so the vector loops'
    remainders run), large logits, and a target that is the row's maximum."""
    logits, bias, targets, weights = _problem(positions=6, classes=1003, scale=30.0, seed=3)
    targets[0] = int(np.argmax(logits[0] + bias))
    got = _op_function('float32')(logits, bias, targets, weights)
    expected = _reference(logits, bias, targets, weights)
    assert_allclose(got[0], expected[0], rtol=1e-6, atol=2e-5)
    for g, e in zip(got[1:], expected[1:]):
        assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_float32_exp_accuracy():
    """The vectorised float32 exp: every probability of a row holding
    -80..0 within 2e-7 relative (down to 1e-35; closer to -87.3, where exp
    is clamped, float32 probabilities become subnormal numbers and lose
    digits whatever the exp)."""
    shifted = np.linspace(-80.0, 0.0, 4001).astype('float32')[None, :]
    bias = np.zeros(shifted.shape[1], 'float32')
    _, probabilities = theano.function([], fused_softmax.SoftmaxCrossEntropy()(
        shifted, bias, np.zeros(1, 'int32')))()
    exact = np.exp(shifted.astype('float64'))
    exact /= exact.sum()
    relative = np.abs(probabilities - exact) / exact
    assert relative.max() < 2e-7, relative.max()


def test_fused_op_verify_grad():
    """Numeric gradient check of the loss with respect to logits and bias."""
    logits, bias, targets, weights = _problem(positions=4, classes=5, dtype='float64', scale=1.0)

    def weighted_nll(z, b):
        return fused_softmax.SoftmaxCrossEntropy()(z, b, targets)[0] * weights

    theano.gradient.verify_grad(weighted_nll, [logits, bias], rng=np.random.RandomState(1),
                                abs_tol=1e-7, rel_tol=1e-7)


def test_fused_op_gradient_through_probabilities():
    """When the probabilities output is used too, its gradient adds softmax's."""
    logits, bias, targets, _ = _problem(positions=3, classes=4, dtype='float64', scale=1.0)

    def both_outputs(z, b):
        nll, probabilities = fused_softmax.SoftmaxCrossEntropy()(z, b, targets)
        return nll.sum() + (probabilities * np.arange(4.0)).sum()

    theano.gradient.verify_grad(both_outputs, [logits, bias], rng=np.random.RandomState(2),
                                abs_tol=1e-7, rel_tol=1e-7)


def test_target_out_of_range_is_a_value_error():
    logits, bias, targets, weights = _problem(positions=3, classes=4)
    targets[1] = 4
    for linker in ('cvm', 'py'):
        f = _op_function('float32', linker)
        assert_raises_with(ValueError, lambda: f(logits, bias, targets, weights),
                           'target 4 at position 1', '[0, 4)')


def test_op_input_types_are_checked():
    assert_raises_with(TypeError, lambda: fused_softmax.SoftmaxCrossEntropy()(
        T.tensor3(), T.vector(), T.ivector()), 'logits', '2-d')
    assert_raises_with(TypeError, lambda: fused_softmax.SoftmaxCrossEntropy()(
        T.matrix(), T.vector(), T.vector()), 'targets', 'integer')


# -- the loss, in Keras models -------------------------------------------------------------

def _time_distributed_softmax(steps=5, features=6, classes=7):
    sequence = Input(shape=(steps, features))
    probabilities = TimeDistributed(Dense(classes, activation='softmax'))(sequence)
    return Model(sequence, probabilities)


def _loss_values(model, targets, loss):
    """(per-position loss values, d loss / d each weight) of `loss` on the model's output.
    Keras' own graph for Keras' losses: without the rewrite into the fused Ops
    (seq2seq._theano.keras_loss), which would otherwise compute them."""
    with keras_loss_rewrite.disabled():
        y_true = K.placeholder(ndim=targets.ndim)
        values = loss(y_true, model.output)
        grads = K.gradients(K.sum(values), model.trainable_weights)
        return K.function([model.input, y_true], [values] + grads)


def test_equals_keras_sparse_categorical_crossentropy():
    """Same values and same weight gradients as Keras' loss (probabilities
    away from its 1e-7 clip), targets with and without the trailing 1; and
    the training graph holds the fused Ops, not a one-hot matrix."""
    model = _time_distributed_softmax()
    rng = np.random.RandomState(0)
    x = rng.randn(4, 5, 6).astype(K.floatx())
    targets = rng.randint(0, 7, (4, 5, 1)).astype(K.floatx())
    expected = _loss_values(model, targets, K.sparse_categorical_crossentropy)([x, targets])
    for y in (targets, targets[..., 0]):
        got = _loss_values(model, y, sparse_softmax_crossentropy)([x, y])
        assert got[0].shape == (4, 5)
        for g, e in zip(got, expected):
            assert_allclose(g, e, rtol=1e-5, atol=1e-6)
    model.compile(optimizer='sgd', loss=sparse_softmax_crossentropy)
    model._make_train_function()
    ops = [type(node.op).__name__ for node in
           model.train_function.function.maker.fgraph.toposort()]
    assert 'SoftmaxCrossEntropy' in ops and 'SoftmaxCrossEntropyGrad' in ops, ops
    assert 'AdvancedIncSubtensor' not in ops, ops      # Keras' one-hot matrix


def test_not_clipped_where_keras_is():
    """A confidently wrong prediction: Keras' clip caps the loss at
    -log(1e-7) = 16.1; this loss is the exact -log softmax."""
    model = _time_distributed_softmax(steps=1, features=1, classes=2)
    model.set_weights([np.array([[40.0, -40.0]], K.floatx()), np.zeros(2, K.floatx())])
    x = np.ones((1, 1, 1), K.floatx())
    targets = np.ones((1, 1, 1), K.floatx())     # class 1, whose probability is e^-80
    ours = _loss_values(model, targets, sparse_softmax_crossentropy)([x, targets])[0]
    keras = _loss_values(model, targets, K.sparse_categorical_crossentropy)([x, targets])[0]
    assert_allclose(keras, -np.log(1e-7), rtol=1e-4)
    assert_allclose(ours, 80.0, rtol=1e-5)


def test_any_other_probabilities_get_keras_value():
    """A softmax that is not Dense's (Keras' 3-d softmax: exp / sum) takes the
    generic path: exactly Keras' clipped value, gradients included."""
    sequence = Input(shape=(5, 6))
    logits = Dense(7)(sequence)                       # Dense on 3-d input: no TimeDistributed
    model = Model(sequence, Activation('softmax')(logits))
    rng = np.random.RandomState(1)
    x = rng.randn(3, 5, 6).astype(K.floatx())
    targets = rng.randint(0, 7, (3, 5, 1)).astype(K.floatx())
    got = _loss_values(model, targets, sparse_softmax_crossentropy)([x, targets])
    expected = _loss_values(model, targets, K.sparse_categorical_crossentropy)([x, targets])
    for g, e in zip(got, expected):
        assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_float64_model_gradients():
    """In float64 the Keras model's weight gradients match Keras' loss to 1e-10."""
    with float64():
        model = _time_distributed_softmax(steps=3, features=4, classes=5)
        rng = np.random.RandomState(2)
        x = rng.randn(2, 3, 4)
        targets = rng.randint(0, 5, (2, 3, 1)).astype('float64')
        got = _loss_values(model, targets, sparse_softmax_crossentropy)([x, targets])
        expected = _loss_values(model, targets, K.sparse_categorical_crossentropy)([x, targets])
        for g, e in zip(got, expected):
            assert_allclose(g, e, rtol=1e-10, atol=1e-12)


def test_bad_shapes_are_value_errors():
    assert_raises_with(ValueError, lambda: sparse_softmax_crossentropy(
        K.placeholder(ndim=1), K.placeholder(ndim=1)), 'y_pred', '2 or more dimensions')
    assert_raises_with(ValueError, lambda: sparse_softmax_crossentropy(
        K.placeholder(ndim=1), K.placeholder(ndim=3)), 'y_true', '2 or 3')


def test_one_hot_targets_are_refused_with_a_message():
    """Categorical (one-hot) targets given to the sparse loss: an error that
    says what y_true must be, on both paths."""
    softmax_model = _time_distributed_softmax(steps=2, features=3, classes=4)
    sequence = Input(shape=(2, 3))
    other_model = Model(sequence, Activation('softmax')(Dense(4)(sequence)))
    x = np.ones((1, 2, 3), K.floatx())
    one_hot = np.eye(4, dtype=K.floatx())[[[1, 2]]]              # (1, 2, 4)
    for model in (softmax_model, other_model):
        f = _loss_values(model, one_hot, sparse_softmax_crossentropy)
        assert_raises_with(AssertionError, lambda: f([x, one_hot]),
                           'one integer class index per position')


@attr('slow')
def test_trains_a_seq2seq_model():
    """Embedding -> Seq2seq -> softmax compiled with the loss: one epoch
    lowers it, and it equals Keras' loss on the trained model."""
    model = Sequential([
        Embedding(12, 6, input_length=4),
        Seq2seq(input_length=4, input_dim=6, hidden_dim=8, output_dim=8, output_length=4),
        TimeDistributed(Dense(12, activation='softmax')),
    ])
    model.compile(optimizer='adam', loss=sparse_softmax_crossentropy)
    rng = np.random.RandomState(3)
    x = rng.randint(1, 12, (64, 4)).astype('int32')
    y = x[:, ::-1, None]
    before = model.evaluate(x, y, verbose=0)
    model.fit(x, y, batch_size=16, epochs=3, verbose=0)
    after = model.evaluate(x, y, verbose=0)
    assert after < before, (before, after)
    keras_loss = _loss_values(model, y.astype(K.floatx()), K.sparse_categorical_crossentropy)
    assert_allclose(np.mean(keras_loss([x, y.astype(K.floatx())])[0]), after, rtol=1e-5)


def test_saved_model_loads_with_the_loss():
    """load_model, no custom_objects: the loss comes back by name, and the
    loaded model evaluates to the same loss."""
    import os
    import shutil
    import tempfile
    from keras.models import load_model
    model = _time_distributed_softmax()
    model.compile(optimizer='adam', loss=sparse_softmax_crossentropy)
    rng = np.random.RandomState(5)
    x = rng.randn(4, 5, 6).astype(K.floatx())
    y = rng.randint(0, 7, (4, 5, 1))
    model.fit(x, y, epochs=1, verbose=0)
    directory = tempfile.mkdtemp()
    try:
        path = os.path.join(directory, 'model.h5')
        model.save(path)
        loaded = load_model(path)
    finally:
        shutil.rmtree(directory)
    assert [f.fn for f in loaded.loss_functions] == [sparse_softmax_crossentropy]
    assert_allclose(loaded.evaluate(x, y, verbose=0), model.evaluate(x, y, verbose=0), rtol=1e-6)


def test_masked_loss_is_the_loss_of_the_real_tokens():
    """Positions whose target is the padding id 0 add nothing to the value or
    the gradient; the others are sparse_softmax_crossentropy's."""
    from seq2seq.layers.losses import masked_sparse_softmax_crossentropy
    model = _time_distributed_softmax()
    rng = np.random.RandomState(1)
    x = rng.randn(4, 5, 6).astype(K.floatx())
    targets = rng.randint(0, 7, (4, 5, 1)).astype(K.floatx())
    targets[:, 3:] = 0                      # every answer padded after two tokens
    targets[0, 1] = 0
    real = (targets[..., 0] != 0).astype(K.floatx())
    full = _loss_values(model, targets, sparse_softmax_crossentropy)([x, targets])
    masked = _loss_values(model, targets, masked_sparse_softmax_crossentropy)([x, targets])
    assert_allclose(masked[0], full[0] * real, rtol=1e-6)
    assert (masked[0][real == 0] == 0).all() and (masked[0][real == 1] > 0).all()
    # The gradient of the real tokens' loss alone: the full loss weighted by
    # the mask, which Keras' sample weights would give a plain sequence model.
    y_true = K.placeholder(ndim=3)
    mask = K.placeholder(ndim=2)
    reference = K.function([model.input, y_true, mask], K.gradients(
        K.sum(sparse_softmax_crossentropy(y_true, model.output) * mask),
        model.trainable_weights))([x, targets, real])
    for got, expected in zip(masked[1:], reference):
        assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
