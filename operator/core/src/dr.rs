//! Disaster-recovery rules: the RPO and the replication schedule derived from it, lag,
//! which site is active when the two copies of a plan disagree, and the steps of each
//! action with how a recorded timeline resumes.
//!
//! An action is a fixed list of steps. The operator records each step in the plan's
//! status when it starts and when it is done; a step's effects are idempotent, so an
//! operator that stops anywhere resumes at the first step not recorded done and runs
//! it again. [`next_step`] is that rule.
//!
//! The runner asks [`decide`] what to do with a recorded [`Timeline`], records the
//! change [`record_decision`] makes, carries out a step's effects and feeds their
//! [`Outcome`] to [`apply_outcome`]. It decides nothing itself: it reads, writes and
//! carries out effects.

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

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Failover => "Failover",
            Action::Relocate => "Relocate",
            Action::Drill => "Drill",
        }
    }
}

/// Where a step of a running action stands in the recorded timeline.
///
/// A step is `Pending` until the runner records it `Running` (before any of its
/// effects), then `Done` when its effects are complete, or `Failed` when they cannot
/// be: a failed step ends the action. A dry run's `Planned` steps never run and are
/// not a state of this machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StepState {
    Pending,
    Running,
    Done,
    Failed,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Pending => "Pending",
            StepState::Running => "Running",
            StepState::Done => "Done",
            StepState::Failed => "Failed",
        }
    }

    pub fn parse(s: &str) -> Option<StepState> {
        [StepState::Pending, StepState::Running, StepState::Done, StepState::Failed].into_iter().find(|x| x.as_str() == s)
    }
}

/// One recorded step: which, where it stands, and what it did or waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StepRecord {
    pub step: Step,
    pub state: StepState,
    pub message: String,
}

impl StepRecord {
    /// A step as the status writes it (`name`, `state`, `message`).
    pub fn read(name: &str, state: &str, message: &str) -> Result<StepRecord, TimelineError> {
        let step = Step::parse(name).ok_or_else(|| TimelineError::UnknownStep(name.to_string()))?;
        let state = StepState::parse(state).ok_or_else(|| TimelineError::UnknownState { step: name.to_string(), state: state.to_string() })?;
        Ok(StepRecord { step, state, message: message.to_string() })
    }
}

/// The recorded timeline of a running action: the action, the `actionToken` it runs
/// for, and its steps in order. [`decide`] accepts it only when its steps are the
/// action's [`steps`], in that order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Timeline {
    pub action: Action,
    pub token: String,
    pub steps: Vec<StepRecord>,
}

impl Timeline {
    /// A new timeline of `action`: its steps, all pending, with `messages` (what each
    /// would do) in order; missing messages are empty.
    pub fn new(action: Action, token: &str, messages: Vec<String>) -> Timeline {
        let mut messages = messages.into_iter();
        let steps = steps(action).iter().map(|s| StepRecord { step: *s, state: StepState::Pending, message: messages.next().unwrap_or_default() }).collect();
        Timeline { action, token: token.to_string(), steps }
    }
}

/// A recorded timeline the runner cannot act on: someone else wrote it, or a newer
/// operator did. Nothing runs until it is put right.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TimelineError {
    #[error("the timeline records an unknown step {0:?}")]
    UnknownStep(String),
    #[error("the timeline records step {step} in an unknown state {state:?}")]
    UnknownState { step: String, state: String },
    #[error("the timeline records the steps {found:?}, which are not a {action}'s steps {expected:?}")]
    NotTheActionsSteps { action: &'static str, found: Vec<&'static str>, expected: Vec<&'static str> },
    #[error("the timeline has no step {0}")]
    NoSuchStep(usize),
}

/// What the runner does next with a running action.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// A relocate gives way to a failover asked with a new token (the relocate cannot
    /// finish because the other site is lost): every step not done fails, and the
    /// action fails with `message`.
    Supersede { message: String },
    /// Record step `index` running (with its start time) before any of its effects,
    /// and come back.
    Start { index: usize, step: Step },
    /// Carry out step `index`'s effects (again, if an operator stopped in them) and
    /// give their outcome to [`apply_outcome`].
    Run { index: usize, step: Step },
    /// A step is recorded failed: the action ends failed with `message`.
    Fail { index: usize, step: Step, message: String },
    /// Every step is done: the action ends, failed only if it is a drill whose check
    /// failed (see [`drill_failed`]).
    Finish { failed: bool },
}

