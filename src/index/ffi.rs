//! The raw Faiss calls the `faiss` crate does not wrap: search through a
//! shared reference with per-call parameters and an id selector, and
//! (de)serialisation to memory. All of emberdb's FFI lives in this file.

use std::ffi::CStr;
use std::ptr;

use faiss::index::{FromInnerPtr, IndexImpl};
use faiss_sys as sys;

/// The message of the last Faiss error on this thread.
fn last_error(call: &str, code: i32) -> String {
    // SAFETY: `faiss_get_last_error` returns a thread-local C string (or
    // null) that stays valid until the next Faiss call on this thread; we
    // copy it out at once.
    let message = unsafe {
        let p = sys::faiss_get_last_error();
        if p.is_null() {
            String::new()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    format!("{call} failed ({code}): {message}")
}

fn check(call: &str, code: i32) -> Result<(), String> {
    if code == 0 {
        Ok(())
    } else {
        Err(last_error(call, code))
    }
}

/// Search parameters for one call, freed on drop.
struct Params {
    params: *mut sys::FaissSearchParameters,
    not: *mut sys::FaissIDSelectorNot,
    bitmap: *mut sys::FaissIDSelectorBitmap,
}

impl Drop for Params {
    fn drop(&mut self) {
        // SAFETY: each pointer is null or was returned by its `_new` call
        // below and is freed exactly once here. `SearchParameters` does not
        // own its selector and `IDSelectorNot` does not own its operand, so
        // all three are freed, parameters first.
        unsafe {
            if !self.params.is_null() {
                sys::faiss_SearchParameters_free(self.params);
            }
            if !self.not.is_null() {
                sys::faiss_IDSelector_free(self.not as *mut sys::FaissIDSelector);
            }
            if !self.bitmap.is_null() {
                sys::faiss_IDSelector_free(self.bitmap as *mut sys::FaissIDSelector);
            }
        }
    }
}

/// Searches `index` for one query through a shared reference, with the
/// parameters stored on the index and no id selector: the cheapest call.
pub(crate) fn search_plain(index: &IndexImpl, query: &[f32], k: usize) -> Result<Vec<(i64, f32)>, String> {
    let mut distances = vec![0f32; k];
    let mut labels = vec![-1i64; k];
    // SAFETY: as in `search` below: `query` holds `d` floats (checked by
    // the caller), the output buffers hold `k` entries, and the index is
    // only read, which Faiss allows from many threads at once.
    let code = unsafe {
        sys::faiss_Index_search(
            index.inner_ptr(),
            1,
            query.as_ptr(),
            k as sys::idx_t,
            distances.as_mut_ptr(),
            labels.as_mut_ptr() as *mut sys::idx_t,
        )
    };
    check("faiss_Index_search", code)?;
    Ok(labels.into_iter().zip(distances).collect())
}

/// Searches `index` for one query through a shared reference.
///
/// `dead` is a bitmap of rows to skip (bit `r % 8` of byte `r / 8`), or
/// empty; `nprobe` is set for IVF indexes. Returns `(label, distance)` pairs;
/// Faiss pads with label -1 when it finds fewer than `k`.
pub(crate) fn search(
    index: &IndexImpl,
    query: &[f32],
    k: usize,
    nprobe: Option<usize>,
    dead: &[u8],
) -> Result<Vec<(i64, f32)>, String> {
    let mut p = Params {
        params: ptr::null_mut(),
        not: ptr::null_mut(),
        bitmap: ptr::null_mut(),
    };
    let mut selector: *mut sys::FaissIDSelector = ptr::null_mut();
    if !dead.is_empty() {
        // SAFETY: the out-pointer is a valid local; Faiss copies nothing and
        // only borrows `dead`, which outlives the selector (`p` is dropped
        // before this function returns).
        let code = unsafe { sys::faiss_IDSelectorBitmap_new(&mut p.bitmap, dead.len(), dead.as_ptr()) };
        check("faiss_IDSelectorBitmap_new", code)?;
        // SAFETY: the out-pointer is a valid local and `p.bitmap` a live
        // selector that outlives the new one (both freed by `p`'s drop, this
        // one first).
        let code = unsafe { sys::faiss_IDSelectorNot_new(&mut p.not, p.bitmap as *const sys::FaissIDSelector) };
        check("faiss_IDSelectorNot_new", code)?;
        selector = p.not as *mut sys::FaissIDSelector;
    }
    match nprobe {
        Some(nprobe) => {
            // SAFETY: the out-pointer is a valid local; `selector` is null or
            // live for as long as the parameters (both freed by `p`).
            let code = unsafe { sys::faiss_SearchParametersIVF_new_with(&mut p.params, selector, nprobe, 0) };
            check("faiss_SearchParametersIVF_new_with", code)?
        }
        None => {
            // SAFETY: as above.
            let code = unsafe { sys::faiss_SearchParameters_new(&mut p.params, selector) };
            check("faiss_SearchParameters_new", code)?
        }
    }
    let mut distances = vec![0f32; k];
    let mut labels = vec![-1i64; k];
    // SAFETY: `query` holds `d` floats (checked by the caller) and the output
    // buffers hold `k` entries each; `p.params` is live. The index is only
    // read: Faiss's CPU `Index::search` is `const` and safe to call from many
    // threads at once (nothing here mutates the index; efSearch changes go
    // through the owner's write lock), and `faiss_get_last_error` is
    // thread-local.
    let code = unsafe {
        sys::faiss_Index_search_with_params(
            index.inner_ptr(),
            1,
            query.as_ptr(),
            k as sys::idx_t,
            p.params,
            distances.as_mut_ptr(),
            labels.as_mut_ptr() as *mut sys::idx_t,
        )
    };
    check("faiss_Index_search_with_params", code)?;
    Ok(labels.into_iter().zip(distances).collect())
}

/// Serialises `index` with Faiss's own format into memory.
pub(crate) fn write_to_vec(index: &IndexImpl) -> Result<Vec<u8>, String> {
    let mut buf: *mut libc::c_char = ptr::null_mut();
    let mut size: libc::size_t = 0;
    // SAFETY: `open_memstream` gives a FILE that grows a malloc'd buffer and
    // stores its address and size in the two locals, which outlive the FILE.
    let file = unsafe { libc::open_memstream(&mut buf, &mut size) };
    if file.is_null() {
        return Err("open_memstream failed".into());
    }
    // SAFETY: `file` is a live FILE open for writing; the index is only read.
    let code = unsafe { sys::faiss_write_index(index.inner_ptr(), file as *mut sys::FILE) };
    // SAFETY: `file` is live and closed exactly once; after `fclose`, `buf`
    // and `size` are final.
    let closed = unsafe { libc::fclose(file) };
    let out = if buf.is_null() {
        Vec::new()
    } else {
        // SAFETY: after `fclose`, `buf` points at `size` initialised bytes.
        unsafe { std::slice::from_raw_parts(buf as *const u8, size) }.to_vec()
    };
    // SAFETY: `buf` is null or the malloc'd buffer of the closed stream,
    // freed once; nothing refers to it any more (the bytes were copied).
    unsafe { libc::free(buf as *mut libc::c_void) };
    check("faiss_write_index", code)?;
    if closed != 0 {
        return Err("fclose of the memory stream failed".into());
    }
    Ok(out)
}

/// Reads an index that Faiss serialised, from memory. The caller has checked
/// our checksum over `bytes` first: Faiss's reader is not safe on corrupted
/// input.
pub(crate) fn read_from_slice(bytes: &[u8]) -> Result<IndexImpl, String> {
    if bytes.is_empty() {
        return Err("empty index body".into());
    }
    // SAFETY: `fmemopen` only reads `bytes` (mode "rb"), which outlives the
    // FILE: it is closed below, before this function returns.
    let file = unsafe { libc::fmemopen(bytes.as_ptr() as *mut libc::c_void, bytes.len(), c"rb".as_ptr()) };
    if file.is_null() {
        return Err("fmemopen failed".into());
    }
    let mut inner: *mut sys::FaissIndex = ptr::null_mut();
    // SAFETY: `file` is a live FILE open for reading; the out-pointer is a
    // valid local.
    let code = unsafe { sys::faiss_read_index(file as *mut sys::FILE, 0, &mut inner) };
    // SAFETY: `file` is live and closed exactly once.
    unsafe { libc::fclose(file) };
    check("faiss_read_index", code)?;
    if inner.is_null() {
        return Err("faiss_read_index returned no index".into());
    }
    // SAFETY: on success Faiss hands over an owned index pointer, which
    // `IndexImpl` takes ownership of (and frees on drop).
    Ok(unsafe { IndexImpl::from_inner_ptr(inner) })
}

extern "C" {
    /// `src/index/faiss_info.cpp`.
    fn emberdb_faiss_compile_options(buf: *mut libc::c_char, cap: libc::size_t) -> libc::size_t;
}

/// What the linked Faiss was compiled for, as Faiss says it
/// (`faiss::get_compile_options`): for example `OPTIMIZE AVX2`, or
/// `OPTIMIZE GENERIC` for a build without `-march`.
pub fn faiss_compile_options() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the shim writes at most `buf.len()` bytes into `buf` and
    // catches every C++ exception.
    let len = unsafe { emberdb_faiss_compile_options(buf.as_mut_ptr().cast(), buf.len()) };
    String::from_utf8_lossy(&buf[..len.min(buf.len())]).trim().to_string()
}
