#include <algorithm>
#include <array>
#include <filesystem>
#include <iterator>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "core/base64.hpp"
#include "core/file.hpp"
#include "rules/json_lines.hpp"
#include "rules/rules.hpp"

namespace cerberus::rules {

namespace {

using nlohmann::json;
namespace fs = std::filesystem;

constexpr std::array<std::string_view, 3> TOP_LEVEL_KEYS{"$schema", "receivers", "rules"};
constexpr std::array<std::string_view, 12> RULE_KEYS{
    "name",         "units",  "exclude", "when",    "resolve_when_up_for", "severity",
    "repeat_every", "notify", "labels",  "summary", "description",         "journal_lines"};
constexpr std::array<std::string_view, 7> WHEN_KEYS{
    "event", "count", "within", "uptime_below", "result", "exit_status", "sources"};
constexpr std::array<std::string_view, 4> SLACK_KEYS{"type", "url", "timeout", "give_up_after"};
constexpr std::array<std::string_view, 5> PAGERDUTY_KEYS{"type", "routing_key", "url", "timeout",
                                                         "give_up_after"};
constexpr std::array<std::string_view, 5> WEBHOOK_KEYS{"type", "url", "secret", "timeout",
                                                       "give_up_after"};
constexpr std::array<std::string_view, 5> ALERTMANAGER_KEYS{"type", "urls", "timeout",
                                                            "give_up_after", "resend_every"};
constexpr std::array<std::string_view, 1> LOG_KEYS{"type"};
constexpr std::array<std::string_view, 10> EMAIL_KEYS{
    "type",     "url",      "from",    "to",      "username",
    "password", "starttls", "ca_file", "timeout", "give_up_after"};
constexpr std::string_view MAILBOX_HINT =
    "an address such as \"ops@example.com\" or \"Ops <ops@example.com>\"";

// systemd's Result= values (service, socket, timer, mount units), so a typo such as
// "oom_kill" is refused instead of silently matching nothing.
constexpr std::array<std::string_view, 16> RESULTS{"success",
                                                   "resources",
                                                   "protocol",
                                                   "timeout",
                                                   "exit-code",
                                                   "signal",
                                                   "core-dump",
                                                   "watchdog",
                                                   "start-limit-hit",
                                                   "oom-kill",
                                                   "exec-condition",
                                                   "trigger-limit-hit",
                                                   "service-start-limit-hit",
                                                   "unit-start-limit-hit",
                                                   "service-failed-permanent",
                                                   "failure-event"};

// Labels become Alertmanager labels; these are set by cerberus itself.
constexpr std::array<std::string_view, 5> RESERVED_LABELS{"alertname", "unit", "host", "severity",
                                                          "source"};

constexpr std::string_view DURATION_HINT =
    "a duration such as \"500ms\", \"30s\", \"5min\", \"1.5h\", \"1h 30min\", \"2d\" or "
    "\"1w\"";

template <std::size_t N>
std::string joined(const std::array<std::string_view, N>& words) {
    std::string out;
    for (const auto& w : words) {
        if (!out.empty()) out += ", ";
        out += w;
    }
    return out;
}

template <std::size_t N>
bool contains(const std::array<std::string_view, N>& words, std::string_view word) {
    return std::find(words.begin(), words.end(), word) != words.end();
}

std::string describe(const json& j) {
    switch (j.type()) {
    case json::value_t::object: return "an object";
    case json::value_t::array: return "an array";
    case json::value_t::boolean: return j.get<bool>() ? "true" : "false";
    case json::value_t::null: return "null";
    default: break;
    }
    std::string text = j.dump();
    if (text.size() > 40) text = text.substr(0, 37) + "...";
    return text;
}

bool isName(std::string_view s) {
    if (s.empty() || s.size() > 128 || !std::isalnum(static_cast<unsigned char>(s[0])))
        return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
    });
}

bool isIdentifier(std::string_view s) {
    if (s.empty() || std::isdigit(static_cast<unsigned char>(s[0]))) return false;
    return std::all_of(s.begin(), s.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
    });
}

// The host of an smtp(s) URL is this machine: a password may go there in clear.
bool isLoopbackUrl(std::string_view url) {
    auto host = url.substr(url.find("://") + 3);
    host = host.substr(0, host.find('/'));
    if (const auto at = host.rfind('@'); at != std::string_view::npos) host.remove_prefix(at + 1);
    if (host.starts_with("[::1]")) return true;
    host = host.substr(0, host.find(':'));
    return host == "localhost" || host.starts_with("127.");
}

// Something after `scheme`, without a space or a control character, which libcurl refuses
// when it sends: refused when loading.
bool hasUrlRest(std::string_view s, std::string_view scheme) {
    if (!s.starts_with(scheme)) return false;
    const auto rest = s.substr(scheme.size());
    return !rest.empty() && std::none_of(rest.begin(), rest.end(), [](char c) {
        const auto byte = static_cast<unsigned char>(c);
        return byte <= 0x20 || byte == 0x7f;
    });
}

constexpr std::array<std::string_view, 12> CHARACTER_CLASSES{"alnum", "alpha", "blank", "cntrl",
                                                             "digit", "graph", "lower", "print",
                                                             "punct", "space", "upper", "xdigit"};

