/* SPDX-License-Identifier: MIT */
#include <string.h>
#include <sys/auxv.h>
#include <sys/random.h>
#include <unistd.h>

#include "random-util.h"
#include "time-util.h"

#define ROTL(x, b) ((uint64_t) ((x) << (b)) | ((x) >> (64 - (b))))

static void sipround(uint64_t v[4]) {
        v[0] += v[1], v[1] = ROTL(v[1], 13), v[1] ^= v[0], v[0] = ROTL(v[0], 32);
        v[2] += v[3], v[3] = ROTL(v[3], 16), v[3] ^= v[2];
        v[0] += v[3], v[3] = ROTL(v[3], 21), v[3] ^= v[0];
        v[2] += v[1], v[1] = ROTL(v[1], 17), v[1] ^= v[2], v[2] = ROTL(v[2], 32);
}

static void absorb(uint64_t v[4], uint64_t m) {
        v[3] ^= m;
        sipround(v);
        sipround(v);
        v[0] ^= m;
}

uint64_t siphash24(const uint64_t k[2], const uint64_t *m, size_t n) {
        uint64_t v[4] = { k[0] ^ 0x736f6d6570736575ULL, k[1] ^ 0x646f72616e646f6dULL,
                          k[0] ^ 0x6c7967656e657261ULL, k[1] ^ 0x7465646279746573ULL };
        for (size_t i = 0; i < n; i++)
                absorb(v, m[i]);
        /* The last block holds only the length in bytes, in its top byte. */
        absorb(v, (uint64_t) (8 * n) << 56);
        v[2] ^= 0xff;
        for (int i = 0; i < 4; i++)
                sipround(v);
        return v[0] ^ v[1] ^ v[2] ^ v[3];
}

uint64_t random_u64(void) {
        uint64_t r;
        if (getrandom(&r, sizeof r, GRND_NONBLOCK) == sizeof r)
                return r;
        /* Never the AT_RANDOM bytes themselves, nor anything a reader could
         * work them back from: glibc's stack protector and pointer guard
         * are made of them. SipHash keyed with them gives nothing away. */
        static uint64_t counter;
        uint64_t key[2] = { 0, 0 }, m[3] = { (uint64_t) getpid(), now_monotonic(), ++counter };
        const void *at_random = (const void *) getauxval(AT_RANDOM);
        if (at_random)
                memcpy(key, at_random, sizeof key);
        return siphash24(key, m, 3);
}
