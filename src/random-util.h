/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/* 64 bits that others cannot guess, for a name of ours where anyone may
 * bind one first (an abstract socket's): getrandom(), else (ENOSYS under
 * an old seccomp profile, EAGAIN before the kernel's pool is ready) a
 * SipHash of the pid, the clock and a counter, keyed with the 16 bytes the
 * kernel gave this process at exec (AT_RANDOM). Each call gives others. */
uint64_t random_u64(void);

/* SipHash-2-4 of the n 64-bit words m (the bytes of each in little-endian
 * order, as the reference reads them) under the key k. */
uint64_t siphash24(const uint64_t k[2], const uint64_t *m, size_t n);
