#include <doctest/doctest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "rules/rules.hpp"
#include "temp_dir.hpp"

using namespace cerberus;
using rules::LoadResult;
using rules::parseRules;

using test::TempDir;

namespace {

namespace fs = std::filesystem;

const std::string SOURCE_ROOT = CERBERUS_SOURCE_ROOT;

LoadResult parse(const std::string& text) { return parseRules(text, "rules/prod.json"); }

std::string joinedErrors(const LoadResult& r) {
    std::string out;
    for (const auto& e : r.errors) out += e + "\n";
    return out;
}

// One error, exactly.
std::string onlyError(const std::string& text) {
    const auto r = parse(text);
    INFO(joinedErrors(r));
    REQUIRE(r.errors.size() == 1);
    return r.errors[0];
}

std::string readFile(const std::string& path) {
    std::ifstream in(path);
    std::ostringstream s;
    s << in.rdbuf();
    return s.str();
}

std::set<std::string> keysOf(const nlohmann::json& object) {
    std::set<std::string> out;
    for (const auto& [key, value] : object.items()) out.insert(key);
    return out;
}

std::set<std::string> asSet(std::span<const std::string_view> keys) {
    return {keys.begin(), keys.end()};
}

const std::string GOOD = R"({
  "receivers": {"log": {"type": "log"}},
  "rules": [{
    "name": "crashloop",
    "when": {"event": "crash", "count": 3, "within": "5m", "uptime_below": "30s"},
    "notify": ["log"]
  }]
})";

}  // namespace

TEST_CASE("a minimal rule file loads with the documented defaults") {
    const auto r = parse(GOOD);
    INFO(joinedErrors(r));
    REQUIRE(r.ok());
    REQUIRE(r.rules.rules.size() == 1);
    const auto& rule = r.rules.rules[0];
    CHECK(rule.name == "crashloop");
    CHECK(rule.units == std::vector<std::string>{"*.service"});
    CHECK((rule.when.event == core::Event::Crash));
    CHECK(rule.when.count == 3);
    CHECK(rule.when.within_usec == 5 * core::USEC_PER_MIN);
    CHECK(rule.when.uptime_below_usec == 30 * core::USEC_PER_SEC);
    CHECK(rule.resolve_when_up_for_usec == 10 * core::USEC_PER_MIN);
    CHECK((rule.severity == rules::Severity::Error));
    CHECK_FALSE(rule.repeat_every_usec.has_value());
    CHECK(rule.origin == "rules/prod.json:3");
    REQUIRE(r.rules.receiver("log") != nullptr);
    CHECK((r.rules.receiver("log")->type == rules::ReceiverType::Log));
}

TEST_CASE("an unknown key in when names the file, the line, the JSON path and the accepted keys") {
    const auto r = parse(R"({
  "receivers": {"log": {"type": "log"}},
  "rules": [{
    "name": "crashloop",
    "when": {"event": "crash",
             "count": 3, "windw": "5m"},
    "notify": ["log"]
  }]
})");
    const std::vector<std::string> expected{
        "rules/prod.json:6: /rules/0/when: unknown key 'windw'; expected one of event, count, "
        "within, uptime_below, result, exit_status, sources",
        "rules/prod.json:5: /rules/0/when: missing key 'within'; expected a duration such as "
        "\"500ms\", \"30s\", \"5min\", \"1.5h\", \"1h 30min\", \"2d\" or \"1w\" when count is "
        "above 1",
    };
    CHECK(r.errors == expected);
}

TEST_CASE("every error of a file is reported, not only the first") {
    const auto r = parse(R"({
  "receivers": {"log": {"type": "log"}},
  "rules": [
    {"name": "a", "when": {"event": "crash", "count": 0}, "notify": ["log"]},
    {"name": "b", "when": {"event": "crash", "count": 2, "within": "5 mins"}, "notify": ["log"]},
    {"name": "c", "when": {"event": "explode"}, "severity": "fatal", "notify": ["pager"]}
  ],
  "extra": true
})");
    INFO(joinedErrors(r));
    CHECK_FALSE(r.ok());
    CHECK(r.rules.rules.empty());
    const std::string within =
        "rules/prod.json:5: /rules/1/when/within: expected a non-zero duration such as "
        "\"500ms\", \"30s\", \"5min\", \"1.5h\", \"1h 30min\", \"2d\" or \"1w\", got \"5 mins\"";
    const std::string event =
        "rules/prod.json:6: /rules/2/when/event: expected one of start, stop, crash, restart, "
        "fail, give_up, got \"explode\"";
    const std::string severity =
        "rules/prod.json:6: /rules/2/severity: expected one of critical, error, warning, info, "
        "got \"fatal\"";
    const std::vector<std::string> expected{
        "rules/prod.json:8: /: unknown key 'extra'; expected one of $schema, receivers, rules",
        "rules/prod.json:4: /rules/0/when/count: expected an integer from 1 to 1000, got 0",
        within,
        event,
        severity,
        "rules/prod.json:6: /rules/2/notify/0: no receiver named 'pager'; expected one of log",
    };
    CHECK(r.errors == expected);
}

