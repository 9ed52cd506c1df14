// Reading and writing the files a user names, with the checks the library's own loaders and
// writers make: an input that is missing, unreadable or not a regular file (a FIFO, a directory)
// is an Error naming it, never a hang; an output is never left half written (a temporary file
// renamed over it) and never replaces a device or a FIFO (those are written directly).
#pragma once

#include <string>
#include <string_view>

namespace qkv {

// The whole of the regular file at `path`.
std::string read_input_file(const std::string& path);

// Writes `bytes` to `path`: atomically for a regular file, directly for a character device
// (/dev/null, a terminal) or a FIFO with a reader; a directory, socket or read-only file is refused.
void write_output_file(const std::string& path, std::string_view bytes);

// Throws Error naming `path` when write_output_file could not write it (a directory, a read-only
// file, a path in a missing directory): lets a long run fail before it starts, not after.
void check_output_path(const std::string& path);

}  // namespace qkv
