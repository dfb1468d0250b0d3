"""Numeric gradient checks (theano.gradient.verify_grad) on tiny float64 layers."""
import numpy as np
import theano
import theano.tensor as T
from nose.plugins.attrib import attr

from seq2seq import LSTMDecoder2, LSTMEncoder, Seq2seq
from tests.helpers import float64


def _verify_grad_wrt_weights_and_input(layer, input_shape, seed=0):
    """Check d(output)/d(input) and d(output)/d(every weight) numerically.

    Each shared weight is swapped for a symbolic input with theano.clone, so
    verify_grad perturbs it like any other argument.
    """
    rng = np.random.RandomState(seed)
    x = T.tensor3('x')
    output = layer(x)
    weights = layer.trainable_weights
    symbolic = [T.TensorType('float64', (False,) * w.ndim)(w.name) for w in weights]
    output = theano.clone(output, replace=dict(zip(weights, symbolic)))

    def fn(x_value, *weight_values):
        return theano.clone(output, replace=dict([(x, x_value)] + list(zip(symbolic, weight_values))))

    # Small values keep hard_sigmoid's pre-activations inside (-2.5, 2.5),
    # away from its kinks, where a finite difference is meaningless.
    point = [rng.uniform(-0.5, 0.5, input_shape)] + \
        [rng.uniform(-0.3, 0.3, w.get_value().shape) for w in weights]
    theano.gradient.verify_grad(fn, point, rng=rng, abs_tol=1e-5, rel_tol=1e-5)


@attr('slow')
def test_seq2seq_gradient_depth_2():
    with float64():
        layer = Seq2seq(input_length=3, input_dim=2, hidden_dim=3, output_dim=2,
                        output_length=3, depth=2, implementation='scan')
        layer.build((None, 3, 2))
        _verify_grad_wrt_weights_and_input(layer, (2, 3, 2))


@attr('slow')
def test_seq2seq_gradient_with_remembered_state():
    with float64():
        layer = Seq2seq(input_length=3, input_dim=2, hidden_dim=3, output_dim=2,
                        output_length=2, batch_size=2, remember_state=True,
                        implementation='scan')
        layer.build((2, 3, 2))
        layer.set_hidden_state([[np.full((2, 3), 0.1), np.full((2, 3), -0.2)],
                                [np.zeros((2, 3)), np.zeros((2, 3))]])
        _verify_grad_wrt_weights_and_input(layer, (2, 3, 2), seed=1)


@attr('slow')
def test_encoder_gradient():
    with float64():
        layer = LSTMEncoder(output_dim=3, return_sequences=True, implementation='scan')
        layer.build((None, 4, 2))
        _verify_grad_wrt_weights_and_input(layer, (2, 4, 2), seed=2)


def test_cho_decoder_gradient():
    with float64():
        layer = LSTMDecoder2(dim=2, hidden_dim=3, output_length=3, implementation='scan')
        layer.build((None, 2))
        rng = np.random.RandomState(3)
        v = T.matrix('v')
        weights = layer.trainable_weights
        symbolic = [T.TensorType('float64', (False,) * w.ndim)(w.name) for w in weights]
        output = theano.clone(layer(v), replace=dict(zip(weights, symbolic)))

        def fn(v_value, *weight_values):
            return theano.clone(output, replace=dict([(v, v_value)] +
                                                     list(zip(symbolic, weight_values))))

        point = [rng.uniform(-0.5, 0.5, (2, 2))] + \
            [rng.uniform(-0.3, 0.3, w.get_value().shape) for w in weights]
        theano.gradient.verify_grad(fn, point, rng=rng, abs_tol=1e-5, rel_tol=1e-5)