TEST_CASE("a wrong type names what was expected and what was found") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash", "count": "3", "within": "1m"},
           "notify": ["log"]}]})") ==
          "rules/prod.json:2: /rules/0/when/count: expected an integer from 1 to 1000, got \"3\"");
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": {"name": "x"}})") ==
          "rules/prod.json:2: /rules: expected an array of rules, got an object");
    CHECK(
        onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash"},
           "notify": "log"}]})") ==
        "rules/prod.json:3: /rules/0/notify: expected a non-empty array of non-empty strings, got "
        "\"log\"");
}

TEST_CASE("a count above 1 without a window is refused") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x",
  "when": {"event": "crash", "count": 3}, "notify": ["log"]}]})") ==
          "rules/prod.json:3: /rules/0/when: missing key 'within'; expected a duration such as "
          "\"500ms\", \"30s\", \"5min\", \"1.5h\", \"1h 30min\", \"2d\" or \"1w\" when count is "
          "above 1");
}

TEST_CASE("lines are right for keys in nested objects and for array elements") {
    const auto r = parse(R"({
  "receivers": {
    "log": {"type": "log"},
    "ops": {
      "type": "slack",
      "url": {"env": "SLACK URL"}
    }
  },
  "rules": [
    {"name": "a", "when": {"event": "crash"}, "notify": ["log"]},
    {
      "name": "b",
      "when": {"event": "crash"},
      "notify": [
        "log",
        "ops",
        "opz"
      ],
      "labels": {"team": "platform",
                 "host": "x"}
    }
  ]
})");
    const std::vector<std::string> expected{
        "rules/prod.json:6: /receivers/ops/url/env: expected an environment variable name such as "
        "\"SLACK_URL\", got \"SLACK URL\"",
        "rules/prod.json:20: /rules/1/labels: label name 'host' is set by cerberus; expected "
        "another name",
        "rules/prod.json:17: /rules/1/notify/2: no receiver named 'opz'; expected one of log, ops",
    };
    CHECK(r.errors == expected);
}

TEST_CASE("a duplicate rule name in one file names both places") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [
  {"name": "x", "when": {"event": "crash"}, "notify": ["log"]},
  {"name": "x", "when": {"event": "fail"}, "notify": ["log"]}
]})") == "rules/prod.json:4: /rules/1/name: duplicate rule name 'x'; first defined at "
         "rules/prod.json:3");
}

TEST_CASE("a key given twice in one object is an error, not a silent overwrite") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"},
                 "log": {"type": "log"}},
"rules": []})") == "rules/prod.json:2: /receivers: duplicate key 'log'; expected each key once");
}

TEST_CASE("invalid JSON is reported with its line and column") {
    const auto error = onlyError("{\n  \"rules\": [\n    {\"name\": \"x\",}\n  ]\n}\n");
    CHECK(
        error.starts_with("rules/prod.json:3:18: invalid JSON: syntax error while parsing "
                          "object key"));
}

TEST_CASE("a number that overflows a double is invalid JSON with its line, not an exception") {
    CHECK(onlyError(
              "{\"receivers\": {\"log\": {\"type\": \"log\"}},\n"
              "\"rules\": [{\"name\": \"x\",\n"
              "  \"when\": {\"event\": \"crash\", \"count\": 1e999}, \"notify\": [\"log\"]}]}") ==
          "rules/prod.json:3:39: invalid JSON: number overflow parsing '1e999'; write a smaller "
          "number");
    CHECK(onlyError("{\"rules\": -1e400\n}").starts_with("rules/prod.json:1:11: invalid JSON: "));
}

TEST_CASE("a leading UTF-8 byte order mark is refused with the fix") {
    CHECK(onlyError("\xEF\xBB\xBF{\"rules\": []}") ==
          "rules/prod.json:1: the file starts with a UTF-8 byte order mark; expected JSON "
          "without one: remove the first three bytes, e.g. sed -i '1s/^\\xEF\\xBB\\xBF//' "
          "rules/prod.json");
}

