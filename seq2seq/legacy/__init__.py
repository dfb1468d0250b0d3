"""The 2015 modules, as argument-order adapters over today's layers.

    lstm_encoder.py, lstm_decoder.py  LSTMEncoder, LSTMDecoder, LSTMDecoder2
                                      with the 2015 signatures
    stateful_rnn.py                   what those adapters share
    conversational.py                 Conversational: a Seq2seq with peek

Their old import paths (`seq2seq.lstm_encoder`, ...) still work
(`seq2seq.import_aliases`).
"""
