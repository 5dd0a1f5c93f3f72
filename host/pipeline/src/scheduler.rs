//! The DAG scheduler: which steps may start, and which can no longer run.
//!
//! Pure bookkeeping over step indices, no I/O: the executor asks it for the
//! steps to start, tells it how each ended, and records what it answers.

/// Where one step is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepState {
    /// Not started; some upstream step has not succeeded yet.
    Waiting,
    /// Started and not finished.
    Running,
    /// Finished and usable downstream (executed or served from the cache).
    Succeeded,
    /// Finished without usable outputs.
    Failed,
    /// Never started: an upstream step failed, or the run stopped.
    Skipped,
}

/// A step that will not run, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skip {
    pub step: usize,
    /// The upstream step that did not succeed (`None`: the run stopped).
    pub because: Option<usize>,
}

/// The state of every step of one run.
#[derive(Debug, Clone)]
pub struct Scheduler {
    upstream: Vec<Vec<usize>>,
    downstream: Vec<Vec<usize>>,
    state: Vec<StepState>,
}

impl Scheduler {
    /// A scheduler for steps `0..upstream.len()`, where `upstream[i]` lists
    /// the steps whose outputs step `i` reads.
    pub fn new(upstream: Vec<Vec<usize>>) -> Self {
        let mut downstream = vec![Vec::new(); upstream.len()];
        for (i, ups) in upstream.iter().enumerate() {
            for &u in ups {
                if !downstream[u].contains(&i) {
                    downstream[u].push(i);
                }
            }
        }
        Self {
            state: vec![StepState::Waiting; upstream.len()],
            upstream,
            downstream,
        }
    }

    /// Marks up to `room` steps whose upstream steps have all succeeded as
    /// running, and returns them in index order.
    pub fn start_ready(&mut self, room: usize) -> Vec<usize> {
        self.start_ready_or_held(room, |_, _| false)
    }

    /// As [`Scheduler::start_ready`], and also starts a step whose
    /// upstream steps have each either succeeded or are running where
    /// `held(upstream, step)` says the step can wait for it (an
    /// orchestrator that starts the step once that upstream succeeded).
    /// Such a step is running from then on, and the executor ends it
    /// (skipped) if an upstream step fails.
    pub fn start_ready_or_held(&mut self, room: usize, held: impl Fn(usize, usize) -> bool) -> Vec<usize> {
        let mut started = Vec::new();
        for i in 0..self.state.len() {
            if started.len() >= room {
                break;
            }
            let ready = self.state[i] == StepState::Waiting
                && self.upstream[i].iter().all(|&u| match self.state[u] {
                    StepState::Succeeded => true,
                    StepState::Running => held(u, i),
                    _ => false,
                });
            if ready {
                self.state[i] = StepState::Running;
                started.push(i);
            }
        }
        started
    }

    /// Records how a running step ended. When it failed, every step that
    /// depends on it (directly or not) and has not started is skipped; those
    /// are returned, each with the upstream step that stopped it.
    pub fn finish(&mut self, step: usize, succeeded: bool) -> Vec<Skip> {
        self.state[step] = if succeeded {
            StepState::Succeeded
        } else {
            StepState::Failed
        };
        let mut skipped = Vec::new();
        if succeeded {
            return skipped;
        }
        let mut stack = vec![step];
        while let Some(stopped) = stack.pop() {
            for &j in &self.downstream[stopped] {
                if self.state[j] == StepState::Waiting {
                    self.state[j] = StepState::Skipped;
                    skipped.push(Skip {
                        step: j,
                        because: Some(stopped),
                    });
                    stack.push(j);
                }
            }
        }
        skipped
    }

    /// Skips every step that has not started (the run stops), in index order.
    pub fn skip_waiting(&mut self) -> Vec<Skip> {
        let mut skipped = Vec::new();
        for (i, state) in self.state.iter_mut().enumerate() {
            if *state == StepState::Waiting {
                *state = StepState::Skipped;
                skipped.push(Skip { step: i, because: None });
            }
        }
        skipped
    }

    /// How many steps are running.
    pub fn running(&self) -> usize {
        self.state.iter().filter(|s| **s == StepState::Running).count()
    }

