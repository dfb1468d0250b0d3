"""Benchmarks of the Seq2seq layer against Keras' LSTMs and PyTorch.

Run them with `make bench` or `python -m benchmarks --help`; see README.md.
"""
