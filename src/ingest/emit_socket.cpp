#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "ingest/emit.hpp"

namespace cerberus::ingest {

namespace {

constexpr std::size_t CONNECTIONS_MAX = 64;
constexpr std::size_t REFUSED_LOGGED_MAX = 1024;
constexpr std::size_t LAST_SEEN_MAX = 10000;
constexpr core::Usec READ_TIMEOUT_USEC = 5 * core::USEC_PER_SEC;
// A request whose transitions cannot be stored (the database is failing) is told so after
// this long; they stay queued in the daemon.
constexpr core::Usec COMMIT_TIMEOUT_USEC = 30 * core::USEC_PER_SEC;
// Out of file descriptors: connections wait in the backlog this long before the next try,
// instead of the loop spinning on a listening socket that stays readable.
constexpr core::Usec ACCEPT_PAUSE_USEC = 100 * core::USEC_PER_MSEC;
constexpr const char* STOPPING =
    "the daemon is stopping and stored nothing of this event; append it to the database";

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw core::Error(core::ExitCode::Failure, "cannot " + what + " emit socket '" + path +
                                                   "': " + std::strerror(errno) +
                                                   "; pass --emit-socket with another path");
}

std::optional<sockaddr_un> addressOf(const std::string& path) {
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof address.sun_path) return std::nullopt;
    std::memcpy(address.sun_path, path.c_str(), path.size() + 1);
    return address;
}

int connectTo(int fd, const sockaddr_un& address) {
    return ::connect(fd, reinterpret_cast<const sockaddr*>(&address), sizeof address);
}

// Creates the socket's directory (one level) when it is missing.
void makeDirectory(const std::string& path) {
    const auto slash = path.rfind('/');
    if (slash == std::string::npos || slash == 0) return;
    const std::string dir = path.substr(0, slash);
    if (mkdir(dir.c_str(), 0755) < 0 && errno != EEXIST) fail(path, "create the directory of");
}

// A socket file nobody listens on is left from a daemon that did not exit cleanly.
void removeStale(const std::string& path, const sockaddr_un& address) {
    struct stat st {};
    if (lstat(path.c_str(), &st) < 0) return;
    if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        fail(path, "replace a file that is not a socket at");
    }
    core::UniqueFd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (probe && connectTo(probe.get(), address) == 0) {
        errno = EADDRINUSE;
        fail(path, "listen on (another cerberus does)");
    }
    (void)unlink(path.c_str());  // a stale file that cannot be removed fails bind() next
}

bool inGroup(uid_t uid, gid_t gid, gid_t group) {
    if (gid == group) return true;
    std::vector<char> buffer(16384);
    passwd pw{};
    passwd* found = nullptr;
    if (getpwuid_r(uid, &pw, buffer.data(), buffer.size(), &found) != 0 || found == nullptr)
        return false;
    int count = 64;
    std::vector<gid_t> groups(static_cast<std::size_t>(count));
    if (getgrouplist(pw.pw_name, gid, groups.data(), &count) < 0) {
        groups.resize(static_cast<std::size_t>(count));
        if (getgrouplist(pw.pw_name, gid, groups.data(), &count) < 0) return false;
    }
    groups.resize(static_cast<std::size_t>(count));
    return std::find(groups.begin(), groups.end(), group) != groups.end();
}

}  // namespace

std::optional<gid_t> groupId(const std::string& name) {
    std::vector<char> buffer(16384);
    group gr{};
    group* found = nullptr;
    if (getgrnam_r(name.c_str(), &gr, buffer.data(), buffer.size(), &found) != 0 || !found)
        return std::nullopt;
    return gr.gr_gid;
}

