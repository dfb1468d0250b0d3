"""Real multi-turn dialogue: does a remembered state help a reply model?

    python examples/chitchat.py train --way none|state|context --run-dir DIR [options]
    python examples/chitchat.py report DIR [DIR ...]
    seq2seq chat --model-dir DIR [--beam-size K]        (a trained DIR, reads stdin)

The results and the commands that made them: examples/chitchat/README.md.

The data is PyPI's `chitchat-dataset` (0.9.0, MIT, ~40 MB, no dependencies;
`pip install chitchat-dataset==0.9.0`), read by `seq2seq.datasets.chitchat`:
7,168 two-person conversations, split by conversation (train / dev / test by
the rank of the conversation id modulo 20). Turn t is the exchange
(message t-1 -> message t). Every way trains the same model (Embedding,
`Seq2seq`, softmax over the words) on the same exchanges for the same number
of epochs, and differs only in what the model knows when it answers:

    none     the previous message alone (window of 1, no state);
    state    the previous message, and the state remembered across the
             conversation: windows of --window exchanges (`ConversationWindow`,
             back-propagation through the window), the state carried over from
             window to window (`fit_conversations`);
    context  the previous --context messages joined (with a `<turn>` token
             between them) as one longer source, no state.

`train` trains (resumable: the model is saved after every epoch; run the
same command again to continue), then measures the held-out (test split)
per-token perplexity of the answers (their first OUTPUT_LENGTH - 1 words
and the end mark), by turn position, each model run one exchange at a time
over whole conversations (with `state`, the state carried from turn to
turn, as in a chat). It writes DIR/results.json, and DIR/model.h5,
DIR/vocab.json and DIR/chat.json, which `seq2seq chat --model-dir DIR`
reads. `report` prints the table of several runs.
"""
from __future__ import print_function

import argparse
import io
import json
import math
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import seq2seq.models.conversation as conversation  # noqa: E402  (selects Keras' Theano backend)
from seq2seq.datasets import chitchat  # noqa: E402
from seq2seq.losses import masked_sparse_softmax_crossentropy  # noqa: E402
from seq2seq.training.vocab import EOS_ID, PAD_ID, Vocabulary  # noqa: E402
from seq2seq.util.files import write_text_atomically  # noqa: E402

WAYS = ('none', 'state', 'context')
TURN = '<turn>'                   # between the messages of a `context` source
BUCKETS = (('1', 1, 1), ('2', 2, 2), ('3-5', 3, 5), ('6+', 6, None))


def bucket_of(turn):
    for name, low, high in BUCKETS:
        if turn >= low and (high is None or turn <= high):
            return name


# -- data -------------------------------------------------------------------------------
def load_data(path=None):
    try:
        return chitchat.split_chitchat(chitchat.load_chitchat(path))
    except ImportError as error:
        raise SystemExit('this example reads the chitchat-dataset package (~40 MB): '
                         'pip install chitchat-dataset==0.9.0 (%s)' % error)


def subsample(conversations, n):
    """Every (len / n)-th conversation of at least one exchange (all when n
    is None), in order."""
    conversations = [c for c in conversations if len(c.messages) >= 2]
    if n is None or n >= len(conversations):
        return list(conversations)
    return [conversations[int(i * len(conversations) / n)] for i in range(n)]


def make_vocabulary(conversations, size):
    words = chitchat.build_vocabulary(conversations, size - 1)
    return Vocabulary(words.tokens[3:] + [TURN])


def right_aligned(ids, length):
    ids = ids[-length:]
    row = np.zeros(length, dtype='int32')
    if ids:
        row[length - len(ids):] = ids
    return row


def encode(conversations, vocab, config):
    """(sources (n, 1, source length), answers (n, 1, output length, 1),
    turns (n,), lengths: exchanges per conversation) of every exchange of
    `conversations` (the first max_turns of each) in order."""
    sources, answers, turns, lengths = [], [], [], []
    length, out = config['source_length'], config['output_length']
    for c in conversations:
        words = [chitchat.tokenize(m) for m in c.messages][:config['max_turns'] + 1]
        if len(words) < 2:
            continue
        for turn in range(1, len(words)):
            if config['way'] == 'context':
                ids = []
                for previous in words[max(0, turn - config['context']):turn]:
                    ids += ([vocab.ids[TURN]] if ids else []) + vocab.encode(
                        previous[-config['input_length']:])
            else:
                ids = vocab.encode(words[turn - 1])
            sources.append(right_aligned(ids, length))
            answer = vocab.encode(words[turn])[:out - 1] + [EOS_ID]
            answers.append(answer + [PAD_ID] * (out - len(answer)))
            turns.append(turn)
        lengths.append(len(words) - 1)
    return (np.array(sources, dtype='int32')[:, None],
            np.array(answers, dtype='int32')[:, None, :, None], np.array(turns), lengths)


