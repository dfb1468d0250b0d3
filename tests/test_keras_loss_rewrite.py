"""The rewrite of Keras' own crossentropy losses into the fused loss Ops
(seq2seq._theano.keras_loss): same values and gradients as Keras' graph
(compiled with the rewrite off), clip included; the fused Op really in the
compiled graph; other patterns left alone.
"""
import contextlib

import numpy as np
import theano
import theano.tensor as T
from keras import backend as K
from keras.layers import Activation, Dense, Input, Lambda, Masking, TimeDistributed
from keras.models import Model, Sequential
from nose.plugins.attrib import attr
from numpy.testing import assert_allclose

from seq2seq._theano import keras_loss
from seq2seq.ops import fused_softmax
from tests.helpers import assert_raises_with

EPSILON = 1e-7
CLASSES = 6


# -- the clip in the fused Ops ------------------------------------------------------------

def _clipped_problem(dtype, positions=12, seed=0):
    """Logits where the clip binds: rows 0-3 confidently wrong (p < 1e-7),
    rows 4-7 confidently right (p > 1 - 1e-7), the rest in between."""
    rng = np.random.RandomState(seed)
    logits = rng.randn(positions, CLASSES)
    targets = rng.randint(0, CLASSES, positions).astype('int32')
    rows = np.arange(positions)
    logits[rows[:4], targets[:4]] -= 40.0
    logits[rows[4:8], targets[4:8]] += 40.0
    return (logits.astype(dtype), rng.randn(CLASSES).astype(dtype) * 0.1, targets,
            rng.uniform(0.5, 2.0, positions).astype(dtype))