TEST_CASE("a glob that fnmatch would read as something else is refused with the fix") {
    const auto rule = [](const std::string& units, const std::string& exclude) {
        return parse(R"({"receivers": {"log": {"type": "log"}}, "rules": [{"name": "x",
  "units": )" + units +
                     R"(,
  "exclude": )" + exclude +
                     R"(,
  "when": {"event": "crash"}, "notify": ["log"]}]})");
    };
    const auto bad = rule(R"(["web.service", "[abc"])", R"(["x\\", "[[:foo:]]", "[z-a].service"])");
    const std::vector<std::string> expected{
        "rules/prod.json:2: /rules/0/units/1: '[abc' is not a valid glob: the '[' at position 1 "
        "is never closed with ']'; write '\\[' for a literal '[' or close the set",
        "rules/prod.json:3: /rules/0/exclude/0: 'x\\' is not a valid glob: it ends with a lone "
        "'\\'; write '\\\\' for a backslash or drop it",
        "rules/prod.json:3: /rules/0/exclude/1: '[[:foo:]]' is not a valid glob: unknown "
        "character class '[:foo:]'; expected one of alnum, alpha, blank, cntrl, digit, graph, "
        "lower, print, punct, space, upper, xdigit",
        "rules/prod.json:3: /rules/0/exclude/2: '[z-a].service' is not a valid glob: the range "
        "'z-a' is reversed and matches nothing; write 'a-z'",
    };
    CHECK(bad.errors == expected);
    CHECK(bad.rules.rules.empty());

    // What fnmatch reads as written stays accepted.
    const auto good = rule(R"(["[]a]*", "[!]x].service", "\\[literal", "[[:digit:]a-z-]*",
                               "web@*.service", "supervisor:*"])",
                           R"(["[^a]", "*\\*"])");
    INFO(joinedErrors(good));
    CHECK(good.ok());
}

TEST_CASE("too many rules names the file and the rule past the cap") {
    TempDir dir;
    const auto many = [](const std::string& prefix, std::size_t n) {
        std::string text = "{\"rules\": [\n";
        for (std::size_t i = 0; i < n; ++i)
            text += std::string(i ? ",\n" : "") + "{\"name\": \"" + prefix + std::to_string(i) +
                    "\", \"when\": {\"event\": \"crash\"}, \"notify\": [\"log\"]}";
        return text + "]}";
    };
    const auto a = dir.write("a.json", R"({"receivers": {"log": {"type": "log"}}})");
    const auto b = dir.write("b.json", many("b", 600));
    const auto c = dir.write("c.json", many("c", 600));
    const auto r = rules::loadRules({a, b, c});
    const std::vector<std::string> expected{
        c + ":" + std::to_string(2 + rules::RULES_MAX - 600) + ": rule 'c400': too many rules " +
        "(1200 in all files, this is number 1001); expected at most 1000: merge rules that " +
        "differ only in their units"};
    CHECK(r.errors == expected);
    CHECK(r.rules.rules.empty());
}

TEST_CASE("a rule file must be a regular file of at most RULE_FILE_MAX bytes") {
    TempDir dir;
    const auto fifo = dir.path() + "/fifo.json";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);
    // Read non-blocking: a FIFO nobody writes would otherwise hang here.
    CHECK(rules::loadRules({fifo}).errors ==
          std::vector<std::string>{
              fifo + ": it is a FIFO, not a regular file; expected a JSON rule file: replace it "
                     "with a regular file or move it out of the rules directory"});
    CHECK(rules::loadRules({dir.path()}).errors ==
          std::vector<std::string>{
              fifo + ": it is a FIFO, not a regular file; expected a JSON rule file: replace it "
                     "with a regular file or move it out of the rules directory"});
    fs::remove(fifo);

    const auto zero = dir.path() + "/zero.json";
    fs::create_symlink("/dev/zero", zero);
    CHECK(rules::loadRules({zero}).errors ==
          std::vector<std::string>{zero +
                                   ": it is a character device, not a regular file; expected a "
                                   "JSON rule file: replace it with a regular file or move it "
                                   "out of the rules directory"});
    fs::remove(zero);

    // Spaces are valid JSON around an object: only the size refuses it.
    const std::string object = R"({"receivers": {"log": {"type": "log"}}})";
    const auto at_cap =
        dir.write("cap.json", object + std::string(rules::RULE_FILE_MAX - object.size(), ' '));
    INFO(joinedErrors(rules::loadRules({at_cap})));
    CHECK(rules::loadRules({at_cap}).ok());
    const auto big =
        dir.write("cap.json", object + std::string(rules::RULE_FILE_MAX - object.size() + 1, ' '));
    CHECK(rules::loadRules({big}).errors ==
          std::vector<std::string>{big +
                                   ": it is larger than 1 MiB, the cap for one rule file; "
                                   "expected a JSON rule file: split it into several files in a "
                                   "rules directory"});
}

