#include "daemon/metrics.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.hpp"
#include "core/fd.hpp"
#include "core/log.hpp"
#include "core/thread.hpp"

namespace cerberus::daemon {

namespace {

constexpr std::string_view CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
constexpr std::string_view METRICS_PATH = "/metrics";
constexpr int METRICS_LISTEN_BACKLOG = 64;
constexpr int METRICS_ACCEPTS_PER_WAKEUP = METRICS_LISTEN_BACKLOG;
constexpr std::size_t METRICS_REQUEST_HEAD_MAX = 8 * 1024;
constexpr core::Usec METRICS_ACCEPT_PAUSE_USEC = 100 * core::USEC_PER_MSEC;

// The text format's escaping: label values escape backslash, double quote and newline;
// HELP text escapes backslash and newline.
std::string escape(std::string_view text, bool quote) {
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '\n')
            out += "\\n";
        else if (c == '"' && quote)
            out += "\\\"";
        else
            out += c;
    }
    return out;
}

using Labels = std::initializer_list<std::pair<std::string_view, std::string_view>>;

class TextWriter {
public:
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += "# HELP " + std::string(name) + ' ' + escape(help, false) + '\n';
        out_ += "# TYPE " + std::string(name) + ' ' + std::string(type) + '\n';
    }
    void sample(std::string_view name, Labels labels, std::string_view value) {
        out_ += name;
        if (labels.size() > 0) {
            char separator = '{';
            for (const auto& [label, text] : labels) {
                out_ += separator;
                out_ += std::string(label) + "=\"" + escape(text, true) + '"';
                separator = ',';
            }
            out_ += '}';
        }
        out_ += ' ';
        out_ += value;
        out_ += '\n';
    }
    void sample(std::string_view name, Labels labels, std::uint64_t value) {
        sample(name, labels, std::to_string(value));
    }
    std::string take() { return std::move(out_); }

private:
    std::string out_;
};

std::string seconds(core::Usec usec) {
    char text[32];
    // Fits: a 64-bit count of microseconds is at most 13 digits of seconds.
    (void)std::snprintf(text, sizeof text, "%.3f", static_cast<double>(usec) / core::USEC_PER_SEC);
    return text;
}

std::string decimal(double value) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f", value);
    return text;
}

// systemd's unit types other than service: none of them has a main process to crash or
// restart, so they are listed only if one ever does.
bool isNonServiceUnit(std::string_view unit) {
    for (const std::string_view suffix : {".socket", ".target", ".device", ".mount", ".automount",
                                          ".swap", ".timer", ".path", ".slice", ".scope"})
        if (unit.ends_with(suffix)) return true;
    return false;
}

// The whole of a small file under /proc (their stat() size is 0); nullopt if unreadable.
std::optional<std::string> readProcFile(const char* path) {
    const core::UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC));
    if (!fd) return std::nullopt;
    std::string out;
    char buffer[4096];
    while (out.size() < 64 * 1024) {
        const ssize_t n = read(fd.get(), buffer, sizeof buffer);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) return std::nullopt;
        if (n == 0) break;
        out.append(buffer, static_cast<std::size_t>(n));
    }
    return out;
}

std::optional<double> bootTimeSeconds() {
    const auto stat = readProcFile("/proc/stat");
    if (!stat) return std::nullopt;
    const auto at = stat->find("\nbtime ");
    if (at == std::string::npos) return std::nullopt;
    std::uint64_t btime = 0;
    const char* begin = stat->data() + at + 7;
    const auto [end, ec] = std::from_chars(begin, stat->data() + stat->size(), btime);
    if (ec != std::errc() || end == begin) return std::nullopt;
    return static_cast<double>(btime);
}

// Entries of /proc/self/fd but the one reading it.
std::optional<std::uint64_t> openFds() {
    DIR* dir = opendir("/proc/self/fd");
    if (dir == nullptr) return std::nullopt;
    struct CloseDir {
        void operator()(DIR* d) const { closedir(d); }
    };
    const std::unique_ptr<DIR, CloseDir> owned(dir);
    const std::string own = std::to_string(dirfd(dir));
    std::uint64_t count = 0;
    while (const dirent* entry = readdir(dir))
        if (entry->d_name[0] != '.' && own != entry->d_name) ++count;
    return count;
}

}  // namespace

