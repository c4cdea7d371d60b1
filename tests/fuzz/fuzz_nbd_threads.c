/*
 * tests/fuzz/fuzz_nbd_threads.c - fuzz_nbd with two loop threads
 * (`export_threads`, src/export/loop.h): each input's connection is
 * served in transmission on a loop thread of its own, under the export
 * lock, while the main loop keeps the listener, the handshakes and the
 * volumes' completions.  Same input, seeds, corpus and regression inputs
 * as fuzz_nbd (tests/fuzz/run.sh shares tests/fuzz/corpus/nbd and
 * tests/fuzz/regress/nbd); how the harness gets the connection onto the
 * thread: fuzz_nbd.c, "Loop threads".
 */
#define NBD_LOOP_THREADS	2
#define FUZZ_NAME		"fuzz_nbd_threads"

#include "tests/fuzz/fuzz_nbd.c"