def _keras_sparse_reference(logits, bias, targets, weights, clip):
    """Keras' maths in float64: nll = -log(clip(p_y)), gradient (p - one_hot)
    times the weight, zero on clipped rows."""
    z = logits.astype('float64') + bias
    p = np.exp(z - z.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    rows = np.arange(len(targets))
    picked = p[rows, targets]
    nll = -np.log(np.clip(picked, clip[0], clip[1]))
    dlogits = p * weights[:, None]
    dlogits[rows, targets] -= weights
    dlogits[(picked < clip[0]) | (picked > clip[1])] = 0
    return nll, dlogits, dlogits.sum(axis=0)


def _fused_function(op, dtype, targets_type, linker='cvm'):
    logits, bias, weights = T.matrix(dtype=dtype), T.vector(dtype=dtype), T.vector(dtype=dtype)
    targets = targets_type()
    nll = op(logits, bias, targets)[0]
    dlogits, dbias = theano.grad((nll * weights).sum(), [logits, bias])
    return theano.function([logits, bias, targets, weights], [nll, dlogits, dbias],
                           mode=theano.compile.Mode(linker=linker))


def test_fused_op_clip_matches_keras_maths():
    """SoftmaxCrossEntropy(clip): the clipped loss and the zero gradient of
    clipped rows, in C and in numpy, float32 and float64, for two clips (one
    compiled module each)."""
    for dtype, tol in (('float32', 2e-6), ('float64', 1e-12)):
        logits, bias, targets, weights = _clipped_problem(dtype)
        for clip in ((EPSILON, 1 - EPSILON), (0.05, 0.9)):
            if dtype == 'float32':
                clip = tuple(float(np.float32(bound)) for bound in clip)
            expected = _keras_sparse_reference(logits, bias, targets, weights, clip)
            # Rows 0-7 clipped (zero gradient); with Keras' clip, the others not.
            assert (expected[1][:8] == 0).all()
            assert clip[0] > 0.01 or (expected[1][8:] != 0).all()
            for linker in ('cvm', 'py'):
                got = _fused_function(fused_softmax.SoftmaxCrossEntropy(clip), dtype,
                                      T.ivector, linker)(logits, bias, targets, weights)
                for name, a, b in zip(('nll', 'dlogits', 'dbias'), got, expected):
                    assert_allclose(a, b, rtol=tol, atol=tol,
                                    err_msg='%s %s %s %s' % (name, dtype, clip, linker))


def test_fused_op_clip_gradient_is_the_numeric_one():
    """verify_grad on rows whose target probability is inside the clip, away
    from its bounds, and with rows clipped (whose gradient is zero)."""
    logits, bias, targets, _ = _clipped_problem('float64', seed=1)
    op = fused_softmax.SoftmaxCrossEntropy((EPSILON, 1 - EPSILON))
    theano.gradient.verify_grad(lambda z, b: op(z, b, targets)[0], [logits, bias],
                                rng=np.random.RandomState(0))
    dense_targets = np.eye(CLASSES)[targets] * 0.7 + 0.05
    dense = fused_softmax.SoftmaxCategoricalCrossEntropy((0.01, 0.99))
    theano.gradient.verify_grad(lambda z, b: dense(z, b, dense_targets)[0],
                                [logits * 0.1, bias], rng=np.random.RandomState(0))


def test_dense_fused_op_matches_keras_categorical_maths():
    """SoftmaxCategoricalCrossEntropy(clip) against Keras' categorical
    crossentropy on softmax probabilities, written out in Theano, for one-hot
    rows and soft targets, with the clip binding."""
    logits, bias, targets, weights = _clipped_problem('float64')
    dense = np.eye(CLASSES)[targets]
    dense[8:] = np.random.RandomState(2).dirichlet(np.ones(CLASSES), len(dense) - 8)
    z, b, y, w = T.dmatrix(), T.dvector(), T.dmatrix(), T.dvector()
    bounds = [T.constant(bound, dtype='float64') for bound in (EPSILON, 1 - EPSILON)]
    clipped = T.clip(T.nnet.softmax(z + b), *bounds)
    keras_nll = -(y * T.log(clipped)).sum(axis=1)
    fused_nll = fused_softmax.softmax_categorical_crossentropy(z, b, y, (EPSILON, 1 - EPSILON))
    outputs = []
    for nll in (keras_nll, fused_nll):
        outputs += [nll] + theano.grad((nll * w).sum(), [z, b, y])
    values = theano.function([z, b, y, w], outputs)(logits, bias, dense, weights)
    for name, a, b in zip(('nll', 'dlogits', 'dbias', 'dtargets'), values[4:], values[:4]):
        assert_allclose(a, b, rtol=1e-10, atol=1e-10, err_msg=name)


def test_clip_argument_is_checked():
    assert_raises_with(ValueError, lambda: fused_softmax.SoftmaxCrossEntropy((0.5, 0.1)),
                       'clip', '0 <= lo <= hi <= 1')
    assert_raises_with(TypeError, lambda: fused_softmax.SoftmaxCrossEntropy('tight'), 'clip')


# -- Keras models, rewrite on and off ------------------------------------------------------

def _fused_ops(function):
    """Names of the fused loss Ops in a compiled Keras or Theano function."""
    return sorted(set(_fused_op_list(function)))


def _fused_op_list(function):
    function = getattr(function, 'function', function)
    return [type(node.op).__name__ for node in function.maker.fgraph.toposort()
            if type(node.op).__module__ == fused_softmax.__name__]


def _loss_and_gradients(build, loss, data, rewrite, learning_phase=None, **compile_args):
    """Keras' total loss and its gradients for every weight, from a model
    built and compiled with the rewrite on or off. Returns (values, function)."""
    np.random.seed(1)
    with (contextlib.nullcontext() if rewrite else keras_loss.disabled()):
        model = build()
        model.compile('sgd', loss, **compile_args)
        inputs = model._feed_inputs + model._feed_targets + model._feed_sample_weights
        if learning_phase is not None:
            inputs, data = inputs + [K.learning_phase()], data + [learning_phase]
        outputs = [model.total_loss] + K.gradients(model.total_loss, model.trainable_weights)
        function = K.function(inputs, outputs)
        return function(data), function


def _check_same(build, loss, data, fused, **compile_args):
    """With the rewrite, the same loss and gradients as Keras' graph, and the
    fused Op `fused` in the function (or no fused Op when None)."""
    reference, plain = _loss_and_gradients(build, loss, data, False, **compile_args)
    got, rewritten = _loss_and_gradients(build, loss, data, True, **compile_args)
    assert _fused_ops(plain) == []
    expected = [] if fused is None else [fused, fused + 'Grad']
    assert _fused_ops(rewritten) == expected, _fused_ops(rewritten)
    for index, (a, b) in enumerate(zip(got, reference)):
        assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg='output %d' % index)
    return reference


