/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* Starting one generation's main process: the only place where fds are made
 * inheritable, right before exec. */

/* Whose child the new process is. */
typedef enum SpawnAs {
        SPAWN_CHILD,   /* ours: a generation */
        /* Not ours, for the next handoff. Its first message on
         * fds[report_index] is "PID <n>" with a pidfd of itself. */
        SPAWN_SIBLING, /* our parent's (CLONE_PARENT): the service manager's,
                        * as systemd 252 needs to watch it as the main
                        * process. The kernel refuses CLONE_PARENT to a PID
                        * namespace's init (EINVAL), where handoff refuses
                        * handover mode anyway. */
        SPAWN_ORPHAN,  /* whoever adopts an orphan (init, or the closest
                        * subreaper above us), by a double fork: for when no
                        * service manager is there to be its parent. Our own
                        * subreaper flag must be off meanwhile
                        * (reaper_pause_subreaper()). */
} SpawnAs;

typedef struct SpawnParams {
        const char *path;       /* the executable, as execve() takes it (from working_directory) */
        char *const *argv;
        char **envp;            /* from env_build(); its pid placeholders are filled in the child */
        char *listen_pid_entry;
        char *watchdog_pid_entry;
        const int *fds;         /* fds to sit at 3..3+n_fds-1, inherited */
        size_t n_fds;
        SpawnAs as;
        size_t report_index;
        /* SIGKILL the child when handoff dies (PR_SET_PDEATHSIG), so that a
         * handoff killed hard does not leave its server serving on as an
         * orphan; parent_pid is handoff's, to close the race with its death.
         * For SPAWN_CHILD only: a sibling's parent is handoff's parent, an
         * orphan's the intermediate, which exits once it has exec'd. */
        bool die_with_parent;
        pid_t parent_pid;
        /* Start in this cgroup: the child writes "0" to its cgroup.procs
         * before exec, so everything it runs is inside from the start. */
        bool into_cgroup;
        int cgroup_procs_fd;
        /* chdir() there before exec (NULL: stay in ours). */
        const char *working_directory;
} SpawnParams;

/* The step of a start that failed, in the order the child takes them. */
typedef enum SpawnStep {
        SPAWN_FORK,     /* no process at all (RLIMIT_NPROC, a cgroup's pids.max) */
        SPAWN_DEATHSIG, /* PR_SET_PDEATHSIG */
        SPAWN_CGROUP,   /* the write to the cgroup's cgroup.procs */
        SPAWN_FDS,      /* placing the fds at 3… */
        SPAWN_REPORT,   /* "PID <n>" to the process that started it (not our child) */
        SPAWN_LIMITS,   /* setting RLIMIT_NOFILE back to handoff's original one */
        SPAWN_CHDIR,    /* working_directory */
        SPAWN_EXEC,
} SpawnStep;

/* The status the child exits with when step failed with error: systemd's
 * for the same step (src/basic/exit-status.h: EXIT_CHDIR 200, EXIT_FDS 202,
 * EXIT_LIMITS 205, EXIT_CGROUP 219), a shell's for the exec (126, 127: see
 * exec_error_exit_code()), EXIT_FAILURE where systemd has none (it sets no
 * PR_SET_PDEATHSIG on a service and reports to nobody). */
int spawn_exit_status(SpawnStep step, int error);

/* Finds name in $PATH the way execvp would (names with a '/' are taken as
 * they are). Returns 0 with a new absolute-or-relative path, -ENOENT when not
 * found, -EACCES when found but not executable. */
int find_executable(const char *name, char **ret);
/* The same for a process that will run in dir (NULL: ours): a relative
 * path, or a relative $PATH element, is looked up from there, and returned
 * relative, as execve() there takes it. */
int find_executable_from(const char *name, const char *dir, char **ret);

/* Starts the child with vfork semantics (clone(CLONE_VM | CLONE_VFORK), no
 * copy of our memory) and returns once it has exec'd: 0 with its pid (not
 * for SPAWN_ORPHAN: then *ret_pid is untouched and the pid comes over the
 * report fd), or -errno of a failed start, with the step that failed in
 * *ret_step (then the child, if there was one, has exited with
 * spawn_exit_status(), and is reaped here if it is ours). ret_step may be
 * NULL. Nothing blocks on the child beyond its own way to exec. A
 * generation is its own process group, so its workers can be killed with
 * it. */
int spawn_generation(const SpawnParams *p, pid_t *ret_pid, SpawnStep *ret_step);

/* The exit code a shell would report for an exec error. */
int exec_error_exit_code(int error);
