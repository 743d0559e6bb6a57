//! Linearizability of one register's history: the search of Wing and Gong
//! with Lowe's cache of (operations taken, register value) pairs already
//! explored, as in Porcupine and Knossos.
//!
//! The history becomes a list of call and return events in time order. The
//! search walks it, taking an operation whose call it meets (if the model
//! allows it in the current state and the result was not explored before)
//! and removing its events from the list; meeting a return whose operation
//! was not taken means the order so far cannot be extended, so it undoes
//! the last taken operation and tries the next candidate. The history is
//! linearizable when every event is gone. Unanswered operations return at
//! the end of time, so a write may also be ordered after everything else,
//! which is the same as never taking effect; before the search, such writes
//! that no read saw are left out and the others end when the first read
//! that saw them did, which keeps a failing search from trying every
//! subset of them.

use std::collections::{HashMap, HashSet};
use std::fmt;

use crate::Completion;

/// What an operation on the register did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Write(u64),
    /// The value the read returned (`None`: never written).
    Read(Option<u64>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Op {
    pub client: usize,
    pub invoked: u64,
    pub completed: Completion,
    pub action: Action,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ms = |ns: u64| ns as f64 / 1e6;
        match self.action {
            Action::Write(v) => write!(f, "client {} wrote {v}", self.client)?,
            Action::Read(Some(v)) => write!(f, "client {} read {v}", self.client)?,
            Action::Read(None) => write!(f, "client {} read nothing", self.client)?,
        }
        match self.completed {
            Completion::At(t) => write!(f, " [{:.3} ms .. {:.3} ms]", ms(self.invoked), ms(t)),
            Completion::Unknown => write!(f, " [{:.3} ms .. no answer]", ms(self.invoked)),
        }
    }
}

/// No order explains the history.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{op} cannot take effect anywhere: the longest order that explains the history \
     takes {explained} of {total} operations and leaves the register at {value}"
)]
pub struct Violation {
    /// The earliest-answered operation outside the longest explainable order.
    pub op: Op,
    pub explained: usize,
    pub total: usize,
    /// The register's value after that order, as text.
    pub value: String,
}

#[derive(Debug, Clone, Copy)]
struct Event {
    op: usize,
    call: bool,
    /// For a call: the index of its return event.
    other: usize,
}

/// Lists the events of `ops` in time order; a call comes before a return at
/// the same instant (the two operations count as concurrent).
fn events(ops: &[Op]) -> Vec<Event> {
    let mut keyed: Vec<(u64, bool, usize)> = Vec::with_capacity(ops.len() * 2);
    for (i, op) in ops.iter().enumerate() {
        keyed.push((op.invoked, false, i));
        let ret = match op.completed {
            Completion::At(t) => t.max(op.invoked),
            Completion::Unknown => u64::MAX,
        };
        keyed.push((ret, true, i));
    }
    keyed.sort();
    let mut ret_at = vec![0; ops.len()];
    for (pos, (_, is_ret, op)) in keyed.iter().enumerate() {
        if *is_ret {
            ret_at[*op] = pos;
        }
    }
    keyed
        .iter()
        .map(|&(_, is_ret, op)| Event {
            op,
            call: !is_ret,
            other: ret_at[op],
        })
        .collect()
}

/// The doubly linked list of events not taken yet; node 0 is the head
/// sentinel, event `i` is node `i + 1`.
struct List {
    next: Vec<usize>,
    prev: Vec<usize>,
}

const END: usize = usize::MAX;

impl List {
    fn new(n: usize) -> List {
        let next = (0..=n).map(|i| if i < n { i + 1 } else { END }).collect();
        let prev = (0..=n).map(|i| i.wrapping_sub(1)).collect();
        List { next, prev }
    }

    fn unlink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = n;
        if n != END {
            self.prev[n] = p;
        }
    }

    /// Puts back a node unlinked last-in first-out.
    fn relink(&mut self, node: usize) {
        let (p, n) = (self.prev[node], self.next[node]);
        self.next[p] = node;
        if n != END {
            self.prev[n] = node;
        }
    }
}

