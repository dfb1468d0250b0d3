"""The chit-chat dataset's reading and split (`seq2seq.datasets.chitchat`) on
a slice written here in the package's JSON layout, and `seq2seq chat` over a
run directory: a tiny model trained here to recall a name told two
messages earlier, so that the remembered state shows in its answers."""
import contextlib
import io
import json
import os
import random
import shutil
import sys
import tempfile
import unittest

import numpy as np
from nose.tools import assert_equal, assert_in, assert_true

from seq2seq.app import cli
from seq2seq.app.chat import EMPTY_ANSWER, RESET_LINE
from seq2seq.datasets import chitchat
from tests.helpers import assert_raises_with


# -- the dataset ------------------------------------------------------------------------
def _utterances(*texts):
    return [{'text': text, 'sender': 'sender_%d' % i, 'timestamp': '2018-01-01'}
            for i, text in enumerate(texts)]


def _conversation(*turns):
    """A conversation in dataset.json's layout: each turn a list of utterances."""
    return {'messages': [_utterances(*turn) for turn in turns], 'prompt': 'chat',
            'start': '2018-01-01', 'ratings': {}}


def _slice(n=45):
    """n conversations with ids 'c000' .. in a shuffled order (the file's
    order must not matter); conversation i has i % 4 + 1 messages, message
    t saying 'word<i> m<t>'."""
    ids = ['c%03d' % i for i in range(n)]
    random.Random(0).shuffle(ids)
    return dict((id_, _conversation(*[['word%d m%d' % (int(id_[1:]), t)]
                                      for t in range(int(id_[1:]) % 4 + 1)]))
                for id_ in ids)


def _write_json(folder, name, data):
    path = os.path.join(folder, name)
    with io.open(path, 'w', encoding='utf-8') as f:
        f.write(data if isinstance(data, str) else json.dumps(data))
    return path


@contextlib.contextmanager
def _folder():
    folder = tempfile.mkdtemp()
    try:
        yield folder
    finally:
        shutil.rmtree(folder)


def test_a_turn_is_the_utterances_of_one_person_joined_and_conversations_come_sorted():
    data = {'b': _conversation(['Hi!', 'How are you?'], ["I'm fine,", 'thanks :)'], ['Good.']),
            'a': _conversation(['Hello'])}
    with _folder() as folder:
        conversations = chitchat.load_chitchat(_write_json(folder, 'dataset.json', data))
    assert_equal([c.id for c in conversations], ['a', 'b'])
    assert_equal(conversations[1].messages,
                 ['Hi! How are you?', "I'm fine, thanks :)", 'Good.'])
    # A conversation of one message is kept; it has no exchange.
    assert_equal(chitchat.exchanges(conversations[0]), [])


def test_tokens_are_lower_case_words_and_the_marks():
    assert_equal(chitchat.tokenize("Hi!! I'm FINE, thanks :) 2 cats..."),
                 ['hi', '!', '!', "i'm", 'fine', ',', 'thanks', '2', 'cats', '.', '.', '.'])
    assert_equal(chitchat.tokenize(' :-) '), [])


def test_turn_t_answers_message_t_with_message_t_minus_1_as_its_source():
    conversation = chitchat.Conversation('x', ['Hi!', 'Hello, you.', 'Bye?'])
    assert_equal(chitchat.exchanges(conversation),
                 [(1, ['hi', '!'], ['hello', ',', 'you', '.']),
                  (2, ['hello', ',', 'you', '.'], ['bye', '?'])])


def test_split_by_the_rank_of_the_sorted_id_is_deterministic_and_disjoint():
    data = _slice(45)
    conversations = chitchat.parse_chitchat(data)
    parts = chitchat.split_chitchat(conversations)
    ids = sorted(data)
    assert_equal([c.id for c in parts['dev']], [ids[i] for i in range(45) if i % 20 == 0])
    assert_equal([c.id for c in parts['test']], [ids[i] for i in range(45) if i % 20 in (1, 2)])
    assert_equal(len(parts['train']), 45 - 3 - 6)
    names = dict((part, set(c.id for c in parts[part])) for part in parts)
    assert_equal(names['train'] & names['dev'] | names['train'] & names['test']
                 | names['dev'] & names['test'], set())
    assert_equal(names['train'] | names['dev'] | names['test'], set(ids))
    # The same split whatever order the conversations come in, and each
    # conversation keeps its messages.
    shuffled = list(conversations)
    random.Random(1).shuffle(shuffled)
    assert_equal(chitchat.split_chitchat(shuffled), parts)
    assert_equal(parts['dev'][1].messages, ['word20 m0'])
    assert_equal([turn for c in parts['test'] for turn, _, _ in chitchat.exchanges(c)],
                 [1, 1, 2, 1, 1, 2, 1, 1, 2])     # c001 c002 c021 c022 c041 c042


