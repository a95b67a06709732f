#pragma once

// Request bodies for each receiver type (DESIGN.md, "Notifications"). Pure: a Notification
// in, JSON text out; no I/O, no secrets but the PagerDuty routing key the body must carry.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.hpp"
#include "rules/rules.hpp"

namespace cerberus::notify {

// Caps on what one body can carry, whatever the journal or a template produced.
inline constexpr std::size_t JOURNAL_LINES_MAX = 100;
inline constexpr std::size_t JOURNAL_LINE_MAX = 1024;  // bytes
// Block Kit's limits (api.slack.com/reference/block-kit/blocks), counted here in bytes, which
// are never fewer than characters: so a cut in bytes always fits.
inline constexpr std::size_t SLACK_TEXT_MAX = 3000;  // the fallback `text` (Slack cuts at 40,000)
inline constexpr std::size_t SLACK_HEADER_MAX = 150;
inline constexpr std::size_t SLACK_SECTION_TEXT_MAX = 3000;
inline constexpr std::size_t SLACK_FIELDS_MAX = 10;
inline constexpr std::size_t SLACK_FIELD_MAX = 2000;
inline constexpr std::size_t SLACK_BLOCKS_MAX = 50;
inline constexpr std::size_t PAGERDUTY_SUMMARY_MAX = 1024;
inline constexpr std::size_t PAGERDUTY_DEDUP_KEY_MAX = 255;
inline constexpr int WEBHOOK_VERSION = 1;

enum class Action : std::uint8_t { Trigger, Resolve };
std::string_view toString(Action action);

struct LastExit {
    std::string result;     // "exit-code", "signal", ...
    std::string exit_code;  // "exited", "killed", "dumped"
    std::optional<int> exit_status;

    bool operator==(const LastExit&) const = default;
};

// Why a notification was made; the `log` receiver words its line after it.
enum class Change : std::uint8_t { Fire, Repeat, Unsilence, Resolve };
std::string_view toString(Change change);

struct Notification {
    Action action = Action::Trigger;
    Change change = Change::Fire;
    std::string reason;  // a resolve's: "up" or "operator-stop"
    std::string id;      // stable across retries: webhook-id
    std::string rule;
    std::string unit;
    std::string host;
    rules::Severity severity = rules::Severity::Error;
    // What `count` counts (the rule's `when.event`); unset in rows queued before it was kept.
    std::optional<core::Event> event;
    std::size_t count = 0;
    core::Usec within_usec = 0;
    core::Usec started_usec = 0;
    std::optional<core::Usec> resolved_usec;
    std::string summary;
    std::map<std::string, std::string> labels;
    std::optional<LastExit> last_exit;
    std::vector<std::string> journal;  // oldest first
    // Where the events that fired the alert came from ("systemd", "reconcile", "emit",
    // "supervisor"); empty in notifications queued before sources were recorded.
    std::vector<std::string> sources;

    bool operator==(const Notification&) const = default;
};

// " (via emit)" when some event that fired the alert was not systemd's own (emit,
// supervisor), for text that people read (Slack, PagerDuty's summary, the log line); else "".
std::string sourcesNote(const Notification& n);

// At most `max_bytes` bytes, cut on a UTF-8 boundary and ending in "…" when cut.
std::string truncateUtf8(std::string_view text, std::size_t max_bytes);

// `{host}/{rule}/{unit}`; past 255 bytes, a prefix plus a hash of the whole key, so two
// long keys stay distinct and the same alert always gets the same key.
std::string pagerDutyDedupKey(const Notification& n);

// The whole message an `email` receiver sends (RFC 5322 headers, a quoted-printable
// text/plain UTF-8 body carrying what the other receivers carry), CRLF line ends.
// A resolve or repeat refers to the alert's first message, so mail clients thread them.
std::string emailMessage(const Notification& n, const rules::Receiver& receiver,
                         core::Usec now_usec);
// Quoted-printable (RFC 2045) of `text`, whose lines end in "\n"; output lines end in CRLF.
std::string quotedPrintable(std::string_view text);
// A header value as RFC 2047 encoded words when it is not plain ASCII, else as is.
std::string encodeHeaderWords(std::string_view text);

// "3 crashes in 1m": the count with the rule's event, agreeing in number.
std::string countText(const Notification& n);

std::string webhookBody(const Notification& n);
std::string slackBody(const Notification& n);
std::string pagerDutyBody(const Notification& n, std::string_view routing_key);
// A one-alert array for POST /api/v2/alerts; a resolve passes now as `ends_at_usec`.
std::string alertmanagerBody(const Notification& n, core::Usec ends_at_usec);
// Several alerts in one POST, all with the same `endsAt` (the periodic re-send).
std::string alertmanagerBody(const std::vector<Notification>& alerts, core::Usec ends_at_usec);

// "msg_" + 32 hex digits from what the notification is about and when it was decided:
// the same decision always gets the same id (webhook-id), another decision never does.
std::string stableId(const Notification& n, core::Usec decided_usec);

// The outbox's payload column: every field of a Notification as JSON, read back by
// decode() after a restart. nullopt when the text is not one.
std::string encode(const Notification& n);
std::optional<Notification> decode(std::string_view text);

}  // namespace cerberus::notify
