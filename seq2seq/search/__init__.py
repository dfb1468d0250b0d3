"""Search over a trained decoder.

    numpy_search.py  greedy and beam search over any step function, numpy only
                     (importable without Keras or Theano)
    ensemble.py      several models as one (`Ensemble`, one model is an
                     ensemble of one): the combination rule of their
                     log-probabilities and the ensemble's stepper
    model_search.py  compiled step functions of a Keras model's decoder
                     (steppers) and `greedy_decode` / `beam_decode`

This file imports nothing, so that `seq2seq.search.numpy_search` needs numpy only.
"""
