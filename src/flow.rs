//! Flows: a set of jobs enqueued atomically, some depending on others.
//!
//! A [`Flow`] is checked here first (references, cycles) and put in dependency order;
//! the schema's `enqueue_flow()` function (migration 5) then inserts it in one call,
//! validating every job like `enqueue()`. The ordering is a plain function with tests:
//! Kahn's algorithm, iterative, so a 10,000-deep chain needs no deep stack.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

use crate::enqueue::NewJob;
use crate::error::{Error, Result};

/// Most jobs in one flow (the SQL function's limit too).
pub const MAX_FLOW_JOBS: usize = 100_000;

/// Jobs to enqueue together, all or none, where some run only after others completed.
///
/// ```no_run
/// # use pglane::{Engine, Enqueue, Flow, FlowJob, Job, JobContext, JobError};
/// # use serde::{Deserialize, Serialize};
/// # #[derive(Serialize, Deserialize)] struct Fetch;
/// # impl Job for Fetch { const KIND: &'static str = "fetch";
/// #   async fn run(self, _: JobContext) -> Result<(), JobError> { Ok(()) } }
/// # async fn f(engine: Engine) -> pglane::Result<()> {
/// let flow = Flow::new()
///     .job(FlowJob::new("a", Enqueue::new(Fetch)))
///     .job(FlowJob::new("b", Enqueue::new(Fetch)))
///     .job(FlowJob::new("both", Enqueue::new(Fetch)).after("a").after("b"));
/// let ids = engine.enqueue_flow(flow).await?; // in the order the jobs were added
/// # Ok(()) }
/// ```
///
/// A job with parents waits (state `waiting`, out of the claim index) until all of them
/// completed, then is claimed in normal priority order. If a parent fails for good or is
/// cancelled, the job and its own dependents are cancelled, naming that parent, unless
/// the job says [`run_if_parent_fails`](FlowJob::run_if_parent_fails).
#[derive(Debug, Default)]
pub struct Flow {
    jobs: Vec<FlowJob>,
}

/// One job of a [`Flow`]: its reference within the flow, and what it waits for.
#[derive(Debug)]
pub struct FlowJob {
    pub(crate) reference: String,
    /// The job, validated (`FlowJob::new`, beside `Enqueue` in `commands`, so this module
    /// needs neither it nor `Job`); an error is reported when the flow is enqueued.
    pub(crate) job: Result<NewJob>,
    pub(crate) after: Vec<Parent>,
    pub(crate) run_if_parent_fails: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Parent {
    Ref(String),
    Job(i64),
}

impl Flow {
    /// An empty flow.
    pub fn new() -> Self {
        Flow::default()
    }

    /// Adds a job.
    pub fn job(mut self, job: FlowJob) -> Self {
        self.jobs.push(job);
        self
    }

    /// Jobs added so far.
    pub fn len(&self) -> usize {
        self.jobs.len()
    }

    /// Whether no job was added.
    pub fn is_empty(&self) -> bool {
        self.jobs.is_empty()
    }

    /// Checks the flow and puts it in dependency order: the JSON `enqueue_flow()` takes,
    /// and for each of its elements, the index of the job as added.
    pub(crate) fn plan(self) -> Result<(Value, Vec<usize>)> {
        if self.jobs.is_empty() {
            return Err(Error::InvalidFlow("a flow needs at least one job".into()));
        }
        if self.jobs.len() > MAX_FLOW_JOBS {
            return Err(Error::InvalidFlow(format!(
                "a flow holds at most {MAX_FLOW_JOBS} jobs, not {}",
                self.jobs.len()
            )));
        }
        let parents: Vec<Vec<Parent>> = self.jobs.iter().map(|j| j.after.clone()).collect();
        let refs: Vec<&str> = self.jobs.iter().map(|j| j.reference.as_str()).collect();
        let order = order(&refs, &parents)?;
        let mut jobs: Vec<Option<FlowJob>> = self.jobs.into_iter().map(Some).collect();
        let mut out = Vec::with_capacity(order.len());
        for &i in &order {
            // INVARIANT: `order` is a permutation of the indices.
            let job = jobs[i].take().expect("each index once");
            out.push(job.into_json()?);
        }
        Ok((Value::Array(out), order))
    }
}

impl FlowJob {
    /// Runs only after the flow's job `reference` completed.
    pub fn after(mut self, reference: impl Into<String>) -> Self {
        self.after.push(Parent::Ref(reference.into()));
        self
    }

    /// Runs only after the existing job `id` completed (one enqueued before; if it has
    /// completed already, it holds nothing up).
    pub fn after_job(mut self, id: i64) -> Self {
        self.after.push(Parent::Job(id));
        self
    }

    /// Runs even if a parent fails for good or is cancelled (once every parent has
    /// finished, however). By default the job is cancelled then.
    pub fn run_if_parent_fails(mut self) -> Self {
        self.run_if_parent_fails = true;
        self
    }

