"""Theano Ops written in C: the fused LSTM (`fused_lstm`) and the fused
softmax cross-entropy (`fused_softmax`)."""
