"""What the package changes in Theano and Keras: backend selection, compile
cache keys, faster cold compiles and a graph fix. Internal: user code should
not need to import these modules."""
