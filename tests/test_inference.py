"""Step-by-step decoding of real models (seq2seq.inference).

The reference is the model itself: with feedback='readout' every decoder
feeds back its own output, as `predict` does, so greedy search must choose
the argmax of `predict` at every step and its summed log-probabilities must
be the log of `predict`'s chosen probabilities. That holds for every decoder
layer of the package and whatever sits around it (Embedding with a padding
mask, a nested model, a softmax after the decoder).
"""
import time
import unittest

import numpy as np
from keras import backend as K
from keras.layers import Activation, Dense, Embedding, Input, TimeDistributed
from keras.models import Model, Sequential
from numpy.testing import assert_allclose, assert_array_equal

from seq2seq import LSTMDecoder, LSTMDecoder2, Seq2seq
from seq2seq.search import model_search as inference
from seq2seq.models import AttentionSeq2Seq, Seq2Seq, SimpleSeq2Seq

VOCAB = 6
LENGTH = 5


def padded_tokens(n, length, vocab, seed):
    """Token ids in [1, vocab), each row right-padded with zeros to `length`
    (lengths 1 .. length, so some rows are padded and some are not)."""
    rng = np.random.RandomState(seed)
    x = rng.randint(1, vocab, size=(n, length)).astype('int32')
    for row, used in enumerate(rng.randint(1, length + 1, size=n)):
        x[row, used:] = 0
    return x


def assert_greedy_is_predict(model, x, **kwargs):
    """greedy_decode(feedback='readout') == argmax of predict, step by step."""
    probabilities = model.predict(x)                          # (n, steps, vocab)
    tokens, lengths, log_probs = inference.greedy_decode(model, x, feedback='readout', **kwargs)
    assert_array_equal(tokens, probabilities.argmax(axis=-1))
    assert_array_equal(lengths, [probabilities.shape[1]] * len(probabilities))
    chosen = np.log(probabilities.max(axis=-1)).sum(axis=1)
    assert_allclose(log_probs, chosen, rtol=1e-4, atol=1e-4)


class TestEveryDecoderLayer(unittest.TestCase):
    def test_sequential_2015_shape_embedding_seq2seq_softmax(self):
        # The 2015 README's model: Embedding + Seq2seq + Activation('softmax').
        model = Sequential([Embedding(VOCAB, 4, input_length=LENGTH),
                            Seq2seq(input_length=LENGTH, input_dim=4, hidden_dim=5,
                                    output_dim=VOCAB, output_length=4, depth=(1, 2)),
                            Activation('softmax')])
        x = padded_tokens(7, LENGTH, VOCAB, seed=1)
        assert_greedy_is_predict(model, x, batch_size=3)

    def test_padded_sources_behind_embedding_mask_zero(self):
        # The padding mask reaches the encoder in decoding as in predict:
        # a padded source decodes as its unpadded self.
        model = Sequential([Embedding(VOCAB, 4, input_length=LENGTH, mask_zero=True),
                            Seq2seq(input_length=LENGTH, input_dim=4, hidden_dim=5,
                                    output_dim=VOCAB, output_length=4),
                            Activation('softmax')])
        x = padded_tokens(8, LENGTH, VOCAB, seed=2)
        assert_greedy_is_predict(model, x)
        short = np.zeros_like(x[:1])
        short[0, :2] = [3, 4]
        unmasked = Sequential([Embedding(VOCAB, 4, input_length=LENGTH),
                               model.layers[1], model.layers[2]])
        self.assertFalse(np.allclose(inference.greedy_decode(unmasked, short)[2],
                                     inference.greedy_decode(model, short)[2]),
                         'the test sources must be ones where the mask matters')

    def test_nested_attention_model_behind_masked_embedding(self):
        tokens = Input(shape=(LENGTH,), dtype='int32')
        embedded = Embedding(VOCAB, 4, mask_zero=True)(tokens)
        inner = AttentionSeq2Seq(output_dim=5, output_length=4, hidden_dim=6,
                                 input_shape=(LENGTH, 4))
        probabilities = TimeDistributed(Dense(VOCAB, activation='softmax'))(inner(embedded))
        model = Model(tokens, probabilities)
        x = padded_tokens(9, LENGTH, VOCAB, seed=3)
        assert_greedy_is_predict(model, x)
        # Two sources per call: the search sorts the sources by length, and
        # each batch's attention skips the steps padded in both of its sources.
        assert_greedy_is_predict(model, x, batch_size=2)
        stepper = inference.get_stepper(model)
        order = np.argsort(-(x != 0).sum(axis=1), kind='stable')
        stepper.initial_states([x[order[-2:]]])
        memory = stepper._constants[stepper.constant_names.index('memory')]
        self.assertLess(memory.get_value().shape[1], LENGTH)

    def test_lstm_decoder_models(self):
        for layer_class in (LSTMDecoder, LSTMDecoder2):
            vector = Input(shape=(VOCAB,))
            h, c = Input(shape=(4,)), Input(shape=(4,))
            decoded = layer_class(VOCAB, 4, output_length=3)([vector, h, c])
            model = Model([vector, h, c], Activation('softmax')(decoded))
            rng = np.random.RandomState(4)
            x = [rng.randn(5, n).astype(K.floatx()) for n in (VOCAB, 4, 4)]
            assert_greedy_is_predict(model, x)

    def test_seq2seq_model_stack_and_peek(self):
        model = Seq2Seq(output_dim=VOCAB, output_length=3, hidden_dim=4, input_shape=(LENGTH, 3),
                        depth=2, peek=True, readout_activation='softmax')
        x = np.random.RandomState(5).randn(5, LENGTH, 3).astype(K.floatx())
        assert_greedy_is_predict(model, x)
        # The same through the model's method and with a beam of one.
        self.assertTrue(np.array_equal(model.greedy_decode(x, feedback='readout')[0],
                                       model.predict(x).argmax(-1)))
        beams = model.beam_decode(x, beam_size=1, feedback='readout')
        assert_array_equal([h[0].tokens for h in beams], model.predict(x).argmax(-1))


