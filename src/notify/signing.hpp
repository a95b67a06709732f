#pragma once

// Standard Webhooks v1 signatures (REFERENCE.md): HMAC-SHA256 of "{id}.{timestamp}.{body}".

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/base64.hpp"

namespace cerberus::notify {

std::string base64Encode(std::string_view bytes);
using core::base64Decode;

// The HMAC key a secret stands for: a `whsec_` secret is base64 of the key, any other
// secret is the key itself. nullopt for a `whsec_` secret that is not base64.
std::optional<std::string> webhookKey(std::string_view secret);

// "v1,<base64 HMAC-SHA256>". Throws std::invalid_argument for a malformed `whsec_`
// secret: rule loading rejects those, so reaching here with one is a bug.
std::string webhookSignature(std::string_view secret, std::string_view id, std::int64_t timestamp,
                             std::string_view body);

}  // namespace cerberus::notify
