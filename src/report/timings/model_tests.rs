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
        // As the engine says it: the first run is cycle 0.
        rec(0, What::CycleStarted { cycle: 0, restarted: false }),
        rec(1, started("svc")),
        rec(2, What::Ready { task: "svc".into(), probe: None }),
        rec(2, started("t")),
        rec(3, finished("t", "ok")),
        rec(3, What::CycleFinished { cycle: 0, outcome: "passed".into() }),
        rec(10, What::CycleStarted { cycle: 1, restarted: false }),
        rec(11, What::WillRun { task: "t".into(), why: "`src/a.py` changed".into() }),
        rec(11, started("t")),
        rec(12, finished("t", "failed")),
        rec(12, What::CycleFinished { cycle: 1, outcome: "failed".into() }),
        rec(20, What::Stopping { task: "svc".into(), reason: "interrupted".into() }),
        rec(21, finished("svc", "cancelled")),
        rec(21, What::RunFinished { outcome: "interrupted".into() }),
    ]);
    let titles: Vec<&str> = s.iter().map(|s| s.title.as_str()).collect();
    assert_eq!(titles, ["cycle 0", "cycle 1"], "one section per cycle");
    let (c0, c1) = (&s[0], &s[1]);
    assert_eq!(bar(c0, "svc").finished, None, "still running at the end of cycle 0");
    let svc = bar(c1, "svc");
    assert!(svc.carried);
    assert_eq!(svc.lane, Lane::Service(0));
    assert_eq!(bar(c1, "t").why.as_deref(), Some("`src/a.py` changed"));
    assert_eq!(bar(c1, "t").status, "failed");
    assert_eq!((c1.start, c1.end), (10_000, 12_000));
}

#[test]
fn a_service_restarted_before_it_was_ready_keeps_its_slot_and_takes_no_other() {
    let tasks = planned(&[("svc", S, &[]), ("a", T, &[])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: false, tasks }),
        rec(1, started("svc")),
        rec(2, What::Restarting { task: "svc".into(), exit: "exit code 1".into() }),
        rec(3, started("a")),
        rec(4, started("svc")),
        rec(6, What::Ready { task: "svc".into(), probe: None }),
        rec(7, finished("a", "ok")),
    ]);
    let s = &s[0];
    assert_eq!((bar(s, "svc").slot, bar(s, "a").lane, s.slots), (Some(0), Lane::Slot(1), 2));
}

#[test]
fn a_service_restarted_after_it_was_ready_takes_no_slot() {
    let tasks = planned(&[("svc", S, &[]), ("a", T, &[])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: false, tasks }),
        rec(1, started("svc")),
        rec(2, What::Ready { task: "svc".into(), probe: None }),
        rec(3, started("a")),
        rec(4, What::Restarting { task: "svc".into(), exit: "exit code 1".into() }),
        rec(5, started("svc")),
        rec(6, What::Ready { task: "svc".into(), probe: None }),
        rec(7, finished("a", "ok")),
    ]);
    assert_eq!((bar(&s[0], "a").lane, s[0].slots), (Lane::Slot(0), 1));
}

#[test]
fn a_service_started_again_in_a_later_cycle_is_a_new_instance() {
    let tasks = planned(&[("svc", S, &[]), ("t", T, &["svc"])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: true, tasks }),
        rec(0, What::CycleStarted { cycle: 0, restarted: false }),
        rec(1, started("svc")),
        rec(2, What::Ready { task: "svc".into(), probe: None }),
        rec(2, started("t")),
        rec(3, finished("t", "ok")),
        rec(3, What::CycleFinished { cycle: 0, outcome: "passed".into() }),
        rec(10, What::CycleStarted { cycle: 1, restarted: false }),
        rec(10, What::Stopping { task: "svc".into(), reason: "restarting: its inputs changed".into() }),
        rec(11, finished("svc", "restarted")),
        rec(11, started("svc")),
        rec(14, What::Ready { task: "svc".into(), probe: None }),
        rec(14, started("t")),
        rec(15, finished("t", "ok")),
        rec(15, What::CycleFinished { cycle: 1, outcome: "passed".into() }),
    ]);
    let svc = bar(&s[1], "svc");
    assert_eq!((svc.started, svc.ready, svc.stopping, svc.carried), (Some(11_000), Some(14_000), None, false));
    let t = bar(&s[1], "t");
    assert_eq!((t.queued, t.satisfied), (Some(10_000), Some(14_000)), "it waited for the new instance's readiness");
    assert_eq!(s[1].critical, ["svc", "t"]);
}

