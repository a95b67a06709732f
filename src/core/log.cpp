#include "core/log.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

namespace cerberus::core {

bool streamIsJournal(const char* journal_stream, std::uint64_t dev, std::uint64_t ino) {
    if (journal_stream == nullptr || *journal_stream == '\0') return false;
    const std::string_view text(journal_stream);
    const auto colon = text.find(':');
    if (colon == std::string_view::npos) return false;
    auto number = [](std::string_view digits, std::uint64_t& out) {
        if (digits.empty() || digits.size() > 20) return false;
        out = 0;
        for (const char c : digits) {
            if (c < '0' || c > '9') return false;
            const std::uint64_t next = out * 10 + static_cast<std::uint64_t>(c - '0');
            if (next < out) return false;
            out = next;
        }
        return true;
    };
    std::uint64_t want_dev = 0;
    std::uint64_t want_ino = 0;
    return number(text.substr(0, colon), want_dev) && number(text.substr(colon + 1), want_ino) &&
           want_dev == dev && want_ino == ino;
}

std::string logText(Priority priority, std::string_view line, bool to_journal) {
    const std::string prefix =
        to_journal ? "<" + std::to_string(static_cast<int>(priority)) + ">" : std::string();
    std::string out = prefix + "cerberus: ";
    for (const char c : line) {
        out += c;
        if (c == '\n') out += prefix;
    }
    out += '\n';
    return out;
}

bool stderrIsJournal() {
    static const bool TO_JOURNAL = [] {
        struct stat st {};
        if (fstat(STDERR_FILENO, &st) < 0) return false;
        return streamIsJournal(std::getenv("JOURNAL_STREAM"), static_cast<std::uint64_t>(st.st_dev),
                               static_cast<std::uint64_t>(st.st_ino));
    }();
    return TO_JOURNAL;
}

void log(Priority priority, std::string_view line) {
    const std::string text = logText(priority, line, stderrIsJournal());
    std::fwrite(text.data(), 1, text.size(), stderr);
    std::fflush(stderr);
}

}  // namespace cerberus::core
