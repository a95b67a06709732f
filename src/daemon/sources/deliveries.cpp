#include "daemon/sources/deliveries.hpp"

#include <poll.h>
#include <sys/epoll.h>

#include <algorithm>

#include "daemon/log_line.hpp"
#include "daemon/metrics.hpp"
#include "notify/dispatcher.hpp"
#include "notify/http.hpp"

namespace cerberus::daemon {

using core::Usec;

namespace {

std::string_view outcomeLabel(notify::Status status) {
    switch (status) {
    case notify::Status::Sent: return OUTCOME_SENT;
    case notify::Status::Pending: return OUTCOME_RETRIED;
    case notify::Status::Failed: return OUTCOME_FAILED;
    }
    return OUTCOME_FAILED;
}

}  // namespace

void DeliveryLog::record(const std::string& receiver, std::string_view outcome,
                         store::OutboxUpdate update) {
    ++notifications_[{receiver, std::string(outcome)}];
    writer_.updateNotification(std::move(update));
    outbox_changed_ = true;
    on_change_();
}

void DeliveryLog::collect(notify::Dispatcher& dispatcher) {
    for (auto& outcome : dispatcher.takeOutcomes()) {
        store::OutboxUpdate update;
        update.id = outcome.id;
        update.status = std::string(notify::toString(outcome.status));
        update.attempts = outcome.attempts;
        update.next_attempt_usec = outcome.next_attempt_usec;
        update.last_error = std::move(outcome.last_error);
        update.sent_usec = outcome.sent_usec;
        record(outcome.receiver, outcomeLabel(outcome.status), std::move(update));
    }
}

// A count that cannot be read is tried again after the next flush.
void DeliveryLog::countOutbox() {
    if (!outbox_changed_) return;
    const auto counts = store::countNotifications(db_);
    if (counts.ok()) {
        const auto pending = counts.value().find("pending");
        outbox_pending_ = pending == counts.value().end() ? 0 : pending->second;
        outbox_changed_ = false;
    } else {
        outbox_pending_.reset();
    }
    on_change_();
}

std::optional<Watch> Transfers::watch() const { return Watch{http_.fd(), EPOLLIN}; }

std::optional<Usec> Transfers::deadline(Usec /*now*/) const { return http_.deadline(); }

void Transfers::onWake(Usec /*now*/) {
    http_.process();
    log_.collect(dispatcher_);
}

void Transfers::drain(Usec give_up_at, const core::Clock& clock) {
    while (http_.inFlight() > 0) {
        const Usec now = clock.monotonic();
        if (now >= give_up_at) break;
        Usec wait = give_up_at - now;
        if (const auto at = http_.deadline()) wait = std::min(wait, std::max<Usec>(0, *at - now));
        pollfd pfd{http_.fd(), POLLIN, 0};
        // A failure (or EINTR) only ends this wait early; give_up_at bounds the loop.
        (void)poll(&pfd, 1, timeoutMs(now + wait, now));
        http_.process();
    }
    log_.collect(dispatcher_);
}

std::optional<Usec> OutboxFeeder::deadline(Usec now) const {
    return monotonicDeadline(dispatcher_.nextDeadline(), now, clock_);
}

void OutboxFeeder::onWake(Usec /*now*/) {
    load();
    dispatcher_.run();
    log_.collect(dispatcher_);
}

// A read of the outbox that fails is logged and tried again at the next wake.
void OutboxFeeder::load() {
    if (!stale_) return;
    auto rows = store::loadPendingNotifications(db_, loaded_);
    if (!rows.ok()) {
        detail::logLine(core::Priority::Err, "%s; retrying", rows.error().c_str());
        return;
    }
    for (auto& row : rows.value()) {
        loaded_ = std::max(loaded_, row.id);
        auto n = notify::decode(row.payload);
        if (!n) {
            failUnreadable(row);
            continue;
        }
        notify::Delivery d;
        d.id = row.id;
        d.alert_id = row.alert_id;
        d.receiver = row.receiver;
        d.notification = std::move(*n);
        d.attempts = row.attempts;
        d.next_attempt_usec = row.next_attempt_usec;
        d.created_usec = row.created_usec;
        dispatcher_.add(std::move(d));
    }
    stale_ = false;
}

// A payload that cannot be read (an edited database) is marked failed rather than retried
// forever.
void OutboxFeeder::failUnreadable(const store::PendingNotification& row) {
    store::OutboxUpdate update;
    update.id = row.id;
    update.status = "failed";
    update.attempts = row.attempts;
    update.last_error = "the payload is not a notification; not sent";
    log_.record(row.receiver, OUTCOME_FAILED, std::move(update));
}

}  // namespace cerberus::daemon
