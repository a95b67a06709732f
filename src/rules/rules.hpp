#pragma once

// The rule model (DESIGN.md, "Rules") and its loading from JSON files and directories.
// Pure: reads the files it is given and nothing else; secrets stay unresolved here.

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/time.hpp"
#include "core/transition.hpp"

namespace cerberus::rules {

// Caps on what a rule file can make the evaluator hold (memory per unit is bounded by them).
inline constexpr int COUNT_MAX = 1000;
inline constexpr std::size_t RULES_MAX = 1000;
inline constexpr std::size_t RECEIVERS_MAX = 100;
// One rule file's size: far above a real one (1000 rules fit in about 300 KiB), so that a
// symlink to /dev/zero or a log file is refused instead of read into memory.
inline constexpr std::size_t RULE_FILE_MAX = 1024 * 1024;
inline constexpr core::Usec RESOLVE_WHEN_UP_FOR_DEFAULT_USEC = 10 * core::USEC_PER_MIN;
inline constexpr core::Usec REPEAT_EVERY_MIN_USEC = core::USEC_PER_SEC;
// Delivery (receivers): one HTTP request's whole time, how long a notification is retried,
// and how often firing alerts are posted again to an Alertmanager.
inline constexpr core::Usec TIMEOUT_DEFAULT_USEC = 10 * core::USEC_PER_SEC;
inline constexpr core::Usec TIMEOUT_MIN_USEC = 100 * core::USEC_PER_MSEC;
inline constexpr core::Usec TIMEOUT_MAX_USEC = 5 * core::USEC_PER_MIN;
inline constexpr core::Usec GIVE_UP_AFTER_DEFAULT_USEC = core::USEC_PER_DAY;
inline constexpr core::Usec GIVE_UP_AFTER_MIN_USEC = core::USEC_PER_SEC;
inline constexpr core::Usec RESEND_EVERY_DEFAULT_USEC = core::USEC_PER_MIN;
inline constexpr core::Usec RESEND_EVERY_MIN_USEC = core::USEC_PER_SEC;
// A secret file ({"file": PATH}) holds one secret: refused above this size.
inline constexpr std::size_t SECRET_FILE_MAX = 64 * 1024;
// Journal lines quoted in an alert.
inline constexpr int JOURNAL_LINES_DEFAULT = 20;
inline constexpr int JOURNAL_LINES_MAX = 100;

// A secret as written: its value, or where to read it at send time. Never printed as is.
struct Secret {
    enum class Kind : std::uint8_t { Literal, Env, File };
    Kind kind = Kind::Literal;
    std::string value;  // the secret itself, an environment variable name, or a file path

    // "<redacted>", "env:NAME" or "file:PATH": safe for logs and `cerberus check`.
    std::string redacted() const;
    bool operator==(const Secret&) const = default;
};

// What is wrong with a webhook signing secret's value, or empty when it is usable: a
// `whsec_` secret is base64 after its prefix. The parser applies it to a secret written in
// the file and notify to one read from the environment or a file, so `check`, `run` and
// `test-receiver` refuse the same value with the same sentence. Never quotes the value.
std::string webhookSecretError(std::string_view value);
// What is wrong with a secret file, found without reading the secret (open and fstat only):
// missing or unreadable, not a regular file, larger than SECRET_FILE_MAX, or empty; empty
// when it can be read. The parser applies it when rules load, notify again when it reads
// the value, so both say the same sentence.
std::string secretFileError(const std::string& path);
// "http://" or "https://" and something after it, without a space or a control character:
// what a receiver URL must be, written in the file or read from a secret.
bool isHttpUrl(std::string_view text);
// The same for an email receiver's "smtp://" or "smtps://" URL.
bool isSmtpUrl(std::string_view text);

enum class ReceiverType : std::uint8_t { Slack, PagerDuty, Webhook, Alertmanager, Log, Email };
std::string_view toString(ReceiverType type);
std::optional<ReceiverType> parseReceiverType(std::string_view text);

// An email receiver on smtp://: STARTTLS required (the default), used when offered, or never.
enum class StartTls : std::uint8_t { Always, Opportunistic, Never };
std::string_view toString(StartTls starttls);
std::optional<StartTls> parseStartTls(std::string_view text);

inline constexpr std::size_t MAIL_TO_MAX = 50;

// An email address and the name shown with it: "Ops <ops@example.com>".
struct Mailbox {
    std::string name;  // may be empty; any UTF-8 but control characters, quotes and <>
    std::string address;

