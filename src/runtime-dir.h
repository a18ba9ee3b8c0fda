/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

/* The directory a handoff keeps its control socket (control-protocol.h) and private
 * notify directories (notify.h) in: the first entry of $RUNTIME_DIRECTORY
 * (systemd's RuntimeDirectory=; several are joined with ':'), else
 * /run/handoff for root, else $XDG_RUNTIME_DIR/handoff. Written to ret;
 * *ret_made_by_us says whether it is one of the last two, which handoff
 * creates (runtime_dir_make()) when missing. Returns 0, -ENOENT when there
 * is none to have, or -ENAMETOOLONG. Only the name: nothing is created or
 * checked. */
int runtime_dir_path(char *ret, size_t size, bool *ret_made_by_us);

/* Creates path, a runtime directory, when missing: /run/handoff 0755, as
 * systemd makes it, any other 0700. Returns 0 (made, or there already;
 * what is there is for the caller to check), or -errno. */
int runtime_dir_make(const char *path);

/* st (from lstat/fstat) is a directory of uid's that nobody else may write:
 * then nobody else can have bound one of uid's names first, or moved one of
 * its directories aside for theirs. handoff binds only in such a directory
 * of its own (geteuid()), and the client trusts only such a directory of
 * the handoff it asks. */
bool runtime_dir_private(const struct stat *st, uid_t uid);
