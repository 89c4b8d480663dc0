//! Up-to-date checks: is a task's last successful run still valid, and if not, the first reason why.
//!
//! A task with `sources` is up to date when it last succeeded, its settings (command, env, cwd, globs) are the
//! same, every file its `sources` match has the same content (none added or removed), every file its `outputs`
//! match is still there with the content it left (and no new one appeared), and none of its deps changed since:
//! a task dep has not run again, a service dep has the same fingerprint (command, env, cwd, globs, probe, the
//! content of its sources and its own deps) as when this task last passed. A service without sources is
//! fingerprinted by its definition alone. Content is compared by hash; a file is read only when its stat data does
//! not vouch for the content recorded ([`stamp`] states the rule). Symbolic links to folders are followed (each folder
//! once, so a link loop ends). Nothing recorded depends on where the project is ([`settings`]).
//!
//! A task with `outputs` and no `sources` follows make's rule for a target without prerequisites: it is up to date
//! while it last succeeded with the same settings, each of its outputs exists (a glob matches a file), and none of
//! its deps ran since. What its outputs hold does not count. A task with neither always runs.

mod ahead;
mod files;
mod parts;
mod settings;
#[cfg(test)]
mod tests;

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::hash::Hasher;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use xxhash_rust::xxh3::Xxh3;

use crate::config::{Config, PerTask, Task, is_literal, parse_glob};
use crate::events::TaskName;
use crate::ignore::Filter;
pub(crate) use crate::outcome::Verdict;
use crate::outcome::{FileChange, RunReason, Setting};
use crate::state::{Digest, FileStamps, HASHING, HASHING_ABSOLUTE, LastRun, State, TaskRecord};
use files::{Stamps, compare};
pub(crate) use parts::{Part, PartKind};
pub(crate) use settings::{Root, Settings, portable_definition};

/// What a task's inputs looked like when it was decided that it runs (recorded if it then succeeds).
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    record: TaskRecord,
    /// Some file had to be read: its stamp did not vouch for it (see [`Checker::refresh`]).
    reread: bool,
}

pub(crate) struct Checker {
    root: PathBuf,
    /// The root as records leave it out.
    portable: Root,
    pub(crate) state: State,
    filter: Filter,
    force: bool,
    /// `--rerun`: tasks that run even if up to date, until they have started once.
    rerun: HashSet<String>,
    /// Services' fingerprints in this run: taken when each starts (or when first asked, for `explain`); with each,
    /// the one an irun before [`HASHING`] 3 would have taken, which dependents it recorded are compared with.
    services: RefCell<HashMap<String, (String, Option<String>)>>,
    /// The project's folder and the folders above it (device, inode): a link to one of them is not followed.
    above: HashSet<(u64, u64)>,
    /// Watch mode: each group's sources as last looked at (a group has no record: it never runs), by group name.
    groups: HashMap<String, Look>,
    /// The project's folder, open, for stat relative to it (`None` if it could not be opened: paths from the root).
    root_fd: Option<std::os::fd::OwnedFd>,
    /// Stat data of tasks' files being taken ahead ([`Checker::look_ahead`]).
    ahead: Option<ahead::Ahead>,
}

/// A group's sources as they were when looked at (`at`, before the files were read).
struct Look {
    at: i64,
    sources: FileStamps,
}

impl Checker {
    /// Load the project's state; the second value is a warning to show when the state could not be used.
    pub(crate) fn new(root: &Path, force: bool) -> (Checker, Option<String>) {
        let (state, warning) = State::load(root);
        let above = root.ancestors().filter_map(|d| std::fs::metadata(d).ok()).map(|m| (m.dev(), m.ino())).collect();
        let checker = Checker {
            root: root.to_path_buf(),
            portable: Root::new(root),
            state,
            filter: Filter::new(root, &[]),
            force,
            rerun: HashSet::new(),
            services: RefCell::new(HashMap::new()),
            above,
            groups: HashMap::new(),
            root_fd: nix::fcntl::open(
                root,
                nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_DIRECTORY | nix::fcntl::OFlag::O_CLOEXEC,
                nix::sys::stat::Mode::empty(),
            )
            .ok(),
            ahead: None,
        };
        (checker, warning)
    }