    bool operator==(const Mailbox&) const = default;
};
// "ops@example.com", "Ops Team <ops@example.com>" or "\"Ops\" <ops@example.com>"; nullopt
// when it is none of them (an address is ASCII: local@domain, no spaces, quotes or <>).
std::optional<Mailbox> parseMailbox(std::string_view text);

struct Receiver {
    std::string name;
    ReceiverType type = ReceiverType::Log;
    std::optional<Secret> url;          // slack, webhook, email (required); pagerduty (optional)
    std::optional<Secret> routing_key;  // pagerduty (required)
    std::optional<Secret> secret;       // webhook signing key (optional)
    std::vector<std::string> urls;      // alertmanager (required, at least one)
    core::Usec timeout_usec = TIMEOUT_DEFAULT_USEC;
    core::Usec give_up_after_usec = GIVE_UP_AFTER_DEFAULT_USEC;
    core::Usec resend_every_usec = RESEND_EVERY_DEFAULT_USEC;  // alertmanager
    // email: `url` is smtp:// or smtps://; the login is optional (both or neither).
    Mailbox from;
    std::vector<Mailbox> to;
    std::string username;
    std::optional<Secret> password;
    StartTls starttls = StartTls::Always;
    std::string ca_file;  // PEM bundle of the CAs trusted for the server; empty: the system's
    std::string origin;   // "file:line", for messages

    bool operator==(const Receiver&) const = default;
};

enum class Severity : std::uint8_t { Critical, Error, Warning, Info };
std::string_view toString(Severity severity);
std::optional<Severity> parseSeverity(std::string_view text);

// `when`: `count` qualifying events within `within` fire the alert. For a `restart` event
// the filters look at the run the restart followed (its uptime, result and exit status).
// `sources` is where a transition may come from to count; empty (the default) is any. The
// emit socket refuses systemd's unit names, so a rule on `*.service` counts only what
// systemd itself reported, whatever it says here.
struct Condition {
    core::Event event = core::Event::Crash;
    int count = 1;
    core::Usec within_usec = 0;
    std::optional<core::Usec> uptime_below_usec;
    std::vector<std::string> results;   // empty: any
    std::vector<int> exit_statuses;     // empty: any
    std::vector<core::Source> sources;  // empty: any

    bool operator==(const Condition&) const = default;
};

struct Rule {
    std::string name;
    std::vector<std::string> units{"*.service"};  // fnmatch globs
    std::vector<std::string> exclude;
    Condition when;
    core::Usec resolve_when_up_for_usec = RESOLVE_WHEN_UP_FOR_DEFAULT_USEC;
    Severity severity = Severity::Error;
    std::optional<core::Usec> repeat_every_usec;
    std::vector<std::string> notify;  // receiver names, all defined
    std::map<std::string, std::string> labels;
    std::string summary;  // template; see SUMMARY_FIELDS
    int journal_lines = JOURNAL_LINES_DEFAULT;
    std::string origin;  // "file:line", for messages

    bool matchesUnit(std::string_view unit) const;
    bool operator==(const Rule&) const = default;
};

// The placeholders a summary may use, e.g. "{unit} on {host} crashed {count} times".
inline constexpr std::string_view SUMMARY_FIELDS[] = {"unit",   "host",     "rule", "count",
                                                      "within", "severity", "event"};
inline constexpr std::string_view SUMMARY_DEFAULT = "{unit} on {host}: {count} {event} in {within}";

struct SummaryValues {
    std::string unit;
    std::string host;
    std::size_t count = 0;
};
std::string renderSummary(const Rule& rule, const SummaryValues& values);

struct RuleSet {
    std::vector<Rule> rules;
    std::vector<Receiver> receivers;

    const Receiver* receiver(std::string_view name) const;
    const Rule* rule(std::string_view name) const;
    bool operator==(const RuleSet&) const = default;
};

struct LoadResult {
    RuleSet rules;
    // One sentence each: "FILE:LINE: /json/path: what is wrong; what is expected".
    std::vector<std::string> errors;
    bool ok() const { return errors.empty(); }
};

// Files, and directories of *.json files (sorted by name, not recursive), merged into one
// set: rule and receiver names are unique across all of them. Every error is reported.
LoadResult loadRules(const std::vector<std::string>& paths);

// One document, `origin` naming it in messages. References to receivers are checked.
LoadResult parseRules(std::string_view text, std::string_view origin);

// The keys the parser accepts, so a test can hold schema/rules.schema.json to the same set.
std::span<const std::string_view> topLevelKeys();
std::span<const std::string_view> ruleKeys();
std::span<const std::string_view> whenKeys();
std::span<const std::string_view> receiverKeys(ReceiverType type);

}  // namespace cerberus::rules
