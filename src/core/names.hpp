#pragma once

// Enum <-> text tables: one array of pairs per enum, looked up both ways.

#include <array>
#include <cstddef>
#include <optional>
#include <string_view>
#include <utility>

namespace cerberus::core {

template <typename E, std::size_t N>
using NameTable = std::array<std::pair<E, std::string_view>, N>;

template <typename E, std::size_t N>
std::string_view nameOf(const NameTable<E, N>& names, E value) {
    for (const auto& [v, name] : names)
        if (v == value) return name;
    return "?";
}

template <typename E, std::size_t N>
std::optional<E> valueOf(const NameTable<E, N>& names, std::string_view text) {
    for (const auto& [v, name] : names)
        if (name == text) return v;
    return std::nullopt;
}

}  // namespace cerberus::core
