#include <fmt/core.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/commands.hpp"
#include "core/error.hpp"

namespace cerberus::cli {

std::optional<core::Usec> timeOption(std::string_view flag, const std::optional<std::string>& text,
                                     core::Usec now_usec) {
    if (!text) return std::nullopt;
    if (auto usec = core::parseTimeArg(*text, now_usec)) return usec;
    throw core::Error(core::ExitCode::Usage, fmt::format("{} '{}' is not a time; write {}", flag,
                                                         *text, core::TIME_EXAMPLES));
}

TimeRange timeRange(const std::optional<std::string>& since,
                    const std::optional<std::string>& until, core::Usec now_usec) {
    TimeRange range{timeOption("--since", since, now_usec), timeOption("--until", until, now_usec)};
    if (range.since_usec && range.until_usec && *range.since_usec > *range.until_usec)
        throw core::Error(
            core::ExitCode::Usage,
            fmt::format("--since '{}' is later than --until '{}'; swap them", *since, *until));
    return range;
}

core::Usec durationOption(std::string_view flag, const std::string& text) {
    const auto usec = core::parseDuration(text);
    if (!usec || *usec <= 0)
        throw core::Error(core::ExitCode::Usage,
                          fmt::format("{} '{}' is not a non-zero duration; write {}", flag, text,
                                      core::DURATION_EXAMPLES));
    return *usec;
}

void addTimeRangeOptions(CLI::App* cmd, std::optional<std::string>& since,
                         std::optional<std::string>& until, const std::string& since_help,
                         const std::string& until_help) {
    cmd->add_option("-S,--since", since, since_help)->type_name("T");
    cmd->add_option("-U,--until", until, until_help)->type_name("T");
}

void addUnitOption(CLI::App* cmd, std::vector<std::string>& units, const std::string& help) {
    cmd->add_option("-u,--unit", units, help)->type_name("GLOB");
}

void addUtcFlag(CLI::App* cmd, bool& utc) {
    cmd->add_flag("--utc", utc, "Print times in UTC instead of the local time zone (TZ)");
}

std::vector<std::size_t> columnWidths(const Table& rows) {
    std::vector<std::size_t> width;
    for (const auto& row : rows) {
        width.resize(std::max(width.size(), row.size()));
        for (std::size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
    }
    return width;
}

std::string formatTable(const Table& rows, const std::vector<std::size_t>& width) {
    std::string out;
    for (const auto& row : rows) {
        for (std::size_t i = 0; i + 1 < row.size(); ++i)
            out += fmt::format("{:<{}}  ", row[i], i < width.size() ? width[i] : 0);
        if (!row.empty()) out += row.back();
        out += '\n';
    }
    return out;
}

std::string jsonText(const nlohmann::ordered_json& value, int indent) {
    // Unit names from other inits are not guaranteed UTF-8; replace rather than fail.
    return value.dump(indent, ' ', false, nlohmann::ordered_json::error_handler_t::replace);
}

void writeOut(const std::string& text) { std::fwrite(text.data(), 1, text.size(), stdout); }

}  // namespace cerberus::cli

namespace cerberus::cli {

namespace {

struct GlobalOption {
    std::string_view name;
    bool takes_value;
};
constexpr GlobalOption GLOBAL_OPTIONS[] = {
    {"--db", true}, {"--rules", true}, {"--utc", false}, {"--json", false}};

const GlobalOption* globalOption(const std::string& arg, bool& value_attached) {
    for (const auto& option : GLOBAL_OPTIONS) {
        value_attached = option.takes_value && arg.size() > option.name.size() &&
                         arg.starts_with(option.name) && arg[option.name.size()] == '=';
        if (arg == option.name || value_attached) return &option;
    }
    return nullptr;
}

const CLI::App* subcommandOf(const CLI::App& app, const std::string& name) {
    try {
        return app.get_subcommand(name);
    } catch (const CLI::OptionNotFound&) {
        return nullptr;
    }
}

}  // namespace

std::vector<std::string> hoistGlobalOptions(const CLI::App& app, std::vector<std::string> args) {
    std::vector<std::string> hoisted;
    std::size_t i = 1;
    while (i < args.size()) {
        bool value_attached = false;
        const GlobalOption* option = globalOption(args[i], value_attached);
        if (!option) break;
        hoisted.push_back(args[i++]);
        if (option->takes_value && !value_attached && i < args.size()) hoisted.push_back(args[i++]);
    }
    if (hoisted.empty() || i >= args.size()) return args;
    const CLI::App* cmd = subcommandOf(app, args[i]);
    if (!cmd) return args;
    std::size_t end = i + 1;
    while (end < args.size() &&
           !cmd->get_subcommands([](const CLI::App*) { return true; }).empty()) {
        const CLI::App* action = subcommandOf(*cmd, args[end]);
        if (!action) break;
        cmd = action;
        ++end;
    }
    std::vector<std::string> out(args.begin(), args.begin() + 1);
    out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(i),
               args.begin() + static_cast<std::ptrdiff_t>(end));
    out.insert(out.end(), hoisted.begin(), hoisted.end());
    out.insert(out.end(), args.begin() + static_cast<std::ptrdiff_t>(end), args.end());
    return out;
}

}  // namespace cerberus::cli
