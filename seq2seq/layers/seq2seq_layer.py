"""The `Seq2seq` layer: an LSTM encoder and an LSTM decoder in one layer.

    input (batch, input_length, input_dim)
      -> (depth_e - 1) LSTMs of width input_dim, whole sequences
      -> LSTM of width hidden_dim: its last h is the context vector
      -> Dense(hidden_dim -> output_dim): the decoder's input vector
      -> LSTM decoder of width hidden_dim, started from the encoder's
         final (h, c), output_length steps, each output fed back as the
         next input
      -> (depth_d - 1) LSTMs of width output_dim, whole sequences
    output (batch, output_length, output_dim)

This is the structure of the 2015 layer. Unlike the 2015 code, which passed
the state through post-call updates (so the decoder read the previous batch's
encoder state), the encoder's final state reaches the decoder in the same
forward pass, as a symbolic input.
"""
from __future__ import absolute_import

import theano.tensor as T

from ..util.checks import check_bool, check_depth, check_positive_int, owned
from .arguments import layer_owner
from .base import CellLayer, input_shape_kwargs
from .decoder_core import Decoder
from .recurrent import run_encoder


def _checked_flat_weights(weights):
    """`weights` as Keras 2 takes it (a flat list of arrays, in the order of
    `get_weights()`); the 2015 nested per-layer list is refused."""
    if not isinstance(weights, (list, tuple)):
        raise TypeError('weights must be None or a list of arrays in the order of '
                        'get_weights(), got %r' % (type(weights).__name__,))
    if any(w is None or isinstance(w, (list, tuple)) for w in weights):
        raise ValueError(
            'weights looks like the 2015 per-layer list (one entry, or None, per inner '
            'layer); Seq2seq is one Keras 2 layer now and takes a flat list in the order of '
            'get_weights(), with the LSTM weights in the Keras 2 layout (kernel, '
            'recurrent_kernel, bias, gates i, f, c, o). Build the model, then call '
            'layer.set_weights(...), or load_model / load_weights a saved model '
            '(see the README, "Migrating 2015 code")')
    return list(weights)


