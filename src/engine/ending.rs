//! How tasks end: what a runner's report means for the task (its outcome), what a failure or a signal does to the
//! rest of the run, and stop requests (which only escalate).

use std::time::Duration;

use nix::sys::signal::Signal;

use super::{Control, Effect, End, Engine, Life, Phase, Stopping, Then};
use crate::config::{Restart, TaskId, TaskKind};
use crate::events::{Event, TaskName};
use crate::outcome::{Blocked, ChildExit, Failure, Outcome, StopReason};

impl Engine {
    pub(super) fn on_exited(&mut self, i: TaskId, end: End, duration: Duration) {
        let mut life = self.nodes[i].life.clone();
        if !life.alive() {
            return;
        }
        if self.plan[i].interactive && end == End::Exited(ChildExit::Signal(Signal::SIGINT as i32)) {
            life = self.ctrl_c_through(i, life);
        }
        if let End::Exited(exit) = end
            && self.restart(i, &life, exit)
        {
            self.nodes[i].earlier += duration;
            return;
        }
        // Its end is the end of every instance it ran since the engine spawned it.
        let duration = duration + std::mem::take(&mut self.nodes[i].earlier);
        if let Life::Stopping(Stopping { then: Then::Rerun, .. }) = life
            && self.interrupted.is_none()
        {
            // Stopped to be run again (watch mode): back to waiting. Reporters see this instance end.
            self.emit(Event::TaskFinished { task: self.name(i), outcome: Outcome::Restarted, duration });
            self.release_slot(i);
            self.set_life(i, Life::Waiting);
            // With keep-going, a dep may have failed meanwhile: then it cannot run again.
            let blocked = self.plan[i].deps.iter().find_map(|&d| self.blocks(d, i));
            if let (true, Some(why)) = (self.opts.keep_going, blocked) {
                self.finish(i, Outcome::Blocked(why), Duration::ZERO);
                self.block_dependents_of(i);
            }
            return;
        }
        let outcome = self.outcome_of(i, &life, end);
        self.finish(i, outcome, duration);
    }

    /// A service whose process exited by itself (not asked to stop) is started again after a growing pause, if its
    /// `restart` policy says so and it has restarts left; until it is ready again, tasks that need it wait.
    fn restart(&mut self, i: TaskId, life: &Life, exit: ChildExit) -> bool {
        let planned = &self.plan[i];
        let node = &self.nodes[i];
        let policy = match planned.restart {
            Restart::No => false,
            Restart::OnFailure => !exit.success(),
            Restart::Always => true,
        };
        let wanted = policy && node.restarts < planned.max_restarts;
        if !wanted || matches!(life, Life::Stopping(_)) || self.interrupted.is_some() {
            return false;
        }
        let attempt = node.restarts + 1;
        let delay = restart_delay(attempt);
        let node = &mut self.nodes[i];
        node.restarts = attempt;
        let max = planned.max_restarts;
        self.restarting.insert(i);
        self.emit(Event::TaskRestarting { task: self.name(i), attempt, max, exit, delay });
        // Told what its first instance was told.
        let changed = self.nodes[i].changed.clone();
        self.out.push(Effect::Spawn { task: i, restarting: true, changed, after_exit: Some(delay) });
        true
    }

