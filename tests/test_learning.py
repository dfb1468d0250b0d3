"""End to end: the 2015 README example runs verbatim and trains (a full-size
model: slow). The learning tests, each model reversing sequences to a stated
held-out accuracy, are in tests/test_model_learning.py."""
import numpy as np
from nose.plugins.attrib import attr


@attr('slow')
def test_seed_readme_example_runs_verbatim_and_trains():
    # The 2015 README example, verbatim:
    import keras  # noqa: F401
    from keras.models import Sequential
    from keras.layers.embeddings import Embedding
    from seq2seq import Seq2seq
    from keras.preprocessing import sequence  # noqa: F401

    vocab_size = 20000 #number of words
    maxlen = 100 #length of input sequence and output sequence
    embedding_dim = 200 #word embedding size
    hidden_dim = 500 #memory size of seq2seq

    embedding = Embedding(vocab_size, embedding_dim, input_length=maxlen)
    seq2seq = Seq2seq(input_length=maxlen, input_dim=embedding_dim,hidden_dim=hidden_dim,
                      output_dim=embedding_dim, output_length=maxlen, batch_size=10, depth=4)

    model = Sequential()
    model.add(embedding)
    model.add(seq2seq)
    # ... then it compiles and trains a batch.
    model.compile(loss='mse', optimizer='rmsprop')
    rng = np.random.RandomState(0)
    x = rng.randint(0, vocab_size, (10, maxlen))
    y = rng.uniform(-0.1, 0.1, (10, maxlen, embedding_dim))
    before = model.get_weights()
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    assert model.output_shape == (None, maxlen, embedding_dim)
    changed = [not np.array_equal(a, b) for a, b in zip(before, model.get_weights())]
    assert all(changed), 'some weights were not trained'
