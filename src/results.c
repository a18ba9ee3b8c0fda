/* SPDX-License-Identifier: MIT */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "results.h"
#include "util.h"

void results_done(Results *r) {
        free(r->last_result);
        r->last_result = NULL;
}

void results_copy(Results *dst, const Results *src) {
        free(dst->last_result);
        *dst = *src;
        dst->last_result = src->last_result ? strdup(src->last_result) : NULL;
}

static void set_last_result(Results *r, const char *fmt, ...) _printf_(2, 3);
static void set_last_result(Results *r, const char *fmt, ...) {
        free(r->last_result);
        va_list ap;
        va_start(ap, fmt);
        if (vasprintf(&r->last_result, fmt, ap) < 0)
                r->last_result = NULL;
        va_end(ap);
}

void results_begin(Results *r) {
        r->current_failed = false;
        r->began = now_monotonic();
}

void results_ok(Results *r, unsigned number, pid_t pid, usec_t took, pid_t handoff_pid) {
        char d[32], h[32] = "";
        format_duration(d, sizeof d, took);
        if (handoff_pid > 0)
                snprintf(h, sizeof h, " (handoff pid %d)", (int) handoff_pid);
        r->reloads_ok++;
        set_last_result(r, "reload to generation %u ok in %s", number, d);
        snprintf(r->last_reply, sizeof r->last_reply, "reloaded: generation %u, pid %d, %s%s", number, (int) pid, d, h);
        r->last_ok = true;
        r->last_gen = number;
        r->last_gen_ok = true;
        r->last_ended = now_monotonic();
        r->last_took = took;
}

void results_failed(Results *r, unsigned number, const char *why) {
        set_last_result(r, "generation %u failed: %.*s", number, (int) utf8_prefix(why, RESULTS_CAUSE_MAX), why);
        r->last_ok = false;
        r->current_failed = true;
        r->failed_gen = number;
}

void results_failed_text(Results *r, unsigned number, const char *text) {
        if (strncmp(text, "generation ", 11) == 0) {
                /* Its "generation N failed: " and the cause. */
                set_last_result(r, "%.*s", (int) utf8_prefix(text, RESULTS_CAUSE_MAX + 32), text);
                r->last_ok = false;
                r->current_failed = true;
                r->failed_gen = number;
        } else
                results_failed(r, number, text);
}

void results_rolled_back(Results *r) {
        r->reloads_failed++;
        r->last_gen = r->failed_gen;
        r->last_gen_ok = false;
        r->last_ended = now_monotonic();
        r->last_took = r->began && r->last_ended > r->began ? r->last_ended - r->began : 0;
}

/* Cut, if it must be, between characters: it goes into STATUS=. */
static void copy_status(char *dst, size_t size, const char *status) {
        snprintf(dst, size, "%.*s", (int) utf8_prefix(status, size - 1), status);
}

void results_app_status(Results *r, unsigned number, const char *status) {
        copy_status(r->app_status, sizeof r->app_status, status);
        r->app_status_gen = number;
        /* Said later than what it said as a candidate (a next handoff's
         * generation speaks for itself between its READY=1 and the
         * takeover): the candidate text is stale. */
        if (r->candidate_status_gen == number)
                r->candidate_status_gen = 0;
}

void results_candidate_status(Results *r, unsigned number, const char *status) {
        copy_status(r->candidate_status, sizeof r->candidate_status, status);
        r->candidate_status_gen = number;
}

void results_app_serves(Results *r, unsigned number) {
        if (r->candidate_status_gen != number || number == 0)
                return;
        results_app_status(r, number, r->candidate_status);
        r->candidate_status_gen = 0;
}

const char *results_status_line(const Results *r, unsigned number, pid_t pid, char *buf, size_t size) {
        /* An empty STATUS= clears it, as in systemd. */
        bool app = number != 0 && r->app_status_gen == number && r->app_status[0];
        const char *last = r->last_result ? r->last_result : "";
        if (number == 0)
                snprintf(buf, size, "No generation serving.");
        else
                snprintf(buf, size, "Serving generation %u (pid %d); %u reloads, %u failed%s%s%s%.256s", number,
                         (int) pid, r->reloads_ok, r->reloads_failed, last[0] ? "; last: " : "", last,
                         app ? "; app: " : "", app ? r->app_status : "");
        return buf;
}

const char *results_reply(const Results *r, ReloadEnd how, char *buf, size_t size) {
        const char *last = r->last_result ? r->last_result : "";
        switch (how) {
        case END_SERVING:
                if (r->last_ok)
                        snprintf(buf, size, "OK %s", r->last_reply);
                else
                        snprintf(buf, size, "FAIL reload failed: %s", last);
                break;
        case END_STOPPING:
                if (r->current_failed)
                        snprintf(buf, size, "FAIL %s; the service is stopping", last);
                else
                        snprintf(buf, size, "OK the service is stopping: the reload was overtaken by the stop");
                break;
        case END_GAVE_UP:
                snprintf(buf, size, "FAIL %s%sthis handoff gave up before it took over",
                         r->current_failed ? last : "", r->current_failed ? "; " : "");
                break;
        }
        return buf;
}
