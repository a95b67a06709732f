// `cerberus test-receiver NAME`: one clearly marked test alert, sent once (no retries), and
// the receiver's answer. Exit 0 when every request was accepted, 1 otherwise.

#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>

#include "cli/commands.hpp"
#include "core/error.hpp"
#include "notify/dispatcher.hpp"
#include "notify/http.hpp"
#include "notify/secrets.hpp"

namespace cerberus::cli {

namespace {

std::string hostName() {
    char name[256] = {};
    if (gethostname(name, sizeof name - 1) != 0) return "localhost";
    return name;
}

notify::Notification testAlert(const std::string& receiver, core::Usec now) {
    notify::Notification n;
    n.rule = "cerberus-test";
    n.unit = "cerberus-test.service";
    n.host = hostName();
    n.severity = rules::Severity::Info;
    n.event = core::Event::Crash;
    n.count = 1;
    n.within_usec = core::USEC_PER_MIN;
    n.started_usec = now;
    n.summary = "[TEST] cerberus test alert from " + n.host + " to receiver '" + receiver +
                "'; no action needed";
    n.labels = {{"test", "true"}};
    n.id = "msg_test_" + std::to_string(now);
    return n;
}

struct TestReceiverArgs {
    std::string name;
    std::vector<std::string> rules;
};

constexpr CommandHelp TEST_RECEIVER_HELP{
    "test-receiver", "Send one clearly marked test alert to a receiver and show its answer"};

int runTestReceiver(const TestReceiverArgs& args) {
    const std::string& name = args.name;
    const rules::RuleSet set = loadRulesOrReport(rulesPaths(args.rules));
    const rules::Receiver* receiver = set.receiver(name);
    if (receiver == nullptr) {
        std::string known;
        for (const auto& r : set.receivers) known += (known.empty() ? "" : ", ") + r.name;
        throw core::Error(core::ExitCode::Usage, "no receiver named '" + name +
                                                     "' in the rules; the receivers are: " +
                                                     (known.empty() ? "none" : known));
    }
    const auto targets = notify::resolveTargets(
        {*receiver}, [](const char* var) { return static_cast<const char*>(std::getenv(var)); });
    if (!targets.ok()) throw core::Error(core::ExitCode::Failure, targets.errors.front());
    const notify::Target& target = targets.by_name.at(name);
    core::SystemClock clock;
    const notify::Notification n = testAlert(name, clock.realtime());
    if (receiver->type == rules::ReceiverType::Log) {
        std::fprintf(stderr, "cerberus: %s\n", notify::logLine(n).c_str());
        std::printf("receiver '%s' (log): wrote the test alert to stderr\n", name.c_str());
        return 0;
    }

    notify::HttpClient http;
    std::vector<std::string> urls{target.url};
    if (receiver->type == rules::ReceiverType::Alertmanager) {
        urls.clear();
        for (const auto& url : receiver->urls) urls.push_back(url + "/api/v2/alerts");
    }
    int failures = 0;
    std::size_t waiting = urls.size();
    for (std::size_t i = 0; i < urls.size(); ++i) {
        auto request = notify::buildRequest(target, n, clock.realtime());
        request.url = urls[i];
        // Alertmanager URLs are not secrets; other URLs may carry a token.
        const std::string shown =
            receiver->type == rules::ReceiverType::Alertmanager ? " at " + urls[i] : std::string();
        http.post(request, [&, shown](const notify::HttpResponse& response) {
            --waiting;
            const bool ok =
                response.error.empty() && response.status >= 200 && response.status < 300;
            if (!ok) ++failures;
            std::string answer = response.error.empty() ? (response.mail ? "SMTP " : "HTTP ") +
                                                              std::to_string(response.status)
                                                        : response.error;
            if (response.error.empty() && !response.body.empty())
                answer += ": " + notify::truncateUtf8(response.body, 200);
            std::printf("receiver '%s' (%s)%s %s the test alert: %s\n", name.c_str(),
                        std::string(rules::toString(receiver->type)).c_str(), shown.c_str(),
                        ok ? "accepted" : "did not accept", answer.c_str());
        });
    }
    while (waiting > 0) {
        int timeout_ms = 1000;
        if (const auto at = http.deadline())
            timeout_ms = static_cast<int>(std::clamp<core::Usec>(
                (*at - clock.monotonic()) / core::USEC_PER_MSEC + 1, 0, 1000));
        pollfd pfd{http.fd(), POLLIN, 0};
        // Whether it woke for the socket, the timeout or a signal (EINTR), process() below
        // does whatever is due: transfers that ended, and timeouts.
        (void)poll(&pfd, 1, timeout_ms);
        http.process();
    }
    finishOutput("the answer");
    return failures == 0 ? 0 : static_cast<int>(core::ExitCode::Failure);
}

}  // namespace

void addTestReceiverCommand(CLI::App& app, Action& action) {
    const auto [cmd, args] = addCommand<TestReceiverArgs>(app, TEST_RECEIVER_HELP);
    cmd->add_option("name", args->name, "The receiver's name in the rules")->required();
    cmd->add_option("--rules", args->rules,
                    "Rule file or directory of *.json (repeatable; default: /etc/cerberus/rules "
                    "or the shipped rules)");
    setAction(cmd, action, args, runTestReceiver);
}

}  // namespace cerberus::cli
