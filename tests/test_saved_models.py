"""Models saved by an earlier version still load, and give the same outputs.

The files in tests/fixtures/saved_models/ were written once, by the code of
commit f98b7dc (before the refactor into subpackages and the unified
decoders), with tests/fixtures/saved_models/make_fixtures.py: each NAME.h5
(`model.save`, or the model directory `seq2seq train` wrote) with NAME.npz,
its inputs and the outputs that code gave. They stand for the files users
have on disk. When a test here fails, the change under test broke loading
those files or changed what they compute: fix the change (or give it a
compatibility path); never regenerate the fixtures to make a test pass.

Every model is loaded the way the README says: `keras.models.load_model(path)`
after `import seq2seq`, with no custom_objects (and `Translator(dir)` for the
model directory). Outputs are compared to rtol 1e-5, atol 1e-6; searches
must give the same tokens (their log-probabilities to the same tolerance).
"""
import os
import unittest

import keras
import numpy as np
from keras import backend as K
from nose.plugins.attrib import attr
from numpy.testing import assert_allclose, assert_array_equal

import seq2seq  # noqa: F401  (registers the layers for load_model)
from seq2seq.inference import beam_decode, greedy_decode

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'fixtures', 'saved_models')
TOL = dict(rtol=1e-5, atol=1e-6)


def fixture_path(*parts):
    return os.path.join(FIXTURES, *parts)


def load(name):
    """The saved model NAME.h5, loaded as the README says, and NAME.npz."""
    model = keras.models.load_model(fixture_path(name + '.h5'))
    with np.load(fixture_path(name + '.npz')) as data:
        expected = {key: data[key] for key in data.files}
    return model, expected


def one_hot(ids, size):
    return np.eye(size, dtype=K.floatx())[ids]


def teacher_forced_output(model, x, targets):
    """A teacher-forced model's output reading `targets`, as in training
    (learning phase 1; `predict` ignores the targets). No dropout here."""
    function = K.function(model.inputs + [K.learning_phase()], [model.output])
    return function([x, targets, 1])[0]


def search_arguments(expected):
    eos_id = int(expected['search_eos_id'])
    return dict(eos_id=None if eos_id < 0 else eos_id,
                feedback=str(expected['search_feedback']) or None)


def check_greedy(result, expected):
    """(tokens, lengths, log_probs) of a greedy search against the saved
    ones: the same tokens up to each length (the padding after may differ)."""
    tokens, lengths, log_probs = result
    assert_array_equal(lengths, expected['greedy_lengths'])
    for row, length in enumerate(expected['greedy_lengths']):
        assert_array_equal(tokens[row, :length], expected['greedy_tokens'][row, :length],
                           'greedy tokens of row %d' % row)
    assert_allclose(log_probs, expected['greedy_log_probs'], **TOL)


def check_beam(result, expected):
    """Per source, the n-best `Hypothesis` list against the saved one."""
    n_best = int(expected['search_n_best'])
    assert_array_equal([len(hyps) for hyps in result], [n_best] * len(result))
    for row, hyps in enumerate(result):
        for j, h in enumerate(hyps):
            length = expected['beam_lengths'][row, j]
            assert_array_equal(h.tokens, expected['beam_tokens'][row, j, :length],
                               'beam hypothesis %d of row %d' % (j, row))
            assert_allclose(h.log_prob, expected['beam_log_probs'][row, j], **TOL)
            assert_allclose(h.score, expected['beam_scores'][row, j], **TOL)
            assert h.finished == expected['beam_finished'][row, j], (row, j, h)


def check_search(model, x, expected):
    """greedy_decode and beam_decode of seq2seq.inference (the README's
    functions for any model holding a decoder layer)."""
    arguments = search_arguments(expected)
    check_greedy(greedy_decode(model, x, **arguments), expected)
    check_beam(beam_decode(model, x, beam_size=int(expected['search_beam_size']),
                           n_best=int(expected['search_n_best']), **arguments), expected)


def check_model_search(model, x, expected):
    """A Seq2SeqModel's own greedy_decode and beam_decode."""
    arguments = search_arguments(expected)
    check_greedy(model.greedy_decode(x, **arguments), expected)
    check_beam(model.beam_decode(x, beam_size=int(expected['search_beam_size']),
                                 n_best=int(expected['search_n_best']), **arguments), expected)


class SavedModelTest(object):
    """Loads NAME once for its tests (a mixin: nose collects only the
    unittest.TestCase classes that name a fixture)."""

    name = None

    @classmethod
    def setUpClass(cls):
        cls.model, cls.expected = load(cls.name)