    /// How a task that was alive (`life`) ended, given what its runner reports.
    pub(super) fn outcome_of(&self, i: TaskId, life: &Life, end: End) -> Outcome {
        let service = self.kind(i) == TaskKind::Service;
        let exit = match end {
            End::NotStarted(f) => return Outcome::Failed(Box::new(f)),
            End::Broken(why) => return Outcome::Failed(Box::new(Failure::Internal(why))),
            End::WantedTerminal(signal) => return Outcome::Failed(Box::new(Failure::WantedTerminal { signal })),
            End::TimedOut(after) => return Outcome::TimedOut(after),
            End::NotReady { timeout, check } => return Outcome::Failed(Box::new(Failure::NotReady { timeout, check })),
            End::Exited(exit) => Some(exit),
            End::Stopped => None,
        };
        match (life, exit) {
            // A task's exit code counts, even while a stop was pending: irun had not signalled it yet.
            (_, Some(exit)) if !service && exit.success() => Outcome::Ok,
            (_, Some(exit)) if !service => Outcome::Failed(Box::new(Failure::Exit(exit))),
            (Life::Stopping(s), _) if !service || !s.ready => Outcome::Cancelled,
            // A service that was being stopped may end any way it likes; only one stopped because it was no
            // longer needed has done its job.
            (Life::Stopping(s), _) => match s.control {
                Control::Stop(StopReason::NotNeeded | StopReason::Reconfigured) => Outcome::Ok,
                _ => Outcome::Cancelled,
            },
            (_, None) => Outcome::Cancelled,
            (Life::Ready, Some(exit)) => {
                let needed_by: Vec<TaskName> = self.plan[i]
                    .needers
                    .iter()
                    .filter(|&&n| !matches!(self.nodes[n].life, Life::Done(_)))
                    .map(|&n| self.name(n))
                    .collect();
                let foreground = self.plan[i].foreground || self.opts.watch.is_some();
                match (foreground, exit.success()) {
                    (true, true) if needed_by.is_empty() => Outcome::Ok,
                    (true, true) => Outcome::Failed(Box::new(Failure::ExitedWhileNeeded { exit, needed_by })),
                    (true, false) => Outcome::Failed(Box::new(Failure::Exit(exit))),
                    (false, _) => Outcome::Failed(Box::new(Failure::ExitedWhileNeeded { exit, needed_by: Vec::new() })),
                }
            }
            (_, Some(exit)) => Outcome::Failed(Box::new(Failure::ExitedBeforeReady(exit))),
        }
    }

    /// Record the end of task `i` and react to a failure.
    pub(super) fn finish(&mut self, i: TaskId, outcome: Outcome, duration: Duration) {
        self.release_slot(i);
        self.set_life(i, Life::Done(outcome.clone()));
        if self.kind(i) != TaskKind::Group {
            let took = match self.kind(i) {
                TaskKind::Service => self.nodes[i].ready_after,
                // Restored, not run: how long a run takes is unchanged.
                _ if matches!(outcome, Outcome::Cached(_)) => None,
                _ => outcome.is_recorded().then_some(duration),
            };
            self.out.push(Effect::Record { task: i, outcome: outcome.clone(), took });
            if outcome.is_recorded() {
                self.out.push(Effect::SaveState { urgent: false });
            }
        }
        let failure = outcome.is_failure();
        self.emit(Event::TaskFinished { task: self.name(i), outcome, duration });
        if self.opts.watch.is_none() {
            self.stop_unneeded_services(i);
        }
        if failure {
            self.failed = true;
            if self.opts.keep_going {
                self.block_dependents_of(i);
            } else if self.opts.watch.is_some() {
                self.abort_cycle();
            } else {
                self.abort(StopReason::Cancelled);
            }
        }
    }

    /// Services that `i` needed and that nothing else still needs are stopped (outside watch mode).
    pub(super) fn stop_unneeded_services(&mut self, i: TaskId) {
        for idx in 0..self.needs[i].len() {
            let s = self.needs[i][idx];
            if self.unneeded(s) {
                self.stop(s, Control::Stop(StopReason::NotNeeded), Then::End);
            }
        }
    }

    /// Ask a live task to stop (or to stop harder), and what to do once it has.
    pub(super) fn stop(&mut self, i: TaskId, control: Control, then: Then) {
        let (control, slot, ready, send) = match self.nodes[i].life.clone() {
            Life::Starting | Life::Running => (control, true, false, true),
            Life::Ready => (control, false, true, true),
            Life::Stopping(s) => (s.control.escalate(control), s.slot, s.ready, s.control.weaker_than(control)),
            _ => return,
        };
        self.set_life(i, Life::Stopping(Stopping { control, then, slot, ready }));
        if send {
            self.out.push(Effect::Stop { task: i, control });
        }
    }

    /// Keep-going: tasks waiting on a dep that failed, did not run or is gone are blocked, transitively.
    pub(super) fn block_dependents_of(&mut self, from: TaskId) {
        let mut stack = vec![from];
        let mut walked = std::collections::HashSet::new();
        while let Some(d) = stack.pop() {
            for idx in 0..self.plan[d].dependents.len() {
                let i = self.plan[d].dependents[idx];
                if self.kind(i) == TaskKind::Group && matches!(self.nodes[i].life, Life::Done(_)) {
                    // A finished group still lends what it gathers: look through it (once).
                    if walked.insert(i) {
                        stack.push(i);
                    }
                    continue;
                }
                if self.nodes[i].life.phase() != Phase::Pending {
                    continue;
                }
                if let Some(why) = self.blocks(d, i) {
                    if self.nodes[i].life == Life::Queued {
                        self.queue.remove(&self.rank[i]);
                    }
                    self.finish(i, Outcome::Blocked(why), Duration::ZERO);
                    // Not `finish`'s business (no recursion): long chains are walked here.
                    stack.push(i);
                }
            }
        }
    }

