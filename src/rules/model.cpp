#include <fnmatch.h>

#include "core/names.hpp"
#include "rules/rules.hpp"

namespace cerberus::rules {

namespace {

using core::nameOf;
using core::valueOf;

constexpr core::NameTable<ReceiverType, 5> RECEIVER_TYPES{{
    {ReceiverType::Slack, "slack"},
    {ReceiverType::PagerDuty, "pagerduty"},
    {ReceiverType::Webhook, "webhook"},
    {ReceiverType::Alertmanager, "alertmanager"},
    {ReceiverType::Log, "log"},
}};

constexpr core::NameTable<Severity, 4> SEVERITIES{{
    {Severity::Critical, "critical"},
    {Severity::Error, "error"},
    {Severity::Warning, "warning"},
    {Severity::Info, "info"},
}};

bool matchesAny(const std::vector<std::string>& globs, const std::string& unit) {
    for (const auto& glob : globs)
        if (fnmatch(glob.c_str(), unit.c_str(), 0) == 0) return true;
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

std::string_view toString(Severity severity) { return nameOf(SEVERITIES, severity); }
std::optional<Severity> parseSeverity(std::string_view text) { return valueOf(SEVERITIES, text); }

bool Rule::matchesUnit(std::string_view unit) const {
    const std::string name(unit);
    return matchesAny(units, name) && !matchesAny(exclude, name);
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
            out += core::toString(rule.when.event);
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
