"""Another system's n-best lists as scores (seq2seq.nbest): a hand-made file
with known costs, the scores of listed and unlisted hypotheses, and every
bad-line case naming the file and the line."""
import os
import shutil
import tempfile
import unittest

from nose.tools import assert_equal, assert_in, assert_raises
from numpy.testing import assert_allclose

from seq2seq.training.data import DataFileError
from seq2seq.app.nbest import NbestScores, read_scored_nbest

# What `phonetisaurus-g2pfst --nbest=3` prints: source, cost (-log p), target.
NBEST = ("abba\t14.0106\tAE B AH\n"
         "abba\t14.9731\tAH B AH\n"
         "abba\t16.5\tAE B AA\n"
         "\n"
         "'bout\t22.2275\tB AW T\n"
         "'bout\t24.1294\tB UW T\n"
         "'bout\t23.0\tB AW T\n")


class NbestFiles(unittest.TestCase):
    def setUp(self):
        self.folder = tempfile.mkdtemp()

    def tearDown(self):
        shutil.rmtree(self.folder)

    def write(self, text, name='n.nbest'):
        path = os.path.join(self.folder, name)
        with open(path, 'wb') as stream:
            stream.write(text if isinstance(text, bytes) else text.encode('utf-8'))
        return path


class TestReadScoredNbest(NbestFiles):
    def test_costs_become_log_probabilities_per_source(self):
        table = read_scored_nbest(self.write(NBEST), 'chars', 'words')
        assert_equal(sorted(table), [tuple("'bout"), tuple('abba')])
        assert_allclose(table[tuple('abba')][('AE', 'B', 'AH')], -14.0106)
        assert_allclose(table[tuple('abba')][('AE', 'B', 'AA')], -16.5)
        # listed twice (two alignments): the lower cost wins
        assert_allclose(table[tuple("'bout")][('B', 'AW', 'T')], -22.2275)
        assert_equal(len(table[tuple("'bout")]), 2)

    def test_an_empty_target_is_a_hypothesis(self):
        table = read_scored_nbest(self.write('abba\t3.0\t\nabba\t1.0\tAE B AH\n'))
        assert_allclose(table[tuple('abba')][()], -3.0)

    def test_word_sources(self):
        table = read_scored_nbest(self.write('the cat\t1.5\tle chat\n'), 'words', 'words')
        assert_allclose(table[('the', 'cat')][('le', 'chat')], -1.5)

    def test_bad_lines_name_the_file_and_the_line(self):
        cases = [("abba\t14.0\tAE B AH\nabba\tAE B AH\n", 2, 'found 1 tab'),
                 ("abba\t14.0\tAE B AH\t\n", 1, 'found 3 tab'),
                 ("abba\tcheap\tAE B AH\n", 1, "got 'cheap'"),
                 ("abba\tnan\tAE B AH\n", 1, "got 'nan'"),
                 ("abba\tinf\tAE B AH\n", 1, "got 'inf'"),
                 ("\t1.0\tAE B AH\n", 1, 'empty source'),
                 (b"abba\t1.0\tAE B \xff\n", 1, 'not UTF-8'),
                 ("\n\n", 1, 'empty')]
        for text, line, words in cases:
            path = self.write(text)
            with assert_raises(DataFileError) as caught:
                read_scored_nbest(path)
            message = str(caught.exception)
            assert_in('%s, line %d' % (path, line), message)
            assert_in(words, message)

    def test_a_missing_file_is_named(self):
        path = os.path.join(self.folder, 'nothing.nbest')
        with assert_raises(DataFileError) as caught:
            read_scored_nbest(path)
        assert_in(path, str(caught.exception))


class TestNbestScores(NbestFiles):
    def test_listed_unlisted_and_uncovered_hypotheses(self):
        scores = NbestScores.read(self.write(NBEST), 'chars', 'words', offset=2.0)
        got = scores.score([list('abba'), list('abba'), list("'bout"), list('zzz')],
                           [['AH', 'B', 'AH'], ['EY', 'B', 'AH'], ['B', 'UW', 'T'], ['Z']])
        # listed; unlisted: the worst of abba's list (-16.5) - 2; listed; no list: 0
        assert_allclose(got, [-14.9731, -18.5, -24.1294, 0.0])
        assert_equal([scores.covers(list('abba')), scores.covers(list('zzz'))], [True, False])

    def test_unlisted_hypotheses_rank_below_every_listed_one(self):
        scores = NbestScores.read(self.write(NBEST))
        listed = scores.score([list('abba')] * 3, [['AE', 'B', 'AH'], ['AH', 'B', 'AH'],
                                                   ['AE', 'B', 'AA']])
        unlisted = scores.score([list('abba')], [['B', 'AH']])
        assert listed.min() > unlisted[0]

    def test_bad_arguments(self):
        with assert_raises(ValueError) as caught:
            NbestScores({}, offset=-1)
        assert_in('offset must be a finite number >= 0, got -1', str(caught.exception))
        with assert_raises(ValueError) as caught:
            NbestScores({}).score([list('ab')], [])
        assert_in('1 sources, 0 targets', str(caught.exception))
