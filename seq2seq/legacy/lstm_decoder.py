"""The 2015 module `lstm_decoder`: `LSTMDecoder` and `LSTMDecoder2` in the
2015 argument order.

They are `seq2seq.layers.decoders.LSTMDecoder` / `LSTMDecoder2` taking their
arguments in the 2015 positional order, with the state as the 2015 pair
[h, c]; a saved model loads back as the `seq2seq.layers` classes, whose
configs are the same.
"""
from __future__ import absolute_import

from ..layers import decoders
from .stateful_rnn import OneLSTMState, as_cell_states, checked_lstm_weights

__all__ = ['LSTMDecoder', 'LSTMDecoder2']

# kernel, recurrent_kernel, bias, [context_kernel,] readout_kernel, readout_bias
_N_WEIGHTS = {False: 5, True: 6}


class LSTMDecoder(OneLSTMState, decoders.LSTMDecoder):
    """`seq2seq.layers.decoders.LSTMDecoder` with the 2015 signature:

        LSTMDecoder(dim, hidden_dim, output_length, init, inner_init,
                    forget_bias_init, activation, inner_activation, weights,
                    truncate_gradient, hidden_state, batch_size, remember_state)

    `hidden_state` is [h, c]; `weights` None or the Keras 2 layout in the
    order of `get_weights()`.
    """

    def __init__(self, dim, hidden_dim, output_length, init='glorot_uniform',
                 inner_init='orthogonal', forget_bias_init='one', activation='tanh',
                 inner_activation='hard_sigmoid', weights=None, truncate_gradient=-1,
                 hidden_state=None, batch_size=None, remember_state=False, **kwargs):
        weights = checked_lstm_weights(type(self).__name__, weights,
                                       _N_WEIGHTS[self.reads_context])
        if weights is not None:
            kwargs['weights'] = weights
        super(LSTMDecoder, self).__init__(
            dim, hidden_dim, output_length, init=init, inner_init=inner_init,
            forget_bias_init=forget_bias_init, activation=activation,
            inner_activation=inner_activation, truncate_gradient=truncate_gradient,
            hidden_state=as_cell_states(hidden_state), batch_size=batch_size,
            remember_state=remember_state, **kwargs)


class LSTMDecoder2(LSTMDecoder):
    """The Cho-style decoder (reads its input vector at every step),
    `seq2seq.layers.decoders.LSTMDecoder2`, with the 2015 signature of `LSTMDecoder`."""

    reads_context = True
