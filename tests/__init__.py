# Importing seq2seq first selects Keras' Theano backend for every test module.
import seq2seq  # noqa: F401