// Empty when fnmatch(3) reads `glob` as written, else what is wrong and how to write it.
// fnmatch takes an unclosed '[' as a literal and never matches a trailing '\', an
// unknown class or a reversed range, so such a glob would silently match nothing.
std::string globError(std::string_view glob) {
    const std::size_t n = glob.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (glob[i] == '\\') {
            if (++i == n)
                return "it ends with a lone '\\'; write '\\\\' for a backslash or drop it";
            continue;
        }
        if (glob[i] != '[') continue;
        const std::size_t open = i;
        std::size_t j = i + 1;
        if (j < n && (glob[j] == '!' || glob[j] == '^')) ++j;
        if (j < n && glob[j] == ']') ++j;  // a ']' first in the set is itself a member
        bool closed = false;
        while (j < n) {
            if (glob[j] == '\\') {
                j += 2;
                continue;
            }
            if (glob[j] == '[' && j + 1 < n &&
                (glob[j + 1] == ':' || glob[j + 1] == '.' || glob[j + 1] == '=')) {
                const char kind = glob[j + 1];
                const auto end = glob.find(std::string{kind, ']'}, j + 2);
                if (end == std::string_view::npos)
                    return "the '[" + std::string(1, kind) + "' at position " +
                           std::to_string(j + 1) + " is never closed with '" +
                           std::string(1, kind) + "]'";
                const std::string_view name = glob.substr(j + 2, end - j - 2);
                if (kind == ':' && !contains(CHARACTER_CLASSES, name))
                    return "unknown character class '[:" + std::string(name) +
                           ":]'; expected one of " + joined(CHARACTER_CLASSES);
                j = end + 2;
                continue;
            }
            if (glob[j] == ']') {
                closed = true;
                break;
            }
            if (j + 2 < n && glob[j + 1] == '-' && glob[j + 2] != ']' && glob[j + 2] != '\\' &&
                glob[j + 2] != '[' &&
                static_cast<unsigned char>(glob[j + 2]) < static_cast<unsigned char>(glob[j])) {
                return "the range '" + std::string(glob.substr(j, 3)) +
                       "' is reversed and matches nothing; write '" + glob[j + 2] + "-" + glob[j] +
                       "'";
            }
            ++j;
        }
        if (!closed)
            return "the '[' at position " + std::to_string(open + 1) +
                   " is never closed with ']'; write '\\[' for a literal '[' or close the set";
        i = j;
    }
    return {};
}

// A name that must be unique across all files, or that must name something defined.
struct NameRef {
    std::string name;
    std::string pointer;
    std::string file;
    int line = 1;
};

struct Document {
    std::vector<Rule> rules;  // only those without errors
    std::vector<Receiver> receivers;
    // Every name given, valid definition or not, so one error does not cascade into
    // "duplicate" or "no receiver named" errors elsewhere.
    std::vector<NameRef> rule_names;
    std::vector<NameRef> receiver_names;
    std::vector<NameRef> notify_refs;
};

class Parser {
public:
    Parser(std::string file, std::string_view text, std::vector<std::string>& errors)
        : file_(std::move(file)), text_(text), errors_(errors) {}

    Document run() {
        if (text_.starts_with(BOM)) {
            errors_.push_back(file_ +
                              ":1: the file starts with a UTF-8 byte order mark; expected JSON "
                              "without one: remove the first three bytes, e.g. sed -i "
                              "'1s/^\\xEF\\xBB\\xBF//' " +
                              file_);
            return {};
        }
        // Without exceptions: nlohmann throws more than parse_error (a number that overflows
        // a double is out_of_range.406), and every one of them must become FILE:LINE.
        const json root = json::parse(text_, nullptr, false);
        if (root.is_discarded()) {
            invalidJson();
            return {};
        }
        try {
            check(root);
        } catch (const json::exception& e) {
            // A bug, not the file's fault; still one sentence that names the file.
            errors_.push_back(file_ + ":1: cannot check the rules: " + e.what());
        }
        return std::move(doc_);
    }

private:
    static constexpr std::string_view BOM = "\xEF\xBB\xBF";

    void check(const json& root) {
        lines_ = detail::scanLines(text_);
        for (const auto& pointer : lines_.duplicate_keys) {
            const auto slash = pointer.rfind('/');
            error(pointer, shown(pointer.substr(0, slash)),
                  "duplicate key '" + unescape(pointer.substr(slash + 1)) +
                      "'; expected each key once");
        }
        if (!root.is_object()) {
            error("", "expected an object with keys " + joined(TOP_LEVEL_KEYS) + ", got " +
                          describe(root));
            return;
        }
        checkKeys(root, "", TOP_LEVEL_KEYS);
        if (auto it = root.find("$schema"); it != root.end() && !it->is_string())
            error("/$schema", "expected a string, got " + describe(*it));
        if (auto it = root.find("receivers"); it != root.end()) receivers(*it, "/receivers");
        if (auto it = root.find("rules"); it != root.end()) rules(*it, "/rules");
    }

    static std::string shown(const std::string& pointer) { return pointer.empty() ? "/" : pointer; }

    static std::string unescape(std::string token) {
        std::string out;
        for (std::size_t i = 0; i < token.size(); ++i) {
            if (token[i] == '~' && i + 1 < token.size()) {
                out += token[i + 1] == '1' ? '/' : '~';
                ++i;
            } else {
                out += token[i];
            }
        }
        return out;
    }

    static std::string child(const std::string& pointer, std::string_view key) {
        return pointer + "/" + detail::escapePointerToken(key);
    }
    static std::string child(const std::string& pointer, std::size_t index) {
        return pointer + "/" + std::to_string(index);
    }

    int lineOf(const std::string& pointer) const { return lines_.lineOf(pointer); }

    // The line is that of `line_pointer`; the message names `shown_pointer`.
    void error(const std::string& line_pointer, const std::string& shown_pointer,
               const std::string& what) {
        errors_.push_back(file_ + ":" + std::to_string(lineOf(line_pointer)) + ": " +
                          shown_pointer + ": " + what);
    }
    void error(const std::string& pointer, const std::string& what) {
        error(pointer, shown(pointer), what);
    }

