#pragma once

// What the tests of the daemon's alerting share: a crash-loop rule and a transition.

#include <doctest/doctest.h>

#include <string>

#include "core/transition.hpp"
#include "rules/rules.hpp"

namespace cerberus::test {

// One rule: 3 crashes within 1m fire "crashloop", 10s of uptime resolve it; log receiver.
inline rules::RuleSet crashloopRules() {
    auto loaded = rules::parseRules(R"({"receivers": {"log": {"type": "log"}},
"rules": [{"name": "crashloop", "when": {"event": "crash", "count": 3, "within": "1m"},
           "resolve_when_up_for": "10s", "severity": "critical", "notify": ["log"]}]})",
                                    "test.json");
    REQUIRE(loaded.ok());
    return loaded.rules;
}

// A start (active, success) or a failure-like event (failed, exit-code) of `unit` at `ts`.
inline core::Transition event(const std::string& unit, core::Event e, core::Usec ts) {
    core::Transition t;
    t.ts_usec = ts;
    t.unit = unit;
    t.event = e;
    t.active_state = e == core::Event::Start ? "active" : "failed";
    t.result = e == core::Event::Start ? "success" : "exit-code";
    return t;
}

}  // namespace cerberus::test
