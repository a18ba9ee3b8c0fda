/* SPDX-License-Identifier: MIT */
#pragma once

/* A generation's cgroup and the cgroups its server made below it (a
 * container runtime, workers moved into cgroups of their own), walked as
 * systemd walks a unit's subtree (cg_kill_recursive(), cg_trim()): depth
 * first, at most CGROUP_WALK_MAX_DEPTH levels below the top and
 * CGROUP_WALK_MAX_DIRS directories in all, so that a runaway tree costs the
 * event loop a bounded number of small reads. To the walk they are plain
 * directories; the visitor reads or removes what it needs. */

#define CGROUP_WALK_MAX_DEPTH 32
#define CGROUP_WALK_MAX_DIRS 1024
/* Every path visited leaves room for a file name this long after it. */
#define CGROUP_WALK_FILE_MAX 32

typedef enum CgroupWalkOrder {
        CGROUP_WALK_PARENTS_FIRST,  /* to signal or count */
        CGROUP_WALK_CHILDREN_FIRST, /* to remove: rmdir() wants the children gone */
} CgroupWalkOrder;

/* Calls visit() with the path of top and of each directory below it
 * (symlinks are not followed). A directory that vanishes meanwhile (removed
 * by its owner) is no error: there is nothing below it to visit. Returns 0,
 * or -E2BIG when a bound (or a directory that could not be opened for
 * another reason than being gone) left part of the tree unvisited. */
int cgroup_walk(const char *top, CgroupWalkOrder order, void (*visit)(const char *path, void *userdata),
                void *userdata);

/* Whether a process runs in top or in any cgroup below it: top's
 * cgroup.events says "populated 1" then, kept by the kernel for the whole
 * subtree. 1 when populated, 0 when it says "populated 0" or top is gone
 * (ENOENT), -errno when it cannot be read: out of fds or memory (EMFILE,
 * ENFILE, ENOMEM), removed between open and read (ENODEV), which pass; a
 * path too long (ENAMETOOLONG), a file without "populated" (EBADMSG), which
 * do not. The caller must not take an error for empty, or it would forget
 * a generation's strays while they live. */
int cgroup_tree_populated(const char *top);