def _sequence_data(model_inputs=4, steps=5, batch=8, seed=0):
    """Inputs with some rows scaled up (so that the clip binds), integer
    targets, temporal sample weights and a padded tail (masked)."""
    rng = np.random.RandomState(seed)
    x = rng.randn(batch, steps, model_inputs).astype('float32')
    x[:4] *= 30.0
    x[:, -1] = 0.0                                      # masked by Masking(0.)
    y = rng.randint(0, CLASSES, (batch, steps, 1)).astype('float32')
    weights = rng.uniform(0.2, 3.0, (batch, steps)).astype('float32')
    return x, y, weights


def _time_distributed_softmax():
    return Sequential([Masking(0.0, input_shape=(5, 4)),
                       TimeDistributed(Dense(CLASSES, activation='softmax'))])


def test_sparse_time_distributed_with_mask_and_weights():
    """TimeDistributed(Dense(softmax)) after a Masking layer, temporal sample
    weights, confidently wrong and right predictions: Keras' values."""
    x, y, weights = _sequence_data()
    _check_same(_time_distributed_softmax, 'sparse_categorical_crossentropy',
                [x, y, weights], 'SoftmaxCrossEntropy', sample_weight_mode='temporal')
    # The case had clipped rows at both bounds (the test can tell a clip).
    np.random.seed(1)
    probabilities = _time_distributed_softmax().predict(x)
    picked = np.take_along_axis(probabilities, y.astype('int64'), axis=-1)
    assert (picked < EPSILON).any() and (picked > 1 - EPSILON).any()


def test_sparse_two_dimensional_output():
    """Dense(softmax) on vectors, targets (batch, 1) and per-sample weights."""
    rng = np.random.RandomState(3)
    x = rng.randn(10, 4)
    x[:5] *= 30.0
    y = rng.randint(0, CLASSES, (10, 1))
    weights = rng.uniform(0.5, 2.0, 10)
    _check_same(lambda: Sequential([Dense(CLASSES, activation='softmax', input_shape=(4,))]),
                'sparse_categorical_crossentropy',
                [x.astype('float32'), y.astype('float32'), weights.astype('float32')],
                'SoftmaxCrossEntropy')


def test_categorical_three_dimensional_activation_softmax():
    """Dense on a sequence, then Activation('softmax') (Keras' exp/sum
    softmax on 3-d tensors), one-hot and soft targets."""
    x, y, weights = _sequence_data(seed=4)
    one_hot = np.eye(CLASSES, dtype='float32')[y[..., 0].astype('int64')]
    one_hot[:, 1] = np.random.RandomState(5).dirichlet(np.ones(CLASSES), len(one_hot))
    _check_same(lambda: Sequential([Dense(CLASSES, input_shape=(5, 4)), Activation('softmax')]),
                'categorical_crossentropy', [x, one_hot, weights], 'SoftmaxCategoricalCrossEntropy',
                sample_weight_mode='temporal')


@attr('slow')
def test_other_probabilities_are_left_alone():
    """Probabilities that are not a softmax of logits (normalised sigmoids),
    and a softmax changed afterwards, keep Keras' graph and values."""
    x, y, weights = _sequence_data(seed=6)

    def normalised_sigmoid():
        inputs = Input((5, 4))
        return Model(inputs, _normalised(Dense(CLASSES, activation='sigmoid')(inputs)))

    def smoothed_softmax():
        inputs = Input((5, 4))
        probabilities = TimeDistributed(Dense(CLASSES, activation='softmax'))(inputs)
        return Model(inputs, Lambda(lambda p: 0.9 * p + 0.1 / CLASSES,
                                      output_shape=(5, CLASSES))(probabilities))

    for build in (normalised_sigmoid, smoothed_softmax):
        _check_same(build, 'sparse_categorical_crossentropy', [x, y, weights[:, 0]], None)


def _normalised(scores):
    return Lambda(lambda s: s / K.sum(s, axis=-1, keepdims=True),
                  output_shape=(5, CLASSES))(scores)


