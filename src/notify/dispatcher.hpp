#pragma once

// Delivers the outbox: each pending notification goes to its receiver over HttpClient,
// retried with backoff until it is sent, refused for good, or too old. The dispatcher
// keeps no durable state of its own: the daemon loads rows from the store with add() and
// writes back what takeOutcomes() returns.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "core/log.hpp"
#include "core/time.hpp"
#include "notify/http.hpp"
#include "notify/payload.hpp"
#include "notify/secrets.hpp"

namespace cerberus::notify {

inline constexpr core::Usec BACKOFF_MIN_USEC = core::USEC_PER_SEC;
inline constexpr core::Usec BACKOFF_MAX_USEC = 5 * core::USEC_PER_MIN;
inline constexpr core::Usec RETRY_AFTER_MAX_USEC = core::USEC_PER_HOUR;
inline constexpr std::size_t IN_FLIGHT_MAX = 64;
inline constexpr std::size_t IN_FLIGHT_PER_RECEIVER_MAX = 8;
// Alertmanager keeps an alert this many re-send periods after the last post.
inline constexpr int ALERTMANAGER_ENDS_AT_PERIODS = 4;

struct Delivery {
    std::int64_t id = 0;  // the outbox row
    std::int64_t alert_id = 0;
    std::string receiver;
    Notification notification;
    std::int64_t attempts = 0;
    core::Usec next_attempt_usec = 0;  // wall clock
    core::Usec created_usec = 0;
};

enum class Status : std::uint8_t { Pending, Sent, Failed };
std::string_view toString(Status status);

struct Outcome {
    std::int64_t id = 0;
    std::string receiver;
    Status status = Status::Pending;
    std::int64_t attempts = 0;
    core::Usec next_attempt_usec = 0;
    std::string last_error;  // why it is being retried or has failed; never a secret
    std::optional<core::Usec> sent_usec;
    bool permanent = false;  // refused by the receiver (not retried)
    long http_status = 0;
    std::string response;  // the receiver's answer (capped)
};

// The retry policy, pure. `random` is any 64-bit random value (the jitter).
core::Usec backoffUsec(std::int64_t attempts, std::uint64_t random);
// Seconds or an HTTP date; nullopt when absent or unreadable. Capped at RETRY_AFTER_MAX_USEC.
std::optional<core::Usec> parseRetryAfter(std::string_view value, core::Usec now_usec);
// What one attempt (already counted in `attempts`) means for the row.
Outcome decide(const Delivery& delivery, const HttpResponse& response,
               core::Usec give_up_after_usec, core::Usec now_usec, std::uint64_t random);

class Dispatcher {
public:
    using Log = std::function<void(core::Priority, const std::string&)>;

    Dispatcher(HttpClient& http, const core::Clock& clock, Log log);

    // The receivers to send to (start-up, reload). A delivery whose receiver is not
    // among them fails, with the reason.
    void setTargets(std::map<std::string, Target> targets);
    void add(Delivery delivery);
    // A firing alert already told to an Alertmanager receiver before a restart: it is
    // posted again every `resend_every` like the others.
    void rememberFiring(const std::string& receiver, std::int64_t alert_id, Notification n);

    // Starts every delivery that is due and may go (one at a time per receiver and alert,
    // oldest first) and the Alertmanager re-sends that are due.
    void run();
    std::optional<core::Usec> nextDeadline() const;  // wall clock
    std::vector<Outcome> takeOutcomes();

    std::size_t queued() const { return queue_.size(); }
    std::size_t inFlight() const { return in_flight_.size(); }

private:
    struct AlertmanagerState {
        std::map<std::int64_t, Notification> firing;  // by alert id
        core::Usec resend_at = 0;
        bool resending = false;
    };

    void start(Delivery& delivery, const Target& target, core::Usec now);
    void startAlertmanager(Delivery& delivery, const Target& target, core::Usec now);
    void complete(std::int64_t id, const HttpResponse& response);
    void record(Outcome outcome);
    void resend(const std::string& name, AlertmanagerState& state, const Target& target,
                core::Usec now);
    void noteFailure(const std::string& receiver, const std::string& what);
    void noteSuccess(const std::string& receiver);
    std::uint64_t random();

    HttpClient& http_;
    const core::Clock& clock_;
    Log log_;
    std::map<std::string, Target> targets_;
    std::map<std::int64_t, Delivery> queue_;  // by row id: oldest first
    std::set<std::int64_t> in_flight_;
    std::map<std::int64_t, std::set<std::size_t>> urls_done_;  // alertmanager rows
    std::map<std::int64_t, HttpResponse> urls_failed_;         // first failure per row
    std::map<std::int64_t, std::size_t> urls_waiting_;
    std::map<std::string, AlertmanagerState> alertmanagers_;
    std::set<std::string> failing_;  // receivers whose last attempt failed (logged once)
    std::vector<Outcome> outcomes_;
    std::uint64_t random_state_;
};

// The headers and body of one request to a receiver (webhook signing included).
HttpRequest buildRequest(const Target& target, const Notification& n, core::Usec now_usec);

// The line the `log` receiver writes, and its priority in the journal: a firing alert's
// severity (critical and error are errors), a resolve a notice.
std::string logLine(const Notification& n);
core::Priority logPriority(const Notification& n);

}  // namespace cerberus::notify
