#include "daemon/metrics.hpp"

#include <httplib.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/error.hpp"
#include "core/thread.hpp"

namespace cerberus::daemon {

namespace {

constexpr std::string_view CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";
// A scrape takes a millisecond; two threads keep one slow client from blocking the next.
constexpr std::size_t SCRAPE_THREADS = 2;

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
    std::snprintf(text, sizeof text, "%.3f", static_cast<double>(usec) / core::USEC_PER_SEC);
    return text;
}

}  // namespace

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

std::string renderMetrics(const MetricsSnapshot& snapshot) {
    TextWriter out;
    out.family("cerberus_build_info", "gauge", "The running cerberus version; always 1.");
    out.sample("cerberus_build_info", {{"version", CERBERUS_VERSION}}, 1);

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
    return out.take();
}

struct MetricsServer::Impl {
    httplib::Server server;
    std::thread thread;
    std::atomic<bool> finished{false};
    std::mutex mutex;
    std::shared_ptr<const MetricsSnapshot> latest = std::make_shared<MetricsSnapshot>();

    std::shared_ptr<const MetricsSnapshot> current() {
        std::lock_guard lock(mutex);
        return latest;
    }
};

MetricsServer::MetricsServer(const MetricsAddress& address) : impl_(std::make_unique<Impl>()) {
    auto& server = impl_->server;
    // httplib's default also sets SO_REUSEPORT, which would let a second cerberus share the
    // port silently; SO_REUSEADDR alone still allows a quick restart.
    server.set_socket_options([](int fd) {
        int yes = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    });
    server.new_task_queue = [] { return new httplib::ThreadPool(SCRAPE_THREADS); };
    server.Get("/metrics",
               [impl = impl_.get()](const httplib::Request&, httplib::Response& response) {
                   response.set_content(renderMetrics(*impl->current()), std::string(CONTENT_TYPE));
               });
    server.set_error_handler([](const httplib::Request&, httplib::Response& response) {
        if (response.status == 404) response.set_content("only /metrics is served\n", "text/plain");
    });
    errno = 0;
    if (!server.bind_to_port(address.host, address.port)) {
        const std::string reason =
            errno == EADDRINUSE
                ? "the port is in use; stop what listens there or choose another port"
            : errno != 0 ? std::string(std::strerror(errno))
                         : "the host cannot be resolved";
        throw core::Error(core::ExitCode::Failure,
                          "cannot serve --metrics on " + address.describe() + ": " + reason);
    }
}

MetricsServer::~MetricsServer() {
    if (!impl_->thread.joinable()) return;
    // stop() acts only on a running server: wait until the thread is listening (or failed).
    while (!impl_->server.is_running() && !impl_->finished) std::this_thread::yield();
    impl_->server.stop();
    impl_->thread.join();
}

void MetricsServer::start() {
    // The worker threads the server starts inherit its signal mask.
    impl_->thread = core::startThreadWithoutSignals([impl = impl_.get()] {
        impl->server.listen_after_bind();
        impl->finished = true;
    });
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
