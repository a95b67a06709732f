#pragma once

// Receivers made ready to send: every secret ({"env"} / {"file"} / literal) read once, at
// start-up, reload or `cerberus test-receiver`, so a missing variable or a bad key is an
// error then, not at the first alert. Values never leave this struct: not in messages,
// logs or the database.

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "rules/rules.hpp"

namespace cerberus::notify {

inline constexpr std::string_view PAGERDUTY_URL_DEFAULT = "https://events.pagerduty.com/v2/enqueue";

struct Target {
    rules::Receiver receiver;
    std::string url;             // slack, webhook, pagerduty (the default when not set)
    std::string routing_key;     // pagerduty
    std::string signing_secret;  // webhook; empty: requests are not signed
    std::string password;        // email's SMTP login
};

struct Targets {
    std::map<std::string, Target> by_name;
    // One sentence each, naming the receiver, its file and the fix; never the value.
    std::vector<std::string> errors;
    bool ok() const { return errors.empty(); }
};

using GetEnv = std::function<const char*(const char*)>;

Targets resolveTargets(const std::vector<rules::Receiver>& receivers, const GetEnv& getenv);

}  // namespace cerberus::notify