    /// The project's root as records (and cache keys) leave it out.
    pub(crate) fn portable_root(&self) -> &Root {
        &self.portable
    }

    /// A run that is not watch mode is about to check `order`'s tasks (and none has run yet): look at their files
    /// ahead, on a thread of its own, where [`ahead`]'s rule allows. Not with `--force`: nothing is compared.
    pub(crate) fn look_ahead(&mut self, config: &std::sync::Arc<Config>, order: &[crate::config::TaskId]) {
        if let (false, Some(fd)) = (self.force, &self.root_fd) {
            self.ahead = ahead::Ahead::start(config, order, fd, now_ns());
        }
    }

    /// What was looked at ahead of `task`'s files, and when that began, if it may decide the task: no dep of it ran.
    fn looked(&self, config: &Config, task: &Task, dep_ran: Option<&TaskName>) -> Option<(ahead::Looked, i64)> {
        let ahead = self.ahead.as_ref()?;
        let looked = ahead.take(config.id(&task.name)?)?;
        dep_ran.is_none().then_some((looked, ahead.at))
    }

    /// `--rerun`: these tasks run even if they are up to date, the first time each is checked and started.
    pub(crate) fn with_rerun(mut self, tasks: impl IntoIterator<Item = String>) -> Checker {
        self.rerun = tasks.into_iter().collect();
        self
    }

    /// Decide whether `task` runs. `dep_ran` names a dep that ran in this invocation, if any (services do not
    /// count: their fingerprint does). The snapshot (for tasks with sources) is what to record if it then runs.
    pub(crate) fn verdict(
        &self,
        config: &Config,
        task: &Task,
        dep_ran: Option<&TaskName>,
    ) -> (Verdict, Option<Snapshot>) {
        if task.is_service() {
            return (Verdict::Run(RunReason::Service), None);
        }
        // Without `sources` nor `outputs` nothing says what the task depends on or makes: it always runs.
        let outputs_only = task.sources().is_empty();
        if outputs_only && task.outputs().is_empty() {
            return (Verdict::Run(RunReason::NoSources), None);
        }
        let deps = config.deps_through_groups(task);
        let previous = self.state.record(&task.name);
        let looked = self.looked(config, task, dep_ran);
        let mut snapshot = self.snapshot_with(config, task, previous, &deps, looked.as_ref());
        let run = |why: RunReason| (Verdict::Run(why), Some(snapshot.clone()));
        if self.force {
            return run(RunReason::Forced);
        }
        if self.rerun.contains(&task.name) {
            return run(RunReason::Rerun);
        }
        if task.process().is_some_and(|p| p.always_run) {
            return run(RunReason::AlwaysRun);
        }
        // A record without a command (written by an older irun for a task that had no sources) vouches for nothing.
        // (A service's record holds its fingerprint, not a run of this task: it vouches for nothing either.)
        let Some(prev) = previous.filter(|p| !p.command.is_empty() && p.fingerprint.is_empty()) else {
            return run(RunReason::NeverRan);
        };
        if prev.unfinished {
            return run(RunReason::LastUnfinished);
        }
        if !prev.ok {
            return run(RunReason::LastFailed);
        }
        // (The snapshot holds the settings as records are hashed now: no need to hash them again for such a one.)
        let settings = match prev.hashing {
            HASHING => settings_differ(prev, &snapshot.record),
            _ => self.settings_changed(task, prev),
        };
        if let Some(what) = settings.first() {
            return run(RunReason::Setting(*what));
        }
        if let Some(change) = compare(&prev.sources, &snapshot.record.sources) {
            return run(RunReason::Source(change));
        }
        let outputs_looked = looked.as_ref().map(|(l, _)| &l.stats[task.sources().len()..]);
        let outputs = match self.outputs_changed_with(task, prev, outputs_only, outputs_looked) {
            Err(change) => return run(RunReason::Output(change)),
            Ok(outputs) => outputs,
        };
        if let Some(dep) = dep_ran {
            return run(RunReason::DepRan(dep.clone()));
        }
        for dep in &deps {
            let now = snapshot.record.deps.get(&dep.name);
            let then = prev.deps.get(&dep.name);
            match (dep.is_service(), now == then) {
                (_, true) => {}
                (true, false) if then.is_some() && then == self.legacy_fingerprint(dep, prev).as_ref() => {}
                // A service counts as changed for its dependents only when its own fingerprint did.
                (true, false) => return run(RunReason::ServiceChanged(dep.name.as_str().into())),
                (false, false) if then.is_some() => return run(RunReason::DepRanSince(dep.name.as_str().into())),
                (false, false) => {}
            }
        }
        snapshot.reread |= outputs.read;
        snapshot.record.outputs = outputs.files;
        (Verdict::UpToDate, Some(snapshot))
    }

