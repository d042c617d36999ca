//! Reading the TEXMEX vector files (`.fvecs`, `.ivecs`): each record is a
//! little-endian i32 dimension followed by that many f32 / i32 values.

use std::path::Path;

/// Reads every record of a `.fvecs` or `.ivecs` file as raw 32-bit words.
fn read_records(path: &Path) -> Result<(usize, Vec<[u8; 4]>), String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    if bytes.len() < 4 {
        return Err(format!("{}: too short for a TEXMEX file", path.display()));
    }
    let dim = i32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
    if dim <= 0 {
        return Err(format!("{}: bad dimension {dim} in the first record", path.display()));
    }
    let dim = dim as usize;
    let record = 4 * (dim + 1);
    if bytes.len() % record != 0 {
        return Err(format!(
            "{}: {} bytes is not a whole number of {record}-byte records",
            path.display(),
            bytes.len()
        ));
    }
    let mut words = Vec::with_capacity(bytes.len() / 4);
    for (i, rec) in bytes.chunks_exact(record).enumerate() {
        if rec[0..4] != bytes[0..4] {
            return Err(format!("{}: record {i} has another dimension", path.display()));
        }
        words.extend(rec[4..].chunks_exact(4).map(|w| [w[0], w[1], w[2], w[3]]));
    }
    Ok((dim, words))
}

/// Vectors of a `.fvecs` file: the dimension and the rows, flattened.
pub fn read_fvecs(path: &Path) -> Result<(usize, Vec<f32>), String> {
    let (dim, words) = read_records(path)?;
    Ok((dim, words.into_iter().map(f32::from_le_bytes).collect()))
}

/// Rows of a `.ivecs` file.
pub fn read_ivecs(path: &Path) -> Result<(usize, Vec<i32>), String> {
    let (dim, words) = read_records(path)?;
    Ok((dim, words.into_iter().map(i32::from_le_bytes).collect()))
}
