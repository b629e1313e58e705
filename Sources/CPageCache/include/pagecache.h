#ifndef RUNNEL_PAGECACHE_H
#define RUNNEL_PAGECACHE_H

#include <stdint.h>

/* Writes back the dirty pages of fd in [offset, offset + length) and waits for them, without
   flushing the device's cache or committing the file system's journal (sync_file_range on
   Linux; fdatasync elsewhere). Makes nothing durable: it only makes those pages clean, so that
   dropping them from the page cache drops them all. Returns 0 or -1 with errno set. */
int runnel_pagecache_write_back(int fd, int64_t offset, int64_t length);

/* Drops the clean pages of fd in [offset, offset + length) from the page cache
   (POSIX_FADV_DONTNEED). Returns 0 or an error number. */
int runnel_pagecache_drop(int fd, int64_t offset, int64_t length);

#endif
