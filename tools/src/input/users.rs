//! User features from a CSV or TSV file with a header: the first column is
//! the user id, every other column a feature named by its header (`ember
//! ingest --users`, `ember eval --users`). MovieLens's `users.csv`
//! (`user_id,age,gender,occupation,zip_code`) is read as it is, with the age
//! bucketed as MovieLens 1M buckets it (under 18, 18-24, 25-34, 35-44,
//! 45-49, 50-55, 56+) and the zip code cut to its first digit (a region):
//! raw ages and zip codes are too many values for a feature table to learn.

use std::path::Path;

/// Each user's (key, value) pairs.
pub type Users = crate::input::keyed::Keyed;

/// The users' features and the bad lines.
pub fn read(path: &Path) -> anyhow::Result<(Users, crate::input::BadLines)> {
    crate::input::keyed::read(
        path,
        "user id",
        "user id, then one feature per column",
        |key, value, out| out.push((key.to_string(), movielens_value(key, value))),
    )
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
        let users: Vec<_> = users.into_iter().map(|(_, id, p)| (id, p)).collect();
        assert_eq!(bad.len(), 1);
        assert_eq!(bad.first()[0].0, 3);
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