bool UnitCounters::admit(const std::string& unit, bool counted) {
    if (counts_.size() < max_units_) return true;
    // Full: a unit with nothing to show waits; one with a count takes the place of a unit
    // listed at 0, which loses nothing.
    if (!counted) return false;
    if (listed_at_zero_ > 0) {
        for (auto it = counts_.begin(); it != counts_.end(); ++it) {
            if (it->second == UnitCounts{}) {
                counts_.erase(it);
                --listed_at_zero_;
                return true;
            }
        }
    }
    dropped_.insert(unit);
    return false;
}

void UnitCounters::observe(const core::Transition& transition) {
    const bool crash = transition.event == core::Event::Crash;
    const bool restart = transition.event == core::Event::Restart;
    const bool counted = crash || restart;
    // systemd's services are listed from their snapshot; units of other inits by their rows.
    const bool other_init =
        transition.source == core::Source::Emit || transition.source == core::Source::Supervisor;
    auto it = counts_.find(transition.unit);
    if (it == counts_.end()) {
        if (!counted && !(other_init && !isNonServiceUnit(transition.unit))) return;
        if (dropped_.contains(transition.unit) || !admit(transition.unit, counted)) return;
        it = counts_.emplace(transition.unit, UnitCounts{}).first;
        ++listed_at_zero_;
        shared_.reset();
    }
    if (!counted) return;
    if (it->second == UnitCounts{}) --listed_at_zero_;
    if (crash) ++it->second.crashes;
    if (restart) ++it->second.restarts;
    shared_.reset();
}

void UnitCounters::observe(const core::UnitSnapshot& snapshot) {
    // NRestarts is known for services only.
    if (snapshot.n_restarts < 0 || counts_.contains(snapshot.unit)) return;
    if (dropped_.contains(snapshot.unit) || !admit(snapshot.unit, false)) return;
    counts_.emplace(snapshot.unit, UnitCounts{});
    ++listed_at_zero_;
    shared_.reset();
}

std::shared_ptr<const UnitCountsByName> UnitCounters::counts() const {
    if (!shared_) shared_ = std::make_shared<const UnitCountsByName>(counts_);
    return shared_;
}

std::optional<ProcessStats> parseProcStat(std::string_view stat, long ticks_per_second,
                                          long page_size, double boot_time_seconds) {
    // "PID (COMM) STATE ...": COMM may hold spaces and parentheses, so fields are counted
    // from the last ')'. Field 3 (STATE) is the first after it.
    const auto close = stat.rfind(')');
    if (close == std::string_view::npos || ticks_per_second <= 0 || page_size <= 0)
        return std::nullopt;
    std::vector<std::uint64_t> fields;  // fields 4 (ppid) to 24 (rss)
    std::string_view rest = stat.substr(close + 1);
    for (int field = 3; field <= 24; ++field) {
        const auto begin = rest.find_first_not_of(' ');
        if (begin == std::string_view::npos) return std::nullopt;
        rest = rest.substr(begin);
        const auto token = rest.substr(0, rest.find_first_of(" \n"));
        rest = rest.substr(token.size());
        if (field == 3) continue;
        std::int64_t value = 0;  // some fields (priority, nice) may be negative
        const auto [end, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
        if (ec != std::errc() || end != token.data() + token.size()) return std::nullopt;
        fields.push_back(static_cast<std::uint64_t>(value));
    }
    const auto field = [&fields](int n) { return fields[static_cast<std::size_t>(n - 4)]; };
    ProcessStats out;
    const double ticks = static_cast<double>(ticks_per_second);
    out.cpu_seconds = static_cast<double>(field(14) + field(15)) / ticks;  // utime + stime
    out.start_time_seconds = boot_time_seconds + static_cast<double>(field(22)) / ticks;
    out.virtual_bytes = field(23);
    out.resident_bytes = field(24) * static_cast<std::uint64_t>(page_size);
    return out;
}

std::optional<ProcessStats> readProcessStats() {
    // Boot time does not change while the process runs.
    static const std::optional<double> BOOT_TIME_SECONDS = bootTimeSeconds();
    const auto stat = readProcFile("/proc/self/stat");
    if (!stat || !BOOT_TIME_SECONDS) return std::nullopt;
    auto out =
        parseProcStat(*stat, sysconf(_SC_CLK_TCK), sysconf(_SC_PAGESIZE), *BOOT_TIME_SECONDS);
    if (!out) return std::nullopt;
    out->open_fds = openFds();
    rlimit limit{};
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) out->max_fds = limit.rlim_cur;
    return out;
}