def test_the_vocabulary_ranks_words_by_count_then_alphabetically():
    conversations = [chitchat.Conversation('a', ['B a c b', 'c b d']),
                     chitchat.Conversation('b', ['e a!'])]
    # b 3, a 2, c 2, ! 1, d 1, e 1; the reserved tokens count among the size.
    vocab = chitchat.build_vocabulary(conversations, size=6)
    assert_equal(vocab.tokens, ['<pad>', '</s>', '<unk>', 'b', 'a', 'c'])
    assert_equal(chitchat.build_vocabulary(conversations, size=100).tokens[3:],
                 ['b', 'a', 'c', '!', 'd', 'e'])
    for size in (3, 2.5, True):
        assert_raises_with(ValueError, lambda: chitchat.build_vocabulary(conversations, size),
                           'size must be an int above 3', repr(size))


def test_bad_files_give_one_line_naming_the_file():
    with _folder() as folder:
        missing = os.path.join(folder, 'missing.json')
        cases = [
            (missing, [missing, 'no such file']),
            (_write_json(folder, 'cut.json', '{"a": {"messages":\n [[{"text": "x"'),
             ['cut.json', 'line 2', 'not JSON']),
            (_write_json(folder, 'list.json', [1, 2]),
             ['list.json', 'expected a JSON object {conversation id: conversation}, got list']),
            (_write_json(folder, 'nomessages.json', {'a': {'prompt': 'x'}}),
             ['nomessages.json', 'conversation a', 'a list "messages"']),
            (_write_json(folder, 'notext.json', {'k': {'messages': [_utterances('hi'),
                                                                    [{'sender': 's'}]]}}),
             ['notext.json', 'conversation k', 'messages[1] is not a list of utterances']),
        ]
        for path, words in cases:
            try:
                chitchat.load_chitchat(path)
            except ValueError as error:
                message = str(error)
            else:
                raise AssertionError('%s was read' % path)
            for word in words:
                assert_in(word, message)
            assert_true('\n' not in message, message)


# -- seq2seq chat -----------------------------------------------------------------------
NAMES = ['anna', 'bob', 'carl', 'dora']
INPUT_LENGTH, OUTPUT_LENGTH = 5, 3


def _name_conversation(name):
    """'my name is NAME', 'ok', 'who am i ?', 'NAME': the last answer needs
    the first message, two exchanges back."""
    return ['my name is %s' % name, 'ok', 'who am i ?', name]


