//! Reading a dotenv file (`NAME=value` lines, `export NAME=value`, `# comments`, single or double quotes), with the
//! dotenvy crate.

use std::path::Path;

pub enum Error {
    Missing,
    /// Why the file cannot be used, with its line number when a line is at fault.
    Unreadable(String),
}

/// The file's variables in the order written.
pub fn read(path: &Path) -> Result<Vec<(String, String)>, Error> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(Error::Missing),
        Err(e) => return Err(Error::Unreadable(e.to_string())),
    };
    let mut out = Vec::new();
    for item in dotenvy::from_read_iter(text.as_bytes()) {
        match item {
            Ok(pair) => out.push(pair),
            Err(dotenvy::Error::LineParse(line, index)) => {
                let number = text.lines().position(|l| l.contains(line.trim())).map_or(0, |n| n + 1);
                return Err(Error::Unreadable(format!(
                    "line {number} ({:?}) cannot be read at character {}",
                    line.trim(),
                    index + 1
                )));
            }
            Err(e) => return Err(Error::Unreadable(e.to_string())),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comments_quotes_and_export_are_understood() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".env");
        std::fs::write(
            &path,
            "# a comment\nA=1\nexport B=\"two words\"\nC='single $A'\nD=\"double\\nline\"\n\nE=  spaced  # trailing\n",
        )
        .unwrap();
        let vars = match read(&path) {
            Ok(v) => v,
            Err(Error::Unreadable(why)) => panic!("{why}"),
            Err(Error::Missing) => panic!("missing"),
        };
        let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("A"), Some("1"));
        assert_eq!(get("B"), Some("two words"));
        assert_eq!(get("C"), Some("single $A"));
        assert_eq!(get("D"), Some("double\nline"));
        assert_eq!(get("E"), Some("spaced"));
        assert!(matches!(read(&dir.path().join("nope")), Err(Error::Missing)));
        std::fs::write(&path, "A=1\nB='unclosed\n").unwrap();
        match read(&path) {
            Err(Error::Unreadable(why)) => assert!(why.contains("line 2"), "{why}"),
            _ => panic!("an unclosed quote is an error"),
        }
    }
}
