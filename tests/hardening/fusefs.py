"""A FUSE file system for the hardening tests: one regular file, "f", whose
server (a thread of the test) answers every request but FUSE_POLL, which it
holds until stop(), and with hold_getattr, FUSE_GETATTR of "f" once it has
been opened; with hold_lookup, every FUSE_LOOKUP; with hold_flush, every
FUSE_FLUSH. A poll of the open file (an epoll_ctl() that adds it), an
fstat() of it (its attributes are never cached), a path through the mount,
or a close() of any fd of the file (each one flushes, not only the last),
waits in the kernel for that answer, in whichever process asks (once the
server has read a request, not even SIGKILL ends the wait). With
allow_other, other uids may open "f" too. Needs root and /dev/fuse;
HangingPollFs() raises OSError where the mount is refused."""

import ctypes
import errno
import os
import struct
import threading

FUSE_LOOKUP, FUSE_GETATTR, FUSE_OPEN, FUSE_RELEASE, FUSE_FLUSH, FUSE_INIT, FUSE_POLL = 1, 3, 14, 18, 25, 26, 40
# A lookup held does not hold the others of its directory (the kernel
# otherwise takes them one at a time).
FUSE_PARALLEL_DIROPS = 1 << 18
IN_HEADER = struct.Struct("<IIQQIIIHH")


def attr(ino, mode):
    # fuse_attr: ino size blocks atime mtime ctime, 3 nsecs, mode nlink uid gid rdev blksize flags
    return struct.pack("<QQQQQQIIIIIIIIII", ino, 0, 0, 0, 0, 0, 0, 0, 0, mode, 1, 0, 0, 0, 4096, 0)


class HangingPollFs:
    def __init__(self, mountpoint, hold_getattr=False, hold_lookup=False, hold_flush=False, allow_other=False):
        self.mountpoint = mountpoint
        self.hold_getattr = hold_getattr
        self.hold_lookup = hold_lookup
        self.hold_flush = hold_flush
        self.opened = False
        self.polls = []  # the unique ids of the requests held unanswered
        self.getattrs = []
        self.lookups = []
        self.flushes = []
        self.flushers = []  # the thread ids that sent them
        self.fd = os.open("/dev/fuse", os.O_RDWR | os.O_CLOEXEC)
        libc = ctypes.CDLL(None, use_errno=True)
        opts = f"fd={self.fd},rootmode=40000,user_id=0,group_id=0{',allow_other' if allow_other else ''}".encode()
        if libc.mount(b"hangfs", mountpoint.encode(), b"fuse.hangfs", 0, opts) < 0:
            e = ctypes.get_errno()
            os.close(self.fd)
            raise OSError(e, os.strerror(e))
        self.libc = libc
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def reply(self, unique, payload=b"", error=0):
        os.write(self.fd, struct.pack("<IiQ", 16 + len(payload), -error, unique) + payload)

    def serve(self):
        while True:
            try:
                req = os.read(self.fd, 1 << 20)
            except OSError:
                return  # aborted, unmounted
            _, op, unique, node, _, _, tid, *_ = IN_HEADER.unpack_from(req)
            try:
                if op == FUSE_INIT:
                    self.reply(unique, struct.pack("<IIIIHHIIHHII24x", 7, 31, 0, FUSE_PARALLEL_DIROPS, 1, 1, 4096, 1, 1, 0,
                                                  0, 0))
                elif op == FUSE_LOOKUP and self.hold_lookup:
                    self.lookups.append(unique)  # not answered until stop()
                elif op == FUSE_LOOKUP:
                    if req[IN_HEADER.size:].rstrip(b"\0") == b"f":
                        self.reply(unique, struct.pack("<QQQQII", 2, 0, 0, 0, 0, 0) + attr(2, 0o100644))
                    else:
                        self.reply(unique, error=errno.ENOENT)
                elif op == FUSE_GETATTR and node == 2 and self.hold_getattr and self.opened:
                    self.getattrs.append(unique)  # not answered until stop()
                elif op == FUSE_GETATTR:
                    self.reply(unique, struct.pack("<QII", 0, 0, 0) + attr(node, 0o40755 if node == 1 else 0o100644))
                elif op == FUSE_OPEN:
                    self.reply(unique, struct.pack("<QII", 1, 0, 0))
                    self.opened = True
                elif op == FUSE_FLUSH and self.hold_flush:
                    self.flushes.append(unique)  # not answered until stop()
                    self.flushers.append(tid)
                elif op in (FUSE_FLUSH, FUSE_RELEASE):
                    self.reply(unique)
                elif op == FUSE_POLL:
                    self.polls.append(unique)  # not answered until stop()
                else:
                    self.reply(unique, error=errno.ENOSYS)
            except OSError:
                pass  # the request was interrupted meanwhile

    def stop(self):
        """The requests held are answered (ENOSYS: the kernel asks no
        more; a lookup, ENOENT), and the file system is unmounted (once its
        files are closed)."""
        self.hold_getattr = self.hold_lookup = self.hold_flush = False
        for unique in self.polls + self.getattrs + self.flushes:
            try:
                self.reply(unique, error=errno.ENOSYS)
            except OSError:
                pass
        for unique in self.lookups:
            try:
                self.reply(unique, error=errno.ENOENT)
            except OSError:
                pass
        self.libc.umount2(self.mountpoint.encode(), 2)  # MNT_DETACH
