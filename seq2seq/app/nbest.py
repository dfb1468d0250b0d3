"""Scores from another system's n-best lists, for reranking a beam with them.

A neural beam and a joint-sequence n-gram model (Phonetisaurus, for
grapheme-to-phoneme) make different mistakes: adding the n-gram model's
log-probability of each of the beam's hypotheses to the combined score picks
better among them, the system combination of Rao et al. 2015
("Grapheme-to-phoneme conversion using long short-term memory recurrent
neural networks").

The n-best file has one hypothesis a line, `source<TAB>cost<TAB>target`,
cost = -log p (what `phonetisaurus-g2pfst --nbest=N` prints). A hypothesis
that is not in its source's list gets the list's worst log-probability minus
`offset` (it is less likely than everything listed); every hypothesis of a
source that has no list gets 0, which leaves their ranking to the other
scores.

    scores = NbestScores.read('dev.nbest', 'chars', 'words')
    scores.score([list('abba')], [['AE', 'B', 'AH']])    # [-14.0106]
"""
from __future__ import absolute_import

import math

import numpy as np

from ..training.data import DataFileError, read_lines, tokenize


def read_scored_nbest(path, source_tokens='chars', target_tokens='words'):
    """Read `source<TAB>cost<TAB>target` lines.

    # Arguments
        path: the file.
        source_tokens, target_tokens: 'chars' or 'words', as at training.

    # Returns
        {source token tuple: {target token tuple: log-probability}}; a target
        listed twice for one source keeps its higher log-probability (its
        lower cost).

    # Raises
        DataFileError naming the file and the line for a line without exactly
        two tabs, an empty source, or a cost that is not a finite
        number (and see `seq2seq.data.read_lines`).
    """
    table = {}
    for number, text in read_lines(path):
        fields = text.split('\t')
        if len(fields) != 3:
            raise DataFileError(path, number, 'expected source<TAB>cost<TAB>target, found %d '
                                'tab(s)' % (len(fields) - 1))
        source = tuple(tokenize(fields[0].strip(), source_tokens))
        target = tuple(tokenize(fields[2].strip(), target_tokens))
        if not source:              # an empty target is a hypothesis (Phonetisaurus lists some)
            raise DataFileError(path, number, 'empty source')
        try:
            cost = float(fields[1])
        except ValueError:
            cost = float('nan')
        if math.isnan(cost) or math.isinf(cost):
            raise DataFileError(path, number, 'the cost must be a finite number (-log p), got %r'
                                % fields[1].strip())
        targets = table.setdefault(source, {})
        targets[target] = max(targets.get(target, -np.inf), -cost)
    return table


class NbestScores(object):
    """Log-probabilities of hypotheses from another system's n-best lists.

    # Arguments
        table: {source token tuple: {target token tuple: log-probability}},
            as `read_scored_nbest` returns.
        offset: a hypothesis outside its source's list gets the list's worst
            log-probability minus this (>= 0).
    """

    def __init__(self, table, offset=1.0):
        if not (isinstance(offset, (int, float)) and offset >= 0 and not math.isinf(offset)):
            raise ValueError('offset must be a finite number >= 0, got %r' % (offset,))
        self.table, self.offset = table, float(offset)
        self.worst = dict((source, min(targets.values())) for source, targets in table.items())

    @classmethod
    def read(cls, path, source_tokens='chars', target_tokens='words', offset=1.0):
        """The scores of an n-best file (see `read_scored_nbest`)."""
        return cls(read_scored_nbest(path, source_tokens, target_tokens), offset)

    def covers(self, source):
        """Whether `source` (a token list) has a list."""
        return tuple(source) in self.table

    def score(self, sources, targets, batch_size=None):
        """Per (source, target) pair, the target's log-probability: listed,
        the list's worst minus `offset`, or 0 for a source without a list.
        `batch_size` is ignored (it keeps the signature of
        `Translator.score`)."""
        if len(sources) != len(targets):
            raise ValueError('sources and targets must pair up: %d sources, %d targets'
                             % (len(sources), len(targets)))
        scores = np.zeros(len(sources), dtype='float64')
        for row, (source, target) in enumerate(zip(sources, targets)):
            listed = self.table.get(tuple(source))
            if listed is not None:
                scores[row] = listed.get(tuple(target), self.worst[tuple(source)] - self.offset)
        return scores