    /// The state of step `i`.
    pub fn state(&self, i: usize) -> StepState {
        self.state[i]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs the scheduler to the end with `max` steps at once, every step
    /// succeeding except those in `fail`; the order steps started in (as
    /// batches) and the skips.
    fn simulate(upstream: Vec<Vec<usize>>, max: usize, fail: &[usize]) -> (Vec<Vec<usize>>, Vec<Skip>) {
        let mut s = Scheduler::new(upstream);
        let mut batches = Vec::new();
        let mut skips = Vec::new();
        loop {
            let room = max - s.running();
            let started = s.start_ready(room);
            if started.is_empty() && s.running() == 0 {
                break;
            }
            for &i in &started {
                skips.extend(s.finish(i, !fail.contains(&i)));
            }
            batches.push(started);
        }
        (batches, skips)
    }

    #[test]
    fn a_diamond_runs_its_middle_together_and_joins() {
        // 0 -> {1, 2} -> 3
        let (batches, skips) = simulate(vec![vec![], vec![0], vec![0], vec![1, 2]], 4, &[]);
        assert_eq!(batches, vec![vec![0], vec![1, 2], vec![3]]);
        assert!(skips.is_empty());
    }

    #[test]
    fn fan_out_respects_the_limit_and_fan_in_waits_for_all() {
        // 0 -> 1..=5 -> 6
        let mut up = vec![vec![]];
        up.extend((1..=5).map(|_| vec![0]));
        up.push((1..=5).collect());
        let (batches, _) = simulate(up, 2, &[]);
        assert_eq!(batches, vec![vec![0], vec![1, 2], vec![3, 4], vec![5], vec![6]]);
    }

    #[test]
    fn a_failure_skips_everything_downstream_and_only_that() {
        // 0 -> 1 -> 2 -> 3, and 0 -> 4; 1 fails.
        let (batches, skips) = simulate(vec![vec![], vec![0], vec![1], vec![2], vec![0]], 4, &[1]);
        assert_eq!(batches, vec![vec![0], vec![1, 4]]);
        assert_eq!(
            skips,
            vec![
                Skip {
                    step: 2,
                    because: Some(1)
                },
                Skip {
                    step: 3,
                    because: Some(2)
                }
            ]
        );
    }

    #[test]
    fn a_join_is_skipped_once_when_one_branch_fails_and_the_other_finishes() {
        // Diamond 0 -> {1, 2} -> 3 where 2 fails.
        let mut s = Scheduler::new(vec![vec![], vec![0], vec![0], vec![1, 2]]);
        assert_eq!(s.start_ready(4), vec![0]);
        assert!(s.finish(0, true).is_empty());
        assert_eq!(s.start_ready(4), vec![1, 2]);
        assert_eq!(
            s.finish(2, false),
            vec![Skip {
                step: 3,
                because: Some(2)
            }]
        );
        assert!(s.finish(1, true).is_empty(), "a skipped step is skipped once");
        assert!(s.start_ready(4).is_empty());
        assert_eq!(s.state(3), StepState::Skipped);
        assert_eq!(s.running(), 0);
    }

    #[test]
    fn stopping_skips_what_has_not_started_and_lets_running_steps_finish() {
        let mut s = Scheduler::new(vec![vec![], vec![], vec![0, 1]]);
        assert_eq!(s.start_ready(1), vec![0]);
        assert_eq!(
            s.skip_waiting(),
            vec![Skip { step: 1, because: None }, Skip { step: 2, because: None }]
        );
        assert_eq!(s.state(0), StepState::Running);
        assert!(s.finish(0, true).is_empty());
        assert!(s.start_ready(4).is_empty());
    }

    #[test]
    fn a_step_starts_held_on_running_upstream_steps_only_where_it_can_be() {
        // 0 -> 1 -> 2, and 3 reads 0 and 1; 1 cannot be held on 0.
        let mut s = Scheduler::new(vec![vec![], vec![0], vec![1], vec![0, 1]]);
        let holdable = |u: usize, i: usize| (u, i) != (0, 1);
        assert_eq!(s.start_ready_or_held(8, holdable), vec![0]);
        assert!(
            s.start_ready_or_held(8, holdable).is_empty(),
            "1 waits for 0 to succeed"
        );
        assert!(s.finish(0, true).is_empty());
        assert_eq!(
            s.start_ready_or_held(8, holdable),
            vec![1, 2, 3],
            "2 and 3 held on running 1"
        );
        // 1 fails: nothing is waiting any more; the held steps are the
        // executor's to end.
        assert!(s.finish(1, false).is_empty());
        assert_eq!(s.state(2), StepState::Running);
        // The room counts held steps too.
        let mut s = Scheduler::new(vec![vec![], vec![0], vec![0]]);
        assert_eq!(s.start_ready_or_held(2, |_, _| true), vec![0, 1]);
    }

    #[test]
    fn independent_steps_start_in_order_up_to_the_limit() {
        let (batches, _) = simulate(vec![vec![]; 5], 3, &[]);
        assert_eq!(batches, vec![vec![0, 1, 2], vec![3, 4]]);
    }
}