    // Where the parser stopped and why, for any error it reports.
    struct FirstError final : nlohmann::json_sax<json> {
        std::size_t position = 0;
        std::string token;
        std::string what;
        bool null() override { return true; }
        bool boolean(bool) override { return true; }
        bool number_integer(number_integer_t) override { return true; }
        bool number_unsigned(number_unsigned_t) override { return true; }
        bool number_float(number_float_t, const string_t&) override { return true; }
        bool string(string_t&) override { return true; }
        bool binary(binary_t&) override { return true; }
        bool start_object(std::size_t) override { return true; }
        bool key(string_t&) override { return true; }
        bool end_object() override { return true; }
        bool start_array(std::size_t) override { return true; }
        bool end_array() override { return true; }
        bool parse_error(std::size_t at, const std::string& last_token,
                         const nlohmann::detail::exception& e) override {
            position = at;
            token = last_token;
            what = e.what();
            return false;
        }
    };

    void invalidJson() {
        FirstError first;
        json::sax_parse(text_, &first);
        // The position is 1-based and points at the character that could not be read, or
        // after a number that overflows: the column is where its token starts.
        std::size_t end =
            std::min<std::size_t>(first.position > 0 ? first.position - 1 : 0, text_.size());
        if (first.what.find(".out_of_range.") != std::string::npos)
            end -= std::min(end, first.token.size() > 0 ? first.token.size() - 1 : 0);
        int line = 1;
        std::size_t line_start = 0;
        for (std::size_t i = 0; i < end; ++i) {
            if (text_[i] == '\n') {
                ++line;
                line_start = i + 1;
            }
        }
        std::string what = first.what;
        // "[json.exception.parse_error.101] parse error at line 3, column 5: syntax error ..."
        // "[json.exception.out_of_range.406] number overflow parsing '1e999'"
        if (const auto colon = what.find(": "); colon != std::string::npos)
            what = what.substr(colon + 2);
        else if (const auto bracket = what.find("] "); bracket != std::string::npos)
            what = what.substr(bracket + 2) + "; write a smaller number";
        if (what.empty()) what = "the parser stopped here";
        errors_.push_back(file_ + ":" + std::to_string(line) + ":" +
                          std::to_string(end - line_start + 1) + ": invalid JSON: " + what);
    }

    template <std::size_t N>
    void checkKeys(const json& object, const std::string& pointer,
                   const std::array<std::string_view, N>& allowed) {
        for (const auto& [key, value] : object.items())
            if (!contains(allowed, key))
                error(child(pointer, key), shown(pointer),
                      "unknown key '" + key + "'; expected one of " + joined(allowed));
    }

    bool expectType(const json& j, const std::string& pointer, bool ok, std::string_view what) {
        if (!ok) error(pointer, "expected " + std::string(what) + ", got " + describe(j));
        return ok;
    }

    void missing(const std::string& pointer, std::string_view key, std::string_view what) {
        error(pointer, shown(pointer),
              "missing key '" + std::string(key) + "'; expected " + std::string(what));
    }

    std::optional<std::string> string(const json& j, const std::string& pointer) {
        if (!expectType(j, pointer, j.is_string(), "a string")) return std::nullopt;
        return j.get<std::string>();
    }

    std::optional<int> integer(const json& j, const std::string& pointer, int min, int max) {
        const bool ok =
            j.is_number_integer() && j.get<std::int64_t>() >= min && j.get<std::int64_t>() <= max;
        if (!expectType(j, pointer, ok,
                        "an integer from " + std::to_string(min) + " to " + std::to_string(max)))
            return std::nullopt;
        return j.get<int>();
    }

    std::optional<core::Usec> duration(const json& j, const std::string& pointer,
                                       core::Usec min_usec = 0) {
        std::string expected(DURATION_HINT);
        if (min_usec == 1) expected = "a non-zero" + expected.substr(1);
        if (min_usec > 1) expected += " of at least " + core::formatDuration(min_usec);
        if (!expectType(j, pointer, j.is_string(), expected)) return std::nullopt;
        const auto usec = core::parseDuration(j.get<std::string>());
        if (!usec || *usec < min_usec) {
            error(pointer, "expected " + expected + ", got " + describe(j));
            return std::nullopt;
        }
        return usec;
    }

    std::optional<std::vector<std::string>> strings(const json& j, const std::string& pointer,
                                                    bool non_empty) {
        const std::string what =
            non_empty ? "a non-empty array of non-empty strings" : "an array of non-empty strings";
        if (!expectType(j, pointer, j.is_array() && (!non_empty || !j.empty()), what))
            return std::nullopt;
        std::vector<std::string> out;
        bool ok = true;
        for (std::size_t i = 0; i < j.size(); ++i) {
            if (!j[i].is_string() || j[i].get<std::string>().empty()) {
                error(child(pointer, i), "expected a non-empty string, got " + describe(j[i]));
                ok = false;
                continue;
            }
            out.push_back(j[i].get<std::string>());
        }
        if (!ok) return std::nullopt;
        return out;
    }

    std::optional<std::vector<std::string>> globs(const json& j, const std::string& pointer,
                                                  bool non_empty) {
        auto out = strings(j, pointer, non_empty);
        if (!out) return out;
        bool ok = true;
        for (std::size_t i = 0; i < out->size(); ++i) {
            if (auto why = globError((*out)[i]); !why.empty()) {
                error(child(pointer, i), "'" + (*out)[i] + "' is not a valid glob: " + why);
                ok = false;
            }
        }
        if (!ok) return std::nullopt;
        return out;
    }