class TestModelsWithoutAFeedbackDecoder(unittest.TestCase):
    def test_simple_seq2seq_searches_its_output_steps(self):
        # Its steps do not read the chosen token: the search reads the
        # log-softmax of predict's outputs, step by step.
        model = SimpleSeq2Seq(output_dim=VOCAB, output_length=3, hidden_dim=4,
                              input_shape=(LENGTH, 3))
        x = np.random.RandomState(11).randn(5, LENGTH, 3).astype(K.floatx())
        outputs = model.predict(x)
        log_softmax = outputs - np.log(np.exp(outputs).sum(axis=-1, keepdims=True))
        tokens, lengths, log_probs = inference.greedy_decode(model, x)
        assert_array_equal(tokens, outputs.argmax(axis=-1))
        assert_allclose(log_probs, log_softmax.max(axis=-1).sum(axis=1), rtol=1e-4, atol=1e-4)
        best = inference.beam_decode(model, x, beam_size=3, n_best=3)
        assert_array_equal([h[0].tokens for h in best], tokens)
        second = np.sort(log_softmax, axis=-1)[:, :, -2]
        for element, hypotheses in enumerate(best):
            # The runner-up changes the one step where that costs least.
            cost = (log_softmax[element].max(axis=-1) - second[element]).min()
            assert_allclose(hypotheses[1].log_prob, log_probs[element] - cost,
                            rtol=1e-4, atol=1e-4)
        with self.assertRaises(ValueError) as context:
            inference.greedy_decode(model, x, max_length=4)
        self.assertIn('max_length', str(context.exception))
        with self.assertRaises(ValueError) as context:
            inference.greedy_decode(model, x, feedback='token')
        self.assertIn('feedback', str(context.exception))


