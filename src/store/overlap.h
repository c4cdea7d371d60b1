/*
 * src/store/overlap.h - does writing one path change another?  Used to
 * refuse a store that is (or lies on, or under) its own origin: the same
 * file through another name (symlink, hard link, relative path), a loop
 * device over the file, a device-mapper device over the device, a
 * partition and its whole disk, the filesystem device holding a file.
 *
 * Rule: A and B overlap when one of them is among the things the other's
 * data is stored on ("covers": itself, a loop device's backing file, a dm
 * device's slaves, a partition's disk, a file's filesystem device, each
 * recursively).  Two devices that merely share a lower device (two logical
 * volumes of one volume group, two partitions of one disk, two files on
 * one filesystem) do not overlap.
 */
#ifndef CSNAP_STORE_OVERLAP_H
#define CSNAP_STORE_OVERLAP_H

#include <stddef.h>

/* 1 if A and B overlap (WHY, LEN: a short reason such as "loop device
 * /dev/loop3 is backed by the file ..."), 0 if not, negative errno with
 * err_set() if either cannot be examined.  */
int storage_overlap(const char *a, const char *b, char *why, size_t len);

#endif