    std::optional<Secret> secret(const json& j, const std::string& pointer, bool url) {
        const std::string what = std::string(url ? "an http(s) URL" : "a non-empty string") +
                                 ", {\"env\": NAME} or {\"file\": PATH}";
        if (j.is_string()) {
            const auto s = j.get<std::string>();
            // The value itself is a secret: the message must not quote it.
            if (s.empty() || (url && !isHttpUrl(s))) {
                error(pointer, "expected " + what + ", got a string that is not one");
                return std::nullopt;
            }
            return Secret{Secret::Kind::Literal, s};
        }
        if (!j.is_object() || j.size() != 1) {
            error(pointer,
                  "expected " + what + ", got " +
                      (j.is_object() ? "an object with " + std::to_string(j.size()) + " keys"
                                     : describe(j)));
            return std::nullopt;
        }
        const std::string key = j.begin().key();
        const json& value = j.begin().value();
        const std::string at = child(pointer, key);
        if (key == "env") {
            if (!value.is_string() || !isIdentifier(value.get<std::string>())) {
                error(at, "expected an environment variable name such as \"SLACK_URL\", got " +
                              describe(value));
                return std::nullopt;
            }
            return Secret{Secret::Kind::Env, value.get<std::string>()};
        }
        if (key == "file") {
            if (!value.is_string() || !value.get<std::string>().starts_with('/')) {
                error(at, "expected an absolute file path, got " + describe(value));
                return std::nullopt;
            }
            const std::string path = value.get<std::string>();
            // Checked now, so a typo is found by `cerberus check`, not by the first alert.
            if (auto why = secretFileError(path); !why.empty()) {
                error(at, why);
                return std::nullopt;
            }
            return Secret{Secret::Kind::File, path};
        }
        error(at, shown(pointer), "unknown key '" + key + "'; expected one of env, file");
        return std::nullopt;
    }

    void receivers(const json& j, const std::string& pointer) {
        if (!expectType(j, pointer, j.is_object(), "an object of receivers by name")) return;
        for (const auto& [name, config] : j.items()) {
            const std::string at = child(pointer, name);
            bool ok = true;
            if (!isName(name)) {
                error(at, shown(pointer),
                      "receiver name '" + name +
                          "' is not valid; expected letters, digits, '_', '-' and '.'");
                ok = false;
            }
            if (ok) doc_.receiver_names.push_back(NameRef{name, at, file_, lineOf(at)});
            if (auto r = receiver(config, at); r && ok) {
                r->name = name;
                r->origin = file_ + ":" + std::to_string(lineOf(at));
                doc_.receivers.push_back(std::move(*r));
            }
        }
    }

    std::optional<Mailbox> mailbox(const json& j, const std::string& pointer) {
        if (!expectType(j, pointer, j.is_string(), MAILBOX_HINT)) return std::nullopt;
        auto box = parseMailbox(j.get<std::string>());
        if (!box) error(pointer, "expected " + std::string(MAILBOX_HINT) + ", got " + describe(j));
        return box;
    }

    // An email receiver's own keys but its password (a secret, read like the others).
    void email(const json& j, const std::string& pointer, Receiver& r) {
        if (auto it = j.find("url"); it == j.end()) {
            missing(pointer, "url",
                    "an smtp:// or smtps:// URL such as \"smtp://mail.example.com:587\"");
        } else if (expectType(
                       *it, child(pointer, "url"),
                       it->is_string() && isSmtpUrl(it->get<std::string>()),
                       "an smtp:// or smtps:// URL such as \"smtp://mail.example.com:587\"")) {
            r.url = Secret{Secret::Kind::Literal, it->get<std::string>()};
        }
        if (auto it = j.find("from"); it == j.end()) {
            missing(pointer, "from", MAILBOX_HINT);
        } else if (auto box = mailbox(*it, child(pointer, "from"))) {
            r.from = std::move(*box);
        }
        if (auto it = j.find("to"); it == j.end()) {
            missing(pointer, "to", "a non-empty array of addresses");
        } else if (auto to = strings(*it, child(pointer, "to"), true)) {
            if (to->size() > MAIL_TO_MAX)
                error(child(pointer, "to"), "expected at most " + std::to_string(MAIL_TO_MAX) +
                                                " addresses, got " + std::to_string(to->size()) +
                                                "; use a mailing list");
            for (std::size_t i = 0; i < to->size(); ++i)
                if (auto box = mailbox((*it)[i], child(child(pointer, "to"), i)))
                    r.to.push_back(std::move(*box));
        }
        if (auto it = j.find("username"); it != j.end()) {
            if (expectType(*it, child(pointer, "username"),
                           it->is_string() && !it->get<std::string>().empty(),
                           "a non-empty string"))
                r.username = it->get<std::string>();
        }
        if (auto it = j.find("starttls"); it != j.end()) {
            const auto at = child(pointer, "starttls");
            const auto mode =
                it->is_string() ? parseStartTls(it->get<std::string>()) : std::nullopt;
            if (!mode) {
                error(at, "expected one of always, opportunistic, never, got " + describe(*it));
            } else {
                r.starttls = *mode;
                if (*mode != StartTls::Always && r.url && r.url->value.starts_with("smtps://"))
                    error(at,
                          "smtps:// is encrypted from the first byte; remove \"starttls\" or "
                          "use an smtp:// URL");
            }
        }
        if (auto it = j.find("ca_file"); it != j.end()) {
            const auto at = child(pointer, "ca_file");
            if (expectType(*it, at, it->is_string() && it->get<std::string>().starts_with('/'),
                           "an absolute path to a PEM file")) {
                const std::string path = it->get<std::string>();
                if (access(path.c_str(), R_OK) != 0)
                    error(at, "cannot read the CA file '" + path + "': " + std::strerror(errno) +
                                  "; create it or fix the path");
                r.ca_file = path;
            }
        }
    }

