//! What the commands print: query results as a table or JSON.

pub mod hits;
