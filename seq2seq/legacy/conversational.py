"""The 2015 module `conversational`: `Conversational`, a `Seq2seq` layer for
chat-like models, in the 2015 argument order.

    Conversational(output_dim, hidden_dim, output_length, ..., depth=2,
                   context_sensitive=False)

is `Seq2seq(..., peek=True, remember_state=context_sensitive)`: the
decoder is the Cho-style one (`LSTMDecoder2`: it reads the projected
context at every step), and with `context_sensitive=True` every LSTM keeps
its state from one batch (one exchange) to the next, so an answer can
depend on the earlier exchanges of the conversation; call
`reset_hidden_state()` between conversations.

`seq2seq.conversation` (singular) is the newer tool for the same job: it
trains across several exchanges at once, so that the gradient reaches the
earlier exchanges, which a model trained one exchange per batch (as here)
cannot learn from.
"""
from __future__ import absolute_import

import warnings

from ..util.checks import check_depth
from ..layers.seq2seq_layer import Seq2seq

__all__ = ['Conversational', 'ShallowDecoderWarning']


class ShallowDecoderWarning(UserWarning):
    """A context-sensitive `Conversational` whose decoder depth is below 2."""


class Conversational(Seq2seq):
    """`Seq2seq` with the Cho-style decoder, remembering its state when
    `context_sensitive=True` (the 2015 `conversational.py`).

    # Arguments
        output_dim, hidden_dim, output_length, init, inner_init,
        forget_bias_init, activation, inner_activation, weights,
        truncate_gradient, input_dim, input_length, hidden_state, batch_size:
            as in `Seq2seq`, in the same (2015) order.
        depth: int, or a pair (encoder depth, decoder depth); 2 by default.
        context_sensitive: keep every LSTM's state from one batch to the
            next (`Seq2seq`'s remember_state; needs batch_size). With a
            decoder depth below 2 a `ShallowDecoderWarning` says, as in
            2015, that the model cannot remember its previous output: the
            decoder LSTM starts every exchange from the encoder's state, so
            only LSTMs stacked above it carry the answer to the next exchange.
    """

    def __init__(self, output_dim=None, hidden_dim=None, output_length=None,
                 init='glorot_uniform', inner_init='orthogonal', forget_bias_init='one',
                 activation='tanh', inner_activation='hard_sigmoid', weights=None,
                 truncate_gradient=-1, input_dim=None, input_length=None, hidden_state=None,
                 batch_size=None, depth=2, context_sensitive=False, **kwargs):
        for name in ('peek', 'remember_state'):
            if name in kwargs:
                raise TypeError('Conversational sets %s itself (peek=True, remember_state='
                                'context_sensitive); use Seq2seq to choose it' % name)
        if not isinstance(context_sensitive, bool):
            raise TypeError('context_sensitive must be True or False, got %r'
                            % (context_sensitive,))
        if context_sensitive and check_depth(depth)[1] < 2:
            warnings.warn('Conversational(context_sensitive=True) with a decoder depth of %d: '
                          'the model will not be able to remember its previous output (give '
                          'depth a decoder depth of 2 or more)' % check_depth(depth)[1],
                          ShallowDecoderWarning, stacklevel=2)
        super(Conversational, self).__init__(
            output_dim, hidden_dim, output_length, init=init, inner_init=inner_init,
            forget_bias_init=forget_bias_init, activation=activation,
            inner_activation=inner_activation, weights=weights,
            truncate_gradient=truncate_gradient, input_dim=input_dim,
            input_length=input_length, hidden_state=hidden_state, batch_size=batch_size,
            depth=depth, remember_state=context_sensitive, peek=True, **kwargs)
        self.context_sensitive = context_sensitive

    def get_config(self):
        config = super(Conversational, self).get_config()
        del config['peek']
        config['context_sensitive'] = config.pop('remember_state')
        return config