EmitServer::EmitServer(EmitSocketOptions options, Deliver deliver, LastTransition last, Log log)
    : options_(std::move(options)),
      deliver_(std::move(deliver)),
      last_(std::move(last)),
      log_(std::move(log)) {
    const std::string& path = options_.path;
    const auto address = addressOf(path);
    if (!address) {
        errno = ENAMETOOLONG;
        fail(path, "use");
    }
    makeDirectory(path);
    removeStale(path, *address);
    listen_ = core::UniqueFd(socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!listen_) fail(path, "create");
    // No moment with looser permissions than the final ones.
    const mode_t old_umask = umask(0177);
    const int bound =
        bind(listen_.get(), reinterpret_cast<const sockaddr*>(&*address), sizeof *address);
    umask(old_umask);
    if (bound < 0) fail(path, "bind");
    try {
        struct stat st {};
        if (stat(path.c_str(), &st) < 0) fail(path, "stat");
        inode_ = st.st_ino;
        if (options_.group) {
            if (chown(path.c_str(), static_cast<uid_t>(-1), *options_.group) < 0)
                fail(path, "give group '" + options_.group_name + "' the");
            if (chmod(path.c_str(), 0660) < 0) fail(path, "make group-writable the");
        }
        if (::listen(listen_.get(), 64) < 0) fail(path, "listen on");
        epoll_ = core::UniqueFd(epoll_create1(EPOLL_CLOEXEC));
        if (!epoll_) fail(path, "create an epoll fd for the");
        if (!watchListening()) fail(path, "watch the");
    } catch (...) {
        // A bound file nobody will listen on would only be removed by the next start.
        (void)unlink(path.c_str());  // best effort: the error being thrown is the one to tell
        throw;
    }
}

EmitServer::~EmitServer() {
    stopListening();
    // What is still waiting was not committed: the client may store it itself.
    finishEach([](const Connection&) { return Reply{false, 0, STOPPING, true}; });
}

bool EmitServer::watchListening() {
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = listen_.get();
    return epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, listen_.get(), &ev) == 0;
}

void EmitServer::stopListening() {
    if (!listen_) return;
    // Only our own socket: another daemon may have replaced a file we thought stale.
    struct stat st {};
    if (stat(options_.path.c_str(), &st) == 0 && st.st_ino == inode_) unlink(options_.path.c_str());
    // Connections still in the backlog are reset; their clients append the event themselves.
    listen_.reset();
    accept_paused_until_.reset();
    finishEach([](const Connection& connection) -> std::optional<Reply> {
        if (connection.awaiting_commit) return std::nullopt;
        return Reply{false, 0, STOPPING, true};
    });
}

void EmitServer::process(core::Usec now_usec, core::Usec now_mono) {
    if (accept_paused_until_ && *accept_paused_until_ <= now_mono) {
        accept_paused_until_.reset();
        watchListening();
    }
    epoll_event events[32];
    const int n = epoll_wait(epoll_.get(), events, 32, 0);
    for (int i = 0; i < n; ++i) {
        const int fd = events[i].data.fd;
        if (listen_ && fd == listen_.get()) {
            accept(now_mono);
        } else if (auto it = connections_.find(fd); it != connections_.end()) {
            read(it->second, now_usec, now_mono);
        }
    }
    expire(now_mono);
}

std::string EmitServer::refusal(int fd) {
    ucred cred{};
    socklen_t length = sizeof cred;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &length) < 0)
        return std::string("cannot read the peer's credentials: ") + std::strerror(errno);
    if (cred.uid == 0 || cred.uid == geteuid()) return {};
    if (options_.group && inGroup(cred.uid, cred.gid, *options_.group)) return {};
    const std::string who = "uid " + std::to_string(cred.uid);
    std::string reason =
        options_.group
            ? who + " is neither root nor in group '" + options_.group_name + "'"
            : who + " is not root, and the daemon names no group that may emit (--emit-group)";
    if (refused_logged_.size() < REFUSED_LOGGED_MAX && refused_logged_.insert(cred.uid).second)
        log_("emit socket '" + options_.path + "': refused " + who + " (pid " +
             std::to_string(cred.pid) + "): " + reason + "; logged once per uid");
    return reason;
}

