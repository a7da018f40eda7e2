//! Disaster-recovery rules: the RPO and the replication schedule derived from it, lag,
//! which site is active when the two copies of a plan disagree, and the steps of each
//! action with how a recorded timeline resumes.
//!
//! An action is a fixed list of steps. The operator records each step in the plan's
//! status when it starts and when it is done; a step's effects are idempotent, so an
//! operator that stops anywhere resumes at the first step not recorded done and runs
//! it again. [`next_step`] is that rule.

/// An action a plan carries out at the site that is to take over.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    Failover,
    Relocate,
    Drill,
}

/// One step of an action.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Step {
    /// Record the fence of the other site; halt its VMs if it answers.
    Fence,
    /// Relocate: wait until the other site's VMs have stopped.
    StopSource,
    /// Relocate: one more sync of every disk after the VMs stopped.
    FinalSync,
    /// Take the newest replica of every disk here.
    Promote,
    /// Make this site active: its VMs start with its addresses.
    StartVms,
    /// Point the DNS records (A, AAAA, PTR) at this site's addresses.
    SwitchDns,
    /// Drill: start copies of the VMs from the replicas, under the drill subdomain.
    StartCopies,
    /// Drill: wait until the copies run and their names answer.
    Check,
    /// Drill: remove the copies.
    Teardown,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Fence => "Fence",
            Step::StopSource => "StopSource",
            Step::FinalSync => "FinalSync",
            Step::Promote => "Promote",
            Step::StartVms => "StartVMs",
            Step::SwitchDns => "SwitchDNS",
            Step::StartCopies => "StartCopies",
            Step::Check => "Check",
            Step::Teardown => "Teardown",
        }
    }

    pub fn parse(s: &str) -> Option<Step> {
        ALL.iter().copied().find(|x| x.as_str() == s)
    }
}

const ALL: [Step; 9] =
    [Step::Fence, Step::StopSource, Step::FinalSync, Step::Promote, Step::StartVms, Step::SwitchDns, Step::StartCopies, Step::Check, Step::Teardown];

/// The steps of `action`, in order.
pub fn steps(action: Action) -> &'static [Step] {
    match action {
        Action::Failover => &[Step::Fence, Step::Promote, Step::StartVms, Step::SwitchDns],
        Action::Relocate => &[Step::Fence, Step::StopSource, Step::FinalSync, Step::Promote, Step::StartVms, Step::SwitchDns],
        Action::Drill => &[Step::StartCopies, Step::Check, Step::Teardown],
    }
}

/// The step to carry out given the steps recorded done (in any order, possibly with
/// names of other actions): the first of `action`'s steps not done; `None` when all are.
pub fn next_step(action: Action, done: &[Step]) -> Option<Step> {
    steps(action).iter().copied().find(|s| !done.contains(s))
}

/// A duration written `90s`, `15m`, `4h`: seconds.
pub fn parse_duration(s: &str) -> Result<u64, String> {
    let bad = || format!("{s:?} is not a duration such as 90s, 15m or 4h");
    let (num, unit) = s.split_at(s.len().saturating_sub(1));
    let n: u64 = num.parse().map_err(|_| bad())?;
    let mult = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        _ => return Err(bad()),
    };
    if n == 0 {
        return Err(bad());
    }
    n.checked_mul(mult).ok_or_else(bad)
}

/// How often to sync for an RPO of `rpo` seconds: a third of it, at least a minute,
/// rounded down to a whole number of minutes that divides the hour (or of hours
/// that divides the day), so a cron schedule can say it. Seconds.
pub fn sync_interval(rpo: u64) -> u64 {
    let third = (rpo / 3).max(60);
    if third < 3600 {
        let m = third / 60;
        let m = [30, 20, 15, 12, 10, 6, 5, 4, 3, 2, 1].into_iter().find(|d| *d <= m).unwrap_or(1);
        m * 60
    } else {
        let h = third / 3600;
        let h = [12, 8, 6, 4, 3, 2, 1].into_iter().find(|d| *d <= h).unwrap_or(1);
        h * 3600
    }
}

/// The cron schedule of [`sync_interval`].
pub fn schedule(rpo: u64) -> String {
    let i = sync_interval(rpo);
    if i < 3600 { format!("*/{} * * * *", i / 60) } else { format!("0 */{} * * *", i / 3600) }
}

/// Seconds since the last sync, or since `since` (when replication began) if there
/// was none; never negative.
pub fn lag(last_sync: Option<i64>, since: i64, now: i64) -> i64 {
    (now - last_sync.unwrap_or(since)).max(0)
}