class TestBeamsShareTheirSourceMemory(unittest.TestCase):
    def test_grouped_attention_step_equals_the_per_row_step(self):
        # The attention memory is read once per source for its k hypotheses;
        # with EOS some sources keep fewer live hypotheses than others, so the
        # rows are laid out with filler slots. The per-row step is the reference.
        model = AttentionSeq2Seq(output_dim=4, output_length=5, hidden_dim=6,
                                 input_shape=(LENGTH, 3), teacher_force=True,
                                 readout_activation='softmax')
        x = np.random.RandomState(10).randn(7, LENGTH, 3).astype(K.floatx())
        # (get_stepper gives this model the fused step, tests/test_fused_decode.py)
        grouped = inference.DecoderStepper(model)
        self.assertTrue(grouped.grouped)
        per_row = inference.DecoderStepper(model, group_rows=False)
        self.assertFalse(per_row.grouped)
        layouts = []

        class RecordedGrid(inference._Grid):
            def __init__(self, row_sources):
                super(RecordedGrid, self).__init__(row_sources)
                layouts.append(self)

        self.addCleanup(setattr, inference, '_Grid', inference._Grid)
        inference._Grid = RecordedGrid
        for beam_size, eos_id in [(3, 1), (4, 2), (2, None)]:
            results = []
            for stepper in (grouped, per_row):
                results.append(inference.beam_search(
                    stepper.step_fn, stepper.initial_states([x]), beam_size, 5,
                    eos_id=eos_id, n_best=beam_size))
            for mine, reference in zip(*results):
                self.assertEqual([list(h.tokens) for h in mine],
                                 [list(h.tokens) for h in reference])
                assert_allclose([h.log_prob for h in mine], [h.log_prob for h in reference],
                                rtol=1e-5, atol=1e-5)
        self.assertTrue(any(not grid.identity for grid in layouts),
                        'no step had sources with fewer live hypotheses than others')

    def test_grid_layout(self):
        rows = np.array([2, 0, 2, 2, 5])
        grid = inference._Grid(rows)
        self.assertEqual(grid.k, 3)
        assert_array_equal(grid.sources, [0, 2, 5])
        values = np.arange(5) * 10
        laid_out = grid.scatter(values)
        self.assertEqual(laid_out.shape, (9,))
        assert_array_equal(laid_out, [10, 0, 0, 0, 20, 30, 40, 0, 0])
        assert_array_equal(grid.gather(laid_out), values)
        full = inference._Grid(np.array([0, 0, 1, 1]))
        self.assertTrue(full.identity)