    /// An up-to-date task's files had to be read (touched, rewritten the same, replaced, or written too close to
    /// the last check to vouch for): its record takes their stamps now, so that the next run need not read them
    /// again. What the record vouches for does not change (not `recorded_at`, which its dependents remember it by).
    /// Whether the record changed.
    pub(crate) fn refresh(&mut self, task: &Task, snapshot: &Snapshot) -> bool {
        let Some(prev) = self.state.record(&task.name).filter(|_| snapshot.reread) else { return false };
        let record = TaskRecord {
            sources: snapshot.record.sources.clone(),
            outputs: snapshot.record.outputs.clone(),
            checked_at: snapshot.record.checked_at,
            ..prev.clone()
        };
        self.state.refresh_record(&task.name, record);
        true
    }

    /// Which of the task's settings differ from those `prev` holds, compared the way `prev` hashed them.
    pub(crate) fn settings_changed(&self, task: &Task, prev: &TaskRecord) -> Vec<Setting> {
        let Settings { command, env, cwd, globs, probe } = Settings::of(task, &self.portable, prev.hashing);
        let now = TaskRecord { command, env, cwd: cwd.into(), globs, probe, ..TaskRecord::default() };
        settings_differ(prev, &now)
    }

    /// The fingerprint `dep` (a service) would have had in an irun before [`HASHING`] 3, if `prev` (a dependent's
    /// record) was written by one: after an upgrade, what it ran against counts as the same if it is.
    fn legacy_fingerprint(&self, dep: &Task, prev: &TaskRecord) -> Option<String> {
        if prev.hashing >= HASHING {
            return None;
        }
        self.services.borrow().get(&dep.name).and_then(|(_, legacy)| legacy.clone())
    }

    /// Watch mode: whether `task`'s own inputs differ by content from what it last ran with (`live`: what it was
    /// decided to run with, for a task running or about to); for a service, whether its fingerprint differs from the
    /// one it was started with; for a group, whether its sources differ from the last look at them
    /// ([`Checker::watch_groups`]; none yet counts as changed). A task whose last run did not succeed counts as
    /// changed, and so does one whose outputs differ from what that run left (removed while events were lost, say:
    /// the watcher ignores outputs, so no later event would bring it back). Only content counts: a file touched, or
    /// removed and written again the same, is no change.
    pub(crate) fn inputs_changed(&mut self, config: &Config, task: &Task, live: Option<&Snapshot>) -> bool {
        if task.is_group() {
            return self.look_at_group(task);
        }
        let previous = self.state.record(&task.name);
        if task.is_service() {
            let started = self.services.borrow().get(&task.name).cloned();
            return started.is_none_or(|(f, _)| self.fingerprint(config, task, previous).0.0 != f);
        }
        let (then, last_good) = match (live, previous) {
            (Some(live), _) => (&live.record, None),
            (None, Some(prev)) if prev.ok && !prev.unfinished && !prev.command.is_empty() => (prev, Some(prev)),
            (None, _) => return true,
        };
        let now = self.stamps(self.found(task.sources(), true), &then.sources, then.checked_at).files;
        // Outputs as the verdict compares them (a task running or about to is making them).
        compare(&then.sources, &now).is_some()
            || last_good.is_some_and(|prev| self.outputs_changed(task, prev, task.sources().is_empty()).is_err())
    }

