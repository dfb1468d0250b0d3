"""Files written so that a crash never leaves half of one.

Every file the package saves goes through `replaced_atomically` (or
`write_text_atomically`): written to a hidden temporary file in the same
folder, flushed, fsynced and renamed over the target, the folder fsynced;
a reader sees the old file or the new one, never a part.
"""
from __future__ import absolute_import

import contextlib
import io
import os


def temporary_path(path):
    """The temporary file `path` is written to before the rename: in the
    same folder (a rename across file systems is not atomic), hidden, and
    named after the process, so it is never taken for the file itself."""
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.join(folder, '.%s.tmp%d' % (os.path.basename(path), os.getpid()))


def fsync_folder(folder):
    """Make a rename in `folder` durable (a no-op where folders cannot be
    opened, e.g. on Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def fsync_file(path):
    """Flush a written file's data to the disk."""
    with open(path, 'rb+') as f:
        os.fsync(f.fileno())


@contextlib.contextmanager
def replaced_atomically(path):
    """Yields a temporary path in `path`'s folder to write the new file to.
    When the block ends without an error, the file is fsynced and renamed
    over `path` (and the folder fsynced), so a reader never sees half a file
    and a crash leaves the old file or the new one; the temporary file is
    removed in any case."""
    temporary = temporary_path(path)
    try:
        yield temporary
        fsync_file(temporary)
        os.replace(temporary, path)
        fsync_folder(os.path.dirname(os.path.abspath(path)))
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_text_atomically(path, text):
    """Write `text` (UTF-8) to `path` through `replaced_atomically`."""
    with replaced_atomically(path) as temporary:
        with io.open(temporary, 'w', encoding='utf-8') as f:
            f.write(text)
