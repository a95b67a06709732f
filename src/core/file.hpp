#pragma once

// Reading a configuration file that anyone who can write the directory may have replaced
// with something else: a FIFO must not block, a device or a huge file must not be read.

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace cerberus::core {

struct FileText {
    enum class Problem : std::uint8_t { None, Unreadable, NotRegular, TooLarge };
    std::optional<std::string> text;
    Problem problem = Problem::None;
    // When !text, why, as a clause that follows the path: "cannot open it: No such file or
    // directory", "it is a FIFO, not a regular file", "it is larger than 1 MiB".
    std::string error;
    std::uint64_t size_bytes = 0;  // what fstat said, when the file was opened
};

// The whole content of the regular file `path` (symlinks followed), of at most `max_bytes`.
// Opened non-blocking, so a FIFO or a device is refused by its type without waiting.
FileText readRegularFile(const std::string& path, std::size_t max_bytes);

// What readRegularFile() would refuse, found without reading a byte (open and fstat only):
// `text` stays empty, `problem` is None when the file would be read.
FileText probeRegularFile(const std::string& path, std::size_t max_bytes);

// "1 MiB", "64 KiB", "300 bytes": for messages about size caps.
std::string formatBytes(std::size_t bytes);

}  // namespace cerberus::core
