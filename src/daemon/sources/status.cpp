#include "daemon/sources/status.hpp"

#include <systemd/sd-daemon.h>

#include <cstdio>

#include "core/text.hpp"
#include "daemon/alerting.hpp"
#include "daemon/log_line.hpp"
#include "daemon/sources/deliveries.hpp"
#include "daemon/sources/store_sink.hpp"
#include "ingest/systemd_source.hpp"
#include "store/store.hpp"

namespace cerberus::daemon {

using core::Priority;
using core::Usec;
using detail::logLine;

void sdNotify(const std::string& message) {
    // Below 0: systemd's socket went away; 0: no socket (not run by systemd). Either way
    // there is nobody else to tell.
    (void)sd_notify(0, message.c_str());
}

std::optional<Usec> watchdogInterval() {
    std::uint64_t watchdog_usec = 0;
    if (sd_watchdog_enabled(0, &watchdog_usec) <= 0 || watchdog_usec == 0) return std::nullopt;
    return static_cast<Usec>(watchdog_usec / 2);
}

std::optional<Usec> Watchdog::deadline(Usec /*now*/) const {
    if (!every_) return std::nullopt;
    return next_at_;
}

void Watchdog::onWake(Usec now) {
    if (!every_ || now < next_at_) return;
    notify_("WATCHDOG=1");
    next_at_ = now + *every_;
}

void Heartbeat::onWake(Usec now) {
    if (now < next_at_) return;
    writer_.beat();
    next_at_ = now + HEARTBEAT_EVERY_USEC;
}

void StatusPublisher::onWake(Usec /*now*/) { publish(); }

void StatusPublisher::publish() {
    const auto& stats = in_.bus.stats();
    const Seen seen{in_.sink.transitions(),    in_.writer.dropped(),   stats.reconciles,
                    stats.unseen_ends_guessed, in_.bus.unitsTracked(), in_.bus.connected()};
    if (seen.reconciles != seen_.reconciles) last_reconcile_usec_ = clock_.realtime();
    if (seen.ends_guessed != seen_.ends_guessed) warnGuessedEnds(seen_.ends_guessed);
    if (!changed_ && seen == seen_) return;
    seen_ = seen;
    changed_ = false;
    auto firing = in_.alerting.firingByRule();
    std::size_t total = 0;
    for (const auto& [rule, count] : firing) total += count;
    status(total);
    if (in_.metrics) in_.metrics->publish(snapshot(std::move(firing)));
}

// Said once per reconcile that had to guess: the history then says less than it could.
void StatusPublisher::warnGuessedEnds(std::uint64_t guessed_before) const {
    const std::uint64_t guessed = in_.bus.stats().unseen_ends_guessed - guessed_before;
    logLine(Priority::Warning,
            "%s ended while cerberus was not watching, and the manager's journal does not say how: "
            "stored as crashes unless an exit in view says otherwise (make the journal readable "
            "to cerberus: root, or the systemd-journal group)",
            core::plural(guessed, "run").c_str());
}

void StatusPublisher::status(std::size_t firing) {
    char text[256];
    // Truncated at worst (a long D-Bus address), which STATUS= may well be.
    if (in_.bus.connected())
        (void)std::snprintf(text, sizeof text, "Tracking %s, %s firing",
                            core::plural(in_.bus.unitsTracked(), "unit").c_str(),
                            core::plural(firing, "alert").c_str());
    else
        (void)std::snprintf(text, sizeof text, "Reconnecting to the %s; %s tracked, %s firing",
                            bus_name_.c_str(), core::plural(in_.bus.unitsTracked(), "unit").c_str(),
                            core::plural(firing, "alert").c_str());
    if (status_ == text) return;
    status_ = text;
    notify_("STATUS=" + status_);
}

MetricsSnapshot StatusPublisher::snapshot(std::map<std::string, std::size_t> firing) const {
    MetricsSnapshot out;
    out.transitions = in_.sink.byEvent();
    out.transitions_dropped = in_.writer.dropped();
    out.alerts_firing = std::move(firing);
    out.notifications = in_.deliveries.notifications();
    // Every configured receiver shows each outcome, 0 until it happens.
    for (const auto& receiver : in_.alerting.rules().receivers)
        for (const auto outcome : {OUTCOME_SENT, OUTCOME_RETRIED, OUTCOME_FAILED})
            out.notifications.try_emplace({receiver.name, std::string(outcome)}, 0);
    out.outbox_pending = in_.deliveries.outboxPending();
    out.units_tracked = in_.bus.unitsTracked();
    out.bus_connected = in_.bus.connected();
    out.last_reconcile_usec = last_reconcile_usec_;
    out.unseen_ends_told = in_.bus.stats().unseen_ends_told;
    out.unseen_ends_guessed = in_.bus.stats().unseen_ends_guessed;
    out.rules_reload = rules_reload_;
    out.host = in_.alerting.host();
    out.unit_counts = in_.sink.units().counts();
    out.unit_series_dropped = in_.sink.units().dropped();
    return out;
}

}  // namespace cerberus::daemon
