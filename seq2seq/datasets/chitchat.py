"""The Chit-Chat Challenge dataset (BYU PCC lab): real multi-turn dialogues.

The data is the `dataset.json` file of the PyPI package `chitchat-dataset`
(0.9.0, MIT, about 40 MB; `pip install chitchat-dataset==0.9.0`, it has no
dependencies): 7,168 conversations between two people, 138,737 turns,
258,145 utterances. Its structure:

    {"<conversation id>": {
        "messages": [                       # the turns, speakers alternating
            [{"text": "...", "sender": "<id>", "timestamp": "..."}, ...],
            ...],                           # a turn: the utterances one person
        "prompt": "...", "start": "...", "ratings": {...}}, ...}

Preprocessing (`load_chitchat`): the utterances of a turn are joined with a
space into one message; a conversation is its list of messages. Turn t
(t >= 1) is the exchange (message t-1 -> message t): every message after the
first is the answer to the one before it (`exchanges`), so a conversation of
n messages has n - 1 exchanges and its turn positions are 1 .. n - 1.

The split (`split_chitchat`) is by conversation, so no conversation is in
two sets: sort the conversation ids, number them from 0; `i % 20 == 0` goes
to dev, `i % 20 in (1, 2)` to test, the rest to train (the rule of
`seq2seq.datasets.cmudict`). On 0.9.0: 6,091 train, 359 dev and 718 test
conversations.

Words (`tokenize`): lower case, runs of letters, digits and apostrophes,
and the punctuation marks ? . ! , as tokens of their own. The vocabulary
(`build_vocabulary`) keeps the most frequent words of the training
conversations (ties in sorted order); the others read as `<unk>`.
"""
from __future__ import absolute_import

import collections
import io
import json
import os
import re

from ..training.vocab import RESERVED, Vocabulary

WORD = re.compile(r"[a-z0-9']+|[?.!,]")

Conversation = collections.namedtuple('Conversation', ['id', 'messages'])
Conversation.__doc__ = """One dialogue: its id in the file and its messages
(str, one per turn, the speakers alternating)."""


def chitchat_path():
    """Path of the `dataset.json` of the installed `chitchat-dataset` package."""
    try:
        import chitchat_dataset
    except ImportError:
        raise ImportError('the chit-chat data comes from the PyPI package chitchat-dataset: '
                          'pip install chitchat-dataset==0.9.0')
    return os.path.join(os.path.dirname(os.path.abspath(chitchat_dataset.__file__)),
                        'dataset.json')


def _problem(path, where, what):
    return ValueError('%s: conversation %s: %s' % (path, where, what))


def parse_chitchat(data, path='<data>'):
    """The conversations of the decoded JSON `data` (the structure above),
    sorted by id; conversations with fewer than 2 messages are kept (they
    have no exchange). A ValueError names the file and the conversation of
    anything laid out otherwise."""
    if not isinstance(data, dict):
        raise ValueError('%s: expected a JSON object {conversation id: conversation}, got %s'
                         % (path, type(data).__name__))
    conversations = []
    for conversation_id in sorted(data):
        entry = data[conversation_id]
        messages = entry.get('messages') if isinstance(entry, dict) else None
        if not isinstance(messages, list):
            raise _problem(path, conversation_id, 'expected an object with a list "messages"')
        texts = []
        for i, message in enumerate(messages):
            if not isinstance(message, list) or not all(
                    isinstance(u, dict) and isinstance(u.get('text'), str) for u in message):
                raise _problem(path, conversation_id, 'messages[%d] is not a list of '
                               'utterances {"text": str, ...}' % i)
            texts.append(' '.join(u['text'] for u in message))
        conversations.append(Conversation(conversation_id, texts))
    return conversations


def load_chitchat(path=None):
    """The conversations of a chit-chat `dataset.json` (default: the
    installed package's), sorted by id. A file that is missing or not JSON
    is a ValueError naming it (and the line of a JSON error)."""
    path = chitchat_path() if path is None else path
    if not os.path.isfile(path):
        raise ValueError('%s: no such file (the chit-chat dataset.json)' % path)
    with io.open(path, encoding='utf-8') as f:
        try:
            data = json.load(f)
        except ValueError as error:
            raise ValueError('%s: line %s: not JSON (%s)'
                             % (path, getattr(error, 'lineno', '?'),
                                getattr(error, 'msg', error)))
    return parse_chitchat(data, path)


def split_chitchat(conversations):
    """{'train', 'dev', 'test'}: lists of conversations, split by the rank
    i of the conversation id in sorted order: i % 20 == 0 dev, i % 20 in
    (1, 2) test, the rest train."""
    parts = {'train': [], 'dev': [], 'test': []}
    for i, conversation in enumerate(sorted(conversations, key=lambda c: c.id)):
        part = 'dev' if i % 20 == 0 else 'test' if i % 20 in (1, 2) else 'train'
        parts[part].append(conversation)
    return parts


def tokenize(text):
    """Lower-cased words and the marks ? . ! , of a message."""
    return WORD.findall(text.lower())


def exchanges(conversation):
    """[(turn, source words, answer words)] for turns 1 .. n - 1: the
    answer is message `turn`, the source the message before it."""
    words = [tokenize(message) for message in conversation.messages]
    return [(turn, words[turn - 1], words[turn]) for turn in range(1, len(words))]


def build_vocabulary(conversations, size=8000):
    """The `size` most frequent words of `conversations` (the reserved
    `<pad>`, `</s>`, `<unk>` included in the count), as a `Vocabulary`."""
    if isinstance(size, bool) or not isinstance(size, int) or size <= len(RESERVED):
        raise ValueError('size must be an int above %d, got %r' % (len(RESERVED), size))
    counts = collections.Counter(word for conversation in conversations
                                 for message in conversation.messages
                                 for word in tokenize(message))
    for token in RESERVED:
        counts.pop(token, None)
    ranked = sorted(counts, key=lambda word: (-counts[word], word))
    return Vocabulary(ranked[:size - len(RESERVED)])