std::string MetricsAddress::describe() const {
    const std::string shown = host.find(':') == std::string::npos ? host : "[" + host + "]";
    return shown + ":" + std::to_string(port);
}

std::optional<MetricsAddress> parseMetricsAddress(std::string_view text) {
    MetricsAddress address;
    std::string_view port;
    if (text.starts_with('[')) {
        const auto close = text.find("]:");
        if (close == std::string_view::npos) return std::nullopt;
        address.host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        address.host = text.substr(0, colon);
        port = text.substr(colon + 1);
        // An IPv6 address needs its brackets: "::1:9469" reads two ways.
        if (address.host.find(':') != std::string::npos) return std::nullopt;
    }
    const auto [end, ec] = std::from_chars(port.data(), port.data() + port.size(), address.port);
    if (address.host.empty() || port.empty() || ec != std::errc() ||
        end != port.data() + port.size() || address.port < 1 || address.port > 65535)
        return std::nullopt;
    return address;
}

namespace {

void writeTransitions(TextWriter& out, const MetricsSnapshot& snapshot) {
    out.family("cerberus_transitions_total", "counter",
               "Unit transitions observed since cerberus started, by derived event and source; "
               "each is stored unless counted in cerberus_transitions_dropped_total.");
    for (const auto event : core::EVENTS) {
        for (const auto source : core::SOURCES) {
            const auto it = snapshot.transitions.find({event, source});
            out.sample("cerberus_transitions_total",
                       {{"event", core::toString(event)}, {"source", core::toString(source)}},
                       it == snapshot.transitions.end() ? 0 : it->second);
        }
    }
    out.family("cerberus_transitions_dropped_total", "counter",
               "Transitions dropped because the write queue was full while the database "
               "refused writes.");
    out.sample("cerberus_transitions_dropped_total", {}, snapshot.transitions_dropped);
}

void writeAlertsAndDeliveries(TextWriter& out, const MetricsSnapshot& snapshot) {
    out.family("cerberus_alerts_firing", "gauge",
               "Alerts firing now, by rule (silenced ones included).");
    for (const auto& [rule, firing] : snapshot.alerts_firing)
        out.sample("cerberus_alerts_firing", {{"rule", rule}}, firing);

    out.family("cerberus_notifications_total", "counter",
               "Delivery attempts since cerberus started, by receiver and outcome: sent, "
               "retried (failed, tried again later) or failed (refused, or given up).");
    for (const auto& [key, count] : snapshot.notifications)
        out.sample("cerberus_notifications_total",
                   {{"receiver", key.first}, {"outcome", key.second}}, count);

    if (snapshot.outbox_pending) {
        out.family("cerberus_outbox_pending", "gauge",
                   "Notifications in the outbox still to deliver (status pending).");
        out.sample("cerberus_outbox_pending", {}, std::to_string(*snapshot.outbox_pending));
    }
}

// The daemon's own health: what it follows, its bus, its last reconcile, its rules.
void writeDaemonState(TextWriter& out, const MetricsSnapshot& snapshot) {
    out.family("cerberus_units_tracked", "gauge", "Units of the init system being followed.");
    out.sample("cerberus_units_tracked", {}, snapshot.units_tracked);
    out.family("cerberus_bus_connected", "gauge",
               "1 while cerberus is connected to systemd's bus, 0 while it reconnects.");
    out.sample("cerberus_bus_connected", {}, snapshot.bus_connected ? 1 : 0);

    if (snapshot.last_reconcile_usec) {
        out.family("cerberus_last_reconcile_timestamp_seconds", "gauge",
                   "When every unit was last read again and measured against the history "
                   "(start-up, reconnect, daemon-reload), in Unix seconds.");
        out.sample("cerberus_last_reconcile_timestamp_seconds", {},
                   seconds(*snapshot.last_reconcile_usec));
    }

    out.family("cerberus_unseen_run_ends_total", "counter",
               "Runs that ended while cerberus was not watching, found at reconciles: how each "
               "ended was read from the manager's journal (how=\"journal\") or, not there, "
               "guessed (how=\"guessed\").");
    out.sample("cerberus_unseen_run_ends_total", {{"how", "journal"}}, snapshot.unseen_ends_told);
    out.sample("cerberus_unseen_run_ends_total", {{"how", "guessed"}},
               snapshot.unseen_ends_guessed);

    out.family("cerberus_rules_reload_success", "gauge",
               "1 if the last load of the rules (start-up or SIGHUP) was accepted, 0 if it was "
               "refused and the previous rules stay in force.");
    out.sample("cerberus_rules_reload_success", {}, snapshot.rules_reload.success ? 1 : 0);
    if (snapshot.rules_reload.last_success_usec) {
        out.family("cerberus_rules_last_reload_timestamp_seconds", "gauge",
                   "When the rules in force were loaded (start-up or an accepted SIGHUP), in "
                   "Unix seconds.");
        out.sample("cerberus_rules_last_reload_timestamp_seconds", {},
                   seconds(*snapshot.rules_reload.last_success_usec));
    }
}

// One counter of UnitCounts (`count`) as a family with a series per unit listed.
void writeUnitCounter(TextWriter& out, const MetricsSnapshot& snapshot, std::string_view name,
                      const std::string& help, std::uint64_t UnitCounts::*count) {
    out.family(name, "counter", help);
    if (!snapshot.unit_counts) return;
    for (const auto& [unit, counts] : *snapshot.unit_counts)
        out.sample(name, {{"unit", unit}, {"host", snapshot.host}}, counts.*count);
}

void writeUnitSeries(TextWriter& out, const MetricsSnapshot& snapshot) {
    const std::string units_max = std::to_string(METRICS_UNITS_MAX);
    writeUnitCounter(out, snapshot, "cerberus_unit_restarts_total",
                     "Automatic restarts of the unit observed since cerberus started (rows of "
                     "event restart); at most " +
                         units_max + " units are listed.",
                     &UnitCounts::restarts);
    writeUnitCounter(out, snapshot, "cerberus_unit_crashes_total",
                     "Crashes of the unit observed since cerberus started (rows of event crash); "
                     "at most " +
                         units_max + " units are listed.",
                     &UnitCounts::crashes);
    out.family("cerberus_unit_series_dropped_total", "counter",
               "Units that restarted or crashed since cerberus started but have no "
               "cerberus_unit_* series, because " +
                   units_max + " units with counts had them.");
    out.sample("cerberus_unit_series_dropped_total", {}, snapshot.unit_series_dropped);
}

// The process_* series every Prometheus client library exports.
void writeProcess(TextWriter& out, const ProcessStats& process) {
    out.family("process_cpu_seconds_total", "counter",
               "Total user and system CPU time spent in seconds.");
    out.sample("process_cpu_seconds_total", {}, decimal(process.cpu_seconds));
    if (process.open_fds) {
        out.family("process_open_fds", "gauge", "Number of open file descriptors.");
        out.sample("process_open_fds", {}, *process.open_fds);
    }
    if (process.max_fds) {
        out.family("process_max_fds", "gauge", "Maximum number of open file descriptors.");
        out.sample("process_max_fds", {}, *process.max_fds);
    }
    out.family("process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.");
    out.sample("process_virtual_memory_bytes", {}, process.virtual_bytes);
    out.family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    out.sample("process_resident_memory_bytes", {}, process.resident_bytes);
    out.family("process_start_time_seconds", "gauge",
               "Start time of the process since unix epoch in seconds.");
    out.sample("process_start_time_seconds", {}, decimal(process.start_time_seconds));
}

}  // namespace

