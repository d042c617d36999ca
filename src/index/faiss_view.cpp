// Reads a serialised Faiss index whose large arrays (inverted lists, flat
// storage, HNSW links) stay where they are: views into the caller's bytes,
// which emberdb maps from the index file. The C API only reads through a
// FILE*, which copies every array onto the heap.
//
// Faiss makes views when the reader is a faiss::ZeroCopyIOReader
// (faiss/impl/zerocopy_io.h; index_read.cpp tests for it with dynamic_cast
// and builds MaybeOwnedVector views). As in faiss_info.cpp, the two
// declarations below are Faiss 1.12's own, copied from its headers
// (faiss/impl/io.h and faiss/impl/zerocopy_io.h, the version faiss-sys 0.7
// builds) rather than included, because faiss-sys does not export its
// include directory. Same members in the same order, same virtual
// functions: the object is built by Faiss's own constructor (so its vtable
// and typeinfo are Faiss's), and the layout only has to agree for the
// members this file touches. `index/tests.rs` checks that a viewed index
// answers exactly as a copied one.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <exception>
#include <string>

namespace faiss {

struct Index;

struct IOReader {
    std::string name;
    virtual size_t operator()(void* ptr, size_t size, size_t nitems) = 0;
    virtual int filedescriptor();
    virtual ~IOReader() {}
};

struct ZeroCopyIOReader : public IOReader {
    const uint8_t* data_;
    size_t rp_ = 0;
    size_t total_ = 0;

    ZeroCopyIOReader(const uint8_t* data, size_t size);
    ~ZeroCopyIOReader();

    void reset();
    size_t get_data_view(void** ptr, size_t size, size_t nitems);
    size_t operator()(void* ptr, size_t size, size_t nitems) override;

    int filedescriptor() override;
};

Index* read_index(IOReader* reader, int io_flags);

} // namespace faiss

namespace {

void copy_message(const char* message, char* err, std::size_t cap) {
    if (cap == 0) {
        return;
    }
    std::size_t n = std::strlen(message);
    if (n >= cap) {
        n = cap - 1;
    }
    std::memcpy(err, message, n);
    err[n] = '\0';
}

// Runs `work`, turning any C++ exception into 1 and its message in `err`
// (NUL-terminated, at most `cap` bytes); 0 when it returned.
template <typename Work>
int guarded(char* err, std::size_t cap, Work work) {
    try {
        work();
        return 0;
    } catch (const std::exception& e) {
        copy_message(e.what(), err, cap);
        return 1;
    } catch (...) {
        copy_message("unknown C++ exception", err, cap);
        return 1;
    }
}

} // namespace

// Reads the index serialised in `data[0..len)` with its arrays as views into
// those bytes, which must stay valid and unchanged for the index's whole
// life. On success stores the index (a faiss::Index*, which is what the C
// API's FaissIndex* is) in `*out` and returns 0; on failure returns 1 and
// writes Faiss's message (NUL-terminated, at most `cap` bytes) into `err`.
// No exception crosses into Rust.
extern "C" int emberdb_faiss_read_index_view(
        const std::uint8_t* data,
        std::size_t len,
        void** out,
        char* err,
        std::size_t cap) {
    *out = nullptr;
    return guarded(err, cap, [&] {
        faiss::ZeroCopyIOReader reader(data, len);
        *out = faiss::read_index(&reader, 0);
    });
}

// ---------------------------------------------------------------------------
// Searching an IVF index with coarse assignments computed once for several
// indexes built on the same centroids (one per segment of a space).
//
// faiss::IndexIVF::search_preassigned takes per-call parameters (nprobe and
// an id selector); the C API's wrapper passes none. The member is reached
// through its own symbol (Itanium C++ ABI: `this` is the first argument),
// which calls IndexIVF's implementation directly rather than through the
// vtable. That is the implementation IndexIVFFlat uses (only
// IndexIVFFlatDedup overrides it; emberdb builds `IVF{n},Flat` only, and
// the Rust side checks the index is an IndexIVFFlat first). `index/tests.rs`
// checks that results equal Faiss's own search.
namespace faiss {
struct IndexIVF;
struct SearchParametersIVF;
struct IndexIVFStats;
} // namespace faiss

extern void emberdb_faiss_ivf_search_preassigned_member(
        const faiss::IndexIVF* self,
        std::int64_t n,
        const float* x,
        std::int64_t k,
        const std::int64_t* assign,
        const float* centroid_dis,
        float* distances,
        std::int64_t* labels,
        bool store_pairs,
        const faiss::SearchParametersIVF* params,
        faiss::IndexIVFStats* stats)
        __asm__("_ZNK5faiss8IndexIVF18search_preassignedElPKflPKlS2_PfPlbPKNS_19SearchParametersIVFEPNS_13IndexIVFStatsE");

// Searches `ivf` (a faiss::IndexIVF*, as the C API's FaissIndexIVF*, of an
// IndexIVFFlat: the same address) for
// `n` queries given their `nprobe` coarse lists and distances each (as
// `params->nprobe` says), with `params` (a faiss::SearchParametersIVF*, as
// the C API's FaissSearchParametersIVF*, giving nprobe and the selector).
// Returns 0, or 1 with Faiss's message in `err`.
extern "C" int emberdb_faiss_ivf_search_preassigned(
        const void* ivf,
        std::int64_t n,
        const float* x,
        std::int64_t k,
        const std::int64_t* assign,
        const float* centroid_dis,
        const void* params,
        float* distances,
        std::int64_t* labels,
        char* err,
        std::size_t cap) {
    return guarded(err, cap, [&] {
        emberdb_faiss_ivf_search_preassigned_member(
                static_cast<const faiss::IndexIVF*>(ivf),
                n,
                x,
                k,
                assign,
                centroid_dis,
                distances,
                labels,
                false,
                static_cast<const faiss::SearchParametersIVF*>(params),
                nullptr);
    });
}