@attr('slow')
def test_learning_phase_branches():
    """y_pred = K.in_train_phase(softmax, other) (a teacher-forced decoder's
    output): the softmax branch gets the fused Op, the other keeps Keras'
    graph; Keras' values in both phases."""
    x, y, weights = _sequence_data(seed=8)

    def two_branches(free_is_softmax):
        def build():
            inputs = Input((5, 4))
            forced = TimeDistributed(Dense(CLASSES, activation='softmax'))(inputs)
            if free_is_softmax:
                free = TimeDistributed(Dense(CLASSES, activation='softmax'))(inputs)
            else:
                free = _normalised(Dense(CLASSES, activation='sigmoid')(inputs))
            chosen = Lambda(lambda ps: K.in_train_phase(ps[0], ps[1]),
                            output_shape=(5, CLASSES))([forced, free])
            return Model(inputs, chosen)
        return build

    for free_is_softmax in (True, False):
        for phase in (1, 0):
            args = (two_branches(free_is_softmax), 'sparse_categorical_crossentropy',
                    [x, y, weights])
            reference, _ = _loss_and_gradients(*args, rewrite=False, learning_phase=phase,
                                               sample_weight_mode='temporal')
            got, rewritten = _loss_and_gradients(*args, rewrite=True, learning_phase=phase,
                                                 sample_weight_mode='temporal')
            assert _fused_ops(rewritten) == ['SoftmaxCrossEntropy', 'SoftmaxCrossEntropyGrad']
            for index, (a, b) in enumerate(zip(got, reference)):
                assert_allclose(a, b, rtol=1e-5, atol=1e-6, err_msg='output %d' % index)


def test_training_gives_the_same_weights():
    """A few Adam steps with loss='sparse_categorical_crossentropy': the same
    weights with and without the rewrite, and the rewrite in the train function."""
    x, y, weights = _sequence_data(seed=7)
    trained = []
    for rewrite in (False, True):
        with (contextlib.nullcontext() if rewrite else keras_loss.disabled()):
            np.random.seed(1)
            model = _time_distributed_softmax()
            model.compile('adam', 'sparse_categorical_crossentropy',
                          sample_weight_mode='temporal')
            for _ in range(5):
                model.train_on_batch(x, y, sample_weight=weights)
            evaluated = model.evaluate(x, y, sample_weight=weights, verbose=0)
        # One forward Op: the loss output's and the gradient's, merged.
        assert _fused_op_list(model.train_function) == (
            ['SoftmaxCrossEntropy', 'SoftmaxCrossEntropyGrad'] if rewrite else [])
        assert _fused_ops(model.test_function) == (['SoftmaxCrossEntropy'] if rewrite else [])
        trained.append((model.get_weights(), evaluated))
    for a, b in zip(trained[0][0], trained[1][0]):
        assert_allclose(b, a, rtol=1e-5, atol=1e-5)
    assert_allclose(trained[1][1], trained[0][1], rtol=1e-5)


def test_gradient_with_respect_to_the_loss_graph_itself():
    """K.gradients with respect to a variable the rewrite would replace: the
    loss is left as Keras built it, so that gradient is still defined."""
    targets, logits = K.placeholder(ndim=2), Input((3,))
    nll = K.categorical_crossentropy(targets, Activation('softmax')(logits))
    loss = nll.sum()
    assert keras_loss.rewrite_loss(loss) is not loss
    assert keras_loss.rewrite_loss(loss, keep=[logits]) is not loss
    assert keras_loss.rewrite_loss(loss, keep=[nll]) is loss
    gradient = K.function([targets, logits], K.gradients(loss, [nll]))
    assert_allclose(gradient([np.eye(3, dtype='float32'), np.ones((3, 3), 'float32')])[0],
                    np.ones(3))


def test_install_is_idempotent_and_switchable():
    assert keras_loss.install() is True and keras_loss.install() is True
    assert keras_loss.is_enabled()
    with keras_loss.disabled():
        assert not keras_loss.is_enabled()
    assert keras_loss.is_enabled()
    assert_raises_with(TypeError, lambda: keras_loss.set_enabled('no'), 'True or False')
