#include "ingest/unit_path.hpp"

#include <systemd/sd-bus.h>

#include <cstdlib>
#include <memory>
#include <system_error>

namespace cerberus::ingest {

namespace {

struct FreeDeleter {
    void operator()(char* p) const { std::free(p); }
};
// sd_bus_path_encode/decode hand back malloc()ed strings.
using CString = std::unique_ptr<char, FreeDeleter>;

}  // namespace

std::string unitObjectPath(std::string_view unit) {
    const std::string prefix(UNIT_PATH_PREFIX);
    const std::string name(unit);
    char* raw = nullptr;
    const int r = sd_bus_path_encode(prefix.c_str(), name.c_str(), &raw);
    CString out(raw);
    // Only -ENOMEM is possible with our constant prefix; never answer with a wrong path.
    if (r < 0) throw std::system_error(-r, std::generic_category(), "sd_bus_path_encode");
    return std::string(out.get());
}

std::optional<std::string> unitNameFromPath(std::string_view path) {
    const std::string prefix(UNIT_PATH_PREFIX);
    const std::string p(path);
    char* raw = nullptr;
    // 0 (and a null result) when the path is not below the prefix.
    const int r = sd_bus_path_decode(p.c_str(), prefix.c_str(), &raw);
    CString out(raw);
    if (r <= 0 || !out) return std::nullopt;
    std::string name(out.get());
    // The prefix itself and deeper paths name no unit.
    if (name.empty() || name.find('/') != std::string::npos) return std::nullopt;
    return name;
}

}  // namespace cerberus::ingest