    std::optional<Receiver> receiver(const json& j, const std::string& pointer) {
        if (!expectType(j, pointer, j.is_object(), "an object with a \"type\""))
            return std::nullopt;
        const auto type_it = j.find("type");
        if (type_it == j.end()) {
            missing(pointer, "type", "one of slack, pagerduty, webhook, alertmanager, email, log");
            return std::nullopt;
        }
        const std::string type_at = child(pointer, "type");
        const auto type =
            type_it->is_string() ? parseReceiverType(type_it->get<std::string>()) : std::nullopt;
        if (!type) {
            error(type_at,
                  "expected one of slack, pagerduty, webhook, alertmanager, email, log, got " +
                      describe(*type_it));
            return std::nullopt;
        }
        Receiver r;
        r.type = *type;
        const std::size_t before = errors_.size();
        switch (*type) {
        case ReceiverType::Slack: checkKeys(j, pointer, SLACK_KEYS); break;
        case ReceiverType::PagerDuty: checkKeys(j, pointer, PAGERDUTY_KEYS); break;
        case ReceiverType::Webhook: checkKeys(j, pointer, WEBHOOK_KEYS); break;
        case ReceiverType::Alertmanager: checkKeys(j, pointer, ALERTMANAGER_KEYS); break;
        case ReceiverType::Log: checkKeys(j, pointer, LOG_KEYS); break;
        case ReceiverType::Email: checkKeys(j, pointer, EMAIL_KEYS); break;
        }
        const auto secret_key = [&](std::string_view key, bool required, bool url,
                                    std::optional<Secret>& out) {
            const auto it = j.find(key);
            if (it == j.end()) {
                if (required)
                    missing(pointer, key,
                            url ? "an http(s) URL or a secret reference"
                                : "a secret or a secret reference");
                return;
            }
            out = secret(*it, child(pointer, key), url);
        };
        switch (*type) {
        case ReceiverType::Slack: secret_key("url", true, true, r.url); break;
        case ReceiverType::Webhook:
            secret_key("url", true, true, r.url);
            secret_key("secret", false, false, r.secret);
            // A value from the environment or a file is checked when it is read (notify).
            if (r.secret && r.secret->kind == Secret::Kind::Literal) {
                if (auto why = webhookSecretError(r.secret->value); !why.empty())
                    error(child(pointer, "secret"), why);
            }
            break;
        case ReceiverType::PagerDuty:
            secret_key("routing_key", true, false, r.routing_key);
            if (auto it = j.find("url"); it != j.end()) {
                if (expectType(*it, child(pointer, "url"),
                               it->is_string() && isHttpUrl(it->get<std::string>()),
                               "an http(s) URL"))
                    r.url = Secret{Secret::Kind::Literal, it->get<std::string>()};
            }
            break;
        case ReceiverType::Alertmanager:
            if (auto it = j.find("urls"); it == j.end()) {
                missing(pointer, "urls", "a non-empty array of http(s) URLs");
            } else if (auto urls = strings(*it, child(pointer, "urls"), true)) {
                for (std::size_t i = 0; i < urls->size(); ++i)
                    if (!isHttpUrl((*urls)[i]))
                        error(child(child(pointer, "urls"), i),
                              "expected an http(s) URL, got " + describe((*it)[i]));
                r.urls = std::move(*urls);
            }
            break;
        case ReceiverType::Log: break;
        case ReceiverType::Email:
            email(j, pointer, r);
            secret_key("password", false, false, r.password);
            if (r.password && r.username.empty())
                error(child(pointer, "password"), "a password needs a \"username\" to log in with");
            if (!r.username.empty() && !r.password)
                missing(pointer, "password", "the secret that goes with \"username\"");
            // Checked last: it needs the URL, the mode and the password.
            if (r.password && r.url && r.starttls != StartTls::Always &&
                r.url->value.starts_with("smtp://") && !isLoopbackUrl(r.url->value))
                error(child(pointer, "starttls"),
                      "with \"" + std::string(toString(r.starttls)) +
                          "\" the password could cross the network unencrypted; use \"always\" "
                          "or an smtps:// URL");
            break;
        }
        if (auto it = j.find("timeout"); it != j.end()) {
            const auto at = child(pointer, "timeout");
            if (auto d = duration(*it, at, TIMEOUT_MIN_USEC)) {
                if (*d > TIMEOUT_MAX_USEC)
                    error(at, "expected a duration of at most " +
                                  core::formatDuration(TIMEOUT_MAX_USEC) + ", got " +
                                  describe(*it));
                r.timeout_usec = *d;
            }
        }
        if (auto it = j.find("give_up_after"); it != j.end()) {
            if (auto d = duration(*it, child(pointer, "give_up_after"), GIVE_UP_AFTER_MIN_USEC))
                r.give_up_after_usec = *d;
        }
        if (auto it = j.find("resend_every"); it != j.end()) {
            if (auto d = duration(*it, child(pointer, "resend_every"), RESEND_EVERY_MIN_USEC))
                r.resend_every_usec = *d;
        }
        if (errors_.size() != before) return std::nullopt;
        return r;
    }

    void rules(const json& j, const std::string& pointer) {
        if (!expectType(j, pointer, j.is_array(), "an array of rules")) return;
        for (std::size_t i = 0; i < j.size(); ++i) rule(j[i], child(pointer, i));
    }