TEST_CASE("a document that is not an object is refused") {
    CHECK(onlyError("[]") ==
          "rules/prod.json:1: /: expected an object with keys $schema, receivers, rules, got an "
          "array");
}

TEST_CASE("receivers accept only their own type's keys") {
    CHECK(onlyError(R"({"receivers": {
  "pd": {"type": "pagerduty", "routing_key": {"env": "PD_KEY"},
         "urls": ["http://x"]}}})") ==
          "rules/prod.json:3: /receivers/pd: unknown key 'urls'; expected one of type, "
          "routing_key, url, timeout, give_up_after");
    CHECK(onlyError(R"({"receivers": {"am": {"type": "alertmanager"}}})") ==
          "rules/prod.json:1: /receivers/am: missing key 'urls'; expected a non-empty array of "
          "http(s) URLs");
    CHECK(onlyError(R"({"receivers": {"x": {"type": "sms"}}})") ==
          "rules/prod.json:1: /receivers/x/type: expected one of slack, pagerduty, webhook, "
          "alertmanager, email, log, got \"sms\"");
}

TEST_CASE("secrets stay unresolved in the model and are shown redacted") {
    const auto r = parse(R"({"receivers": {
  "ops": {"type": "slack", "url": {"env": "CERBERUS_SLACK_URL"}},
  "oncall": {"type": "pagerduty", "routing_key": {"file": "/etc/passwd"}},
  "hook": {"type": "webhook", "url": "http://127.0.0.1:9099/alerts", "secret": "s3cr3t"},
  "am": {"type": "alertmanager", "urls": ["http://127.0.0.1:9093", "http://127.0.0.2:9093"]}
}})");
    INFO(joinedErrors(r));
    REQUIRE(r.ok());
    const auto* ops = r.rules.receiver("ops");
    REQUIRE(ops);
    CHECK((ops->url->kind == rules::Secret::Kind::Env));
    CHECK(ops->url->redacted() == "env:CERBERUS_SLACK_URL");
    CHECK(r.rules.receiver("oncall")->routing_key->redacted() == "file:/etc/passwd");
    const auto* hook = r.rules.receiver("hook");
    CHECK(hook->secret->value == "s3cr3t");
    CHECK(hook->secret->redacted() == "<redacted>");
    CHECK(r.rules.receiver("am")->urls.size() == 2);
}

TEST_CASE("a secret file that run could not read is an error at load time, the value unread") {
    CHECK(onlyError(R"({"receivers": {"pd": {"type": "pagerduty",
  "routing_key": {"file": "/nonexistent/cerberus/pd.key"}}}})") ==
          "rules/prod.json:2: /receivers/pd/routing_key/file: secret file "
          "'/nonexistent/cerberus/pd.key': cannot open it: No such file or directory; create it, "
          "fix the path or let cerberus read it");
    TempDir dir;
    const auto rules = [](const std::string& path) {
        return R"({"receivers": {"pd": {"type": "pagerduty", "routing_key": {"file": ")" + path +
               R"("}}}})";
    };
    CHECK(onlyError(rules(dir.path())) ==
          "rules/prod.json:1: /receivers/pd/routing_key/file: secret file '" + dir.path() +
              "': it is a directory, not a regular file; put the secret alone in a regular file "
              "of at most 64 KiB");
    const auto fifo = dir.path() + "/fifo.key";
    REQUIRE(mkfifo(fifo.c_str(), 0600) == 0);  // opened without blocking, never read
    CHECK(onlyError(rules(fifo))
              .ends_with("it is a FIFO, not a regular file; put the secret "
                         "alone in a regular file of at most 64 KiB"));
    CHECK(onlyError(rules(dir.write("empty.key", ""))) ==
          "rules/prod.json:1: /receivers/pd/routing_key/file: secret file '" + dir.path() +
              "/empty.key': it is empty; put the secret alone in it");
    CHECK(onlyError(rules(dir.write("big.key", std::string(rules::SECRET_FILE_MAX + 1, 'k'))))
              .ends_with("it is larger than 64 KiB; put the secret alone in a regular file of "
                         "at most 64 KiB"));
    CHECK(parse(rules(dir.write("good.key", "R0UT1NGKEY\n"))).ok());
}

