"""`seq2seq distill`: sequence-level knowledge distillation (Kim & Rush 2016).

A teacher trained on the reversal of 3-4 character strings decodes the
training sources (and extra ones) by beam search; the file it writes holds
each distinct source once with the teacher's beam output, and a student
trained on it by `seq2seq train` decodes held-out sources as the teacher
does. Bad input: one line naming the option or the file, exit status 2,
before any model loads.
"""
import itertools
import os
import random
import shutil
import tempfile
import unittest

from nose.plugins.attrib import attr
from nose.tools import assert_equal, assert_greater_equal, assert_in, assert_raises, assert_true

from seq2seq.app.distill import distill_sources, distilled_text
from seq2seq.training.data import DataFileError, read_lines, read_tsv
from tests.test_cli import TINY_MODEL, WORDS, reversal_tsv, run, write

# Every string of 3 and 4 characters over 'abcde', shuffled once: the
# teacher's training words, extra words, and held-out words for the student.
ALL_WORDS = [''.join(chars) for n in (3, 4) for chars in itertools.product('abcde', repeat=n)]
random.Random(0).shuffle(ALL_WORDS)
TRAIN_WORDS, EXTRA_WORDS, HELD_OUT = ALL_WORDS[:300], ALL_WORDS[300:330], ALL_WORDS[330:430]
# Width 32 and a step size of 0.01 learn the reversal of these 300 words
# exactly in 15 epochs (about 12 s on a shared core), teacher and student.
LEARNING_MODEL = ['--hidden-dim', '32', '--embedding-dim', '8', '--batch-size', '16',
                  '--learning-rate', '0.01', '--epochs', '15', '--quiet']


def lines_of(path):
    with open(path, encoding='utf-8') as f:
        return f.read().splitlines()


def predicted(model_dir, words, folder, *options):
    """`seq2seq predict`'s output line for each word."""
    inputs = write(os.path.join(folder, 'predict_in.txt'), ''.join(w + '\n' for w in words))
    status, out, err = run('predict', '--model-dir', model_dir, '--input', inputs, *options)
    assert_equal(status, 0, err)
    return out.splitlines()


# -- the library -----------------------------------------------------------------------
def test_sources_are_distinct_in_file_order_extra_ones_last():
    pairs = [(1, list('ab'), list('ba')), (2, list('cd'), list('dc')),
             (3, list('ab'), list('xx')), (5, list('e'), list('e'))]
    extra = [(1, 'cd'), (2, ' fg '), (3, 'e'), (4, 'fg'), (5, 'h')]
    assert_equal(distill_sources(pairs, extra), [list('ab'), list('cd'), list('e'),
                                                 list('fg'), list('h')])
    assert_equal(distill_sources(pairs, [(1, 'a b  c')], 'words')[-1], ['a', 'b', 'c'])
    with assert_raises(DataFileError) as caught:
        distill_sources(pairs, [(1, 'ab'), (2, 'ab\tba')], extra_path='words.txt')
    assert_equal(str(caught.exception).split(':')[0], 'words.txt, line 2')


class _Teacher(object):
    """What `distilled_text` reads of a Translator."""
    config = {'source_tokens': 'chars', 'target_tokens': 'words'}

    @staticmethod
    def detokenize_target(tokens):
        return ' '.join(tokens)


def test_distilled_text_leaves_out_empty_outputs():
    text, empty = distilled_text(_Teacher(), [(list('ab'), ['B', 'A']), (list('cd'), []),
                                              (list('e'), ['E'])])
    assert_equal((text, empty), ('ab\tB A\ne\tE\n', 1))


