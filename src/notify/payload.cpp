#include "notify/payload.hpp"

#include <openssl/evp.h>

#include <array>
#include <nlohmann/json.hpp>
#include <string>

#include "core/names.hpp"

namespace cerberus::notify {

namespace {

using nlohmann::json;

constexpr core::NameTable<Action, 2> ACTIONS{{
    {Action::Trigger, "trigger"},
    {Action::Resolve, "resolve"},
}};

constexpr std::string_view ELLIPSIS = "…";

// Journal lines may hold any bytes: replace invalid UTF-8 rather than throw.
std::string dump(const json& body) {
    return body.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool isContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

// The longest prefix of at most `max_bytes` that does not split a UTF-8 sequence.
std::string_view utf8Prefix(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) return text;
    std::size_t end = max_bytes;
    while (end > 0 && isContinuation(text[end])) --end;
    return text.substr(0, end);
}

std::string_view status(const Notification& n) {
    return n.action == Action::Trigger ? "firing" : "resolved";
}

json lastExitJson(const Notification& n) {
    if (!n.last_exit) return nullptr;
    json out = {{"result", n.last_exit->result}, {"exit_code", n.last_exit->exit_code}};
    out["exit_status"] = n.last_exit->exit_status ? json(*n.last_exit->exit_status) : json(nullptr);
    return out;
}

std::vector<std::string> cappedJournal(const Notification& n) {
    const auto& lines = n.journal;
    const std::size_t first =
        lines.size() > JOURNAL_LINES_MAX ? lines.size() - JOURNAL_LINES_MAX : 0;
    std::vector<std::string> out;
    out.reserve(lines.size() - first);
    for (std::size_t i = first; i < lines.size(); ++i) {
        out.push_back(truncateUtf8(lines[i], JOURNAL_LINE_MAX));
    }
    return out;
}

std::string lastExitText(const LastExit& e) {
    std::string out = e.result;
    if (!e.exit_code.empty()) out += ", " + e.exit_code;
    if (e.exit_status) out += " " + std::to_string(*e.exit_status);
    return out;
}

std::string sha256Hex(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int len = 0;
    if (EVP_Digest(text.data(), text.size(), digest.data(), &len, EVP_sha256(), nullptr) != 1) {
        throw std::runtime_error("SHA-256 failed");
    }
    static constexpr char HEX[] = "0123456789abcdef";
    std::string out;
    for (unsigned int i = 0; i < len; ++i) {
        out.push_back(HEX[digest[i] >> 4]);
        out.push_back(HEX[digest[i] & 0x0F]);
    }
    return out;
}

}  // namespace

std::string_view toString(Action action) { return core::nameOf(ACTIONS, action); }

std::string truncateUtf8(std::string_view text, std::size_t max_bytes) {
    if (text.size() <= max_bytes) return std::string(text);
    if (max_bytes < ELLIPSIS.size()) return std::string(utf8Prefix(text, max_bytes));
    std::string out(utf8Prefix(text, max_bytes - ELLIPSIS.size()));
    out += ELLIPSIS;
    return out;
}

std::string sourcesNote(const Notification& n) {
    std::string others;
    for (const auto& source : n.sources) {
        if (source == "systemd" || source == "reconcile") continue;
        others += (others.empty() ? "" : ", ") + source;
    }
    return others.empty() ? std::string() : " (via " + others + ")";
}

std::string pagerDutyDedupKey(const Notification& n) {
    std::string key = n.host + "/" + n.rule + "/" + n.unit;
    if (key.size() <= PAGERDUTY_DEDUP_KEY_MAX) return key;
    const std::string hash = sha256Hex(key).substr(0, 32);
    std::string out(utf8Prefix(key, PAGERDUTY_DEDUP_KEY_MAX - hash.size() - 1));
    return out + "#" + hash;
}

std::string webhookBody(const Notification& n) {
    json body = {
        {"version", WEBHOOK_VERSION},
        {"id", n.id},
        {"status", status(n)},
        {"rule", n.rule},
        {"unit", n.unit},
        {"host", n.host},
        {"severity", rules::toString(n.severity)},
        {"count", n.count},
        {"within", core::formatDuration(n.within_usec)},
        {"started_at", core::formatIsoTime(n.started_usec)},
        {"resolved_at", n.resolved_usec ? json(core::formatIsoTime(*n.resolved_usec)) : json()},
        {"summary", n.summary},
        {"labels", n.labels},
        {"last_exit", lastExitJson(n)},
        {"journal", cappedJournal(n)},
        {"sources", n.sources},
    };
    return dump(body);
}

std::string slackBody(const Notification& n) {
    const bool firing = n.action == Action::Trigger;
    std::string color = "good";
    if (firing) {
        switch (n.severity) {
        case rules::Severity::Critical:
        case rules::Severity::Error: color = "danger"; break;
        case rules::Severity::Warning: color = "warning"; break;
        case rules::Severity::Info: color = "#439FE0"; break;
        }
    }
    const std::string text = truncateUtf8(
        (firing ? "[FIRING] " : "[RESOLVED] ") + n.summary + sourcesNote(n), SLACK_TEXT_MAX);

    auto field = [](std::string_view title, const std::string& value, bool is_short) {
        return json{{"title", title}, {"value", value}, {"short", is_short}};
    };
    json fields = json::array();
    fields.push_back(field("Unit", n.unit, true));
    fields.push_back(field("Host", n.host, true));
    fields.push_back(field("Severity", std::string(rules::toString(n.severity)), true));
    fields.push_back(
        field("Restarts",
              std::to_string(n.count) + " within " + core::formatDuration(n.within_usec), true));
    fields.push_back(field("Started", core::formatIsoTime(n.started_usec), true));
    if (n.resolved_usec)
        fields.push_back(field("Resolved", core::formatIsoTime(*n.resolved_usec), true));
    if (n.last_exit) fields.push_back(field("Last exit", lastExitText(*n.last_exit), true));
    if (!n.sources.empty()) {
        std::string sources;
        for (const auto& source : n.sources) sources += (sources.empty() ? "" : ", ") + source;
        fields.push_back(field("Source", sources, true));
    }
    if (!n.journal.empty()) {
        std::string journal;
        for (const auto& line : cappedJournal(n)) journal += line + "\n";
        // Keep the newest lines: the crash is at the end.
        if (journal.size() > SLACK_JOURNAL_MAX) {
            std::size_t start = journal.size() - SLACK_JOURNAL_MAX;
            while (start < journal.size() && isContinuation(journal[start])) ++start;
            journal = std::string(ELLIPSIS) + journal.substr(start);
        }
        fields.push_back(field("Journal", "```" + journal + "```", false));
    }

    json attachment = {
        {"fallback", text},
        {"color", color},
        {"title", n.rule + " on " + n.host},
        {"fields", fields},
        {"footer", "cerberus"},
        {"ts", (n.resolved_usec ? *n.resolved_usec : n.started_usec) / core::USEC_PER_SEC},
    };
    return dump(json{{"text", text}, {"attachments", json::array({attachment})}});
}

std::string pagerDutyBody(const Notification& n, std::string_view routing_key) {
    const std::string dedup_key = pagerDutyDedupKey(n);
    if (n.action == Action::Resolve) {
        return dump(json{
            {"routing_key", routing_key}, {"dedup_key", dedup_key}, {"event_action", "resolve"}});
    }
    json details = {
        {"rule", n.rule},
        {"unit", n.unit},
        {"count", n.count},
        {"within", core::formatDuration(n.within_usec)},
        {"started_at", core::formatIsoTime(n.started_usec)},
        {"labels", n.labels},
        {"last_exit", lastExitJson(n)},
        {"journal", cappedJournal(n)},
        {"sources", n.sources},
    };
    json payload = {
        {"summary", truncateUtf8(n.summary + sourcesNote(n), PAGERDUTY_SUMMARY_MAX)},
        {"source", n.host},
        {"severity", rules::toString(n.severity)},
        {"timestamp", core::formatIsoTime(n.started_usec)},
        {"component", n.unit},
        {"class", n.rule},
        {"custom_details", details},
    };
    return dump(json{{"routing_key", routing_key},
                     {"dedup_key", dedup_key},
                     {"event_action", "trigger"},
                     {"payload", payload}});
}

namespace {

json alertmanagerAlert(const Notification& n, core::Usec ends_at_usec) {
    json labels = json::object();
    for (const auto& [name, value] : n.labels) labels[name] = value;
    // Ours last: a rule label cannot hide which alert this is.
    labels["alertname"] = n.rule;
    labels["unit"] = n.unit;
    labels["host"] = n.host;
    labels["severity"] = rules::toString(n.severity);
    if (!n.sources.empty()) {
        std::string sources;
        for (const auto& source : n.sources) sources += (sources.empty() ? "" : ",") + source;
        labels["source"] = sources;
    }
    json alert = {
        {"labels", labels},
        {"annotations", {{"summary", n.summary}}},
        {"startsAt", core::formatIsoTime(n.started_usec)},
        {"endsAt", core::formatIsoTime(ends_at_usec)},
    };
    return alert;
}

constexpr core::NameTable<Change, 4> CHANGES{{
    {Change::Fire, "fire"},
    {Change::Repeat, "repeat"},
    {Change::Unsilence, "unsilence"},
    {Change::Resolve, "resolve"},
}};

}  // namespace

std::string alertmanagerBody(const Notification& n, core::Usec ends_at_usec) {
    return dump(json::array({alertmanagerAlert(n, ends_at_usec)}));
}

std::string alertmanagerBody(const std::vector<Notification>& alerts, core::Usec ends_at_usec) {
    json body = json::array();
    for (const auto& n : alerts) body.push_back(alertmanagerAlert(n, ends_at_usec));
    return dump(body);
}

std::string stableId(const Notification& n, core::Usec decided_usec) {
    const std::string key = n.host + '\n' + n.rule + '\n' + n.unit + '\n' +
                            std::to_string(n.started_usec) + '\n' +
                            std::string(toString(n.change)) + '\n' + std::to_string(decided_usec);
    return "msg_" + sha256Hex(key).substr(0, 32);
}

std::string_view toString(Change change) { return core::nameOf(CHANGES, change); }

std::string encode(const Notification& n) {
    json j = {
        {"action", toString(n.action)},
        {"change", toString(n.change)},
        {"reason", n.reason},
        {"id", n.id},
        {"rule", n.rule},
        {"unit", n.unit},
        {"host", n.host},
        {"severity", rules::toString(n.severity)},
        {"count", n.count},
        {"within_usec", n.within_usec},
        {"started_usec", n.started_usec},
        {"resolved_usec", n.resolved_usec ? json(*n.resolved_usec) : json()},
        {"summary", n.summary},
        {"labels", n.labels},
        {"last_exit", lastExitJson(n)},
        {"journal", n.journal},
        {"sources", n.sources},
    };
    return dump(j);
}

std::optional<Notification> decode(std::string_view text) {
    try {
        const json j = json::parse(text);
        Notification n;
        n.action = core::valueOf(ACTIONS, j.at("action").get<std::string>())
                       .value_or(Action::Trigger);  // anything but "resolve" triggers
        if (const auto change = core::valueOf(CHANGES, j.at("change").get<std::string>()))
            n.change = *change;
        n.reason = j.at("reason").get<std::string>();
        n.id = j.at("id").get<std::string>();
        n.rule = j.at("rule").get<std::string>();
        n.unit = j.at("unit").get<std::string>();
        n.host = j.at("host").get<std::string>();
        n.severity = rules::parseSeverity(j.at("severity").get<std::string>())
                         .value_or(rules::Severity::Error);
        n.count = j.at("count").get<std::size_t>();
        n.within_usec = j.at("within_usec").get<core::Usec>();
        n.started_usec = j.at("started_usec").get<core::Usec>();
        if (!j.at("resolved_usec").is_null())
            n.resolved_usec = j.at("resolved_usec").get<core::Usec>();
        n.summary = j.at("summary").get<std::string>();
        n.labels = j.at("labels").get<std::map<std::string, std::string>>();
        if (const auto& e = j.at("last_exit"); !e.is_null()) {
            LastExit last;
            last.result = e.at("result").get<std::string>();
            last.exit_code = e.at("exit_code").get<std::string>();
            if (!e.at("exit_status").is_null()) last.exit_status = e.at("exit_status").get<int>();
            n.last_exit = std::move(last);
        }
        n.journal = j.at("journal").get<std::vector<std::string>>();
        // Absent from rows queued by an older cerberus.
        if (const auto it = j.find("sources"); it != j.end())
            n.sources = it->get<std::vector<std::string>>();
        return n;
    } catch (const json::exception&) {
        return std::nullopt;
    }
}

}  // namespace cerberus::notify
