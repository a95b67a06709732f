#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace cerberus::ingest {

inline constexpr std::string_view UNIT_PATH_PREFIX = "/org/freedesktop/systemd1/unit";

// "a-b.service" -> "/org/freedesktop/systemd1/unit/a_2db_2eservice" (sd_bus_path_encode).
std::string unitObjectPath(std::string_view unit);
// The inverse; nullopt for a path outside the unit namespace.
std::optional<std::string> unitNameFromPath(std::string_view path);

}  // namespace cerberus::ingest
