#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

#include "core/error.hpp"
#include "store/detail.hpp"
#include "store/store.hpp"

namespace cerberus::store {

namespace {

// An append of `cerberus emit` holds the lock shared for a few milliseconds.
constexpr auto APPEND_WAIT = std::chrono::seconds(5);
constexpr auto APPEND_POLL = std::chrono::milliseconds(10);
constexpr const char* STOPPING = "stopping";

[[noreturn]] void failLockFile(const std::string& lock_path, const std::string& why) {
    throw core::Error(core::ExitCode::Database, "cannot use the lock file '" + lock_path +
                                                    "': " + why +
                                                    "; fix the directory's permissions or "
                                                    "pass --db");
}

[[noreturn]] void failLockFile(const std::string& lock_path, int error) {
    if (error == EROFS)
        throw core::Error(core::ExitCode::Database,
                          "cannot create the lock file '" + lock_path +
                              "' next to the database: the file system is read-only; pass --db "
                              "with a writable place");
    failLockFile(lock_path, std::strerror(error));
}

LockHolder readHolder(int fd) {
    char text[64] = {};
    const ssize_t n = ::pread(fd, text, sizeof text - 1, 0);
    LockHolder holder;
    if (n <= 0) return holder;
    char* end = nullptr;
    const long pid = std::strtol(text, &end, 10);
    if (end != text && pid > 0) holder.pid = pid;
    holder.stopping = std::strstr(text, STOPPING) != nullptr;
    return holder;
}

std::string heldBy(const std::string& db_path, const LockHolder& holder) {
    const std::string who =
        holder.pid > 0 ? "cerberus PID " + std::to_string(holder.pid) : "another cerberus";
    return "database '" + db_path + "' is held by " + who + " (lock file '" +
           WriterLock::pathOf(db_path) + "')";
}

void writeHolder(int fd, const std::string& text, const std::string& lock_path) {
    if (::ftruncate(fd, 0) != 0 ||
        ::pwrite(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size()))
        failLockFile(lock_path,
                     std::string("cannot write the holder's PID: ") + std::strerror(errno));
}

}  // namespace

WriterLock WriterLock::acquire(const std::string& db_path) {
    const std::string lock_path = pathOf(db_path);
    // Its sentences name the database and the fix; the lock file's own would not.
    detail::checkDirectory(db_path, ::access(db_path.c_str(), F_OK) == 0);
    core::UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd) failLockFile(lock_path, errno);
    struct stat st {};
    if (::fstat(fd.get(), &st) != 0) failLockFile(lock_path, std::strerror(errno));
    if (!S_ISREG(st.st_mode)) failLockFile(lock_path, "not a regular file");
    // The umask may have taken bits away, or given some: the PID is nobody else's business.
    if ((st.st_mode & 07777) != 0600 && ::fchmod(fd.get(), 0600) != 0)
        failLockFile(lock_path, std::strerror(errno));

    const auto give_up_at = std::chrono::steady_clock::now() + APPEND_WAIT;
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) failLockFile(lock_path, std::strerror(errno));
        // A daemon holds it exclusively, appends hold it shared: only the latter pass.
        if (::flock(fd.get(), LOCK_SH | LOCK_NB) != 0) {
            if (errno != EWOULDBLOCK) failLockFile(lock_path, std::strerror(errno));
            throw core::Error(core::ExitCode::Held,
                              heldBy(db_path, readHolder(fd.get())) +
                                  "; only one 'cerberus run' may write to a database: stop "
                                  "that one first or pass --db");
        }
        ::flock(fd.get(), LOCK_UN);
        if (std::chrono::steady_clock::now() >= give_up_at)
            throw core::Error(core::ExitCode::Held, "database '" + db_path +
                                                        "' stayed locked by 'cerberus emit' "
                                                        "appends for 5 s (lock file '" +
                                                        lock_path + "'); try again");
        std::this_thread::sleep_for(APPEND_POLL);
    }
    writeHolder(fd.get(), std::to_string(::getpid()) + "\n", lock_path);
    return WriterLock(std::move(fd));
}

std::optional<WriterLock> WriterLock::tryShared(const std::string& db_path,
                                                LockHolder& holder_out) {
    const std::string lock_path = pathOf(db_path);
    // Read-only: an append must not leave a lock file the daemon's user cannot open.
    core::UniqueFd fd(::open(lock_path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) {
        if (errno == ENOENT) return WriterLock(core::UniqueFd());
        failLockFile(lock_path, std::strerror(errno));
    }
    if (::flock(fd.get(), LOCK_SH | LOCK_NB) == 0) return WriterLock(std::move(fd));
    if (errno != EWOULDBLOCK) failLockFile(lock_path, std::strerror(errno));
    holder_out = readHolder(fd.get());
    return std::nullopt;
}

void WriterLock::markStopping() {
    if (!fd_) return;
    // Best effort: without it an emit waits for the lock instead of appending beside us.
    const std::string text = std::to_string(::getpid()) + " " + STOPPING + "\n";
    const ssize_t written = ::pwrite(fd_.get(), text.data(), text.size(), 0);
    (void)written;
}

}  // namespace cerberus::store
