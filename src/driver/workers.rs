//! A few threads for blocking work the driver's loop must not wait on (remote cache requests). They start with the
//! first job, and are never joined: irun ends without waiting for a request still going (each has timeouts).

use std::sync::mpsc;
use std::sync::{Arc, Mutex};

pub(super) type Job = Box<dyn FnOnce() + Send>;

pub(super) struct Workers {
    /// How many jobs run at once.
    threads: usize,
    jobs: Option<mpsc::Sender<Job>>,
}

impl Workers {
    pub(super) fn new(threads: usize) -> Workers {
        Workers { threads, jobs: None }
    }

    /// Run `job` on one of the threads, as soon as one is free.
    pub(super) fn run(&mut self, job: Job) {
        let threads = self.threads;
        let jobs = self.jobs.get_or_insert_with(|| start(threads));
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            // No thread could be started: the job runs here rather than not at all.
            job();
        }
    }
}

fn start(threads: usize) -> mpsc::Sender<Job> {
    let (tx, rx) = mpsc::channel::<Job>();
    let rx = Arc::new(Mutex::new(rx));
    for i in 0..threads {
        let rx = rx.clone();
        let work = move || {
            loop {
                let job = match rx.lock() {
                    Ok(rx) => rx.recv(),
                    Err(_) => return,
                };
                match job {
                    // A job that panics ends itself, not the thread.
                    Ok(job) => drop(std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))),
                    Err(_) => return,
                }
            }
        };
        // A thread that cannot be started leaves the others (and with none, `run` does the job itself).
        let _ = std::thread::Builder::new().name(format!("irun-cache-{i}")).spawn(work);
    }
    tx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_runs() {
        let mut workers = Workers::new(3);
        let (tx, rx) = mpsc::channel();
        for i in 0..20 {
            let tx = tx.clone();
            workers.run(Box::new(move || tx.send(i).unwrap()));
        }
        let mut got: Vec<i32> = (0..20).map(|_| rx.recv().unwrap()).collect();
        got.sort();
        assert_eq!(got, (0..20).collect::<Vec<_>>());
    }
}
