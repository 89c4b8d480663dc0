//! What files looked like when a task last ran: a stamp per file, by path.

use std::fmt;

use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::Digest;

/// What a file looked like.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FileStamp {
    pub(crate) size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub(crate) mtime: i64,
    /// Inode number and status-change time (nanoseconds since the epoch), which no write, rename or `touch -d` can
    /// leave as they were; 0 in stamps of an irun before they were recorded (such a stamp vouches for nothing).
    #[serde(default)]
    pub(crate) ino: u64,
    #[serde(default)]
    pub(crate) ctime: i64,
    /// xxh3-128 of the content.
    pub(crate) hash: Digest,
}

/// Files' stamps by relative path: an object in the state file, a list sorted by path in memory. A task has a few
/// files, most often one: a `BTreeMap` would take a 900-byte node for it, 18 MB at 10,000 tasks; a `Vec` an
/// allocation of its own for each list, 1.9 MB. One file is kept inline.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct FileStamps(List);

#[derive(Debug, Clone, Default, PartialEq, Eq)]
enum List {
    #[default]
    Empty,
    One([(String, FileStamp); 1]),
    Many(Vec<(String, FileStamp)>),
}

impl FileStamps {
    fn as_slice(&self) -> &[(String, FileStamp)] {
        match &self.0 {
            List::Empty => &[],
            List::One(one) => one,
            List::Many(many) => many,
        }
    }

    pub(crate) fn get(&self, path: &str) -> Option<&FileStamp> {
        let list = self.as_slice();
        list.binary_search_by(|(p, _)| p.as_str().cmp(path)).ok().map(|i| &list[i].1)
    }

    pub(crate) fn contains_key(&self, path: &str) -> bool {
        self.get(path).is_some()
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &String> {
        self.as_slice().iter().map(|(p, _)| p)
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&String, &FileStamp)> {
        self.as_slice().iter().map(|(p, s)| (p, s))
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The stamp of `path` is `stamp` from now on.
    #[cfg(test)]
    pub(crate) fn insert(&mut self, path: String, stamp: FileStamp) {
        let mut list: Vec<(String, FileStamp)> = std::mem::take(self).into_vec();
        list.push((path, stamp));
        *self = list.into_iter().collect();
    }

    #[cfg(test)]
    fn into_vec(self) -> Vec<(String, FileStamp)> {
        match self.0 {
            List::Empty => Vec::new(),
            List::One([one]) => vec![one],
            List::Many(many) => many,
        }
    }
}

impl std::ops::Index<&str> for FileStamps {
    type Output = FileStamp;

    fn index(&self, path: &str) -> &FileStamp {
        self.get(path).unwrap_or_else(|| panic!("no stamp for {path}"))
    }
}

impl<'a> IntoIterator for &'a FileStamps {
    type Item = (&'a String, &'a FileStamp);
    type IntoIter = Box<dyn Iterator<Item = Self::Item> + 'a>;

    fn into_iter(self) -> Self::IntoIter {
        Box::new(self.iter())
    }
}

/// The last stamp given for a path counts, as when inserting into a map.
impl FromIterator<(String, FileStamp)> for FileStamps {
    fn from_iter<I: IntoIterator<Item = (String, FileStamp)>>(iter: I) -> Self {
        let mut list: Vec<(String, FileStamp)> = iter.into_iter().collect();
        // (Stable: of equal paths the last given stays last, and dedup keeps the first of a run: reverse first.)
        list.reverse();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list.dedup_by(|a, b| a.0 == b.0);
        FileStamps(match list.len() {
            0 => List::Empty,
            1 => List::One([list.pop().expect("one")]),
            _ => {
                list.shrink_to_fit();
                List::Many(list)
            }
        })
    }
}

impl Serialize for FileStamps {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.len()))?;
        for (path, stamp) in self.as_slice() {
            map.serialize_entry(path, stamp)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FileStamps {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Stamps;
        impl<'de> Visitor<'de> for Stamps {
            type Value = FileStamps;

            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a map from paths to file stamps")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FileStamps, A::Error> {
                let mut list = Vec::with_capacity(map.size_hint().unwrap_or(0).min(1024));
                while let Some(entry) = map.next_entry::<String, FileStamp>()? {
                    list.push(entry);
                }
                Ok(list.into_iter().collect())
            }
        }
        deserializer.deserialize_map(Stamps)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(size: u64) -> FileStamp {
        FileStamp { size, mtime: 1, ino: 2, ctime: 3, hash: "h".into() }
    }

    #[test]
    fn one_file_is_kept_inline_and_more_in_a_list_of_their_own() {
        let one: FileStamps = [("a".into(), stamp(1))].into_iter().collect();
        assert!(matches!(one.0, List::One(_)) && one.len() == 1 && one["a"] == stamp(1));
        let two: FileStamps = [("b".into(), stamp(1)), ("a".into(), stamp(2))].into_iter().collect();
        assert!(matches!(two.0, List::Many(_)) && two.keys().collect::<Vec<_>>() == ["a", "b"]);
        let none: FileStamps = std::iter::empty().collect();
        assert!(matches!(none.0, List::Empty) && none == FileStamps::default());
    }

    #[test]
    fn stamps_behave_as_a_map_sorted_by_path_with_the_last_stamp_given_counting() {
        let s: FileStamps =
            [("b".into(), stamp(1)), ("a".into(), stamp(2)), ("b".into(), stamp(3))].into_iter().collect();
        assert_eq!(s.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!((s["a"].size, s["b"].size, s.len()), (2, 3, 2));
        assert!(s.get("c").is_none() && s.contains_key("a"));
        let mut t = s.clone();
        t.insert("0".into(), stamp(4));
        t.insert("a".into(), stamp(5));
        assert_eq!(t.iter().map(|(p, s)| (p.as_str(), s.size)).collect::<Vec<_>>(), [("0", 4), ("a", 5), ("b", 3)]);
    }

    #[test]
    fn stamps_are_an_object_in_the_state_file() {
        let s: FileStamps = [("z".into(), stamp(1)), ("a".into(), stamp(2))].into_iter().collect();
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.starts_with(r#"{"a":{"size":2,"#), "{json}");
        assert_eq!(serde_json::from_str::<FileStamps>(&json).unwrap(), s);
        let old = r#"{"b":{"size":1,"mtime":1,"hash":"h"},"a":{"size":2,"mtime":1,"hash":"h"}}"#;
        let read: FileStamps = serde_json::from_str(old).unwrap();
        assert_eq!(read.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(read["b"].ino, 0, "no inode then");
    }
}
