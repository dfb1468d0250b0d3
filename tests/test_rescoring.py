"""Right-to-left models (`train --reverse-target`), teacher-forced scores
(`Translator.score`, `seq2seq score`) and n-best reranking
(seq2seq.rescoring, `predict`/`evaluate --rescore-model-dir`).

The reranking references are hand-made score tables with a known order; the
model tests compare a right-to-left model with the same model trained on
reversed targets, and the search's log-probabilities with the
teacher-forced ones.
"""
import json
import os
import shutil
import tempfile
import unittest

import numpy as np

from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_in, assert_not_in, assert_raises, assert_true
from numpy.testing import assert_allclose

from seq2seq.app.rescoring import Reranker, combined_scores, rerank

from .test_cli import TINY_MODEL, WORDS, copy_with_other_target_vocabulary, run, write

# A copy task with a twist: the target is the word, then its first letter.
PAIRS = [(w, w + w[0]) for w in WORDS]


# -- reranking a hand-made table -------------------------------------------------------
N_BEST = [[(['a'], -1.0), (['b'], -1.5), (['c'], -3.0)],
          [(['x'], -0.2), (['y'], -2.0)]]
RESCORED = [[-4.0, -1.0, -2.0],
            [-0.5, -0.1]]


def test_weight_zero_keeps_the_search_order():
    reranked = rerank(N_BEST, RESCORED, 0.0)
    assert_equal([[t for t, _ in hyps] for hyps in reranked], [[['a'], ['b'], ['c']],
                                                              [['x'], ['y']]])
    assert_allclose([score for _, score in reranked[0]], [-1.0, -1.5, -3.0])


def test_weight_one_ranks_by_the_rescorer():
    reranked = rerank(N_BEST, RESCORED, 1.0)
    assert_equal([[t for t, _ in hyps] for hyps in reranked], [[['b'], ['c'], ['a']],
                                                              [['y'], ['x']]])
    assert_allclose([score for _, score in reranked[0]], [-1.0, -2.0, -4.0])


def test_half_weight_ranks_by_the_mean_of_the_two_scores():
    # Means: a -2.5, b -1.25, c -2.5 (a tie: the search's order); x -0.35, y -1.05.
    reranked = rerank(N_BEST, RESCORED, 0.5)
    assert_equal([[t for t, _ in hyps] for hyps in reranked], [[['b'], ['a'], ['c']],
                                                              [['x'], ['y']]])
    assert_allclose([score for _, score in reranked[0]], [-1.25, -2.5, -2.5])
    assert_allclose(combined_scores([-1.0, -2.0], [-3.0, -1.0], 0.25), [-1.5, -1.75])


def test_rerank_refuses_a_bad_weight_or_misaligned_scores():
    with assert_raises(ValueError) as caught:
        rerank(N_BEST, RESCORED, 1.5)
    assert_in('weight must be in [0, 1]', str(caught.exception))
    with assert_raises(ValueError) as caught:
        rerank(N_BEST, RESCORED[:1], 0.5)
    assert_in('one list per source', str(caught.exception))
    with assert_raises(ValueError) as caught:
        rerank(N_BEST, [[-1.0, -2.0], [-1.0, -2.0]], 0.5)
    assert_in('3 hypotheses but 2', str(caught.exception))


NBEST = [[-3.0, -0.5, -1.0],
         [-9.0, -0.1]]


def test_a_third_score_from_n_best_lists():
    # 0.5 * search + 0.25 * rescore + 0.25 * n-best:
    # a -2.25, b -1.125, c -2.25 (a tie: the search's order); x -2.475, y -1.05.
    reranked = rerank(N_BEST, RESCORED, 0.25, NBEST, 0.25)
    assert_equal([[t for t, _ in hyps] for hyps in reranked], [[['b'], ['a'], ['c']],
                                                              [['y'], ['x']]])
    assert_allclose([score for _, score in reranked[0]], [-1.125, -2.25, -2.25])
    assert_allclose([score for _, score in reranked[1]], [-1.05, -2.475])
    # the n-best scores alone
    reranked = rerank(N_BEST, RESCORED, 0.0, NBEST, 1.0)
    assert_equal([t for t, _ in reranked[0]], [['b'], ['c'], ['a']])
    assert_allclose(combined_scores([-1.0], [-3.0], 0.0, [-2.0], 0.5), [-1.5])