std::string renderMetrics(const MetricsSnapshot& snapshot,
                          const std::optional<ProcessStats>& process) {
    TextWriter out;
    out.family("cerberus_build_info", "gauge", "The running cerberus version; always 1.");
    out.sample("cerberus_build_info", {{"version", CERBERUS_VERSION}}, 1);
    writeTransitions(out, snapshot);
    writeAlertsAndDeliveries(out, snapshot);
    writeDaemonState(out, snapshot);
    writeUnitSeries(out, snapshot);
    if (process) writeProcess(out, *process);
    return out.take();
}

// A small server of our own, rather than cpp-httplib 0.11.4 (Debian 12): its accept loop
// takes every connection and queues it without bound (TaskQueue::enqueue cannot refuse one),
// and its timeouts apply to each read, so ten idle clients held both workers and a thousand
// took every file descriptor the daemon had. Here one thread serves everything with epoll:
// a bounded number of connections, each answered or closed by one deadline.
struct MetricsServer::Impl {
    struct Connection {
        core::UniqueFd fd;
        core::Usec accepted_mono = 0;
        std::string request;   // the head read so far
        std::string response;  // set once the request is complete
        std::size_t sent = 0;
        bool draining = false;  // answered; reading until the client closes
    };

    core::UniqueFd listen;
    core::UniqueFd epoll;
    core::UniqueFd wake;  // an eventfd: stop
    std::map<int, Connection> connections;
    std::optional<core::Usec> accept_paused_until;
    std::thread thread;
    std::mutex mutex;
    std::shared_ptr<const MetricsSnapshot> latest = std::make_shared<MetricsSnapshot>();