class Seq2seq(CellLayer):
    """Sequence to sequence learning in one layer (Sutskever et al. 2014).

    The positional order is the 2015 one (`Seq2seq(output_dim, hidden_dim,
    output_length, ...)`); every argument can also be given by keyword.

    # Arguments
        output_dim: size of each output step.
        hidden_dim: size of the encoder's and decoder's h and c.
        output_length: number of output steps.
        init, inner_init, forget_bias_init, activation, inner_activation: the
            LSTMs' initializers and activations, with the 2015 defaults.
        weights: None, or the layer's weights as a flat list in the order of
            `get_weights()` (Keras 2 layout), set once the layer is built.
            The 2015 nested per-layer list is refused with a `ValueError`
            (see the README, "Migrating 2015 code").
        truncate_gradient: steps of back-propagation through time (-1: all).
        input_dim: size of each input step (e.g. the embedding size); may be
            left out, it is then read from the input.
        input_length: number of input steps (None: any).
        hidden_state: initial remembered state (see `get_hidden_state()`).
        batch_size: sequences per batch; required with `remember_state=True`.
        depth: int, or a pair (encoder depth, decoder depth) as a tuple or a
            list: the number of stacked LSTMs on each side.
        remember_state: keep every LSTM's hidden state from one batch to the
            next (long conversations); call `reset_hidden_state()` after each
            conversation. False (translation-like pairs): every batch starts
            from zeros.
        peek: False (the Sutskever decoder), or True: the decoder LSTM also
            reads its first input vector (the projected context) at every
            step, as `LSTMDecoder2` does (Cho et al. 2014);
            `seq2seq.conversational.Conversational` sets it.
        implementation: 'auto', 'scan' or 'fused' (see `seq2seq.layers.CellLayer`).
    """

    # A call in a later release's order, Seq2seq(input_length, input_dim,
    # hidden_dim, ...), puts a number on init: the message says the order.
    positional_order_note = 'the 2015 one'

    def __init__(self, output_dim=None, hidden_dim=None, output_length=None,
                 init='glorot_uniform', inner_init='orthogonal', forget_bias_init='one',
                 activation='tanh', inner_activation='hard_sigmoid', weights=None,
                 truncate_gradient=-1, input_dim=None, input_length=None, hidden_state=None,
                 batch_size=None, depth=1, remember_state=False, peek=False, **kwargs):
        owner = layer_owner(self, kwargs)
        for name, value in [('hidden_dim', hidden_dim), ('output_dim', output_dim),
                            ('output_length', output_length)]:
            if value is None:
                raise TypeError(owned(owner, 'needs %s (a positive int)' % name))
            check_positive_int(name, value, owner=owner)
        check_positive_int('input_dim', input_dim, allow_none=True, owner=owner)
        check_positive_int('input_length', input_length, allow_none=True, owner=owner)
        peek = check_bool('peek', peek, owner)
        self.depth = check_depth(depth, owner)
        if weights is not None:
            kwargs['weights'] = _checked_flat_weights(weights)
        kwargs = input_shape_kwargs(kwargs, input_dim, input_length, batch_size, remember_state)
        super(Seq2seq, self).__init__(
            init=init, inner_init=inner_init, forget_bias_init=forget_bias_init,
            activation=activation, inner_activation=inner_activation,
            truncate_gradient=truncate_gradient, hidden_state=hidden_state,
            batch_size=batch_size, remember_state=remember_state, **kwargs)
        self.input_length = input_length
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.output_length = output_length
        self.peek = peek
        self.supports_masking = True
        self._make_cells(input_dim)
        self._create_state_variables()

    def _make_cells(self, input_dim):
        encoder_depth, decoder_depth = self.depth
        self.lower_encoder_cells = [self.new_cell(input_dim) for _ in range(encoder_depth - 1)] \
            if input_dim is not None else []
        self._lower_width_pending = input_dim is None and encoder_depth > 1
        self.encoder_cell = self.new_cell(self.hidden_dim)
        # The decoder: one cell in the feedback loop, the others above it.
        self.decoder = Decoder([self.new_cell(self.hidden_dim)], self.output_dim, peek=self.peek,
                               upper_cells=[self.new_cell(self.output_dim)
                                            for _ in range(decoder_depth - 1)],
                               cell_prefix='decoder_%d_', peek_name='decoder_0_context_kernel')

    @property
    def decoder_cell(self):
        return self.decoder.cells[0]

    @property
    def upper_decoder_cells(self):
        return self.decoder.upper_cells

    def recurrent_cells(self):
        return (self.lower_encoder_cells + [self.encoder_cell, self.decoder_cell]
                + self.upper_decoder_cells)

    @property
    def encoder_cells(self):
        return self.lower_encoder_cells + [self.encoder_cell]

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError('Seq2seq expects input of shape (batch, input_length, '
                             'input_dim), got %s' % (input_shape,))
        input_dim = input_shape[-1]
        if self.input_dim is not None and input_dim != self.input_dim:
            raise ValueError('Seq2seq was given input_dim=%d but its input has %d '
                             'features per step (shape %s)' % (self.input_dim, input_dim, input_shape))
        if self._lower_width_pending:
            # The lower encoder LSTMs are as wide as the input, known only now.
            self.input_dim = input_dim
            self.lower_encoder_cells = [self.new_cell(input_dim)
                                        for _ in range(self.depth[0] - 1)]
            self._lower_width_pending = False
            self._create_state_variables()
        width = input_dim
        for i, cell in enumerate(self.encoder_cells):
            cell.build(self, width, 'encoder_%d_' % i)
            width = cell.units
        self.bridge_kernel = self.add_weight(shape=(self.hidden_dim, self.output_dim),
                                             initializer=self.encoder_cell.init,
                                             name='bridge_kernel')
        self.bridge_bias = self.add_weight(shape=(self.output_dim,), initializer='zeros',
                                           name='bridge_bias')
        # The decoder's cell, its peek kernel V (v V enters the gates at every
        # step, Cho et al. 2014), the readout, the upper cells.
        self.decoder.build(self)
        self.built = True

    def encode(self, inputs, mask=None, initial_states=None):
        """Symbolic encoder: returns (context, per-cell final states). The
        encoder LSTMs start from `initial_states` (a list [h, c] per cell)
        when given, else from their own states (zeros or remembered)."""
        if initial_states is None:
            initial_states = [self.initial_states(i, inputs)
                              for i in range(len(self.encoder_cells))]
        sequence = inputs
        final_states = []
        for cell, states in zip(self.encoder_cells, initial_states):
            sequence, finals = run_encoder(
                cell, sequence, list(states), mask=mask,
                truncate_gradient=self.truncate_gradient,
                implementation=self.implementation)              # (batch, time, u)
            final_states.append(finals)
        context = final_states[-1][0]                            # (batch, hidden_dim)
        return context, final_states

    def bridge(self, context):
        """The decoder's first input, (batch, output_dim), from the context."""
        return T.dot(context, self.bridge_kernel) + self.bridge_bias

    def decode(self, context, encoder_finals, upper_states):
        """Symbolic decoder: the decoder LSTM starts from the top encoder
        LSTM's final (h, c) of this very pass and reads the bridged context
        first; the upper decoder LSTMs start from `upper_states` (a list
        [h, c] per cell). Returns (outputs, per-cell final states)."""
        vector = self.bridge(context)                            # (batch, output_dim)
        outputs, finals, _ = self.decoder.run(
            vector, [list(encoder_finals[-1])] + [list(s) for s in upper_states],
            self.decoder.start(vector), self.output_length, implementation=self.implementation,
            truncate_gradient=self.truncate_gradient)           # (batch, out_len, out_dim)
        return outputs, finals

    def call(self, inputs, mask=None):
        context, encoder_finals = self.encode(inputs, mask)
        first_upper = len(self.encoder_cells) + 1
        upper_states = [self.initial_states(first_upper + i, inputs)
                        for i in range(len(self.upper_decoder_cells))]
        outputs, decoder_finals = self.decode(context, encoder_finals, upper_states)
        self.remember(encoder_finals + decoder_finals, inputs)
        return outputs

    # -- step-by-step decoding (seq2seq.search.model_search) --------------------------
    def step_cells(self):
        """The cells whose states `decode_step` carries: the decoder LSTM,
        then the upper decoder LSTMs."""
        return self.decoder.step_cells

    def decode_start(self, inputs, mask=None):
        """(first input, initial states per step cell, constants) for
        `decode_step`: the encoder runs here, once per batch."""
        context, encoder_finals = self.encode(inputs, mask)
        first_upper = len(self.encoder_cells) + 1
        states = [list(encoder_finals[-1])] + [
            self.initial_states(first_upper + i, inputs)
            for i in range(len(self.upper_decoder_cells))]
        vector = self.bridge(context)                            # (batch, output_dim)
        return vector, states, self.decoder.start(vector)

    def decode_step(self, x_tm1, states_tm1, constants):
        """One step of `call`'s decoder (`Decoder.step`): the feedback LSTM,
        then one step of each upper LSTM."""
        return self.decoder.step(x_tm1, states_tm1, constants)

    # -- one exchange from given states (seq2seq.conversation) --------------------
    def run_exchange(self, inputs, initial_states, mask=None):
        """`call` as a function of the states it starts from: one exchange of
        a conversation, leaving the remembered states alone.

        `call` with `remember_state=True` is this method fed from the shared
        state variables, its final states written back to them; chaining
        its final states into the next exchange's initial states (as
        `seq2seq.conversation.ConversationWindow` does) gives the same
        outputs, with gradients flowing from one exchange to the previous.

        # Arguments
            inputs: (batch, input_length, input_dim).
            initial_states: per cell of `recurrent_cells()`, a list [h, c] of
                (batch, size), as `get_hidden_state()` returns them. The
                encoder LSTMs and the upper decoder LSTMs start from them; the
                decoder's entry is not read, since the decoder starts from the
                top encoder LSTM's final state of this very exchange.
            mask: optional (batch, input_length); padded steps keep the
                encoder's state (an all-padding exchange passes it through).

        # Returns
            (outputs, final_states): outputs (batch, output_length,
            output_dim); final_states in the structure of `initial_states`.
        """
        n_cells = len(self.recurrent_cells())
        if len(initial_states) != n_cells:
            raise ValueError('run_exchange needs initial_states for %d cells (encoder LSTMs, '
                             'decoder, upper decoder LSTMs), got %d'
                             % (n_cells, len(initial_states)))
        n_encoders = len(self.encoder_cells)
        context, encoder_finals = self.encode(inputs, mask, initial_states[:n_encoders])
        outputs, decoder_finals = self.decode(context, encoder_finals,
                                              initial_states[n_encoders + 1:])
        return outputs, encoder_finals + decoder_finals

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_length, self.output_dim)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {'input_length': self.input_length, 'input_dim': self.input_dim,
                  'hidden_dim': self.hidden_dim, 'output_dim': self.output_dim,
                  'output_length': self.output_length, 'depth': list(self.depth)}
        if self.peek:  # only then, so that configs saved before peek existed stay equal
            config['peek'] = True
        base = super(Seq2seq, self).get_config()
        return dict(list(base.items()) + list(config.items()))
