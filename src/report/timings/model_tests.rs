use super::*;
use crate::report::timings::record::Planned;

fn planned(list: &[(&str, TaskKind, &[&str])]) -> Vec<Planned> {
    list.iter()
        .map(|(n, k, d)| Planned { name: n.to_string(), kind: *k, deps: d.iter().map(|s| s.to_string()).collect() })
        .collect()
}

fn rec(at_ms: u64, what: What) -> Record {
    Record { at: at_ms * 1000, shard: None, what }
}

fn started(t: &str) -> What {
    What::Started { task: t.into(), command: Some(format!("run {t}")) }
}

fn finished(t: &str, status: &str) -> What {
    What::Finished { task: t.into(), status: status.into(), reason: None, duration_us: 0 }
}

fn build(records: Vec<Record>) -> Vec<Section> {
    let mut b = Builder::default();
    for r in records {
        b.push(r);
    }
    b.finish()
}

fn bar<'a>(s: &'a Section, name: &str) -> &'a Bar {
    s.bars.iter().find(|b| b.name == name).unwrap_or_else(|| panic!("no bar for {name}: {s:?}"))
}

const T: TaskKind = TaskKind::Task;
const S: TaskKind = TaskKind::Service;
const G: TaskKind = TaskKind::Group;

#[test]
fn tasks_take_the_lowest_free_slot_and_give_it_back_when_they_end() {
    let tasks = planned(&[("a", T, &[]), ("b", T, &[]), ("c", T, &[])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: false, tasks }),
        rec(1, started("a")),
        rec(2, started("b")),
        rec(5, finished("a", "ok")),
        rec(6, started("c")),
        rec(9, finished("b", "ok")),
        rec(10, finished("c", "failed")),
        rec(11, What::RunFinished { outcome: "failed".into() }),
    ]);
    assert_eq!(s.len(), 1);
    let s = &s[0];
    assert_eq!((bar(s, "a").lane, bar(s, "b").lane, bar(s, "c").lane), (Lane::Slot(0), Lane::Slot(1), Lane::Slot(0)));
    assert_eq!(s.slots, 2);
    assert_eq!(bar(s, "c").status, "failed");
    assert_eq!(bar(s, "a").command.as_deref(), Some("run a"));
    assert_eq!((s.start, s.end, s.outcome.as_deref()), (0, 11_000, Some("failed")));
}

#[test]
fn a_service_holds_a_slot_until_ready_and_has_a_lane_of_its_own() {
    let tasks = planned(&[("svc", S, &[]), ("a", T, &[]), ("client", T, &["svc"])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 1, watch: false, tasks }),
        rec(1, started("svc")),
        rec(4, What::Ready { task: "svc".into(), probe: Some("tcp 127.0.0.1:9".into()) }),
        rec(4, started("client")),
        rec(8, finished("client", "ok")),
        rec(8, What::Stopping { task: "svc".into(), reason: "no longer needed".into() }),
        rec(9, finished("svc", "ok")),
    ]);
    let s = &s[0];
    let svc = bar(s, "svc");
    assert_eq!((svc.lane, svc.slot, svc.ready, svc.stopping), (Lane::Service(0), Some(0), Some(4000), Some(8000)));
    // The slot came back at readiness: the client took slot 0.
    assert_eq!(bar(s, "client").lane, Lane::Slot(0));
    assert_eq!(s.services, ["svc"]);
    assert_eq!(s.outcome, None, "the events stopped before the run's end");
}

#[test]
fn waiting_for_readiness_and_for_a_slot_are_told_apart() {
    let tasks = planned(&[("svc", S, &[]), ("setup", T, &[]), ("client", T, &["svc", "setup"]), ("x", T, &[])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 1, watch: false, tasks }),
        rec(0, started("setup")),
        rec(2, finished("setup", "ok")),
        rec(2, started("svc")),
        rec(5, What::Ready { task: "svc".into(), probe: None }),
        rec(5, started("x")),
        rec(7, finished("x", "ok")),
        rec(7, started("client")),
        rec(9, finished("client", "ok")),
    ]);
    let client = bar(&s[0], "client");
    // setup was done at 2, the service ready at 5: readiness from 2 to 5, a slot from 5 to 7.
    assert_eq!((client.queued, client.satisfied, client.started), (Some(2000), Some(5000), Some(7000)));
}

#[test]
fn tasks_that_ran_no_process_are_on_no_lane_with_their_status() {
    let tasks = planned(&[("a", T, &[]), ("b", T, &["a"]), ("c", T, &[]), ("all", G, &["b", "c"])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: false, tasks }),
        rec(0, finished("c", "up_to_date")),
        rec(1, started("a")),
        rec(
            3,
            What::Finished {
                task: "a".into(),
                status: "failed".into(),
                reason: Some("exit code 1".into()),
                duration_us: 2000,
            },
        ),
        rec(3, finished("b", "skipped")),
        rec(3, finished("all", "skipped")),
    ]);
    let s = &s[0];
    assert_eq!(bar(s, "c").lane, Lane::NoProcess);
    assert_eq!(bar(s, "b").status, "skipped");
    assert_eq!(bar(s, "a").detail.as_deref(), Some("exit code 1"));
    assert!(s.bars.iter().all(|b| b.name != "all"), "a group has no bar");
}

#[test]
fn the_critical_path_is_marked_through_groups() {
    let tasks = planned(&[("a", T, &[]), ("b", T, &[]), ("g", G, &["a", "b"]), ("c", T, &["g"])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: false, tasks }),
        rec(0, started("a")),
        rec(0, started("b")),
        rec(2, finished("a", "ok")),
        rec(6, finished("b", "ok")),
        rec(6, finished("g", "ok")),
        rec(6, started("c")),
        rec(8, finished("c", "ok")),
    ]);
    let s = &s[0];
    assert_eq!(s.critical, ["b", "c"]);
    assert!(bar(s, "b").critical && bar(s, "c").critical && !bar(s, "a").critical);
}

