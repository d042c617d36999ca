//! One target over every decoder: the first byte picks the decoder and
//! whether to restamp the checksums, the rest is the input.
#![no_main]

use emberdb::fuzz::{decode, fix_checksums, Decoder};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let decoder = Decoder::ALL[selector as usize % Decoder::ALL.len()];
    let mut bytes = rest.to_vec();
    if selector & 0x80 != 0 {
        fix_checksums(decoder, &mut bytes);
    }
    thread_local! {
        static DIR: tempfile::TempDir = tempfile::tempdir().expect("a temporary directory");
    }
    DIR.with(|dir| {
        let _ = decode(decoder, &bytes, dir.path());
    });
});
