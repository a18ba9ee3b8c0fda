/* SPDX-License-Identifier: MIT */
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>

#include "socket-file.h"
#include "unix-diag.h"
#include "util.h"

/* From <linux/un.h>, which clashes with glibc's <sys/un.h>. */
#ifndef SIOCUNIXFILE
#define SIOCUNIXFILE (SIOCPROTOPRIVATE + 0)
#endif

/* The socket's file as sock_diag(7) names it: the low 32 bits of its inode
 * number and the kernel's own encoding of its device (major << 20 | minor).
 * Unprivileged, unlike SIOCUNIXFILE; 32 bits are enough while the socket,
 * bound to its inode, keeps that number from being reused. */
static int diag_file_is(int fd, const struct stat *st) {
        struct stat sock;
        if (fstat(fd, &sock) < 0)
                return -errno;
        struct unix_diag_vfs v;
        int r = unix_diag_attr((uint32_t) sock.st_ino, UDIAG_SHOW_VFS, UNIX_DIAG_VFS, &v, sizeof v);
        if (r < 0)
                return r;
        if (r < (int) sizeof v)
                return 0; /* bound to no file */
        if (v.udiag_vfs_ino != (uint32_t) st->st_ino)
                return 0;
        /* The device is its file system's own, which stat(2) does not
         * always give: a btrfs subvolume's files, and overlayfs' over
         * layers of other file systems, show another. The same inode
         * number on another device cannot be told from the file, then. */
        if (v.udiag_vfs_dev >> 20 != major(st->st_dev) || (v.udiag_vfs_dev & 0xfffff) != minor(st->st_dev))
                return -EXDEV;
        return 1;
}

int socket_file_is(int fd, const struct stat *st) {
        /* Exact, and no more than an ioctl, but it asks for CAP_NET_ADMIN. */
        _cleanup_close_ int file = ioctl(fd, SIOCUNIXFILE);
        if (file >= 0) {
                struct stat f;
                if (fstat(file, &f) < 0)
                        return -errno;
                return f.st_dev == st->st_dev && f.st_ino == st->st_ino;
        }
        if (errno == ENOENT)
                return 0; /* bound to no file */
        return diag_file_is(fd, st);
}
