#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/time.hpp"
#include "notify/payload.hpp"
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
    n.count = 5;
    n.within_usec = 5 * core::USEC_PER_MIN;
    n.started_usec = STARTED;
    n.summary = "web.service on db1: 5 crash in 5m";
    n.labels = {{"team", "payments"}};
    n.last_exit = notify::LastExit{"exit-code", "exited", 3};
    n.journal = {"starting", "panic: out of cheese"};
    return n;
}

Notification resolved() {
    Notification n = firing();
    n.action = Action::Resolve;
    n.id = "cerberus-42-resolve";
    n.resolved_usec = RESOLVED;
    return n;
}

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
          "started_at", "resolved_at", "summary", "labels", "last_exit", "journal"}) {
        CHECK_MESSAGE(body.contains(key), key);
    }
    CHECK(body["version"] == 1);
    CHECK(body["id"] == "cerberus-42-trigger");
    CHECK(body["status"] == "firing");
    CHECK(body["severity"] == "critical");
    CHECK(body["count"] == 5);
    CHECK(body["within"] == "5m");
    CHECK(body["started_at"] == "2026-11-24T22:13:57.000Z");
    CHECK(body["resolved_at"].is_null());
    CHECK(body["labels"] == json{{"team", "payments"}});
    CHECK(body["last_exit"] ==
          json{{"result", "exit-code"}, {"exit_code", "exited"}, {"exit_status", 3}});
    CHECK(body["journal"] == json{"starting", "panic: out of cheese"});
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

TEST_CASE("Slack colors follow severity, and resolved is good") {
    auto color = [](const Notification& n) {
        return json::parse(notify::slackBody(n))["attachments"][0]["color"].get<std::string>();
    };
    Notification n = firing();
    n.severity = rules::Severity::Critical;
    CHECK(color(n) == "danger");
    n.severity = rules::Severity::Error;
    CHECK(color(n) == "danger");
    n.severity = rules::Severity::Warning;
    CHECK(color(n) == "warning");
    n.severity = rules::Severity::Info;
    CHECK(color(n) == "#439FE0");
    CHECK(color(resolved()) == "good");
}

TEST_CASE("the Slack body has text and one attachment with fields") {
    const auto body = json::parse(notify::slackBody(firing()));
    CHECK(body["text"] == "[FIRING] web.service on db1: 5 crash in 5m");
    REQUIRE(body["attachments"].size() == 1);
    const auto& fields = body["attachments"][0]["fields"];
    CHECK(fields.size() >= 5);
    CHECK(notify::slackBody(resolved()).find("[RESOLVED]") != std::string::npos);
}

TEST_CASE("the Slack text stays well under Slack's 40,000 character cut") {
    Notification n = firing();
    n.summary = std::string(100'000, 'x');
    n.journal = std::vector<std::string>(1000, std::string(5000, 'y'));
    const std::string text = notify::slackBody(n);
    const auto body = json::parse(text);
    CHECK(body["text"].get<std::string>().size() <= notify::SLACK_TEXT_MAX);
    CHECK(text.size() < 40'000);
}

TEST_CASE("a PagerDuty trigger has the dedup key, severity and details") {
    const auto body = json::parse(notify::pagerDutyBody(firing(), ROUTING_KEY));
    CHECK(body["routing_key"] == ROUTING_KEY);
    CHECK(body["event_action"] == "trigger");
    CHECK(body["dedup_key"] == "db1/crashloop/web.service");
    const auto& payload = body["payload"];
    CHECK(payload["summary"] == "web.service on db1: 5 crash in 5m");
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
                                  {"team", "payments"}});
    CHECK(alert["annotations"]["summary"] == "web.service on db1: 5 crash in 5m");
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