/// Which site is active when this site's copy says `mine` and the other site's says
/// `theirs` (each: active site and epoch). The higher epoch wins; on a tie this
/// site's own record stands. `theirs` is `None` when the other site cannot be read.
pub fn active_site<'a>(mine: (&'a str, i64), theirs: Option<(&'a str, i64)>) -> &'a str {
    match theirs {
        Some((site, epoch)) if epoch > mine.1 => site,
        _ => mine.0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn durations_and_schedules() {
        assert_eq!(parse_duration("15m"), Ok(900));
        assert_eq!(parse_duration("4h"), Ok(14400));
        assert_eq!(parse_duration("90s"), Ok(90));
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("15").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("1.5h").is_err());
        assert_eq!(schedule(900), "*/5 * * * *");
        assert_eq!(schedule(3600), "*/20 * * * *");
        assert_eq!(schedule(90), "*/1 * * * *");
        assert_eq!(schedule(4 * 3600), "0 */1 * * *");
        assert_eq!(schedule(24 * 3600), "0 */8 * * *");
        assert_eq!(schedule(7 * 3600), "0 */2 * * *");
    }

    #[test]
    fn a_failover_fences_before_it_starts_anything_and_switches_dns_last() {
        for a in [Action::Failover, Action::Relocate] {
            let s = steps(a);
            assert_eq!(s[0], Step::Fence);
            let pos = |x| s.iter().position(|y| *y == x).unwrap();
            assert!(pos(Step::Promote) < pos(Step::StartVms) && pos(Step::StartVms) < pos(Step::SwitchDns));
            assert_eq!(*s.last().unwrap(), Step::SwitchDns);
        }
        let r = steps(Action::Relocate);
        let pos = |x| r.iter().position(|y| *y == x).unwrap();
        assert!(pos(Step::StopSource) < pos(Step::FinalSync) && pos(Step::FinalSync) < pos(Step::Promote));
        for s in ALL {
            assert_eq!(Step::parse(s.as_str()), Some(s));
        }
    }

    fn action() -> impl Strategy<Value = Action> {
        prop_oneof![Just(Action::Failover), Just(Action::Relocate), Just(Action::Drill)]
    }

    proptest! {
        /// An operator that stops at any point (after a step's effects, before they
        /// are recorded) and starts again carries out every step, in order, and
        /// repeats only the step it stopped in.
        #[test]
        fn resuming_after_any_crash_runs_every_step_in_order(a in action(), crashes in proptest::collection::vec(0usize..8, 0..6)) {
            let mut done: Vec<Step> = Vec::new();
            let mut effects: Vec<Step> = Vec::new();
            let mut crashes = crashes.into_iter();
            let mut budget = 100;
            while let Some(s) = next_step(a, &done) {
                budget -= 1;
                prop_assert!(budget > 0);
                effects.push(s);
                // A crash before the step is recorded: the next operator redoes it.
                if crashes.next().is_some_and(|c| c == effects.len() % 8) {
                    continue;
                }
                done.push(s);
            }
            let mut dedup = effects.clone();
            dedup.dedup();
            prop_assert_eq!(dedup.as_slice(), steps(a));
        }

        /// Schedules sync at least three times per RPO and at most once a minute.
        #[test]
        fn the_schedule_keeps_the_rpo(rpo in 60u64..(30 * 86400)) {
            let i = sync_interval(rpo);
            prop_assert!(i >= 60);
            prop_assert!(i * 3 <= rpo.max(180));
            if i < 3600 { prop_assert_eq!(3600 % i, 0) } else { prop_assert_eq!(86400 % i, 0) }
        }

        /// Both sites reach the same answer from each other's records, and a newer
        /// epoch always wins.
        #[test]
        fn the_higher_epoch_decides(e1 in 0i64..10, e2 in 0i64..10, a_says_b in any::<bool>(), b_says_a in any::<bool>()) {
            let a_view = if a_says_b { "b" } else { "a" };
            let b_view = if b_says_a { "a" } else { "b" };
            let from_a = active_site((a_view, e1), Some((b_view, e2)));
            let from_b = active_site((b_view, e2), Some((a_view, e1)));
            if e1 != e2 {
                prop_assert_eq!(from_a, from_b);
                prop_assert_eq!(from_a, if e1 > e2 { a_view } else { b_view });
            }
            prop_assert_eq!(active_site((a_view, e1), None), a_view);
        }

        #[test]
        fn lag_is_never_negative(last in proptest::option::of(0i64..1000), since in 0i64..1000, now in 0i64..1000) {
            let l = lag(last, since, now);
            prop_assert!(l >= 0);
            if let Some(t) = last.filter(|t| now >= *t) { prop_assert_eq!(l, now - t) }
        }
    }
}