/// What a step's effects found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The step is complete; the message says what it did.
    Done(String),
    /// The step waits for something (or its effects failed in a way worth retrying);
    /// it stays running and is carried out again.
    Wait(String),
    /// The step cannot be completed: it fails, and so does the action.
    Fail(String),
}

/// What [`apply_outcome`] changed in the timeline, for the runner to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The step is recorded done (with its finish time).
    Done,
    /// The step still runs; `changed` when its message is new and worth recording.
    Waiting { changed: bool },
    /// The step is recorded failed (with its finish time); the action fails with
    /// `message`.
    Failed { message: String },
}

/// What to do with the recorded timeline `t` while the plan asks for `asked`
/// (`spec.action` and `spec.actionToken`; `None` when it asks for no action).
///
/// In order: a relocate superseded by a failover with another token gives way
/// ([`Decision::Supersede`]); a timeline whose steps are not the action's is an
/// error; a step recorded failed ends the action; otherwise [`next_step`] picks the
/// first step not done, which is started if pending and run if running; when every
/// step is done the action finishes.
pub fn decide(t: &Timeline, asked: Option<(Action, &str)>) -> Result<Decision, TimelineError> {
    if let Some((Action::Failover, token)) = asked
        && t.action == Action::Relocate
        && token != t.token
    {
        return Ok(Decision::Supersede { message: format!("superseded by Failover (token {token})") });
    }
    if !t.steps.iter().map(|r| r.step).eq(steps(t.action).iter().copied()) {
        return Err(not_the_actions_steps(t));
    }
    if let Some((index, r)) = t.steps.iter().enumerate().find(|(_, r)| r.state == StepState::Failed) {
        return Ok(Decision::Fail { index, step: r.step, message: format!("{}: {}", r.step.as_str(), r.message) });
    }
    let done: Vec<Step> = t.steps.iter().filter(|r| r.state == StepState::Done).map(|r| r.step).collect();
    let Some(next) = next_step(t.action, &done) else {
        return Ok(Decision::Finish { failed: drill_failed(t) });
    };
    // The recorded steps are the action's, so the step is there.
    let (index, r) = t.steps.iter().enumerate().find(|(_, r)| r.step == next).ok_or_else(|| not_the_actions_steps(t))?;
    Ok(match r.state {
        StepState::Pending => Decision::Start { index, step: next },
        _ => Decision::Run { index, step: next },
    })
}

fn not_the_actions_steps(t: &Timeline) -> TimelineError {
    TimelineError::NotTheActionsSteps {
        action: t.action.as_str(),
        found: t.steps.iter().map(|r| r.step.as_str()).collect(),
        expected: steps(t.action).iter().map(|s| s.as_str()).collect(),
    }
}

/// The change a decision makes to the timeline by itself, before any effects:
/// [`Decision::Supersede`] fails every step not done, [`Decision::Start`] records the
/// step running. The others change nothing here.
pub fn record_decision(t: &mut Timeline, d: &Decision) {
    match d {
        Decision::Supersede { .. } => {
            for r in t.steps.iter_mut().filter(|r| r.state != StepState::Done) {
                r.state = StepState::Failed;
            }
        }
        Decision::Start { index, .. } => {
            if let Some(r) = t.steps.get_mut(*index) {
                r.state = StepState::Running;
            }
        }
        Decision::Run { .. } | Decision::Fail { .. } | Decision::Finish { .. } => {}
    }
}

/// Record the outcome of step `index`'s effects: done, still running with a new
/// message, or failed (which fails the action).
pub fn apply_outcome(t: &mut Timeline, index: usize, outcome: Outcome) -> Result<Applied, TimelineError> {
    let r = t.steps.get_mut(index).ok_or(TimelineError::NoSuchStep(index))?;
    Ok(match outcome {
        Outcome::Done(message) => {
            r.state = StepState::Done;
            r.message = message;
            Applied::Done
        }
        Outcome::Wait(message) => {
            let changed = r.message != message;
            r.message = message;
            Applied::Waiting { changed }
        }
        Outcome::Fail(message) => {
            r.state = StepState::Failed;
            let action = format!("{}: {message}", r.step.as_str());
            r.message = message;
            Applied::Failed { message: action }
        }
    })
}

