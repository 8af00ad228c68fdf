/* lg_faultio.h -- a fault-injecting lg_io for the log's failure tests (SQLite test6.c, LevelDB
 * fault_injection_test).
 *
 * It wraps lg_io_default() and
 *  - counts write ops (len > 0) and sync ops (sync set) passed to submit(), and pread bytes;
 *  - fails the Nth write or the Nth sync from the moment it is armed with a chosen errno. A
 *    failed write writes nothing (EIO) or half of its bytes (ENOSPC: the disk filled up
 *    mid-write); a failed sync still writes its bytes but does not sync them, so they are
 *    "in the page cache" and lgf_crash() drops them;
 *  - can block every sync until lgf_release() (back-pressure tests);
 *  - tracks, per file it saw opened, the bytes written and the bytes known durable;
 *  - lgf_freeze() makes every later mutating operation fail with EIO without touching the
 *    disk (the machine lost power: a topic "closed" afterwards writes nothing), and
 *    lgf_crash() then truncates each tracked file back to its durable length, optionally
 *    leaving some of the unsynced bytes (a torn write) or random garbage behind.
 *
 * Model: fdatasync/fsync of an fd makes everything written to that file so far durable;
 * ftruncate and rename are treated as durable at once (directory entries are not modelled).
 * Thread-safe: the writer thread, the caller and the maintenance thread may all use it. */
#ifndef WEIR_LG_FAULTIO_H
#define WEIR_LG_FAULTIO_H

#include <stdbool.h>
#include <stdint.h>

#include "lg.h"

typedef struct lgf_io lgf_io;

/* What lgf_crash() leaves after the durable bytes of each file. */
typedef enum lgf_crash_mode {
    LGF_DROP_UNSYNCED = 0, /* nothing: every file is cut back to its durable length */
    LGF_KEEP_PREFIX,       /* a random prefix of the unsynced bytes survives (torn write) */
    LGF_GARBAGE            /* cut back, then 1..64 random bytes appended */
} lgf_crash_mode;

lgf_io *lgf_create(uint64_t seed);  /* aborts when out of memory: it is a test */
void lgf_destroy(lgf_io *f);        /* NULL is a no-op */
const lg_io *lgf_io_get(lgf_io *f); /* the vtable to put in lg_open_opts.io */

/* Fail the @nth write (1 = the next one) / sync from now with @err; 0 disarms. */
void lgf_fail_write(lgf_io *f, uint64_t nth, int err);
void lgf_fail_sync(lgf_io *f, uint64_t nth, int err);
/* Block every sync op in submit() until lgf_release(); lgf_wait_blocked() waits until at least
 * one submit() is blocked (false if none is after a minute: the test then fails, not hangs). */
void lgf_block_syncs(lgf_io *f);
bool lgf_wait_blocked(lgf_io *f);
void lgf_release(lgf_io *f);

uint64_t lgf_writes(lgf_io *f); /* write ops submitted so far (failed ones included) */
uint64_t lgf_syncs(lgf_io *f);
uint64_t lgf_pread_bytes(lgf_io *f); /* bytes returned by pread */
uint64_t lgf_failures(lgf_io *f);    /* injected failures so far */
void lgf_reset_counts(lgf_io *f);

/* Durable / written length of a tracked file, or -1 if it was never opened through @f. */
int64_t lgf_durable_len(lgf_io *f, const char *path);
int64_t lgf_written_len(lgf_io *f, const char *path);

void lgf_freeze(lgf_io *f);
/* Power cut: cut every tracked file back to its durable length (see lgf_crash_mode); call it
 * after the topic was abandoned (lgf_freeze() + lg_topic_close()). Returns the number of
 * bytes dropped. Unfreezes and forgets all tracked files. */
uint64_t lgf_crash(lgf_io *f, lgf_crash_mode mode);

#endif
