#include <cctype>
#include <utility>

#include "core/names.hpp"
#include "core/unit_name.hpp"
#include "rules/rules.hpp"

namespace cerberus::rules {

namespace {

using core::nameOf;
using core::valueOf;

constexpr core::EnumName<ReceiverType> RECEIVER_TYPES[] = {
    {ReceiverType::Slack, "slack"},     {ReceiverType::PagerDuty, "pagerduty"},
    {ReceiverType::Webhook, "webhook"}, {ReceiverType::Alertmanager, "alertmanager"},
    {ReceiverType::Log, "log"},         {ReceiverType::Email, "email"}};

constexpr core::EnumName<StartTls> STARTTLS_MODES[] = {{StartTls::Always, "always"},
                                                       {StartTls::Opportunistic, "opportunistic"},
                                                       {StartTls::Never, "never"}};

std::string_view trimmed(std::string_view text) {
    while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
    while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
    return text;
}

// local@domain in plain ASCII: what an SMTP envelope and a header can carry unquoted.
bool isAddress(std::string_view text) {
    const auto at = text.rfind('@');
    if (at == std::string_view::npos || at == 0 || at + 1 == text.size() || text.size() > 254)
        return false;
    for (std::size_t i = 0; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        if (c <= ' ' || c >= 0x7F) return false;
        if (std::string_view("<>()[]\\,;:\"").find(static_cast<char>(c)) != std::string_view::npos)
            return false;
        if (i > at && !(std::isalnum(c) || c == '.' || c == '-')) return false;
        if (c == '@' && i != at) return false;
    }
    return true;
}

constexpr core::EnumName<Severity> SEVERITIES[] = {{Severity::Critical, "critical"},
                                                   {Severity::Error, "error"},
                                                   {Severity::Warning, "warning"},
                                                   {Severity::Info, "info"}};

// A bare name stands for its .service too, as with `journalctl -u` (core/unit_name.hpp).
bool matchesAny(const std::vector<std::string>& patterns, std::string_view unit) {
    for (const auto& pattern : patterns)
        if (core::unitMatches(pattern, unit)) return true;
    return false;
}

}  // namespace

std::string Secret::redacted() const {
    switch (kind) {
    case Kind::Env: return "env:" + value;
    case Kind::File: return "file:" + value;
    case Kind::Literal: break;
    }
    return "<redacted>";
}

std::string_view toString(ReceiverType type) { return nameOf(RECEIVER_TYPES, type); }
std::optional<ReceiverType> parseReceiverType(std::string_view text) {
    return valueOf(RECEIVER_TYPES, text);
}

std::string_view toString(StartTls starttls) { return nameOf(STARTTLS_MODES, starttls); }
std::optional<StartTls> parseStartTls(std::string_view text) {
    return valueOf(STARTTLS_MODES, text);
}

std::optional<Mailbox> parseMailbox(std::string_view text) {
    text = trimmed(text);
    if (isAddress(text)) return Mailbox{"", std::string(text)};
    const auto open = text.rfind('<');
    if (open == std::string_view::npos || !text.ends_with('>')) return std::nullopt;
    const auto address = text.substr(open + 1, text.size() - open - 2);
    auto name = trimmed(text.substr(0, open));
    if (name.size() >= 2 && name.front() == '"' && name.back() == '"')
        name = name.substr(1, name.size() - 2);
    if (!isAddress(address)) return std::nullopt;
    for (const char c : name) {
        const auto u = static_cast<unsigned char>(c);
        if (u < ' ' || u == 0x7F || c == '"' || c == '<' || c == '>' || c == '\\')
            return std::nullopt;
    }
    return Mailbox{std::string(name), std::string(address)};
}

std::string_view toString(Severity severity) { return nameOf(SEVERITIES, severity); }
std::optional<Severity> parseSeverity(std::string_view text) { return valueOf(SEVERITIES, text); }

bool Rule::matchesUnit(std::string_view unit) const {
    return matchesAny(units, unit) && !matchesAny(exclude, unit);
}

std::string renderSummary(const Rule& rule, const SummaryValues& values) {
    const std::string& text = rule.summary.empty() ? std::string(SUMMARY_DEFAULT) : rule.summary;
    std::string out;
    std::size_t pos = 0;
    while (pos < text.size()) {
        const auto open = text.find('{', pos);
        const auto close = open == std::string::npos ? open : text.find('}', open);
        if (close == std::string::npos) {
            out.append(text, pos);
            break;
        }
        out.append(text, pos, open - pos);
        const std::string_view field(text.data() + open + 1, close - open - 1);
        if (field == "unit") {
            out += values.unit;
        } else if (field == "host") {
            out += values.host;
        } else if (field == "rule") {
            out += rule.name;
        } else if (field == "count") {
            out += std::to_string(values.count);
        } else if (field == "within") {
            out += core::formatDuration(rule.when.within_usec);
        } else if (field == "severity") {
            out += toString(rule.severity);
        } else if (field == "event") {
            // Agrees with the count: "{count} {event}" reads "1 crash", "3 crashes".
            out += core::eventNoun(rule.when.event, values.count != 1);
        } else {
            out.append(text, open, close - open + 1);
        }
        pos = close + 1;
    }
    return out;
}

const Receiver* RuleSet::receiver(std::string_view name) const {
    for (const auto& r : receivers)
        if (r.name == name) return &r;
    return nullptr;
}

const Rule* RuleSet::rule(std::string_view name) const {
    for (const auto& r : rules)
        if (r.name == name) return &r;
    return nullptr;
}

}  // namespace cerberus::rules
