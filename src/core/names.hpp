#pragma once

// Enum <-> text: one array of {enumerator, name} pairs per enum, looked up both ways. Each
// name stands next to its enumerator, so reordering an enum renames nothing.

#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace cerberus::core {

template <typename E>
using EnumName = std::pair<E, std::string_view>;

template <typename E, std::size_t N>
std::string_view nameOf(const EnumName<E> (&names)[N], E value) {
    for (const auto& [v, name] : names)
        if (v == value) return name;
    return "?";
}

template <typename E, std::size_t N>
std::optional<E> valueOf(const EnumName<E> (&names)[N], std::string_view text) {
    for (const auto& [v, name] : names)
        if (name == text) return v;
    return std::nullopt;
}

}  // namespace cerberus::core
