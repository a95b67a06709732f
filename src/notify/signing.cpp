#include "notify/signing.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <stdexcept>
#include <string>

namespace cerberus::notify {

namespace {

constexpr std::string_view WHSEC_PREFIX = "whsec_";

}  // namespace

std::string base64Encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

std::optional<std::string> webhookKey(std::string_view secret) {
    if (secret.starts_with(WHSEC_PREFIX)) return base64Decode(secret.substr(WHSEC_PREFIX.size()));
    return std::string(secret);
}

std::string webhookSignature(std::string_view secret, std::string_view id, std::int64_t timestamp,
                             std::string_view body) {
    const auto key = webhookKey(secret);
    if (!key) throw std::invalid_argument("webhook secret: 'whsec_' value is not base64");

    std::string message;
    message.reserve(id.size() + body.size() + 24);
    message.append(id).append(".").append(std::to_string(timestamp)).append(".").append(body);

    // HMAC() wants a non-null key pointer even for an empty key.
    static const unsigned char EMPTY_KEY = 0;
    const auto* key_bytes =
        key->empty() ? &EMPTY_KEY : reinterpret_cast<const unsigned char*>(key->data());
    std::array<unsigned char, EVP_MAX_MD_SIZE> mac{};
    unsigned int mac_len = 0;
    const unsigned char* result = HMAC(EVP_sha256(), key_bytes, static_cast<int>(key->size()),
                                       reinterpret_cast<const unsigned char*>(message.data()),
                                       message.size(), mac.data(), &mac_len);
    if (result == nullptr) throw std::runtime_error("HMAC-SHA256 failed");
    return "v1," + base64Encode({reinterpret_cast<const char*>(mac.data()), mac_len});
}

}  // namespace cerberus::notify
