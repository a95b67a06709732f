#include "notify/dispatcher.hpp"

#include <algorithm>
#include <charconv>
#include <ctime>
#include <utility>

#include "core/names.hpp"
#include "core/text.hpp"
#include "notify/signing.hpp"

namespace cerberus::notify {

namespace {

constexpr std::size_t REASON_BODY_MAX = 200;

bool succeeded(const HttpResponse& r) {
    return r.error.empty() && r.status >= 200 && r.status < 300;
}

bool retryable(const HttpResponse& r) {
    // SMTP: a 5xx reply is the server's final no (bad login, unknown recipient); a 4xx, a
    // failed connection or TLS handshake may pass later.
    if (r.mail) return r.status < 500 || r.status >= 600;
    return !r.error.empty() || r.status == 408 || r.status == 429 || r.status >= 500;
}

// "HTTP 500: <first line of the answer>" or the transport's error.
std::string reasonOf(const HttpResponse& r) {
    if (r.mail) {
        std::string code = r.status > 0 ? "SMTP " + std::to_string(r.status) : "";
        if (r.error.empty()) return code;
        return r.error + (code.empty() ? "" : " (" + code + ")");
    }
    if (!r.error.empty()) return r.error;
    std::string out = "HTTP " + std::to_string(r.status);
    std::string_view body = r.body;
    body = body.substr(0, body.find_first_of("\r\n"));
    if (!body.empty()) out += ": " + truncateUtf8(body, REASON_BODY_MAX);
    if (r.status >= 300 && r.status < 400)
        out += " (redirects are not followed; use the final URL)";
    return out;
}

std::string header(std::string_view name, std::string_view value) {
    return std::string(name) + ": " + std::string(value);
}

core::Usec endsAhead(const Target& target, core::Usec now) {
    return now + ALERTMANAGER_ENDS_AT_PERIODS * target.receiver.resend_every_usec;
}

// Walks the deliveries that may go once due, oldest first: the oldest of each receiver and
// alert (a resolve waits for its trigger), not in flight, of a receiver below its in-flight
// limit. `visit(id, delivery, receiver_in_flight)` raises the receiver's count when it starts
// one, and returns false to stop.
template <typename Queue, typename Visit>
void forEachMayGo(Queue& queue, const std::set<std::int64_t>& in_flight, Visit visit) {
    std::set<std::pair<std::string, std::int64_t>> blocked;
    std::map<std::string, std::size_t> per_receiver;
    for (const auto id : in_flight) ++per_receiver[queue.at(id).receiver];
    for (auto& [id, delivery] : queue) {
        if (!blocked.emplace(delivery.receiver, delivery.alert_id).second) continue;
        if (in_flight.count(id)) continue;
        // A receiver at its limit is woken by a completion, not by the clock.
        std::size_t& receiver_in_flight = per_receiver[delivery.receiver];
        if (receiver_in_flight >= IN_FLIGHT_PER_RECEIVER_MAX) continue;
        if (!visit(id, delivery, receiver_in_flight)) return;
    }
}

constexpr core::EnumName<Status> STATUS_NAMES[] = {
    {Status::Pending, "pending"}, {Status::Sent, "sent"}, {Status::Failed, "failed"}};

}  // namespace

std::string_view toString(Status status) { return core::nameOf(STATUS_NAMES, status); }

core::Usec backoffUsec(std::int64_t attempts, std::uint64_t random) {
    core::Usec base = BACKOFF_MIN_USEC;
    for (std::int64_t i = 1; i < attempts && base < BACKOFF_MAX_USEC; ++i) base *= 2;
    base = std::min(base, BACKOFF_MAX_USEC);
    // Jitter over the upper half: senders that failed together do not retry together.
    const auto half = static_cast<std::uint64_t>(base / 2);
    return static_cast<core::Usec>(half + random % (half + 1));
}

std::optional<core::Usec> parseRetryAfter(std::string_view value, core::Usec now_usec) {
    if (value.empty()) return std::nullopt;
    core::Usec delay = 0;
    std::int64_t seconds = 0;
    const auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ec == std::errc() && end == value.data() + value.size() && seconds >= 0) {
        delay = seconds > RETRY_AFTER_MAX_USEC / core::USEC_PER_SEC ? RETRY_AFTER_MAX_USEC
                                                                    : seconds * core::USEC_PER_SEC;
    } else {
        // An HTTP date: "Wed, 21 Oct 2015 07:28:00 GMT".
        std::tm tm{};
        const std::string text(value);
        const char* rest = strptime(text.c_str(), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        if (rest == nullptr || *rest != '\0') return std::nullopt;
        const core::Usec at = static_cast<core::Usec>(timegm(&tm)) * core::USEC_PER_SEC;
        delay = std::clamp<core::Usec>(at - now_usec, 0, RETRY_AFTER_MAX_USEC);
    }
    return delay;
}

Outcome decide(const Delivery& delivery, const HttpResponse& response,
               core::Usec give_up_after_usec, core::Usec now_usec, std::uint64_t random) {
    Outcome out;
    out.id = delivery.id;
    out.receiver = delivery.receiver;
    out.attempts = delivery.attempts;
    out.http_status = response.status;
    out.response = response.body;
    out.next_attempt_usec = delivery.next_attempt_usec;
    if (succeeded(response)) {
        out.status = Status::Sent;
        out.sent_usec = now_usec;
        return out;
    }
    const std::string reason = reasonOf(response);
    if (!retryable(response)) {
        out.status = Status::Failed;
        out.permanent = true;
        out.last_error = reason;
        return out;
    }
    core::Usec delay = backoffUsec(delivery.attempts, random);
    if (response.status == 429 || response.status == 503) {
        if (const auto after = parseRetryAfter(response.retry_after, now_usec)) delay = *after;
    }
    const core::Usec next = now_usec + delay;
    if (next > delivery.created_usec + give_up_after_usec) {
        out.status = Status::Failed;
        out.last_error = "gave up after " +
                         core::plural(static_cast<std::uint64_t>(delivery.attempts), "attempt") +
                         " in " + core::formatDuration(now_usec - delivery.created_usec) + ": " +
                         reason;
        return out;
    }
    out.status = Status::Pending;
    out.next_attempt_usec = next;
    out.last_error = reason;
    return out;
}

HttpRequest buildRequest(const Target& target, const Notification& n, core::Usec now_usec) {
    HttpRequest request;
    request.url = target.url;
    request.timeout_usec = target.receiver.timeout_usec;
    request.headers.push_back("Content-Type: application/json");
    switch (target.receiver.type) {
    case rules::ReceiverType::Slack: request.body = slackBody(n); break;
    case rules::ReceiverType::PagerDuty: request.body = pagerDutyBody(n, target.routing_key); break;
    case rules::ReceiverType::Alertmanager:
        request.body =
            alertmanagerBody(n, n.action == Action::Resolve ? n.resolved_usec.value_or(now_usec)
                                                            : endsAhead(target, now_usec));
        break;
    case rules::ReceiverType::Webhook: {
        request.body = webhookBody(n);
        const std::int64_t timestamp = now_usec / core::USEC_PER_SEC;
        request.headers.push_back(header("webhook-id", n.id));
        request.headers.push_back(header("webhook-timestamp", std::to_string(timestamp)));
        if (!target.signing_secret.empty())
            request.headers.push_back(
                header("webhook-signature",
                       webhookSignature(target.signing_secret, n.id, timestamp, request.body)));
        break;
    }
    case rules::ReceiverType::Email: {
        request.headers.clear();
        request.body = emailMessage(n, target.receiver, now_usec);
        MailEnvelope mail;
        mail.from = target.receiver.from.address;
        for (const auto& to : target.receiver.to) mail.to.push_back(to.address);
        mail.username = target.receiver.username;
        mail.password = target.password;
        switch (target.receiver.starttls) {
        case rules::StartTls::Always: mail.tls = MailTls::Required; break;
        case rules::StartTls::Opportunistic: mail.tls = MailTls::Try; break;
        case rules::StartTls::Never: mail.tls = MailTls::None; break;
        }
        mail.ca_file = target.receiver.ca_file;
        request.mail = std::move(mail);
        break;
    }
    case rules::ReceiverType::Log: break;
    }
    return request;
}

std::string logLine(const Notification& n) {
    if (n.action == Action::Resolve)
        return "alert resolved: rule '" + n.rule + "' unit '" + n.unit + "' (" + n.reason + ")";
    std::string what = "firing";
    if (n.change == Change::Repeat) what = "still firing";
    if (n.change == Change::Unsilence) what = "firing (silence ended)";
    return "alert " + what + ": rule '" + n.rule + "' unit '" + n.unit + "' severity " +
           std::string(rules::toString(n.severity)) + ": " + n.summary + sourcesNote(n);
}

core::Priority logPriority(const Notification& n) {
    if (n.action == Action::Resolve) return core::Priority::Notice;
    switch (n.severity) {
    case rules::Severity::Critical:
    case rules::Severity::Error: return core::Priority::Err;
    case rules::Severity::Warning: return core::Priority::Warning;
    case rules::Severity::Info: return core::Priority::Info;
    }
    return core::Priority::Err;
}

Dispatcher::Dispatcher(HttpClient& http, const core::Clock& clock, Log log)
    : http_(http),
      clock_(clock),
      log_(std::move(log)),
      random_state_(static_cast<std::uint64_t>(clock.monotonic()) | 1) {}

std::uint64_t Dispatcher::random() {
    // xorshift64: jitter needs spread, not secrecy.
    random_state_ ^= random_state_ << 13;
    random_state_ ^= random_state_ >> 7;
    random_state_ ^= random_state_ << 17;
    return random_state_;
}

void Dispatcher::setTargets(std::map<std::string, Target> targets) {
    targets_ = std::move(targets);
    for (auto it = alertmanagers_.begin(); it != alertmanagers_.end();) {
        const auto t = targets_.find(it->first);
        if (t == targets_.end() || t->second.receiver.type != rules::ReceiverType::Alertmanager)
            it = alertmanagers_.erase(it);
        else
            ++it;
    }
}

void Dispatcher::rememberFiring(const std::string& receiver, std::int64_t alert_id,
                                Notification n) {
    const auto t = targets_.find(receiver);
    if (t == targets_.end() || t->second.receiver.type != rules::ReceiverType::Alertmanager) return;
    auto& state = alertmanagers_[receiver];
    if (state.firing.empty() && !state.resending)
        state.resend_at = clock_.realtime() + t->second.receiver.resend_every_usec;
    state.firing.insert_or_assign(alert_id, std::move(n));
}

void Dispatcher::add(Delivery delivery) {
    if (delivery.notification.action == Action::Resolve) {
        if (auto it = alertmanagers_.find(delivery.receiver); it != alertmanagers_.end())
            it->second.firing.erase(delivery.alert_id);
    } else {
        rememberFiring(delivery.receiver, delivery.alert_id, delivery.notification);
    }
    const std::int64_t id = delivery.id;
    queue_.insert_or_assign(id, std::move(delivery));
}

void Dispatcher::run() {
    const core::Usec now = clock_.realtime();
    std::vector<std::int64_t> finished;
    const auto go = [&](std::int64_t id, Delivery& delivery, std::size_t& receiver_in_flight) {
        if (delivery.next_attempt_usec > now) return true;
        if (in_flight_.size() >= IN_FLIGHT_MAX) return false;
        const auto target = targets_.find(delivery.receiver);
        if (target == targets_.end()) {
            Outcome out;
            out.id = id;
            out.receiver = delivery.receiver;
            out.status = Status::Failed;
            out.attempts = delivery.attempts;
            out.last_error = "receiver '" + delivery.receiver +
                             "' is not configured (a reload removed it, or its secret could not "
                             "be read)";
            log_(core::Priority::Err,
                 "notification " + std::to_string(id) + ": " + out.last_error + "; not sent");
            record(std::move(out));
            finished.push_back(id);
            return true;
        }
        if (target->second.receiver.type == rules::ReceiverType::Log) {
            log_(logPriority(delivery.notification), logLine(delivery.notification));
            Outcome out;
            out.id = id;
            out.receiver = delivery.receiver;
            out.status = Status::Sent;
            out.attempts = delivery.attempts + 1;
            out.sent_usec = now;
            record(std::move(out));
            finished.push_back(id);
            return true;
        }
        ++receiver_in_flight;
        start(delivery, target->second, now);
        return true;
    };
    forEachMayGo(queue_, in_flight_, go);
    for (const auto id : finished) queue_.erase(id);
    for (auto& [name, state] : alertmanagers_) {
        const auto target = targets_.find(name);
        if (target == targets_.end() || state.firing.empty() || state.resending) continue;
        if (now >= state.resend_at) resend(name, state, target->second, now);
    }
}

void Dispatcher::start(Delivery& delivery, const Target& target, core::Usec now) {
    ++delivery.attempts;
    in_flight_.insert(delivery.id);
    if (target.receiver.type == rules::ReceiverType::Alertmanager) {
        startAlertmanager(delivery, target, now);
        return;
    }
    const std::int64_t id = delivery.id;
    http_.post(buildRequest(target, delivery.notification, now),
               [this, id](const HttpResponse& response) { complete(id, response); });
}

void Dispatcher::startAlertmanager(Delivery& delivery, const Target& target, core::Usec now) {
    const std::int64_t id = delivery.id;
    HttpRequest request = buildRequest(target, delivery.notification, now);
    auto& done = urls_done_[id];
    urls_failed_.erase(id);
    std::size_t waiting = 0;
    for (std::size_t i = 0; i < target.receiver.urls.size(); ++i) {
        if (done.count(i)) continue;
        request.url = target.receiver.urls[i] + "/api/v2/alerts";
        ++waiting;
        http_.post(request, [this, id, i](HttpResponse response) {
            if (succeeded(response))
                urls_done_[id].insert(i);
            else
                urls_failed_.try_emplace(id, response);
            if (--urls_waiting_[id] > 0) return;
            urls_waiting_.erase(id);
            auto failed = urls_failed_.find(id);
            HttpResponse overall = failed == urls_failed_.end() ? response : failed->second;
            if (failed != urls_failed_.end()) urls_failed_.erase(failed);
            complete(id, overall);
        });
    }
    urls_waiting_[id] = waiting;
}

void Dispatcher::complete(std::int64_t id, const HttpResponse& response) {
    in_flight_.erase(id);
    const auto it = queue_.find(id);
    if (it == queue_.end()) return;
    Delivery& delivery = it->second;
    const auto target = targets_.find(delivery.receiver);
    const core::Usec give_up = target == targets_.end()
                                   ? rules::GIVE_UP_AFTER_DEFAULT_USEC
                                   : target->second.receiver.give_up_after_usec;
    Outcome out = decide(delivery, response, give_up, clock_.realtime(), random());
    const std::string what = "notification " + std::to_string(id) + " (" +
                             std::string(toString(delivery.notification.action)) + " of rule '" +
                             delivery.notification.rule + "' unit '" + delivery.notification.unit +
                             "')";
    switch (out.status) {
    case Status::Sent: noteSuccess(delivery.receiver); break;
    case Status::Pending:
        noteFailure(delivery.receiver, out.last_error);
        delivery.next_attempt_usec = out.next_attempt_usec;
        break;
    case Status::Failed:
        log_(core::Priority::Err, "receiver '" + delivery.receiver + "': " + what +
                                      (out.permanent ? " was refused: " : " was not delivered: ") +
                                      out.last_error + (out.permanent ? "; not retried" : ""));
        break;
    }
    if (out.status != Status::Pending) {
        queue_.erase(it);
        urls_done_.erase(id);
    }
    record(std::move(out));
}

void Dispatcher::resend(const std::string& name, AlertmanagerState& state, const Target& target,
                        core::Usec now) {
    std::vector<Notification> alerts;
    alerts.reserve(state.firing.size());
    for (const auto& [id, n] : state.firing) alerts.push_back(n);
    HttpRequest request;
    request.timeout_usec = target.receiver.timeout_usec;
    request.headers.push_back("Content-Type: application/json");
    request.body = alertmanagerBody(alerts, endsAhead(target, now));
    state.resending = true;
    auto waiting = std::make_shared<std::size_t>(target.receiver.urls.size());
    for (const auto& url : target.receiver.urls) {
        request.url = url + "/api/v2/alerts";
        http_.post(request, [this, name, waiting](const HttpResponse& response) {
            if (succeeded(response))
                noteSuccess(name);
            else
                noteFailure(name, reasonOf(response));
            if (--*waiting > 0) return;
            const auto it = alertmanagers_.find(name);
            const auto target = targets_.find(name);
            if (it == alertmanagers_.end() || target == targets_.end()) return;
            it->second.resending = false;
            it->second.resend_at = clock_.realtime() + target->second.receiver.resend_every_usec;
        });
    }
}

void Dispatcher::noteFailure(const std::string& receiver, const std::string& what) {
    if (!failing_.insert(receiver).second) return;
    log_(core::Priority::Warning, "receiver '" + receiver + "': delivery failed: " + what +
                                      "; retrying with backoff (logged once until it recovers)");
}

void Dispatcher::noteSuccess(const std::string& receiver) {
    if (failing_.erase(receiver) > 0)
        log_(core::Priority::Notice, "receiver '" + receiver + "': delivering again");
}

void Dispatcher::record(Outcome outcome) { outcomes_.push_back(std::move(outcome)); }

std::vector<Outcome> Dispatcher::takeOutcomes() { return std::exchange(outcomes_, {}); }

std::optional<core::Usec> Dispatcher::nextDeadline() const {
    std::optional<core::Usec> next;
    const auto consider = [&next](core::Usec at) {
        if (!next || at < *next) next = at;
    };
    if (in_flight_.size() < IN_FLIGHT_MAX) {
        forEachMayGo(queue_, in_flight_, [&](std::int64_t, const Delivery& delivery, std::size_t) {
            consider(delivery.next_attempt_usec);
            return true;
        });
    }
    for (const auto& [name, state] : alertmanagers_)
        if (!state.firing.empty() && !state.resending) consider(state.resend_at);
    return next;
}

}  // namespace cerberus::notify