void EmitServer::accept(core::Usec now_mono) {
    // At most one backlog's worth per wakeup; the listening fd stays readable for the rest.
    for (std::size_t i = 0; i < CONNECTIONS_MAX; ++i) {
        core::UniqueFd fd(accept4(listen_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                if (!accept_failure_logged_)
                    log_("emit socket '" + options_.path + "': cannot accept a connection: " +
                         std::strerror(errno) + "; retrying every " +
                         core::formatDuration(ACCEPT_PAUSE_USEC) + ", logged once");
                accept_failure_logged_ = true;
                // Removing a watched fd fails only if it is not watched: nothing to undo.
                (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, listen_.get(), nullptr);
                accept_paused_until_ = now_mono + ACCEPT_PAUSE_USEC;
            }
            return;  // EAGAIN, or a connection already gone
        }
        Reply refused;
        if (connections_.size() >= CONNECTIONS_MAX)
            refused.error =
                "busy: " + std::to_string(CONNECTIONS_MAX) + " connections are open; try again";
        else
            refused.error = refusal(fd.get());
        if (!refused.error.empty()) {
            const std::string line = encodeReply(refused) + "\n";
            // A fresh socket's buffer takes one short line; a failure only loses the reason.
            [[maybe_unused]] const auto written =
                ::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL);
            continue;
        }
        epoll_event ev{};
        ev.events = EPOLLIN;
        ev.data.fd = fd.get();
        if (epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd.get(), &ev) < 0) continue;
        const int key = fd.get();
        Connection& connection = connections_[key];
        connection.fd = std::move(fd);
        connection.deadline_mono = now_mono + READ_TIMEOUT_USEC;
    }
}

void EmitServer::read(Connection& connection, core::Usec now_usec, core::Usec now_mono) {
    const int fd = connection.fd.get();
    char buffer[EMIT_REQUEST_MAX];
    const ssize_t n = ::read(fd, buffer, EMIT_REQUEST_MAX - connection.buffer.size());
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n <= 0) {
        connections_.erase(fd);  // gone before a whole request
        return;
    }
    connection.buffer.append(buffer, static_cast<std::size_t>(n));
    const auto newline = connection.buffer.find('\n');
    if (newline == std::string::npos) {
        if (connection.buffer.size() >= EMIT_REQUEST_MAX)
            finish(fd, Reply{false, 0,
                             "the request is longer than " + std::to_string(EMIT_REQUEST_MAX) +
                                 " bytes or has no newline"});
        return;
    }
    // One request per connection: nothing more is read from it. (Removing a watched fd fails
    // only if it is not watched: nothing to undo.)
    (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
    const std::string line = connection.buffer.substr(0, newline);
    handle(connection, line, now_usec, now_mono);
}

void EmitServer::handle(Connection& connection, std::string_view line, core::Usec now_usec,
                        core::Usec now_mono) {
    const auto parsed = parseRequest(line, now_usec, now_mono);
    if (!parsed.request) {
        finish(connection.fd.get(), Reply{false, 0, parsed.error});
        return;
    }
    const auto& request = *parsed.request;
    if (auto why = checkNotSystemdUnit(request.unit); !why.empty()) {
        if (refused_units_logged_.size() < REFUSED_LOGGED_MAX &&
            refused_units_logged_.insert(request.unit).second)
            log_("emit socket '" + options_.path + "': refused an event for '" + request.unit +
                 "': " + why + "; logged once per unit");
        finish(connection.fd.get(), Reply{false, 0, "unit '" + request.unit + "': " + why});
        return;
    }
    std::optional<core::Transition> last;
    if (auto it = last_seen_.find(request.unit); it != last_seen_.end()) {
        last = it->second;
    } else {
        try {
            last = last_(request.unit);
        } catch (const core::Error& e) {
            finish(connection.fd.get(), Reply{false, 0, e.what()});
            return;
        }
    }
    auto transitions = mapEmit(request, last);
    connection.stored = transitions.size();
    if (!transitions.empty()) {
        // A full cache starts over; misses read the database.
        if (last_seen_.size() >= LAST_SEEN_MAX) last_seen_.clear();
        last_seen_.insert_or_assign(request.unit, transitions.back());
    }
    for (auto& t : transitions) deliver_(std::move(t));
    connection.awaiting_commit = true;
    connection.deadline_mono = now_mono + COMMIT_TIMEOUT_USEC;
}

void EmitServer::finish(int fd, const Reply& reply) {
    const std::string line = encodeReply(reply) + "\n";
    // The reply is the only write on this socket and fits its buffer; a client that has
    // gone away simply misses it.
    [[maybe_unused]] const auto written = ::send(fd, line.data(), line.size(), MSG_NOSIGNAL);
    (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);  // closed next: leaves the set
    connections_.erase(fd);
}

void EmitServer::finishEach(
    const std::function<std::optional<Reply>(const Connection&)>& reply_for) {
    for (auto it = connections_.begin(); it != connections_.end();) {
        auto next = std::next(it);  // finish() erases `it`
        if (auto reply = reply_for(it->second)) finish(it->first, *reply);
        it = next;
    }
}