#[test]
fn watch_cycles_are_sections_and_a_running_service_goes_on_into_the_next() {
    let tasks = planned(&[("svc", S, &[]), ("t", T, &["svc"])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: true, tasks }),
        rec(1, started("svc")),
        rec(2, What::Ready { task: "svc".into(), probe: None }),
        rec(2, started("t")),
        rec(3, finished("t", "ok")),
        rec(3, What::CycleFinished { cycle: 0, outcome: "passed".into() }),
        rec(10, What::CycleStarted { cycle: 1 }),
        rec(11, What::WillRun { task: "t".into(), why: "`src/a.py` changed".into() }),
        rec(11, started("t")),
        rec(12, finished("t", "failed")),
        rec(12, What::CycleFinished { cycle: 1, outcome: "failed".into() }),
        rec(20, What::Stopping { task: "svc".into(), reason: "interrupted".into() }),
        rec(21, finished("svc", "cancelled")),
        rec(21, What::RunFinished { outcome: "interrupted".into() }),
    ]);
    let titles: Vec<&str> = s.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["cycle 0", "cycle 1"]);
    let (c0, c1) = (&s[0], &s[1]);
    assert_eq!(bar(c0, "svc").finished, None, "still running at the end of cycle 0");
    let svc = bar(c1, "svc");
    assert!(svc.carried);
    assert_eq!(svc.lane, Lane::Service(0));
    assert_eq!(bar(c1, "t").why.as_deref(), Some("`src/a.py` changed"));
    assert_eq!(bar(c1, "t").status, "failed");
    // The service stopped after cycle 1 ended: what came between cycles is kept with it, not lost.
    assert_eq!((c1.start, c1.end), (10_000, 12_000));
}

#[test]
fn a_restarted_service_keeps_one_bar() {
    let tasks = planned(&[("svc", S, &[])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 1, watch: false, tasks }),
        rec(1, started("svc")),
        rec(2, What::Ready { task: "svc".into(), probe: None }),
        rec(5, What::Restarting { task: "svc".into(), exit: "exit code 1".into() }),
        rec(6, started("svc")),
        rec(7, What::Ready { task: "svc".into(), probe: None }),
        rec(9, finished("svc", "ok")),
    ]);
    let svc = bar(&s[0], "svc");
    assert_eq!(s[0].bars.len(), 1);
    assert_eq!((svc.started, svc.restarts.clone(), svc.finished), (Some(1000), vec![5000], Some(9000)));
}

#[test]
fn shards_read_together_are_sections_of_their_own() {
    let tasks = planned(&[("a", T, &[])]);
    let shard = |s: &str, at, what| Record { at, shard: Some(s.into()), what };
    let s = build(vec![
        shard("1/2", 0, What::RunStarted { jobs: 1, watch: false, tasks: tasks.clone() }),
        shard("1/2", 1000, started("a")),
        shard("1/2", 2000, finished("a", "ok")),
        shard("1/2", 2000, What::RunFinished { outcome: "passed".into() }),
        shard("2/2", 500, What::RunStarted { jobs: 1, watch: false, tasks }),
        shard("2/2", 900, finished("a", "up_to_date")),
        shard("2/2", 900, What::RunFinished { outcome: "passed".into() }),
    ]);
    let titles: Vec<&str> = s.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["shard 1/2: run", "shard 2/2: run"]);
}

#[test]
fn the_open_section_can_be_looked_at_before_the_end() {
    let mut b = Builder::default();
    b.push(rec(0, What::RunStarted { jobs: 1, watch: true, tasks: planned(&[("a", T, &[])]) }));
    b.push(rec(1, started("a")));
    let now = b.sections();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].bars[0].status, "running");
    assert_eq!(now[0].end, 1000);
}

proptest::proptest! {
    /// However starts and ends interleave, no two tasks are on one slot at once, and there are no more slots than
    /// tasks ever ran at once.
    #[test]
    fn slots_never_hold_two_tasks_at_once(choices in proptest::collection::vec(0u8..=255, 1..80), n in 1usize..12) {
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let tasks = names.iter().map(|t| Planned { name: t.clone(), kind: T, deps: vec![] }).collect();
        let mut records = vec![rec(0, What::RunStarted { jobs: 4, watch: false, tasks })];
        let (mut waiting, mut running): (Vec<usize>, Vec<usize>) = ((0..n).collect(), Vec::new());
        let (mut now, mut most) = (1, 0);
        for c in choices.iter().copied().chain(std::iter::repeat_n(1, 2 * n)) {
            let start = !waiting.is_empty() && (running.is_empty() || c % 2 == 0);
            if start {
                let t = waiting.remove(usize::from(c) % waiting.len());
                records.push(rec(now, started(&names[t])));
                running.push(t);
                most = most.max(running.len());
            } else if !running.is_empty() {
                let t = running.remove(usize::from(c / 2) % running.len());
                records.push(rec(now, finished(&names[t], "ok")));
            }
            now += 1;
        }
        let s = &build(records)[0];
        proptest::prop_assert_eq!(s.slots, most);
        for a in &s.bars {
            for b in s.bars.iter().filter(|b| b.name != a.name && b.lane == a.lane) {
                let apart = a.finished.unwrap() <= b.started.unwrap() || b.finished.unwrap() <= a.started.unwrap();
                proptest::prop_assert!(apart, "{} and {} share {:?}", a.name, b.name, a.lane);
            }
        }
    }
}
