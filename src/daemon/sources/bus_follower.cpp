#include "daemon/sources/bus_follower.hpp"

#include "core/text.hpp"
#include "daemon/log_line.hpp"
#include "ingest/systemd_source.hpp"

namespace cerberus::daemon {

using core::Priority;
using core::Usec;
using detail::logLine;

bool SystemdBus::connected() const { return source_.connected(); }

// At start-up a bus that is not there ends the program; here the same failure is one more
// attempt.
std::optional<std::string> SystemdBus::connect() { return source_.connect(); }

bool SystemdBus::process() { return source_.process(); }
std::string SystemdBus::lastError() const { return source_.lastError(); }
std::size_t SystemdBus::unitsTracked() const { return source_.unitsTracked(); }

std::optional<Watch> SystemdBus::watch() const {
    const auto poll = source_.pollData();
    if (poll.fd < 0) return std::nullopt;
    return Watch{poll.fd, poll.epoll_events};
}

std::optional<Usec> SystemdBus::deadline() const { return source_.pollData().deadline_mono; }

std::optional<Usec> BusFollower::deadline(Usec /*now*/) const {
    const auto bus = bus_.deadline();
    if (!reconnect_at_) return bus;
    return bus ? std::min(*bus, *reconnect_at_) : reconnect_at_;
}

void BusFollower::onWake(Usec now) {
    if (!bus_.connected()) return reconnect(now);
    if (bus_.process()) return;
    logLine(Priority::Err, "lost the %s: %s; reconnecting", name_.c_str(),
            bus_.lastError().c_str());
    backoff_.reset();
    reconnect_at_ = now + backoff_.next();
    failure_logged_ = false;
}

void BusFollower::reconnect(Usec now) {
    if (!reconnect_at_ || now < *reconnect_at_) return;
    const auto failure = bus_.connect();
    if (!failure && bus_.process()) {
        logLine(Priority::Notice, "reconnected to the %s; %s tracked", name_.c_str(),
                core::plural(bus_.unitsTracked(), "unit").c_str());
        reconnect_at_.reset();
        return;
    }
    if (failure && !failure_logged_) logLine(Priority::Warning, "%s; retrying", failure->c_str());
    if (failure) failure_logged_ = true;
    reconnect_at_ = now + backoff_.next();
}

}  // namespace cerberus::daemon