    std::shared_ptr<const MetricsSnapshot> current() {
        std::lock_guard lock(mutex);
        return latest;
    }

    // false, with errno, when epoll refuses (out of memory or of max_user_watches).
    bool watch(int fd, std::uint32_t events, int op) const {
        epoll_event ev{};
        ev.events = events;
        ev.data.fd = fd;
        return epoll_ctl(epoll.get(), op, fd, &ev) == 0;
    }

    void serve();
    bool dispatch(const epoll_event& event, core::Usec now);
    void expire(core::Usec now);
    int timeoutMs(core::Usec now) const;
    void acceptAll(core::Usec now);
    void makeRoom();
    void onReadable(Connection& c);
    void onWritable(Connection& c);
    void close(int fd) { connections.erase(fd); }  // closing the fd leaves the epoll set
};

namespace {

std::string httpResponse(std::string_view status, std::string_view content_type,
                         const std::string& body, bool head) {
    std::string out =
        "HTTP/1.1 " + std::string(status) + "\r\nContent-Type: " + std::string(content_type) +
        "\r\nContent-Length: " + std::to_string(body.size()) + "\r\nConnection: close\r\n";
    if (status.starts_with("405")) out += "Allow: GET, HEAD\r\n";
    out += "\r\n";
    if (!head) out += body;
    return out;
}

// The answer to one request head (everything up to the blank line).
std::string answer(std::string_view head, const MetricsSnapshot& snapshot) {
    const std::string_view line = head.substr(0, head.find_first_of("\r\n"));
    const auto first = line.find(' ');
    const auto second = first == std::string_view::npos ? first : line.find(' ', first + 1);
    if (second == std::string_view::npos || !line.substr(second + 1).starts_with("HTTP/1."))
        return httpResponse("400 Bad Request", "text/plain", "not an HTTP/1 request\n", false);
    const std::string_view method = line.substr(0, first);
    std::string_view target = line.substr(first + 1, second - first - 1);
    target = target.substr(0, target.find('?'));
    if (target != METRICS_PATH)
        return httpResponse("404 Not Found", "text/plain", "only /metrics is served\n",
                            method == "HEAD");
    if (method != "GET" && method != "HEAD")
        return httpResponse("405 Method Not Allowed", "text/plain", "use GET\n", false);
    return httpResponse("200 OK", CONTENT_TYPE, renderMetrics(snapshot, readProcessStats()),
                        method == "HEAD");
}

}  // namespace

int MetricsServer::Impl::timeoutMs(core::Usec now) const {
    std::optional<core::Usec> deadline = accept_paused_until;
    for (const auto& [fd, c] : connections) {
        const core::Usec at = c.accepted_mono + METRICS_REQUEST_TIMEOUT_USEC;
        if (!deadline || at < *deadline) deadline = at;
    }
    if (!deadline) return -1;
    if (*deadline <= now) return 0;
    return static_cast<int>((*deadline - now + core::USEC_PER_MSEC - 1) / core::USEC_PER_MSEC);
}

