#pragma once

// The daemon's event loop: event sources, each with its own state, registered once and
// woken in the order they were added. A source may watch one fd (which may change, as the
// bus's does across reconnects) and name a monotonic deadline; the loop sleeps in
// epoll_wait until an fd is ready or the earliest deadline, then wakes every source, which
// checks for itself whether anything is due. One iteration is one pass over the sources.

#include <cstdint>
#include <optional>
#include <vector>

#include "core/fd.hpp"
#include "core/time.hpp"

namespace cerberus::daemon {

// An fd and the epoll events to wait for on it.
struct Watch {
    int fd = -1;
    std::uint32_t events = 0;
    bool operator==(const Watch&) const = default;
};

class EventSource {
public:
    virtual ~EventSource() = default;
    // The fd to wait on, read before each wait; nullopt: none (now).
    virtual std::optional<Watch> watch() const { return std::nullopt; }
    // When to be woken at the latest (monotonic); nullopt: no deadline.
    virtual std::optional<core::Usec> deadline(core::Usec now) const = 0;
    // Called once per iteration; `now` is the monotonic time after the wait.
    virtual void onWake(core::Usec now) = 0;
};

// Milliseconds for epoll_wait from now to `deadline`: -1 for none, rounded up so that the
// loop never wakes a millisecond early and spins, at most an hour.
int timeoutMs(std::optional<core::Usec> deadline, core::Usec now);

// The evaluator's and the dispatcher's deadlines are wall-clock times; the loop sleeps on the
// monotonic clock. A wall time already past is due now.
std::optional<core::Usec> monotonicDeadline(std::optional<core::Usec> wall_usec, core::Usec now,
                                            const core::Clock& clock);

class EventLoop {
public:
    // Throws core::Error(Failure) when no epoll fd can be had.
    explicit EventLoop(const core::Clock& clock);
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // The source must outlive the loop's run().
    void add(EventSource& source);
    // Runs iterations until stop(); throws core::Error(Failure) when epoll_wait fails.
    void run();
    // Ends run() once the current iteration is over.
    void stop() { stopping_ = true; }

private:
    struct Entry {
        EventSource* source = nullptr;
        std::optional<Watch> watching;  // what epoll holds for it now
        bool watch_failed = false;      // logged once until it works
    };
    void updateWatch(Entry& entry);
    std::optional<core::Usec> earliestDeadline(core::Usec now) const;

    const core::Clock& clock_;
    core::UniqueFd epoll_;
    std::vector<Entry> entries_;
    bool stopping_ = false;
};

}  // namespace cerberus::daemon
