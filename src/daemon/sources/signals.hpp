#pragma once

// SIGTERM and SIGINT stop the daemon, SIGHUP reloads its rules; read from a signalfd, so
// they are handled on the loop like any other event.

#include <functional>

#include "core/fd.hpp"
#include "daemon/event_loop.hpp"

namespace cerberus::daemon {

class Signals final : public EventSource {
public:
    // Blocks the three signals for the process and opens the signalfd; throws
    // core::Error(Failure) when it cannot.
    Signals(std::function<void()> on_stop, std::function<void()> on_reload);
    std::optional<Watch> watch() const override;
    std::optional<core::Usec> deadline(core::Usec /*now*/) const override { return std::nullopt; }
    void onWake(core::Usec now) override;

private:
    core::UniqueFd fd_;
    std::function<void()> on_stop_;
    std::function<void()> on_reload_;
};

}  // namespace cerberus::daemon
