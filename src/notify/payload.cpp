#include "notify/payload.hpp"

#include <openssl/evp.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <nlohmann/json.hpp>
#include <string>

#include "core/names.hpp"
#include "core/text.hpp"

namespace cerberus::notify {

namespace {

using nlohmann::json;

constexpr core::EnumName<Action> ACTIONS[] = {{Action::Trigger, "trigger"},
                                              {Action::Resolve, "resolve"}};

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

json eventJson(const Notification& n) {
    return n.event ? json(core::toString(*n.event)) : json(nullptr);
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
        {"event", eventJson(n)},
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

namespace {

// Slack's mrkdwn reads &, < and > as markup: escaped, with the result cut to `max_bytes` on
// a character boundary, never inside an escape, and ending in "…" when cut.
std::string slackEscape(std::string_view text, std::size_t max_bytes) {
    std::string out;
    std::size_t cut = std::string::npos;  // where an ellipsis still fits after
    for (std::size_t i = 0; i < text.size();) {
        std::size_t len = 1;
        std::string_view piece;
        switch (text[i]) {
        case '&': piece = "&amp;"; break;
        case '<': piece = "&lt;"; break;
        case '>': piece = "&gt;"; break;
        default:
            while (i + len < text.size() && isContinuation(text[i + len])) ++len;
            piece = text.substr(i, len);
        }
        if (cut == std::string::npos && out.size() + piece.size() + ELLIPSIS.size() > max_bytes)
            cut = out.size();
        out += piece;
        if (out.size() > max_bytes) {
            out.resize(cut);
            if (max_bytes >= ELLIPSIS.size()) out += ELLIPSIS;
            return out;
        }
        i += len;
    }
    return out;
}

json slackText(std::string_view type, std::string text) {
    return json{{"type", type}, {"text", std::move(text)}};
}

json slackField(std::string_view title, std::string_view value) {
    const std::string head = "*" + std::string(title) + "*\n";
    return slackText("mrkdwn", head + slackEscape(value, SLACK_FIELD_MAX - head.size()));
}

std::string resolveReason(std::string_view reason) {
    if (reason == "up") return "the unit stayed up";
    if (reason == "operator-stop") return "an operator stopped the unit";
    return std::string(reason);
}

// The newest journal lines that fit a code block of at most `max_bytes`: the crash is at
// the end. "```" inside a line would close the block early, so it is broken up.
std::string slackJournal(const Notification& n, std::size_t max_bytes) {
    constexpr std::string_view FENCE = "```";
    const auto lines = cappedJournal(n);
    // Fences, and an ellipsis line when older lines are left out.
    const std::size_t budget = max_bytes - 2 * FENCE.size() - ELLIPSIS.size() - 1;
    std::vector<std::string> kept;
    std::size_t used = 0;
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
        std::string line = *it;
        for (auto at = line.find(FENCE); at != std::string::npos; at = line.find(FENCE, at + 2))
            line.replace(at, FENCE.size(), "`\u200b``");
        std::string escaped = slackEscape(line, std::string::npos);
        if (used + escaped.size() + 1 > budget) {
            // The newest line is shown, cut, rather than nothing.
            if (kept.empty()) kept.push_back(slackEscape(line, budget - 1));
            break;
        }
        used += escaped.size() + 1;
        kept.push_back(std::move(escaped));
    }
    std::string out(FENCE);
    if (kept.size() < lines.size()) out += std::string(ELLIPSIS) + "\n";
    for (auto it = kept.rbegin(); it != kept.rend(); ++it) out += *it + "\n";
    return out + std::string(FENCE);
}

}  // namespace

std::string countText(const Notification& n) {
    const std::string count = n.event ? core::countOf(*n.event, n.count) : std::to_string(n.count);
    return count + " in " + core::formatDuration(n.within_usec);
}

std::string slackBody(const Notification& n) {
    const bool firing = n.action == Action::Trigger;
    const std::string mark = firing ? "[FIRING] " : "[RESOLVED] ";
    // Notifications (phone, desktop) show `text`; the blocks are the message itself.
    const std::string text = truncateUtf8(mark + n.summary + sourcesNote(n), SLACK_TEXT_MAX);

    json blocks = json::array();
    blocks.push_back({{"type", "header"},
                      {"text", slackText("plain_text", truncateUtf8(mark + n.unit + " on " + n.host,
                                                                    SLACK_HEADER_MAX))}});
    blocks.push_back({{"type", "section"},
                      {"text", slackText("mrkdwn", slackEscape(n.summary + sourcesNote(n),
                                                               SLACK_SECTION_TEXT_MAX))}});

    json fields = json::array();
    fields.push_back(slackField("Rule", n.rule));
    fields.push_back(slackField("Severity", rules::toString(n.severity)));
    fields.push_back(slackField("Unit", n.unit));
    fields.push_back(slackField("Host", n.host));
    fields.push_back(
        slackField(n.event ? core::eventTitle(*n.event) : "Count", std::to_string(n.count)));
    fields.push_back(slackField("Window", core::formatDuration(n.within_usec)));
    fields.push_back(slackField("Started", core::formatIsoTime(n.started_usec)));
    if (n.resolved_usec)
        fields.push_back(
            slackField("Resolved", core::formatIsoTime(*n.resolved_usec) +
                                       (n.reason.empty() ? "" : ", " + resolveReason(n.reason))));
    if (n.last_exit) fields.push_back(slackField("Last exit", lastExitText(*n.last_exit)));
    if (!n.sources.empty()) {
        std::string sources;
        for (const auto& source : n.sources) sources += (sources.empty() ? "" : ", ") + source;
        fields.push_back(slackField("Source", sources));
    }
    fields.erase(
        fields.begin() + static_cast<std::ptrdiff_t>(std::min(fields.size(), SLACK_FIELDS_MAX)),
        fields.end());
    blocks.push_back({{"type", "section"}, {"fields", fields}});

    if (!n.journal.empty())
        blocks.push_back({{"type", "section"},
                          {"text", slackText("mrkdwn", slackJournal(n, SLACK_SECTION_TEXT_MAX))}});
    blocks.push_back(
        {{"type", "context"},
         {"elements", json::array({slackText(
                          "mrkdwn", firing ? "cerberus · firing" : "cerberus · resolved")})}});
    return dump(json{{"text", text}, {"blocks", blocks}});
}

namespace {

constexpr std::size_t EMAIL_SUBJECT_MAX = 200;  // bytes of text, before encoding
constexpr std::string_view CRLF = "\r\n";

// Invalid UTF-8 (a journal line may hold any bytes) becomes U+FFFD: the body says utf-8.
std::string validUtf8(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (std::size_t i = 0; i < text.size();) {
        const auto c = static_cast<unsigned char>(text[i]);
        std::size_t len = 0;
        if (c < 0x80)
            len = 1;
        else if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4;
        bool ok = len > 0 && i + len <= text.size();
        for (std::size_t k = 1; ok && k < len; ++k) ok = isContinuation(text[i + k]);
        if (ok && len == 3) {
            const auto d = static_cast<unsigned char>(text[i + 1]);
            ok = !(c == 0xE0 && d < 0xA0) && !(c == 0xED && d >= 0xA0);  // overlong, surrogate
        }
        if (ok && len == 4) {
            const auto d = static_cast<unsigned char>(text[i + 1]);
            ok = !(c == 0xF0 && d < 0x90) && !(c == 0xF4 && d >= 0x90);
        }
        if (!ok) {
            out += "\uFFFD";
            ++i;
            continue;
        }
        out.append(text, i, len);
        i += len;
    }
    return out;
}

// One line for a header: control characters (a summary template may hold a newline)
// become spaces, so nothing can add a header.
std::string headerText(std::string_view text) {
    std::string out = validUtf8(text);
    for (char& c : out)
        if (static_cast<unsigned char>(c) < ' ' || c == 0x7F) c = ' ';
    return out;
}

bool isPlainAscii(std::string_view text) {
    return std::all_of(text.begin(), text.end(), [](char c) {
        const auto u = static_cast<unsigned char>(c);
        return u >= ' ' && u < 0x7F;
    });
}

std::string base64(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3) + 1, '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::string mailbox(const rules::Mailbox& box) {
    if (box.name.empty()) return box.address;
    std::string name = encodeHeaderWords(box.name);
    // Plain ASCII goes in quotes, so "Ops, Team" is one name and not two addresses.
    if (name == box.name) name = "\"" + name + "\"";
    return name + " <" + box.address + ">";
}

// "Tue, 01 Dec 2026 17:41:20 +0000" (RFC 5322 3.3), whatever the locale.
std::string mailDate(core::Usec ts_usec) {
    static constexpr std::array<std::string_view, 7> DAYS{"Sun", "Mon", "Tue", "Wed",
                                                          "Thu", "Fri", "Sat"};
    static constexpr std::array<std::string_view, 12> MONTHS{
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    const std::time_t t = ts_usec / core::USEC_PER_SEC;
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[64];
    std::snprintf(text, sizeof text, "%s, %02d %s %04d %02d:%02d:%02d +0000",
                  DAYS[static_cast<std::size_t>(tm.tm_wday)].data(), tm.tm_mday,
                  MONTHS[static_cast<std::size_t>(tm.tm_mon)].data(), tm.tm_year + 1900, tm.tm_hour,
                  tm.tm_min, tm.tm_sec);
    return text;
}

// "<local@domain>" from what identifies the message; the domain is the sender's.
std::string messageId(std::string_view local, const rules::Receiver& receiver) {
    const auto& from = receiver.from.address;
    return "<" + std::string(local) + "@" + from.substr(from.rfind('@') + 1) + ">";
}

std::string mailBody(const Notification& n) {
    const bool firing = n.action == Action::Trigger;
    std::string out = (firing ? "[FIRING] " : "[RESOLVED] ") + n.summary + sourcesNote(n) + "\n\n";
    const auto row = [&out](std::string_view title, const std::string& value) {
        std::string head = std::string(title) + ":";
        head.resize(std::max<std::size_t>(head.size() + 1, 12), ' ');
        out += head + value + "\n";
    };
    row("Rule", n.rule);
    row("Severity", std::string(rules::toString(n.severity)));
    row("Unit", n.unit);
    row("Host", n.host);
    row(n.event ? core::eventTitle(*n.event) : "Count", std::to_string(n.count));
    row("Window", core::formatDuration(n.within_usec));
    row("Started", core::formatIsoTime(n.started_usec));
    if (n.resolved_usec)
        row("Resolved", core::formatIsoTime(*n.resolved_usec) +
                            (n.reason.empty() ? "" : ", " + resolveReason(n.reason)));
    if (n.last_exit) row("Last exit", lastExitText(*n.last_exit));
    if (!n.sources.empty()) {
        std::string sources;
        for (const auto& source : n.sources) sources += (sources.empty() ? "" : ", ") + source;
        row("Source", sources);
    }
    if (!n.labels.empty()) {
        std::string labels;
        for (const auto& [k, v] : n.labels) labels += (labels.empty() ? "" : ", ") + k + "=" + v;
        row("Labels", labels);
    }
    if (!n.journal.empty()) {
        const auto lines = cappedJournal(n);
        out += "\nJournal of the run that ended (" + core::plural(lines.size(), "line") + "):\n\n";
        for (const auto& line : lines) out += "    " + line + "\n";
    }
    out += "\n-- \ncerberus on " + n.host + ", notification " + n.id + "\n";
    return validUtf8(out);
}

}  // namespace

std::string encodeHeaderWords(std::string_view text) {
    if (isPlainAscii(text)) return std::string(text);
    // 39 bytes of text make an encoded word of 64 characters: with "Subject: " in front,
    // every line stays within 78.
    std::string out;
    while (!text.empty()) {
        const auto chunk = utf8Prefix(text, 39);
        const auto taken = chunk.empty() ? std::min<std::size_t>(text.size(), 4) : chunk.size();
        if (!out.empty()) out += "\r\n ";
        out += "=?UTF-8?B?" + base64(text.substr(0, taken)) + "?=";
        text.remove_prefix(taken);
    }
    return out;
}

std::string quotedPrintable(std::string_view text) {
    static constexpr char HEX[] = "0123456789ABCDEF";
    std::string out;
    std::size_t column = 0;
    const auto put = [&](std::string_view token) {
        // A soft break keeps every line at most 76 characters, the "=" included.
        if (column + token.size() > 75) {
            out += "=\r\n";
            column = 0;
        }
        out += token;
        column += token.size();
    };
    for (std::size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        if (c == '\n') {
            out += CRLF;
            column = 0;
            continue;
        }
        const auto u = static_cast<unsigned char>(c);
        const bool line_end = i + 1 == text.size() || text[i + 1] == '\n';
        const bool literal =
            (u >= 33 && u <= 126 && c != '=') || ((c == ' ' || c == '\t') && !line_end);
        if (literal) {
            put(std::string_view(&c, 1));
        } else {
            const char escaped[3] = {'=', HEX[u >> 4], HEX[u & 0x0F]};
            put(std::string_view(escaped, 3));
        }
    }
    return out;
}

std::string emailMessage(const Notification& n, const rules::Receiver& receiver,
                         core::Usec now_usec) {
    const bool firing = n.action == Action::Trigger;
    const std::string subject = truncateUtf8(
        headerText((firing ? "[FIRING] " : "[RESOLVED] ") + n.summary + sourcesNote(n)),
        EMAIL_SUBJECT_MAX);
    std::string to;
    for (const auto& box : receiver.to) to += (to.empty() ? "" : ",\r\n ") + mailbox(box);
    // The alert's first message is the thread every later one replies to.
    const std::string thread =
        messageId("alert-" + sha256Hex(n.host + '\n' + n.rule + '\n' + n.unit + '\n' +
                                       std::to_string(n.started_usec))
                                 .substr(0, 32),
                  receiver);
    std::string id = n.change == Change::Fire ? thread : messageId("cerberus-" + n.id, receiver);
    std::string out;
    const auto header = [&out](std::string_view name, const std::string& value) {
        out += std::string(name) + ": " + value + std::string(CRLF);
    };
    header("Date", mailDate(now_usec));
    header("From", mailbox(receiver.from));
    header("To", to);
    header("Subject", encodeHeaderWords(subject));
    header("Message-ID", id);
    if (id != thread) {
        header("In-Reply-To", thread);
        header("References", thread);
    }
    header("MIME-Version", "1.0");
    header("Content-Type", "text/plain; charset=utf-8");
    header("Content-Transfer-Encoding", "quoted-printable");
    // RFC 3834: no vacation auto-replies to an alert.
    header("Auto-Submitted", "auto-generated");
    out += CRLF;
    out += quotedPrintable(mailBody(n));
    return out;
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
        {"event", eventJson(n)},
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

constexpr core::EnumName<Change> CHANGES[] = {{Change::Fire, "fire"},
                                              {Change::Repeat, "repeat"},
                                              {Change::Unsilence, "unsilence"},
                                              {Change::Resolve, "resolve"}};

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
    // In the order dump() writes the keys (json sorts them), as the outbox row reads.
    json j = {
        {"action", toString(n.action)},
        {"change", toString(n.change)},
        {"count", n.count},
        {"event", eventJson(n)},
        {"host", n.host},
        {"id", n.id},
        {"journal", n.journal},
        {"labels", n.labels},
        {"last_exit", lastExitJson(n)},
        {"reason", n.reason},
        {"resolved_usec", n.resolved_usec ? json(*n.resolved_usec) : json()},
        {"rule", n.rule},
        {"severity", rules::toString(n.severity)},
        {"sources", n.sources},
        {"started_usec", n.started_usec},
        {"summary", n.summary},
        {"unit", n.unit},
        {"within_usec", n.within_usec},
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
        // Absent from rows queued by an older cerberus.
        if (const auto it = j.find("event"); it != j.end() && it->is_string())
            n.event = core::parseEvent(it->get<std::string>());
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
