"""Ensemble decoding (seq2seq.inference.EnsembleStepper, Translator with
several model directories) and scoring without dropout
(seq2seq._theano.dropout_free).

The references are plain numpy: the ensemble's step is log(mean(exp(.)))
of its models' own steps, and a hypothesis' score is the sum of those steps
along its tokens.
"""
import numpy as np
import theano
from keras import backend as K
from nose.tools import assert_equal, assert_in, assert_raises
from numpy.testing import assert_allclose, assert_array_equal

from seq2seq import inference
from seq2seq._theano.dropout_free import dropout_masks, without_dropout
from seq2seq.models import AttentionSeq2Seq, Seq2Seq

from .test_inference import padded_tokens

VOCAB, TARGETS, LENGTH, STEPS = 9, 7, 6, 5


def attention_model(seed, dropout=0.0, depth=1, output_dim=TARGETS):
    np.random.seed(seed)        # Keras' initialisers draw from numpy
    model = AttentionSeq2Seq(output_dim=output_dim, output_length=STEPS, hidden_dim=8,
                             input_dim=4, input_length=LENGTH, source_vocab_size=VOCAB,
                             teacher_force=True, readout_activation='softmax',
                             dropout=dropout, depth=depth)
    # Larger weights than the initialisers' make the two models disagree.
    rng = np.random.RandomState(seed)
    model.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    return model


def ensemble_step_reference(steppers, tokens, states_per_model):
    """log of the mean of the models' step probabilities, and their states."""
    steps = [s.step_fn(tokens, states) for s, states in zip(steppers, states_per_model)]
    probabilities = np.mean([np.exp(np.float64(lp)) for lp, _ in steps], axis=0)
    return np.log(probabilities), [states for _, states in steps]


class TestEnsembleSearch(object):
    @classmethod
    def setup_class(cls):
        cls.a = attention_model(seed=1)
        cls.b = Seq2Seq(output_dim=TARGETS, output_length=STEPS, hidden_dim=6, input_dim=4,
                        input_length=LENGTH, source_vocab_size=VOCAB, teacher_force=True,
                        readout_activation='softmax')
        cls.x = padded_tokens(5, LENGTH, VOCAB, seed=3)

    def test_a_model_with_itself_decodes_as_the_model(self):
        alone = inference.beam_decode(self.a, self.x, beam_size=3, eos_id=1, n_best=3)
        twice = inference.beam_decode([self.a, self.a], self.x, beam_size=3, eos_id=1, n_best=3)
        for hyps_alone, hyps_twice in zip(alone, twice):
            assert_equal([list(h.tokens) for h in hyps_alone],
                         [list(h.tokens) for h in hyps_twice])
            assert_allclose([h.log_prob for h in hyps_alone], [h.log_prob for h in hyps_twice],
                            rtol=1e-5, atol=1e-5)
        greedy = inference.greedy_decode(self.a, self.x, eos_id=1)
        greedy_twice = inference.greedy_decode((self.a, self.a), self.x, eos_id=1)
        assert_array_equal(greedy[0], greedy_twice[0])
        assert_allclose(greedy[2], greedy_twice[2], rtol=1e-5, atol=1e-5)

    def test_scores_are_the_log_of_the_mean_probability_along_the_tokens(self):
        # An attention model and a plain encoder-decoder: different states.
        results = inference.beam_decode([self.a, self.b], self.x, beam_size=3, eos_id=1,
                                        n_best=2)
        steppers = [inference.get_stepper(m) for m in (self.a, self.b)]
        for row, hypotheses in enumerate(results):
            for hypothesis in hypotheses:
                source = [self.x[row:row + 1]]
                states = [s.initial_states(source) for s in steppers]
                total, previous = 0.0, None
                for token in hypothesis.tokens:
                    log_probs, states = ensemble_step_reference(steppers, previous, states)
                    total += log_probs[0, token]
                    previous = np.array([token])
                assert_allclose(hypothesis.log_prob, total, rtol=1e-4, atol=1e-4)

    def test_greedy_picks_the_most_probable_mean_at_every_step(self):
        tokens, lengths, log_probs = inference.greedy_decode([self.a, self.b], self.x)
        steppers = [inference.get_stepper(m) for m in (self.a, self.b)]
        states = [s.initial_states([self.x]) for s in steppers]
        previous, expected, total = None, [], 0.0
        for _ in range(STEPS):
            step, states = ensemble_step_reference(steppers, previous, states)
            previous = step.argmax(axis=1)
            expected.append(previous)
            total = total + step.max(axis=1)
        assert_array_equal(tokens, np.stack(expected, axis=1))
        assert_allclose(log_probs, total, rtol=1e-4, atol=1e-4)

    def test_models_must_share_the_target_vocabulary(self):
        other = attention_model(seed=2, output_dim=TARGETS + 1)
        with assert_raises(ValueError) as raised:
            inference.beam_decode([self.a, other], self.x)
        assert_in('same target vocabulary', str(raised.exception))
        with assert_raises(ValueError) as raised:
            inference.greedy_decode([], self.x)
        assert_in('non-empty list', str(raised.exception))


class TestScoringWithoutDropout(object):
    """Teacher-forced scores (phase 1) of a model with dropout equal those
    of the same weights without dropout, and no random stream is read."""

    @classmethod
    def setup_class(cls):
        cls.model = attention_model(seed=4, dropout=0.4, depth=2)
        cls.twin = attention_model(seed=4, dropout=0.0, depth=2)
        cls.twin.set_weights(cls.model.get_weights())
        cls.x = padded_tokens(4, LENGTH, VOCAB, seed=5)
        cls.y = np.eye(TARGETS, dtype='float32')[np.random.RandomState(6).randint(
            0, TARGETS, (4, STEPS))]

    def forward(self, model, outputs):
        return K.function(model.inputs + [K.learning_phase()], outputs)

    def test_the_same_scores_as_the_model_without_dropout(self):
        assert len(dropout_masks([self.model.output])) >= 4   # encoders and decoder cells
        clean = self.forward(self.model, without_dropout([self.model.output]))
        expected = self.forward(self.twin, [self.twin.output])([self.x, self.y, 1])[0]
        first, second = clean([self.x, self.y, 1])[0], clean([self.x, self.y, 1])[0]
        assert_allclose(first, expected, rtol=1e-5, atol=1e-6)
        assert_array_equal(first, second)
        noisy = self.forward(self.model, [self.model.output])([self.x, self.y, 1])[0]
        assert np.abs(noisy - expected).max() > 1e-3      # the dropout was there to remove

    def test_no_random_draw_is_left_in_the_compiled_function(self):
        function = theano.function(self.model.inputs + [K.learning_phase()],
                                   without_dropout([self.model.output]),
                                   on_unused_input='ignore')
        ops = [type(node.op).__name__ for node in function.maker.fgraph.toposort()]
        assert not [op for op in ops if 'mrg' in op.lower()], ops

    def test_a_graph_without_dropout_is_returned_as_it_is(self):
        outputs = [self.twin.output]
        assert_equal(without_dropout(outputs), outputs)
