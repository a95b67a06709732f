#pragma once

// printf-style log lines for the daemon's messages.

#include <cstdio>
#include <string>

#include "core/log.hpp"

namespace cerberus::daemon::detail {

// A line without arguments is logged as it is: no format is read from it, so a '%' in it is
// harmless and -Wformat-security has nothing to flag.
inline void logLine(core::Priority priority, const char* line) { core::log(priority, line); }

template <typename... Args>
void logLine(core::Priority priority, const char* format, Args... args) {
    const int size = std::snprintf(nullptr, 0, format, args...);
    std::string line(size > 0 ? static_cast<std::size_t>(size) : 0, '\0');
    // Cannot fail: the same format and arguments were measured above.
    (void)std::snprintf(line.data(), line.size() + 1, format, args...);
    core::log(priority, line);
}

}  // namespace cerberus::daemon::detail
