// CRC32C (Castagnoli, reflected polynomial 0x82F63B78), as Kafka's record batch v2 uses.
// Hardware path: the SSE4.2 crc32 instruction over three interleaved streams, recombined with
// a zero-extension operator, so the 3-cycle latency of the instruction is hidden.
// Portable path: slicing-by-8 tables.
#include "crc32c.h"
#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready = 0;

static void build_tables(void) {
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = table[0][n];
        for (int k = 1; k < 8; k++) {
            c = table[0][c & 0xff] ^ (c >> 8);
            table[k][n] = c;
        }
    }
    __atomic_store_n(&table_ready, 1, __ATOMIC_RELEASE);
}

static inline void ensure_tables(void) {
    if (!__atomic_load_n(&table_ready, __ATOMIC_ACQUIRE)) build_tables();
}

uint32_t runnel_crc32c_portable(uint32_t crc, const void *data, size_t length) {
    ensure_tables();
    const uint8_t *p = (const uint8_t *)data;
    uint32_t c = ~crc;
    while (length && ((uintptr_t)p & 7)) {
        c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
        length--;
    }
    while (length >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        uint32_t lo = (uint32_t)word ^ c;
        uint32_t hi = (uint32_t)(word >> 32);
        c = table[7][lo & 0xff] ^ table[6][(lo >> 8) & 0xff] ^ table[5][(lo >> 16) & 0xff] ^ table[4][lo >> 24] ^
            table[3][hi & 0xff] ^ table[2][(hi >> 8) & 0xff] ^ table[1][(hi >> 16) & 0xff] ^ table[0][hi >> 24];
        p += 8;
        length -= 8;
    }
    while (length--) c = table[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

// Multiplication in GF(2) modulo the CRC polynomial (reflected), used to shift a CRC over
// zeros: crc(A || 0^n) = multiply(crc(A), x^(8n) mod P).
static uint32_t gf2_multiply(uint32_t a, uint32_t b) {
    uint32_t product = 0;
    for (int i = 0; i < 32; i++) {
        if (b & 0x80000000u) product ^= a;
        b <<= 1;
        a = (a & 1) ? (a >> 1) ^ POLY : a >> 1;
    }
    return product;
}

// x^(8*n) mod P in the reflected domain.
static uint32_t x_pow_8n(size_t n) {
    uint32_t result = 0x80000000u; // x^0
    uint32_t square = 0x00800000u; // x^8
    while (n) {
        if (n & 1) result = gf2_multiply(result, square);
        square = gf2_multiply(square, square);
        n >>= 1;
    }
    return result;
}

// Stream block sizes 256 B .. 8 KiB (powers of two) and their shift operators x^(8*block).
#define BLOCK_SIZES 6
static const size_t block_bytes[BLOCK_SIZES] = {8192, 4096, 2048, 1024, 512, 256};
// Multiplying by a fixed shift is linear in the CRC, so it is four table lookups.
static uint32_t shift_table[BLOCK_SIZES][4][256];
static int shift_ready = 0;

static void build_shifts(void) {
    for (int b = 0; b < BLOCK_SIZES; b++) {
        uint32_t shift = x_pow_8n(block_bytes[b]);
        for (int k = 0; k < 4; k++)
            for (uint32_t v = 0; v < 256; v++) shift_table[b][k][v] = gf2_multiply(v << (8 * k), shift);
    }
    __atomic_store_n(&shift_ready, 1, __ATOMIC_RELEASE);
}

static inline uint32_t shift_crc(int b, uint32_t crc) {
    return shift_table[b][0][crc & 0xff] ^ shift_table[b][1][(crc >> 8) & 0xff] ^
           shift_table[b][2][(crc >> 16) & 0xff] ^ shift_table[b][3][crc >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_sse42(uint32_t crc, const uint8_t *p, size_t length) {
    uint64_t c0 = (uint32_t)~crc;
    while (length && ((uintptr_t)p & 7)) {
        c0 = _mm_crc32_u8((uint32_t)c0, *p++);
        length--;
    }
    if (length >= 3 * 256) {
        if (!__atomic_load_n(&shift_ready, __ATOMIC_ACQUIRE)) build_shifts();
        // Largest blocks first; three interleaved streams hide the instruction's latency.
        for (int b = 0; b < BLOCK_SIZES; b++) {
            const size_t block = block_bytes[b];
            while (length >= 3 * block) {
                uint64_t c1 = 0, c2 = 0;
                const uint8_t *p1 = p + block, *p2 = p + 2 * block;
                for (size_t i = 0; i < block; i += 8) {
                    uint64_t w0, w1, w2;
                    memcpy(&w0, p + i, 8);
                    memcpy(&w1, p1 + i, 8);
                    memcpy(&w2, p2 + i, 8);
                    c0 = _mm_crc32_u64(c0, w0);
                    c1 = _mm_crc32_u64(c1, w1);
                    c2 = _mm_crc32_u64(c2, w2);
                }
                // crc(s0 || s1 || s2) = shift(shift(c0) ^ c1) ^ c2, in the raw (uninverted) domain.
                uint32_t combined = shift_crc(b, (uint32_t)c0) ^ (uint32_t)c1;
                combined = shift_crc(b, combined) ^ (uint32_t)c2;
                c0 = combined;
                p += 3 * block;
                length -= 3 * block;
            }
        }
    }
    while (length >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c0 = _mm_crc32_u64(c0, w);
        p += 8;
        length -= 8;
    }
    while (length--) c0 = _mm_crc32_u8((uint32_t)c0, *p++);
    return ~(uint32_t)c0;
}

static int hardware_state = -1;

int runnel_crc32c_hardware(void) {
    int state = __atomic_load_n(&hardware_state, __ATOMIC_ACQUIRE);
    if (state < 0) {
        __builtin_cpu_init();
        state = __builtin_cpu_supports("sse4.2") ? 1 : 0;
        __atomic_store_n(&hardware_state, state, __ATOMIC_RELEASE);
    }
    return state;
}

uint32_t runnel_crc32c(uint32_t crc, const void *data, size_t length) {
    if (runnel_crc32c_hardware()) return crc32c_sse42(crc, (const uint8_t *)data, length);
    return runnel_crc32c_portable(crc, data, length);
}

#else

int runnel_crc32c_hardware(void) { return 0; }

uint32_t runnel_crc32c(uint32_t crc, const void *data, size_t length) {
    return runnel_crc32c_portable(crc, data, length);
}

#endif