// At the cap, the connection that has waited longest for its request goes: idle clients
// then cost a scraper nothing, whose request arrives with its connection.
void MetricsServer::Impl::makeRoom() {
    if (connections.size() < METRICS_CONNECTIONS_MAX) return;
    auto oldest = connections.end();
    for (auto it = connections.begin(); it != connections.end(); ++it)
        if (it->second.response.empty() &&
            (oldest == connections.end() ||
             it->second.accepted_mono < oldest->second.accepted_mono))
            oldest = it;
    if (oldest == connections.end()) oldest = connections.begin();
    connections.erase(oldest);
}

void MetricsServer::Impl::acceptAll(core::Usec now) {
    // Bounded: at most a listen backlog's worth per wakeup.
    for (int i = 0; i < METRICS_ACCEPTS_PER_WAKEUP; ++i) {
        core::UniqueFd fd(accept4(listen.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
        if (!fd) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                // Out of descriptors or memory: the pending connection waits in the backlog.
                // Still watched when this fails: accept is tried again at each wakeup.
                (void)watch(listen.get(), 0, EPOLL_CTL_MOD);
                accept_paused_until = now + METRICS_ACCEPT_PAUSE_USEC;
            }
            return;  // EAGAIN: nothing left; anything else concerns that one connection
        }
        makeRoom();
        const int raw = fd.get();
        if (!watch(raw, EPOLLIN, EPOLL_CTL_ADD)) continue;  // closed: the client sees a reset
        connections[raw] = Connection{std::move(fd), now, {}, {}, 0, false};
    }
}

void MetricsServer::Impl::onReadable(Connection& c) {
    char buffer[4096];
    while (true) {
        const ssize_t n = recv(c.fd.get(), buffer, sizeof buffer, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) break;
        if (n <= 0) {
            close(c.fd.get());  // closed by the client, or reset
            return;
        }
        if (!c.response.empty()) continue;  // answered: what follows the head is dropped
        c.request.append(buffer, static_cast<std::size_t>(n));
        if (c.request.find("\r\n\r\n") != std::string::npos ||
            c.request.find("\n\n") != std::string::npos) {
            c.response = answer(c.request, *current());
        } else if (c.request.size() > METRICS_REQUEST_HEAD_MAX) {
            c.response = httpResponse("431 Request Header Fields Too Large", "text/plain",
                                      "the request head is too long\n", false);
        }
        if (!c.response.empty()) c.request = std::string();
    }
    if (!c.response.empty()) onWritable(c);
}

void MetricsServer::Impl::onWritable(Connection& c) {
    const int fd = c.fd.get();
    while (c.sent < c.response.size()) {
        const ssize_t n = send(fd, c.response.data() + c.sent, c.response.size() - c.sent,
                               MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && errno == EAGAIN) {
            if (!watch(fd, EPOLLIN | EPOLLOUT, EPOLL_CTL_MOD)) close(fd);  // cannot wait for it
            return;
        }
        if (n < 0) {
            close(fd);
            return;
        }
        c.sent += static_cast<std::size_t>(n);
    }
    // Answered. Closing now, with a request byte unread, would reset the connection and could
    // lose the answer: half-close and wait for the client's end, within the same deadline.
    if (!c.draining) {
        c.draining = true;
        // The client has gone already, or its end cannot be awaited: nothing left to keep.
        if (shutdown(fd, SHUT_WR) < 0 || !watch(fd, EPOLLIN, EPOLL_CTL_MOD)) close(fd);
    }
}