TEST_CASE("a malformed literal secret is refused without quoting it") {
    const auto error = onlyError(
        R"({"receivers": {"ops": {"type": "slack", "url": "hooks.slack.com/T0/SECRET"}}})");
    CHECK(error.find("SECRET") == std::string::npos);
    CHECK(error ==
          "rules/prod.json:1: /receivers/ops/url: expected an http(s) URL, "
          "{\"env\": NAME} or {\"file\": PATH}, got a string that is not one");
}

TEST_CASE("a whsec_ signing secret written in the file must be base64, as the sender needs") {
    const auto error = onlyError(R"({"receivers": {"hook": {"type": "webhook",
  "url": "http://127.0.0.1:9099/alerts", "secret": "whsec_!!!"}}})");
    CHECK(error ==
          "rules/prod.json:2: /receivers/hook/secret: the secret starts with 'whsec_' "
          "but the rest is not base64; copy the whole secret as the receiver shows it");
    CHECK(error.find("!!!") == std::string::npos);
    CHECK(rules::webhookSecretError("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").empty());
    CHECK(rules::webhookSecretError("any raw key!").empty());
    CHECK_FALSE(rules::webhookSecretError("whsec_Zm9=").empty());  // non-zero trailing bits
    // From the environment or a file, only the sender can tell (notify/secrets.cpp).
    CHECK(parse(R"({"receivers": {"hook": {"type": "webhook",
  "url": "http://127.0.0.1:9099/alerts", "secret": {"env": "HOOK_SECRET"}}}})")
              .ok());
}

TEST_CASE("a URL with a space or a control character is refused as libcurl would") {
    CHECK(onlyError(R"({"receivers": {"am": {"type": "alertmanager",
  "urls": ["http://127.0.0.1:9093/api v2"]}}})") ==
          "rules/prod.json:2: /receivers/am/urls/0: expected an http(s) URL, got "
          "\"http://127.0.0.1:9093/api v2\"");
    CHECK_FALSE(rules::isHttpUrl("https://hooks.slack.com/services/T0/B0/X\n"));
    CHECK(rules::isHttpUrl("https://hooks.slack.com/services/T0/B0/X"));
}

TEST_CASE("a name with a newline or a control character is shown escaped, one error a line") {
    CHECK(onlyError("{\"receivers\": {\"log\": {\"type\": \"log\"}},\n\"rules\": [{\"name\": "
                    "\"x\", \"when\": {\"event\": \"crash\"}, \"notify\": [\"log\"],\n"
                    "  \"labels\": {\"team\\n\\u0007\": \"a\"}}]}") ==
          "rules/prod.json:3: /rules/0/labels: label name 'team\\n\\u0007' is not valid; "
          "expected letters, digits and '_'");
}

TEST_CASE("a summary with an unknown placeholder is refused") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["log"],
  "summary": "{unit} died {times} times"}]})") ==
          "rules/prod.json:3: /rules/0/summary: unknown placeholder '{times}'; expected one of "
          "{unit}, {host}, {rule}, {count}, {within}, {severity}, {event}");
}

TEST_CASE("a result filter with a typo is refused instead of matching nothing") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash", "result": ["oom-kill",
  "oom_kill"]}, "notify": ["log"]}]})")
              .starts_with("rules/prod.json:3: /rules/0/when/result/1: expected a systemd result"));
}

TEST_CASE("sources are any by default and a list of source names when given") {
    const auto any = parse(GOOD);
    REQUIRE(any.ok());
    CHECK(any.rules.rules[0].when.sources.empty());
    const auto some = parse(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash", "sources": ["emit", "supervisor"]},
  "notify": ["log"]}]})");
    INFO(joinedErrors(some));
    REQUIRE(some.ok());
    CHECK(some.rules.rules[0].when.sources ==
          std::vector<core::Source>{core::Source::Emit, core::Source::Supervisor});
}

TEST_CASE("an unknown, repeated or empty sources list is refused by its path") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash", "sources": ["systemd",
  "upstart"]}, "notify": ["log"]}]})") ==
          "rules/prod.json:3: /rules/0/when/sources/1: expected systemd, reconcile, emit or "
          "supervisor, got \"upstart\"");
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash", "sources": ["emit", "emit"]},
  "notify": ["log"]}]})") ==
          "rules/prod.json:2: /rules/0/when/sources/1: source 'emit' is listed twice; list each "
          "source once");
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash", "sources": []}, "notify": ["log"]}]})")
              .starts_with("rules/prod.json:2: /rules/0/when/sources: expected a non-empty array "
                           "of sources"));
}

