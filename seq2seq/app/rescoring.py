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

Another system's n-best lists (`seq2seq.nbest`, `--rescore-nbest`) can add a
third score with its own weight V: the search's share is then
1 - weight - V.
"""
from __future__ import absolute_import

import collections

import numpy as np

from .translator import check_shared


def combined_scores(search_log_probs, rescore_log_probs, weight, nbest_log_probs=None,
                    nbest_weight=0.0):
    """(1 - weight - nbest_weight) * search + weight * rescore
    + nbest_weight * nbest, elementwise."""
    search_log_probs = np.asarray(search_log_probs, dtype='float64')
    combined = (1.0 - weight - nbest_weight) * search_log_probs
    if weight:
        combined = combined + weight * np.asarray(rescore_log_probs, dtype='float64')
    if nbest_weight:
        combined = combined + nbest_weight * np.asarray(nbest_log_probs, dtype='float64')
    return combined


def _check_weights(weight, nbest_weight):
    for name, value in (('weight', weight), ('nbest_weight', nbest_weight)):
        if not 0.0 <= value <= 1.0:
            raise ValueError('%s must be in [0, 1], got %r' % (name, value))
    if weight + nbest_weight > 1.0 + 1e-12:
        raise ValueError('weight + nbest_weight must be at most 1 (the search gets the rest), '
                         'got %r + %r' % (weight, nbest_weight))


def rerank(n_best_lists, rescore_log_probs, weight, nbest_log_probs=None, nbest_weight=0.0):
    """Per source, its hypotheses ranked by their combined score.

    # Arguments
        n_best_lists: per source, a list of (tokens, search log-probability).
        rescore_log_probs: per source, the rescoring models' log-probability
            of each of its hypotheses, in the same order.
        weight: in [0, 1]; 0 keeps the search's ranking.
        nbest_log_probs: per source, a third score of each hypothesis (another
            system's, see `seq2seq.nbest`), or None.
        nbest_weight: in [0, 1 - weight], the third score's share.

    # Returns
        per source, a list of (tokens, combined score), best first; ties keep
        the search's order.
    """
    _check_weights(weight, nbest_weight)
    if nbest_log_probs is None:
        if nbest_weight:
            raise ValueError('nbest_weight %r needs nbest_log_probs' % (nbest_weight,))
        nbest_log_probs = [[0.0] * len(hypotheses) for hypotheses in n_best_lists]
    for name, table in (('rescore_log_probs', rescore_log_probs),
                        ('nbest_log_probs', nbest_log_probs)):
        if len(n_best_lists) != len(table):
            raise ValueError('%s must hold one list per source: %d sources, %d lists'
                             % (name, len(n_best_lists), len(table)))
    reranked = []
    for hypotheses, rescored, listed in zip(n_best_lists, rescore_log_probs, nbest_log_probs):
        if len(hypotheses) != len(rescored) or len(hypotheses) != len(listed):
            raise ValueError('%d hypotheses but %d rescoring and %d n-best log-probabilities'
                             % (len(hypotheses), len(rescored), len(listed)))
        scores = combined_scores([log_prob for _, log_prob in hypotheses], rescored, weight,
                                 listed, nbest_weight)
        order = sorted(range(len(hypotheses)), key=lambda i: -scores[i])     # stable
        reranked.append([(hypotheses[i][0], float(scores[i])) for i in order])
    return reranked


class Reranker(object):
    """A Translator's beam search, its hypotheses reranked by another
    Translator's scores, another system's n-best scores, or both.

    # Arguments
        search: the Translator that searches (one model or an ensemble).
        rescorer: the Translator that scores the hypotheses, or None; it
            must read and write the same tokens (the same vocabularies), and
            may generate in the other direction.
        weight: in [0, 1], the rescorer's share of the combined score;
            default 0.5 with a rescorer, 0 without one.
        union: the rescorer searches too, and its beam's hypotheses join the
            candidates, each scored by both (the joint k-best of Liu et al.
            2016): the right answer then only has to be in one of the two
            beams.
        nbest: a third scorer with a `score(sources, targets)` method, such
            as `seq2seq.nbest.NbestScores`, or None.
        nbest_weight: in [0, 1 - weight], its share; the search gets the rest.

    # Raises
        ModelDirError: the two do not share their vocabularies.
    """

    def __init__(self, search, rescorer=None, weight=None, union=False, nbest=None,
                 nbest_weight=0.0):
        if weight is None:
            weight = 0.5 if rescorer is not None else 0.0
        _check_weights(weight, nbest_weight)
        if rescorer is None and (weight or union):
            raise ValueError('weight %r and union=%r need a rescorer' % (weight, union))
        if nbest is None and nbest_weight:
            raise ValueError('nbest_weight %r needs an nbest scorer' % (nbest_weight,))
        if rescorer is not None:
            check_shared(search.model_dir, (search.config, search.source_vocab,
                                            search.target_vocab),
                         rescorer.model_dir, (rescorer.config, rescorer.source_vocab,
                                              rescorer.target_vocab),
                         ('source_tokens', 'target_tokens'), purpose='rescore together')
        self.search, self.rescorer, self.weight, self.union = search, rescorer, weight, union
        self.nbest, self.nbest_weight = nbest, nbest_weight

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
        for which, scorer in enumerate((self.search, self.rescorer, self.nbest)):
            if scorer is not None:
                _fill_scores(candidates, which, scorer, sources, batch_size)
        n_best_lists = [[(list(tokens), scores[0]) for tokens, scores in table.items()]
                        for table in candidates]
        # A scorer that is not there scores 0, with weight 0.
        rescored, listed = ([[scores[which] or 0.0 for scores in table.values()]
                             for table in candidates] for which in (1, 2))
        return [hypotheses[:n_best] for hypotheses in rerank(
            n_best_lists, rescored, self.weight, listed, self.nbest_weight)]


def _candidates(beams):
    """Per source, an ordered {token tuple: [search score, rescorer score,
    n-best score]}
    of the distinct hypotheses of the search's beam, then of the
    rescorer's; a score is None until known (a beam gives its own
    translator's log-probabilities)."""
    search_beam, rescorer_beam = beams
    candidates = []
    for ours, theirs in zip(search_beam, rescorer_beam):
        table = collections.OrderedDict()
        for tokens, log_prob in ours:
            table.setdefault(tuple(tokens), [None, None, None])[0] = log_prob
        for tokens, log_prob in theirs:
            table.setdefault(tuple(tokens), [None, None, None])[1] = log_prob
        candidates.append(table)
    return candidates


def _fill_scores(candidates, which, scorer, sources, batch_size):
    """Score, in one call, every candidate whose score `which` (0: the
    search's, 1: the rescorer's, 2: the n-best lists') is unknown."""
    missing = [(source, tokens, scores) for source, table in zip(sources, candidates)
               for tokens, scores in table.items() if scores[which] is None]
    if not missing:
        return
    log_probs = scorer.score([source for source, _, _ in missing],
                             [list(tokens) for _, tokens, _ in missing], batch_size)
    for (_, _, scores), log_prob in zip(missing, log_probs):
        scores[which] = float(log_prob)
