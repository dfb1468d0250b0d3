"""Ensembles (seq2seq.search.ensemble: Ensemble, its combination rule
mean_log_probs and EnsembleStepper; Translator with several model
directories) and scoring without dropout (seq2seq.layers.dropout_free).

The references are plain numpy: the ensemble's step is log(mean(exp(.)))
of its models' own steps, and a hypothesis' score is the sum of those steps
along its tokens. An ensemble of one model is the model: the same searches
and the same scores, exactly.
"""
import os
import shutil
import tempfile

import numpy as np
import theano
from keras import backend as K
from nose.tools import assert_equal, assert_in, assert_is, assert_raises, assert_true
from numpy.testing import assert_allclose, assert_array_equal

from seq2seq.search import model_search as inference
from seq2seq.search import numpy_search
from seq2seq.search.ensemble import Ensemble, EnsembleStepper, mean_log_probs
from seq2seq.layers.dropout_free import dropout_masks, without_dropout
from seq2seq.models import AttentionSeq2Seq, Seq2Seq

from .test_inference import padded_tokens
from nose.plugins.attrib import attr

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


class TestCombinationRule(object):
    """mean_log_probs on numbers worked out by hand: two models, three
    tokens."""

    def test_two_models_three_tokens(self):
        # Row 0: p_a = (0.5, 0.25, 0.25), p_b = (0.1, 0.6, 0.3), whose means
        # are (0.3, 0.425, 0.275). Row 1: each model all but sure of token
        # 0, the rest exp(-1000) and exp(-1002) (0 in float64): the mean of
        # those two is exp(-1000) * (1 + exp(-2)) / 2, whose log is
        # -1000 + log(0.567667...) = -1000.566219...
        model_a = np.array([np.log([0.5, 0.25, 0.25]), [0.0, -1000.0, -1002.0]])
        model_b = np.array([np.log([0.1, 0.6, 0.3]), [0.0, -1002.0, -1000.0]])
        expected = np.array([[-1.2039728043259361, -0.8556661100577202, -1.2909841813155656],
                             [0.0, -1000.5662191695170, -1000.5662191695170]])
        assert_allclose(np.log([0.3, 0.425, 0.275]), expected[0], rtol=1e-15)
        combined = mean_log_probs([model_a, model_b])
        assert_equal(combined.dtype, np.float64)
        assert_allclose(combined, expected, rtol=1e-13, atol=0)
        assert_array_equal(combined, mean_log_probs([model_b, model_a]))
        assert_allclose(mean_log_probs([model_a.astype('float32'), model_b.astype('float32')]),
                        expected, rtol=1e-6)
        assert_is(Ensemble.mean_log_probs, mean_log_probs)

    def test_one_model_is_its_own_mean_and_a_model_with_itself_too(self):
        log_probs = np.log(np.random.RandomState(0).dirichlet(np.ones(5), size=(3, 4)))
        assert_array_equal(mean_log_probs([log_probs]), log_probs)
        assert_array_equal(mean_log_probs([log_probs.astype('float32')]),
                           log_probs.astype('float32'))
        assert_array_equal(mean_log_probs([log_probs.astype('float32')] * 3).astype('float32'),
                           log_probs.astype('float32'))
        certain = mean_log_probs([np.zeros(3)] * 3)      # log(3) - log(3), rounded
        assert_true((certain <= 0).all() and (certain > -1e-15).all(), certain)
        assert_array_equal(mean_log_probs([[-np.inf, 0.0], [-np.inf, -np.inf]]),
                           [-np.inf, -np.log(2)])

    def test_bad_tables(self):
        with assert_raises(ValueError) as raised:
            mean_log_probs([])
        assert_in('log_probs', str(raised.exception))
        with assert_raises(ValueError) as raised:
            mean_log_probs([np.zeros((2, 3)), np.zeros((2, 4))])
        assert_in('one shape', str(raised.exception))


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

    def test_an_ensemble_of_one_is_the_model(self):
        stepper = inference.get_stepper(self.a)
        assert_is(Ensemble([self.a]).stepper(inference.get_stepper), stepper)
        assert_equal(Ensemble(self.a).models, [self.a])
        # The model's own stepper straight through the numpy search: the
        # single model's results, with no ensemble anywhere.
        alone = numpy_search.beam_search(stepper.step_fn, stepper.initial_states([self.x]),
                                         3, STEPS, eos_id=1, n_best=3)
        greedy_alone = numpy_search.greedy_search(stepper.step_fn,
                                                  stepper.initial_states([self.x]), STEPS,
                                                  eos_id=1)
        for model in (self.a, [self.a], (self.a,), Ensemble([self.a]), Ensemble(self.a)):
            beams = inference.beam_decode(model, self.x, beam_size=3, eos_id=1, n_best=3)
            for hyps, hyps_alone in zip(beams, alone):
                assert_equal([list(h.tokens) for h in hyps],
                             [list(h.tokens) for h in hyps_alone])
                assert_array_equal([h.log_prob for h in hyps], [h.log_prob for h in hyps_alone])
                assert_array_equal([h.score for h in hyps], [h.score for h in hyps_alone])
            greedy = inference.greedy_decode(model, self.x, eos_id=1)
            assert_array_equal(greedy[0][:, :greedy_alone[0].shape[1]], greedy_alone[0])
            assert_array_equal(greedy[1], greedy_alone[1])
            assert_array_equal(greedy[2], greedy_alone[2])

    def test_the_ensemble_step_is_the_combination_rule(self):
        ensemble = Ensemble([self.a, self.b])
        stepper = ensemble.stepper(inference.get_stepper)
        assert_true(isinstance(stepper, EnsembleStepper))
        members = [inference.get_stepper(m) for m in (self.a, self.b)]
        states = stepper.initial_states([self.x])
        member_states = [m.initial_states([self.x]) for m in members]
        previous = None
        for _ in range(3):
            log_probs, states = stepper.step_fn(previous, states)
            steps = [m.step_fn(previous, s) for m, s in zip(members, member_states)]
            member_states = [new_states for _, new_states in steps]
            assert_array_equal(log_probs, mean_log_probs([lp for lp, _ in steps]).astype(
                K.floatx()))
            previous = log_probs.argmax(axis=1)

    def test_an_ensemble_checks_before_compiling(self):
        with assert_raises(TypeError) as raised:
            Ensemble([self.a, 'model'])
        assert_in('model must be a Keras model', str(raised.exception))
        with assert_raises(ValueError) as raised:
            Ensemble(())
        assert_in('non-empty list', str(raised.exception))


