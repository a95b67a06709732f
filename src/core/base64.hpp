#pragma once

// Base64 as Standard Webhooks secrets use it. Decoding is pure, so that the rule parser can
// refuse a malformed `whsec_` secret written in a rule file, as the sender would.

#include <optional>
#include <string>
#include <string_view>

namespace cerberus::core {

// Strict: the standard alphabet, padding optional; nullopt on anything else.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace cerberus::core