    /// Watch mode begins: look at the sources of these tasks that are groups, before any change can arrive, so that
    /// a change is compared with what they held.
    pub(crate) fn watch_groups<'t>(&mut self, tasks: impl IntoIterator<Item = &'t Task>) {
        for group in tasks.into_iter().filter(|t| t.is_group() && !t.sources().is_empty()) {
            self.look_at_group(group);
        }
    }

    /// Whether a group's sources differ by content from the last look at them (there was none: they do); this look
    /// is the last one from now on.
    fn look_at_group(&mut self, group: &Task) -> bool {
        let at = now_ns();
        let empty = FileStamps::default();
        let before = self.groups.get(&group.name);
        let (previous, prev_at) = before.map_or((&empty, 0), |b| (&b.sources, b.at));
        let sources = self.stamps(self.found(group.sources(), true), previous, prev_at).files;
        let changed = before.is_none_or(|b| compare(&b.sources, &sources).is_some());
        self.groups.insert(group.name.clone(), Look { at, sources });
        changed
    }

    /// How the task's outputs differ from what its last run left: a declared file is missing; with sources, any
    /// output changed, appeared or went; without (make's rule), a glob matches nothing. If none, the outputs' stamps
    /// (with sources: without, what they hold does not count).
    fn outputs_changed(&self, task: &Task, prev: &TaskRecord, outputs_only: bool) -> Result<Stamps, FileChange> {
        self.outputs_changed_with(task, prev, outputs_only, None)
    }

    /// (`looked`: what stat said of each of the outputs, looked at ahead.)
    fn outputs_changed_with(
        &self,
        task: &Task,
        prev: &TaskRecord,
        outputs_only: bool,
        looked: Option<&[Option<files::Stat>]>,
    ) -> Result<Stamps, FileChange> {
        let found = self.found_with(task.outputs(), false, looked);
        // A declared file (not a glob) must exist, even if the task never produced it.
        if let Some(missing) = found.missing.first() {
            return Err(FileChange::Removed(missing.clone()));
        }
        if outputs_only {
            // A server may write to what it made (a database's data folder): not a reason to make it again. Each
            // glob must match a file the `!` patterns after it leave.
            let outputs = task.outputs();
            let missing = |(i, glob): &(usize, &String)| {
                let excluded = outputs[i + 1..].iter().filter(|g| parse_glob(g).0);
                let list: Vec<String> = std::iter::once(*glob).chain(excluded).cloned().collect();
                !parse_glob(glob).0 && !is_literal(glob) && self.files(&list, false).is_empty()
            };
            return match outputs.iter().enumerate().find(missing) {
                Some((_, glob)) => Err(FileChange::Removed(glob.clone())),
                None => Ok(Stamps { files: FileStamps::default(), read: false }),
            };
        }
        let outputs = self.stamps(found, &prev.outputs, prev.checked_at);
        compare(&prev.outputs, &outputs.files).map_or(Ok(outputs), Err)
    }

    /// The task was decided to run: until it succeeds, its old record no longer vouches for anything.
    pub(crate) fn started(&mut self, task: &Task) {
        // `--rerun` asked for one run: later cycles (watch mode) decide as usual.
        self.rerun.remove(&task.name);
        self.state.mark_unfinished(&task.name);
    }

    /// A service starts: take its fingerprint, which its dependents compare with the one they last ran against.
    pub(crate) fn service_started(&mut self, config: &Config, task: &Task) {
        let previous = self.state.record(&task.name).cloned();
        let (fingerprints, record) = self.fingerprint(config, task, previous.as_ref());
        self.services.borrow_mut().insert(task.name.clone(), fingerprints);
        self.state.set_record(&task.name, record);
    }

    /// Remember how a task ended, for `graph --status`.
    pub(crate) fn record_status(&mut self, task: &Task, ok: bool) {
        self.state.set_last(&task.name, if ok { LastRun::Ok } else { LastRun::Failed });
    }

    /// After the task ran: remember how it went, with the inputs it ran on and the outputs it left.
    pub(crate) fn record(&mut self, task: &Task, snapshot: Snapshot, ok: bool) {
        self.record_status(task, ok);
        let mut record = snapshot.record;
        record.ok = ok;
        record.unfinished = false;
        record.recorded_at = now_ns();
        // (Only a task with sources compares what its outputs hold; one without only needs them to exist.)
        if ok && !task.sources().is_empty() {
            record.outputs = self.stamps(self.found(task.outputs(), false), &FileStamps::default(), 0).files;
        }
        self.state.set_record(&task.name, record);
    }

    /// What `dep` is now, as its dependents record it: a task's `recorded_at`, a service's fingerprint.
    fn stamp_of(&self, config: &Config, dep: &Task) -> Option<String> {
        if dep.is_service() {
            return Some(self.service_fingerprints(config, dep).0);
        }
        self.state.record(&dep.name).map(|r| r.recorded_at.to_string())
    }

    /// A service's fingerprint in this run (and the one an older irun would have taken), taken once.
    fn service_fingerprints(&self, config: &Config, service: &Task) -> (String, Option<String>) {
        if let Some(f) = self.services.borrow().get(&service.name) {
            return f.clone();
        }
        let previous = self.state.record(&service.name);
        let (fingerprints, _) = self.fingerprint(config, service, previous);
        self.services.borrow_mut().insert(service.name.clone(), fingerprints.clone());
        fingerprints
    }

    /// A service's fingerprint and the record that holds it: its settings, the content of its sources and what its
    /// deps are now; with the fingerprint an irun before [`HASHING`] 3 took (for a service with sources: one
    /// without counted as new at every start then), so that an upgrade does not rerun its dependents.
    fn fingerprint(
        &self,
        config: &Config,
        task: &Task,
        previous: Option<&TaskRecord>,
    ) -> ((String, Option<String>), TaskRecord) {
        let deps = config.deps_through_groups(task);
        let record = self.snapshot(config, task, previous, &deps).record;
        let fingerprint = fingerprint_of(&record, true);
        let legacy = (!task.sources().is_empty()).then(|| self.legacy_record(config, task, &deps, &record)).flatten();
        let legacy = legacy.map(|r| fingerprint_of(&r, false).to_string());
        let text = fingerprint.to_string();
        let record = TaskRecord { ok: true, fingerprint, recorded_at: now_ns(), ..record };
        ((text, legacy), record)
    }

    /// `record` as an irun before [`HASHING`] 3 made it: absolute, and its service deps' older fingerprints.
    fn legacy_record(&self, config: &Config, task: &Task, deps: &[&Task], record: &TaskRecord) -> Option<TaskRecord> {
        let old = Settings::of(task, &self.portable, HASHING_ABSOLUTE);
        let mut stamps = BTreeMap::new();
        for dep in deps {
            let stamp = match dep.is_service() {
                true => Some(self.service_fingerprints(config, dep).1?),
                false => self.stamp_of(config, dep),
            };
            stamps.extend(stamp.map(|s| (dep.name.clone(), s)));
        }
        let (command, env, cwd, globs) = (old.command, old.env, old.cwd, old.globs);
        Some(TaskRecord {
            command,
            env,
            cwd: cwd.into(),
            globs,
            deps: stamps,
            sources: record.sources.clone(),
            ..Default::default()
        })
    }

    fn snapshot(&self, config: &Config, task: &Task, previous: Option<&TaskRecord>, deps: &[&Task]) -> Snapshot {
        self.snapshot_with(config, task, previous, deps, None)
    }

    /// (`looked`: what stat said of the task's files, looked at ahead, and when that began: then its files count
    /// as checked from that moment.)
    fn snapshot_with(
        &self,
        config: &Config,
        task: &Task,
        previous: Option<&TaskRecord>,
        deps: &[&Task],
        looked: Option<&(ahead::Looked, i64)>,
    ) -> Snapshot {
        let checked_at = looked.map_or_else(now_ns, |(_, at)| *at);
        let (prev_sources, prev_at) = previous.map_or((None, 0), |p| (Some(&p.sources), p.checked_at));
        let empty = FileStamps::default();
        let ahead = looked.map(|(l, _)| &l.stats[..task.sources().len()]);
        let found = self.found_with(task.sources(), true, ahead);
        let sources = self.stamps(found, prev_sources.unwrap_or(&empty), prev_at);
        let Settings { command, env, cwd, globs, probe } = Settings::now(task, &self.portable);
        // The record's own when the same: a record is kept whole when its task is up to date.
        let cwd = previous.filter(|p| *p.cwd == *cwd).map_or_else(|| cwd.into(), |p| p.cwd.clone());
        Snapshot {
            reread: sources.read,
            record: TaskRecord {
                ok: false,
                unfinished: false,
                recorded_at: checked_at,
                checked_at,
                command,
                env,
                cwd,
                globs,
                probe,
                sources: sources.files,
                outputs: FileStamps::default(),
                deps: deps.iter().filter_map(|d| self.stamp_of(config, d).map(|s| (d.name.clone(), s))).collect(),
                hashing: HASHING,
                fingerprint: Digest::default(),
            },
        }
    }
}

