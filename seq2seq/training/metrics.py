"""Metrics on predicted token sequences."""
from __future__ import absolute_import

import numpy as np


def token_accuracy(predicted, target, pad_id=None):
    """Fraction of target tokens predicted right, position by position.

    # Arguments
        predicted: (batch, length) token ids, or (batch, length, vocab)
            scores whose argmax is taken.
        target: (batch, length) token ids.
        pad_id: target positions holding this id are not counted.
    """
    predicted = np.asarray(predicted)
    target = np.asarray(target)
    if predicted.ndim == target.ndim + 1:
        predicted = predicted.argmax(axis=-1)
    if predicted.shape != target.shape:
        raise ValueError('predicted and target must have the same shape, got %s and %s'
                         % (predicted.shape, target.shape))
    counted = np.ones(target.shape, dtype=bool) if pad_id is None else target != pad_id
    if not counted.any():
        raise ValueError('target holds no token other than pad_id=%r' % (pad_id,))
    return float((predicted == target)[counted].mean())


def sequence_accuracy(predicted, target):
    """Fraction of sequences predicted entirely right."""
    predicted = np.asarray(predicted)
    target = np.asarray(target)
    if predicted.ndim == target.ndim + 1:
        predicted = predicted.argmax(axis=-1)
    return float((predicted == target).all(axis=-1).mean())


# -- metrics on token sequences (hypotheses against one or more references) ------------
def _references_list(hypotheses, references):
    """Every entry of `references` as a list of token sequences."""
    hypotheses = list(hypotheses)
    references = list(references)
    if len(hypotheses) != len(references):
        raise ValueError('hypotheses and references must be as many, got %d and %d'
                         % (len(hypotheses), len(references)))
    if not hypotheses:
        raise ValueError('no hypotheses to score')
    normalised = []
    for i, refs in enumerate(references):
        refs = list(refs)
        # One reference (a token list) or several (a list of token lists).
        if not refs or not isinstance(refs[0], (list, tuple)):
            refs = [refs]
        normalised.append([list(r) for r in refs])
    return [list(h) for h in hypotheses], normalised


def edit_distance(hypothesis, reference):
    """Levenshtein distance between two token sequences (insertions,
    deletions and substitutions of whole tokens), by PyPI `editdistance`."""
    import editdistance
    return int(editdistance.eval(list(hypothesis), list(reference)))


def closest_reference(hypothesis, references):
    """(distance, reference) of the reference nearest to `hypothesis`
    (the shorter one on a tie)."""
    scored = [(edit_distance(hypothesis, r), len(r), i) for i, r in enumerate(references)]
    distance, _, index = min(scored)
    return distance, references[index]


def exact_match(hypotheses, references):
    """Fraction of hypotheses equal to one of their references.

    # Arguments
        hypotheses: token sequences.
        references: per hypothesis, one reference token sequence or a list
            of them (a word with two pronunciations).
    """
    hypotheses, references = _references_list(hypotheses, references)
    right = sum(any(h == r for r in refs) for h, refs in zip(hypotheses, references))
    return right / float(len(hypotheses))


def word_error_rate(hypotheses, references):
    """WER as grapheme-to-phoneme work reports it: the fraction of entries
    (words) whose hypothesis equals none of their references, 1 - exact
    match. For the word-level edit rate of speech recognition, tokenise by
    words and use `token_error_rate`."""
    return 1.0 - exact_match(hypotheses, references)


def token_error_rate(hypotheses, references):
    """Edit distance to the closest reference, summed over entries, divided
    by the summed length of those references: the phoneme error rate (PER)
    for G2P, the word error rate of speech recognition for word tokens."""
    hypotheses, references = _references_list(hypotheses, references)
    errors = length = 0
    for hypothesis, refs in zip(hypotheses, references):
        distance, reference = closest_reference(hypothesis, refs)
        errors += distance
        length += len(reference)
    if length == 0:
        raise ValueError('the references hold no token')
    return errors / float(length)


phoneme_error_rate = token_error_rate


def corpus_bleu(hypotheses, references):
    """Corpus BLEU (0-100) of space-joined token sequences, by `sacrebleu`
    with its default 13a tokeniser and exponential smoothing. An entry with
    fewer references than another repeats its first one (which changes
    neither the clipped counts nor the closest reference length)."""
    import sacrebleu
    hypotheses, references = _references_list(hypotheses, references)
    width = max(len(refs) for refs in references)
    streams = [[' '.join(refs[k] if k < len(refs) else refs[0]) for refs in references]
               for k in range(width)]
    return float(sacrebleu.corpus_bleu([' '.join(h) for h in hypotheses], streams).score)


def perplexity(token_log_probs):
    """exp of the mean negative log-probability (natural log) of the
    reference tokens, EOS included: `token_log_probs` is a flat sequence of
    them, or (n, length) with NaN where there is no token."""
    values = np.asarray(token_log_probs, dtype='float64').ravel()
    values = values[~np.isnan(values)]
    if not values.size:
        raise ValueError('token_log_probs holds no value')
    return float(np.exp(-values.mean()))
