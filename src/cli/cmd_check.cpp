#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "core/text.hpp"
#include "core/time.hpp"
#include "rules/rules.hpp"

namespace cerberus::cli {

namespace {

std::string joined(const std::vector<std::string>& words, std::string_view separator = ",") {
    std::string out;
    for (const auto& w : words) {
        if (!out.empty()) out += separator;
        out += w;
    }
    return out;
}

// "crash x3 within 5m, uptime below 30s, result signal,core-dump"
std::string describeCondition(const rules::Condition& c) {
    std::string out = fmt::format("{} x{}", core::toString(c.event), c.count);
    if (c.within_usec > 0) out += " within " + core::formatDuration(c.within_usec);
    if (c.uptime_below_usec) out += ", uptime below " + core::formatDuration(*c.uptime_below_usec);
    if (!c.results.empty()) out += ", result " + joined(c.results);
    if (!c.exit_statuses.empty()) {
        std::vector<std::string> statuses;
        for (int s : c.exit_statuses) statuses.push_back(std::to_string(s));
        out += ", exit status " + joined(statuses);
    }
    return out;
}

std::string describeReceiver(const rules::Receiver& r) {
    std::string out(rules::toString(r.type));
    if (r.type == rules::ReceiverType::Email) {
        // An SMTP URL and addresses are not secrets; the password is.
        std::string to;
        for (const auto& box : r.to) to += (to.empty() ? "" : ", ") + box.address;
        out += " url " + r.url->value + " from " + r.from.address + " to " + to + " starttls " +
               std::string(rules::toString(r.starttls));
        if (r.password) out += " username " + r.username + " password " + r.password->redacted();
        return out;
    }
    if (r.url) out += " url " + r.url->redacted();
    if (r.routing_key) out += " routing_key " + r.routing_key->redacted();
    if (r.secret) out += " secret " + r.secret->redacted();
    // Alertmanager URLs are addresses, not secrets: shown as written.
    if (!r.urls.empty()) out += " urls " + joined(r.urls);
    return out;
}

struct CheckArgs {
    std::vector<std::string> rules;
};

constexpr CommandHelp CHECK_HELP{
    "check",
    "Validate rule files: print the rules and receivers (secrets redacted) and exit 0, or "
    "print every error and exit 1"};

int runCheck(const CheckArgs& args) {
    const auto paths = rulesPaths(args.rules);
    const rules::RuleSet set = loadRulesOrReport(paths);
    std::size_t name_width = 0;
    for (const auto& r : set.rules) name_width = std::max(name_width, r.name.size());
    for (const auto& r : set.receivers) name_width = std::max(name_width, r.name.size());

    std::string out = fmt::format("{}: {}, {}: valid\n", joined(paths, ", "),
                                  core::plural(set.rules.size(), "rule"),
                                  core::plural(set.receivers.size(), "receiver"));
    for (const auto& r : set.rules) {
        out +=
            fmt::format("rule      {:<{}}  {}; severity {}; notify {}", r.name, name_width,
                        describeCondition(r.when), rules::toString(r.severity), joined(r.notify));
        if (r.units != std::vector<std::string>{"*.service"}) out += "; units " + joined(r.units);
        if (!r.exclude.empty()) out += "; exclude " + joined(r.exclude);
        out += '\n';
    }
    for (const auto& r : set.receivers)
        out += fmt::format("receiver  {:<{}}  {}\n", r.name, name_width, describeReceiver(r));
    std::fwrite(out.data(), 1, out.size(), stdout);
    finishOutput("the rules");
    return 0;
}

}  // namespace

rules::RuleSet loadRulesOrReport(const std::vector<std::string>& paths) {
    auto loaded = rules::loadRules(paths);
    if (loaded.ok()) return std::move(loaded.rules);
    std::string report;
    for (const auto& error : loaded.errors) report += error + '\n';
    std::fwrite(report.data(), 1, report.size(), stderr);
    const std::size_t n = loaded.errors.size();
    throw core::Error(
        core::ExitCode::Failure,
        fmt::format("{} in the rules ({}); fix {} and run 'cerberus check' again",
                    core::plural(n, "error"), joined(paths, ", "), n == 1 ? "it" : "them"));
}

void addCheckCommand(CLI::App& app, Action& action) {
    const auto [cmd, args] = addCommand<CheckArgs>(app, CHECK_HELP);
    addRulesOption(cmd, args->rules)->type_name("PATH");
    setAction(cmd, action, args, runCheck);
}

}  // namespace cerberus::cli