/// Which settings two records hold differently (both hashed the same way).
fn settings_differ(prev: &TaskRecord, now: &TaskRecord) -> Vec<Setting> {
    [
        (Setting::Command, prev.command != now.command),
        (Setting::Env, prev.env != now.env),
        (Setting::Cwd, prev.cwd != now.cwd),
        (Setting::Globs, prev.globs != now.globs),
        (Setting::Probe, prev.probe != now.probe),
    ]
    .into_iter()
    .filter_map(|(what, differs)| differs.then_some(what))
    .collect()
}

/// A service's fingerprint from its record: its settings (with its probe, unless as an older irun hashed it), the
/// content of its sources and its deps' stamps.
fn fingerprint_of(record: &TaskRecord, with_probe: bool) -> Digest {
    let mut h = Xxh3::new();
    let mut part = |text: &str| {
        h.write(text.as_bytes());
        h.write(b"\0");
    };
    record.command.with_text(&mut part);
    record.env.with_text(&mut part);
    part(&record.cwd);
    record.globs.with_text(&mut part);
    if with_probe {
        record.probe.with_text(&mut part);
    }
    for (path, stamp) in &record.sources {
        h.write(path.as_bytes());
        stamp.hash.with_text(|t| h.write(t.as_bytes()));
    }
    for (dep, stamp) in &record.deps {
        h.write(dep.as_bytes());
        h.write(stamp.as_bytes());
    }
    Digest::of(h.digest128())
}

