#pragma once

// Unit names as operators type them: `journalctl -u payments` and `systemctl status payments`
// both mean payments.service, while a job reported with `cerberus emit` (supervisord, runit)
// is named with no suffix at all. One rule for both, used by rules and by every -u filter.

#include <string>
#include <string_view>
#include <vector>

namespace cerberus::core {

// True when `name` ends in one of systemd.unit(5)'s unit types (".service", ".timer", ...)
// after at least one character.
bool hasUnitSuffix(std::string_view name);

// The fnmatch(3) globs a unit pattern stands for: the pattern itself, and when it names no
// unit type, also the pattern with ".service" appended, so "payments" and "pay*" match
// payments.service as well as an emitted "payments". "*.timer" stays as written.
std::vector<std::string> unitGlobs(std::string_view pattern);

// Whether `unit` matches `pattern` read by unitGlobs().
bool unitMatches(std::string_view pattern, std::string_view unit);

}  // namespace cerberus::core