void MetricsServer::Impl::serve() {
    if (!watch(listen.get(), EPOLLIN, EPOLL_CTL_ADD) ||
        !watch(wake.get(), EPOLLIN, EPOLL_CTL_ADD)) {
        core::log(core::Priority::Err,
                  std::string("/metrics does not answer: cannot watch its sockets: ") +
                      std::strerror(errno));
        return;
    }
    const core::SystemClock clock;
    epoll_event events[16];
    while (true) {
        const int n = epoll_wait(epoll.get(), events, 16, timeoutMs(clock.monotonic()));
        if (n < 0 && errno != EINTR) {
            core::log(core::Priority::Err,
                      std::string("/metrics stops answering: epoll_wait failed: ") +
                          std::strerror(errno));
            return;
        }
        const core::Usec now = clock.monotonic();
        for (int i = 0; i < n; ++i)
            if (!dispatch(events[i], now)) return;
        expire(now);
    }
}

// false when the event asks the server to stop.
bool MetricsServer::Impl::dispatch(const epoll_event& event, core::Usec now) {
    const int fd = event.data.fd;
    if (fd == wake.get()) return false;
    if (fd == listen.get()) {
        acceptAll(now);
        return true;
    }
    const auto it = connections.find(fd);
    if (it == connections.end()) return true;  // closed earlier in this batch
    if (event.events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        onReadable(it->second);
    else if (event.events & EPOLLOUT)
        onWritable(it->second);
    return true;
}

// Resumes accepting after a pause and closes the connections past their deadline.
void MetricsServer::Impl::expire(core::Usec now) {
    if (accept_paused_until && *accept_paused_until <= now) {
        accept_paused_until.reset();
        // Still paused: tried again after another pause.
        if (!watch(listen.get(), EPOLLIN, EPOLL_CTL_MOD))
            accept_paused_until = now + METRICS_ACCEPT_PAUSE_USEC;
    }
    std::erase_if(connections, [now](const auto& entry) {
        return now >= entry.second.accepted_mono + METRICS_REQUEST_TIMEOUT_USEC;
    });
}

MetricsServer::MetricsServer(const MetricsAddress& address) : impl_(std::make_unique<Impl>()) {
    const auto fail = [&address](const std::string& reason) {
        return core::Error(core::ExitCode::Failure,
                           "cannot serve --metrics on " + address.describe() + ": " + reason);
    };
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    addrinfo* found = nullptr;
    if (getaddrinfo(address.host.c_str(), std::to_string(address.port).c_str(), &hints, &found) !=
            0 ||
        found == nullptr)
        throw fail("the host cannot be resolved");
    const std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> owned(found, &freeaddrinfo);
    int error = 0;
    for (const addrinfo* a = found; a != nullptr && !impl_->listen; a = a->ai_next) {
        core::UniqueFd fd(
            socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol));
        // SO_REUSEADDR allows a quick restart; no SO_REUSEPORT, which would let a second
        // cerberus share the port silently.
        int yes = 1;
        if (!fd || setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes) < 0 ||
            bind(fd.get(), a->ai_addr, a->ai_addrlen) < 0 ||
            ::listen(fd.get(), METRICS_LISTEN_BACKLOG) < 0) {
            error = errno;
            continue;
        }
        impl_->listen = std::move(fd);
    }
    if (!impl_->listen)
        throw fail(error == EADDRINUSE
                       ? "the port is in use; stop what listens there or choose another port"
                       : std::string(std::strerror(error)));
    impl_->epoll = core::UniqueFd(epoll_create1(EPOLL_CLOEXEC));
    impl_->wake = core::UniqueFd(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!impl_->epoll || !impl_->wake) throw fail(std::strerror(errno));
}

MetricsServer::~MetricsServer() {
    if (!impl_->thread.joinable()) return;
    const std::uint64_t one = 1;
    if (write(impl_->wake.get(), &one, sizeof one) < 0) {
        // An eventfd write fails only when its counter is full: it is signalled already.
    }
    impl_->thread.join();
}

void MetricsServer::start() {
    impl_->thread = core::startThreadWithoutSignals([impl = impl_.get()] { impl->serve(); });
}

void MetricsServer::publish(MetricsSnapshot snapshot) {
    std::shared_ptr<const MetricsSnapshot> next =
        std::make_shared<const MetricsSnapshot>(std::move(snapshot));
    {
        std::lock_guard lock(impl_->mutex);
        impl_->latest.swap(next);
    }
    // The previous snapshot is freed here, outside the lock, unless a scrape still reads it.
}

}  // namespace cerberus::daemon
