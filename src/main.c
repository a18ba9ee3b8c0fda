/* SPDX-License-Identifier: MIT */
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "listeners.h"
#include "log.h"
#include "options.h"
#include "supervisor.h"

/* Exit codes of handoff itself (the app's own status is passed through):
 * 0 success, 1 failure, 2 invalid arguments or configuration (as systemd's
 * LSB-style EXIT_INVALIDARGUMENT). */
#define EXIT_INVALID 2

/* Written to a temporary name and renamed, so a reader never sees a partial
 * or empty file. */
static int write_pid_file(const char *path) {
        _cleanup_free_ char *tmp = NULL;
        if (asprintf(&tmp, "%s.tmpXXXXXX", path) < 0)
                return -ENOMEM;
        _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
        if (fd < 0)
                return -errno;
        char buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", (int) getpid());
        if (write(fd, buf, (size_t) n) != n || fchmod(fd, 0644) < 0 || rename(tmp, path) < 0) {
                int r = -errno;
                (void) unlink(tmp);
                return r;
        }
        return 0;
}

static int run(int argc, char **argv) {
        Options o = OPTIONS_DEFAULT;
        _cleanup_(listeners_done_and_unlink) Listeners l = {};

        log_setup();
        int r = options_parse(argc, argv, &o);
        if (r <= 0) {
                options_done(&o);
                return r == 0 ? 0 : EXIT_INVALID;
        }
        if (o.verbose)
                log_set_max_level(LOG_DEBUG);

        r = listeners_from_systemd(&l);
        if (r < 0) {
                options_done(&o);
                return EXIT_INVALID;
        }
        if (r > 0 && o.n_listen > 0)
                log_info("systemd passed %d socket(s); ignoring --listen.", r);
        if (r == 0) {
                if (o.n_listen == 0) {
                        log_error("No sockets to serve: systemd passed none (no LISTEN_FDS for this pid) and no "
                                  "--listen was given. Use a .socket unit, or e.g. --listen 127.0.0.1:8080.");
                        options_done(&o);
                        return EXIT_INVALID;
                }
                if (listeners_open(&l, o.listen, o.n_listen) < 0) {
                        options_done(&o);
                        return EXIT_INVALID;
                }
        }

        if (o.pid_file && (r = write_pid_file(o.pid_file)) < 0) {
                log_error_errno(r, "Failed to write pid file %s: %m", o.pid_file);
                options_done(&o);
                return 1;
        }

        r = supervisor_run(&o, &l);

        if (o.pid_file)
                (void) unlink(o.pid_file);
        options_done(&o);
        return r;
}

int main(int argc, char **argv) {
        return run(argc, argv);
}