def test_n_best_weights_are_checked():
    for weights, words in (((0.7, 0.4), 'at most 1'), ((0.0, -0.1), 'nbest_weight must be'),
                           ((0.0, 0.3), 'needs nbest_log_probs')):
        with assert_raises(ValueError) as caught:
            rerank(N_BEST, RESCORED, weights[0], None, weights[1])
        assert_in(words, str(caught.exception))
    with assert_raises(ValueError) as caught:
        rerank(N_BEST, RESCORED, 0.2, [[0.0]], 0.2)
    assert_in('nbest_log_probs must hold one list per source', str(caught.exception))


class StubSearch(object):
    """A search with fixed beams: {source: [(tokens, log-prob), ...]}."""

    def __init__(self, beams):
        self.beams = beams

    def translate(self, sources, beam_size=1, n_best=1, batch_size=64, length_penalty=0.0):
        return [self.beams[''.join(source)][:n_best] for source in sources]


def test_reranker_with_n_best_scores_and_no_rescorer():
    from seq2seq.app.nbest import NbestScores
    search = StubSearch({'ab': [(['A', 'B'], -0.5), (['A', 'P'], -1.0), (['E', 'B'], -2.0)]})
    nbest = NbestScores({('a', 'b'): {('A', 'P'): -1.0, ('E', 'B'): -4.0}}, offset=1.0)
    # 0.6 * search + 0.4 * n-best; A B is unlisted: -4 - 1 = -5.
    # A B -2.3, A P -1.0, E B -2.8
    reranked = Reranker(search, nbest=nbest, nbest_weight=0.4).translate([list('ab')],
                                                                         beam_size=3, n_best=3)
    assert_equal([t for t, _ in reranked[0]], [['A', 'P'], ['A', 'B'], ['E', 'B']])
    assert_allclose([score for _, score in reranked[0]], [-1.0, -2.3, -2.8])
    kept = Reranker(search, nbest=nbest).translate([list('ab')], beam_size=3, n_best=1)
    assert_equal(kept, [[(['A', 'B'], -0.5)]])
    for arguments, words in (({'weight': 0.3}, 'need a rescorer'),
                             ({'union': True}, 'need a rescorer'),
                             ({'nbest_weight': 0.3}, 'needs an nbest scorer')):
        with assert_raises(ValueError) as caught:
            Reranker(search, **arguments)
        assert_in(words, str(caught.exception))