TEST_CASE("'source' is a label cerberus sets, refused in a rule's labels") {
    CHECK(onlyError(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["log"],
  "labels": {"source": "mine"}}]})")
              .find("label name 'source' is set by cerberus") != std::string::npos);
}

TEST_CASE("the summary renders its placeholders") {
    const auto r = parse(R"json({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "crashloop", "when": {"event": "crash", "count": 3, "within": "5m"},
  "notify": ["log"], "summary": "{unit} on {host} crashed {count} times in {within} ({rule})"}]})json");
    REQUIRE(r.ok());
    CHECK(rules::renderSummary(r.rules.rules[0], {"api.service", "web1", 4}) ==
          "api.service on web1 crashed 4 times in 5min (crashloop)");
}

TEST_CASE("the default summary names the event in agreement with its count") {
    const auto r = parse(R"json({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "a", "when": {"event": "crash", "count": 3, "within": "1m"}, "notify": ["log"]},
          {"name": "b", "when": {"event": "fail"}, "notify": ["log"]},
          {"name": "c", "when": {"event": "give_up", "count": 2, "within": "1h"}, "notify": ["log"]}]})json");
    REQUIRE(r.ok());
    CHECK(rules::renderSummary(r.rules.rules[0], {"api.service", "web1", 3}) ==
          "api.service on web1: 3 crashes in 1min");
    CHECK(rules::renderSummary(r.rules.rules[0], {"api.service", "web1", 1}) ==
          "api.service on web1: 1 crash in 1min");
    CHECK(rules::renderSummary(r.rules.rules[1], {"api.service", "web1", 1}).find("1 failure in") !=
          std::string::npos);
    CHECK(
        rules::renderSummary(r.rules.rules[2], {"api.service", "web1", 2}).find("2 give-ups in") !=
        std::string::npos);
}

TEST_CASE("an email receiver reads its server, addresses, login and TLS mode") {
    const auto r = parse(R"({"receivers": {"mail": {"type": "email",
  "url": "smtp://mail.example.com:587", "from": "cerberus <cerberus@example.com>",
  "to": ["ops@example.com", "\"Night, shift\" <night@example.com>"],
  "username": "cerberus", "password": {"env": "SMTP_PASSWORD"}, "timeout": "20s"}},
"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["mail"]}]})");
    REQUIRE(r.ok());
    const auto* mail = r.rules.receiver("mail");
    REQUIRE(mail != nullptr);
    CHECK((mail->type == rules::ReceiverType::Email));
    CHECK(mail->url->value == "smtp://mail.example.com:587");
    CHECK(mail->from == rules::Mailbox{"cerberus", "cerberus@example.com"});
    CHECK(mail->to == std::vector<rules::Mailbox>{{"", "ops@example.com"},
                                                  {"Night, shift", "night@example.com"}});
    CHECK(mail->username == "cerberus");
    CHECK(mail->password == rules::Secret{rules::Secret::Kind::Env, "SMTP_PASSWORD"});
    CHECK((mail->starttls == rules::StartTls::Always));
    CHECK(mail->timeout_usec == 20 * core::USEC_PER_SEC);
}

