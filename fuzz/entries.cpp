#include "entries.hpp"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <string>

#include "core/time.hpp"
#include "core/transition.hpp"
#include "ingest/emit.hpp"
#include "rules/rules.hpp"

namespace cerberus::fuzz {

namespace {

// Fixed clocks: the same input always takes the same path.
constexpr core::Usec NOW_USEC = 1764300000000000;  // 2025-11-28T03:20:00Z
constexpr core::Usec NOW_MONO = 86400000000;
// 1970-01-01 to 9999-12-31T23:59:59.999Z: what formatIsoTime writes with four digits.
constexpr core::Usec ISO_MAX_USEC = 253402300800000000;

std::string_view text(std::span<const std::uint8_t> data) {
    return {reinterpret_cast<const char*>(data.data()), data.size()};
}

[[noreturn]] void broken(const char* what, std::string_view detail) {
    std::fprintf(stderr, "fuzz: invariant broken: %s: '%.*s'\n", what,
                 static_cast<int>(detail.size()), detail.data());
    std::abort();
}

void expect(bool ok, const char* what, std::string_view detail) {
    if (!ok) broken(what, detail);
}

bool sameRequest(const ingest::EmitRequest& a, const ingest::EmitRequest& b) {
    return a.unit == b.unit && a.event == b.event && a.exit_status == b.exit_status &&
           a.signal == b.signal && a.failed == b.failed && a.source == b.source &&
           a.ts_usec == b.ts_usec && a.mono_usec == b.mono_usec;
}

// What the daemon does with a request it accepted, after and not after another run.
void mapRequest(const ingest::EmitRequest& request) {
    const std::string line = ingest::encodeRequest(request);
    const auto again = ingest::parseRequest(line, NOW_USEC, NOW_MONO);
    if (!again.request) broken("an encoded request does not parse", line + ": " + again.error);
    if (!sameRequest(request, *again.request)) broken("a request changed in a round trip", line);
    ingest::mapEmit(request, std::nullopt);
    core::Transition last;
    last.unit = request.unit;
    last.event = core::Event::Crash;
    last.sub_state = "stopping";
    last.exit_status = 3;
    const auto out = ingest::mapEmit(request, last);
    for (const auto& t : out) expect(t.unit == request.unit, "a transition of another unit", line);
}

}  // namespace

void rules(std::span<const std::uint8_t> data) {
    const auto loaded = cerberus::rules::parseRules(text(data), "fuzz.json");
    for (const auto& error : loaded.errors) {
        constexpr std::string_view FILE = "fuzz.json:";
        std::size_t digits = 0;
        while (FILE.size() + digits < error.size() &&
               std::isdigit(static_cast<unsigned char>(error[FILE.size() + digits])))
            ++digits;
        expect(error.starts_with(FILE) && digits > 0 && error[FILE.size()] != '0',
               "an error that does not start with FILE:LINE", error);
        // The parser's net for an exception it did not expect (the message after FILE:LINE;
        // anywhere else it may be the file's own text).
        expect(!error.substr(FILE.size() + digits).starts_with(": cannot check the rules: "),
               "a nlohmann exception escaped the checks", error);
    }
    expect(loaded.ok() || loaded.rules.rules.empty(), "a refused set kept rules", "");
    for (const auto& rule : loaded.rules.rules) {
        cerberus::rules::renderSummary(rule, {"web.service", "host", 3});
        rule.matchesUnit("web.service");
        expect(loaded.rules.rule(rule.name) != nullptr, "a rule not found by its name", rule.name);
        for (const auto& name : rule.notify)
            expect(loaded.rules.receiver(name) != nullptr, "a rule notifies no receiver", name);
    }
}

void time(std::span<const std::uint8_t> data) {
    const auto s = text(data);
    if (const auto d = core::parseDuration(s)) {
        expect(*d >= 0, "a negative duration", s);
        const auto spelled = core::formatDuration(*d);
        expect(core::parseDuration(spelled) == d, "a duration changed in a round trip", spelled);
    }
    if (const auto t = core::parseIsoTime(s); t && *t >= 0 && *t < ISO_MAX_USEC) {
        const auto spelled = core::formatIsoTime(*t);
        const core::Usec ms = *t - *t % core::USEC_PER_MSEC;
        expect(core::parseIsoTime(spelled) == ms, "a time changed in a round trip", spelled);
    }
    core::parseTimeArg(s, NOW_USEC);
    // Any microsecond count, negative ones too, has a spelling.
    if (data.size() >= sizeof(core::Usec)) {
        core::Usec usec = 0;
        std::memcpy(&usec, data.data(), sizeof usec);
        const auto spelled = core::formatDuration(usec);
        if (usec >= 0)
            expect(core::parseDuration(spelled) == usec, "a duration does not parse back", spelled);
        core::formatIsoTime(usec);
    }
}

void emit(std::span<const std::uint8_t> data) {
    const auto line = text(data);
    const auto parsed = ingest::parseRequest(line, NOW_USEC, NOW_MONO);
    expect(parsed.request.has_value() != !parsed.error.empty(),
           "a request with an error, or neither", line);
    if (parsed.request) {
        expect(ingest::checkUnitName(parsed.request->unit).empty(), "an invalid unit accepted",
               parsed.request->unit);
        mapRequest(*parsed.request);
    }
    if (const auto reply = ingest::parseReply(line)) {
        const auto again = ingest::parseReply(ingest::encodeReply(*reply));
        expect(again && again->ok == reply->ok && again->error == reply->error &&
                   again->stopping == reply->stopping &&
                   (!reply->ok || again->stored == reply->stored),
               "a reply changed in a round trip", line);
    }
    if (const auto signal = ingest::parseSignal(line)) expect(*signal > 0, "signal 0", line);
}

void supervisor(std::span<const std::uint8_t> data) {
    const auto input = text(data);
    const auto newline = input.find('\n');
    const auto line = input.substr(0, newline);
    const auto payload =
        newline == std::string_view::npos ? std::string_view{} : input.substr(newline + 1);
    const auto header = ingest::parseSupervisorHeader(line);
    const std::string event_name = header ? header->event_name : std::string(line);
    if (const auto request = ingest::supervisorRequest(event_name, payload)) {
        expect(request->unit.starts_with("supervisor:"),
               "a unit outside supervisor:", request->unit);
        expect(request->source == core::Source::Supervisor, "a request not from supervisor",
               request->unit);
        // The listener stamps the request with its own clocks, then the daemon must take it.
        auto stamped = *request;
        stamped.ts_usec = NOW_USEC;
        stamped.mono_usec = NOW_MONO;
        // What the listener sends: names it would refuse never reach the daemon.
        if (ingest::checkUnitName(stamped.unit).empty() &&
            ingest::checkNotSystemdUnit(stamped.unit).empty())
            mapRequest(stamped);
        // Encoding never throws, whatever the bytes of a name.
        (void)ingest::encodeRequest(stamped);
    }
}

Entry entryNamed(std::string_view name) {
    if (name == "rules") return rules;
    if (name == "time") return time;
    if (name == "emit") return emit;
    if (name == "supervisor") return supervisor;
    return nullptr;
}

}  // namespace cerberus::fuzz
