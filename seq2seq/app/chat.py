"""A conversation with a trained conversation model (what `seq2seq chat` runs).

    chat = Chat.load('runs/chitchat/state')
    chat.answer('hi ! how are you ?', beam_size=5)   # (['i', "'m", 'good', ...], -4.2)
    chat.reset()                                      # a new conversation

A run directory (`examples/chitchat.py train --run-dir DIR` writes one):

    model.h5     a `seq2seq.models.conversation.conversation_model`, as trained
                 (its window of exchanges, its remembered state or not)
    vocab.json   its `Vocabulary`
    chat.json    {"format": "seq2seq conversation model", "version": 1,
                  "source_length": the ids the model reads per exchange,
                  "tokens": "chitchat words" (`seq2seq.datasets.chitchat.tokenize`),
                  "feed_answers": whether the model also reads its own answers}
    config.json  (examples/chitchat.py's settings) read for "way": "context"
                 only: chat.json does not say that such a model reads the last
                 "context" messages, each cut to its last "input_length" words,
                 joined by `TURN`

A directory of `examples/conversation.py` (model.h5 and vocab.json, no
chat.json) reads as its training made it: the same words, sources as long
as the model reads, answers not fed (its exchanges pair lines 2i and 2i + 1,
so an answer is never the next source).

How the state carries over, as the training defines it. A model trained
with state (a window of several exchanges, or `remember_state=True`) ran
one exchange after the other, each exchange reading one source and
starting from the states the previous one left (`ConversationWindow`):

    answer     greedy or beam search (`seq2seq.search.numpy_search`) over the
               step function of the one-exchange model (`get_stepper`,
               `ConversationWindow.decode_start`), from the remembered
               states, which it reads and leaves as they are;
    message    the model reads the user's message: the states move on to
               what `call` leaves after that exchange (the encoders' final
               states, and those of the LSTMs above the decoder, whose
               readout feedback does not depend on the tokens the search
               chose, so they are the same for any search);
    answer fed with "feed_answers" (examples/chitchat.py's `state` way,
               where message t - 1 is the source of turn t, so the model
               read every message of both speakers): the answer, as a
               source of the same length without its end mark, is read
               too, its own answer discarded; the user's next message then
               continues from there.

A model without state answers every message on its own (with `context`,
from the last messages, both speakers'). `reset` zeroes the states and
forgets the messages: a new conversation.
"""
from __future__ import absolute_import

import io
import json
import os

import numpy as np

from ..datasets import chitchat
from ..models.conversation import (ConversationWindow, one_exchange_model,
                                   reset_hidden_state)
from ..search.model_search import get_stepper
from ..search.numpy_search import beam_search, greedy_search
from ..training.vocab import EOS_ID, PAD_ID, Vocabulary
from .model_dir import ModelDirError, initial_weights_skipped

FORMAT = 'seq2seq conversation model'
FORMAT_VERSION = 1
MODEL, VOCAB, CHAT, RUN_CONFIG = 'model.h5', 'vocab.json', 'chat.json', 'config.json'
# The token examples/chitchat.py puts between the messages of a `context` source.
TURN = '<turn>'
TOKENIZERS = {'chitchat words': chitchat.tokenize}
RESET_COMMAND = '/reset'
# The chat's own lines, in parentheses.
RESET_LINE = '(new conversation: the state and the earlier messages are forgotten)'
EMPTY_ANSWER = '(an empty answer: the model ends it at once)'


def _read_json(path):
    try:
        with io.open(path, encoding='utf-8') as f:
            return json.load(f)
    except ValueError as error:
        raise ModelDirError('%s: not JSON (%s)' % (path, error))
    except (IOError, OSError) as error:
        raise ModelDirError('%s: cannot be read (%s)' % (path, error.strerror or error))


