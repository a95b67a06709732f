#include "ingest/emit.hpp"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <tuple>
#include <utility>

#include "core/names.hpp"
#include "core/unit_name.hpp"

namespace cerberus::ingest {

namespace {

constexpr const char* SYSTEM_SOCKET = "/run/cerberus/emit.sock";

using core::Event;
using core::Transition;
using nlohmann::json;

constexpr core::EnumName<EmitEvent> EMIT_EVENT_NAMES[] = {{EmitEvent::Starting, "starting"},
                                                          {EmitEvent::Started, "started"},
                                                          {EmitEvent::Stopping, "stopping"},
                                                          {EmitEvent::Stopped, "stopped"},
                                                          {EmitEvent::GaveUp, "gave_up"}};

constexpr std::array<std::string_view, 8> REQUEST_KEYS{
    "unit", "event", "exit_status", "signal", "failed", "source", "ts_usec", "mono_usec"};

Transition make(const EmitRequest& request, Event event, std::string_view active_state) {
    Transition t;
    t.ts_usec = request.ts_usec;
    t.mono_usec = request.mono_usec;
    t.unit = request.unit;
    t.event = event;
    t.active_state = active_state;
    t.sub_state = toString(request.event);
    t.source = request.source;
    return t;
}

// The init brought the unit back after `last` ended it. Like systemd's restart row, it
// carries how that run ended.
Transition respawn(const EmitRequest& request, const Transition& last, core::Usec ts_usec,
                   core::Usec mono_usec) {
    Transition t = make(request, Event::Restart, "activating");
    t.ts_usec = ts_usec;
    t.mono_usec = mono_usec;
    t.sub_state = "auto-restart";
    t.result = last.result;
    t.exit_code = last.exit_code;
    t.exit_status = last.exit_status;
    return t;
}

Transition runEnd(const EmitRequest& request) {
    if (request.signal) {
        Transition t = make(request, Event::Crash, "failed");
        t.result = "signal";
        t.exit_code = "killed";
        t.exit_status = request.signal;
        return t;
    }
    const bool failed = request.failed || (request.exit_status && *request.exit_status != 0);
    Transition t =
        make(request, failed ? Event::Crash : Event::Stop, failed ? "failed" : "inactive");
    // A failure whose status the init does not say has no result either.
    t.result = failed ? (request.exit_status ? "exit-code" : "") : "success";
    if (request.exit_status) t.exit_code = "exited";
    t.exit_status = request.exit_status;
    return t;
}

bool endsRun(const std::optional<Transition>& t) {
    return t && (t->event == Event::Stop || t->event == Event::Crash);
}

// An integer field within [low, high]; `error_out` names the field when it is not one.
std::optional<std::int64_t> integerField(const json& object, const char* key, std::int64_t low,
                                         std::int64_t high, std::string& error_out) {
    const auto& value = object.at(key);
    if (!value.is_number_integer() || value.get<std::int64_t>() < low ||
        value.get<std::int64_t>() > high) {
        error_out = "field '" + std::string(key) + "' must be an integer from " +
                    std::to_string(low) + " to " + std::to_string(high);
        return std::nullopt;
    }
    return value.get<std::int64_t>();
}

}  // namespace

std::string_view toString(EmitEvent event) { return core::nameOf(EMIT_EVENT_NAMES, event); }

std::optional<EmitEvent> parseEmitEvent(std::string_view text) {
    return core::valueOf(EMIT_EVENT_NAMES, text);
}

std::string checkUnitName(std::string_view unit) {
    if (unit.empty()) return "the unit name is empty";
    if (unit.size() > UNIT_NAME_MAX)
        return "the unit name is longer than " + std::to_string(UNIT_NAME_MAX) + " bytes";
    for (const unsigned char c : unit)
        if (c <= ' ' || c >= 0x7f)
            return "the unit name may hold only printable ASCII characters without spaces";
    return {};
}

std::string checkNotSystemdUnit(std::string_view unit) {
    if (!core::hasUnitSuffix(unit)) return {};
    return "the name ends in '" + std::string(unit.substr(unit.rfind('.'))) +
           "' like a systemd unit, and cerberus hears systemd's units from systemd "
           "itself; report the job under a name without a systemd unit suffix";
}

std::optional<int> parseSignal(std::string_view text) {
    if (text.empty()) return std::nullopt;
    if (std::isdigit(static_cast<unsigned char>(text.front()))) {
        const std::string digits(text);
        char* end = nullptr;
        const long number = std::strtol(digits.c_str(), &end, 10);
        if (*end != '\0' || number < 1 || number > SIGRTMAX) return std::nullopt;
        return static_cast<int>(number);
    }
    if (text.substr(0, 3) == "SIG") text.remove_prefix(3);
    for (int number = 1; number < NSIG; ++number)
        if (const char* name = sigabbrev_np(number); name && text == name) return number;
    return std::nullopt;
}

std::string encodeRequest(const EmitRequest& request) {
    json out = {{"unit", request.unit},
                {"event", toString(request.event)},
                {"ts_usec", request.ts_usec},
                {"mono_usec", request.mono_usec}};
    if (request.exit_status) out["exit_status"] = *request.exit_status;
    if (request.signal) out["signal"] = *request.signal;
    if (request.failed) out["failed"] = true;
    if (request.source != core::Source::Emit) out["source"] = core::toString(request.source);
    // Names are checked before they are sent (checkUnitName); should one slip through with
    // bytes that are not UTF-8, the daemon refuses the request rather than the client dying.
    return out.dump(-1, ' ', false, json::error_handler_t::replace);
}

ParsedRequest parseRequest(std::string_view line, core::Usec now_usec, core::Usec now_mono) {
    ParsedRequest parsed;
    const json object = json::parse(line, nullptr, false);
    if (object.is_discarded() || !object.is_object()) {
        parsed.error = "the request is not a JSON object on one line";
        return parsed;
    }
    for (const auto& [key, value] : object.items()) {
        if (std::find(REQUEST_KEYS.begin(), REQUEST_KEYS.end(), key) == REQUEST_KEYS.end()) {
            parsed.error = "unknown field '" + key + "'";
            return parsed;
        }
    }
    EmitRequest request;
    if (!object.contains("unit") || !object["unit"].is_string()) {
        parsed.error = "field 'unit' must be a string";
        return parsed;
    }
    request.unit = object["unit"].get<std::string>();
    if (auto why = checkUnitName(request.unit); !why.empty()) {
        parsed.error = "field 'unit': " + why;
        return parsed;
    }
    const auto event = object.contains("event") && object["event"].is_string()
                           ? parseEmitEvent(object["event"].get<std::string>())
                           : std::nullopt;
    if (!event) {
        parsed.error = "field 'event' must be one of starting, started, stopping, stopped, gave_up";
        return parsed;
    }
    request.event = *event;
    const bool ends = request.event == EmitEvent::Stopping || request.event == EmitEvent::Stopped;
    for (const char* key : {"exit_status", "signal"}) {
        if (!object.contains(key)) continue;
        if (!ends) {
            parsed.error = "field '" + std::string(key) + "' applies to stopping and stopped only";
            return parsed;
        }
        const bool status = std::strcmp(key, "exit_status") == 0;
        const auto value =
            integerField(object, key, status ? 0 : 1, status ? 255 : SIGRTMAX, parsed.error);
        if (!value) return parsed;
        (status ? request.exit_status : request.signal) = static_cast<int>(*value);
    }
    if (object.contains("failed")) {
        if (!ends || !object["failed"].is_boolean()) {
            parsed.error = "field 'failed' must be true or false, with stopping and stopped only";
            return parsed;
        }
        request.failed = object["failed"].get<bool>();
    }
    if (object.contains("source")) {
        const auto source = object["source"].is_string()
                                ? core::parseSource(object["source"].get<std::string>())
                                : std::nullopt;
        if (source != core::Source::Emit && source != core::Source::Supervisor) {
            parsed.error = "field 'source' must be emit or supervisor";
            return parsed;
        }
        request.source = *source;
    }
    request.ts_usec = now_usec;
    request.mono_usec = now_mono;
    // The client stamps the event just before sending it. A time far from the daemon's own
    // is a broken client, and would push windows and deadlines out of range.
    for (auto [key, field, now] : {std::tuple{"ts_usec", &request.ts_usec, now_usec},
                                   std::tuple{"mono_usec", &request.mono_usec, now_mono}}) {
        if (!object.contains(key)) continue;
        const auto value =
            integerField(object, key, std::max<std::int64_t>(0, now - EMIT_CLOCK_PAST_USEC),
                         now + EMIT_CLOCK_AHEAD_USEC, parsed.error);
        if (!value) {
            // Bounds in microseconds say less than what they stand for.
            parsed.error = "field '" + std::string(key) +
                           "' must be an integer within a day before and a minute after the "
                           "daemon's clock; send the time of the event or leave the field out";
            return parsed;
        }
        *field = *value;
    }
    parsed.request = std::move(request);
    return parsed;
}

std::string encodeReply(const Reply& reply) {
    if (reply.ok) return json{{"ok", true}, {"stored", reply.stored}}.dump();
    json out = {{"ok", false}, {"error", reply.error}};
    if (reply.stopping) out["stopping"] = true;
    return out.dump();
}

std::optional<Reply> parseReply(std::string_view line) {
    const json object = json::parse(line, nullptr, false);
    if (object.is_discarded() || !object.is_object() || !object.contains("ok") ||
        !object["ok"].is_boolean())
        return std::nullopt;
    Reply reply;
    reply.ok = object["ok"].get<bool>();
    if (reply.ok && object.contains("stored") && object["stored"].is_number_unsigned())
        reply.stored = object["stored"].get<std::size_t>();
    if (!reply.ok) {
        if (!object.contains("error") || !object["error"].is_string()) return std::nullopt;
        reply.error = object["error"].get<std::string>();
        reply.stopping = object.contains("stopping") && object["stopping"] == true;
    }
    return reply;
}

std::vector<Transition> mapEmit(const EmitRequest& request, const std::optional<Transition>& last) {
    std::vector<Transition> out;
    switch (request.event) {
    case EmitEvent::Starting: break;
    case EmitEvent::Started:
        if (last && last->event == Event::Crash)
            out.push_back(respawn(request, *last, request.ts_usec, request.mono_usec));
        out.push_back(make(request, Event::Start, "active"));
        break;
    case EmitEvent::Stopping:
    case EmitEvent::Stopped:
        if (endsRun(last)) {
            if (request.event == EmitEvent::Stopped &&
                last->sub_state == toString(EmitEvent::Stopping))
                break;
            out.push_back(respawn(request, *last, last->ts_usec, last->mono_usec));
        }
        out.push_back(runEnd(request));
        break;
    case EmitEvent::GaveUp: out.push_back(make(request, Event::GiveUp, "failed")); break;
    }
    return out;
}

std::string defaultSocketPath() {
    if (geteuid() == 0) return SYSTEM_SOCKET;
    const char* runtime = std::getenv("XDG_RUNTIME_DIR");
    if (runtime == nullptr || *runtime == '\0') return {};
    return std::string(runtime) + "/cerberus/emit.sock";
}

std::string clientSocketPath() {
    std::string own = defaultSocketPath();
    if (own == SYSTEM_SOCKET) return own;
    // The user's own daemon creates its socket's directory and leaves it: once it has run,
    // its socket is the target, also while it restarts.
    const std::string own_dir = own.empty() ? std::string() : own.substr(0, own.rfind('/'));
    if (!own.empty() && access(own_dir.c_str(), F_OK) == 0) return own;
    if (access(SYSTEM_SOCKET, F_OK) == 0) return SYSTEM_SOCKET;
    return own;
}

namespace {

// "key:value key:value ..." -> the value of `key`, or nullopt.
std::optional<std::string_view> token(std::string_view tokens, std::string_view key) {
    while (!tokens.empty()) {
        const auto space = tokens.find(' ');
        const auto word = tokens.substr(0, space);
        if (word.size() > key.size() && word.substr(0, key.size()) == key &&
            word[key.size()] == ':')
            return word.substr(key.size() + 1);
        if (space == std::string_view::npos) break;
        tokens.remove_prefix(space + 1);
    }
    return std::nullopt;
}

}  // namespace

std::optional<SupervisorHeader> parseSupervisorHeader(std::string_view line) {
    const auto name = token(line, "eventname");
    const auto length = token(line, "len");
    if (!name || !length || length->empty() || length->size() > 9) return std::nullopt;
    SupervisorHeader header;
    header.event_name = std::string(*name);
    for (const char c : *length) {
        if (c < '0' || c > '9') return std::nullopt;
        header.length = header.length * 10 + static_cast<std::size_t>(c - '0');
    }
    return header;
}

std::optional<EmitRequest> supervisorRequest(std::string_view event_name,
                                             std::string_view payload) {
    constexpr std::string_view PREFIX = "PROCESS_STATE_";
    if (event_name.substr(0, PREFIX.size()) != PREFIX) return std::nullopt;
    const std::string_view state = event_name.substr(PREFIX.size());
    payload = payload.substr(0, payload.find('\n'));
    const auto process = token(payload, "processname");
    if (!process) return std::nullopt;
    const auto group = token(payload, "groupname").value_or(*process);
    EmitRequest request;
    request.source = core::Source::Supervisor;
    request.unit =
        "supervisor:" + (group == *process ? std::string(*process)
                                           : std::string(group) + ":" + std::string(*process));
    if (state == "STARTING") {
        request.event = EmitEvent::Starting;
    } else if (state == "RUNNING") {
        request.event = EmitEvent::Started;
    } else if (state == "EXITED") {
        request.event = EmitEvent::Stopped;
        request.failed = token(payload, "expected") != "1";
    } else if (state == "BACKOFF") {
        request.event = EmitEvent::Stopped;
        request.failed = true;
    } else if (state == "STOPPED") {
        request.event = EmitEvent::Stopped;
    } else if (state == "FATAL") {
        request.event = EmitEvent::GaveUp;
    } else {
        return std::nullopt;  // STOPPING, UNKNOWN: the state that follows says what happened
    }
    return request;
}

}  // namespace cerberus::ingest
