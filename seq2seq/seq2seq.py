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

import collections

import theano.tensor as T

from .layers import (CellLayer, _check_positive_int, _input_shape_kwargs,
                     check_depth)
from .recurrent import DecodeStep, feedback_step, run_encoder, run_feedback_decoder


class Seq2seq(CellLayer):
    """Sequence to sequence learning in one layer (Sutskever et al. 2014).

    # Arguments
        input_length: number of input steps.
        input_dim: size of each input step (e.g. the embedding size).
        hidden_dim: size of the encoder's and decoder's h and c.
        output_dim: size of each output step.
        output_length: number of output steps.
        batch_size: sequences per batch; required with `remember_state=True`.
        depth: int, or a pair (encoder depth, decoder depth): the number of
            stacked LSTMs on each side.
        remember_state: keep every LSTM's hidden state from one batch to the
            next (long conversations); call `reset_hidden_state()` after each
            conversation. False (translation-like pairs): every batch starts
            from zeros.
        init, inner_init, forget_bias_init, activation, inner_activation: the
            LSTMs' initializers and activations, with the 2015 defaults.
        hidden_state: initial remembered state (see `get_hidden_state()`).
        truncate_gradient: steps of back-propagation through time (-1: all).
        implementation: 'auto', 'scan' or 'fused' (see `seq2seq.layers.CellLayer`).
    """

    def __init__(self, input_length=None, input_dim=None, hidden_dim=None,
                 output_dim=None, output_length=None, batch_size=None, depth=1,
                 remember_state=False, **kwargs):
        for name, value in [('hidden_dim', hidden_dim), ('output_dim', output_dim),
                            ('output_length', output_length)]:
            if value is None:
                raise TypeError('Seq2seq needs %s (a positive int)' % name)
            _check_positive_int(name, value)
        _check_positive_int('input_dim', input_dim, allow_none=True)
        _check_positive_int('input_length', input_length, allow_none=True)
        self.depth = check_depth(depth)
        kwargs = _input_shape_kwargs(kwargs, input_dim, input_length, batch_size, remember_state)
        super(Seq2seq, self).__init__(batch_size=batch_size, remember_state=remember_state,
                                      **kwargs)
        self.input_length = input_length
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.output_dim = output_dim
        self.output_length = output_length
        self.supports_masking = True
        self._make_cells(input_dim)
        self._create_state_variables()

    def _make_cells(self, input_dim):
        encoder_depth, decoder_depth = self.depth
        self.lower_encoder_cells = [self.new_cell(input_dim) for _ in range(encoder_depth - 1)] \
            if input_dim is not None else []
        self._lower_width_pending = input_dim is None and encoder_depth > 1
        self.encoder_cell = self.new_cell(self.hidden_dim)
        self.decoder_cell = self.new_cell(self.hidden_dim)
        self.upper_decoder_cells = [self.new_cell(self.output_dim)
                                    for _ in range(decoder_depth - 1)]

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
        self.decoder_cell.build(self, self.output_dim, 'decoder_0_')
        self.readout_kernel = self.add_weight(shape=(self.hidden_dim, self.output_dim),
                                              initializer=self.decoder_cell.init,
                                              name='readout_kernel')
        self.readout_bias = self.add_weight(shape=(self.output_dim,), initializer='zeros',
                                            name='readout_bias')
        for i, cell in enumerate(self.upper_decoder_cells):
            cell.build(self, self.output_dim, 'decoder_%d_' % (i + 1))
        self.built = True

    def encode(self, inputs, mask=None):
        """Symbolic encoder: returns (context, per-cell final states)."""
        sequence = inputs
        final_states = []
        for i, cell in enumerate(self.encoder_cells):
            sequence, finals = run_encoder(
                cell, sequence, self.initial_states(i, inputs), mask=mask,
                truncate_gradient=self.truncate_gradient,
                implementation=self.implementation)              # (batch, time, u)
            final_states.append(finals)
        context = final_states[-1][0]                            # (batch, hidden_dim)
        return context, final_states

    def bridge(self, context):
        """The decoder's first input, (batch, output_dim), from the context."""
        return T.dot(context, self.bridge_kernel) + self.bridge_bias

    def call(self, inputs, mask=None):
        context, encoder_finals = self.encode(inputs, mask)
        vector = self.bridge(context)                            # (batch, output_dim)
        # The decoder starts from the encoder's final (h, c) of this very pass.
        outputs, decoder_finals = run_feedback_decoder(
            [self.decoder_cell], (self.readout_kernel, self.readout_bias), vector,
            [encoder_finals[-1]], self.output_length,
            truncate_gradient=self.truncate_gradient,
            implementation=self.implementation)                  # (batch, out_len, out_dim)
        upper_finals = []
        first_upper = len(self.encoder_cells) + 1
        for i, cell in enumerate(self.upper_decoder_cells):
            outputs, finals = run_encoder(
                cell, outputs, self.initial_states(first_upper + i, inputs),
                truncate_gradient=self.truncate_gradient,
                implementation=self.implementation)              # (batch, out_len, out_dim)
            upper_finals.append(finals)
        self.remember(encoder_finals + decoder_finals + upper_finals, inputs)
        return outputs

    # -- step-by-step decoding (seq2seq.inference) --------------------------------
    def step_cells(self):
        """The cells whose states `decode_step` carries: the decoder LSTM,
        then the upper decoder LSTMs."""
        return [self.decoder_cell] + self.upper_decoder_cells

    def decode_start(self, inputs, mask=None):
        """(first input, initial states per step cell, constants) for
        `decode_step`: the encoder runs here, once per batch."""
        context, encoder_finals = self.encode(inputs, mask)
        first_upper = len(self.encoder_cells) + 1
        states = [list(encoder_finals[-1])] + [
            self.initial_states(first_upper + i, inputs)
            for i in range(len(self.upper_decoder_cells))]
        return self.bridge(context), states, collections.OrderedDict()

    def decode_step(self, x_tm1, states_tm1, constants):
        """One step of `call`'s decoder: the feedback LSTM (the step of its
        `run_feedback_decoder` loop), then one step of each upper LSTM (the
        step of their `run_encoder` loops)."""
        x_t, decoder_states = feedback_step(
            [self.decoder_cell], (self.readout_kernel, self.readout_bias), x_tm1,
            states_tm1[:1])                                      # (batch, output_dim)
        output, states_t = x_t, list(decoder_states)
        for cell, cell_states in zip(self.upper_decoder_cells, states_tm1[1:]):
            output, new_states = cell.step(cell.project_inputs(output), cell_states)
            states_t.append(new_states)                          # (batch, output_dim)
        return DecodeStep(feedback=x_t, output=output, logits=output, states=states_t)

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
        sequence = inputs
        encoder_finals = []
        for cell, states in zip(self.encoder_cells, initial_states[:n_encoders]):
            sequence, finals = run_encoder(
                cell, sequence, list(states), mask=mask,
                truncate_gradient=self.truncate_gradient,
                implementation=self.implementation)              # (batch, time, u)
            encoder_finals.append(finals)
        context = encoder_finals[-1][0]                          # (batch, hidden_dim)
        vector = T.dot(context, self.bridge_kernel) + self.bridge_bias  # (batch, output_dim)
        outputs, decoder_finals = run_feedback_decoder(
            [self.decoder_cell], (self.readout_kernel, self.readout_bias), vector,
            [encoder_finals[-1]], self.output_length,
            truncate_gradient=self.truncate_gradient,
            implementation=self.implementation)                  # (batch, out_len, out_dim)
        upper_finals = []
        for cell, states in zip(self.upper_decoder_cells, initial_states[n_encoders + 1:]):
            outputs, finals = run_encoder(
                cell, outputs, list(states), truncate_gradient=self.truncate_gradient,
                implementation=self.implementation)              # (batch, out_len, out_dim)
            upper_finals.append(finals)
        return outputs, encoder_finals + decoder_finals + upper_finals

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.output_length, self.output_dim)

    def compute_mask(self, inputs, mask=None):
        return None

    def get_config(self):
        config = {'input_length': self.input_length, 'input_dim': self.input_dim,
                  'hidden_dim': self.hidden_dim, 'output_dim': self.output_dim,
                  'output_length': self.output_length, 'depth': list(self.depth)}
        base = super(Seq2seq, self).get_config()
        return dict(list(base.items()) + list(config.items()))
