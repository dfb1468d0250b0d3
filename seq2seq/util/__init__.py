"""Plain-Python helpers every other folder may use: argument checks and
atomic file writes. Nothing here imports Keras or Theano."""
