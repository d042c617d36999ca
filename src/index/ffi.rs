//! The raw Faiss calls the `faiss` crate does not wrap: search through a
//! shared reference with per-call parameters and an id selector, an IVF
//! search whose coarse lists are given, an IVF index on given centroids,
//! serialisation to memory, and reading an index as views into mapped
//! bytes. All of emberdb's FFI lives in this file (and the C++ shims it
//! calls, `faiss_info.cpp` and `faiss_view.cpp`).

use std::ffi::CStr;
use std::marker::PhantomData;
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

/// Where our C++ shim writes the message of an exception it caught
/// (NUL-terminated; see `faiss_view.cpp`'s `guarded`).
struct ShimMessage {
    buf: [u8; 512],
}

impl ShimMessage {
    fn new() -> Self {
        ShimMessage { buf: [0; 512] }
    }

    /// `Err` with the message when the shim's `code` says it failed.
    fn check(&self, call: &str, code: libc::c_int) -> Result<(), String> {
        if code == 0 {
            return Ok(());
        }
        let end = self.buf.iter().position(|&b| b == 0).unwrap_or(self.buf.len());
        Err(format!("{call} failed: {}", String::from_utf8_lossy(&self.buf[..end])))
    }
}

/// Search parameters for one call, freed on drop.
struct Params<'a> {
    params: *mut sys::FaissSearchParameters,
    not: *mut sys::FaissIDSelectorNot,
    bitmap: *mut sys::FaissIDSelectorBitmap,
    /// The bitmap selector borrows the dead-row bitmap.
    _dead: PhantomData<&'a [u8]>,
}

impl Drop for Params<'_> {
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