# -- models ----------------------------------------------------------------------------
@attr('slow')
class TestRightToLeftModels(unittest.TestCase):
    """Three tiny attention models trained for 2 epochs with one seed: a
    left-to-right one, a right-to-left one (--reverse-target) and a
    left-to-right one trained on the reversed targets."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.tsv = write(os.path.join(cls.folder, 'pairs.tsv'),
                        ''.join('%s\t%s\n' % pair for pair in PAIRS))
        cls.reversed_tsv = write(os.path.join(cls.folder, 'reversed.tsv'),
                                 ''.join('%s\t%s\n' % (s, t[::-1]) for s, t in PAIRS))
        cls.l2r, cls.r2l, cls.on_reversed = (os.path.join(cls.folder, name)
                                             for name in ('l2r', 'r2l', 'on_reversed'))
        for model_dir, tsv, extra in ((cls.l2r, cls.tsv, []),
                                      (cls.r2l, cls.tsv, ['--reverse-target']),
                                      (cls.on_reversed, cls.reversed_tsv, [])):
            status, _, err = run('train', '--train', tsv, '--valid', tsv, '--model-dir',
                                 model_dir, '--epochs', '2', '--seed', '5', *TINY_MODEL + extra)
            assert status == 0, err
        cls.sources = [list(s) for s, _ in PAIRS[:6]]
        cls.inputs = write(os.path.join(cls.folder, 'in.txt'),
                           ''.join(s + '\n' for s, _ in PAIRS[:6]))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)

    def translator(self, *model_dirs):
        from seq2seq.app.translator import Translator
        return Translator(list(model_dirs))

    def test_a_right_to_left_model_is_a_model_of_the_reversed_targets(self):
        """--reverse-target trains exactly what training on reversed target
        lines would, and hands its outputs back in reading order."""
        from seq2seq.app.model_dir import load_model_dir
        with open(os.path.join(self.r2l, 'config.json')) as f:
            assert_true(json.load(f)['reverse_target'])
        r2l, on_reversed = load_model_dir(self.r2l)[3], load_model_dir(self.on_reversed)[3]
        for a, b in zip(r2l.get_weights(), on_reversed.get_weights()):
            assert_allclose(a, b, rtol=0, atol=0)
        decoded = self.translator(self.r2l).translate(self.sources, beam_size=3, n_best=3)
        reference = self.translator(self.on_reversed).translate(self.sources, beam_size=3,
                                                                n_best=3)
        for hyps, reference_hyps in zip(decoded, reference):
            assert_equal([tokens for tokens, _ in hyps],
                         [tokens[::-1] for tokens, _ in reference_hyps])
            assert_allclose([lp for _, lp in hyps], [lp for _, lp in reference_hyps],
                            rtol=1e-6)
        status, out, err = run('predict', '--model-dir', self.r2l, '--input', self.inputs,
                               '--beam-size', '3')
        assert_equal(status, 0, err)
        assert_equal(out.splitlines(), [''.join(hyps[0][0]) for hyps in decoded])

    def test_attention_rows_come_in_the_order_of_generation(self):
        outputs, read, weights = self.translator(self.r2l).attention(list('abcd'))
        reference = self.translator(self.on_reversed).attention(list('abcd'))
        assert_equal(outputs, reference[0])
        assert_equal(read, reference[1])
        assert_allclose(weights, reference[2], rtol=1e-6)

    def test_scores_are_the_search_log_probabilities(self):
        """Teacher forcing on the beam's own hypotheses gives back their
        log-probabilities, in either direction."""
        for model_dir in (self.l2r, self.r2l):
            translator = self.translator(model_dir)
            decoded = translator.translate(self.sources, beam_size=3, n_best=3)
            # The hypotheses that ended with EOS (a longer one is cut to the
            # model's output length, as training cuts targets).
            finished = [(source, tokens, lp) for source, hyps in zip(self.sources, decoded)
                        for tokens, lp in hyps if len(tokens) < translator.output_length]
            assert_true(len(finished) >= len(self.sources), decoded)
            assert_allclose(translator.score([s for s, _, _ in finished],
                                             [t for _, t, _ in finished]),
                            [lp for _, _, lp in finished], rtol=1e-4, atol=1e-4)
        r2l, on_reversed = self.translator(self.r2l), self.translator(self.on_reversed)
        targets = [list(t) for _, t in PAIRS[:6]]
        assert_allclose(r2l.score(self.sources, targets),
                        on_reversed.score(self.sources, [t[::-1] for t in targets]), rtol=1e-6)
        with assert_raises(ValueError):
            r2l.score(self.sources, targets[:2])

    def test_scores_of_cut_batches_are_those_of_the_padded_arrays(self):
        """score sorts the pairs by length and cuts each batch to its
        longest source and target: the same numbers as the whole padded
        arrays in the given order."""
        from seq2seq.training.data import one_hot
        translator = self.translator(self.l2r)
        sources = [list(s) for s, _ in PAIRS] + [list('ab'), list('abcd')]
        targets = [list(t) for _, t in PAIRS] + [list('abcda'), list('a')]
        x, y = translator.encode_sources(sources), translator.encode_targets(targets)
        forced = translator._forced_function(translator.model, [translator.model.output])
        probs = forced([x, one_hot(y, len(translator.target_vocab)), 1])[0]
        picked = np.log(np.take_along_axis(probs, y[..., None], axis=-1)[..., 0])
        counted = np.cumsum(y == 1, axis=1) - (y == 1) == 0      # up to EOS (id 1)
        expected = np.where(counted, picked, 0.0).sum(axis=1)
        for batch_size in (1, 3, 64):
            assert_allclose(translator.score(sources, targets, batch_size=batch_size), expected,
                            rtol=1e-5, atol=1e-5)

    def test_score_command_writes_one_log_probability_per_pair(self):
        status, out, err = run('score', '--model-dir', self.l2r, '--input', self.tsv)
        assert_equal(status, 0, err)
        expected = self.translator(self.l2r).score([list(s) for s, _ in PAIRS],
                                                   [list(t) for _, t in PAIRS])
        assert_allclose([float(line) for line in out.splitlines()], expected, atol=1e-4)
        status, out, err = run('score', '--model-dir', self.l2r, self.r2l, '--input', self.tsv)
        assert_equal(status, 2)
        assert_in('reverse_target is False in one and True in the other', err)

    def test_reranker_combines_the_two_scores(self):
        search, rescorer = self.translator(self.l2r), self.translator(self.r2l)
        beam = search.translate(self.sources, beam_size=4, n_best=4)
        kept = Reranker(search, rescorer, weight=0.0).translate(self.sources, beam_size=4,
                                                               n_best=4)
        assert_equal([[t for t, _ in hyps] for hyps in kept], [[t for t, _ in hyps]
                                                               for hyps in beam])
        reranked = Reranker(search, rescorer, weight=0.7).translate(self.sources, beam_size=4,
                                                                   n_best=2)
        for source, hyps, beam_hyps in zip(self.sources, reranked, beam):
            search_scores = dict((tuple(t), lp) for t, lp in beam_hyps)
            rescored = rescorer.score([source] * len(beam_hyps), [t for t, _ in beam_hyps])
            expected = sorted(0.3 * lp + 0.7 * r for (_, lp), r in zip(beam_hyps, rescored))
            assert_equal(len(hyps), 2)
            assert_allclose([score for _, score in hyps], expected[::-1][:2], rtol=1e-5)
            for tokens, _ in hyps:
                assert_in(tuple(tokens), search_scores)
        with assert_raises(ValueError):
            Reranker(search, rescorer).translate(self.sources, beam_size=1)

    def test_union_ranks_the_hypotheses_of_both_beams(self):
        search, rescorer = self.translator(self.l2r), self.translator(self.r2l)
        ours = search.translate(self.sources, beam_size=3, n_best=3)
        theirs = rescorer.translate(self.sources, beam_size=3, n_best=3)
        reranked = Reranker(search, rescorer, weight=0.6, union=True).translate(
            self.sources, beam_size=3, n_best=6)
        for source, hyps, our_hyps, their_hyps in zip(self.sources, reranked, ours, theirs):
            distinct = set(tuple(t) for t, _ in our_hyps) | set(tuple(t) for t, _ in their_hyps)
            assert_equal(set(tuple(t) for t, _ in hyps), distinct)
            targets = [t for t, _ in hyps]
            # Every candidate is scored by both: the score of its own search,
            # or teacher forcing (the same numbers for a finished hypothesis).
            expected = (0.4 * search.score([source] * len(targets), targets)
                        + 0.6 * rescorer.score([source] * len(targets), targets))
            finished = [len(t) < search.output_length for t in targets]
            assert_allclose(np.array([score for _, score in hyps])[finished],
                            expected[finished], rtol=1e-4, atol=1e-4)
            scores = [score for _, score in hyps]
            assert_equal(scores, sorted(scores, reverse=True))

    def test_predict_and_evaluate_rerank_with_rescore_model_dir(self):
        common = ['--model-dir', self.l2r, '--rescore-model-dir', self.r2l,
                  '--rescore-weight', '0.7', '--beam-size', '4']
        status, out, err = run('predict', '--input', self.inputs, '--n-best', '2', *common)
        assert_equal(status, 0, err)
        search, rescorer = self.translator(self.l2r), self.translator(self.r2l)
        expected = Reranker(search, rescorer, 0.7).translate(self.sources, beam_size=4,
                                                            n_best=2)
        assert_equal(out, ''.join('%s\t%.4f\n' % (''.join(tokens), score)
                                  for hyps in expected for tokens, score in hyps))
        status, out, err = run('evaluate', '--test', self.tsv, '--metric', 'wer', *common)
        assert_equal(status, 0, err)
        assert_in('rescored by %s with weight 0.7' % self.r2l, out.splitlines()[0])
        status, out, err = run('predict', '--input', self.inputs, '--n-best', '2',
                               '--rescore-union', *common)
        assert_equal(status, 0, err)
        expected = Reranker(search, rescorer, 0.7, union=True).translate(
            self.sources, beam_size=4, n_best=2)
        assert_equal(out, ''.join('%s\t%.4f\n' % (''.join(tokens), score)
                                  for hyps in expected for tokens, score in hyps))

    def write_nbest(self, favourite):
        """An n-best file that gives each source's `favourite`-th beam
        hypothesis (of 3) the best score, and lists one other."""
        translator = self.translator(self.l2r)
        beams = translator.translate(self.sources, beam_size=3, n_best=3)
        lines, chosen = [], []
        for source, hyps in zip(self.sources, beams):
            pick = hyps[min(favourite, len(hyps) - 1)][0]
            chosen.append(pick)
            lines.append('%s\t0.5\t%s\n' % (''.join(source), translator.detokenize_target(pick)))
            lines.append('%s\t9.0\t%sx\n' % (''.join(source),
                                              translator.detokenize_target(hyps[0][0])))
        return write(os.path.join(self.folder, 'favourite%d.nbest' % favourite),
                     ''.join(lines)), chosen

    def test_predict_and_evaluate_rerank_with_n_best_lists(self):
        path, chosen = self.write_nbest(2)
        common = ['--model-dir', self.l2r, '--beam-size', '3', '--rescore-nbest', path]
        status, out, err = run('predict', '--input', self.inputs, '--rescore-nbest-weight',
                               '0.9', *common)
        assert_equal(status, 0, err)
        assert_equal(out, ''.join(''.join(tokens) + '\n' for tokens in chosen))
        status, out, err = run('predict', '--input', self.inputs, '--rescore-nbest-weight',
                               '0', *common)
        assert_equal(status, 0, err)
        plain = run('predict', '--input', self.inputs, '--model-dir', self.l2r,
                    '--beam-size', '3')[1]
        assert_equal(out, plain)
        status, out, err = run('evaluate', '--test', self.tsv, '--metric', 'wer',
                               '--rescore-model-dir', self.r2l, '--rescore-weight', '0.3',
                               '--rescore-nbest-weight', '0.5', *common)
        assert_equal(status, 0, err)
        assert_in('rescored by %s with weight 0.3, n-best scores of %s with weight 0.5'
                  % (self.r2l, path), out.splitlines()[0])

    def test_n_best_usage_and_file_errors(self):
        path, _ = self.write_nbest(1)
        status, _, err = run('predict', '--model-dir', self.l2r, '--rescore-nbest', path,
                             '--input', self.inputs)
        assert_equal(status, 2)
        assert_in('--rescore-nbest reranks the beam\'s hypotheses: it needs --beam-size > 1',
                  err)
        status, _, err = run('evaluate', '--model-dir', self.l2r, '--test', self.tsv,
                             '--beam-size', '2', '--rescore-model-dir', self.r2l,
                             '--rescore-weight', '0.6', '--rescore-nbest', path,
                             '--rescore-nbest-weight', '0.5')
        assert_equal(status, 2)
        assert_in('--rescore-weight + --rescore-nbest-weight must be at most 1', err)
        bad = write(os.path.join(self.folder, 'bad.nbest'), 'ab\t1.0\tA B\nab\tA B\n')
        for command, where in (('predict', ['--input', self.inputs]),
                               ('evaluate', ['--test', self.tsv])):
            status, _, err = run(command, '--model-dir', self.l2r, '--beam-size', '2',
                                 '--rescore-nbest', bad, *where)
            assert_equal(status, 2)
            assert_in('%s, line 2: expected source<TAB>cost<TAB>target' % bad, err)
            assert_not_in('Traceback', err)

    def test_rescoring_usage_errors(self):
        status, _, err = run('predict', '--model-dir', self.l2r, '--rescore-model-dir',
                             self.r2l, '--input', self.inputs)
        assert_equal(status, 2)
        assert_in('--beam-size > 1', err)
        status, _, err = run('predict', '--model-dir', self.l2r, '--rescore-union',
                             '--beam-size', '2', '--input', self.inputs)
        assert_equal(status, 2)
        assert_in('--rescore-union needs --rescore-model-dir', err)
        status, _, err = run('evaluate', '--model-dir', self.l2r, '--test', self.tsv,
                             '--rescore-model-dir', self.r2l, '--rescore-weight', '1.5')
        assert_equal(status, 2)
        assert_in('--rescore-weight', err)
        other = copy_with_other_target_vocabulary(self.r2l,
                                                  os.path.join(self.folder, 'other_vocabulary'))
        status, _, err = run('evaluate', '--model-dir', self.l2r, '--test', self.tsv,
                             '--beam-size', '2', '--rescore-model-dir', other)
        assert_equal(status, 2)
        assert_in('%s and %s cannot rescore together: their target vocabularies differ'
                  % (self.l2r, other), err)
        assert_not_in('Traceback', err)


def test_old_model_directories_generate_left_to_right():
    from seq2seq.app.model_dir import read_config, write_config
    from seq2seq.training.vocab import Vocabulary
    folder = tempfile.mkdtemp()
    try:
        vocab = Vocabulary.build([['a', 'b']])
        write_config(folder, {'model': 'attention'}, vocab, vocab)
        with open(os.path.join(folder, 'config.json')) as f:
            assert_not_in('reverse_target', json.load(f))
        assert_equal(read_config(folder)[0]['reverse_target'], False)
    finally:
        shutil.rmtree(folder)