def read_run_settings(run_dir):
    """The settings of a run directory: {'source_length': int or None (the
    model's), 'tokens': a name of `TOKENIZERS`, 'feed_answers': bool,
    'context': messages per source, 'message_length': words kept of each}.
    ModelDirError (one line naming the directory or the file) for a
    directory or file that is missing or does not read."""
    if not os.path.isdir(run_dir):
        raise ModelDirError('%s: no such run directory' % run_dir)
    for name in (MODEL, VOCAB):
        if not os.path.isfile(os.path.join(run_dir, name)):
            raise ModelDirError('%s is not a run directory of a conversation model (no %s: '
                                'examples/chitchat.py train writes %s, %s and %s)'
                                % (run_dir, name, MODEL, VOCAB, CHAT))
    path = os.path.join(run_dir, CHAT)
    if not os.path.exists(path):
        # examples/conversation.py's directory: no chat.json.
        return {'source_length': None, 'tokens': 'chitchat words', 'feed_answers': False,
                'context': 1, 'message_length': None}
    chat = _read_json(path)
    if not isinstance(chat, dict) or chat.get('format') != FORMAT:
        raise ModelDirError('%s: not the settings of a conversation model (its "format" is '
                            'not %r)' % (path, FORMAT))
    if chat.get('version') != FORMAT_VERSION:
        raise ModelDirError('%s: version %r, this seq2seq reads version %d'
                            % (path, chat.get('version'), FORMAT_VERSION))
    length = chat.get('source_length')
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ModelDirError('%s: "source_length" must be a positive integer, got %r'
                            % (path, length))
    if chat.get('tokens') not in TOKENIZERS:
        raise ModelDirError('%s: "tokens" must be one of %s, got %r'
                            % (path, ', '.join(sorted(TOKENIZERS)), chat.get('tokens')))
    if not isinstance(chat.get('feed_answers', False), bool):
        raise ModelDirError('%s: "feed_answers" must be true or false, got %r'
                            % (path, chat.get('feed_answers')))
    settings = {'source_length': length, 'tokens': chat['tokens'],
                'feed_answers': chat.get('feed_answers', False), 'context': 1,
                'message_length': length}
    config_path = os.path.join(run_dir, RUN_CONFIG)
    config = _read_json(config_path) if os.path.exists(config_path) else {}
    if isinstance(config, dict) and config.get('way') == 'context':
        for key in ('context', 'input_length'):
            value = config.get(key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ModelDirError('%s: "way" is "context" but "%s" is %r, not a positive '
                                    'integer' % (config_path, key, value))
        settings.update(context=config['context'], message_length=config['input_length'])
    return settings


def _window_of(model, path):
    windows = [layer for layer in model.layers if isinstance(layer, ConversationWindow)]
    if len(windows) != 1:
        raise ModelDirError('%s: not a conversation model (it holds %d ConversationWindow '
                            'layers, expected one: seq2seq.models.conversation_model)'
                            % (path, len(windows)))
    return windows[0]


class Chat(object):
    """One conversation with a trained conversation model.

    # Arguments
        model: a `conversation_model` (its window of any size; the chat
            reads one exchange at a time with the same weights).
        vocab: the model's `Vocabulary` (ids in and out).
        tokenize: a function of a message's text giving its words.
        source_length: the ids per exchange (default: the model's input
            length); a source holds the last ones, padded on the left.
        feed_answers: the model also reads each answer as the next
            exchange's source (see the module doc).
        context: the messages of a source (the last ones, both speakers',
            joined by `TURN`); 1: the message alone.
        message_length: the words kept of each message of a context (the
            last ones; default source_length).

    # Attributes
        stateful: whether the model carries a state from message to message
            (trained with remember_state=True or a window of several
            exchanges).
        chat_model: the one-exchange model (`one_exchange_model`), batch 1,
            that holds that state.
    """

    def __init__(self, model, vocab, tokenize, source_length=None, feed_answers=False,
                 context=1, message_length=None):
        window = _window_of(model, model.name)
        self.vocab = vocab
        self.tokenize = tokenize
        self.stateful = bool(window.remember_state or window.window > 1)
        self.chat_model = one_exchange_model(model, batch_size=1, remember_state=self.stateful)
        model_length = int(self.chat_model.input_shape[2])     # (1, 1, length)
        self.source_length = model_length if source_length is None else int(source_length)
        if self.source_length != model_length:
            raise ValueError('source_length is %d but the model reads %d ids per exchange'
                             % (self.source_length, model_length))
        self.feed_answers = bool(feed_answers)
        self.context = int(context)
        self.message_length = int(message_length or self.source_length)
        if self.context > 1 and TURN not in vocab:
            raise ValueError('a context of %d messages joins them with %s, which the '
                             'vocabulary lacks' % (self.context, TURN))
        self.history = []       # the messages of the conversation so far, as words

    @classmethod
    def load(cls, run_dir):
        """The chat of a run directory (see the module doc). ModelDirError,
        one line naming the directory or the file, for one that does not
        read or whose model, vocabulary and settings disagree."""
        settings = read_run_settings(run_dir)
        vocab_path = os.path.join(run_dir, VOCAB)
        try:
            vocab = Vocabulary.load(vocab_path)
        except ValueError as error:     # names the file
            raise ModelDirError(str(error))
        except (IOError, OSError) as error:
            raise ModelDirError('%s: cannot be read (%s)' % (vocab_path, error.strerror or error))
        path = os.path.join(run_dir, MODEL)
        import keras
        try:
            with initial_weights_skipped():
                model = keras.models.load_model(path, compile=False)
        except Exception as error:  # h5py and Keras raise many kinds
            raise ModelDirError('%s: cannot load the model (%s: %s)'
                                % (path, type(error).__name__, str(error).split('\n')[0]))
        _window_of(model, path)
        # The ids the model reads (its embeddings) and writes (its softmax).
        vocab_sizes = set([int(model.output_shape[-1])] + [
            int(layer.input_dim) for layer in model.layers
            if layer.__class__.__name__ == 'Embedding'])
        if vocab_sizes != {len(vocab)}:
            raise ModelDirError('%s holds %d words but the model %s reads and writes %s: not '
                                'the vocabulary of this model' % (vocab_path, len(vocab), path,
                                                                   sorted(vocab_sizes)))
        try:
            return cls(model, vocab, TOKENIZERS[settings['tokens']],
                       source_length=settings['source_length'],
                       feed_answers=settings['feed_answers'], context=settings['context'],
                       message_length=settings['message_length'])
        except ValueError as error:
            raise ModelDirError('%s: %s' % (run_dir, error))

    # -- the sources -----------------------------------------------------------------
    def source(self, messages):
        """The ids (1, 1, source_length) of a source made of the last
        `context` of `messages` (word lists), as the training encoded its
        sources: each message's last message_length words, `TURN` between
        them, the last source_length ids, padded on the left."""
        ids = []
        for words in messages[-self.context:]:
            if ids:
                ids.append(self.vocab.ids[TURN])
            ids.extend(self.vocab.encode(words[-self.message_length:]))
        ids = ids[-self.source_length:]
        row = np.zeros((1, 1, self.source_length), dtype='int32')
        if ids:
            row[0, 0, self.source_length - len(ids):] = ids
        return row

    def problems(self, words):
        """What will be lost reading a message's words: a list of messages."""
        found = []
        unknown = self.vocab.unknown(words)
        if unknown:
            found.append('unknown word(s) %s read as %s'
                         % (' '.join(repr(w) for w in sorted(set(unknown))),
                            self.vocab.tokens[2]))
        if len(words) > self.message_length:
            found.append('%d words, the model reads the last %d'
                         % (len(words), self.message_length))
        return found

    # -- the conversation ------------------------------------------------------------
    def _read(self, source):
        """Move the remembered states on by one exchange reading `source`
        (the outputs are not needed: `predict` writes the states back)."""
        if self.stateful:
            self.chat_model.predict_on_batch(source)

    def search(self, source, beam_size=1, length_penalty=0.0):
        """(answer ids, ending with EOS unless output_length stopped them;
        their log-probability) to one source (1, 1, source_length), from
        the remembered states, which stay as they are. beam_size 1 is greedy
        search; a beam ranks by log-probability / ((5 + length) / 6) **
        length_penalty and returns its best.

        The answer never holds the padding id: the training's targets have
        it only after their EOS (a model trained on the padding too may rank
        it first anywhere), and an answer is the words before the EOS. Nor
        does it start with EOS: no turn of a conversation is empty, and a
        beam, which favours short hypotheses, would otherwise often answer
        nothing. Its log-probability is the model's, not renormalized
        without these: the probability of exactly these tokens, as the
        training's perplexity counts them."""
        stepper = get_stepper(self.chat_model)      # compiled once, kept on the model
        steps_taken = [0]

        def step_fn(tokens, states):
            log_probs, states = stepper.step_fn(tokens, states)
            log_probs = np.array(log_probs, dtype='float64')
            log_probs[:, PAD_ID] = -np.inf
            if steps_taken[0] == 0:
                log_probs[:, EOS_ID] = -np.inf
            steps_taken[0] += 1
            return log_probs, states

        initial = stepper.initial_states([source])
        if beam_size == 1:
            tokens, lengths, log_probs = greedy_search(step_fn, initial, stepper.output_length,
                                                       eos_id=EOS_ID)
            return tokens[0, :lengths[0]], float(log_probs[0])
        best = beam_search(step_fn, initial, beam_size, stepper.output_length, eos_id=EOS_ID,
                           length_penalty=length_penalty)[0][0]
        return best.tokens, best.log_prob

    def answer(self, text, beam_size=1, length_penalty=0.0):
        """(answer words, their log-probability under the model) to the
        message `text` (`search`), the conversation's state moved on past
        the message, and past the answer with feed_answers."""
        words = self.tokenize(text)
        self.history.append(words)
        source = self.source(self.history)
        ids, log_prob = self.search(source, beam_size, length_penalty)
        self._read(source)
        answer = self.vocab.decode(ids)
        self.history.append(answer)
        if self.feed_answers:
            self._read(self.source([answer]))
        del self.history[:-self.context]    # only what a next source reads
        return answer, float(log_prob)

    def reset(self):
        """A new conversation: the states zeroed, the messages forgotten."""
        reset_hidden_state(self.chat_model)
        self.history = []


def converse(chat, lines, write, warn, beam_size=1, length_penalty=0.0, name='<stdin>'):
    """Answer each message of `lines` (str, or bytes of UTF-8 text; one
    message each, read as they come: a person may be typing them), writing a line per answer with
    `write` (`EMPTY_ANSWER` for an answer without words); a line
    `RESET_COMMAND` starts a new conversation (`RESET_LINE` says so), a
    blank line is skipped. `warn` gets a line about each message
    whose words the model cannot read whole (as `seq2seq predict`'s)."""
    for number, line in enumerate(lines, 1):
        if isinstance(line, bytes):
            try:
                line = line.decode('utf-8')
            except UnicodeDecodeError as error:
                warn('%s, line %d: not UTF-8 text (byte %d: %s); not answered'
                     % (name, number, error.start + 1, error.reason))
                continue
        text = line.strip()
        if not text:
            continue
        if text == RESET_COMMAND:
            chat.reset()
            write(RESET_LINE + '\n')
            continue
        for problem in chat.problems(chat.tokenize(text)):
            warn('%s, line %d: %s' % (name, number, problem))
        words, _ = chat.answer(text, beam_size=beam_size, length_penalty=length_penalty)
        # A blank line would look like no answer at all. (No answer has
        # parentheses: its words are the vocabulary's, which tokenize made.)
        write(' '.join(words) + '\n' if words else EMPTY_ANSWER + '\n')