impl<'a> Params<'a> {
    /// Parameters for one search: IVF's `nprobe` if given, and a selector
    /// that skips the rows set in `dead` (none when it is empty), which the
    /// parameters borrow.
    fn new(nprobe: Option<usize>, dead: &'a [u8]) -> Result<Self, String> {
        let mut p = Params {
            params: ptr::null_mut(),
            not: ptr::null_mut(),
            bitmap: ptr::null_mut(),
            _dead: PhantomData,
        };
        let mut selector: *mut sys::FaissIDSelector = ptr::null_mut();
        if !dead.is_empty() {
            // SAFETY: the out-pointer is a valid local; Faiss copies nothing and
            // only borrows `dead`, which outlives the selector (`Params` borrows
            // it for its own life, and frees the selector on drop).
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
        Ok(p)
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
    let p = Params::new(nprobe, dead)?;
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

/// The centroids of an IVF index's coarse quantiser (`nlist` rows of `dim`
/// values), or an error if `index` is not an IVF index.
pub(crate) fn ivf_centroids(index: &IndexImpl, dim: usize) -> Result<(usize, Vec<f32>), String> {
    // SAFETY: `faiss_IndexIVF_cast` is a `dynamic_cast` that only reads the
    // index's type; it returns null for other kinds. The pointer is only
    // read through below, while `index` is borrowed.
    let ivf = unsafe { sys::faiss_IndexIVF_cast(index.inner_ptr()) };
    if ivf.is_null() {
        return Err("not an IVF index".into());
    }
    // SAFETY: `ivf` is a live IVF index (above); its quantiser pointer is
    // owned by it and lives as long as `index`.
    let (nlist, quantizer) = unsafe { (sys::faiss_IndexIVF_nlist(ivf), sys::faiss_IndexIVF_quantizer(ivf)) };
    if quantizer.is_null() {
        return Err("IVF index without a quantiser".into());
    }
    // SAFETY: as above; `ntotal` only reads.
    let held = unsafe { sys::faiss_Index_ntotal(quantizer) };
    if held != nlist as sys::idx_t {
        return Err(format!("quantiser holds {held} centroids for {nlist} lists"));
    }
    let mut values = vec![0f32; nlist * dim];
    // SAFETY: the output holds `nlist * dim` floats, the quantiser's
    // `nlist` rows of `dim` (the IVF index's dimension, given by the
    // caller who built or loaded it); a flat quantiser reconstructs by copy.
    let code = unsafe { sys::faiss_Index_reconstruct_n(quantizer, 0, nlist as sys::idx_t, values.as_mut_ptr()) };
    check("faiss_Index_reconstruct_n", code)?;
    Ok((nlist, values))
}

/// An empty `IVF{nlist},Flat` index whose coarse quantiser holds
/// `centroids` (`nlist` rows of `dim`): trained without k-means.
pub(crate) fn ivf_flat_on(
    dim: usize,
    nlist: usize,
    metric: faiss::MetricType,
    centroids: &[f32],
) -> Result<IndexImpl, String> {
    if centroids.len() != nlist * dim || nlist == 0 {
        return Err(format!(
            "{} centroid values for {nlist} lists of {dim}",
            centroids.len()
        ));
    }
    let metric = metric as sys::FaissMetricType;
    let mut quantizer: *mut sys::FaissIndexFlat = ptr::null_mut();
    // SAFETY: the out-pointer is a valid local.
    let code = unsafe { sys::faiss_IndexFlat_new_with(&mut quantizer, dim as sys::idx_t, metric) };
    check("faiss_IndexFlat_new_with", code)?;
    let quantizer = quantizer as *mut sys::FaissIndex;
    // SAFETY: `quantizer` is live and ours; `centroids` holds `nlist` rows of
    // `dim` (checked above), which Faiss copies.
    let code = unsafe { sys::faiss_Index_add(quantizer, nlist as sys::idx_t, centroids.as_ptr()) };
    if let Err(e) = check("faiss_Index_add", code) {
        // SAFETY: still ours, freed once.
        unsafe { sys::faiss_Index_free(quantizer) };
        return Err(e);
    }
    let mut ivf: *mut sys::FaissIndexIVFFlat = ptr::null_mut();
    // SAFETY: the out-pointer is a valid local and `quantizer` a live flat
    // index holding exactly `nlist` rows, so Faiss marks the IVF index
    // trained.
    let code = unsafe { sys::faiss_IndexIVFFlat_new_with_metric(&mut ivf, quantizer, dim, nlist, metric) };
    if let Err(e) = check("faiss_IndexIVFFlat_new_with_metric", code) {
        // SAFETY: the IVF index was not made; the quantiser is still ours.
        unsafe { sys::faiss_Index_free(quantizer) };
        return Err(e);
    }
    // SAFETY: `ivf` is live; from here it owns the quantiser and frees it
    // with itself.
    unsafe { sys::faiss_IndexIVF_set_own_fields(ivf as *mut sys::FaissIndexIVF, 1) };
    // SAFETY: an owned index pointer handed to `IndexImpl`, which frees it
    // on drop.
    Ok(unsafe { IndexImpl::from_inner_ptr(ivf as *mut sys::FaissIndex) })
}

/// The `nprobe` coarse lists nearest to `query` in an IVF index's own
/// quantiser, with their distances: what Faiss's IVF search computes first.
pub(crate) fn coarse_lists(index: &IndexImpl, query: &[f32], nprobe: usize) -> Result<(Vec<i64>, Vec<f32>), String> {
    let ivf = flat_ivf(index)?;
    // SAFETY: `ivf` is a live IVF index borrowed from `index`; its quantiser
    // is owned by it and only read here (a flat index's search is `const`).
    let quantizer = unsafe { sys::faiss_IndexIVF_quantizer(ivf) };
    if quantizer.is_null() {
        return Err("IVF index without a quantiser".into());
    }
    let mut distances = vec![0f32; nprobe];
    let mut lists = vec![-1i64; nprobe];
    // SAFETY: `query` holds `d` floats (checked by the caller), the outputs
    // hold `nprobe` entries; the quantiser is only read.
    let code = unsafe {
        sys::faiss_Index_search(
            quantizer,
            1,
            query.as_ptr(),
            nprobe as sys::idx_t,
            distances.as_mut_ptr(),
            lists.as_mut_ptr() as *mut sys::idx_t,
        )
    };
    check("faiss_Index_search (quantiser)", code)?;
    Ok((lists, distances))
}

/// Searches an `IVF{n},Flat` index for one query whose coarse lists were
/// found already (`coarse_lists`, on this index or on another built on the
/// same centroids): Faiss's IVF search without its first step. `lists` and
/// `distances` hold `nprobe` entries; `dead` as in `search`.
pub(crate) fn search_preassigned(
    index: &IndexImpl,
    query: &[f32],
    k: usize,
    lists: &[i64],
    distances: &[f32],
    dead: &[u8],
) -> Result<Vec<(i64, f32)>, String> {
    let nprobe = lists.len();
    if distances.len() != nprobe || nprobe == 0 {
        return Err(format!("{nprobe} coarse lists with {} distances", distances.len()));
    }
    let ivf = flat_ivf(index)?;
    let p = Params::new(Some(nprobe), dead)?;
    let mut scores = vec![0f32; k];
    let mut labels = vec![-1i64; k];
    let mut message = ShimMessage::new();
    // SAFETY: `ivf` is a live `IndexIVFFlat` (checked by `flat_ivf`), only
    // read; `query` holds `d` floats (checked by the caller); `lists` and
    // `distances` hold `nprobe` entries, the count `p.params` gives Faiss;
    // the outputs hold `k`; `p.params` is a live `SearchParametersIVF`
    // (made with an nprobe above); the shim catches every C++ exception and
    // writes at most `message.buf.len()` bytes.
    let code = unsafe {
        emberdb_faiss_ivf_search_preassigned(
            ivf as *const libc::c_void,
            1,
            query.as_ptr(),
            k as i64,
            lists.as_ptr(),
            distances.as_ptr(),
            p.params as *const libc::c_void,
            scores.as_mut_ptr(),
            labels.as_mut_ptr(),
            message.buf.as_mut_ptr().cast(),
            message.buf.len(),
        )
    };
    message.check("IndexIVF::search_preassigned", code)?;
    Ok(labels.into_iter().zip(scores).collect())
}

/// `index` as an IVF index, if it is an `IndexIVFFlat` (the only IVF kind
/// emberdb builds, and the one whose `search_preassigned` the shim calls).
/// Faiss's `IndexIVFFlatDedup` would pass this check and has its own
/// `search_preassigned`; emberdb never builds or writes one, and reads only
/// index files it wrote (checksummed).
fn flat_ivf(index: &IndexImpl) -> Result<*mut sys::FaissIndexIVF, String> {
    // SAFETY: both casts are `dynamic_cast`s that only read the index's type
    // and return null for other kinds.
    let (flat, ivf) = unsafe {
        (
            sys::faiss_IndexIVFFlat_cast(index.inner_ptr()),
            sys::faiss_IndexIVF_cast(index.inner_ptr()),
        )
    };
    if flat.is_null() || ivf.is_null() {
        return Err("not an IVF-Flat index".into());
    }
    Ok(ivf)
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
#[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
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

/// Reads an index that Faiss serialised, with its large arrays (inverted
/// lists, flat storage, HNSW links) as views into `bytes` rather than
/// copies: they stay in the page cache, loaded on demand. Faiss's reader
/// still allocates and zeroes each inverted list at full size before it
/// swaps in the view, so a load briefly holds the lists' size on the heap
/// (freed, and given back by `release_freed_heap`). The caller has checked
/// our checksum over `bytes` first.
///
/// Faiss's format has no padding, so the views are not aligned to their
/// element types (the floats of a list start wherever the bytes before
/// them end). x86-64 and AArch64 load unaligned values, and Faiss's SIMD
/// code uses unaligned loads; on other targets the index is copied
/// (`read_from_slice`) instead.
///
/// # Safety
///
/// `bytes` must stay valid and unchanged for as long as the returned index
/// lives (the index reads them on every search and never frees them):
/// `SegmentIndex` keeps the map that holds them in a field dropped after
/// the index.
pub(crate) unsafe fn read_view(bytes: &[u8]) -> Result<IndexImpl, String> {
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    return read_from_slice(bytes);
    if bytes.is_empty() {
        return Err("empty index body".into());
    }
    let mut inner: *mut libc::c_void = ptr::null_mut();
    let mut message = ShimMessage::new();
    // SAFETY: the shim reads only `bytes` (its length given), writes the
    // out-pointer and at most `message.buf.len()` bytes of message, and catches
    // every C++ exception. The views it creates point into `bytes`, which
    // the caller keeps alive (this function's contract).
    let code = unsafe {
        emberdb_faiss_read_index_view(
            bytes.as_ptr(),
            bytes.len(),
            &mut inner,
            message.buf.as_mut_ptr().cast(),
            message.buf.len(),
        )
    };
    message.check("faiss::read_index", code)?;
    if inner.is_null() {
        return Err("faiss::read_index returned no index".into());
    }
    release_freed_heap();
    // SAFETY: on success the shim hands over an owned `faiss::Index*`,
    // which is what the C API's `FaissIndex*` is; `IndexImpl` takes
    // ownership and frees it on drop (a view's destructor frees nothing).
    Ok(unsafe { IndexImpl::from_inner_ptr(inner.cast()) })
}

/// Gives the heap's free memory back to the system. Faiss's reader
/// allocates every inverted list at its full size (zeroed) before it swaps
/// each for a view (`read_InvertedLists` in `index_read.cpp`), so a viewed
/// load frees as much heap as the lists hold; glibc keeps those freed
/// chunks resident unless asked, which would cost a store of many segments
/// the memory the views save.
fn release_freed_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only returns free pages of glibc's own heap to
    // the system; it touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

extern "C" {
    /// `src/index/faiss_info.cpp`.
    fn emberdb_faiss_compile_options(buf: *mut libc::c_char, cap: libc::size_t) -> libc::size_t;
    /// `src/index/faiss_view.cpp`.
    fn emberdb_faiss_ivf_search_preassigned(
        ivf: *const libc::c_void,
        n: i64,
        x: *const f32,
        k: i64,
        assign: *const i64,
        centroid_dis: *const f32,
        params: *const libc::c_void,
        distances: *mut f32,
        labels: *mut i64,
        err: *mut libc::c_char,
        cap: libc::size_t,
    ) -> libc::c_int;
    /// `src/index/faiss_view.cpp`.
    fn emberdb_faiss_read_index_view(
        data: *const u8,
        len: libc::size_t,
        out: *mut *mut libc::c_void,
        err: *mut libc::c_char,
        cap: libc::size_t,
    ) -> libc::c_int;
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
