"""Vocabulary: tokens <-> integer ids, with the reserved PAD, EOS and UNK.

    vocab = Vocabulary.build([['k', 'a', 't'], ['d', 'o', 'g']])
    ids = vocab.encode(['c', 'a', 't'])       # unknown 'c' -> UNK_ID
    vocab.decode(ids)                         # ['<unk>', 'a', 't']

Id 0 is padding (what `Embedding(mask_zero=True)` masks), 1 is the
end-of-sequence token every target ends with, 2 stands for a token the
training data did not have. The other ids follow in order of decreasing
frequency (ties in sorted order), so a vocabulary built twice from the same
data is the same.
"""
from __future__ import absolute_import

import collections
import io
import json

from ..util.files import write_text_atomically

PAD, EOS, UNK = '<pad>', '</s>', '<unk>'
PAD_ID, EOS_ID, UNK_ID = 0, 1, 2
RESERVED = (PAD, EOS, UNK)


class Vocabulary(object):
    """A list of tokens; a token's id is its index.

    # Arguments
        tokens: the tokens after the reserved ones, in id order.
    """

    def __init__(self, tokens=()):
        tokens = list(tokens)
        reserved = [t for t in tokens if t in RESERVED]
        if reserved:
            raise ValueError('tokens must not hold the reserved tokens %s, got %s'
                             % (RESERVED, reserved))
        if len(set(tokens)) != len(tokens):
            raise ValueError('tokens must be distinct')
        self.tokens = list(RESERVED) + tokens
        self.ids = {token: i for i, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, sequences, min_count=1):
        """The vocabulary of an iterable of token sequences."""
        counts = collections.Counter(token for sequence in sequences for token in sequence)
        for token in RESERVED:
            counts.pop(token, None)
        kept = [token for token, count in counts.items() if count >= min_count]
        return cls(sorted(kept, key=lambda token: (-counts[token], token)))

    def __len__(self):
        return len(self.tokens)

    def __contains__(self, token):
        return token in self.ids

    def __eq__(self, other):
        return isinstance(other, Vocabulary) and self.tokens == other.tokens

    def __ne__(self, other):
        return not self == other

    def encode(self, tokens):
        """Token list -> id list; unknown tokens get UNK_ID."""
        return [self.ids.get(token, UNK_ID) for token in tokens]

    def unknown(self, tokens):
        """The tokens of a list that are not in the vocabulary."""
        return [token for token in tokens if token not in self.ids]

    def decode(self, ids, stop_at_eos=True):
        """Id sequence -> token list, without padding; stops at EOS."""
        tokens = []
        for i in ids:
            i = int(i)
            if i == EOS_ID and stop_at_eos:
                break
            if i in (PAD_ID, EOS_ID):
                continue
            if not 0 <= i < len(self.tokens):
                raise ValueError('id %d is outside the vocabulary (size %d)'
                                 % (i, len(self.tokens)))
            tokens.append(self.tokens[i])
        return tokens

    # -- files ----------------------------------------------------------------------
    def to_json(self):
        return {'tokens': self.tokens}

    @classmethod
    def from_json(cls, data):
        tokens = data.get('tokens') if isinstance(data, dict) else None
        if not isinstance(tokens, list) or tuple(tokens[:3]) != RESERVED:
            raise ValueError('a vocabulary is {"tokens": [%s, ...]}' % ', '.join(
                '"%s"' % t for t in RESERVED))
        return cls(tokens[3:])

    def save(self, path):
        """Write the vocabulary as JSON (to a temporary file, then renamed)."""
        write_text_atomically(path, json.dumps(self.to_json(), ensure_ascii=False, indent=0))

    @classmethod
    def load(cls, path):
        with io.open(path, encoding='utf-8') as f:
            try:
                data = json.load(f)
            except ValueError as error:
                raise ValueError('%s is not a vocabulary file: %s' % (path, error))
        try:
            return cls.from_json(data)
        except ValueError as error:
            raise ValueError('%s: %s' % (path, error))