def _train_name_model(run_dir):
    """A run directory as examples/chitchat.py train --way state writes it
    (model.h5, vocab.json, chat.json with feed_answers): every message is
    the source of the next, a window spans the whole conversation, the
    state carried over. About 10 s."""
    from keras.optimizers import Adam
    from seq2seq.models import conversation
    from seq2seq.training.seeding import set_seed
    from seq2seq.training.vocab import EOS_ID, PAD_ID, Vocabulary
    vocab = Vocabulary(['my', 'name', 'is', 'ok', 'who', 'am', 'i', '?'] + NAMES)
    sources, answers, lengths = [], [], []
    for name in NAMES * 8:
        words = [chitchat.tokenize(message) for message in _name_conversation(name)]
        for turn in range(1, len(words)):
            ids = vocab.encode(words[turn - 1])
            sources.append([0] * (INPUT_LENGTH - len(ids)) + ids)
            # As examples/chitchat.py: an answer cut to fit, then its end.
            answer = vocab.encode(words[turn])[:OUTPUT_LENGTH - 1] + [EOS_ID]
            answers.append(answer + [PAD_ID] * (OUTPUT_LENGTH - len(answer)))
        lengths.append(len(words) - 1)
    set_seed(0)
    model = conversation.conversation_model(
        vocab_size=len(vocab), input_length=INPUT_LENGTH, output_length=OUTPUT_LENGTH,
        embedding_dim=8, hidden_dim=16, window=3, batch_size=8, remember_state=True)
    model.compile(loss='sparse_categorical_crossentropy', optimizer=Adam(0.02),
                  sample_weight_mode='temporal')
    layout = conversation.ConversationLayout(lengths, 8, window=3)
    conversation.fit_conversations(model, layout, layout.arrange(np.array(sources, 'int32')),
                                   layout.arrange(np.array(answers, 'int32')[..., None]),
                                   epochs=60, verbose=0)
    os.makedirs(run_dir)
    model.save(os.path.join(run_dir, 'model.h5'))
    vocab.save(os.path.join(run_dir, 'vocab.json'))
    _write_json(run_dir, 'chat.json', {'format': 'seq2seq conversation model', 'version': 1,
                                       'source_length': INPUT_LENGTH,
                                       'tokens': 'chitchat words', 'feed_answers': True})
    return model, vocab


def chat(*argv, **kwargs):
    """(exit status, stdout, stderr) of `seq2seq chat argv` reading the
    lines kwargs['stdin']."""
    saved = sys.stdin, sys.stdout, sys.stderr
    sys.stdin = io.TextIOWrapper(io.BytesIO(kwargs.get('stdin', '').encode('utf-8')),
                                 encoding='utf-8')
    sys.stdout, sys.stderr = io.StringIO(), io.StringIO()
    try:
        status = cli.main(['chat'] + list(argv))
        return status, sys.stdout.getvalue(), sys.stderr.getvalue()
    finally:
        sys.stdin, sys.stdout, sys.stderr = saved


def test_converse_answers_each_message_line_and_says_what_it_does_instead():
    """The line handling of `converse`, over a stand-in that answers a
    message by its words reversed, or by nothing."""
    from seq2seq.app.chat import converse

    class Echo(object):
        tokenize = staticmethod(chitchat.tokenize)
        resets = 0

        def problems(self, words):
            return ['%d words' % len(words)] if len(words) > 2 else []

        def answer(self, text, beam_size, length_penalty):
            assert_equal((beam_size, length_penalty), (3, 0.5))
            return self.tokenize(text)[::-1], -1.0

        def reset(self):
            self.resets += 1

    echo, written, warnings = Echo(), [], []
    lines = [b'a b\n', b'\n', b'/reset\n', b'\xff\n', b' :) \n', u'c d e'.encode('utf-8')]
    converse(echo, iter(lines), written.append, warnings.append, beam_size=3,
             length_penalty=0.5)
    assert_equal(written, ['b a\n', RESET_LINE + '\n', EMPTY_ANSWER + '\n', 'e d c\n'])
    assert_equal(warnings, ['<stdin>, line 4: not UTF-8 text (byte 1: invalid start byte); '
                            'not answered', '<stdin>, line 6: 3 words'])
    assert_equal(echo.resets, 1)


