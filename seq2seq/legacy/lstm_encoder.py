"""The 2015 module `lstm_encoder`: `LSTMEncoder` in the 2015 argument order.

It is `seq2seq.layers.encoders.RecurrentEncoder` (an LSTM) taking its arguments in
the 2015 positional order, with the state as the 2015 pair [h, c]; a saved
model loads back as `seq2seq.layers.LSTMEncoder`, whose config is the same.
"""
from __future__ import absolute_import

from ..layers import encoders
from .stateful_rnn import OneLSTMState, as_cell_states, checked_lstm_weights

__all__ = ['LSTMEncoder']


class LSTMEncoder(OneLSTMState, encoders.RecurrentEncoder):
    """`RecurrentEncoder` with the 2015 signature.

    # Arguments
        output_dim, input_dim, input_length, return_sequences, go_backwards,
        batch_size, remember_state, truncate_gradient, init, inner_init,
        forget_bias_init, activation, inner_activation: as in
            `seq2seq.layers.encoders.RecurrentEncoder`.
        weights: None or the Keras 2 layout (see `checked_lstm_weights`).
        hidden_state: the initial remembered state, [h, c].
        decoder, decoders: the 2015 way to send the final state to decoders
            (one batch late). Refused: call the decoder on `[vector, h, c]`
            with `return_state=True` here, or use `Seq2seq`, where the state
            reaches the decoder in the same pass.
    """

    def __init__(self, output_dim, init='glorot_uniform', inner_init='orthogonal',
                 forget_bias_init='one', activation='tanh', inner_activation='hard_sigmoid',
                 weights=None, truncate_gradient=-1, input_dim=None, input_length=None,
                 hidden_state=None, batch_size=None, return_sequences=False, decoder=None,
                 decoders=None, remember_state=False, go_backwards=False, **kwargs):
        if decoder is not None or decoders:
            raise ValueError(
                'LSTMEncoder(decoder=...) / (decoders=...) passed the final state to the '
                'decoders through updates, one batch late; it is not supported. Build the '
                'encoder with return_state=True and call the decoder on [vector, h, c] '
                '(the same pass), or use Seq2seq / Conversational, which do that inside')
        weights = checked_lstm_weights('LSTMEncoder', weights, 3)
        if weights is not None:
            kwargs['weights'] = weights
        super(LSTMEncoder, self).__init__(
            output_dim, input_dim=input_dim, input_length=input_length,
            return_sequences=return_sequences, go_backwards=go_backwards, init=init,
            inner_init=inner_init, forget_bias_init=forget_bias_init, activation=activation,
            inner_activation=inner_activation, truncate_gradient=truncate_gradient,
            hidden_state=as_cell_states(hidden_state), batch_size=batch_size,
            remember_state=remember_state, **kwargs)