TEST_CASE("a bad email receiver is refused with the field and the fix") {
    const auto error = [](const std::string& receiver) {
        return onlyError(
            R"({"receivers": {"mail": )" + receiver +
            R"(}, "rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["mail"]}]})");
    };
    const std::string base = R"("type": "email", "from": "c@example.com", "to": ["o@example.com"])";
    CHECK(
        error(
            R"({"type": "email", "url": "http://x", "from": "c@example.com", "to": ["o@example.com"]})")
            .find("/receivers/mail/url: expected an smtp:// or smtps:// URL") != std::string::npos);
    CHECK(
        error(
            R"({"url": "smtp://h", "type": "email", "from": "not an address", "to": ["o@example.com"]})")
            .find("/receivers/mail/from: expected an address such as") != std::string::npos);
    CHECK(error(R"({"type": "email", "url": "smtp://h", "from": "c@example.com",
                    "to": ["o@example.com", "x <bad>"]})")
              .find("/receivers/mail/to/1: expected an address") != std::string::npos);
    CHECK(error("{" + base + R"(, "url": "smtp://h", "username": "u"})")
              .find("missing key 'password'") != std::string::npos);
    CHECK(error("{" + base + R"(, "url": "smtp://h", "starttls": "sometimes"})")
              .find("expected one of always, opportunistic, never") != std::string::npos);
    CHECK(error("{" + base + R"(, "url": "smtps://h", "starttls": "never"})")
              .find("smtps:// is encrypted from the first byte") != std::string::npos);
    // A password in clear only to this machine.
    CHECK(
        error(
            "{" + base +
            R"(, "url": "smtp://mail.example.com", "starttls": "never", "username": "u", "password": "p"})")
            .find("could cross the network unencrypted") != std::string::npos);
    CHECK(
        parse(
            R"({"receivers": {"mail": {)" + base +
            R"(, "url": "smtp://127.0.0.1:2525", "starttls": "never", "username": "u", "password": "p"}},
"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["mail"]}]})")
            .ok());
}

TEST_CASE("mailboxes are an address alone or a name and an address") {
    CHECK(rules::parseMailbox("ops@example.com") == rules::Mailbox{"", "ops@example.com"});
    CHECK(rules::parseMailbox(" Équipe <ops@example.com> ") ==
          rules::Mailbox{"Équipe", "ops@example.com"});
    CHECK_FALSE(rules::parseMailbox("ops"));
    CHECK_FALSE(rules::parseMailbox("ops@exa mple.com"));
    CHECK_FALSE(rules::parseMailbox("Ops\r\nBcc: x@y.z <ops@example.com>"));
    CHECK_FALSE(rules::parseMailbox("<ops@example.com"));
}

TEST_CASE("unit globs match with fnmatch and exclusions win") {
    rules::Rule rule;
    rule.units = {"*.service", "*.socket"};
    rule.exclude = {"backup-*.service"};
    CHECK(rule.matchesUnit("api.service"));
    CHECK(rule.matchesUnit("api.socket"));
    CHECK_FALSE(rule.matchesUnit("api.timer"));
    CHECK_FALSE(rule.matchesUnit("backup-nightly.service"));
}

TEST_CASE("a unit pattern without a unit type also matches its .service, as journalctl -u does") {
    rules::Rule rule;
    rule.units = {"payments", "web@*"};
    rule.exclude = {"payments-canary", "web@test"};
    CHECK(rule.matchesUnit("payments.service"));
    CHECK(rule.matchesUnit("payments"));  // a job reported by cerberus emit
    CHECK(rule.matchesUnit("web@1.service"));
    CHECK_FALSE(rule.matchesUnit("payments.socket"));
    CHECK_FALSE(rule.matchesUnit("payments.timer"));
    CHECK_FALSE(rule.matchesUnit("payments-api.service"));
    // Exclusions follow the same rule.
    rule.units = {"payments*", "web@*"};
    CHECK_FALSE(rule.matchesUnit("payments-canary.service"));
    CHECK_FALSE(rule.matchesUnit("payments-canary"));
    CHECK_FALSE(rule.matchesUnit("web@test.service"));
    CHECK(rule.matchesUnit("payments-api.service"));
    // A pattern that names a unit type stays as written.
    rule.units = {"payments.socket"};
    CHECK(rule.matchesUnit("payments.socket"));
    CHECK_FALSE(rule.matchesUnit("payments.service"));
}

TEST_CASE("a directory of rule files is merged, receivers from one file serve rules in another") {
    TempDir dir;
    dir.write("10-receivers.json", R"({"receivers": {"log": {"type": "log"}}})");
    dir.write("20-rules.json",
              R"({"rules": [{"name": "a", "when": {"event": "crash"}, "notify": ["log"]}]})");
    dir.write("30-more.json",
              R"({"rules": [{"name": "b", "when": {"event": "fail"}, "notify": ["log"]}]})");
    dir.write("README.md", "not a rule file");
    const auto r = rules::loadRules({dir.path()});
    INFO(joinedErrors(r));
    REQUIRE(r.ok());
    REQUIRE(r.rules.rules.size() == 2);
    CHECK(r.rules.rules[0].name == "a");
    CHECK(r.rules.rules[1].name == "b");
    CHECK(r.rules.rules[1].origin == dir.path() + "/30-more.json:1");
}

TEST_CASE("duplicate names across files name both files") {
    TempDir dir;
    const auto a = dir.write("a.json", R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["log"]}]})");
    const auto b = dir.write("b.json", R"({
"receivers": {"log": {"type": "log"}},
"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["log"]}]})");
    const auto r = rules::loadRules({a, b});
    const std::vector<std::string> expected{
        b + ":2: /receivers/log: duplicate receiver name 'log'; first defined at " + a + ":1",
        b + ":3: /rules/0/name: duplicate rule name 'x'; first defined at " + a + ":2",
    };
    CHECK(r.errors == expected);
}

TEST_CASE("errors of several files are all reported") {
    TempDir dir;
    dir.write(
        "a.json",
        R"({"rules": [{"name": "x", "when": {"event": "crash"}, "notify": ["log"], "colour": 1}]})");
    dir.write("b.json", "{");
    const auto r = rules::loadRules({dir.path(), dir.path() + "/missing.json"});
    INFO(joinedErrors(r));
    REQUIRE(r.errors.size() == 4);
    CHECK(r.errors[0] == dir.path() +
                             "/a.json:1: /rules/0: unknown key 'colour'; expected one of "
                             "name, units, exclude, when, resolve_when_up_for, severity, "
                             "repeat_every, notify, labels, summary, description, journal_lines");
    CHECK(r.errors[1].starts_with(dir.path() + "/b.json:1:2: invalid JSON: "));
    CHECK(r.errors[2] == dir.path() +
                             "/missing.json: no such file or directory; expected a rule "
                             "file or a directory of *.json files");
    CHECK(r.errors[3] == dir.path() +
                             "/a.json:1: /rules/0/notify/0: no receiver named 'log'; "
                             "expected a receiver defined under /receivers");
}

TEST_CASE("the shipped default rules load without errors") {
    const auto r = rules::loadRules({SOURCE_ROOT + "/rules/default.json"});
    INFO(joinedErrors(r));
    REQUIRE(r.ok());
    CHECK(r.rules.rule("crashloop") != nullptr);
    CHECK(r.rules.rule("give-up") != nullptr);
    CHECK(r.rules.rule("respawn") != nullptr);
    for (const auto& rule : r.rules.rules) CHECK(rule.notify == std::vector<std::string>{"log"});
}

// The parser's own key lists against the schema's: a key added to one is added to the other.
// What the values may be is held to the schema by tests/integration/test_schema.py.
TEST_CASE("the schema and the parser accept the same keys") {
    const auto schema = nlohmann::json::parse(readFile(SOURCE_ROOT + "/schema/rules.schema.json"));
    const auto& defs = schema.at("$defs");
    CHECK(keysOf(schema.at("properties")) == asSet(rules::topLevelKeys()));
    CHECK(keysOf(defs.at("rule").at("properties")) == asSet(rules::ruleKeys()));
    CHECK(keysOf(defs.at("when").at("properties")) == asSet(rules::whenKeys()));
    for (auto type : {rules::ReceiverType::Slack, rules::ReceiverType::PagerDuty,
                      rules::ReceiverType::Webhook, rules::ReceiverType::Alertmanager,
                      rules::ReceiverType::Log, rules::ReceiverType::Email}) {
        const std::string def = std::string(rules::toString(type)) + "_receiver";
        CAPTURE(def);
        CHECK(keysOf(defs.at(def).at("properties")) == asSet(rules::receiverKeys(type)));
        CHECK(
            (rules::parseReceiverType(
                 defs.at(def).at("properties").at("type").at("const").get<std::string>()) == type));
    }
    for (const auto& e : defs.at("when").at("properties").at("event").at("enum"))
        CHECK(core::parseEvent(e.get<std::string>()).has_value());
    for (const auto& s : defs.at("rule").at("properties").at("severity").at("enum"))
        CHECK(rules::parseSeverity(s.get<std::string>()).has_value());
}

TEST_CASE("every shipped and example rule file passes the parser") {
    std::vector<std::string> files{SOURCE_ROOT + "/rules/default.json"};
    const fs::path examples = SOURCE_ROOT + "/examples";
    if (fs::is_directory(examples)) {
        for (const auto& entry : fs::recursive_directory_iterator(examples)) {
            if (entry.path().extension() != ".json") continue;
            const auto doc = nlohmann::json::parse(readFile(entry.path().string()), nullptr, false);
            // Only rule files: examples/ also holds other JSON (payload samples, ...).
            if (doc.is_object() && (doc.contains("rules") || doc.contains("receivers")))
                files.push_back(entry.path().string());
        }
    }
    for (const auto& file : files) {
        CAPTURE(file);
        const auto r = rules::loadRules({file});
        INFO(joinedErrors(r));
        CHECK(r.ok());
    }
}
