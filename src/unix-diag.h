/* SPDX-License-Identifier: MIT */
#pragma once

#include <linux/unix_diag.h>
#include <stddef.h>
#include <stdint.h>

/* One attribute of one unix socket of our network namespace, by its
 * inode number, as sock_diag(7) tells it to anyone, unprivileged.
 *
 * Asks for show (UDIAG_SHOW_*) and copies the payload of the answer's
 * attribute type (UNIX_DIAG_*) to ret, at most size bytes. Returns the
 * number of bytes copied, 0 when the socket has no such attribute (the
 * kernel sends neither a name nor a file empty), or a negative errno:
 * -ENOENT when there is no such socket or no unix sock_diag in the
 * kernel, -EBADMSG for an answer that cannot be read. */
int unix_diag_attr(uint32_t ino, uint32_t show, uint16_t type, void *ret, size_t size);
