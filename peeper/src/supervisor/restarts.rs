//! What a crash means for the branch: a restart, a reset to the initial state, or the end. The
//! decision needs no server type, so it is written (and compiled) once for all of them.

use std::collections::VecDeque;

use tokio::time::Instant;

use crate::options::Options;
use crate::{Branch, CrashLoop, Exit};

/// A branch's restart history.
#[derive(Default)]
pub(super) struct Restarts {
    /// When the recent restarts happened, oldest first, pruned to the window.
    recent: VecDeque<Instant>,
    /// Incarnations in a row whose `init` did not complete.
    failed_starts: u32,
    /// Whether the crash-loop policy already reset the state since the last good start.
    reset_since_start: bool,
}

/// What to do after a crash.
pub(super) enum Decision {
    /// Start the next incarnation on the kept state.
    Restart,
    /// Start the next incarnation from the initial state (a crash loop, with
    /// [`CrashLoop::ResetToInitial`]); if that fails, end with `give_up`.
    Reset { give_up: Exit },
    /// The branch ends with `exit`, after `terminate` if `terminate`.
    End { exit: Exit, terminate: bool },
}

impl Restarts {
    /// Decides after a crash with `exit`. `started`: the crashed worker's `init` had
    /// completed. `can_reset`: the branch keeps an initial state to reset to.
    pub(super) fn decide(
        &mut self,
        branch: &Branch,
        options: &Options,
        exit: Exit,
        started: bool,
        can_reset: bool,
    ) -> Decision {
        if branch.inner.status.read(|s| s.ready.is_none()) {
            // The first `init` failed: a start error, not a restart.
            return Decision::End {
                exit,
                terminate: false,
            };
        }
        let now = Instant::now();
        self.recent.push_back(now);
        while self
            .recent
            .front()
            .is_some_and(|&at| now.duration_since(at) > options.within)
        {
            self.recent.pop_front();
        }
        if self.recent.len() > options.max_restarts as usize {
            let exit = Exit::RestartLimit {
                max_restarts: options.max_restarts,
                within: options.within,
                last: Box::new(exit),
            };
            return Decision::End {
                exit,
                terminate: true,
            };
        }
        if started {
            self.failed_starts = 0;
            self.reset_since_start = false;
        }
        // A kill says nothing about the state, so it neither counts nor clears the count.
        if exit != Exit::Killed && !started {
            self.failed_starts += 1;
            if self.failed_starts >= options.crash_loop_after {
                let give_up = Exit::CrashLoop {
                    crashes: self.failed_starts,
                    last: Box::new(exit),
                };
                if options.crash_loop == CrashLoop::ResetToInitial
                    && can_reset
                    && !self.reset_since_start
                {
                    tracing::warn!(
                        server = branch.server(),
                        "crash loop: falling back to the initial state"
                    );
                    return Decision::Reset { give_up };
                }
                return Decision::End {
                    exit: give_up,
                    terminate: true,
                };
            }
        }
        Decision::Restart
    }

    /// Logs the crash of incarnation `incarnation`.
    pub(super) fn crashed(branch: &Branch, incarnation: u64, exit: &Exit) {
        tracing::error!(server = branch.server(), name = branch.name(), incarnation, %exit, "worker crashed");
    }

    /// The state was reset to the initial one: the count of failed starts begins again.
    pub(super) fn reset(&mut self) {
        self.reset_since_start = true;
        self.failed_starts = 0;
    }

    /// Publishes and logs the restart into incarnation `incarnation`.
    pub(super) fn restarting(branch: &Branch, incarnation: u64) {
        branch
            .inner
            .status
            .send_modify(|status| status.restarts += 1);
        tracing::warn!(
            server = branch.server(),
            name = branch.name(),
            incarnation,
            "restarting worker"
        );
    }
}