class TestPaddingCutBeforeEncoding(unittest.TestCase):
    """A batch's sources are encoded up to the longest one's last step,
    not the model's input length, where that gives the same results."""

    @staticmethod
    def encoded_lengths(stepper):
        """Record the source lengths `stepper`'s start function is given."""
        lengths, start = [], stepper._start

        def recording_start(*arguments):
            lengths.append(arguments[0].shape[1])
            return start(*arguments)
        stepper._start = recording_start
        return lengths

    def assert_cut_changes_nothing(self, model, x, long_length):
        stepper = inference.get_stepper(model)
        self.assertTrue(stepper.cut_padding)
        lengths = self.encoded_lengths(stepper)
        cut_greedy = inference.greedy_decode(model, x, batch_size=3)
        # Longest first: 3 sources per batch, the first batch the longest.
        self.assertEqual(lengths[0], long_length)
        self.assertLess(max(lengths[1:]), long_length)
        cut_beam = inference.beam_decode(model, x, beam_size=3, n_best=2, batch_size=3)
        stepper.cut_padding = False
        full_greedy = inference.greedy_decode(model, x, batch_size=3)
        full_beam = inference.beam_decode(model, x, beam_size=3, n_best=2, batch_size=3)
        self.assertEqual(lengths[-1], x.shape[1])
        assert_array_equal(cut_greedy[0], full_greedy[0])
        assert_allclose(cut_greedy[2], full_greedy[2], rtol=1e-5, atol=1e-5)
        for cut, full in zip(cut_beam, full_beam):
            self.assertEqual([list(h.tokens) for h in cut], [list(h.tokens) for h in full])
            assert_allclose([h.log_prob for h in cut], [h.log_prob for h in full],
                            rtol=1e-5, atol=1e-5)

    @staticmethod
    def short_sources(n, seed):
        """Sources of up to 4 ids in 9 steps; one of 6 ids."""
        x = np.zeros((n, 9), dtype='int32')
        x[:, :4] = padded_tokens(n, 4, VOCAB, seed)
        x[0, :6] = [1, 2, 3, 4, 5, 1]
        return x

    def test_the_command_lines_attention_model(self):
        # Bidirectional encoders of two layers, dropout, the summary's Dense:
        # the fused search step's start.
        from seq2seq.app.model_dir import build_model
        config = dict(model='attention', cell='lstm', hidden_dim=6, embedding_dim=4,
                      depth=[2, 1], dropout=0.2, input_length=9, output_length=5)
        model = build_model(config, VOCAB, VOCAB)
        self.assertIsInstance(inference.get_stepper(model), inference.FusedAttentionStepper)
        self.assert_cut_changes_nothing(model, self.short_sources(10, seed=12), 6)

    def test_sequential_seq2seq_behind_embedding_mask_zero(self):
        model = Sequential([Embedding(VOCAB, 4, input_length=9, mask_zero=True),
                            Seq2seq(input_length=9, input_dim=4, hidden_dim=5,
                                    output_dim=VOCAB, output_length=4, depth=2),
                            Activation('softmax')])
        x = self.short_sources(8, seed=13)
        self.assert_cut_changes_nothing(model, x, 6)
        assert_greedy_is_predict(model, x)

    def test_models_that_read_their_padding_are_encoded_whole(self):
        # Without a padding mask the zeros are inputs; a layer outside the
        # known per-step and masked recurrent ones may mix the steps.
        from keras.layers import Conv1D, Lambda
        unmasked = Sequential([Embedding(VOCAB, 4, input_length=9),
                               Seq2seq(input_length=9, input_dim=4, hidden_dim=5,
                                       output_dim=VOCAB, output_length=4)])
        tokens = Input(shape=(9,), dtype='int32')
        embedded = Embedding(VOCAB, 4, mask_zero=True)(tokens)
        shifted = Lambda(lambda t: t[:, ::-1], mask=lambda t, mask: mask[:, ::-1])(embedded)
        reversed_model = Model(tokens, Seq2seq(input_length=9, input_dim=4, hidden_dim=5,
                                               output_dim=VOCAB, output_length=4)(shifted))
        convolved = Sequential([Embedding(VOCAB, 4, input_length=9),
                                Conv1D(4, 3, padding='same'),
                                Seq2seq(input_length=9, input_dim=4, hidden_dim=5,
                                        output_dim=VOCAB, output_length=4)])
        floats = Seq2Seq(output_dim=VOCAB, output_length=3, hidden_dim=4, input_shape=(9, 3))
        x = self.short_sources(4, seed=14)
        for model in (unmasked, reversed_model, convolved, floats):
            stepper = inference.get_stepper(model)
            self.assertFalse(stepper.cut_padding, model.layers)
            lengths = self.encoded_lengths(stepper)
            inputs = x if model is not floats else np.eye(3, dtype=K.floatx())[x % 3] * (x > 0)[..., None]
            inference.greedy_decode(model, inputs)
            self.assertEqual(set(lengths), {9})

    def test_cut_trailing_padding(self):
        ids = np.array([[1, 2, 0, 0, 0], [3, 0, 0, 0, 0]])
        vectors = np.zeros((2, 4, 3))
        vectors[1, 2, 0] = 0.5
        cut = inference.cut_trailing_padding([ids, vectors, np.array([1, 2])])
        assert_array_equal(cut[0], ids[:, :2])
        assert_array_equal(cut[1], vectors[:, :3])
        assert_array_equal(cut[2], [1, 2])
        # All padding: one step stays.
        self.assertEqual(inference.cut_trailing_padding([np.zeros((2, 5))])[0].shape, (2, 1))


