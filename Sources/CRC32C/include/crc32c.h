#ifndef RUNNEL_CRC32C_H
#define RUNNEL_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/// Extends a CRC32C (Castagnoli) over `length` bytes. Start with crc = 0; the result of one call
/// can be passed as `crc` to the next to checksum data in pieces. Uses SSE4.2 when the CPU has it.
uint32_t runnel_crc32c(uint32_t crc, const void *data, size_t length);

/// The portable table-driven implementation, exposed for tests and the benchmark.
uint32_t runnel_crc32c_portable(uint32_t crc, const void *data, size_t length);

/// 1 when the hardware path is in use.
int runnel_crc32c_hardware(void);

#ifdef __cplusplus
}
#endif

#endif