/// The message a drill's check ends with when the copies did not come up in time:
/// the check is done (the drill goes on to tear them down) but the drill failed.
pub const CHECK_FAILED: &str = "Failed";

/// Whether a finished action failed: only a drill whose check is done with a message
/// starting [`CHECK_FAILED`] does; every other finished action succeeded.
pub fn drill_failed(t: &Timeline) -> bool {
    t.steps.iter().find(|r| r.step == Step::Check).is_some_and(|r| r.message.starts_with(CHECK_FAILED))
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

    fn timeline(a: Action, states: &[StepState]) -> Timeline {
        let mut t = Timeline::new(a, "t1", Vec::new());
        for (r, s) in t.steps.iter_mut().zip(states) {
            r.state = *s;
        }
        t
    }

    fn all_done(a: Action, check: &str) -> Timeline {
        let mut t = timeline(a, &[StepState::Done; 9]);
        for r in t.steps.iter_mut().filter(|r| r.step == Step::Check) {
            r.message = check.into();
        }
        t
    }

    /// A drill fails only when its check is done with a message starting "Failed"
    /// (the copies did not come up in time); every other finished action succeeds.
    #[test]
    fn a_drill_fails_only_when_its_check_failed() {
        let table = [
            (Action::Drill, "Failed after 600s: 0 of 2 copies running; 0 of 4 drill names programmed ()", true),
            (Action::Drill, "Failed", true),
            (Action::Drill, "Passed: 2 of 2 copies running; 4 of 4 drill names programmed (a.drill, b.drill)", false),
            (Action::Drill, "", false),
            (Action::Drill, "failed (lower case is not the rule's word)", false),
            (Action::Drill, " Failed", false),
            (Action::Failover, "Failed", false),
            (Action::Relocate, "Failed", false),
        ];
        for (a, check, failed) in table {
            let t = all_done(a, check);
            assert_eq!(drill_failed(&t), failed, "{a:?} {check:?}");
            assert_eq!(decide(&t, None), Ok(Decision::Finish { failed }), "{a:?} {check:?}");
        }
        // A check not done yet decides nothing about the drill.
        let t = timeline(Action::Drill, &[StepState::Done, StepState::Running, StepState::Pending]);
        assert_eq!(decide(&t, None), Ok(Decision::Run { index: 1, step: Step::Check }));
    }

    /// The states and step names as the status writes them; anything else is an
    /// error value, never a guess.
    #[test]
    fn a_timeline_of_unknown_or_foreign_steps_is_an_error() {
        for s in [StepState::Pending, StepState::Running, StepState::Done, StepState::Failed] {
            assert_eq!(StepState::parse(s.as_str()), Some(s));
        }
        assert_eq!(StepState::parse("Planned"), None);
        assert_eq!(StepRecord::read("StartVMs", "Running", "m"), Ok(StepRecord { step: Step::StartVms, state: StepState::Running, message: "m".into() }));
        assert_eq!(StepRecord::read("Reboot", "Running", ""), Err(TimelineError::UnknownStep("Reboot".into())));
        assert!(matches!(StepRecord::read("Fence", "Sleeping", ""), Err(TimelineError::UnknownState { .. })));
        // A failover's record with a drill's steps, missing steps, steps out of order.
        let mut foreign = Timeline::new(Action::Drill, "t1", Vec::new());
        foreign.action = Action::Failover;
        let mut short = Timeline::new(Action::Relocate, "t1", Vec::new());
        short.steps.pop();
        let mut swapped = Timeline::new(Action::Failover, "t1", Vec::new());
        swapped.steps.swap(1, 2);
        for t in [foreign, short, swapped] {
            let e = decide(&t, None).unwrap_err();
            assert!(matches!(e, TimelineError::NotTheActionsSteps { .. }), "{e}");
            assert!(e.to_string().contains("not a"), "{e}");
        }
        let mut t = Timeline::new(Action::Drill, "t1", Vec::new());
        assert_eq!(apply_outcome(&mut t, 3, Outcome::Done(String::new())), Err(TimelineError::NoSuchStep(3)));
    }

    /// The outcomes of a step, as the runner records them.
    #[test]
    fn outcomes_move_only_their_step() {
        let mut t = timeline(Action::Failover, &[StepState::Done, StepState::Running, StepState::Pending, StepState::Pending]);
        t.steps[1].message = "restore 2 disk(s)".into();
        assert_eq!(apply_outcome(&mut t, 1, Outcome::Wait("restore 2 disk(s)".into())), Ok(Applied::Waiting { changed: false }));
        assert_eq!(apply_outcome(&mut t, 1, Outcome::Wait("1 of 2".into())), Ok(Applied::Waiting { changed: true }));
        assert_eq!(t.steps[1].state, StepState::Running);
        let mut failed = t.clone();
        assert_eq!(apply_outcome(&mut failed, 1, Outcome::Fail("no replica".into())), Ok(Applied::Failed { message: "Promote: no replica".into() }));
        assert_eq!(failed.steps[1], StepRecord { step: Step::Promote, state: StepState::Failed, message: "no replica".into() });
        assert_eq!(decide(&failed, None), Ok(Decision::Fail { index: 1, step: Step::Promote, message: "Promote: no replica".into() }));
        assert_eq!(apply_outcome(&mut t, 1, Outcome::Done("2 restored".into())), Ok(Applied::Done));
        assert_eq!(t.steps[1].state, StepState::Done);
        assert_eq!(decide(&t, None), Ok(Decision::Start { index: 2, step: Step::StartVms }));
        let d = decide(&t, None).unwrap();
        record_decision(&mut t, &d);
        assert_eq!(t.steps.iter().map(|r| r.state).collect::<Vec<_>>(), [StepState::Done, StepState::Done, StepState::Running, StepState::Pending]);
    }

    fn state() -> impl Strategy<Value = StepState> {
        prop_oneof![Just(StepState::Pending), Just(StepState::Running), Just(StepState::Done), Just(StepState::Failed)]
    }

    /// What the runner's effects do in one pass, or that the operator stops after
    /// them, before their outcome is recorded, and starts again from the record.
    #[derive(Clone, Copy, Debug)]
    enum Pass {
        Done,
        Wait,
        Fail,
        Restart,
    }

    fn pass() -> impl Strategy<Value = Pass> {
        prop_oneof![4 => Just(Pass::Done), 3 => Just(Pass::Wait), 1 => Just(Pass::Fail), 3 => Just(Pass::Restart)]
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

        /// The runner replays decide and its outcomes through any mix of waits,
        /// failures and restarts from the record: steps become done only in order,
        /// none runs before every earlier one is done, a failed step ends the action,
        /// and the action finishes exactly when all its steps are done.
        #[test]
        fn replaying_decide_keeps_the_steps_in_order(a in action(), passes in proptest::collection::vec(pass(), 0..40)) {
            let mut recorded = Timeline::new(a, "t1", Vec::new());
            let mut passes = passes.into_iter();
            let mut done_order: Vec<Step> = Vec::new();
            let mut failed = false;
            for _ in 0..200 {
                let d = decide(&recorded, None).unwrap();
                let prefix_done = |i: usize| recorded.steps.iter().take(i).all(|r| r.state == StepState::Done);
                match d {
                    Decision::Start { index, step } => {
                        prop_assert!(prefix_done(index));
                        prop_assert_eq!(recorded.steps[index].state, StepState::Pending);
                        prop_assert_eq!(recorded.steps[index].step, step);
                        record_decision(&mut recorded, &d);
                        prop_assert_eq!(recorded.steps[index].state, StepState::Running);
                    }
                    Decision::Run { index, step } => {
                        prop_assert!(prefix_done(index));
                        prop_assert_eq!(recorded.steps[index].state, StepState::Running);
                        // Once the passes run out, every step completes.
                        let outcome = match passes.next().unwrap_or(Pass::Done) {
                            Pass::Restart => continue,
                            Pass::Done => Outcome::Done(format!("{} done", step.as_str())),
                            Pass::Wait => Outcome::Wait("waiting".into()),
                            Pass::Fail => Outcome::Fail("cannot".into()),
                        };
                        match apply_outcome(&mut recorded, index, outcome).unwrap() {
                            Applied::Done => done_order.push(step),
                            Applied::Waiting { .. } => prop_assert_eq!(recorded.steps[index].state, StepState::Running),
                            Applied::Failed { message } => {
                                prop_assert!(message.starts_with(step.as_str()));
                                failed = true;
                            }
                        }
                    }
                    Decision::Fail { index, .. } => {
                        prop_assert!(failed);
                        prop_assert_eq!(recorded.steps[index].state, StepState::Failed);
                        // Nothing after a failed step ever ran.
                        prop_assert!(recorded.steps[index + 1..].iter().all(|r| r.state == StepState::Pending));
                        break;
                    }
                    Decision::Finish { failed: drill } => {
                        prop_assert!(!failed);
                        prop_assert!(!drill);
                        prop_assert!(recorded.steps.iter().all(|r| r.state == StepState::Done));
                        break;
                    }
                    Decision::Supersede { .. } => prop_assert!(false, "nothing asked for a failover"),
                }
                // Done steps are always a prefix: nothing is done out of order.
                let done = recorded.steps.iter().take_while(|r| r.state == StepState::Done).count();
                prop_assert!(recorded.steps[done..].iter().all(|r| r.state != StepState::Done));
            }
            let ended = matches!(decide(&recorded, None).unwrap(), Decision::Finish { .. } | Decision::Fail { .. });
            prop_assert!(ended);
            prop_assert_eq!(done_order.as_slice(), &steps(a)[..done_order.len()]);
            if !failed {
                prop_assert_eq!(done_order.as_slice(), steps(a));
            }
        }

        /// For any recorded states: the action finishes exactly when every step is
        /// done; a recorded failure ends it; otherwise the step picked is
        /// [`next_step`]'s, started if pending and run if running.
        #[test]
        fn decide_finishes_exactly_when_every_step_is_done(a in action(), states in proptest::collection::vec(state(), 9)) {
            let t = timeline(a, &states);
            let d = decide(&t, None).unwrap();
            let all_done = t.steps.iter().all(|r| r.state == StepState::Done);
            prop_assert_eq!(matches!(d, Decision::Finish { .. }), all_done);
            let first_failed = t.steps.iter().position(|r| r.state == StepState::Failed);
            let done: Vec<Step> = t.steps.iter().filter(|r| r.state == StepState::Done).map(|r| r.step).collect();
            match d {
                Decision::Fail { index, ref message, .. } => {
                    prop_assert_eq!(Some(index), first_failed);
                    prop_assert!(message.starts_with(t.steps[index].step.as_str()));
                }
                Decision::Start { index, step } | Decision::Run { index, step } => {
                    prop_assert_eq!(first_failed, None);
                    prop_assert_eq!(Some(step), next_step(a, &done));
                    prop_assert_eq!(t.steps[index].step, step);
                    let pending = t.steps[index].state == StepState::Pending;
                    prop_assert_eq!(matches!(d, Decision::Start { .. }), pending);
                }
                Decision::Finish { .. } | Decision::Supersede { .. } => prop_assert!(all_done),
            }
        }

        /// Only a relocate gives way, only to a failover, and only one asked with
        /// another token; when it does, every step not done fails and done ones stay.
        #[test]
        fn only_a_relocate_gives_way_to_a_failover_with_a_new_token(
            a in action(),
            asked in proptest::option::of(action()),
            token in prop_oneof![Just("t1"), Just("t2"), Just("")],
            states in proptest::collection::vec(state(), 9),
        ) {
            let t = timeline(a, &states);
            let d = decide(&t, asked.map(|x| (x, token))).unwrap();
            let gives_way = a == Action::Relocate && asked == Some(Action::Failover) && token != "t1";
            prop_assert_eq!(matches!(d, Decision::Supersede { .. }), gives_way);
            if !gives_way {
                prop_assert_eq!(d, decide(&t, None).unwrap());
                return Ok(());
            }
            prop_assert_eq!(&d, &Decision::Supersede { message: format!("superseded by Failover (token {token})") });
            let mut after = t.clone();
            record_decision(&mut after, &d);
            for (before, now) in t.steps.iter().zip(&after.steps) {
                let want = if before.state == StepState::Done { StepState::Done } else { StepState::Failed };
                prop_assert_eq!(now.state, want);
                prop_assert_eq!(&now.message, &before.message);
            }
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
