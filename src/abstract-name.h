/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

/* Binds the unix socket fd to an abstract name: prefix and 16 hex digits of
 * random_u64(). Anyone in the network namespace may bind a name first (a
 * guess, where random_u64() had only its fallback): one taken is given up
 * for another, a few times. ret_name (size bytes) gets "@" and the name.
 * Returns 0, or -errno (-EADDRINUSE when every name tried was taken). */
int abstract_name_bind(int fd, const char *prefix, char *ret_name, size_t size);