class TestCompiledOnce(unittest.TestCase):
    def test_steppers_are_kept_on_the_model_and_rebuilt_when_it_changes(self):
        model = Sequential([Seq2seq(input_length=3, input_dim=2, hidden_dim=3,
                                    output_dim=VOCAB, output_length=2)])
        x = np.random.RandomState(6).randn(4, 3, 2).astype(K.floatx())
        inference.greedy_decode(model, x)
        stepper = inference.get_stepper(model)
        start = time.time()
        inference.beam_decode(model, x, beam_size=2)
        self.assertIs(inference.get_stepper(model), stepper)
        self.assertIs(inference.get_stepper(model, 'readout'), stepper)
        self.assertLess(time.time() - start, 5.0)
        model.add(Activation('softmax'))
        rebuilt = inference.get_stepper(model)
        self.assertIsNot(rebuilt, stepper)
        self.assertEqual(len(rebuilt.head), 1)
        inference.clear_cache(model)
        self.assertIsNot(inference.get_stepper(model), rebuilt)

    def test_new_weights_need_no_recompile(self):
        model = Sequential([Seq2seq(input_length=3, input_dim=2, hidden_dim=3,
                                    output_dim=VOCAB, output_length=2), Activation('softmax')])
        x = np.random.RandomState(7).randn(4, 3, 2).astype(K.floatx())
        inference.greedy_decode(model, x)
        stepper = inference.get_stepper(model)
        model.set_weights([w * 3 for w in model.get_weights()])
        assert_greedy_is_predict(model, x)
        self.assertIs(inference.get_stepper(model), stepper)


class TestArgumentChecks(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.model = Sequential([Embedding(VOCAB, 3, input_length=LENGTH),
                                Seq2seq(input_length=LENGTH, input_dim=3, hidden_dim=3,
                                        output_dim=4, output_length=2),
                                TimeDistributed(Dense(VOCAB, activation='softmax'))])

    def assert_raises_naming(self, error, name, *args, **kwargs):
        function = kwargs.pop('function', inference.greedy_decode)
        with self.assertRaises(error) as context:
            function(self.model, *args, **kwargs)
        self.assertIn(name, str(context.exception))

    def test_bad_sources_and_arguments_fail_before_compiling(self):
        good = padded_tokens(2, LENGTH, VOCAB, seed=8)
        self.assert_raises_naming(ValueError, 'x', padded_tokens(2, LENGTH + 1, VOCAB, 0))
        self.assert_raises_naming(ValueError, 'x', good[:, :, None])
        self.assert_raises_naming(ValueError, 'x', good[:0])
        self.assert_raises_naming(ValueError, 'x', [good, good, good])
        self.assert_raises_naming(TypeError, 'x', None)
        self.assert_raises_naming(ValueError, 'batch_size', good, batch_size=0)
        self.assert_raises_naming(TypeError, 'batch_size', good, batch_size=2.5)
        self.assert_raises_naming(ValueError, 'max_length', good, max_length=0)
        self.assert_raises_naming(ValueError, 'eos_id', good, eos_id=-1)
        self.assert_raises_naming(ValueError, 'feedback', good, feedback='tokens')
        self.assert_raises_naming(ValueError, 'beam_size', good, beam_size=0,
                                  function=inference.beam_decode)
        self.assert_raises_naming(ValueError, 'n_best', good, beam_size=2, n_best=3,
                                  function=inference.beam_decode)
        self.assertIsNone(self.model.__dict__.get(inference._CACHE_ATTRIBUTE),
                          'a bad argument compiled the step functions')

    def test_feature_size_of_float_sources(self):
        model = Seq2Seq(output_dim=3, output_length=2, hidden_dim=3, input_shape=(4, 2))
        with self.assertRaises(ValueError) as context:
            inference.greedy_decode(model, np.zeros((2, 4, 3), dtype='float32'))
        self.assertIn('x must have shape', str(context.exception))

    def test_token_feedback_needs_a_vocabulary_sized_decoder(self):
        # The decoder outputs 4 values, the model 6 log-probabilities.
        self.assert_raises_naming(ValueError, 'feedback', padded_tokens(2, LENGTH, VOCAB, 9),
                                  feedback='token')

    def test_a_model_without_a_decoder(self):
        plain = Sequential([Dense(3, input_shape=(2,))])
        with self.assertRaises(ValueError) as context:
            inference.greedy_decode(plain, np.zeros((1, 2)))
        self.assertIn('decoder', str(context.exception))
        with self.assertRaises(TypeError):
            inference.greedy_decode('model', np.zeros((1, 2)))
