"""Old import path of `seq2seq._theano.cache_keys`, kept so that existing code works:
this name is the same module object."""
import importlib
import sys

sys.modules[__name__] = importlib.import_module('seq2seq._theano.cache_keys')
