"""Step-by-step decoding of a trained model: greedy and beam search.

`DecoderStepper` compiles two Theano functions from a model's decoder layer,
using the very `step` method its training loop runs:

    start(x)                          -> the decoder's first input, initial
                                         states and per-batch constants
    step(x_tm1, states, constants)    -> x_t, log-probabilities, new states

and wraps them as the `step_fn(tokens, states)` of `seq2seq.decoding`.

What a hypothesis feeds back after choosing a token (`feedback`):
- 'readout': the decoder's own output vector, as in training without teacher
  forcing. The next step then does not depend on the token chosen, so beam
  search ranks independent per-step choices and greedy search gives the
  argmax of `model.predict`.
- 'token': the one-hot vector of the chosen token, as the targets a
  teacher-forced model was trained on (the default for those models).
The log-probabilities are the log-softmax of the readout before its
activation (what `Activation('softmax')` or a softmax readout gives).
"""
from __future__ import absolute_import

import collections

import numpy as np
import theano.tensor as T
from keras import backend as K

from .decoding import beam_search, greedy_search
from .recurrent import flatten_states, unflatten_states

FEEDBACKS = ('readout', 'token')


def _placeholder_like(tensor, name):
    return T.TensorType(tensor.dtype, (False,) * tensor.ndim)(name)


class DecoderStepper(object):
    """Compiled start and step functions for `model`'s decoder.

    # Arguments
        model: a `Seq2SeqModel` with a RecurrentDecoder (Seq2Seq,
            AttentionSeq2Seq, also after `keras.models.load_model`).
        feedback: 'readout' or 'token' (default: 'token' for a teacher-forced
            decoder, 'readout' otherwise).
    """

    def __init__(self, model, feedback=None):
        decoder = model.decoder_layer
        if decoder is None:
            raise ValueError('step-by-step decoding needs a model with a RecurrentDecoder '
                             '(Seq2Seq or AttentionSeq2Seq)')
        if feedback is None:
            feedback = 'token' if decoder.teacher_force else 'readout'
        if feedback not in FEEDBACKS:
            raise ValueError('feedback must be one of %s, got %r' % (FEEDBACKS, feedback))
        self.model = model
        self.decoder = decoder
        self.feedback = feedback
        self.vocab_size = decoder.output_dim
        self._compile()

    def _compile(self):
        decoder = self.decoder
        parts = decoder.split_inputs(decoder.get_input_at(0), decoder.get_input_mask_at(0))
        states = flatten_states(decoder.initial_state_list(parts))
        constants = decoder.constants(parts)
        self.n_states = len(states)
        self.constant_names = list(constants)
        learning_phase = [K.learning_phase()]
        self._start = K.function(self.model.source_inputs() + learning_phase,
                                 [parts.first] + states + list(constants.values()))

        x_tm1 = _placeholder_like(parts.first, 'x_tm1')
        state_inputs = [_placeholder_like(s, 'state_%d' % i) for i, s in enumerate(states)]
        constant_inputs = [_placeholder_like(c, name) for name, c in constants.items()]
        x_t, logits, states_t, _ = decoder.step(
            x_tm1, unflatten_states(state_inputs, decoder.cells),
            collections.OrderedDict(zip(self.constant_names, constant_inputs)))
        log_probs = T.nnet.logsoftmax(logits)                          # (rows, vocab)
        self._step = K.function([x_tm1] + state_inputs + constant_inputs + learning_phase,
                                [x_t, log_probs] + flatten_states(states_t))

    def initial_states(self, x):
        """The search states for a batch of sources: [x_prev] + decoder states
        + constants, each with the batch first."""
        x = list(x) if isinstance(x, (list, tuple)) else [x]
        return [np.asarray(a) for a in self._start(x + [0])]

    def step_fn(self, tokens, states):
        """`seq2seq.decoding`'s step function."""
        x_prev = states[0]
        decoder_states = states[1:1 + self.n_states]
        constants = states[1 + self.n_states:]
        if tokens is None or self.feedback == 'readout':
            x_in = x_prev               # the first input, or the parent's output
        else:
            x_in = np.eye(self.vocab_size, dtype=x_prev.dtype)[tokens]
        results = self._step([x_in] + list(decoder_states) + list(constants) + [0])
        x_t, log_probs, new_states = results[0], results[1], results[2:]
        return log_probs, [x_t] + list(new_states) + list(constants)


def _batches(x, batch_size):
    x = list(x) if isinstance(x, (list, tuple)) else [x]
    for start in range(0, len(x[0]), batch_size):
        yield [a[start:start + batch_size] for a in x]


def greedy_decode(model, x, max_length=None, eos_id=None, feedback=None, batch_size=64):
    """Greedy search over a batch of sources.

    # Arguments
        model: a Seq2Seq or AttentionSeq2Seq model.
        x: the source batch (what `model.predict` takes, without targets).
        max_length: most tokens per sequence (default: the model's
            output_length).
        eos_id: the end-of-sequence token: a sequence stops after it.
        feedback: 'readout' or 'token' (see the module doc).

    # Returns
        (tokens, lengths, log_probs): tokens (batch, steps) padded with
        eos_id (or 0) after the end; lengths and summed log-probabilities
        per sequence.
    """
    stepper = DecoderStepper(model, feedback)
    max_length = stepper.decoder.output_length if max_length is None else max_length
    results = [greedy_search(stepper.step_fn, stepper.initial_states(batch), max_length,
                             eos_id=eos_id) for batch in _batches(x, batch_size)]
    width = max(r[0].shape[1] for r in results)
    pad = 0 if eos_id is None else eos_id
    tokens = np.concatenate([np.pad(r[0], ((0, 0), (0, width - r[0].shape[1])),
                                    constant_values=pad) for r in results])
    return (tokens, np.concatenate([r[1] for r in results]),
            np.concatenate([r[2] for r in results]))


def beam_decode(model, x, beam_size=5, max_length=None, eos_id=None, length_penalty=0.0,
                n_best=1, feedback=None, batch_size=64):
    """Beam search over a batch of sources.

    # Arguments
        beam_size, length_penalty, n_best: see `seq2seq.decoding.beam_search`.
        (the others as `greedy_decode`)

    # Returns
        One list per source of up to n_best `Hypothesis` (tokens, log_prob,
        score, finished), best first.
    """
    stepper = DecoderStepper(model, feedback)
    max_length = stepper.decoder.output_length if max_length is None else max_length
    hypotheses = []
    for batch in _batches(x, batch_size):
        hypotheses.extend(beam_search(stepper.step_fn, stepper.initial_states(batch),
                                      beam_size, max_length, eos_id=eos_id,
                                      length_penalty=length_penalty, n_best=n_best))
    return hypotheses