    void rule(const json& j, const std::string& pointer) {
        if (!expectType(j, pointer, j.is_object(), "a rule object")) return;
        const std::size_t before = errors_.size();
        checkKeys(j, pointer, RULE_KEYS);
        Rule r;
        NameRef name_ref{"", child(pointer, "name"), file_, lineOf(child(pointer, "name"))};
        if (auto it = j.find("name"); it == j.end()) {
            missing(pointer, "name", "a rule name");
        } else if (auto name = string(*it, name_ref.pointer)) {
            if (isName(*name)) {
                r.name = *name;
                name_ref.name = *name;
            } else {
                error(name_ref.pointer,
                      "expected a name of letters, digits, '_', '-' and '.', got " + describe(*it));
            }
        }
        if (auto it = j.find("units"); it != j.end()) {
            if (auto units = globs(*it, child(pointer, "units"), true)) r.units = std::move(*units);
        }
        if (auto it = j.find("exclude"); it != j.end()) {
            if (auto exclude = globs(*it, child(pointer, "exclude"), false))
                r.exclude = std::move(*exclude);
        }
        if (auto it = j.find("description"); it != j.end())
            string(*it, child(pointer, "description"));
        if (auto it = j.find("when"); it == j.end()) {
            missing(pointer, "when", "an object with keys " + joined(WHEN_KEYS));
        } else {
            when(*it, child(pointer, "when"), r.when);
        }
        if (auto it = j.find("resolve_when_up_for"); it != j.end()) {
            if (auto d = duration(*it, child(pointer, "resolve_when_up_for")))
                r.resolve_when_up_for_usec = *d;
        }
        if (auto it = j.find("severity"); it != j.end()) {
            const auto s = it->is_string() ? parseSeverity(it->get<std::string>()) : std::nullopt;
            if (expectType(*it, child(pointer, "severity"), s.has_value(),
                           "one of critical, error, warning, info"))
                r.severity = *s;
        }
        if (auto it = j.find("repeat_every"); it != j.end())
            r.repeat_every_usec =
                duration(*it, child(pointer, "repeat_every"), REPEAT_EVERY_MIN_USEC);
        if (auto it = j.find("notify"); it == j.end()) {
            missing(pointer, "notify", "a non-empty array of receiver names");
        } else if (auto notify = strings(*it, child(pointer, "notify"), true)) {
            for (std::size_t i = 0; i < notify->size(); ++i) {
                const std::string at = child(child(pointer, "notify"), i);
                doc_.notify_refs.push_back(NameRef{(*notify)[i], at, file_, lineOf(at)});
            }
            r.notify = std::move(*notify);
        }
        if (auto it = j.find("labels"); it != j.end())
            labels(*it, child(pointer, "labels"), r.labels);
        if (auto it = j.find("summary"); it != j.end()) {
            if (auto s = string(*it, child(pointer, "summary"))) {
                summary(*s, child(pointer, "summary"));
                r.summary = *s;
            }
        }
        if (r.summary.empty()) r.summary = SUMMARY_DEFAULT;
        if (auto it = j.find("journal_lines"); it != j.end()) {
            if (auto n = integer(*it, child(pointer, "journal_lines"), 0, JOURNAL_LINES_MAX))
                r.journal_lines = *n;
        }
        if (!name_ref.name.empty()) doc_.rule_names.push_back(name_ref);
        if (errors_.size() != before) return;
        r.origin = file_ + ":" + std::to_string(lineOf(pointer));
        doc_.rules.push_back(std::move(r));
    }

    void when(const json& j, const std::string& pointer, Condition& c) {
        if (!expectType(j, pointer, j.is_object(), "an object with keys " + joined(WHEN_KEYS)))
            return;
        checkKeys(j, pointer, WHEN_KEYS);
        if (auto it = j.find("event"); it == j.end()) {
            missing(pointer, "event", "one of start, stop, crash, restart, fail, give_up");
        } else {
            const auto e =
                it->is_string() ? core::parseEvent(it->get<std::string>()) : std::nullopt;
            if (expectType(*it, child(pointer, "event"), e.has_value(),
                           "one of start, stop, crash, restart, fail, give_up"))
                c.event = *e;
        }
        if (auto it = j.find("count"); it != j.end()) {
            if (auto n = integer(*it, child(pointer, "count"), 1, COUNT_MAX)) c.count = *n;
        }
        if (auto it = j.find("within"); it != j.end()) {
            if (auto d = duration(*it, child(pointer, "within"), 1)) c.within_usec = *d;
        } else if (c.count > 1) {
            missing(pointer, "within", std::string(DURATION_HINT) + " when count is above 1");
        }
        if (auto it = j.find("uptime_below"); it != j.end())
            c.uptime_below_usec = duration(*it, child(pointer, "uptime_below"), 1);
        if (auto it = j.find("result"); it != j.end()) {
            const std::string at = child(pointer, "result");
            if (auto results = strings(*it, at, true)) {
                for (std::size_t i = 0; i < results->size(); ++i)
                    if (!contains(RESULTS, (*results)[i]))
                        error(child(at, i),
                              "expected a systemd result such as \"exit-code\", "
                              "\"signal\", \"core-dump\", \"oom-kill\" or "
                              "\"watchdog\", got " +
                                  describe((*it)[i]));
                c.results = std::move(*results);
            }
        }
        if (auto it = j.find("exit_status"); it != j.end()) {
            const std::string at = child(pointer, "exit_status");
            if (expectType(*it, at, it->is_array() && !it->empty(),
                           "a non-empty array of integers from 0 to 255")) {
                for (std::size_t i = 0; i < it->size(); ++i) {
                    const auto& v = (*it)[i];
                    if (expectType(v, child(at, i),
                                   v.is_number_integer() && v.get<std::int64_t>() >= 0 &&
                                       v.get<std::int64_t>() <= 255,
                                   "an integer from 0 to 255"))
                        c.exit_statuses.push_back(v.get<int>());
                }
            }
        }
        if (auto it = j.find("sources"); it != j.end()) {
            const std::string at = child(pointer, "sources");
            constexpr std::string_view HINT = "systemd, reconcile, emit or supervisor";
            if (expectType(*it, at, it->is_array() && !it->empty(),
                           std::string("a non-empty array of sources: ") + std::string(HINT))) {
                for (std::size_t i = 0; i < it->size(); ++i) {
                    const auto& v = (*it)[i];
                    const auto source =
                        v.is_string() ? core::parseSource(v.get<std::string>()) : std::nullopt;
                    if (!expectType(v, child(at, i), source.has_value(), std::string(HINT)))
                        continue;
                    // value_or: g++ 12 cannot see that expectType() returned on nullopt.
                    const core::Source value = source.value_or(core::Source::Systemd);
                    if (std::find(c.sources.begin(), c.sources.end(), value) != c.sources.end())
                        error(child(at, i), "source '" + v.get<std::string>() +
                                                "' is listed twice; list each source once");
                    else
                        c.sources.push_back(value);
                }
            }
        }
    }