    /// Nothing runs, yet tasks wait: their deps can never be met. Block them rather than wait forever.
    pub(super) fn give_up_on_waiting(&mut self) {
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            if self.nodes[i].life.phase() != Phase::Pending {
                continue;
            }
            let why = self.plan[i].deps.iter().find_map(|&d| self.blocks(d, i)).unwrap_or(Blocked::Unmeetable);
            self.finish(i, Outcome::Blocked(why), Duration::ZERO);
        }
    }

    /// Fail-fast or a signal: nothing new starts, everything alive is stopped.
    pub(super) fn abort(&mut self, reason: StopReason) {
        self.aborting = true;
        self.queued_change = None;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].life.phase() {
                Phase::Pending => self.cancel(i),
                Phase::Active | Phase::Ready => self.stop(i, Control::Stop(reason), Then::End),
                Phase::Done => {}
            }
        }
    }

    pub(super) fn cancel(&mut self, i: TaskId) {
        if self.nodes[i].life == Life::Queued {
            self.queue.remove(&self.rank[i]);
        }
        self.finish(i, Outcome::Cancelled, Duration::ZERO);
    }

    /// Watch mode's fail-fast: the rest of this cycle is cancelled, but services stay up for the next one.
    pub(super) fn abort_cycle(&mut self) {
        self.aborting = true;
        for idx in 0..self.plan.order.len() {
            let i = self.plan.order[idx];
            match self.nodes[i].life.clone() {
                Life::Waiting | Life::Checking | Life::Queued => self.cancel(i),
                Life::Starting | Life::Running if self.kind(i) != TaskKind::Service => {
                    self.stop(i, Control::Stop(StopReason::Cancelled), Then::End);
                }
                // A service being restarted is not started again by this cycle.
                Life::Stopping(s) if s.then == Then::Rerun => {
                    self.nodes[i].life = Life::Stopping(Stopping { then: Then::End, ..s });
                }
                _ => {}
            }
        }
    }

    /// Ctrl-C reached the interactive task `i` (it had the terminal), not irun: as a shell does, irun takes it as
    /// its own Ctrl-C once the task has ended of it. The task, already gone, is not asked to stop (nor counted as
    /// running); the rest stop as interrupted (SIGINT), not as cancelled after a failure. Its life from here on.
    fn ctrl_c_through(&mut self, i: TaskId, life: Life) -> Life {
        if self.interrupted.is_some() {
            return life;
        }
        let control = Control::Stop(StopReason::Interrupted);
        let stopping = Life::Stopping(Stopping { control, then: Then::End, slot: life.holds_slot(), ready: false });
        self.set_life(i, stopping.clone());
        let running = self.running() - 1;
        self.interrupt(Signal::SIGINT, running);
        stopping
    }

    fn running(&self) -> usize {
        self.plan.order.iter().filter(|&&i| self.nodes[i].life.alive()).count()
    }

    pub(super) fn on_signal(&mut self, sig: Signal) {
        let running = self.running();
        self.interrupt(sig, running);
    }

    /// Signal `sig` for irun, with `running` tasks alive: the first stops everything gracefully, the next kill.
    fn interrupt(&mut self, sig: Signal, running: usize) {
        self.signals += 1;
        self.emit(Event::Interrupted { signal: sig, count: self.signals, running });
        if self.interrupted.is_none() {
            self.interrupted = Some(sig);
            self.abort(StopReason::for_signal(sig));
        } else {
            for idx in 0..self.plan.order.len() {
                let i = self.plan.order[idx];
                if self.nodes[i].life.alive() {
                    self.stop(i, Control::Kill, Then::End);
                }
            }
        }
    }

    /// Irun.toml changed: stop these tasks (gone from it, or changed), before a new engine takes over.
    pub(crate) fn retire(&mut self, tasks: &[TaskId]) -> Vec<Effect> {
        for &i in tasks {
            self.stop(i, Control::Stop(StopReason::Reconfigured), Then::End);
        }
        self.advance();
        std::mem::take(&mut self.out)
    }
}

/// The pause before restart number `n` (from 1): 100ms, doubling each time, at most 10s.
pub(crate) fn restart_delay(n: u32) -> Duration {
    (Duration::from_millis(100) * 2u32.saturating_pow(n.saturating_sub(1).min(16))).min(Duration::from_secs(10))
}
