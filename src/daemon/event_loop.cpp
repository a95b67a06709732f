#include "daemon/event_loop.hpp"

#include <sys/epoll.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

#include "core/error.hpp"
#include "core/log.hpp"

namespace cerberus::daemon {

using core::Usec;
using core::USEC_PER_MSEC;

namespace {

constexpr Usec TIMEOUT_MAX_USEC = 3600 * core::USEC_PER_SEC;

[[noreturn]] void fail(const std::string& what) {
    throw core::Error(core::ExitCode::Failure, what + ": " + std::strerror(errno));
}

}  // namespace

int timeoutMs(std::optional<Usec> deadline, Usec now) {
    if (!deadline) return -1;
    if (*deadline <= now) return 0;
    const Usec wait = std::min(*deadline - now, TIMEOUT_MAX_USEC);
    return static_cast<int>((wait + USEC_PER_MSEC - 1) / USEC_PER_MSEC);
}

std::optional<Usec> monotonicDeadline(std::optional<Usec> wall_usec, Usec now,
                                      const core::Clock& clock) {
    if (!wall_usec) return std::nullopt;
    return now + std::max<Usec>(0, *wall_usec - clock.realtime());
}

EventLoop::EventLoop(const core::Clock& clock)
    : clock_(clock), epoll_(epoll_create1(EPOLL_CLOEXEC)) {
    if (!epoll_) fail("cannot create an epoll fd");
}

void EventLoop::add(EventSource& source) { entries_.push_back({&source, std::nullopt}); }

// A source's fd may change (the bus's, across reconnects) or go away with its connection.
void EventLoop::updateWatch(Entry& entry) {
    const auto wanted = entry.source->watch();
    if (wanted == entry.watching) return;
    if (entry.watching && (!wanted || wanted->fd != entry.watching->fd))
        // An fd closed with its connection has left the set already: ENOENT or EBADF then.
        (void)epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, entry.watching->fd, nullptr);
    entry.watching.reset();
    if (!wanted || wanted->fd < 0) return;
    epoll_event ev{};
    ev.events = wanted->events;
    ev.data.fd = wanted->fd;
    int rc = epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, wanted->fd, &ev);
    // Known under that number already (a reused fd, or only its events changed).
    if (rc < 0 && errno == EEXIST) rc = epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, wanted->fd, &ev);
    if (rc < 0) {
        // Not watched yet: tried again before the next wait.
        if (!entry.watch_failed)
            core::log(core::Priority::Err, "cannot watch fd " + std::to_string(wanted->fd) +
                                               " for events: " + std::strerror(errno) +
                                               "; retrying");
        entry.watch_failed = true;
        return;
    }
    entry.watch_failed = false;
    entry.watching = wanted;
}

std::optional<Usec> EventLoop::earliestDeadline(Usec now) const {
    std::optional<Usec> earliest;
    for (const auto& entry : entries_)
        if (const auto at = entry.source->deadline(now); at && (!earliest || *at < *earliest))
            earliest = at;
    return earliest;
}

void EventLoop::run() {
    epoll_event events[8];
    while (!stopping_) {
        for (auto& entry : entries_) updateWatch(entry);
        const Usec before = clock_.monotonic();
        const int n =
            epoll_wait(epoll_.get(), events, 8, timeoutMs(earliestDeadline(before), before));
        if (n < 0 && errno != EINTR) fail("epoll_wait failed");
        const Usec now = clock_.monotonic();
        for (auto& entry : entries_) entry.source->onWake(now);
    }
}

}  // namespace cerberus::daemon