#[test]
fn a_replaced_cycle_ends_restarted_and_what_still_runs_goes_on_into_the_next() {
    let tasks = planned(&[("u", T, &[]), ("v", T, &[])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: true, tasks }),
        rec(0, What::CycleStarted { cycle: 0, restarted: false }),
        rec(1, started("u")),
        rec(1, started("v")),
        rec(2, What::CycleStarted { cycle: 1, restarted: true }),
        rec(2, What::Stopping { task: "v".into(), reason: "restarting".into() }),
        rec(3, finished("v", "restarted")),
        rec(3, started("v")),
        rec(5, finished("u", "ok")),
        rec(6, finished("v", "ok")),
        rec(6, What::CycleFinished { cycle: 1, outcome: "passed".into() }),
    ]);
    assert_eq!(s[0].outcome.as_deref(), Some("restarted"));
    let u = bar(&s[1], "u");
    assert!(u.carried && matches!(u.lane, Lane::Slot(_)), "{u:?}");
    assert_eq!((u.started, u.finished, u.status.as_str()), (Some(1000), Some(5000), "ok"));
    let v = bar(&s[1], "v");
    assert_eq!((v.started, v.finished, v.carried), (Some(3000), Some(6000), false));
    assert_ne!(u.lane, v.lane);
}

#[test]
fn waits_count_from_the_decision_to_run_and_see_through_groups() {
    let tasks = planned(&[("svc", S, &[]), ("setup", T, &[]), ("g", G, &["svc", "setup"]), ("client", T, &["g"])]);
    let s = build(vec![
        rec(0, What::RunStarted { jobs: 2, watch: false, tasks }),
        rec(0, started("setup")),
        rec(0, started("svc")),
        rec(1, finished("setup", "ok")),
        // Its up-to-date check took until 2: not waiting for anything.
        rec(2, What::WillRun { task: "client".into(), why: "never ran".into() }),
        rec(5, What::Ready { task: "svc".into(), probe: None }),
        rec(5, finished("g", "ok")),
        rec(5, started("client")),
    ]);
    let client = bar(&s[0], "client");
    assert_eq!((client.queued, client.satisfied), (Some(2000), Some(5000)));
}

#[test]
fn what_becomes_ready_is_a_service_even_when_the_plan_was_not_seen() {
    let s = build(vec![
        rec(1, started("svc")),
        rec(2, What::Ready { task: "svc".into(), probe: None }),
        rec(3, started("a")),
    ]);
    let s = &s[0];
    assert_eq!((bar(s, "svc").lane, bar(s, "svc").slot, bar(s, "a").lane), (Lane::Service(0), Some(0), Lane::Slot(0)));
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
    /// However starts, readiness and ends interleave, no slot is held twice at once (a task from its start to its end,
    /// a service from its start until ready), and there are no more slots than were ever held at once.
    #[test]
    fn slots_never_hold_two_at_once(choices in proptest::collection::vec(0u8..=255, 1..120), n in 1usize..12) {
        // Every third is a service.
        let names: Vec<String> = (0..n).map(|i| format!("t{i}")).collect();
        let kind = |i: usize| if i.is_multiple_of(3) { S } else { T };
        let tasks = (0..n).map(|i| Planned { name: names[i].clone(), kind: kind(i), deps: vec![] }).collect();
        let mut records = vec![rec(0, What::RunStarted { jobs: 4, watch: false, tasks })];
        // 0: waiting, 1: holding a slot, 2: a ready service, 3: ended.
        let mut state = vec![0u8; n];
        let (mut now, mut most) = (1, 0);
        for c in choices.iter().copied().chain(std::iter::repeat_n(0, 3 * n)) {
            let live: Vec<usize> = (0..n).filter(|&i| state[i] < 3).collect();
            let Some(&i) = live.get(usize::from(c) % live.len().max(1)) else { break };
            let what = match (state[i], c % 4 == 3 && kind(i) == S && state[i] == 1) {
                (0, _) => started(&names[i]),
                (1, true) => What::Ready { task: names[i].clone(), probe: None },
                _ => finished(&names[i], "ok"),
            };
            state[i] = match &what { What::Started { .. } => 1, What::Ready { .. } => 2, _ => 3 };
            records.push(rec(now, what));
            most = most.max(state.iter().filter(|&&s| s == 1).count());
            now += 1;
        }
        let s = &build(records)[0];
        proptest::prop_assert_eq!(s.slots, most);
        let holds: Vec<(usize, u64, u64, &str)> = s
            .bars
            .iter()
            .filter_map(|b| {
                let slot = match b.lane { Lane::Slot(n) => n, _ => b.slot? };
                let until = if b.kind == S { b.ready.or(b.finished) } else { b.finished };
                Some((slot, b.started?, until.unwrap_or(u64::MAX), b.name.as_str()))
            })
            .collect();
        for a in &holds {
            for b in holds.iter().filter(|b| b.3 != a.3 && b.0 == a.0) {
                proptest::prop_assert!(a.2 <= b.1 || b.2 <= a.1, "{} and {} share slot {}", a.3, b.3, a.0);
            }
        }
    }
}
