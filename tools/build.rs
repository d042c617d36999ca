//! Builds the crash-point shim (`src/crash/kill_at.c`) as a shared
//! object that `ember crash-points` preloads into its children.

fn main() {
    let src = "src/crash/kill_at.c";
    println!("cargo:rerun-if-changed={src}");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("kill_at.so");
    let compiler = cc::Build::new().get_compiler();
    let status = compiler
        .to_command()
        .args(["-O2", "-shared", "-fPIC", "-Wall", "-o"])
        .arg(&out)
        .arg(src)
        .arg("-ldl")
        .status()
        .expect("the C compiler runs");
    assert!(status.success(), "building {src} failed");
}
