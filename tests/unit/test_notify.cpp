#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/time.hpp"
#include "notify/dispatcher.hpp"
#include "notify/payload.hpp"
#include "notify/secrets.hpp"
#include "notify/signing.hpp"

using namespace cerberus;
using nlohmann::json;
using notify::Action;
using notify::Notification;

namespace {

const core::Usec STARTED = *core::parseIsoTime("2026-11-24T22:13:57Z");
const core::Usec RESOLVED = STARTED + 10 * core::USEC_PER_MIN;
const std::string ROUTING_KEY = "R0ut1ngKeyR0ut1ngKeyR0ut1ngKey00";
const std::string WEBHOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

Notification firing() {
    Notification n;
    n.action = Action::Trigger;
    n.id = "cerberus-42-trigger";
    n.rule = "crashloop";
    n.unit = "web.service";
    n.host = "db1";
    n.severity = rules::Severity::Critical;
    n.event = core::Event::Crash;
    n.count = 5;
    n.within_usec = 5 * core::USEC_PER_MIN;
    n.started_usec = STARTED;
    n.summary = "web.service on db1: 5 crashes in 5m";
    n.labels = {{"team", "payments"}};
    n.last_exit = notify::LastExit{"exit-code", "exited", 3};
    n.journal = {"starting", "panic: out of cheese"};
    n.sources = {"systemd"};
    return n;
}

Notification emitted() {
    Notification n = firing();
    n.unit = "upstart-web";
    n.summary = "upstart-web on db1: 5 crashes in 5m";
    n.sources = {"emit"};
    return n;
}

Notification resolved() {
    Notification n = firing();
    n.action = Action::Resolve;
    n.id = "cerberus-42-resolve";
    n.resolved_usec = RESOLVED;
    return n;
}

std::string name(notify::Status status) { return std::string(notify::toString(status)); }

}  // namespace

