#include "core/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/fd.hpp"

namespace cerberus::core {

namespace {

std::string kindOf(mode_t mode) {
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a file";
}

// Opens `path` without blocking and refuses what is not a regular file of at most
// `max_bytes`; the descriptor is open only when `out.problem` is None.
UniqueFd openRegular(const std::string& path, std::size_t max_bytes, FileText& out) {
    UniqueFd fd(::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY));
    if (!fd) {
        out.problem = FileText::Problem::Unreadable;
        out.error = std::string("cannot open it: ") + std::strerror(errno);
        return fd;
    }
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) {
        out.problem = FileText::Problem::Unreadable;
        out.error = std::string("cannot read it: ") + std::strerror(errno);
        return UniqueFd();
    }
    if (!S_ISREG(st.st_mode)) {
        out.problem = FileText::Problem::NotRegular;
        out.error = "it is " + kindOf(st.st_mode) + ", not a regular file";
        return UniqueFd();
    }
    out.size_bytes = static_cast<std::uint64_t>(st.st_size);
    if (out.size_bytes > max_bytes) {
        out.problem = FileText::Problem::TooLarge;
        out.error = "it is larger than " + formatBytes(max_bytes);
        return UniqueFd();
    }
    return fd;
}

}  // namespace

FileText probeRegularFile(const std::string& path, std::size_t max_bytes) {
    FileText out;
    openRegular(path, max_bytes, out);
    return out;
}

FileText readRegularFile(const std::string& path, std::size_t max_bytes) {
    FileText out;
    const UniqueFd fd = openRegular(path, max_bytes, out);
    if (out.problem != FileText::Problem::None) return out;
    const std::string too_large = "it is larger than " + formatBytes(max_bytes);
    // The size may change between fstat and read (and files in /proc say 0): the cap is
    // enforced on what is read.
    std::string text(static_cast<std::size_t>(out.size_bytes) + 1, '\0');
    std::size_t used = 0;
    for (;;) {
        if (used == text.size()) {
            if (text.size() > max_bytes) {
                out.problem = FileText::Problem::TooLarge;
                out.error = too_large;
                return out;
            }
            text.resize(std::min(max_bytes + 1, std::max<std::size_t>(text.size() * 2, 4096)));
        }
        const ssize_t n = ::read(fd.get(), text.data() + used, text.size() - used);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            out.problem = FileText::Problem::Unreadable;
            out.error = std::string("cannot read it: ") + std::strerror(errno);
            return out;
        }
        if (n == 0) break;
        used += static_cast<std::size_t>(n);
    }
    if (used > max_bytes) {
        out.problem = FileText::Problem::TooLarge;
        out.error = too_large;
        return out;
    }
    text.resize(used);
    out.text = std::move(text);
    return out;
}

std::string formatBytes(std::size_t bytes) {
    if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) == 0)
        return std::to_string(bytes / (1024 * 1024)) + " MiB";
    if (bytes >= 1024 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + " KiB";
    return std::to_string(bytes) + (bytes == 1 ? " byte" : " bytes");
}

}  // namespace cerberus::core