class TestChat(unittest.TestCase):
    """One tiny name-recall model, trained once (about 10 s)."""

    @classmethod
    def setUpClass(cls):
        cls.folder = tempfile.mkdtemp()
        cls.run_dir = os.path.join(cls.folder, 'run')
        cls.model, cls.vocab = _train_name_model(cls.run_dir)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.folder)

    def script(self):
        """Each name told, then asked for; a /reset between conversations."""
        lines = []
        for name in NAMES:
            lines += ['/reset', 'My name is %s' % name.capitalize(), '', 'Who am I?']
        # Each question after a /reset ends its conversation: a conversation
        # that starts with it is not one the model was trained on. (Each name
        # is told at the start of a conversation, as in training: told after
        # a question, in a conversation longer than any trained on, the
        # answer depends on the last bits of the training run.)
        lines += ['/reset', 'my name is anna', '/reset', 'who am i ?', '/reset',
                  'my name is bob', '/reset', 'who am i ?']
        return ''.join(line + '\n' for line in lines[1:])

    def test_the_answer_comes_from_the_state_until_reset_greedy_and_beam_alike(self):
        outputs = {}
        for beam_size in ('1', '4'):
            status, out, err = chat('--model-dir', self.run_dir, '--beam-size', beam_size,
                                    stdin=self.script())
            assert_equal((status, err), (0, ''))
            outputs[beam_size] = out.splitlines()
        lines = outputs['1']
        # The same question gets each conversation's name: the state carried it
        # from two messages (the answer 'ok' read in between) back.
        expected = []
        for name in NAMES:
            expected += ['ok', name, RESET_LINE]
        assert_equal(lines[:len(expected) - 1], expected[:-1])
        # After /reset the name is gone: the answer is the same whichever
        # name was told before it, the answer of a new conversation.
        after_anna, after_bob = lines[-5], lines[-1]
        assert_equal(lines[-8:], [RESET_LINE, 'ok', RESET_LINE, after_anna, RESET_LINE, 'ok',
                                  RESET_LINE, after_bob])
        assert_equal(after_anna, after_bob)
        status, fresh, _ = chat('--model-dir', self.run_dir, stdin='who am i ?\n')
        assert_equal(fresh, after_anna + '\n')
        # The model is confident: the beam's best is the greedy answer.
        assert_equal(outputs['4'], lines)
        # What the model cannot read is named on stderr; the answer comes anyway.
        status, out, err = chat('--model-dir', self.run_dir, stdin='\nhello, Anna\n')
        assert_equal(err.splitlines(), ["seq2seq: warning: <stdin>, line 2: unknown word(s) "
                                        "',' 'hello' read as <unk>"])
        assert_equal((status, len(out.splitlines())), (0, 1))

    def test_a_context_source_joins_the_last_messages_as_the_training_did(self):
        from seq2seq.app.chat import Chat, read_run_settings
        from seq2seq.training.vocab import Vocabulary
        with _folder() as folder:
            for name in ('model.h5', 'vocab.json', 'chat.json'):
                shutil.copy(os.path.join(self.run_dir, name), folder)
            assert_equal(read_run_settings(folder)['context'], 1)
            _write_json(folder, 'config.json', {'way': 'context', 'context': 2,
                                                'input_length': 2})
            settings = read_run_settings(folder)
        assert_equal((settings['context'], settings['message_length'], settings['feed_answers']),
                     (2, 2, True))
        vocab = Vocabulary(self.vocab.tokens[3:] + ['<turn>'])
        session = Chat(self.model, vocab, chitchat.tokenize, context=2, message_length=2)
        ids = session.source([['anna'], ['my', 'name', 'is'], ['ok']])[0, 0]
        assert_equal(vocab.decode(ids), ['name', 'is', '<turn>', 'ok'])
        assert_equal(ids[0], 0)     # padded on the left
        assert_equal(vocab.decode(session.source([['who', 'am', 'i', '?', 'dora']])[0, 0]),
                     ['?', 'dora'])

    def test_the_state_after_an_exchange_has_read_the_message_and_the_answer(self):
        from seq2seq.app.chat import Chat
        from seq2seq.models.conversation import (get_hidden_state, one_exchange_model,
                                                 reset_hidden_state)
        session = Chat(self.model, self.vocab, chitchat.tokenize, feed_answers=True)
        answer, _ = session.answer('my name is dora')
        assert_equal(answer, ['ok'])
        # The same model, run over the message and then the answer as sources.
        reference = one_exchange_model(self.model, batch_size=1)
        reset_hidden_state(reference)
        for words in (['my', 'name', 'is', 'dora'], answer):
            reference.predict_on_batch(session.source([words]))
        expected = get_hidden_state(reference)[reference.layers[-2].name]
        got = get_hidden_state(session.chat_model)[session.chat_model.layers[-2].name]
        for expected_cell, got_cell in zip(expected, got):
            for e, g in zip(expected_cell, got_cell):
                np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)
        # Without the answer read, the state would be another one.
        reset_hidden_state(reference)
        reference.predict_on_batch(session.source([['my', 'name', 'is', 'dora']]))
        other = get_hidden_state(reference)[reference.layers[-2].name]
        assert_true(not np.allclose(other[0][0], got[0][0], atol=1e-3))
        session.reset()
        assert_true(not any(s.any() for cell in get_hidden_state(session.chat_model).values()
                            for states in cell for s in states))

    def test_an_answer_s_log_probability_is_the_model_s_and_beam_beats_greedy(self):
        """On an untrained model (many near-equal choices): every answer's
        log-probability is that of its tokens in `predict`'s softmax, and
        the beam's is at least greedy's (with readout feedback every
        hypothesis sees the same distributions, so greedy's path stays in
        the beam)."""
        from seq2seq.app.chat import Chat
        from seq2seq.models import conversation
        from seq2seq.training.seeding import set_seed
        from seq2seq.training.vocab import EOS_ID, PAD_ID
        set_seed(3)
        model = conversation.conversation_model(
            vocab_size=len(self.vocab), input_length=INPUT_LENGTH, output_length=6,
            embedding_dim=4, hidden_dim=8, window=1)
        session = Chat(model, self.vocab, chitchat.tokenize)
        assert_true(not session.stateful)
        better = 0
        for seed in range(12):
            words = [self.vocab.tokens[i] for i in
                     np.random.RandomState(seed).randint(3, len(self.vocab), size=4)]
            source = session.source([words])
            table = session.chat_model.predict_on_batch(source)[0, 0]    # (6, vocab)
            results = {}
            for beam_size in (1, 5):
                ids, log_prob = session.search(source, beam_size)
                assert_true(PAD_ID not in list(ids))
                assert_true(EOS_ID not in list(ids[:-1]))
                assert_true(ids[0] != EOS_ID)           # never an empty answer
                np.testing.assert_allclose(
                    log_prob, np.log(table[np.arange(len(ids)), ids]).sum(), rtol=1e-5)
                results[beam_size] = log_prob
            self.assertGreaterEqual(results[5], results[1] - 1e-9)
            better += results[5] > results[1] + 1e-6
        # The property is not vacuous: somewhere the beam found a better answer.
        assert_true(better > 0, 'beam and greedy always agreed')
        # Nor is the first word's: this model ranks the end mark first somewhere.
        first = [session.chat_model.predict_on_batch(session.source([[w]]))[0, 0, 0].argmax()
                 for w in self.vocab.tokens[3:]]
        assert_true(EOS_ID in first or PAD_ID in first, first)

    def test_a_bad_run_directory_or_option_is_one_line_naming_it(self):
        with _folder() as folder:
            missing = os.path.join(folder, 'missing')
            empty = os.path.join(folder, 'empty')
            os.makedirs(empty)
            other = os.path.join(folder, 'other')
            shutil.copytree(self.run_dir, other)
            _write_json(other, 'chat.json', {'format': 'seq2seq conversation model',
                                             'version': 1, 'source_length': INPUT_LENGTH,
                                             'tokens': 'characters'})
            broken = os.path.join(folder, 'broken')
            shutil.copytree(self.run_dir, broken)
            _write_json(broken, 'model.h5', 'not HDF5')
            small = os.path.join(folder, 'small')
            shutil.copytree(self.run_dir, small)
            _write_json(small, 'vocab.json', {'tokens': ['<pad>', '</s>', '<unk>', 'ok']})
            cases = [
                (['--model-dir', missing], [missing, 'no such run directory']),
                (['--model-dir', empty], [empty, 'no model.h5']),
                (['--model-dir', other], [os.path.join(other, 'chat.json'), '"tokens"',
                                          "'characters'"]),
                (['--model-dir', broken], [os.path.join(broken, 'model.h5'),
                                           'cannot load the model']),
                (['--model-dir', small], [os.path.join(small, 'vocab.json'), '4 words']),
                (['--model-dir', self.run_dir, '--beam-size', '0'], ['--beam-size']),
                (['--model-dir', self.run_dir, '--length-penalty', '-1'],
                 ['--length-penalty']),
            ]
            for argv, words in cases:
                status, out, err = chat(*argv, stdin='hello\n')
                assert_equal((status, out), (2, ''), argv)
                self.assertEqual(err.count('\n'), 1, err)
                for word in words:
                    assert_in(word, err)
