#pragma once

// The evaluator's deadlines: a window that ends, a silence that expires, a repeat due.

#include <functional>

#include "daemon/event_loop.hpp"

namespace cerberus::daemon {

class Alerting;

class AlertTimer final : public EventSource {
public:
    // `on_tick` runs after each tick (what STATUS= and /metrics show may have changed).
    AlertTimer(Alerting& alerting, const core::Clock& clock, std::function<void()> on_tick)
        : alerting_(alerting), clock_(clock), on_tick_(std::move(on_tick)) {}
    std::optional<core::Usec> deadline(core::Usec now) const override;
    void onWake(core::Usec now) override;

private:
    Alerting& alerting_;
    const core::Clock& clock_;
    std::function<void()> on_tick_;
};

}  // namespace cerberus::daemon
