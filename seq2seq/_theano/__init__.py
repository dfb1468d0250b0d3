"""What the package changes in Theano and Keras, behind one switchable door.

`install()` (run by `import seq2seq`) applies the patches registered below,
each switchable by name (see `seq2seq._theano.patches`):

    install()                                 # the defaults, from the environment
    install({'graph_fix': False})             # all but one
    install(['backend', 'cache_keys'])        # exactly these

`SEQ2SEQ_PATCH_THEANO=0` turns off every patch that changes Theano;
`SEQ2SEQ_PATCH_<NAME>=0|1` switches one. Importing this package does not
import Theano. Internal: user code should not need more than `install`.
"""
from __future__ import absolute_import

from . import backend, cache_keys, compile_speed, graph_fixes, keras_loss
from .patches import (AFTER_KERAS, BEFORE_KERAS, OPT_OUT_VARIABLE, PATCHES,  # noqa: F401
                      THEANO_VERSION, PatchSkippedWarning, enabled, install, register, status,
                      variable)

# One line per patch, in the order they are applied.
register('backend', backend.set_keras_backend_default, 'KERAS_BACKEND=theano when unset',
         stage=BEFORE_KERAS, changes_theano=False, theano_version=None)
register('default_flags', backend.apply_default_flags,
         'Theano flags: MKL blas.ldflags, gcc.cxxflags=-g0, allow_gc=False', stage=BEFORE_KERAS)
register('quiet', backend.quiet_theano_logs,
         "no 'Using Theano backend.' banner nor false MKL warning", stage=BEFORE_KERAS)
register('cache_keys', cache_keys.install_cache_keys,
         'compile-cache keys versioned and the same in every process')
register('compile_speed', compile_speed.install,
         'precompiled header and parallel g++ for cold compiles')
register('graph_fix', graph_fixes.install,
         'no second GEMM from local_dot22_to_dot22scalar')
register('keras_loss', keras_loss.install, "Keras' crossentropy on a softmax by the fused loss Op")
register('cold_notice', cache_keys.install_cold_notice,
         'one line on stderr before compiling into an empty cache')