    fn into_json(self) -> Result<Value> {
        let reference = self.reference;
        let job = self
            .job
            .map_err(|e| Error::InvalidFlow(format!("job {reference:?}: {e}")))?;
        let args: Value = serde_json::from_str(&job.args)
            .map_err(|e| Error::InvalidFlow(format!("job {reference:?}: args: {e}")))?;
        let depends_on: Vec<Value> = self
            .after
            .into_iter()
            .map(|p| match p {
                Parent::Ref(r) => Value::String(r),
                Parent::Job(id) => json!(id),
            })
            .collect();
        let mut v = json!({
            "ref": reference,
            "kind": job.kind,
            "args": args,
            "priority": job.priority,
            "max_attempts": job.max_attempts,
            "queue": job.queue,
            "depends_on": depends_on,
            "run_if_parent_fails": self.run_if_parent_fails,
        });
        if let Some(t) = job.timeout_ms {
            v["timeout_ms"] = json!(t);
        }
        if let Some(at) = job.run_at {
            v["run_at_epoch"] = json!(epoch_seconds(at));
        }
        if let Some(d) = job.delay_s {
            v["delay_s"] = json!(d);
        }
        Ok(v)
    }
}

fn epoch_seconds(t: SystemTime) -> f64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs_f64(),
        Err(e) => -e.duration().as_secs_f64(),
    }
}

/// Orders jobs so that every job comes after the flow jobs it depends on (existing job
/// ids impose nothing). Refuses empty or duplicate references, unknown references, and
/// cycles (naming jobs on one).
fn order(refs: &[&str], parents: &[Vec<Parent>]) -> Result<Vec<usize>> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(refs.len());
    for (i, r) in refs.iter().enumerate() {
        if r.is_empty() || r.len() > 255 {
            return Err(Error::InvalidFlow(format!(
                "job #{}: a reference must be 1 to 255 bytes",
                i + 1
            )));
        }
        if index.insert(r, i).is_some() {
            return Err(Error::InvalidFlow(format!(
                "reference {r:?} is used by more than one job"
            )));
        }
    }
    let mut children: Vec<Vec<usize>> = vec![Vec::new(); refs.len()];
    let mut waiting_on = vec![0usize; refs.len()];
    for (i, ps) in parents.iter().enumerate() {
        for p in ps {
            match p {
                Parent::Ref(r) => {
                    let Some(&j) = index.get(r.as_str()) else {
                        return Err(Error::InvalidFlow(format!(
                            "job {:?} depends on {r:?}, which is not in the flow",
                            refs[i]
                        )));
                    };
                    children[j].push(i);
                    waiting_on[i] += 1;
                }
                Parent::Job(id) if *id <= 0 => {
                    return Err(Error::InvalidFlow(format!(
                        "job {:?} depends on job {id}, which cannot exist",
                        refs[i]
                    )))
                }
                Parent::Job(_) => {}
            }
        }
    }
    // Kahn's algorithm, in the order jobs were added among those ready.
    let mut ready: std::collections::VecDeque<usize> =
        (0..refs.len()).filter(|&i| waiting_on[i] == 0).collect();
    let mut out = Vec::with_capacity(refs.len());
    while let Some(i) = ready.pop_front() {
        out.push(i);
        for &c in &children[i] {
            waiting_on[c] -= 1;
            if waiting_on[c] == 0 {
                ready.push_back(c);
            }
        }
    }
    if out.len() < refs.len() {
        let stuck: Vec<&str> = (0..refs.len())
            .filter(|&i| waiting_on[i] > 0)
            .take(5)
            .map(|i| refs[i])
            .collect();
        return Err(Error::InvalidFlow(format!(
            "the flow has a cycle: {} jobs wait on each other, among them {stuck:?}",
            refs.len() - out.len()
        )));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refs_of(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("j{i}")).collect()
    }

    fn r(s: &str) -> Parent {
        Parent::Ref(s.into())
    }

    #[test]
    fn parents_come_first_whatever_the_order_added() {
        let refs = ["mail", "render", "fetch"];
        let parents = vec![vec![r("render")], vec![r("fetch")], vec![Parent::Job(7)]];
        assert_eq!(order(&refs, &parents).unwrap(), [2, 1, 0]);
    }

    #[test]
    fn cycles_and_bad_references_are_refused() {
        let refs = ["a", "b", "c"];
        let cycle = vec![vec![r("c")], vec![r("a")], vec![r("b")]];
        let e = order(&refs, &cycle).unwrap_err().to_string();
        assert!(e.contains("cycle") && e.contains("3 jobs"), "{e}");
        let own = vec![vec![r("a")], vec![], vec![]];
        assert!(order(&refs, &own)
            .unwrap_err()
            .to_string()
            .contains("cycle"));
        let unknown = vec![vec![r("zz")], vec![], vec![]];
        assert!(order(&refs, &unknown)
            .unwrap_err()
            .to_string()
            .contains("not in the flow"));
        assert!(order(&["a", "a"], &[vec![], vec![]]).is_err());
        assert!(order(&[""], &[vec![]]).is_err());
        assert!(order(&["a"], &[vec![Parent::Job(0)]]).is_err());
    }

    #[test]
    fn a_chain_of_100_000_orders_without_recursion() {
        let refs = refs_of(100_000);
        let names: Vec<&str> = refs.iter().map(String::as_str).collect();
        // Added last-first, so every job's parent comes later in the input.
        let parents: Vec<Vec<Parent>> = (0..refs.len())
            .map(|i| {
                if i + 1 < refs.len() {
                    vec![r(&refs[i + 1])]
                } else {
                    vec![]
                }
            })
            .collect();
        let out = order(&names, &parents).unwrap();
        assert_eq!(out[0], refs.len() - 1);
        assert_eq!(out[refs.len() - 1], 0);
    }
}