# -- the model ----------------------------------------------------------------------------
def build(config, vocab_size):
    from keras.optimizers import Adam
    state = config['way'] == 'state'
    window = config['window'] if state else 1
    model = conversation.conversation_model(
        vocab_size=vocab_size, input_length=config['source_length'],
        output_length=config['output_length'], embedding_dim=config['embedding_dim'],
        hidden_dim=config['hidden_dim'], window=window,
        batch_size=config['exchanges_per_batch'] // window, remember_state=state)
    # The answers' real tokens only: trained on the padding after each end
    # mark too, a lightly trained model ranks padding first and answers
    # nothing. The perplexities count the same tokens.
    model.compile(loss=masked_sparse_softmax_crossentropy,
                  optimizer=Adam(config['learning_rate']), sample_weight_mode='temporal')
    return model


def laid_out(config, sources, answers, lengths):
    window = config['window'] if config['way'] == 'state' else 1
    layout = conversation.ConversationLayout(
        lengths, config['exchanges_per_batch'] // window, window=window)
    return layout, layout.arrange(sources[:, 0]), layout.arrange(answers[:, 0])


def perplexities(model, config, sources, answers, turns, lengths, batch_size=32,
                 carry_state=True):
    """{bucket: (perplexity, tokens)} of the answers, plus 'all': the model
    run one exchange at a time over whole conversations, row i of each
    batch continuing its conversation. With carry_state=False a `state`
    model's state is zeroed before every exchange: the same weights without
    what the state carries, which tells the state's part of a difference
    from the training's (windows, back-propagation through them)."""
    state = config['way'] == 'state'
    chat = conversation.one_exchange_model(model, batch_size=batch_size, remember_state=state)
    layout = conversation.ConversationLayout(lengths, batch_size)
    places = layout.exchange_index.reshape(layout.n_batches, batch_size)
    x = layout.arrange(sources)                                  # (samples, 1, length)
    log_likelihood = np.zeros(len(turns))
    counts = np.zeros(len(turns))
    for t in range(layout.n_batches):
        if carry_state:
            conversation.reset_hidden_state(chat, layout.resets[t])
        else:
            conversation.reset_hidden_state(chat)
        predicted = chat.predict_on_batch(x[t * batch_size:(t + 1) * batch_size])[:, 0]
        for row, exchange in enumerate(places[t]):
            if exchange < 0:
                continue
            target = answers[exchange, 0, :, 0]
            real = target != PAD_ID
            p = predicted[row][np.arange(len(target)), target][real]
            log_likelihood[exchange] = np.sum(np.log(np.maximum(p, 1e-12)))
            counts[exchange] = real.sum()
    result = {}
    for name in [b[0] for b in BUCKETS] + ['all']:
        chosen = np.array([name == 'all' or bucket_of(t) == name for t in turns])
        tokens = counts[chosen].sum()
        result[name] = [math.exp(-log_likelihood[chosen].sum() / tokens), int(tokens)]
    return result


# -- train -------------------------------------------------------------------------------
def save_model(model, path):
    temporary = path + '.tmp'
    model.save(temporary)
    os.replace(temporary, path)


def write_json(path, data):
    write_text_atomically(path, json.dumps(data, indent=1, sort_keys=True) + '\n')


def read_json(path):
    with io.open(path, encoding='utf-8') as f:
        return json.load(f)


def run_train(args):
    from seq2seq import load_model
    config = {'way': args.way, 'vocab_size': args.vocab_size, 'input_length': args.input_length,
              'output_length': args.output_length, 'context': args.context,
              'window': args.window, 'hidden_dim': args.hidden_dim,
              'embedding_dim': args.embedding_dim, 'exchanges_per_batch': args.exchanges_per_batch,
              'learning_rate': args.learning_rate, 'epochs': args.epochs,
              'train_conversations': args.train_conversations,
              'test_conversations': args.test_conversations, 'max_turns': args.max_turns,
              'seed': args.seed, 'loss': 'answer tokens'}
    config['source_length'] = (args.context * (args.input_length + 1) - 1
                               if args.way == 'context' else args.input_length)
    if args.exchanges_per_batch % args.window:
        raise SystemExit('--exchanges-per-batch must be a multiple of --window')
    os.makedirs(args.run_dir, exist_ok=True)
    config_path = os.path.join(args.run_dir, 'config.json')
    if os.path.exists(config_path) and read_json(config_path) != config:
        raise SystemExit('%s was trained with another configuration (%s): use another '
                         '--run-dir' % (args.run_dir, config_path))
    write_json(config_path, config)
    parts = load_data(args.data)
    train = subsample(parts['train'], args.train_conversations)
    test = subsample(parts['test'], args.test_conversations)
    vocab = make_vocabulary(parts['train'], args.vocab_size)
    vocab.save(os.path.join(args.run_dir, 'vocab.json'))
    sources, answers, turns, lengths = encode(train, vocab, config)
    print('%s: %d training conversations, %d exchanges, %d answer tokens; vocabulary %d'
          % (args.way, len(lengths), len(turns), int((answers != PAD_ID).sum()), len(vocab)))
    sys.stdout.flush()

    progress_path = os.path.join(args.run_dir, 'progress.json')
    last_path = os.path.join(args.run_dir, 'last.h5')
    progress = {'epochs': 0, 'train_seconds': 0.0, 'losses': []}
    np.random.seed(args.seed)
    if os.path.exists(progress_path) and os.path.exists(last_path):
        progress = read_json(progress_path)
        model = load_model(last_path)
        print('resuming after epoch %d' % progress['epochs'])
    else:
        model = build(config, len(vocab))
    layout, x, y = laid_out(config, sources, answers, lengths)
    model._make_train_function()        # compiled before the clock starts
    while progress['epochs'] < args.epochs:
        start = time.time()
        history = conversation.fit_conversations(model, layout, x, y, epochs=1,
                                                 verbose=2 if args.quiet else 1)
        progress['train_seconds'] += time.time() - start
        progress['epochs'] += 1
        progress['losses'].append(float(history.history['loss'][-1]))
        save_model(model, last_path)
        write_json(progress_path, progress)
        print('epoch %d: loss %.4f, %.0f s of training so far'
              % (progress['epochs'], progress['losses'][-1], progress['train_seconds']))
        sys.stdout.flush()

    save_model(model, os.path.join(args.run_dir, 'model.h5'))
    write_json(os.path.join(args.run_dir, 'chat.json'), {
        'format': 'seq2seq conversation model', 'version': 1,
        'source_length': config['source_length'], 'tokens': 'chitchat words',
        'feed_answers': args.way == 'state'})
    test_data = encode(test, vocab, config)
    start = time.time()
    table = perplexities(model, config, *test_data)
    results = {'config': config, 'perplexity': table,
               'train_seconds': progress['train_seconds'],
               'train_answer_tokens_per_epoch': int((answers != PAD_ID).sum()),
               'train_exchanges_per_epoch': len(turns),
               'test_conversations': len(test_data[3]), 'test_exchanges': len(test_data[2]),
               'evaluate_seconds': time.time() - start}
    results['train_seconds_per_1k_tokens'] = 1000 * progress['train_seconds'] / (
        results['train_answer_tokens_per_epoch'] * progress['epochs'])
    if config['way'] == 'state':
        results['perplexity_state_zeroed'] = perplexities(model, config, *test_data,
                                                          carry_state=False)
    write_json(os.path.join(args.run_dir, 'results.json'), results)
    print(report([results]))
    return results


def report(results):
    lines = ['| way | ' + ' | '.join('turn %s' % b[0] for b in BUCKETS)
             + ' | all | training time | s per 1k answer tokens |',
             '|---|' + '---|' * (len(BUCKETS) + 3)]
    for r in results:
        table = r['perplexity']
        lines.append('| %s | %s | %.2f | %.0f s | %.3f |' % (
            r['config']['way'], ' | '.join('%.2f' % table[b[0]][0] for b in BUCKETS),
            table['all'][0], r['train_seconds'], r['train_seconds_per_1k_tokens']))
        zeroed = r.get('perplexity_state_zeroed')
        if zeroed:
            lines.append('| state, zeroed before every exchange | %s | %.2f | | |' % (
                ' | '.join('%.2f' % zeroed[b[0]][0] for b in BUCKETS), zeroed['all'][0]))
    first = results[0]['perplexity']
    lines.append('| (answer tokens) | %s | %d | | |' % (
        ' | '.join('%d' % first[b[0]][1] for b in BUCKETS), first['all'][1]))
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    commands = parser.add_subparsers(dest='command')
    train = commands.add_parser('train')
    train.add_argument('--way', choices=WAYS, required=True)
    train.add_argument('--run-dir', required=True)
    train.add_argument('--data', help='a chit-chat dataset.json (default: the installed '
                                      'chitchat-dataset package\'s)')
    train.add_argument('--epochs', type=int, default=2)
    train.add_argument('--train-conversations', type=int, default=None)
    train.add_argument('--test-conversations', type=int, default=None)
    train.add_argument('--max-turns', type=int, default=30)
    train.add_argument('--vocab-size', type=int, default=8000)
    train.add_argument('--input-length', type=int, default=20)
    train.add_argument('--output-length', type=int, default=20)
    train.add_argument('--context', type=int, default=3)
    train.add_argument('--window', type=int, default=4)
    train.add_argument('--hidden-dim', type=int, default=128)
    train.add_argument('--embedding-dim', type=int, default=64)
    train.add_argument('--exchanges-per-batch', type=int, default=64)
    train.add_argument('--learning-rate', type=float, default=0.002)
    train.add_argument('--seed', type=int, default=0)
    train.add_argument('--quiet', action='store_true')
    show = commands.add_parser('report')
    show.add_argument('run_dirs', nargs='+')
    args = parser.parse_args(argv)
    if args.command == 'train':
        run_train(args)
    elif args.command == 'report':
        print(report([read_json(os.path.join(d, 'results.json')) for d in args.run_dirs]))
    else:
        parser.error('give a command: train or report')
    return 0


if __name__ == '__main__':
    sys.exit(main())