# -- the 2015 API ------------------------------------------------------------------------
class TestSeq2seq2015Sequential(SavedModelTest, unittest.TestCase):
    """Sequential: Embedding, Seq2seq(output_dim, hidden_dim, output_length,
    depth=2) in the 2015 positional order; RMSprop's state in the file."""

    name = 'seq2seq_2015_sequential'

    def test_loads_the_layer(self):
        assert isinstance(self.model, keras.models.Sequential)
        assert isinstance(self.model.layers[1], seq2seq.Seq2seq), self.model.layers

    def test_predict(self):
        assert_allclose(self.model.predict(self.expected['x']), self.expected['predict'], **TOL)

    def test_greedy_and_beam_search(self):
        check_search(self.model, self.expected['x'], self.expected)

    @attr('slow')
    def test_training_continues_from_the_saved_optimizer_state(self):
        model = load(self.name)[0]      # its own copy: this trains it
        model.train_on_batch(self.expected['x'], self.expected['y'])
        assert_allclose(model.predict(self.expected['x']),
                        self.expected['predict_after_train_step'], **TOL)


class TestSeq2seqRememberState(SavedModelTest, unittest.TestCase):
    """Seq2seq(remember_state=True), saved after a predict; its state saved
    apart by seq2seq.conversation.save_hidden_state."""

    name = 'seq2seq_remember_state'

    def test_starts_from_zeros_carries_its_state_and_loads_the_saved_state(self):
        from seq2seq.conversation import (get_hidden_state, load_hidden_state,
                                          reset_hidden_state)
        model, e = self.model, self.expected
        assert isinstance(model.layers[1], seq2seq.Seq2seq), model.layers
        # The README: the states are not in the model file; a loaded model
        # starts from zeros.
        states = get_hidden_state(model)
        assert sorted(states) == ['seq2seq'], sorted(states)
        assert all(not s.any() for cell in states['seq2seq'] for s in cell), states
        assert_allclose(model.predict(e['x1'], batch_size=2), e['predict_x1'], **TOL)
        # ... and carries it from batch to batch.
        assert_allclose(model.predict(e['x2'], batch_size=2), e['predict_x2_continued'], **TOL)
        reset_hidden_state(model)
        assert_allclose(model.predict(e['x2'], batch_size=2), e['predict_x2_from_zeros'], **TOL)
        # The state file restores the state the model had after x1.
        load_hidden_state(model, fixture_path(self.name + '.state.h5'))
        cells = get_hidden_state(model)['seq2seq']
        saved = sorted(key for key in e if key.startswith('state_after_x1_'))
        assert len(saved) == sum(len(cell) for cell in cells), (saved, cells)
        for key in saved:
            i, j = (int(part) for part in key.split('_')[-2:])
            assert_allclose(cells[i][j], e[key], **TOL)
        assert_allclose(model.predict(e['x2'], batch_size=2), e['predict_x2_continued'], **TOL)


# -- seq2seq.models -----------------------------------------------------------------------
class ModelsTest(SavedModelTest):
    """A model of seq2seq.models: a Seq2SeqModel with its additions."""

    def test_loads_a_seq2seq_model(self):
        assert isinstance(self.model, seq2seq.Seq2SeqModel), type(self.model)

    def test_predict(self):
        assert_allclose(self.model.predict(self.expected['x']), self.expected['predict'], **TOL)

    def test_greedy_and_beam_search(self):
        check_model_search(self.model, self.expected['x'], self.expected)


class TestSimpleSeq2Seq(ModelsTest, unittest.TestCase):
    """SimpleSeq2Seq(source_vocab_size=..., depth=2) on padded token ids."""

    name = 'simple_seq2seq'

    def test_context(self):
        assert_allclose(self.model.get_context(self.expected['x']), self.expected['context'],
                        **TOL)


class TestSeq2SeqPeekDepth(ModelsTest, unittest.TestCase):
    """Seq2Seq(peek=True, depth=(2, 2)) on vectors, linear readout."""

    name = 'seq2seq_peek_depth'

    def test_context(self):
        assert_allclose(self.model.get_context(self.expected['x']), self.expected['context'],
                        **TOL)


class TestSeq2SeqGRU(ModelsTest, unittest.TestCase):
    """Seq2Seq(cell='gru', teacher_force=True, readout_activation='softmax')
    on token ids, compiled with seq2seq.losses.sparse_softmax_crossentropy."""

    name = 'seq2seq_gru'

    def test_teacher_forced_output(self):
        e = self.expected
        assert_allclose(teacher_forced_output(self.model, e['x'], e['targets']),
                        e['teacher_forced_output'], **TOL)


class TestAttentionFreeRunning(ModelsTest, unittest.TestCase):
    """AttentionSeq2Seq on vectors, free running, linear readout, compiled
    with seq2seq.losses.softmax_cross_entropy."""

    name = 'attention_free_running'

    def test_attention_and_context(self):
        e = self.expected
        assert_allclose(self.model.get_attention(e['x']), e['attention'], **TOL)
        assert_allclose(self.model.get_context(e['x']), e['context'], **TOL)


