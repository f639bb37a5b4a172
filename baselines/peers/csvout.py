"""csvout.py: where -o points decides how the results file is written, as chela-bench's
-o (harness/csv_write.c):

  - nothing there yet, or a regular file: a temp file beside it (O_EXCL, so nothing
    already at the temp name is followed or reused), one flushed line a row, renamed
    onto the target on close; a reader never sees half a file, and a replaced file
    keeps its permission bits;
  - a symbolic link: followed, and its target handled as above (the link stays);
  - a FIFO or a character device (/dev/null, /dev/stdout): written through, never
    renamed over; a FIFO nobody reads is refused rather than waited on;
  - a directory, a block device, a socket, a dangling link: refused.

check_target() says why a path is refused before anything runs; Writer does the rest.
Pure Python: no torch.
"""

import errno
import os
import stat

import csvrow


class OutputError(OSError):
    """The results file cannot be written; str() is the one-line reason."""


def _resolve(path):
    """(path to write, its stat mode or 0 when nothing is there) or OutputError."""
    try:
        lst = os.lstat(path)
    except FileNotFoundError:
        return path, 0
    except OSError as e:
        raise OutputError("cannot write results to '%s': %s" % (path, e.strerror)) from None
    target = path
    if stat.S_ISLNK(lst.st_mode):
        target = os.path.realpath(path)
        try:
            mode = os.stat(target).st_mode
        except OSError:
            raise OutputError("cannot write results to '%s': a symbolic link to nothing that exists"
                              % path) from None
    else:
        mode = lst.st_mode
    return target, mode


def check_target(path):
    """Raises OutputError when -o names something that will not be written (a
    directory, a block device, a socket, a dangling link)."""
    if not path:
        raise OutputError("-o needs a file name")
    _, mode = _resolve(path)
    if stat.S_ISDIR(mode):
        raise OutputError("cannot write results to '%s': is a directory" % path)
    if stat.S_ISBLK(mode) or stat.S_ISSOCK(mode):
        raise OutputError("cannot write results to '%s': not a regular file, FIFO or character device"
                          % path)


class Writer:
    """The header at once; write(row) a flushed line; close() renames; abort() removes."""

    def __init__(self, path):
        check_target(path)
        self.path = path
        self.target, mode = _resolve(path)
        self.through = stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)
        self.tmp = None
        self.error = None
        try:
            if self.through:
                fd = os.open(self.target, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
                os.set_blocking(fd, True)
            else:
                self.tmp = "%s.tmp.%d" % (self.target, os.getpid())
                fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
                if stat.S_ISREG(mode):
                    os.fchmod(fd, stat.S_IMODE(mode))
        except OSError as e:
            why = "a FIFO nobody is reading" if e.errno == errno.ENXIO else e.strerror
            raise OutputError("cannot write results to '%s': %s" % (path, why)) from None
        self.f = os.fdopen(fd, "w", encoding="utf-8", newline="\n")
        self._line(csvrow.header())
        if self.error:
            why = self.error
            self.abort()
            raise OutputError("cannot write results to '%s': %s" % (path, why))

    def _line(self, text):
        if self.error:
            return False
        try:
            self.f.write(text + "\n")
            self.f.flush()
            return True
        except OSError as e:
            self.error = e.strerror or str(e)
            return False

    def write(self, row):
        """True, or False once a write failed (every later row is refused too)."""
        return self._line(csvrow.format_row(row))

    def close(self):
        """Renames the temp file onto the target; OutputError naming the first failed
        write's cause (the temp file is then removed)."""
        try:
            self.f.close()
        except OSError as e:
            self.error = self.error or e.strerror or str(e)
        if self.error:
            self._unlink()
            raise OutputError("cannot write results to '%s': %s" % (self.path, self.error))
        if self.tmp:
            try:
                os.rename(self.tmp, self.target)
            except OSError as e:
                self._unlink()
                raise OutputError("cannot rename '%s' to '%s': %s" % (self.tmp, self.target, e.strerror)) from None
            self.tmp = None

    def abort(self):
        """Closes and removes the temp file: nothing is left behind."""
        try:
            self.f.close()
        except OSError:
            pass
        self._unlink()

    def _unlink(self):
        if self.tmp:
            try:
                os.unlink(self.tmp)
            except OSError:
                pass
            self.tmp = None
