use super::*;

fn op(client: usize, invoked: u64, completed: Option<u64>, action: Action) -> Op {
    Op {
        client,
        invoked,
        completed: completed.map_or(Completion::Unknown, Completion::At),
        action,
    }
}

fn w(invoked: u64, completed: u64, v: u64) -> Op {
    op(0, invoked, Some(completed), Action::Write(v))
}

fn r(invoked: u64, completed: u64, v: Option<u64>) -> Op {
    op(1, invoked, Some(completed), Action::Read(v))
}

#[test]
fn sequential_histories() {
    assert_eq!(check(&[]), Ok(()));
    assert_eq!(check(&[r(0, 1, None)]), Ok(()));
    assert_eq!(check(&[w(0, 1, 5), r(2, 3, Some(5))]), Ok(()));
    assert!(check(&[w(0, 1, 5), r(2, 3, None)]).is_err());
    assert!(check(&[r(0, 1, Some(5))]).is_err());
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    assert_eq!(check(&[w(0, 10, 1), r(5, 6, None)]), Ok(()));
    assert_eq!(check(&[w(0, 10, 1), r(5, 6, Some(1))]), Ok(()));
}

#[test]
fn reads_may_not_go_back_in_time() {
    // Both reads overlap the write, but once one has seen the new value a
    // later read may not see the old one.
    let ops = [w(0, 100, 1), r(10, 20, Some(1)), r(30, 40, None)];
    let v = check(&ops).unwrap_err();
    assert_eq!(v.op.action, Action::Read(None));
    assert_eq!(v.explained, 2);
}

#[test]
fn a_stale_read_after_an_acknowledged_write_is_a_violation() {
    let ops = [w(0, 10, 1), w(20, 30, 2), r(40, 50, Some(1))];
    let v = check(&ops).unwrap_err();
    assert_eq!(v.op, ops[2]);
    assert!(v.to_string().contains("client 1 read 1"), "{v}");
}

#[test]
fn an_unanswered_write_may_take_effect_late_or_never() {
    let late = [
        op(0, 0, None, Action::Write(1)),
        r(10, 20, None),
        r(30, 40, Some(1)),
    ];
    assert_eq!(check(&late), Ok(()));
    let never = [op(0, 0, None, Action::Write(1)), r(10, 20, None)];
    assert_eq!(check(&never), Ok(()));
    // But not before it was invoked.
    let early = [r(0, 5, Some(1)), op(0, 10, None, Action::Write(1))];
    assert!(check(&early).is_err());
}

#[test]
fn an_unanswered_write_cannot_undo_a_later_one() {
    // 1 is sent and gets no answer; 2 is acknowledged later; reading 1
    // after that needs 1 to take effect after 2, which is allowed...
    let allowed = [
        op(0, 0, None, Action::Write(1)),
        w(10, 20, 2),
        r(30, 40, Some(1)),
    ];
    assert_eq!(check(&allowed), Ok(()));
    // ...but then 2 can never be read again.
    let mut bad = allowed.to_vec();
    bad.push(r(50, 60, Some(2)));
    assert!(check(&bad).is_err());
}

#[test]
fn many_concurrent_reads_stay_fast() {
    // 4 readers overlapping 500 sequential writes: the cache keeps the
    // search near linear.
    let mut ops = Vec::new();
    for i in 0..500u64 {
        ops.push(w(i * 10, i * 10 + 9, i + 1));
        for c in 0..4 {
            let seen = if c % 2 == 0 { i } else { i + 1 };
            ops.push(op(
                c + 1,
                i * 10 + 1,
                Some(i * 10 + 12),
                Action::Read((seen > 0).then_some(seen)),
            ));
        }
    }
    let start = std::time::Instant::now();
    assert_eq!(check(&ops), Ok(()));
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}

/// Whether some order explains `ops`, by trying every permutation
/// (unanswered writes may also be left out).
fn brute_force(ops: &[Op]) -> bool {
    fn ret(op: &Op) -> u64 {
        match op.completed {
            Completion::At(t) => t,
            Completion::Unknown => u64::MAX,
        }
    }
    fn go(ops: &[Op], used: &mut Vec<bool>, state: Option<u64>) -> bool {
        let pending: Vec<usize> = (0..ops.len()).filter(|i| !used[*i]).collect();
        // Done when every answered operation is placed.
        if pending
            .iter()
            .all(|i| ops[*i].completed == Completion::Unknown)
        {
            return true;
        }
        for &i in &pending {
            // i may go next only if no pending op returned before i began.
            if pending
                .iter()
                .any(|&j| j != i && ret(&ops[j]) < ops[i].invoked)
            {
                continue;
            }
            if let Some(next) = step(state, ops[i].action) {
                used[i] = true;
                let ok = go(ops, used, next);
                used[i] = false;
                if ok {
                    return true;
                }
            }
        }
        false
    }
    go(ops, &mut vec![false; ops.len()], None)
}

fn random_history(rng: &mut fastrand::Rng) -> Vec<Op> {
    let n = rng.usize(1..=7);
    let mut next_value = 1;
    (0..n)
        .map(|_| {
            let invoked = rng.u64(0..20);
            let completed = (rng.u8(0..6) != 0).then(|| invoked + rng.u64(0..10));
            let action = if rng.bool() {
                next_value += 1;
                Action::Write(next_value - 1)
            } else {
                Action::Read(rng.bool().then(|| rng.u64(1..next_value.max(2))))
            };
            let completed = match action {
                // Unanswered reads are dropped before checking.
                Action::Read(_) => completed.or(Some(invoked + 3)),
                Action::Write(_) => completed,
            };
            op(rng.usize(0..3), invoked, completed, action)
        })
        .collect()
}

#[test]
fn agrees_with_trying_every_order() {
    let mut rng = fastrand::Rng::with_seed(7);
    let (mut yes, mut no) = (0, 0);
    for _ in 0..20_000 {
        let ops = random_history(&mut rng);
        let expected = brute_force(&ops);
        assert_eq!(check(&ops).is_ok(), expected, "{ops:#?}");
        if expected {
            yes += 1;
        } else {
            no += 1;
        }
    }
    // Both verdicts were exercised.
    assert!(yes > 1000 && no > 1000, "{yes} linearizable, {no} not");
}

#[test]
fn a_violation_among_many_unanswered_writes_is_found_quickly() {
    // 200 unanswered writes, then a read of a value nobody wrote: each
    // unanswered write open to the end would make the search try 2^200
    // subsets before giving up.
    let mut ops: Vec<Op> = (0..200)
        .map(|i| op(0, i * 10, None, Action::Write(i + 1)))
        .collect();
    ops.push(r(5000, 5010, Some(9999)));
    let start = std::time::Instant::now();
    assert!(check(&ops).is_err());
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
}
