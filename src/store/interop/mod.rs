//! The store's data in and out as Parquet files, for Spark, DuckDB, pyarrow
//! and Milvus bulk import (feature `parquet`).

#[cfg(feature = "parquet")]
pub(crate) mod parquet_export;
#[cfg(feature = "parquet")]
pub(crate) mod parquet_import;
