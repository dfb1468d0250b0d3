"""Reranking a beam's n-best lists with other models (`seq2seq predict
--rescore-model-dir`, `evaluate --rescore-model-dir`).

A left-to-right search commits to each token before it sees the next ones:
its second-best hypothesis is often the right one. A model that reads the
target the other way (trained with `--reverse-target`) makes other mistakes,
so scoring every hypothesis of the beam with it, and ranking by

    (1 - weight) * log p_search(y | x) + weight * log p_rescore(y | x)

picks better among them (Liu et al. 2016, "Agreement on target-bidirectional
neural machine translation"; Sennrich et al. 2016, the right-to-left
reranking of the Edinburgh WMT16 systems).

    search = Translator(['models/l2r-a', 'models/l2r-b'])
    rescorer = Translator(['models/r2l-a', 'models/r2l-b'])
    Reranker(search, rescorer, weight=0.5).translate(sources, beam_size=5)
"""
from __future__ import absolute_import

import collections

import numpy as np

from .translator import check_shared


def combined_scores(search_log_probs, rescore_log_probs, weight):
    """(1 - weight) * search + weight * rescore, elementwise."""
    search_log_probs = np.asarray(search_log_probs, dtype='float64')
    rescore_log_probs = np.asarray(rescore_log_probs, dtype='float64')
    return (1.0 - weight) * search_log_probs + weight * rescore_log_probs


def rerank(n_best_lists, rescore_log_probs, weight):
    """Per source, its hypotheses ranked by their combined score.

    # Arguments
        n_best_lists: per source, a list of (tokens, search log-probability).
        rescore_log_probs: per source, the rescoring models' log-probability
            of each of its hypotheses, in the same order.
        weight: in [0, 1]; 0 keeps the search's ranking.

    # Returns
        per source, a list of (tokens, combined score), best first; ties keep
        the search's order.
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError('weight must be in [0, 1], got %r' % (weight,))
    if len(n_best_lists) != len(rescore_log_probs):
        raise ValueError('rescore_log_probs must hold one list per source: %d sources, %d '
                         'lists' % (len(n_best_lists), len(rescore_log_probs)))
    reranked = []
    for hypotheses, rescored in zip(n_best_lists, rescore_log_probs):
        if len(hypotheses) != len(rescored):
            raise ValueError('%d hypotheses but %d rescoring log-probabilities'
                             % (len(hypotheses), len(rescored)))
        scores = combined_scores([log_prob for _, log_prob in hypotheses], rescored, weight)
        order = sorted(range(len(hypotheses)), key=lambda i: -scores[i])     # stable
        reranked.append([(hypotheses[i][0], float(scores[i])) for i in order])
    return reranked


class Reranker(object):
    """A Translator's beam search, its hypotheses reranked by another
    Translator's scores.

    # Arguments
        search: the Translator that searches (one model or an ensemble).
        rescorer: the Translator that scores the hypotheses; it must read
            and write the same tokens (the same vocabularies), and may
            generate in the other direction.
        weight: in [0, 1], the rescorer's share of the combined score.
        union: the rescorer searches too, and its beam's hypotheses join the
            candidates, each scored by both (the joint k-best of Liu et al.
            2016): the right answer then only has to be in one of the two
            beams.

    # Raises
        ModelDirError: the two do not share their vocabularies.
    """

    def __init__(self, search, rescorer, weight=0.5, union=False):
        if not 0.0 <= weight <= 1.0:
            raise ValueError('weight must be in [0, 1], got %r' % (weight,))
        check_shared(search.model_dir, (search.config, search.source_vocab, search.target_vocab),
                     rescorer.model_dir, (rescorer.config, rescorer.source_vocab,
                                          rescorer.target_vocab),
                     ('source_tokens', 'target_tokens'), purpose='rescore together')
        self.search, self.rescorer, self.weight, self.union = search, rescorer, weight, union

    def translate(self, sources, beam_size=5, n_best=1, batch_size=64, length_penalty=0.0):
        """Per source, n_best (tokens, combined score), best first: the
        search's whole beam (beam_size hypotheses; with `union`, and the
        rescorer's, up to 2 * beam_size distinct ones) reranked."""
        if beam_size < 2:
            raise ValueError('rescoring needs beam_size > 1 (one hypothesis has nothing to '
                             'rerank), got %r' % (beam_size,))
        searches = [self.search] + ([self.rescorer] if self.union else [])
        if n_best > beam_size * len(searches):
            raise ValueError('n_best=%d needs beam_size >= n_best%s, got beam_size=%d'
                             % (n_best, ' / 2 with union' if self.union else '', beam_size))
        beams = [translator.translate(sources, beam_size=beam_size, n_best=beam_size,
                                      batch_size=batch_size, length_penalty=length_penalty)
                 for translator in searches]
        candidates = _candidates(beams + [[[]] * len(sources)] * (2 - len(beams)))
        for which, scorer in enumerate((self.search, self.rescorer)):
            _fill_scores(candidates, which, scorer, sources, batch_size)
        n_best_lists = [[(list(tokens), scores[0]) for tokens, scores in table.items()]
                        for table in candidates]
        rescored = [[scores[1] for scores in table.values()] for table in candidates]
        return [hypotheses[:n_best]
                for hypotheses in rerank(n_best_lists, rescored, self.weight)]


def _candidates(beams):
    """Per source, an ordered {token tuple: [search score, rescorer score]}
    of the distinct hypotheses of the search's beam, then of the
    rescorer's; a score is None until known (a beam gives its own
    translator's log-probabilities)."""
    search_beam, rescorer_beam = beams
    candidates = []
    for ours, theirs in zip(search_beam, rescorer_beam):
        table = collections.OrderedDict()
        for tokens, log_prob in ours:
            table.setdefault(tuple(tokens), [None, None])[0] = log_prob
        for tokens, log_prob in theirs:
            table.setdefault(tuple(tokens), [None, None])[1] = log_prob
        candidates.append(table)
    return candidates


def _fill_scores(candidates, which, scorer, sources, batch_size):
    """Score, in one call, every candidate whose score `which` (0: the
    search's, 1: the rescorer's) is unknown."""
    missing = [(source, tokens, scores) for source, table in zip(sources, candidates)
               for tokens, scores in table.items() if scores[which] is None]
    if not missing:
        return
    log_probs = scorer.score([source for source, _, _ in missing],
                             [list(tokens) for _, tokens, _ in missing], batch_size)
    for (_, _, scores), log_prob in zip(missing, log_probs):
        scores[which] = float(log_prob)