    void labels(const json& j, const std::string& pointer,
                std::map<std::string, std::string>& out) {
        if (!expectType(j, pointer, j.is_object(), "an object of string labels")) return;
        for (const auto& [name, value] : j.items()) {
            const std::string at = child(pointer, name);
            if (!isIdentifier(name)) {
                error(at, shown(pointer),
                      "label name '" + name + "' is not valid; expected letters, digits and '_'");
            } else if (contains(RESERVED_LABELS, name)) {
                error(at, shown(pointer),
                      "label name '" + name + "' is set by cerberus; expected another name");
            } else if (auto v = string(value, at)) {
                out[name] = *v;
            }
        }
    }

    void summary(const std::string& text, const std::string& pointer) {
        std::size_t pos = 0;
        while ((pos = text.find('{', pos)) != std::string::npos) {
            const auto close = text.find('}', pos);
            if (close == std::string::npos) {
                error(pointer, "unclosed '{'; expected a placeholder such as {unit}");
                return;
            }
            const std::string field = text.substr(pos + 1, close - pos - 1);
            if (std::find(std::begin(SUMMARY_FIELDS), std::end(SUMMARY_FIELDS), field) ==
                std::end(SUMMARY_FIELDS)) {
                std::string what = "unknown placeholder '{" + field + "}'; expected one of ";
                for (const auto& f : SUMMARY_FIELDS) {
                    if (&f != std::begin(SUMMARY_FIELDS)) what += ", ";
                    what.append("{").append(f).append("}");
                }
                error(pointer, what);
            }
            pos = close + 1;
        }
    }

    std::string file_;
    std::string_view text_;
    std::vector<std::string>& errors_;
    detail::JsonLines lines_;
    Document doc_;
};

// One error, one line: a name or a key from the file may hold a newline or a control
// character, shown escaped as JSON would write it.
std::string oneLine(std::string text) {
    if (std::none_of(text.begin(), text.end(),
                     [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }))
        return text;
    std::string out;
    for (const char c : text) {
        const auto byte = static_cast<unsigned char>(c);
        if (c == '\n') {
            out += "\\n";
        } else if (c == '\t') {
            out += "\\t";
        } else if (byte < 0x20 || byte == 0x7f) {
            constexpr char HEX[] = "0123456789abcdef";
            out += "\\u00";
            out += HEX[byte >> 4];
            out += HEX[byte & 0xf];
        } else {
            out += c;
        }
    }
    return out;
}

std::string where(const NameRef& ref) { return ref.file + ":" + std::to_string(ref.line); }

void fail(std::vector<std::string>& errors, const NameRef& ref, const std::string& what) {
    errors.push_back(where(ref) + ": " + ref.pointer + ": " + what);
}

// Named at the first one past the cap, so the message says which file to split or trim.
template <typename T>
void capCount(const std::vector<T>& all, std::size_t max, const std::string& kind,
              std::string_view fix, std::vector<std::string>& errors) {
    if (all.size() <= max) return;
    errors.push_back(all[max].origin + ": " + kind + " '" + all[max].name + "': too many " + kind +
                     "s (" + std::to_string(all.size()) + " in all files, this is number " +
                     std::to_string(max + 1) + "); expected at most " + std::to_string(max) + ": " +
                     std::string(fix));
}

