//! Task ids: a task's place in Irun.toml, the index of every per-task table of a run, and the tasks found by name.

use std::collections::HashMap;

/// A task's position in Irun.toml: the index of every per-task table of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) struct TaskId(u32);

impl TaskId {
    pub(crate) fn new(index: usize) -> TaskId {
        TaskId(u32::try_from(index).expect("fewer than 2^32 tasks"))
    }

    pub(crate) fn index(self) -> usize {
        self.0 as usize
    }
}

/// One value per task of Irun.toml, indexed by [`TaskId`].
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PerTask<T>(Vec<T>);

impl<T> PerTask<T> {
    /// A value for each of `n` tasks, made from its id.
    pub(crate) fn from_fn(n: usize, f: impl FnMut(TaskId) -> T) -> PerTask<T> {
        PerTask((0..n).map(TaskId::new).map(f).collect())
    }

    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn ids(&self) -> impl DoubleEndedIterator<Item = TaskId> + use<T> {
        (0..self.0.len()).map(TaskId::new)
    }

    pub(crate) fn iter(&self) -> std::slice::Iter<'_, T> {
        self.0.iter()
    }

    pub(crate) fn iter_mut(&mut self) -> std::slice::IterMut<'_, T> {
        self.0.iter_mut()
    }

    /// Each task's id and value.
    pub(crate) fn enumerate(&self) -> impl Iterator<Item = (TaskId, &T)> {
        self.0.iter().enumerate().map(|(i, v)| (TaskId::new(i), v))
    }
}

impl<T: Clone> PerTask<T> {
    pub(crate) fn filled(n: usize, value: T) -> PerTask<T> {
        PerTask(vec![value; n])
    }
}

impl<T> std::ops::Index<TaskId> for PerTask<T> {
    type Output = T;

    fn index(&self, id: TaskId) -> &T {
        &self.0[id.index()]
    }
}

impl<T> std::ops::IndexMut<TaskId> for PerTask<T> {
    fn index_mut(&mut self, id: TaskId) -> &mut T {
        &mut self.0[id.index()]
    }
}

impl<T> FromIterator<T> for PerTask<T> {
    fn from_iter<I: IntoIterator<Item = T>>(iter: I) -> PerTask<T> {
        PerTask(iter.into_iter().collect())
    }
}

impl<T> IntoIterator for PerTask<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Task ids by name, without a second copy of every name: the 64-bit hash of a name finds the first task whose
/// name has it; tasks whose names share a hash with an earlier one (practically never) are looked through in turn.
#[derive(Debug)]
pub(super) struct ByName {
    first: HashMap<u64, TaskId>,
    more: Vec<TaskId>,
    hash: fn(&str) -> u64,
}

/// What [`ByName`] finds things by (a task, in the model).
pub(super) trait HasName {
    fn name(&self) -> &str;
}

impl ByName {
    pub(super) fn new<T: HasName>(tasks: &PerTask<T>) -> ByName {
        ByName::with_hash(tasks, |name| xxhash_rust::xxh3::xxh3_64(name.as_bytes()))
    }

    fn with_hash<T: HasName>(tasks: &PerTask<T>, hash: fn(&str) -> u64) -> ByName {
        let mut index = ByName { first: HashMap::with_capacity(tasks.len()), more: Vec::new(), hash };
        for (id, task) in tasks.enumerate() {
            match index.first.entry(hash(task.name())) {
                std::collections::hash_map::Entry::Vacant(e) => {
                    e.insert(id);
                }
                std::collections::hash_map::Entry::Occupied(_) => index.more.push(id),
            }
        }
        index
    }

    pub(super) fn get<T: HasName>(&self, tasks: &PerTask<T>, name: &str) -> Option<TaskId> {
        let first = *self.first.get(&(self.hash)(name))?;
        if tasks[first].name() == name {
            return Some(first);
        }
        self.more.iter().copied().find(|&id| tasks[id].name() == name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_share_a_hash_still_find_their_own_task() {
        let text = "[tasks.a]\ncmd = \"x\"\n[tasks.b]\ncmd = \"x\"\n[tasks.c]\ndeps = [\"a\"]\n";
        let config = crate::config::parse(crate::diagnostic::Source::new("Irun.toml".as_ref(), text), ".".into())
            .unwrap_or_else(|d| panic!("{}", d.render(false)));
        for hash in
            [(|_| 7) as fn(&str) -> u64, |name| name.len() as u64, |name| name.bytes().next().map_or(0, u64::from)]
        {
            let index = ByName::with_hash(&config.tasks, hash);
            let found: Vec<Option<TaskId>> =
                ["a", "b", "c", "d", ""].iter().map(|n| index.get(&config.tasks, n)).collect();
            assert_eq!(found, [Some(TaskId::new(0)), Some(TaskId::new(1)), Some(TaskId::new(2)), None, None]);
        }
    }
}