fn step(state: Option<u64>, action: Action) -> Option<Option<u64>> {
    match action {
        Action::Write(v) => Some(Some(v)),
        Action::Read(seen) => (seen == state).then_some(state),
    }
}

/// Unanswered writes, made answered where the reads allow: one that no read
/// saw can be left out (taking effect after everything else is the same
/// as never); one that a read saw took effect before that read returned.
/// Without this, each unanswered write stays open to the end of the
/// history and a failing search tries every subset of them.
fn settle_unanswered(ops: &[Op]) -> Vec<Op> {
    let mut seen_by: HashMap<u64, u64> = HashMap::new();
    for op in ops {
        if let (Action::Read(Some(v)), Completion::At(t)) = (op.action, op.completed) {
            let first = seen_by.entry(v).or_insert(t);
            *first = (*first).min(t);
        }
    }
    ops.iter()
        .filter_map(|op| match (op.action, op.completed) {
            (Action::Write(v), Completion::Unknown) => seen_by.get(&v).map(|&t| Op {
                completed: Completion::At(t.max(op.invoked)),
                ..*op
            }),
            _ => Some(*op),
        })
        .collect()
}

/// Checks that `ops` on a register that starts empty are linearizable.
/// Every value must be written at most once.
pub fn check(ops: &[Op]) -> Result<(), Violation> {
    let settled = settle_unanswered(ops);
    let ops = &settled[..];
    let events = events(ops);
    let mut list = List::new(events.len());
    let words = ops.len().div_ceil(64);
    let mut taken = vec![0u64; words];
    let mut seen: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    // (call node, value before it) of every operation taken, in order.
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut best: Vec<usize> = Vec::new();
    let mut best_value = None;
    let mut state = None;
    let mut node = list.next[0];
    while list.next[0] != END {
        let ev = events[node - 1];
        if ev.call {
            let next_state = step(state, ops[ev.op].action);
            let mut advanced = false;
            if let Some(next_state) = next_state {
                taken[ev.op / 64] |= 1 << (ev.op % 64);
                if seen.insert((taken.clone(), next_state)) {
                    stack.push((node, state));
                    state = next_state;
                    list.unlink(node);
                    list.unlink(ev.other + 1);
                    if stack.len() > best.len() {
                        best = stack.iter().map(|(n, _)| events[n - 1].op).collect();
                        best_value = state;
                    }
                    node = list.next[0];
                    advanced = true;
                } else {
                    taken[ev.op / 64] &= !(1 << (ev.op % 64));
                }
            }
            if !advanced {
                node = list.next[node];
            }
        } else {
            // The return of an operation not taken: undo the last choice.
            // (The walk always meets one before the list ends: every call's
            // return comes after it.)
            let Some((call, before)) = stack.pop() else {
                return Err(violation(ops, &best, best_value));
            };
            let op = events[call - 1].op;
            taken[op / 64] &= !(1 << (op % 64));
            state = before;
            list.relink(events[call - 1].other + 1);
            list.relink(call);
            node = list.next[call];
        }
    }
    Ok(())
}

fn violation(ops: &[Op], best: &[usize], value: Option<u64>) -> Violation {
    let taken: HashSet<usize> = best.iter().copied().collect();
    let answered = |op: &Op| match op.completed {
        Completion::At(t) => t,
        Completion::Unknown => u64::MAX,
    };
    let op = (0..ops.len())
        .filter(|i| !taken.contains(i))
        .map(|i| ops[i])
        .min_by_key(answered)
        .unwrap_or(ops[0]);
    Violation {
        op,
        explained: best.len(),
        total: ops.len(),
        value: value.map_or_else(|| "nothing".into(), |v| v.to_string()),
    }
}

#[cfg(test)]
#[path = "register_tests.rs"]
mod tests;