// Names are unique across every file; notify entries name defined receivers.
LoadResult merge(std::vector<Document>&& docs, std::vector<std::string>&& errors) {
    const auto unique = [&](std::string_view kind, auto member) {
        std::unordered_map<std::string, NameRef> first;
        for (const auto& doc : docs) {
            for (const auto& ref : doc.*member) {
                if (auto [it, fresh] = first.try_emplace(ref.name, ref); !fresh)
                    fail(errors, ref,
                         "duplicate " + std::string(kind) + " name '" + ref.name +
                             "'; first defined at " + where(it->second));
            }
        }
        return first;
    };
    const auto receivers = unique("receiver", &Document::receiver_names);
    unique("rule", &Document::rule_names);
    std::string known;
    for (const auto& doc : docs)
        for (const auto& ref : doc.receiver_names) known += (known.empty() ? "" : ", ") + ref.name;
    for (const auto& doc : docs) {
        for (const auto& ref : doc.notify_refs) {
            if (receivers.contains(ref.name)) continue;
            fail(errors, ref,
                 "no receiver named '" + ref.name + "'; expected " +
                     (known.empty() ? std::string("a receiver defined under /receivers")
                                    : "one of " + known));
        }
    }
    LoadResult out;
    for (auto& doc : docs) {
        std::move(doc.rules.begin(), doc.rules.end(), std::back_inserter(out.rules.rules));
        std::move(doc.receivers.begin(), doc.receivers.end(),
                  std::back_inserter(out.rules.receivers));
    }
    capCount(out.rules.rules, RULES_MAX, "rule", "merge rules that differ only in their units",
             errors);
    capCount(out.rules.receivers, RECEIVERS_MAX, "receiver", "let rules share receivers", errors);
    out.errors = std::move(errors);
    for (auto& error : out.errors) error = oneLine(std::move(error));
    // A set with errors is refused whole: the daemon keeps the old one.
    if (!out.errors.empty()) out.rules = {};
    return out;
}

std::optional<std::string> readFile(const std::string& path, std::vector<std::string>& errors) {
    using Problem = core::FileText::Problem;
    auto file = core::readRegularFile(path, RULE_FILE_MAX);
    switch (file.problem) {
    case Problem::None: break;
    case Problem::Unreadable:
        errors.push_back(path + ": " + file.error + "; expected a readable rule file");
        break;
    case Problem::NotRegular:
        errors.push_back(path + ": " + file.error +
                         "; expected a JSON rule file: replace it with a regular file or move "
                         "it out of the rules directory");
        break;
    case Problem::TooLarge:
        errors.push_back(path + ": " + file.error +
                         ", the cap for one rule file; expected a JSON rule file: split it "
                         "into several files in a rules directory");
        break;
    }
    return std::move(file.text);
}

}  // namespace

std::string secretFileError(const std::string& path) {
    using Problem = core::FileText::Problem;
    const auto file = core::probeRegularFile(path, SECRET_FILE_MAX);
    const std::string what = "secret file '" + path + "': ";
    switch (file.problem) {
    case Problem::None: break;
    case Problem::Unreadable:
        return what + file.error + "; create it, fix the path or let cerberus read it";
    case Problem::NotRegular:
    case Problem::TooLarge:
        return what + file.error + "; put the secret alone in a regular file of at most " +
               core::formatBytes(SECRET_FILE_MAX);
    }
    if (file.size_bytes == 0) return what + "it is empty; put the secret alone in it";
    return {};
}

bool isHttpUrl(std::string_view s) { return hasUrlRest(s, "http://") || hasUrlRest(s, "https://"); }

bool isSmtpUrl(std::string_view s) { return hasUrlRest(s, "smtp://") || hasUrlRest(s, "smtps://"); }

std::string webhookSecretError(std::string_view value) {
    constexpr std::string_view WHSEC_PREFIX = "whsec_";
    if (!value.starts_with(WHSEC_PREFIX) || core::base64Decode(value.substr(WHSEC_PREFIX.size())))
        return {};
    return "the secret starts with 'whsec_' but the rest is not base64; copy the whole secret "
           "as the receiver shows it";
}

LoadResult parseRules(std::string_view text, std::string_view origin) {
    std::vector<std::string> errors;
    std::vector<Document> docs;
    docs.push_back(Parser(std::string(origin), text, errors).run());
    return merge(std::move(docs), std::move(errors));
}

LoadResult loadRules(const std::vector<std::string>& paths) {
    std::vector<std::string> errors;
    std::vector<Document> docs;
    const auto load = [&](const std::string& file) {
        if (auto text = readFile(file, errors)) docs.push_back(Parser(file, *text, errors).run());
    };
    if (paths.empty()) errors.push_back("no rule file given; expected a file or a directory");
    for (const auto& path : paths) {
        std::error_code ec;
        if (!fs::is_directory(path, ec)) {
            if (!fs::exists(path, ec)) {
                errors.push_back(path +
                                 ": no such file or directory; expected a rule file or "
                                 "a directory of *.json files");
                continue;
            }
            load(path);
            continue;
        }
        std::vector<std::string> files;
        for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
            const auto& p = it->path();
            if (p.extension() == ".json" && !p.filename().string().starts_with('.') &&
                !it->is_directory(ec))
                files.push_back(p.string());
        }
        if (ec) {
            errors.push_back(path + ": cannot list the rule directory: " + ec.message());
            continue;
        }
        if (files.empty()) {
            errors.push_back(path +
                             ": no *.json rule file in this directory; expected at least one");
            continue;
        }
        std::sort(files.begin(), files.end());
        for (const auto& file : files) load(file);
    }
    return merge(std::move(docs), std::move(errors));
}

std::span<const std::string_view> topLevelKeys() { return TOP_LEVEL_KEYS; }
std::span<const std::string_view> ruleKeys() { return RULE_KEYS; }
std::span<const std::string_view> whenKeys() { return WHEN_KEYS; }
std::span<const std::string_view> receiverKeys(ReceiverType type) {
    switch (type) {
    case ReceiverType::Slack: return SLACK_KEYS;
    case ReceiverType::PagerDuty: return PAGERDUTY_KEYS;
    case ReceiverType::Webhook: return WEBHOOK_KEYS;
    case ReceiverType::Alertmanager: return ALERTMANAGER_KEYS;
    case ReceiverType::Email: return EMAIL_KEYS;
    case ReceiverType::Log: break;
    }
    return LOG_KEYS;
}

}  // namespace cerberus::rules