# -- the command -----------------------------------------------------------------------
def test_distill_writes_each_distinct_source_once_with_the_teachers_beam_output():
    """A small teacher (5 epochs: many of its outputs are wrong, which does
    not matter here) and a training file where a source has two
    references."""
    folder = tempfile.mkdtemp()
    try:
        train = reversal_tsv(os.path.join(folder, 'train.tsv'), WORDS + ['abc', 'cd'])
        teacher = os.path.join(folder, 'teacher')
        status, _, err = run('train', '--train', train, '--model-dir', teacher, '--epochs', '5',
                             '--hidden-dim', '16', '--learning-rate', '0.02', *TINY_MODEL[2:])
        assert_equal(status, 0, err)
        extra = write(os.path.join(folder, 'extra.txt'), 'dab\nddd\n\nacb\nddd\n')
        out = os.path.join(folder, 'distilled.tsv')
        status, stdout, err = run('distill', '--teacher-dir', teacher, teacher, '--train',
                                  train, '--extra-words', extra, '--out', out,
                                  '--beam-size', '3', '--batch-size', '5')
        assert_equal(status, 0, err)
        sources = WORDS + ['ddd', 'acb']        # 'dab' is a training word already
        assert_in('%d sources decoded (%d from %s, 2 more from %s) with beam size 3'
                  % (len(sources), len(WORDS), train, extra), err)
        assert_equal(stdout, '')
        # The teacher's beam output: what predict writes for each source; a
        # source whose output is empty is left out (with a warning), so that
        # `train` reads the file.
        outputs = predicted(teacher, sources, folder, '--beam-size', '3')
        expected = ['%s\t%s' % pair for pair in zip(sources, outputs) if pair[1]]
        assert_greater_equal(len(expected), len(sources) // 2, outputs)
        assert_equal(lines_of(out), expected)
        assert_equal(len(read_tsv(out)), len(expected))
        if len(expected) < len(sources):
            assert_in('%d source(s) left out' % (len(sources) - len(expected)), err)
        assert_equal(sorted(os.listdir(folder)), sorted(['train.tsv', 'teacher', 'extra.txt',
                                                         'distilled.tsv', 'predict_in.txt']))
    finally:
        shutil.rmtree(folder)


@attr('slow')
class TestStudentLearnsTheTeacher(unittest.TestCase):
    """Teacher trained on TRAIN_WORDS, distilled onto TRAIN_WORDS +
    EXTRA_WORDS; the student, trained on that file alone, decodes HELD_OUT
    (seen by neither) greedily as the teacher does by beam search."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.train = reversal_tsv(os.path.join(cls.folder, 'train.tsv'), TRAIN_WORDS)
        cls.extra = write(os.path.join(cls.folder, 'extra.txt'),
                          ''.join(w + '\n' for w in EXTRA_WORDS))
        cls.teacher = os.path.join(cls.folder, 'teacher')
        cls.student = os.path.join(cls.folder, 'student')
        cls.distilled = os.path.join(cls.folder, 'distilled.tsv')
        cls.status = [run('train', '--train', cls.train, '--model-dir', cls.teacher,
                          *LEARNING_MODEL)]
        cls.status.append(run('distill', '--teacher-dir', cls.teacher, '--train', cls.train,
                              '--extra-words', cls.extra, '--out', cls.distilled))
        cls.status.append(run('train', '--train', cls.distilled, '--model-dir', cls.student,
                              '--seed', '1', *LEARNING_MODEL))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)

    def test_every_step_succeeds(self):
        for status, _, err in self.status:
            assert_equal(status, 0, err)

    def test_the_file_holds_every_source_with_the_teachers_output(self):
        lines = [line.split('\t') for line in lines_of(self.distilled)]
        assert_equal([source for source, _ in lines], TRAIN_WORDS + EXTRA_WORDS)
        assert_equal([output for _, output in lines],
                     predicted(self.teacher, TRAIN_WORDS + EXTRA_WORDS, self.folder,
                               '--beam-size', '5'))

    def test_the_student_decodes_held_out_sources_as_the_teacher(self):
        teacher = predicted(self.teacher, HELD_OUT, self.folder, '--beam-size', '5')
        student = predicted(self.student, HELD_OUT, self.folder)     # greedy
        agree = sum(1 for a, b in zip(teacher, student) if a == b)
        assert_greater_equal(agree, 0.9 * len(HELD_OUT), list(zip(HELD_OUT, teacher, student)))


# -- bad input -------------------------------------------------------------------------
class TestErrors(unittest.TestCase):
    """Exit status 2 and one line naming the option or the file (and the
    line), before any model loads: the teacher's model.h5 here is an empty
    file, which loading would fail on."""

    def setUp(self):
        from seq2seq.app.model_dir import write_config
        from seq2seq.training.vocab import Vocabulary
        self.folder = tempfile.mkdtemp()
        self.teacher = self.path('teacher')
        config = {'source_tokens': 'chars', 'target_tokens': 'chars', 'input_length': 4,
                  'output_length': 5, 'reverse_source': False, 'model': 'attention'}
        write_config(self.teacher, config, Vocabulary('abcd'), Vocabulary('abcd'))
        write(os.path.join(self.teacher, 'model.h5'), b'')
        self.train = reversal_tsv(self.path('train.tsv'))

    def tearDown(self):
        shutil.rmtree(self.folder)

    def path(self, name):
        return os.path.join(self.folder, name)

    def assert_error(self, options, message, teacher=None):
        argv = (['distill', '--teacher-dir', teacher or self.teacher, '--train', self.train,
                 '--out', self.path('out.tsv')] + options)
        status, out, err = run(*argv)
        assert_equal((status, out), (2, ''), err)
        # argparse's own errors (a bad number) too are one line.
        assert_equal(len(err.strip().splitlines()), 1, err)
        assert_true(err.startswith('seq2seq distill: error: '), err)
        assert_in(message, err)
        assert_true(not os.path.exists(self.path('out.tsv')))

    def test_missing_training_file(self):
        os.remove(self.train)
        self.assert_error([], 'train.tsv: No such file')

    def test_bad_training_line(self):
        write(self.train, 'abc\tcba\nabd\n')
        self.assert_error([], 'train.tsv, line 2: expected source<TAB>target')

    def test_missing_extra_words_file(self):
        self.assert_error(['--extra-words', self.path('none.txt')], 'none.txt: No such file')

    def test_extra_words_file_with_a_tab(self):
        extra = write(self.path('extra.txt'), 'abc\nabc\tcba\n')
        self.assert_error(['--extra-words', extra], 'extra.txt, line 2: expected one source')

    def test_teacher_dir_that_is_missing_or_not_trained(self):
        self.assert_error([], 'none: no such model directory', teacher=self.path('none'))
        os.remove(os.path.join(self.teacher, 'model.h5'))
        self.assert_error([], 'holds no trained model yet')
        empty = self.path('empty')
        os.mkdir(empty)
        self.assert_error([], 'empty', teacher=empty)

    def test_second_teacher_dir_is_checked_too(self):
        status, _, err = run('distill', '--teacher-dir', self.teacher, self.path('none'),
                             '--train', self.train, '--out', self.path('out.tsv'))
        assert_equal(status, 2)
        assert_equal(err.strip().splitlines(),
                     ['seq2seq distill: error: %s: no such model directory' % self.path('none')])

    def test_beam_size_below_one(self):
        self.assert_error(['--beam-size', '0'], "argument --beam-size: expected a positive "
                          "integer, got '0'")

    def test_output_that_cannot_be_written(self):
        status, _, err = run('distill', '--teacher-dir', self.teacher, '--train', self.train,
                             '--out', self.path('no/out.tsv'))
        assert_equal(status, 2)
        assert_equal(err.strip().splitlines(),
                     ['seq2seq distill: error: --out: cannot write %s: no such folder %s'
                      % (self.path('no/out.tsv'), self.path('no'))])

    def test_output_that_is_the_training_file(self):
        status, _, err = run('distill', '--teacher-dir', self.teacher, '--train', self.train,
                             '--out', self.train)
        assert_equal(status, 2)
        assert_in('--out %s is the --train file' % self.train, err)
        assert_equal(len(err.strip().splitlines()), 1)
        assert_equal(len(read_lines(self.train)), len(WORDS))     # untouched
