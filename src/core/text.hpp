#pragma once

// Counting words in messages people read: "1 rule", "3 rules", "1 crash", "2 crashes".

#include <cstdint>
#include <string>
#include <string_view>

namespace cerberus::core {

// "N noun" with the singular for exactly one; `many` defaults to the noun plus "s".
inline std::string plural(std::uint64_t n, std::string_view one, std::string_view many = {}) {
    std::string text = std::to_string(n) + ' ';
    if (n == 1) return text.append(one);
    if (!many.empty()) return text.append(many);
    return text.append(one).append("s");
}

}  // namespace cerberus::core
