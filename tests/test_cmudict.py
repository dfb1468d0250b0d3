"""CMUdict preprocessing and the deterministic split, on a hand-made dictionary."""
import io
import os
import shutil
import tempfile

from nose.tools import assert_equal, assert_true

from seq2seq.data import read_tsv
from seq2seq.datasets import cmudict

LINES = u"""\
'bout B AW1 T
a AH0
a(2) EY1
a.m. EY2 EH1 M
aalborg AO1 L B AO0 R G # place, danish
aalborg(2) AA1 L B AO0 R G
abc123 EY1 B IY1 S IY1
Zebra Z IY1 B R AH0
read R IY1 D
read(2) R EH1 D
record R EH1 K ER0 D
record(2) R IH0 K AO1 R D
record(3) R EH2 K ER0 D
""".splitlines()


def test_preprocessing_removes_comments_stress_and_odd_words_and_groups_alternates():
    entries = cmudict.parse_cmudict(LINES)
    assert_equal(list(entries), ["'bout", 'a', 'aalborg', 'read', 'record'])
    assert_equal(entries['a'], [('AH',), ('EY',)])
    assert_equal(entries['aalborg'], [('AO', 'L', 'B', 'AO', 'R', 'G'),
                                      ('AA', 'L', 'B', 'AO', 'R', 'G')])
    # record(3) differs from record only in stress: one pronunciation.
    assert_equal(entries['record'], [('R', 'EH', 'K', 'ER', 'D'), ('R', 'IH', 'K', 'AO', 'R', 'D')])


def test_split_by_sorted_headword_index():
    entries = dict(('w%03d' % i, [('P',), ('B',)]) for i in range(60))
    train, dev, test = cmudict.split_cmudict(entries)
    words = sorted(entries)
    assert_equal(list(dev), [words[i] for i in range(60) if i % 20 == 0])
    assert_equal(list(test), [words[i] for i in range(60) if i % 20 in (1, 2)])
    assert_equal(len(train), 60 - 3 - 6)
    # Every pronunciation of a word goes with it, and no word is in two sets.
    assert_equal(dev['w020'], [('P',), ('B',)])
    assert_equal(set(train) & set(dev) | set(train) & set(test) | set(dev) & set(test), set())
    assert_equal(set(train) | set(dev) | set(test), set(entries))


def test_tsv_has_one_line_per_pronunciation_and_reads_back():
    folder = tempfile.mkdtemp()
    try:
        path = os.path.join(folder, 'dict.tsv')
        cmudict.write_tsv(cmudict.parse_cmudict(LINES), path)
        with io.open(path, encoding='utf-8') as f:
            lines = f.read().splitlines()
        assert_equal(lines[:3], ["'bout\tB AW T", 'a\tAH', 'a\tEY'])
        pairs = read_tsv(path, 'chars', 'words')
        assert_equal(pairs[2], (3, ['a'], ['EY']))
    finally:
        shutil.rmtree(folder)


def test_the_bundled_dictionary_gives_the_documented_split():
    train, dev, test = cmudict.split_cmudict(cmudict.load_cmudict())
    assert_true(100000 < len(train) < 112000, len(train))
    assert_true(5500 < len(dev) < 6800, len(dev))
    assert_true(11000 < len(test) < 13500, len(test))
    phonemes = set(p for entries in (train, dev, test) for prons in entries.values()
                   for pron in prons for p in pron)
    assert_equal(len(phonemes), 39)
