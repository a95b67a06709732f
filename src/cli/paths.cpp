#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "cli/commands.hpp"
#include "core/error.hpp"

namespace cerberus::cli {

std::string defaultDbPath() {
    if (const char* dir = std::getenv("STATE_DIRECTORY"); dir && *dir) {
        std::string first(dir);
        // systemd passes a colon-separated list when several directories are configured.
        first = first.substr(0, first.find(':'));
        return first + "/cerberus.db";
    }
    if (geteuid() == 0) return "/var/lib/cerberus/cerberus.db";
    if (const char* xdg = std::getenv("XDG_STATE_HOME"); xdg && *xdg)
        return std::string(xdg) + "/cerberus/cerberus.db";
    const char* home = std::getenv("HOME");
    return std::string(home && *home ? home : ".") + "/.local/state/cerberus/cerberus.db";
}

void addDbOption(CLI::App* cmd, std::string& db) {
    db = defaultDbPath();
    cmd->add_option("--db", db, "The history database")->type_name("FILE")->capture_default_str();
}

void finishOutput(const std::string& what) {
    if (std::fflush(stdout) != 0)
        throw core::Error(core::ExitCode::Failure, "cannot write " + what + " to standard output");
}

namespace {

// A rules directory counts once it holds a rule file: a package creates /etc/cerberus/rules
// empty, and an empty set of rules would alert on nothing.
bool holdsRules(const char* path) {
    std::error_code ec;
    if (!std::filesystem::is_directory(path, ec)) return std::filesystem::exists(path, ec);
    for (std::filesystem::directory_iterator it(path, ec), end; !ec && it != end;
         it.increment(ec)) {
        const std::string name = it->path().filename().string();
        if (name.front() != '.' && it->path().extension() == ".json") return true;
    }
    return false;
}

}  // namespace

// /etc/cerberus/rules when it holds rules, else the default.json installed under the
// prefix's datadir (CERBERUS_INSTALLED_RULES, from meson), else the source tree's for an
// uninstalled build.
std::vector<std::string> rulesPaths(const std::vector<std::string>& given) {
    if (!given.empty()) return given;
    for (const char* candidate :
         {"/etc/cerberus/rules", CERBERUS_INSTALLED_RULES, CERBERUS_SOURCE_RULES}) {
        if (holdsRules(candidate)) return {candidate};
    }
    return {CERBERUS_INSTALLED_RULES};
}

CLI::Option* addRulesOption(CLI::App* cmd, std::vector<std::string>& rules) {
    return cmd->add_option("--rules", rules,
                           "Rule file or directory of *.json files; repeatable (default: "
                           "/etc/cerberus/rules, else the shipped rules/default.json)");
}

}  // namespace cerberus::cli
