#ifndef GPT2KIT_CPOSIX_H
#define GPT2KIT_CPOSIX_H

// Linux calls that Swift's Glibc module does not import (they need _GNU_SOURCE), wrapped so that
// `Checkpoints` can hand the libhdf5 helper process exactly the descriptors it needs.

/// An anonymous in-memory file (memfd_create with MFD_CLOEXEC) on Linux; elsewhere an unlinked temporary
/// file in `directory`, marked close-on-exec. Returns the descriptor, or -1 with errno set.
int gpt2kit_anonymous_file(const char *name, const char *directory);

/// A pipe whose two ends are close-on-exec from the start (pipe2 with O_CLOEXEC where available).
/// Returns 0, or -1 with errno set.
int gpt2kit_pipe_cloexec(int descriptors[2]);

/// Adds "close every descriptor from `lowest` up" to a posix_spawn file-actions object
/// (posix_spawn_file_actions_addclosefrom_np, glibc 2.34 and later). Returns 0, an error number, or
/// ENOSYS where the C library lacks it (then only close-on-exec descriptors are closed).
int gpt2kit_spawn_add_close_from(void *actions, int lowest);

#endif
