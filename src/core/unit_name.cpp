#include "core/unit_name.hpp"

#include <fnmatch.h>

#include <array>

namespace cerberus::core {

bool hasUnitSuffix(std::string_view name) {
    static constexpr std::array<std::string_view, 11> SUFFIXES{
        ".service", ".socket", ".device", ".mount", ".automount", ".swap",
        ".target",  ".path",   ".timer",  ".slice", ".scope"};
    for (const auto suffix : SUFFIXES)
        if (name.size() > suffix.size() && name.ends_with(suffix)) return true;
    return false;
}

std::vector<std::string> unitGlobs(std::string_view pattern) {
    std::vector<std::string> globs{std::string(pattern)};
    if (!hasUnitSuffix(pattern) && !pattern.ends_with('*'))
        globs.push_back(std::string(pattern) + ".service");
    return globs;
}

bool unitMatches(std::string_view pattern, std::string_view unit) {
    const std::string name(unit);
    for (const auto& glob : unitGlobs(pattern))
        if (fnmatch(glob.c_str(), name.c_str(), 0) == 0) return true;
    return false;
}

}  // namespace cerberus::core
