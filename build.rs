//! Builds the C++ shim (`src/index/faiss_info.cpp`: which SIMD level the
//! linked Faiss was compiled for; `src/index/faiss_view.cpp`: reading an
//! index as views into mapped bytes) and warns when Faiss is about to be
//! compiled generically.
//!
//! faiss-sys compiles Faiss from source with cmake, which takes its flags
//! from `CXXFLAGS` (or `CXXFLAGS_<target>`, `TARGET_CXXFLAGS`). Without a
//! `-march`/`-mavx2` there, Faiss's `#ifdef __AVX2__` distance code is
//! compiled out and HNSW builds run on scalar/SSE2 code. Our own Rust kernels
//! do not need any flag (they dispatch at run time), so this is the one
//! build setting a host should know about: the warning says how to set it.

use std::env;

fn main() {
    println!("cargo:rerun-if-changed=src/index/faiss_info.cpp");
    println!("cargo:rerun-if-changed=src/index/faiss_view.cpp");
    cc::Build::new()
        .cpp(true)
        .file("src/index/faiss_info.cpp")
        .file("src/index/faiss_view.cpp")
        .flag_if_supported("-std=c++17")
        .compile("emberdb_faiss_info");

    let target = env::var("TARGET").unwrap_or_default();
    let names = [
        "CXXFLAGS".to_string(),
        format!("CXXFLAGS_{target}"),
        format!("CXXFLAGS_{}", target.replace('-', "_")),
        "TARGET_CXXFLAGS".to_string(),
    ];
    for name in &names {
        println!("cargo:rerun-if-env-changed={name}");
    }
    let flags: String = names
        .iter()
        .filter_map(|n| env::var(n).ok())
        .collect::<Vec<_>>()
        .join(" ");
    let tuned = ["-march=", "-mavx2", "-mavx512", "-mcpu="]
        .iter()
        .any(|f| flags.contains(f));
    if target.starts_with("x86_64") && !tuned {
        println!(
            "cargo:warning=Faiss is compiled for generic x86-64 (no -march in CXXFLAGS): its HNSW and IVF \
             builds and scans run without AVX2. Add `[env] CXXFLAGS = \"-march=native\"` (or \
             \"-march=x86-64-v3\") to your .cargo/config.toml and run `cargo clean -p faiss-sys`; \
             see emberdb's README, \"Faiss flags\"."
        );
    }
}
