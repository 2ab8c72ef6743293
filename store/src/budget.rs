//! A trunk's limits shared by the nodes of one database: each node holds a
//! share (concurrent calls, calls per second) that it renews with a lease,
//! and the shares of all nodes never add up to more than the carrier's
//! limits — when nodes join, die, or come back from a pause.
//!
//! The rule ([`share`]) is pure; an engine applies it to the other nodes'
//! shares under one lock and stores the result (the PostgreSQL engine in
//! one transaction; one process alone always holds the whole trunk).
//! - Each live node aims at an equal part (`fair`).
//! - A node grows only into what the others leave free, so the sum holds.
//! - A node shrinks towards its fair part, never below the calls it has up
//!   (they are still up at the carrier), so a newcomer gets its part as the
//!   others' calls end.
//! - A dead node's rate is free once its lease ran out; its calls count
//!   on until they cannot be up any more (`reserved`: its lease plus the
//!   longest a call lasts), since the carrier still carries them.
//!
//! Depends on: nothing.

/// A node's share of the trunk.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize, serde::Deserialize)]
pub struct Share {
    pub calls: u32,
    pub cps: f64,
}

/// Another node's share as stored, and whether its lease holds (`live`)
/// and whether its calls may still be up (`reserved`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Held {
    pub share: Share,
    pub live: bool,
    pub reserved: bool,
}

/// This node's next share, given the trunk's `limit`, its previous share,
/// the calls it has up, and the others' shares.
pub fn share(limit: Share, prev: Share, active: u32, others: &[Held]) -> Share {
    let live = 1 + others.iter().filter(|o| o.live).count() as u32;
    let others_calls: u32 = others
        .iter()
        .filter(|o| o.reserved)
        .map(|o| o.share.calls)
        .sum();
    let others_cps: f64 = others.iter().filter(|o| o.live).map(|o| o.share.cps).sum();
    let fair_calls = limit.calls.div_ceil(live);
    let calls = if fair_calls < prev.calls {
        fair_calls.max(active.min(prev.calls))
    } else {
        fair_calls
    }
    .min(limit.calls.saturating_sub(others_calls));
    let cps = (limit.cps / live as f64).min((limit.cps - others_cps).max(0.0));
    Share { calls, cps }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Share = Share {
        calls: 300,
        cps: 50.0,
    };

    fn live(calls: u32, cps: f64) -> Held {
        Held {
            share: Share { calls, cps },
            live: true,
            reserved: true,
        }
    }

    /// Nodes renewing in turn, with calls up: the sum never exceeds the
    /// limit, and the shares converge to equal parts.
    fn converge(nodes: usize, active: &[u32], rounds: usize) -> Vec<Share> {
        let mut shares = vec![Share::default(); nodes];
        for _ in 0..rounds {
            for i in 0..nodes {
                let others: Vec<Held> = (0..nodes)
                    .filter(|j| *j != i)
                    .map(|j| live(shares[j].calls, shares[j].cps))
                    .collect();
                shares[i] = share(LIMIT, shares[i], active[i].min(shares[i].calls), &others);
                let calls: u32 = shares.iter().map(|s| s.calls).sum();
                let cps: f64 = shares.iter().map(|s| s.cps).sum();
                assert!(calls <= LIMIT.calls, "{shares:?}");
                assert!(cps <= LIMIT.cps + 1e-9, "{shares:?}");
            }
        }
        shares
    }

    #[test]
    fn one_node_holds_the_whole_trunk() {
        assert_eq!(share(LIMIT, Share::default(), 0, &[]), LIMIT);
    }

    #[test]
    fn three_nodes_converge_to_thirds_and_never_exceed() {
        let s = converge(3, &[0, 0, 0], 4);
        assert!(
            s.iter()
                .all(|x| x.calls == 100 && (x.cps - 50.0 / 3.0).abs() < 1e-9),
            "{s:?}"
        );
    }

    #[test]
    fn a_newcomer_waits_for_the_others_calls_to_end() {
        // A holds the trunk with 250 calls up; B joins.
        let a = LIMIT;
        let b = share(LIMIT, Share::default(), 0, &[live(a.calls, a.cps)]);
        assert_eq!(b.calls, 0, "nothing free yet");
        assert_eq!(b.cps, 0.0);
        let a = share(LIMIT, a, 250, &[live(b.calls, b.cps)]);
        assert_eq!(a.calls, 250, "not below the calls it has up");
        assert_eq!(a.cps, 25.0);
        let b = share(LIMIT, b, 0, &[live(a.calls, a.cps)]);
        assert_eq!((b.calls, b.cps), (50, 25.0));
        // A's calls end: it gives back to its fair part, B takes it.
        let a = share(LIMIT, a, 120, &[live(b.calls, b.cps)]);
        assert_eq!(a.calls, 150);
        let b = share(LIMIT, b, 50, &[live(a.calls, a.cps)]);
        assert_eq!(b.calls, 150);
    }

    #[test]
    fn a_dead_nodes_rate_frees_at_once_and_its_calls_only_later() {
        let me = Share {
            calls: 100,
            cps: 50.0 / 3.0,
        };
        let dead = Held {
            share: me,
            live: false,
            reserved: true,
        };
        let s = share(LIMIT, me, 80, &[live(100, 50.0 / 3.0), dead]);
        assert_eq!(s.calls, 100, "the dead node's calls may still be up");
        assert!((s.cps - 25.0).abs() < 1e-9, "{s:?}");
        let gone = Held {
            reserved: false,
            ..dead
        };
        let s = share(LIMIT, s, 80, &[live(100, 25.0), gone]);
        assert_eq!(s.calls, 150);
    }
}
