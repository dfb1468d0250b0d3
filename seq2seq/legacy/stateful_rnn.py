"""The 2015 module `stateful_rnn`: `StatefulRNN`, the base of every
recurrent layer, now `seq2seq.layers.StatefulRNN` (the same class).

It keeps the 2015 methods `get_hidden_state()`, `set_hidden_state(state)`
and `reset_hidden_state()`; `set_hidden_state` refuses NaN, inf and values
beyond floatx before writing anything (`seq2seq.layers.state_checks`). The helpers below serve the 2015 modules
`seq2seq.lstm_encoder` and `seq2seq.lstm_decoder`, whose layers hold one
LSTM each and take its state as the 2015 pair [h, c].
"""
from __future__ import absolute_import

from ..layers.base import StatefulRNN

__all__ = ['StatefulRNN']

# Keras 2 layout of one LSTM: kernel, recurrent_kernel, bias.
_KERAS2_LSTM_ARRAYS = 3


def checked_lstm_weights(layer_name, weights, n_arrays):
    """`weights` of a one-LSTM 2015 layer, if already in the Keras 2 layout
    (`n_arrays` arrays, the order of `get_weights()`); the 2015 per-gate
    list (W_i, U_i, b_i, W_c, ...) is refused with how to convert it."""
    if weights is None:
        return None
    if not isinstance(weights, (list, tuple)) or len(weights) != n_arrays:
        raise ValueError(
            '%s(weights=...) takes the Keras 2 layout: %d arrays in the order of '
            'get_weights() (kernel (input_dim, 4*units), recurrent_kernel (units, 4*units), '
            'bias (4*units,)%s, gates in the order i, f, c, o), got %s. The 2015 per-gate '
            'list converts as kernel = np.concatenate([W_i, W_f, W_c, W_o], axis=1), '
            'recurrent_kernel = np.concatenate([U_i, U_f, U_c, U_o], axis=1), '
            'bias = np.concatenate([b_i, b_f, b_c, b_o]); the hidden state is not a weight '
            'any more (pass it as hidden_state=[h, c])'
            % (layer_name, n_arrays, ', then the decoder\'s own arrays'
               if n_arrays > _KERAS2_LSTM_ARRAYS else '',
               '%d arrays' % len(weights) if isinstance(weights, (list, tuple))
               else type(weights).__name__))
    return list(weights)


def as_cell_states(state):
    """The 2015 pair [h, c] of a one-LSTM layer as today's per-cell
    structure [[h, c]]; today's structure is returned unchanged.

    Only a one-entry list holding a list is today's structure, so a pair
    whose h is given as nested lists stays a pair. Anything else is wrapped
    as it is, and refused, naming what it got, by `set_hidden_state`'s
    checks (`StatefulRNN._checked_hidden_state`).
    """
    if state is None:
        return None
    if (isinstance(state, (list, tuple)) and len(state) == 1
            and isinstance(state[0], (list, tuple))):
        return state
    return [state]


class OneLSTMState(object):
    """The 2015 state methods of a layer holding one LSTM: [h, c]."""

    def get_hidden_state(self):
        """The remembered [h, c], arrays (batch_size, units) (the 2015 pair)."""
        return super(OneLSTMState, self).get_hidden_state()[0]

    def set_hidden_state(self, state):
        """Set the remembered state from [h, c] (or [[h, c]]).

        Both arrays are checked (shape (batch_size, units), real, finite,
        within floatx) before either is written: a refused pair, with a
        `ValueError`/`TypeError` naming `hidden_state[0][0]` (h) or
        `hidden_state[0][1]` (c), changes nothing.
        """
        super(OneLSTMState, self).set_hidden_state(as_cell_states(state))
