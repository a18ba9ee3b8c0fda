/* SPDX-License-Identifier: MIT */
/* Shared by the libFuzzer targets: every target checks properties of what a
 * parser returns, not only that it does not crash. A property that does not
 * hold prints what was expected and aborts, which libFuzzer reports as a
 * crash and saves as crash-<sha1> (a reproducer: run the target on it). */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_ASSERT(cond, ...)                                                          \
        do {                                                                            \
                if (!(cond)) {                                                          \
                        fprintf(stderr, "%s:%d: property failed: %s\n  ", __FILE__,     \
                                __LINE__, #cond);                                       \
                        fprintf(stderr, __VA_ARGS__);                                   \
                        fputc('\n', stderr);                                            \
                        abort();                                                        \
                }                                                                       \
        } while (0)

/* A NUL-terminated copy of the input, cut at its first NUL (as a C string
 * from argv or the environment would be), in a heap block of exactly the
 * right size so that AddressSanitizer sees any read past the end. */
static inline char *fuzz_strndup(const uint8_t *data, size_t size) {
        size_t n = strnlen((const char *) data, size);
        char *s = malloc(n + 1);
        if (!s)
                abort();
        memcpy(s, data, n);
        s[n] = '\0';
        return s;
}

/* Printable, for property messages: at most 200 bytes, escaped. */
static inline const char *fuzz_repr(const char *s, char *buf, size_t size) {
        size_t o = 0;
        for (size_t i = 0; s[i] && o + 5 < size && i < 200; i++) {
                unsigned char c = (unsigned char) s[i];
                if (c >= 0x20 && c < 0x7f && c != '\\' && c != '"')
                        buf[o++] = (char) c;
                else
                        o += (size_t) snprintf(buf + o, size - o, "\\x%02x", c);
        }
        buf[o] = '\0';
        return buf;
}