TEST_CASE("the Standard Webhooks reference vector signs as documented") {
    CHECK(notify::webhookSignature(WEBHOOK_SECRET, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330,
                                   R"({"test": 2432232314})") ==
          "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
}

TEST_CASE("a secret without the whsec_ prefix is used as raw key bytes") {
    const auto raw = notify::webhookSignature("plain-key", "id", 1, "{}");
    CHECK(raw.starts_with("v1,"));
    CHECK(raw != notify::webhookSignature("plain-kez", "id", 1, "{}"));
    CHECK(raw == notify::webhookSignature("plain-key", "id", 1, "{}"));
    CHECK(notify::webhookSignature("whsec_" + notify::base64Encode("plain-key"), "id", 1, "{}") ==
          raw);
}

TEST_CASE("a malformed whsec_ secret is refused rather than used as is") {
    CHECK_FALSE(notify::webhookKey("whsec_not*base64"));
    CHECK_THROWS_AS(notify::webhookSignature("whsec_a", "id", 1, "{}"), std::invalid_argument);
}

TEST_CASE("base64 round-trips with and without padding") {
    for (const std::string text : {"", "f", "fo", "foo", "foob", "fooba", "foobar"}) {
        const auto encoded = notify::base64Encode(text);
        CHECK(notify::base64Decode(encoded) == text);
        std::string unpadded = encoded;
        while (!unpadded.empty() && unpadded.back() == '=') unpadded.pop_back();
        CHECK(notify::base64Decode(unpadded) == text);
    }
    CHECK(notify::base64Encode("foobar") == "Zm9vYmFy");
    CHECK(notify::base64Encode("fo") == "Zm8=");
    CHECK_FALSE(notify::base64Decode("Zm8=="));
    CHECK_FALSE(notify::base64Decode("Zm9="));  // non-zero trailing bits
    CHECK_FALSE(notify::base64Decode("Z"));
}

TEST_CASE("the webhook body carries every field DESIGN.md lists") {
    const auto body = json::parse(notify::webhookBody(firing()));
    for (const char* key :
         {"version", "id", "status", "rule", "unit", "host", "severity", "count", "within",
          "started_at", "resolved_at", "summary", "labels", "last_exit", "journal", "sources"}) {
        CHECK_MESSAGE(body.contains(key), key);
    }
    CHECK(body["version"] == 1);
    CHECK(body["id"] == "cerberus-42-trigger");
    CHECK(body["status"] == "firing");
    CHECK(body["severity"] == "critical");
    CHECK(body["count"] == 5);
    CHECK(body["within"] == "5min");
    CHECK(body["started_at"] == "2026-11-24T22:13:57.000Z");
    CHECK(body["resolved_at"].is_null());
    CHECK(body["labels"] == json{{"team", "payments"}});
    CHECK(body["last_exit"] ==
          json{{"result", "exit-code"}, {"exit_code", "exited"}, {"exit_status", 3}});
    CHECK(body["journal"] == json{"starting", "panic: out of cheese"});
    CHECK(body["sources"] == json{"systemd"});
}

TEST_CASE("an alert fed by emit says so in every payload; systemd's own say nothing more") {
    const Notification n = emitted();
    CHECK(json::parse(notify::webhookBody(n))["sources"] == json{"emit"});
    const auto slack = json::parse(notify::slackBody(n));
    CHECK(slack["text"] == "[FIRING] upstart-web on db1: 5 crashes in 5m (via emit)");
    CHECK(slack.dump().find("*Source*\\nemit") != std::string::npos);
    const auto pd = json::parse(notify::pagerDutyBody(n, ROUTING_KEY));
    CHECK(pd["payload"]["summary"] == "upstart-web on db1: 5 crashes in 5m (via emit)");
    CHECK(pd["payload"]["custom_details"]["sources"] == json{"emit"});
    const auto am = json::parse(notify::alertmanagerBody(n, RESOLVED));
    CHECK(am[0]["labels"]["source"] == "emit");
    CHECK(notify::logLine(n).ends_with("5 crashes in 5m (via emit)"));

    Notification mixed = emitted();
    mixed.sources = {"systemd", "reconcile", "supervisor"};
    CHECK(notify::sourcesNote(mixed) == " (via supervisor)");
    CHECK(json::parse(notify::alertmanagerBody(mixed, RESOLVED))[0]["labels"]["source"] ==
          "systemd,reconcile,supervisor");

    Notification own = firing();
    own.sources = {"systemd", "reconcile"};
    CHECK(notify::sourcesNote(own).empty());
    CHECK(json::parse(notify::slackBody(own))["text"] ==
          "[FIRING] web.service on db1: 5 crashes in 5m");
    CHECK(json::parse(notify::pagerDutyBody(own, ROUTING_KEY))["payload"]["summary"] ==
          "web.service on db1: 5 crashes in 5m");
}

TEST_CASE("a resolved webhook body says resolved and when") {
    const auto body = json::parse(notify::webhookBody(resolved()));
    CHECK(body["status"] == "resolved");
    CHECK(body["resolved_at"] == "2026-11-24T22:23:57.000Z");
}

TEST_CASE("a missing last exit and invalid UTF-8 in the journal still make valid JSON") {
    Notification n = firing();
    n.last_exit.reset();
    n.journal = {"bad \xff byte"};
    const auto body = json::parse(notify::webhookBody(n));
    CHECK(body["last_exit"].is_null());
    CHECK(body["journal"].size() == 1);
}

namespace {

// Block Kit's rules (api.slack.com/reference/block-kit/blocks), checked on a parsed body.
std::size_t characters(const std::string& text) {
    return static_cast<std::size_t>(std::count_if(text.begin(), text.end(), [](char c) {
        return (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    }));
}

bool validUtf8(const std::string& text) {
    try {
        (void)json(text).dump();  // throws on invalid UTF-8
        return true;
    } catch (const json::exception&) {
        return false;
    }
}

std::vector<std::string> blockKitViolations(const json& body) {
    std::vector<std::string> out;
    auto text_ok = [&](const json& t, std::size_t max, const std::string& where) {
        if (!t.is_object() || !t.contains("type") || !t.contains("text") ||
            !t["text"].is_string()) {
            out.push_back(where + ": not a text object");
            return;
        }
        const auto type = t["type"].get<std::string>();
        if (type != "plain_text" && type != "mrkdwn") out.push_back(where + ": type " + type);
        const auto text = t["text"].get<std::string>();
        if (text.empty()) out.push_back(where + ": empty");
        if (characters(text) > max)
            out.push_back(where + ": " + std::to_string(characters(text)) + " chars");
        if (!validUtf8(text)) out.push_back(where + ": invalid UTF-8");
    };
    if (!body.contains("text") || !body["text"].is_string() ||
        body["text"].get<std::string>().empty())
        out.push_back("no text fallback");
    else if (characters(body["text"].get<std::string>()) > 40'000)
        out.push_back("text over 40,000 chars");
    if (!body.contains("blocks") || !body["blocks"].is_array()) {
        out.push_back("no blocks");
        return out;
    }
    const auto& blocks = body["blocks"];
    if (blocks.empty() || blocks.size() > 50)
        out.push_back("blocks: " + std::to_string(blocks.size()));
    for (std::size_t i = 0; i < blocks.size(); ++i) {
        const auto& b = blocks[i];
        const std::string at = "block " + std::to_string(i);
        const auto type = b.value("type", "");
        if (type == "header") {
            text_ok(b["text"], 150, at);
            if (b["text"].value("type", "") != "plain_text")
                out.push_back(at + ": header not plain_text");
        } else if (type == "section") {
            if (!b.contains("text") && !b.contains("fields")) out.push_back(at + ": empty section");
            if (b.contains("text")) text_ok(b["text"], 3000, at);
            if (b.contains("fields")) {
                if (b["fields"].empty() || b["fields"].size() > 10)
                    out.push_back(at + ": " + std::to_string(b["fields"].size()) + " fields");
                for (std::size_t f = 0; f < b["fields"].size(); ++f)
                    text_ok(b["fields"][f], 2000, at + " field " + std::to_string(f));
            }
        } else if (type == "context") {
            if (b["elements"].empty() || b["elements"].size() > 10)
                out.push_back(at + ": elements");
            for (const auto& e : b["elements"]) text_ok(e, 3000, at);
        } else if (type != "divider") {
            out.push_back(at + ": unknown type '" + type + "'");
        }
    }
    return out;
}

std::string joined(const std::vector<std::string>& lines) {
    std::string out;
    for (const auto& l : lines) out += l + "\n";
    return out;
}

json slackBlock(const json& body, std::string_view type, std::size_t nth = 0) {
    for (const auto& b : body["blocks"])
        if (b["type"] == type && nth-- == 0) return b;
    return nullptr;
}

}  // namespace

TEST_CASE("a Slack message is Block Kit: header, summary, fields, journal, context") {
    const auto body = json::parse(notify::slackBody(firing()));
    CHECK(joined(blockKitViolations(body)) == "");
    CHECK_FALSE(body.contains("attachments"));
    CHECK(body["text"] == "[FIRING] web.service on db1: 5 crashes in 5m");
    CHECK(slackBlock(body, "header")["text"]["text"] == "[FIRING] web.service on db1");
    const auto fields = slackBlock(body, "section", 1)["fields"];
    std::string all;
    for (const auto& f : fields) all += f["text"].get<std::string>() + "|";
    CHECK(all.find("*Unit*\nweb.service|") != std::string::npos);
    CHECK(all.find("*Host*\ndb1|") != std::string::npos);
    CHECK(all.find("*Rule*\ncrashloop|") != std::string::npos);
    // The noun is the rule's event, not "Restarts" for every rule.
    CHECK(all.find("*Crashes*\n5|") != std::string::npos);
    CHECK(all.find("Restarts") == std::string::npos);
    CHECK(all.find("*Window*\n5min|") != std::string::npos);
    CHECK(all.find("*Last exit*\nexit-code, exited 3|") != std::string::npos);
    const auto journal = slackBlock(body, "section", 2)["text"]["text"].get<std::string>();
    CHECK(journal == "```starting\npanic: out of cheese\n```");
}

TEST_CASE("a resolved Slack message has the same blocks, marked resolved") {
    Notification n = resolved();
    n.reason = "up";
    n.journal.clear();
    const auto body = json::parse(notify::slackBody(n));
    CHECK(joined(blockKitViolations(body)) == "");
    CHECK(body["text"].get<std::string>().starts_with("[RESOLVED] "));
    CHECK(slackBlock(body, "header")["text"]["text"] == "[RESOLVED] web.service on db1");
    CHECK(notify::slackBody(n).find("*Resolved*\\n2026-11-24T22:23:57.000Z, the unit stayed up") !=
          std::string::npos);
}

TEST_CASE("Slack messages keep Block Kit's limits whatever the input") {
    std::vector<Notification> cases;
    Notification n = firing();
    n.unit = std::string(300, 'u') + ".service";
    n.host = std::string(300, 'h');
    n.rule = std::string(128, 'r');
    n.summary = std::string(100'000, 'x');
    n.journal = std::vector<std::string>(1000, std::string(5000, 'y'));
    cases.push_back(n);
    // Multibyte text everywhere, cut wherever a limit falls.
    n.unit = "";
    for (int i = 0; i < 200; ++i) n.unit += "дерево-🌲";
    n.summary = n.unit + n.unit + n.unit + n.unit;
    n.journal = std::vector<std::string>(200, n.unit);
    n.labels.clear();
    cases.push_back(n);
    // Characters Slack escapes grow the text fivefold; fences inside a journal line.
    n.summary = std::string(5000, '&');
    n.journal = {std::string(3000, '<'), "```", "``````" + std::string(2000, '>'), "end"};
    n.host = "a&b<c>";
    cases.push_back(n);
    // One huge line only; invalid UTF-8; an empty journal line.
    n.journal = {std::string(1, '\xff') + std::string(10'000, 'z'), ""};
    cases.push_back(n);
    Notification r = resolved();
    r.unit = cases[1].unit;
    r.reason = "operator-stop";
    r.sources = {"emit", "supervisor", "systemd"};
    cases.push_back(r);
    for (const auto& c : cases) {
        const std::string text = notify::slackBody(c);
        const auto body = json::parse(text);
        CHECK(joined(blockKitViolations(body)) == "");
        // The journal block is one code block: opened and closed once.
        if (const auto journal = slackBlock(body, "section", 2); !journal.is_null()) {
            const auto code = journal["text"]["text"].get<std::string>();
            CHECK(code.starts_with("```"));
            CHECK(code.ends_with("\n```"));
            CHECK(code.find("```", 3) == code.size() - 3);
        }
    }
    // Escapes are never cut in half.
    const auto body = json::parse(notify::slackBody(cases[2]));
    const auto summary = slackBlock(body, "section", 0)["text"]["text"].get<std::string>();
    CHECK(summary.starts_with("&amp;&amp;"));
    CHECK(summary.ends_with("&amp;…"));
    CHECK(notify::slackBody(cases[2]).find("*Host*\\na&amp;b&lt;c&gt;") != std::string::npos);
    // The newest line is kept when the journal is cut.
    const auto journal = slackBlock(json::parse(notify::slackBody(cases[0])), "section", 2);
    CHECK(journal["text"]["text"].get<std::string>().starts_with("```…\n"));
}

TEST_CASE("a PagerDuty trigger has the dedup key, severity and details") {
    const auto body = json::parse(notify::pagerDutyBody(firing(), ROUTING_KEY));
    CHECK(body["routing_key"] == ROUTING_KEY);
    CHECK(body["event_action"] == "trigger");
    CHECK(body["dedup_key"] == "db1/crashloop/web.service");
    const auto& payload = body["payload"];
    CHECK(payload["summary"] == "web.service on db1: 5 crashes in 5m");
    CHECK(payload["source"] == "db1");
    CHECK(payload["severity"] == "critical");
    CHECK(payload["timestamp"] == "2026-11-24T22:13:57.000Z");
    CHECK(payload["custom_details"]["last_exit"]["exit_status"] == 3);
    CHECK(payload["custom_details"]["journal"].size() == 2);
}

TEST_CASE("a PagerDuty resolve carries only the key, the dedup key and the action") {
    const auto body = json::parse(notify::pagerDutyBody(resolved(), ROUTING_KEY));
    CHECK(body == json{{"routing_key", ROUTING_KEY},
                       {"dedup_key", "db1/crashloop/web.service"},
                       {"event_action", "resolve"}});
}

TEST_CASE("a long PagerDuty summary is cut to 1024 bytes ending in an ellipsis") {
    Notification n = firing();
    n.summary = std::string(1023, 'a') + "é" + std::string(2000, 'b');
    const auto summary =
        json::parse(notify::pagerDutyBody(n, ROUTING_KEY))["payload"]["summary"].get<std::string>();
    CHECK(summary.size() <= 1024);
    CHECK(summary.ends_with("…"));
    CHECK(summary == std::string(1021, 'a') + "…");

    n.summary = std::string(1024, 'a');
    CHECK(json::parse(notify::pagerDutyBody(n, ROUTING_KEY))["payload"]["summary"] == n.summary);
}

TEST_CASE("a long dedup key stays under 255 bytes, stable and distinct") {
    Notification a = firing();
    a.unit = std::string(300, 'u') + "-a.service";
    Notification b = firing();
    b.unit = std::string(300, 'u') + "-b.service";
    const auto key_a = notify::pagerDutyDedupKey(a);
    CHECK(key_a.size() <= 255);
    CHECK(key_a.starts_with("db1/crashloop/uuu"));
    CHECK(key_a == notify::pagerDutyDedupKey(a));
    CHECK(key_a != notify::pagerDutyDedupKey(b));
}

TEST_CASE("the Alertmanager body is one alert with our labels over the rule's") {
    Notification n = firing();
    n.labels["severity"] = "overridden";
    const auto body = json::parse(notify::alertmanagerBody(n, STARTED + 3 * core::USEC_PER_MIN));
    REQUIRE(body.is_array());
    REQUIRE(body.size() == 1);
    const auto& alert = body[0];
    CHECK(alert["labels"] == json{{"alertname", "crashloop"},
                                  {"unit", "web.service"},
                                  {"host", "db1"},
                                  {"severity", "critical"},
                                  {"source", "systemd"},
                                  {"team", "payments"}});
    CHECK(alert["annotations"]["summary"] == "web.service on db1: 5 crashes in 5m");
    CHECK(alert["startsAt"] == "2026-11-24T22:13:57.000Z");
    CHECK(alert["endsAt"] == "2026-11-24T22:16:57.000Z");
    CHECK((!alert.contains("generatorURL") || alert["generatorURL"] == ""));
}

TEST_CASE("a resolved Alertmanager alert ends when the caller says") {
    const auto body = json::parse(notify::alertmanagerBody(resolved(), RESOLVED));
    CHECK(body[0]["endsAt"] == "2026-11-24T22:23:57.000Z");
}

TEST_CASE("a webhook secret never appears in any body or signature") {
    for (const auto& n : {firing(), resolved()}) {
        const std::string bodies[] = {notify::webhookBody(n), notify::slackBody(n),
                                      notify::pagerDutyBody(n, ROUTING_KEY),
                                      notify::alertmanagerBody(n, RESOLVED)};
        for (const auto& body : bodies) {
            CHECK(body.find(WEBHOOK_SECRET) == std::string::npos);
            CHECK(body.find("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == std::string::npos);
            const auto signature = notify::webhookSignature(WEBHOOK_SECRET, n.id, 1, body);
            CHECK(signature.find("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw") == std::string::npos);
        }
        // The routing key belongs in the PagerDuty body and nowhere else.
        CHECK(notify::webhookBody(n).find(ROUTING_KEY) == std::string::npos);
        CHECK(notify::slackBody(n).find(ROUTING_KEY) == std::string::npos);
        CHECK(notify::alertmanagerBody(n, RESOLVED).find(ROUTING_KEY) == std::string::npos);
    }
}

TEST_CASE("a notification survives the outbox: encode then decode gives it back") {
    for (const auto& n : {firing(), resolved()}) {
        const auto back = notify::decode(notify::encode(n));
        REQUIRE(back.has_value());
        CHECK(*back == n);
    }
    // A row queued by a cerberus that did not record sources still reads, without them.
    auto old = json::parse(notify::encode(emitted()));
    old.erase("sources");
    const auto back = notify::decode(old.dump());
    REQUIRE(back.has_value());
    CHECK(back->sources.empty());
    CHECK(back->unit == "upstart-web");
    CHECK_FALSE(notify::decode("{\"id\": 1}").has_value());
    CHECK_FALSE(notify::decode("not json").has_value());
}

TEST_CASE("the stable id is the same for the same decision and differs for another") {
    const auto n = firing();
    CHECK(notify::stableId(n, STARTED) == notify::stableId(n, STARTED));
    CHECK(notify::stableId(n, STARTED).starts_with("msg_"));
    CHECK(notify::stableId(n, STARTED) != notify::stableId(n, STARTED + 1));
    auto other = n;
    other.change = notify::Change::Repeat;
    CHECK(notify::stableId(n, STARTED) != notify::stableId(other, STARTED));
}

TEST_CASE("backoff doubles from 1 s up to 5 min, jittered over the upper half") {
    CHECK(notify::backoffUsec(1, 0) == core::USEC_PER_SEC / 2);
    CHECK(notify::backoffUsec(1, ~0ULL) <= core::USEC_PER_SEC);
    CHECK(notify::backoffUsec(3, 0) == 2 * core::USEC_PER_SEC);
    CHECK(notify::backoffUsec(50, 0) == notify::BACKOFF_MAX_USEC / 2);
    CHECK(notify::backoffUsec(50, ~0ULL) <= notify::BACKOFF_MAX_USEC);
}

TEST_CASE("Retry-After is read as seconds or as an HTTP date, and capped") {
    const core::Usec now = *core::parseIsoTime("2015-10-21T07:27:00Z");
    CHECK(notify::parseRetryAfter("2", now) == 2 * core::USEC_PER_SEC);
    CHECK(notify::parseRetryAfter("Wed, 21 Oct 2015 07:28:00 GMT", now) == core::USEC_PER_MIN);
    CHECK(notify::parseRetryAfter("99999999", now) == notify::RETRY_AFTER_MAX_USEC);
    CHECK_FALSE(notify::parseRetryAfter("soon", now).has_value());
    CHECK_FALSE(notify::parseRetryAfter("", now).has_value());
}

TEST_CASE("an attempt's answer decides: sent, retried, refused or given up") {
    notify::Delivery d;
    d.id = 7;
    d.attempts = 1;
    d.created_usec = STARTED;
    const core::Usec day = core::USEC_PER_DAY;
    auto answer = [](long status, std::string retry_after = {}, std::string error = {}) {
        notify::HttpResponse r;
        r.status = status;
        r.retry_after = std::move(retry_after);
        r.error = std::move(error);
        r.body = "nope\nsecond line";
        return r;
    };
    CHECK(name(notify::decide(d, answer(202), day, STARTED, 0).status) == "sent");

    const auto server = notify::decide(d, answer(500), day, STARTED, 0);
    CHECK(name(server.status) == "pending");
    CHECK(server.last_error == "HTTP 500: nope");
    CHECK(server.next_attempt_usec == STARTED + core::USEC_PER_SEC / 2);

    const auto limited = notify::decide(d, answer(429, "30"), day, STARTED, 0);
    CHECK(name(limited.status) == "pending");
    CHECK(limited.next_attempt_usec == STARTED + 30 * core::USEC_PER_SEC);

    const auto timeout = notify::decide(d, answer(0, "", "Operation timed out"), day, STARTED, 0);
    CHECK(name(timeout.status) == "pending");
    CHECK(timeout.last_error == "Operation timed out");
    CHECK(name(notify::decide(d, answer(408), day, STARTED, 0).status) == "pending");

    for (long status : {400L, 401L, 403L, 404L, 410L, 301L}) {
        const auto refused = notify::decide(d, answer(status), day, STARTED, 0);
        CHECK(name(refused.status) == "failed");
        CHECK(refused.permanent);
    }

    const auto old = notify::decide(d, answer(503), core::USEC_PER_SEC / 10, STARTED + 1, 0);
    CHECK(name(old.status) == "failed");
    CHECK_FALSE(old.permanent);
    CHECK(old.last_error.starts_with("gave up after 1 attempt in"));
}

TEST_CASE("secrets resolve from the environment and files, and a bad one names the receiver") {
    rules::Receiver hook;
    hook.name = "hook";
    hook.type = rules::ReceiverType::Webhook;
    hook.origin = "rules/x.json:3";
    hook.url = rules::Secret{rules::Secret::Kind::Env, "HOOK_URL"};
    hook.secret = rules::Secret{rules::Secret::Kind::Literal, WEBHOOK_SECRET};
    rules::Receiver pd;
    pd.name = "pd";
    pd.type = rules::ReceiverType::PagerDuty;
    pd.origin = "rules/x.json:9";
    pd.routing_key = rules::Secret{rules::Secret::Kind::Env, "PD_KEY"};

    auto env = [](const char* name) -> const char* {
        return std::string_view(name) == "HOOK_URL" ? "http://127.0.0.1:9/x" : nullptr;
    };
    const auto targets = notify::resolveTargets({hook, pd}, env);
    REQUIRE(targets.by_name.count("hook") == 1);
    CHECK(targets.by_name.at("hook").url == "http://127.0.0.1:9/x");
    CHECK(targets.by_name.count("pd") == 0);
    REQUIRE(targets.errors.size() == 1);
    CHECK(targets.errors[0] ==
          "receiver 'pd' (rules/x.json:9): 'routing_key': environment variable 'PD_KEY' is not "
          "set or empty; set it in cerberus's environment (for a unit: Environment= or "
          "EnvironmentFile=)");

    hook.secret = rules::Secret{rules::Secret::Kind::Literal, "whsec_!!notbase64!!"};
    const auto bad = notify::resolveTargets({hook}, env);
    REQUIRE(bad.errors.size() == 1);
    CHECK(bad.errors[0].find("'secret'") != std::string::npos);
    CHECK(bad.errors[0].find("notbase64") == std::string::npos);
}

TEST_CASE("a secret file is refused with the sentence cerberus check gives for it") {
    rules::Receiver pd;
    pd.name = "pd";
    pd.type = rules::ReceiverType::PagerDuty;
    pd.origin = "rules/x.json:9";
    pd.routing_key = rules::Secret{rules::Secret::Kind::File, "/nonexistent/cerberus/pd.key"};
    const auto none = [](const char*) -> const char* { return nullptr; };
    const auto missing = notify::resolveTargets({pd}, none);
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0] == "receiver 'pd' (rules/x.json:9): 'routing_key': " +
                                   rules::secretFileError("/nonexistent/cerberus/pd.key"));

    // Only blanks: what check cannot see without reading the secret.
    char path[] = "/tmp/cerberus-secret-XXXXXX";
    const int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, " \n", 2) == 2);
    close(fd);
    pd.routing_key->value = path;
    CHECK(rules::secretFileError(path).empty());
    const auto blank = notify::resolveTargets({pd}, none);
    unlink(path);
    REQUIRE(blank.errors.size() == 1);
    CHECK(blank.errors[0] == "receiver 'pd' (rules/x.json:9): 'routing_key': secret file '" +
                                 std::string(path) +
                                 "': it holds only blanks; put the secret in it");
}

TEST_CASE("a signed webhook request carries the Standard Webhooks headers") {
    notify::Target target;
    target.receiver.type = rules::ReceiverType::Webhook;
    target.url = "http://127.0.0.1:9/hook";
    target.signing_secret = WEBHOOK_SECRET;
    const auto n = firing();
    const auto request = notify::buildRequest(target, n, 1614265330 * core::USEC_PER_SEC);
    const std::string id_header = "webhook-id: " + n.id;
    CHECK(std::find(request.headers.begin(), request.headers.end(), id_header) !=
          request.headers.end());
    const std::string signature =
        "webhook-signature: " +
        notify::webhookSignature(WEBHOOK_SECRET, n.id, 1614265330, request.body);
    CHECK(std::find(request.headers.begin(), request.headers.end(), signature) !=
          request.headers.end());
    CHECK(request.body == notify::webhookBody(n));
}

namespace {

rules::Receiver mailReceiver() {
    rules::Receiver r;
    r.name = "mail";
    r.type = rules::ReceiverType::Email;
    r.url = rules::Secret{rules::Secret::Kind::Literal, "smtp://127.0.0.1:2525"};
    r.from = {"Cerberus, alerts", "cerberus@example.test"};
    r.to = {{"", "ops@example.test"}, {"Équipe nuit", "night@example.test"}};
    r.username = "alerts";
    r.password = rules::Secret{rules::Secret::Kind::Env, "SMTP_PASSWORD"};
    r.starttls = rules::StartTls::Never;
    return r;
}

// The headers of a message, unfolded, by name; and its body decoded from quoted-printable.
std::map<std::string, std::string> mailHeaders(const std::string& message) {
    std::map<std::string, std::string> out;
    const std::string head = message.substr(0, message.find("\r\n\r\n"));
    std::string last;
    std::size_t pos = 0;
    while (pos <= head.size()) {
        auto end = head.find("\r\n", pos);
        if (end == std::string::npos) end = head.size();
        const std::string line = head.substr(pos, end - pos);
        if (!line.empty() && line[0] == ' ')
            out[last] += line;
        else if (const auto colon = line.find(": "); colon != std::string::npos)
            out[last = line.substr(0, colon)] = line.substr(colon + 2);
        pos = end + 2;
    }
    return out;
}

std::string decodeQuotedPrintable(std::string_view text) {
    std::string out;
    for (std::size_t i = 0; i < text.size(); ++i) {
        if (text.substr(i, 3) == "=\r\n") {
            i += 2;
        } else if (text[i] == '=') {
            out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else if (text.substr(i, 2) == "\r\n") {
            out += '\n';
            ++i;
        } else {
            out += text[i];
        }
    }
    return out;
}

std::string mailBody(const std::string& message) {
    return decodeQuotedPrintable(message.substr(message.find("\r\n\r\n") + 4));
}

}  // namespace

TEST_CASE("an alert mail has RFC 5322 headers and a body with every fact") {
    const std::string message = notify::emailMessage(firing(), mailReceiver(), STARTED);
    const auto h = mailHeaders(message);
    CHECK(h.at("Date") == "Tue, 24 Nov 2026 22:13:57 +0000");
    CHECK(h.at("From") == "\"Cerberus, alerts\" <cerberus@example.test>");
    CHECK(h.at("To").starts_with("ops@example.test, =?UTF-8?B?"));
    CHECK(h.at("To").ends_with("?= <night@example.test>"));
    CHECK(h.at("Subject") == "[FIRING] web.service on db1: 5 crashes in 5m");
    CHECK(h.at("Message-ID").starts_with("<alert-"));
    CHECK(h.at("Message-ID").ends_with("@example.test>"));
    CHECK(h.count("In-Reply-To") == 0);
    CHECK(h.at("MIME-Version") == "1.0");
    CHECK(h.at("Content-Type") == "text/plain; charset=utf-8");
    CHECK(h.at("Content-Transfer-Encoding") == "quoted-printable");
    const std::string body = mailBody(message);
    for (const auto* fact :
         {"Rule:       crashloop\n", "Severity:   critical\n", "Unit:       web.service\n",
          "Host:       db1\n", "Crashes:    5\n", "Window:     5min\n",
          "Started:    2026-11-24T22:13:57.000Z\n", "Last exit:  exit-code, exited 3\n",
          "Labels:     team=payments\n", "    panic: out of cheese\n"}) {
        CAPTURE(fact);
        CHECK(body.find(fact) != std::string::npos);
    }
    // Every line fits SMTP's limits, and nothing but the blank line ends the headers.
    for (std::size_t pos = 0, end; (end = message.find("\r\n", pos)) != std::string::npos;
         pos = end + 2)
        CHECK(end - pos <= 78);
    CHECK(message.find('\n') == message.find("\r\n") + 1);
}

TEST_CASE("a resolve mail replies to the alert's first mail and says resolved") {
    const auto fire = mailHeaders(notify::emailMessage(firing(), mailReceiver(), STARTED));
    Notification n = resolved();
    n.change = notify::Change::Resolve;
    n.reason = "up";
    const std::string message = notify::emailMessage(n, mailReceiver(), RESOLVED);
    const auto h = mailHeaders(message);
    CHECK(h.at("Subject").starts_with("[RESOLVED] "));
    CHECK(h.at("In-Reply-To") == fire.at("Message-ID"));
    CHECK(h.at("References") == fire.at("Message-ID"));
    CHECK(h.at("Message-ID") != fire.at("Message-ID"));
    CHECK(mailBody(message).find("Resolved:   2026-11-24T22:23:57.000Z, the unit stayed up\n") !=
          std::string::npos);
}

TEST_CASE("a mail's subject cannot add a header, and non-ASCII is encoded") {
    Notification n = firing();
    n.summary = "héllo\r\nBcc: victim@example.test " + std::string(500, 'x');
    n.journal = {std::string(1, '\xff') + "bad byte", std::string(3000, 'z')};
    const std::string message = notify::emailMessage(n, mailReceiver(), STARTED);
    const auto h = mailHeaders(message);
    CHECK(h.count("Bcc") == 0);
    CHECK(h.at("Subject").starts_with("=?UTF-8?B?"));
    for (std::size_t pos = 0, end; (end = message.find("\r\n", pos)) != std::string::npos;
         pos = end + 2)
        CHECK(end - pos <= 78);
    // Invalid UTF-8 is replaced, not sent as is under charset=utf-8.
    CHECK(mailBody(message).find("\xEF\xBF\xBD"
                                 "bad byte") != std::string::npos);
    CHECK(notify::encodeHeaderWords("plain") == "plain");
    CHECK(notify::encodeHeaderWords("é") == "=?UTF-8?B?w6k=?=");
}

TEST_CASE("quoted-printable keeps lines short and escapes what it must") {
    CHECK(notify::quotedPrintable("a=b\n") == "a=3Db\r\n");
    CHECK(notify::quotedPrintable("trailing \n") == "trailing=20\r\n");
    CHECK(notify::quotedPrintable("é") == "=C3=A9");
    const std::string long_line = notify::quotedPrintable(std::string(200, 'a'));
    CHECK(long_line.find("=\r\n") == 75);
    CHECK(decodeQuotedPrintable(long_line) == std::string(200, 'a'));
}

TEST_CASE("an email request carries the envelope, the login and the TLS mode") {
    notify::Target target;
    target.receiver = mailReceiver();
    target.url = "smtp://127.0.0.1:2525";
    target.password = "s3cret";
    const auto request = notify::buildRequest(target, firing(), STARTED);
    CHECK(request.url == "smtp://127.0.0.1:2525");
    REQUIRE(request.mail.has_value());
    CHECK(request.mail->from == "cerberus@example.test");
    CHECK(request.mail->to == std::vector<std::string>{"ops@example.test", "night@example.test"});
    CHECK(request.mail->username == "alerts");
    CHECK(request.mail->password == "s3cret");
    CHECK((request.mail->tls == notify::MailTls::None));
    CHECK(request.headers.empty());
    CHECK(request.body.find("s3cret") == std::string::npos);
}

TEST_CASE("an SMTP 5xx is final, a 4xx or a lost connection is retried") {
    notify::Delivery d;
    d.id = 7;
    d.attempts = 1;
    d.created_usec = STARTED;
    const auto smtp = [](long code, std::string error) {
        notify::HttpResponse r;
        r.mail = true;
        r.status = code;
        r.error = std::move(error);
        return r;
    };
    const core::Usec day = core::USEC_PER_DAY;
    CHECK(name(notify::decide(d, smtp(250, ""), day, STARTED, 0).status) == "sent");
    const auto denied = notify::decide(d, smtp(535, "Login denied"), day, STARTED, 0);
    CHECK(name(denied.status) == "failed");
    CHECK(denied.permanent);
    CHECK(denied.last_error == "Login denied (SMTP 535)");
    CHECK(name(notify::decide(d, smtp(451, "RCPT failed: 451"), day, STARTED, 0).status) ==
          "pending");
    CHECK(name(notify::decide(d, smtp(0, "Couldn't connect to server"), day, STARTED, 0).status) ==
          "pending");
}

TEST_CASE("an email receiver's password is read like any secret") {
    rules::Receiver r = mailReceiver();
    auto env = [](const char* name) -> const char* {
        return std::string_view(name) == "SMTP_PASSWORD" ? "s3cret" : nullptr;
    };
    const auto targets = notify::resolveTargets({r}, env);
    REQUIRE(targets.ok());
    CHECK(targets.by_name.at("mail").password == "s3cret");
    CHECK(targets.by_name.at("mail").url == "smtp://127.0.0.1:2525");
    const auto missing =
        notify::resolveTargets({r}, [](const char*) -> const char* { return nullptr; });
    REQUIRE(missing.errors.size() == 1);
    CHECK(missing.errors[0].find("'password'") != std::string::npos);
}
