//! User features from a CSV or TSV file with a header: the first column is
//! the user id, every other column a feature named by its header (`ember
//! ingest --users`, `ember eval --users`). MovieLens's `users.csv`
//! (`user_id,age,gender,occupation,zip_code`) is read as it is, with the age
//! bucketed as MovieLens 1M buckets it (under 18, 18-24, 25-34, 35-44,
//! 45-49, 50-55, 56+) and the zip code cut to its first digit (a region):
//! raw ages and zip codes are too many values for a feature table to learn.

use std::path::Path;

use anyhow::{bail, Context as _};

use crate::delimited::Delimited;
use crate::input::{parse_id, Bad};

/// Each user's (key, value) pairs, and the bad lines.
pub type Users = Vec<(u64, Vec<(String, String)>)>;

pub fn read(path: &Path) -> anyhow::Result<(Users, Vec<Bad>)> {
    let mut file = Delimited::open(path)?;
    let (mut users, mut bad) = (Vec::new(), Vec::new());
    let mut header: Option<Vec<String>> = None;
    while let Some((n, fields)) = file.next_line().with_context(|| path.display().to_string())? {
        let fields = match fields {
            Ok(fields) => fields,
            Err(reason) => {
                bad.push((n, reason));
                continue;
            }
        };
        let Some(names) = &header else {
            let names: Vec<String> = fields.iter().map(|f| f.to_ascii_lowercase()).collect();
            if names.len() < 2 || names[1..].iter().any(|n| n.is_empty()) {
                bail!(
                    "{}: the first line must name the columns (user id, then one feature per column)",
                    path.display()
                );
            }
            header = Some(names);
            continue;
        };
        let mut cells = fields.iter();
        let user = match cells.next().map(|f| parse_id(f, "user id")) {
            Some(Ok(user)) => user,
            Some(Err(reason)) => {
                bad.push((n, reason));
                continue;
            }
            None => continue,
        };
        let features = names[1..]
            .iter()
            .zip(cells)
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| (k.clone(), movielens_value(k, v)))
            .collect();
        users.push((user, features));
    }
    Ok((users, bad))
}

/// MovieLens's age and zip code as buckets; any other value as it is.
fn movielens_value(key: &str, value: &str) -> String {
    match key {
        "age" => match value.parse::<u32>() {
            Ok(a) if a < 18 => "under 18".into(),
            Ok(a) if a < 25 => "18-24".into(),
            Ok(a) if a < 35 => "25-34".into(),
            Ok(a) if a < 45 => "35-44".into(),
            Ok(a) if a < 50 => "45-49".into(),
            Ok(a) if a < 56 => "50-55".into(),
            Ok(_) => "56+".into(),
            Err(_) => value.to_string(),
        },
        "zip_code" | "zip" => value.chars().next().map_or_else(String::new, |c| format!("{c}xxxx")),
        _ => value.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn movielens_users_are_read_with_buckets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.csv");
        std::fs::write(
            &path,
            "user_id,age,gender,occupation,zip_code\n1,24,M,technician,85711\nx,3,F,a,b\n2,60,F,other,\n",
        )
        .unwrap();
        let (users, bad) = read(&path).unwrap();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad[0].0, 3);
        let f = |pairs: &[(&str, &str)]| {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            users,
            vec![
                (
                    1,
                    f(&[
                        ("age", "18-24"),
                        ("gender", "M"),
                        ("occupation", "technician"),
                        ("zip_code", "8xxxx")
                    ])
                ),
                (2, f(&[("age", "56+"), ("gender", "F"), ("occupation", "other")])),
            ]
        );
    }
}