def write_model_dir(folder, seed, words):
    """A model directory as `seq2seq train` writes one, without training:
    an attention model of the characters of `words`, its random weights
    pushed apart by `seed` so that two directories disagree."""
    from seq2seq.app.model_dir import build_model, write_config
    from seq2seq.training.vocab import Vocabulary
    config = dict(model='attention', cell='lstm', depth=1, dropout=0.0, embedding_dim=4,
                  hidden_dim=8, input_length=4, output_length=5, reverse_source=False,
                  reverse_target=False, source_tokens='chars', target_tokens='chars')
    vocab = Vocabulary.build(words)
    np.random.seed(seed)        # Keras' initialisers draw from numpy
    model = build_model(config, len(vocab), len(vocab))
    rng = np.random.RandomState(seed)
    model.set_weights([w + rng.normal(0, 0.5, w.shape).astype(w.dtype)
                       for w in model.get_weights()])
    write_config(folder, config, vocab, vocab)
    model.save(os.path.join(folder, 'model.h5'))      # what Translator loads
    return folder


class TestTranslatorEnsemble(object):
    """A Translator holds one Ensemble: its beam and its teacher-forced
    scores use the same combination rule, and one directory is an
    ensemble of one."""

    WORDS = ['abcd', 'bcda', 'cdab', 'dabc', 'abdc', 'badc', 'cbad', 'dcba']

    @classmethod
    def setup_class(cls):
        from seq2seq.app.translator import Translator
        cls.folder = tempfile.mkdtemp()
        cls.dirs = [write_model_dir(os.path.join(cls.folder, name), seed, cls.WORDS)
                    for name, seed in (('a', 11), ('b', 12))]
        cls.pair = Translator(cls.dirs)
        cls.single = Translator(cls.dirs[0])
        cls.sources = [list(w) for w in cls.WORDS] + [list('ab'), list('dd')]

    @classmethod
    def teardown_class(cls):
        shutil.rmtree(cls.folder)

    def finished(self, translator, decoded):
        """(sources, targets, log-probabilities) of the hypotheses that ended
        with EOS (a longer one would be cut to the output length)."""
        found = [(source, tokens, log_prob) for source, hyps in zip(self.sources, decoded)
                 for tokens, log_prob in hyps if len(tokens) < translator.output_length]
        assert_true(len(found) >= len(self.sources), decoded)
        return tuple(zip(*found))

    def test_the_translator_holds_one_ensemble(self):
        assert_equal(len(self.pair.ensemble), 2)
        assert_equal(self.pair.models, self.pair.ensemble.models)
        assert_is(self.pair.model, self.pair.models[0])
        assert_equal(self.single.models, [self.single.model])
        assert_equal(len(self.pair.configs), 2)

    def test_n_best_without_a_beam_size_searches_a_beam_that_wide(self):
        # The rule `seq2seq predict --n-best N` follows: no beam size given,
        # the beam is N wide; a narrower beam given is refused, not widened.
        assert_equal(self.single.translate(self.sources, n_best=3),
                     self.single.translate(self.sources, beam_size=3, n_best=3))
        assert_raises(ValueError, self.single.translate, self.sources, beam_size=2, n_best=3)

    def test_beam_log_probabilities_are_the_teacher_forced_scores(self):
        for translator in (self.pair, self.single):
            decoded = translator.translate(self.sources, beam_size=4, n_best=4)
            sources, targets, log_probs = self.finished(translator, decoded)
            assert_allclose(translator.score(list(sources), list(targets)), log_probs,
                            rtol=1e-5, atol=1e-5)
            greedy = [(source, hyps[0][0], hyps[0][1])
                      for source, hyps in zip(self.sources, translator.translate(self.sources))
                      if len(hyps[0][0]) < translator.output_length]
            assert_allclose(translator.score([s for s, _, _ in greedy], [t for _, t, _ in greedy]),
                            [lp for _, _, lp in greedy], rtol=1e-5, atol=1e-5)

    def test_the_ensemble_scores_with_the_combination_rule(self):
        from seq2seq.app.translator import Translator
        targets = [list(w[::-1]) for w in self.WORDS] + [list('ba'), list('d')]
        pair = self.pair.reference_log_probs(self.sources, targets)[0]
        alone = [Translator(d).reference_log_probs(self.sources, targets)[0] for d in self.dirs]
        counted = ~np.isnan(pair)
        assert_array_equal(counted, ~np.isnan(alone[1]))
        assert_array_equal(pair[counted], mean_log_probs(
            [a[counted] for a in alone]).astype('float32'))
        # Not the mean of the log-probabilities: the log of the mean.
        assert np.abs(pair[counted] - np.mean([a[counted] for a in alone], axis=0)).max() > 1e-3

    @attr('slow')
    def test_an_ensemble_of_one_scores_as_the_model(self):
        from seq2seq.training.data import one_hot
        # Full-length sources and targets: no batch is cut, so the scores
        # come from the very arrays given to the model here.
        sources = [list(w) for w in self.WORDS]
        targets = [list(w[1:]) + [w[0]] for w in self.WORDS]
        for translator in (self.single, type(self.single)([self.dirs[0]])):
            x, y = translator.encode_sources(sources), translator.encode_targets(targets)
            forced = translator._forced_function(translator.model, [translator.model.output])
            probs = forced([x, one_hot(y, len(translator.target_vocab)), 1])[0]
            picked = np.log(np.maximum(np.take_along_axis(probs, y[..., None], axis=-1)[..., 0],
                                       1e-30))
            counted = np.cumsum(y == 1, axis=1) - (y == 1) == 0      # up to EOS (id 1)
            assert_array_equal(translator.score(sources, targets),
                               np.where(counted, picked, 0.0).sum(axis=1, dtype='float64'))


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

    @attr('slow')
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