void EmitServer::committed() {
    finishEach([](const Connection& connection) -> std::optional<Reply> {
        if (!connection.awaiting_commit) return std::nullopt;
        return Reply{true, connection.stored, {}};
    });
}

void EmitServer::expire(core::Usec now_mono) {
    finishEach([now_mono](const Connection& connection) -> std::optional<Reply> {
        if (connection.deadline_mono > now_mono) return std::nullopt;
        return Reply{
            false, 0,
            connection.awaiting_commit
                ? "queued but not stored yet: the daemon cannot write its database; it "
                  "keeps retrying"
                : "no complete request line within " + core::formatDuration(READ_TIMEOUT_USEC)};
    });
}

std::optional<core::Usec> EmitServer::deadline() const {
    std::optional<core::Usec> earliest = accept_paused_until_;
    for (const auto& [fd, connection] : connections_)
        if (!earliest || connection.deadline_mono < *earliest) earliest = connection.deadline_mono;
    return earliest;
}

SendResult sendEvent(const std::string& path, const EmitRequest& request, core::Usec timeout_usec) {
    SendResult result;
    const auto address = addressOf(path);
    if (!address) {
        result.message = "the socket path '" + path + "' is empty or too long";
        return result;
    }
    core::UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        result.message = std::string("cannot create a socket: ") + std::strerror(errno);
        return result;
    }
    // One deadline for the connection and the reply. A daemon whose backlog is full would
    // keep connect() waiting for ever.
    const core::SystemClock clock;
    const core::Usec give_up_at = clock.monotonic() + timeout_usec;
    const timeval send_timeout{static_cast<time_t>(timeout_usec / core::USEC_PER_SEC),
                               static_cast<suseconds_t>(timeout_usec % core::USEC_PER_SEC)};
    if (setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout) < 0) {
        result.message =
            std::string("cannot bound the wait for the daemon: ") + std::strerror(errno);
        return result;
    }
    if (connectTo(fd.get(), *address) < 0) {
        result.status =
            errno == ENOENT || errno == ECONNREFUSED ? SendStatus::NoDaemon : SendStatus::Failed;
        result.message = errno == EAGAIN
                             ? "the daemon at '" + path + "' took no connection within " +
                                   core::formatDuration(timeout_usec) + "; nothing was sent"
                             : "cannot connect to '" + path + "': " + std::strerror(errno);
        return result;
    }
    const std::string line = encodeRequest(request) + "\n";
    // A refusal arrives and the socket closes as soon as we connect: a failed send is then
    // explained by the reply below.
    [[maybe_unused]] const auto sent = ::send(fd.get(), line.data(), line.size(), MSG_NOSIGNAL);

    std::string reply;
    while (reply.find('\n') == std::string::npos && reply.size() < EMIT_REQUEST_MAX) {
        const core::Usec left = give_up_at - clock.monotonic();
        pollfd pfd{fd.get(), POLLIN, 0};
        const int ready =
            left > 0 ? poll(&pfd, 1, static_cast<int>(left / core::USEC_PER_MSEC) + 1) : 0;
        if (ready < 0 && errno == EINTR) continue;
        if (ready <= 0) {
            result.status = SendStatus::Unknown;
            result.message = "the daemon at '" + path + "' did not answer within " +
                             core::formatDuration(timeout_usec) +
                             "; the event may be queued but is not known to be stored";
            return result;
        }
        char buffer[512];
        const ssize_t n = ::read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == ECONNRESET && reply.empty()) {
            // Reset before any answer: the daemon closed its socket with the connection
            // still in the backlog, never having read the request.
            result.status = SendStatus::NoDaemon;
            result.message = "the daemon at '" + path + "' stopped before taking the event";
            return result;
        }
        if (n <= 0) break;
        reply.append(buffer, static_cast<std::size_t>(n));
    }
    const auto parsed = parseReply(reply.substr(0, reply.find('\n')));
    if (!parsed) {
        result.message = "the daemon at '" + path + "' closed the connection without an answer";
        return result;
    }
    result.stored = parsed->stored;
    result.message = parsed->error;
    result.status = parsed->ok         ? SendStatus::Stored
                    : parsed->stopping ? SendStatus::NoDaemon
                                       : SendStatus::Refused;
    return result;
}

}  // namespace cerberus::ingest
