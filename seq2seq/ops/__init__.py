"""Theano Ops written in C, each with its numpy `perform` and gradient:
the fused LSTM (`fused_lstm`) and GRU (`fused_gru`), the fused softmax cross-entropy
(`fused_softmax`), the fused teacher-forced attention decoder
(`fused_attention`) and the fused attention search step (`fused_decode`);
`numpy_reference` holds their maths in numpy, `specs` the plain descriptions
of cells and decoders they read. Nothing here imports the layers."""
