// What the linked Faiss was compiled for, as a C function emberdb can call:
// Faiss answers with a std::string from C++ only (faiss/utils/utils.h), which
// the C API does not wrap. Declared here rather than included, so this file
// needs no Faiss headers; the declaration is Faiss's own (same name, same
// namespace, same return type, so the same mangled symbol).
#include <cstddef>
#include <cstring>
#include <string>

namespace faiss {
std::string get_compile_options();
}

// Copies up to `cap` bytes of Faiss's compile options ("OPTIMIZE AVX2 ",
// "OPTIMIZE GENERIC ", ...) into `buf` and returns their full length, or
// returns 0 if Faiss threw. No exception crosses into Rust.
extern "C" std::size_t emberdb_faiss_compile_options(char* buf, std::size_t cap) {
    try {
        std::string options = faiss::get_compile_options();
        std::size_t n = options.size() < cap ? options.size() : cap;
        std::memcpy(buf, options.data(), n);
        return options.size();
    } catch (...) {
        return 0;
    }
}
