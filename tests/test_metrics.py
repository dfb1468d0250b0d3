"""seq2seq.metrics on hand-made cases, several references per source included."""
import math

import numpy as np
from nose.tools import assert_almost_equal, assert_equal, assert_raises

from seq2seq.training import metrics


def test_edit_distance_counts_token_operations():
    assert_equal(metrics.edit_distance('kitten', 'sitting'), 3)
    assert_equal(metrics.edit_distance(['HH', 'AH', 'L', 'OW'], ['HH', 'EH', 'L', 'OW']), 1)
    assert_equal(metrics.edit_distance([], ['A', 'B']), 2)


def test_wer_counts_a_word_right_when_it_matches_any_reference():
    hypotheses = [['T', 'AH', 'M', 'EY', 'T', 'OW'], ['K', 'AE', 'T'], ['D', 'AO', 'G']]
    references = [[['T', 'AH', 'M', 'EY', 'T', 'OW'], ['T', 'AH', 'M', 'AA', 'T', 'OW']],
                  [['K', 'AE', 'T']],
                  [['D', 'AA', 'G']]]
    assert_almost_equal(metrics.word_error_rate(hypotheses, references), 1 / 3.)
    assert_almost_equal(metrics.exact_match(hypotheses, references), 2 / 3.)
    # Matching the second reference counts too.
    assert_equal(metrics.word_error_rate([['T', 'AH', 'M', 'AA', 'T', 'OW']], [references[0]]),
                 0.0)


def test_per_uses_the_closest_reference_and_its_length():
    # 'either': IY DH ER / AY DH ER; the hypothesis is 1 edit from the second.
    hypotheses = [['AY', 'DH', 'AH'], ['K', 'AE', 'T', 'S']]
    references = [[['IY', 'DH', 'ER'], ['AY', 'DH', 'ER']], [['K', 'AE', 'T']]]
    # (1 + 1) errors over (3 + 3) reference tokens.
    assert_almost_equal(metrics.token_error_rate(hypotheses, references), 2 / 6.)
    distance, reference = metrics.closest_reference(['AY', 'DH', 'AH'], references[0])
    assert_equal((distance, reference), (1, ['AY', 'DH', 'ER']))


def test_a_single_reference_may_be_given_without_the_list():
    assert_almost_equal(metrics.token_error_rate([['A', 'B']], [['A', 'C']]), 0.5)
    assert_almost_equal(metrics.word_error_rate([['A', 'B']], [['A', 'B']]), 0.0)


def test_corpus_bleu_matches_sacrebleu_and_takes_several_references():
    import sacrebleu
    hypotheses = [['the', 'cat', 'sat', 'on', 'the', 'mat'], ['a', 'dog', 'ran', 'in', 'the',
                                                                'park', 'today']]
    references = [[['the', 'cat', 'sat', 'on', 'a', 'mat']],
                  [['a', 'dog', 'ran', 'in', 'the', 'park', 'today'], ['one', 'dog', 'ran']]]
    expected = sacrebleu.corpus_bleu(
        ['the cat sat on the mat', 'a dog ran in the park today'],
        [['the cat sat on a mat', 'a dog ran in the park today'],
         ['the cat sat on a mat', 'one dog ran']]).score
    assert_almost_equal(metrics.corpus_bleu(hypotheses, references), expected)
    perfect = metrics.corpus_bleu([references[1][0]], [references[1]])
    assert_almost_equal(perfect, 100.0, places=4)


def test_perplexity_is_exp_of_the_mean_negative_log_probability():
    log_probs = np.log([[0.5, 0.25, np.nan], [0.125, np.nan, np.nan]])
    expected = math.exp(-(math.log(0.5) + math.log(0.25) + math.log(0.125)) / 3)
    assert_almost_equal(metrics.perplexity(log_probs), expected)
    assert_almost_equal(metrics.perplexity([0.0, 0.0]), 1.0)


def test_bad_arguments_name_the_problem():
    assert_raises(ValueError, metrics.word_error_rate, [['A']], [])
    assert_raises(ValueError, metrics.token_error_rate, [], [])
    assert_raises(ValueError, metrics.perplexity, [np.nan])


def test_token_accuracy_skips_padding():
    predicted = np.array([[3, 4, 1, 0], [3, 5, 1, 0]])
    target = np.array([[3, 4, 1, 0], [3, 4, 1, 0]])
    assert_almost_equal(metrics.token_accuracy(predicted, target, pad_id=0), 5 / 6.)
