"""Files written so that a crash never leaves half of one.

Every file the package saves goes through `replaced_atomically` (or
`write_text_atomically`): written to a hidden temporary file in the same
folder, flushed, fsynced and renamed over the target, the folder fsynced;
a reader sees the old file or the new one, never a part.
"""
from __future__ import absolute_import

import contextlib
import errno
import io
import os
import re


class FileWriteError(OSError):
    """Writing `path` failed (disk full, folder gone, no permission): the
    file as it was before is untouched. Its message names `path`, the file
    the caller asked for, never the hidden temporary file."""

    def __init__(self, path, error):
        super(FileWriteError, self).__init__(getattr(error, 'errno', None) or errno.EIO,
                                             getattr(error, 'strerror', None) or str(error),
                                             path)
        self.path = path

    def __str__(self):
        return 'cannot write %s: %s' % (self.path, self.strerror)


def folder_problem(path):
    """Why a file `path` cannot be created (its folder is missing, not a
    folder or not writable), or None; checked before any work is done, so
    that a mistyped path costs nothing."""
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.isdir(path):
        return '%s is a folder, not a file' % path
    if not os.path.exists(folder):
        return 'cannot write %s: no such folder %s' % (path, folder)
    if not os.path.isdir(folder):
        return 'cannot write %s: %s is not a folder' % (path, folder)
    if not os.access(folder, os.W_OK | os.X_OK):
        return 'cannot write %s: no permission to write into %s' % (path, folder)
    return None


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
    except FileWriteError:
        raise
    except OSError as error:
        # h5py and matplotlib name the temporary file, which the caller
        # never heard of; the error names the file asked for.
        raise FileWriteError(path, error) from error
    finally:
        if os.path.exists(temporary):
            try:
                os.remove(temporary)
            except OSError:     # another error is on its way; the next run cleans up
                pass


def write_text_atomically(path, text):
    """Write `text` (UTF-8) to `path` through `replaced_atomically`."""
    with replaced_atomically(path) as temporary:
        with io.open(temporary, 'w', encoding='utf-8') as f:
            f.write(text)


TEMPORARY_NAME = re.compile(r'^\.(?P<name>.+)\.tmp(?P<pid>[0-9]+)$')


def _running(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:             # running, as another user
        return True
    return True


def remove_dead_temporaries(folder, names=None):
    """Delete the temporary files (`temporary_path`) in `folder` that
    processes no longer running left behind (killed while writing); those
    of running processes, and of this one, stay. `names`: only the
    temporaries of these file names (default: of every name)."""
    if os.name != 'posix':      # no cheap test of a PID elsewhere
        return
    for entry in os.listdir(folder):
        match = TEMPORARY_NAME.match(entry)
        if match is None or (names is not None and match.group('name') not in names):
            continue
        pid = int(match.group('pid'))
        if pid == os.getpid() or _running(pid):
            continue
        try:
            os.remove(os.path.join(folder, entry))
        except OSError:
            pass


class LockedError(OSError):
    """Another running process holds the lock."""


class FolderLock(object):
    """An exclusive lock on a folder, held by this process until `release`
    (or its end): `fcntl.flock` on the file `folder/name`, so the kernel
    drops the lock of a process that dies, even by SIGKILL, and a lock file
    left behind is harmless. The file holds the holder's PID, for the
    message of the process that is refused. A no-op without fcntl
    (Windows)."""

    def __init__(self, folder, name='.lock'):
        self.path = os.path.join(folder, name)
        self._file = None
        try:
            import fcntl
        except ImportError:
            return
        f = open(self.path, 'a+')
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            f.seek(0)
            holder = f.read().strip()
            f.close()
            if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise
            raise LockedError(errno.EAGAIN, 'locked by process %s' % (holder or '?'),
                              self.path)
        f.seek(0)
        f.truncate()
        f.write('%d\n' % os.getpid())
        f.flush()
        self._file = f

    def release(self):
        if self._file is not None:
            self._file.close()      # closing the file drops the flock
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()
