#include "ingest/unit_path.hpp"

#include <systemd/sd-bus.h>

#include <cstdlib>
#include <memory>

namespace cerberus::ingest {

namespace {
struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
};
using CString = std::unique_ptr<char, FreeDeleter>;
}  // namespace

std::string unitObjectPath(std::string_view unit) {
    char* out = nullptr;
    const std::string prefix(UNIT_PATH_PREFIX);
    const std::string name(unit);
    if (sd_bus_path_encode(prefix.c_str(), name.c_str(), &out) < 0 || !out) return {};
    CString owned(out);
    return std::string(owned.get());
}

std::optional<std::string> unitNameFromPath(std::string_view path) {
    char* out = nullptr;
    const std::string prefix(UNIT_PATH_PREFIX);
    const std::string p(path);
    // Returns 0 when the path is not below the prefix.
    if (sd_bus_path_decode(p.c_str(), prefix.c_str(), &out) <= 0 || !out) return std::nullopt;
    CString owned(out);
    return std::string(owned.get());
}

}  // namespace cerberus::ingest
