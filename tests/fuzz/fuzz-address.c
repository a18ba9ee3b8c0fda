/* SPDX-License-Identifier: MIT */
/* listen_address_parse(): a --listen argument (from a unit file or a
 * command line, so not hostile, but anything a user may type).
 *
 * Properties:
 *  - success or -EINVAL with an error message; on failure *ret is untouched
 *    and nothing leaks (LeakSanitizer runs after every input);
 *  - a parsed address is well formed: a valid fd name (default "unknown");
 *    inet: a port of 1..5 digits in 1..65535, a host that is NULL or not
 *    empty, and a host with ':' only from a bracketed [V6]; unix: a
 *    non-empty path that fits sun_path (107 bytes plus the NUL or the
 *    leading NUL of an abstract name), absolute unless abstract;
 *  - formatting it back into canonical form ("tcp:[h]:p=name",
 *    "unix:@path=name", ...) and parsing that gives the same address. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>

#include "address.h"
#include "fuzz.h"

static const char *kind_prefix(AddressKind k) {
        switch (k) {
        case ADDR_TCP:
                return "tcp:";
        case ADDR_UDP:
                return "udp:";
        case ADDR_UNIX_STREAM:
                return "unix:";
        case ADDR_UNIX_DGRAM:
                return "unix-dgram:";
        }
        return NULL;
}

static bool is_inet(AddressKind k) {
        return k == ADDR_TCP || k == ADDR_UDP;
}

static bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static char *format_address(const ListenAddress *a) {
        char *s = NULL;
        int k;
        if (is_inet(a->kind)) {
                bool brackets = a->host && (strchr(a->host, ':') || a->host[0] == '[');
                if (!a->host)
                        k = asprintf(&s, "%s%s=%s", kind_prefix(a->kind), a->port, a->name);
                else
                        k = asprintf(&s, "%s%s%s%s:%s=%s", kind_prefix(a->kind), brackets ? "[" : "", a->host,
                                     brackets ? "]" : "", a->port, a->name);
        } else
                k = asprintf(&s, "%s%s%s=%s", kind_prefix(a->kind), a->abstract ? "@" : "", a->path, a->name);
        if (k < 0)
                abort();
        return s;
}

static void check_well_formed(const ListenAddress *a, const char *spec) {
        char repr[1024];
        fuzz_repr(spec, repr, sizeof repr);
        FUZZ_ASSERT(kind_prefix(a->kind), "\"%s\": kind %d out of range", repr, (int) a->kind);
        FUZZ_ASSERT(a->name && a->name[0] && fdname_is_valid(a->name), "\"%s\": invalid name", repr);
        if (!strrchr(spec, '='))
                FUZZ_ASSERT(strcmp(a->name, "unknown") == 0, "\"%s\": name %s without '='", repr, a->name);
        if (is_inet(a->kind)) {
                FUZZ_ASSERT(!a->path && !a->abstract, "\"%s\": inet address with a unix path", repr);
                FUZZ_ASSERT(a->port, "\"%s\": no port", repr);
                size_t l = strlen(a->port);
                FUZZ_ASSERT(l >= 1 && l <= 5 && strspn(a->port, "0123456789") == l, "\"%s\": port \"%s\"", repr, a->port);
                long p = strtol(a->port, NULL, 10);
                FUZZ_ASSERT(p >= 1 && p <= 65535, "\"%s\": port %ld out of range", repr, p);
                FUZZ_ASSERT(!a->host || a->host[0], "\"%s\": empty host", repr);
                if (a->host && strchr(a->host, ':'))
                        FUZZ_ASSERT(strchr(spec, '['), "\"%s\": host with ':' not in brackets", repr);
        } else {
                FUZZ_ASSERT(!a->host && !a->port, "\"%s\": unix address with host or port", repr);
                FUZZ_ASSERT(a->path && a->path[0], "\"%s\": empty path", repr);
                FUZZ_ASSERT(strlen(a->path) <= 107, "\"%s\": path of %zu bytes does not fit sun_path", repr,
                            strlen(a->path));
                FUZZ_ASSERT(a->abstract || a->path[0] == '/', "\"%s\": relative path \"%s\"", repr, a->path);
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        char repr[1024];
        char *spec = fuzz_strndup(data, size);

        ListenAddress a, poison;
        memset(&poison, 0x5A, sizeof poison);
        a = poison;
        const char *err = NULL;
        int r = listen_address_parse(spec, &a, &err);
        if (r < 0) {
                FUZZ_ASSERT(r == -EINVAL, "\"%s\": error %d, expected -EINVAL", fuzz_repr(spec, repr, sizeof repr), r);
                FUZZ_ASSERT(err && *err, "\"%s\": rejected without an error message", fuzz_repr(spec, repr, sizeof repr));
                FUZZ_ASSERT(memcmp(&a, &poison, sizeof a) == 0, "\"%s\": output written despite failing",
                            fuzz_repr(spec, repr, sizeof repr));
                free(spec);
                return 0;
        }
        FUZZ_ASSERT(r == 0, "\"%s\": returned %d", fuzz_repr(spec, repr, sizeof repr), r);
        check_well_formed(&a, spec);

        char *canon = format_address(&a);
        ListenAddress b = {};
        err = NULL;
        r = listen_address_parse(canon, &b, &err);
        FUZZ_ASSERT(r == 0, "\"%s\" parsed, its canonical form \"%s\" did not: %s", fuzz_repr(spec, repr, sizeof repr),
                    canon, err ? err : "?");
        FUZZ_ASSERT(a.kind == b.kind && a.abstract == b.abstract && streq_null(a.host, b.host) &&
                            streq_null(a.port, b.port) && streq_null(a.path, b.path) && streq_null(a.name, b.name),
                    "\"%s\" and its canonical form \"%s\" parse differently", fuzz_repr(spec, repr, sizeof repr), canon);
        listen_address_done(&b);
        free(canon);

        listen_address_done(&a);
        FUZZ_ASSERT(!a.host && !a.port && !a.path && !a.name, "listen_address_done() left pointers behind");
        free(spec);
        return 0;
}