class TestAttentionTeacherForced(ModelsTest, unittest.TestCase):
    """AttentionSeq2Seq(teacher_force=True, readout_activation='softmax') on
    token ids, as `seq2seq train --model attention` builds it."""

    name = 'attention_teacher_forced'

    def test_teacher_forced_output(self):
        e = self.expected
        assert_allclose(teacher_forced_output(self.model, e['x'], e['targets']),
                        e['teacher_forced_output'], **TOL)


# -- conversations -------------------------------------------------------------------------
class TestConversationWindow(SavedModelTest, unittest.TestCase):
    """conversation_model: a ConversationWindow of 2 exchanges around a
    Seq2seq layer, remembered state, batch 2."""

    name = 'conversation_window'

    def test_loads_the_window_starts_from_zeros_and_carries_its_state(self):
        from seq2seq.conversation import get_hidden_state
        model, e = self.model, self.expected
        assert isinstance(model.get_layer('window'), seq2seq.ConversationWindow)
        states = get_hidden_state(model)
        assert states and all(not s.any() for cells in states.values()
                              for cell in cells for s in cell), states
        assert_allclose(model.predict(e['x1'], batch_size=2), e['predict_x1'], **TOL)
        assert_allclose(model.predict(e['x2'], batch_size=2), e['predict_x2_continued'], **TOL)

    def test_one_exchange_model_gives_the_windows_outputs(self):
        from seq2seq.conversation import one_exchange_model
        e = self.expected
        chat = one_exchange_model(load(self.name)[0], batch_size=2)
        for x, y in [(e['x1'], e['predict_x1']), (e['x2'], e['predict_x2_continued'])]:
            for t in range(x.shape[1]):
                assert_allclose(chat.predict(x[:, t:t + 1], batch_size=2), y[:, t:t + 1],
                                **TOL)


class TestConversational2015(SavedModelTest, unittest.TestCase):
    """The 2015 Conversational layer in a Sequential with a softmax."""

    name = 'conversational_2015'

    def test_loads_the_layer(self):
        from seq2seq.conversational import Conversational
        assert isinstance(self.model.layers[1], Conversational), self.model.layers

    def test_predict(self):
        assert_allclose(self.model.predict(self.expected['x']), self.expected['predict'], **TOL)

    def test_greedy_and_beam_search(self):
        check_search(self.model, self.expected['x'], self.expected)


# -- a model directory of the command line -------------------------------------------------
class TestTranslatorModelDir(unittest.TestCase):
    """A directory `seq2seq train` wrote (config.json, the vocabularies,
    model.h5: an attention model on characters), read by Translator."""

    @classmethod
    def setUpClass(cls):
        from seq2seq.translator import Translator
        cls.directory = fixture_path('translator_model_dir')
        cls.translator = Translator(cls.directory)
        with np.load(fixture_path('translator_model_dir.npz')) as data:
            cls.expected = {key: data[key] for key in data.files}
        cls.sources = [list(source) for source in cls.expected['sources']]

    def test_greedy_translations(self):
        result = self.translator.translate(self.sources, beam_size=1)
        assert_array_equal([' '.join(hyps[0][0]) for hyps in result], self.expected['greedy'])
        assert_allclose([hyps[0][1] for hyps in result], self.expected['greedy_log_probs'],
                        **TOL)

    def test_beam_translations(self):
        n_best = self.expected['beam'].shape[1]
        result = self.translator.translate(self.sources, beam_size=int(self.expected['beam_size']),
                                           n_best=n_best)
        assert_array_equal([[' '.join(tokens) for tokens, _ in hyps] for hyps in result],
                           self.expected['beam'])
        assert_allclose([[lp for _, lp in hyps] for hyps in result],
                        self.expected['beam_log_probs'], **TOL)

    def test_encoded_sources_and_predict(self):
        x = self.translator.encode_sources(self.sources)
        assert_array_equal(x, self.expected['x'])
        assert_allclose(self.translator.model.predict(x), self.expected['predict'], **TOL)

    def test_attention(self):
        for i in self.expected['attention_sources']:
            output, read, weights = self.translator.attention(self.sources[i])
            assert_array_equal(output, self.expected['attention_%d_output' % i])
            assert_array_equal(read, self.expected['attention_%d_read' % i])
            assert_allclose(weights, self.expected['attention_%d_weights' % i], **TOL)

    @attr('slow')   # ~15 s: load_model compiles the training function to set Adam's state
    def test_model_h5_loads_with_keras_and_trains_on_from_its_optimizer_state(self):
        e = self.expected
        model = keras.models.load_model(os.path.join(self.directory, 'model.h5'))
        targets = one_hot(e['train_y'], K.int_shape(model.output)[-1])
        assert_allclose(teacher_forced_output(model, e['train_x'], targets),
                        e['teacher_forced_output'], **TOL)
        model.train_on_batch([e['train_x'], targets], e['train_y'][..., None],
                             sample_weight=e['train_weights'])
        assert_allclose(teacher_forced_output(model, e['train_x'], targets),
                        e['teacher_forced_output_after_train_step'], **TOL)
