"""Several models searched and scored as one (fairseq's `EnsembleModel`,
OpenNMT-py's ensemble decoder, Nematus' `gen_sample` given several models).

An `Ensemble` is the model the search and the scoring see: one Keras model
is an ensemble of one, a list of them an ensemble of several, and nothing
downstream asks which. Its members read the same sources and score the same
target vocabulary; at every step each takes its own step from its own
states, and the ensemble's log-probabilities are the log of the mean of the
members' probabilities (`mean_log_probs`), in a beam search
(`EnsembleStepper`) as in teacher-forced scoring
(`seq2seq.app.translator.Translator.score`).

    ensemble = Ensemble([model_a, model_b])
    beam_decode(ensemble, x)          # or beam_decode([model_a, model_b], x)

This module sits below `seq2seq.search.model_search`, which builds the
members' steppers: `Ensemble.stepper` takes that builder as its argument.
"""
from __future__ import absolute_import

import numpy as np
from keras import backend as K
from keras.engine.network import Network


def check_model(model):
    """TypeError or ValueError unless `model` is a built Keras model, the
    one thing every member of an ensemble and every stepper need."""
    if not isinstance(model, Network):
        raise TypeError('model must be a Keras model (Model or Sequential), got %r'
                        % type(model).__name__)
    if not getattr(model, 'built', True) or not getattr(model, 'inputs', None):
        raise ValueError('model must be built (give its first layer an input shape) '
                         'before decoding')


def mean_log_probs(log_probs):
    """The ensemble's combination rule: log(mean_i(exp(log_probs[i]))),
    elementwise, the log of the members' mean probability.

    Computed in float64 as a log-sum-exp, so probabilities too small for
    float32 (log-probabilities of -1000) are still averaged rather than
    lost. One member's log-probabilities come back unchanged (the mean of
    one probability is itself).

    # Arguments
        log_probs: a list of arrays of one shape, one per member.

    # Returns
        A float64 array of that shape, at most 0.

    # Raises
        ValueError: `log_probs` is empty, or its arrays differ in shape.
    """
    arrays = [np.asarray(a, dtype='float64') for a in log_probs]
    if not arrays:
        raise ValueError('log_probs must hold one array per member, got none')
    shapes = set(a.shape for a in arrays)
    if len(shapes) != 1:
        raise ValueError('log_probs must hold arrays of one shape, got shapes %s'
                         % sorted(shapes))
    mean = np.logaddexp.reduce(np.stack(arrays), axis=0) - np.log(len(arrays))
    # Rounding may leave a certain token a hair above 0; a probability is at most 1.
    return np.minimum(mean, 0.0)


def _vocabulary_size(model):
    return K.int_shape(model.outputs[0])[-1]


class Ensemble(object):
    """Keras models trained on the same vocabularies, searched and scored as
    one model with the mean of their probabilities.

    # Arguments
        model: a Keras model (an ensemble of one), a list or tuple of them,
            or an `Ensemble` (the same members).

    # Attributes
        models: the members, a list.
        model: the first member (what an ensemble of one is).

    # Raises
        TypeError: a member is not a Keras model.
        ValueError: an empty list, a member that is not built, or members
            whose outputs score vocabularies of different sizes.
    """

    def __init__(self, model):
        if isinstance(model, Ensemble):
            models = list(model.models)
        elif isinstance(model, (list, tuple)):
            models = list(model)
        else:
            models = [model]
        if not models:
            raise ValueError('model must be a Keras model or a non-empty list of them '
                             '(an ensemble), got an empty %s' % type(model).__name__)
        for member in models:
            check_model(member)
        # Checked before any compiling: averaging probabilities of different
        # vocabularies would be meaningless (and fail only at the first step).
        sizes = [_vocabulary_size(member) for member in models]
        if len(set(sizes)) != 1:
            raise ValueError('model: the models of an ensemble must score the same target '
                             'vocabulary; their outputs have %s scores per step' % sizes)
        self.models = models
        self.model = models[0]

    def __len__(self):
        return len(self.models)

    @property
    def stateful(self):
        """Whether a member carries its states from one batch to the next
        (the search then keeps the sources in their order)."""
        return any(getattr(member, 'stateful', False) for member in self.models)

    # The one combination rule, for the search and for teacher-forced scoring.
    mean_log_probs = staticmethod(mean_log_probs)

    def stepper(self, member_stepper):
        """The search's stepper of the ensemble: the one member's own
        stepper for an ensemble of one (so its search is exactly the
        model's), an `EnsembleStepper` of the members' otherwise.

        # Arguments
            member_stepper: a function of a member giving its stepper (e.g.
                `seq2seq.search.model_search.get_stepper` with a feedback).
        """
        steppers = [member_stepper(member) for member in self.models]
        return steppers[0] if len(steppers) == 1 else EnsembleStepper(steppers)


class EnsembleStepper(object):
    """The step function of several models searched as one: every member
    takes its own step from its own states, and the search sees
    `mean_log_probs` of their log-probabilities.

    # Arguments
        steppers: one stepper per member (`seq2seq.search.model_search.get_stepper`).

    # Attributes
        members: the steppers.
        output_length: the fewest output steps of a member (the default
            max_length).
        max_steps: the most steps the members can all take (None: no limit),
            see `TableStepper`.

    # Raises
        ValueError: no steppers, or members whose outputs score vocabularies
            of different sizes.
    """

    grouped = False

    def __init__(self, steppers):
        self.members = list(steppers)
        if not self.members:
            raise ValueError('steppers must hold one stepper per member, got none')
        self.ensemble = Ensemble([member.model for member in self.members])
        self.model = self.members[0].model
        self.decoder = self.members[0].decoder
        self.output_length = min(member.output_length for member in self.members)
        limits = [member.max_steps for member in self.members if member.max_steps is not None]
        self.max_steps = min(limits) if limits else None
        self._state_counts = None

    def initial_states(self, sources):
        """Every member's search states, one after the other; `sources` are
        the arrays of the model inputs (each member picks its own)."""
        per_member = [member.initial_states(sources) for member in self.members]
        self._state_counts = [len(states) for states in per_member]
        return [state for states in per_member for state in states]

    def step_fn(self, tokens, states):
        """`seq2seq.search.numpy_search`'s step function: `mean_log_probs`
        of the members' steps."""
        log_probs, new_states, start = [], [], 0
        for member, count in zip(self.members, self._state_counts):
            member_log_probs, member_states = member.step_fn(tokens,
                                                             states[start:start + count])
            start += count
            log_probs.append(member_log_probs)
            new_states.extend(member_states)
        return mean_log_probs(log_probs).astype(K.floatx()), new_states