fn now_ns() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_nanos() as i64)
}

/// Verdicts for every task of `plan` without running anything: a dep that would run counts as having run (a
/// service does not: its fingerprint does). Groups get `None` (they run nothing themselves).
pub(crate) fn predict(plan: &crate::plan::Plan, config: &Config, checker: &Checker) -> PerTask<Option<Verdict>> {
    use crate::config::TaskKind;
    let mut verdicts: PerTask<Option<Verdict>> = PerTask::filled(config.tasks.len(), None);
    let mut runs = PerTask::filled(config.tasks.len(), false);
    for &i in &plan.order {
        let dep_runs = plan[i].deps.iter().find(|&&d| runs[d]).map(|&d| &plan[d].name);
        match plan[i].kind {
            TaskKind::Group => runs[i] = dep_runs.is_some(),
            kind => {
                let (v, _) = match checker.verdict(config, &config.tasks[i], dep_runs) {
                    // Nothing has run yet: the dep will.
                    (Verdict::Run(RunReason::DepRan(d)), s) => (Verdict::Run(RunReason::DepWillRun(d)), s),
                    other => other,
                };
                runs[i] = match kind {
                    TaskKind::Task => v != Verdict::UpToDate,
                    // A service whose dep runs again will have another fingerprint when it starts.
                    _ => plan[i].deps.iter().any(|&d| runs[d]),
                };
                verdicts[i] = Some(v);
            }
        }
    }
    verdicts
}

/// Per service, with the verdicts [`predict`] gives: whether a run would leave it unstarted, as the engine does with
/// a service that is not a target and none of whose needers will run (a service needer: none that is started).
pub(crate) fn not_started(plan: &crate::plan::Plan, verdicts: &PerTask<Option<Verdict>>) -> PerTask<bool> {
    use crate::config::TaskKind;
    let mut idle = PerTask::filled(verdicts.len(), false);
    // Needers come after the services they need: walk back.
    for &s in plan.order.iter().rev() {
        if plan[s].kind != TaskKind::Service || plan[s].foreground {
            continue;
        }
        idle[s] = plan[s].needers.iter().all(|&n| match plan[n].kind {
            TaskKind::Service => idle[n],
            _ => verdicts[n] == Some(Verdict::UpToDate),
        });
    }
    idle
}
