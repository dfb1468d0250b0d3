"""Sequence-level knowledge distillation (Kim & Rush 2016): a teacher (one
model or an ensemble) decodes the training sources by beam search, and a
student is then trained on the teacher's outputs instead of the references
(what `seq2seq distill` runs; `seq2seq train` trains the student).

    teacher = Translator(['D2', 'S1', 'S2'])
    sources = distill_sources(read_tsv('train.tsv', 'chars', 'words'))
    pairs = distill(teacher, sources, beam_size=5)   # [(source tokens, output tokens)]
    write_distilled('distilled.tsv', teacher, pairs)
"""
from __future__ import absolute_import

import collections

from ..training.data import DataFileError, detokenize, tokenize
from ..util.files import write_text_atomically


def distill_sources(pairs, extra_lines=(), source_tokens='chars', extra_path='extra'):
    """The distinct sources to decode, each once, in file order: those of
    the training pairs, then the extra ones not among them.

    # Arguments
        pairs: (line number, source tokens, target tokens) of the training
            file (`read_tsv`); a source on several lines (several
            references) counts once.
        extra_lines: (line number, text) of more sources, one per line
            (`read_lines`), e.g. words a dictionary lacks.
        source_tokens: how an extra line splits into tokens: 'chars' or
            'words', as the teacher was trained.
        extra_path: the extra file's name, for errors.

    # Returns
        a list of source token lists.

    # Raises
        DataFileError: an extra line holding a tab (a TSV file given where
            one source per line is expected).
    """
    seen = collections.OrderedDict()
    for pair in pairs:
        seen.setdefault(tuple(pair[1]), None)
    for number, text in extra_lines:
        if '\t' in text:
            raise DataFileError(extra_path, number, 'expected one source per line, found a '
                                'tab (a source<TAB>target file? give it as --train)')
        tokens = tokenize(text.strip(), source_tokens)
        if tokens:
            seen.setdefault(tuple(tokens), None)
    return [list(source) for source in seen]


def distill(translator, sources, beam_size=5, batch_size=64):
    """The teacher's best output for each source, by beam search.

    # Arguments
        translator: the teacher, a `seq2seq.app.translator.Translator` (one
            model directory or an ensemble).
        sources: source token lists (`distill_sources`).
        beam_size: the beam's width (1: greedy search).
        batch_size: sources decoded together.

    # Returns
        a list of (source tokens, output tokens), one per source, in order.
        An output may be empty (the teacher ended at once): see
        `write_distilled`.
    """
    decoded = translator.translate(sources, beam_size=beam_size, n_best=1,
                                   batch_size=batch_size)
    return [(list(source), list(hypotheses[0][0]))
            for source, hypotheses in zip(sources, decoded)]


def distilled_text(translator, pairs):
    """(the TSV text of `source<TAB>output` lines, the number of sources
    left out). A source whose output is empty is left out: `read_tsv`
    refuses an empty target, so the student could not be trained on the
    file."""
    lines, empty = [], 0
    for source, output in pairs:
        if not output:
            empty += 1
            continue
        lines.append('%s\t%s\n' % (detokenize(source, translator.config['source_tokens']),
                                   translator.detokenize_target(output)))
    return ''.join(lines), empty


def write_distilled(path, translator, pairs):
    """Write the pairs of `distill` to `path` as a TSV file, atomically (a
    file a student is then trained on is never half written). Returns
    (lines written, sources left out for an empty output).

    # Raises
        seq2seq.util.files.FileWriteError: the file cannot be written.
    """
    text, empty = distilled_text(translator, pairs)
    write_text_atomically(path, text)
    return len(pairs) - empty, empty
