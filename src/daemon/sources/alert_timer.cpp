#include "daemon/sources/alert_timer.hpp"

#include "daemon/alerting.hpp"

namespace cerberus::daemon {

std::optional<core::Usec> AlertTimer::deadline(core::Usec now) const {
    return monotonicDeadline(alerting_.nextDeadline(), now, clock_);
}

void AlertTimer::onWake(core::Usec now) {
    const auto due = deadline(now);
    if (!due || *due > now) return;
    alerting_.tick(clock_.realtime());
    on_tick_();
}

}  // namespace cerberus::daemon
