/* SPDX-License-Identifier: MIT */
#pragma once

#include <sys/stat.h>

/* The file a unix socket is bound to: not simply the file at its address,
 * which anyone who may write its directory can remove and replace (with a
 * socket bound and not yet listening, that a stale socket probe takes for
 * a dead one). */

/* Whether st (of a file at a path) is the file unix socket fd is bound
 * to: 1 yes, 0 no (or fd is bound to none), a negative errno when the
 * kernel cannot tell (then it is none of ours to remove). */
int socket_file_is(int fd, const struct stat *st);
