// libFuzzer entry point: see entries.hpp.
#include <cstddef>
#include <cstdint>

#include "entries.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    cerberus::fuzz::emit({data, size});
    return 0;
}
