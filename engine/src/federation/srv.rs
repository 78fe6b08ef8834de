//! Ordering the DNS SRV records of a remote domain (RFC 6120 §3.2.1, RFC 2782,
//! XEP-0368): `_xmpps-server._tcp` (direct TLS) and `_xmpp-server._tcp` (STARTTLS)
//! records together, lowest priority first, weighted random order within a priority,
//! direct TLS first between equals. The runtime only resolves; the choice is here,
//! with injected randomness.

use rand_core::RngCore;

/// One SRV record as the resolver returned it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrvRecord {
    /// Lower is tried first.
    pub priority: u16,
    /// Relative share among records of the same priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host to connect to (no trailing dot).
    pub target: String,
}

/// A host and port to try, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The host name (resolved to addresses next).
    pub host: String,
    /// The port.
    pub port: u16,
    /// XEP-0368: TLS from the first byte.
    pub direct_tls: bool,
}

/// The order to try the records in. RFC 2782: a single record whose target is `.`
/// means the service is decidedly not available, which gives no target at all.
pub fn order(xmpps: &[SrvRecord], xmpp: &[SrvRecord], rng: &mut dyn RngCore) -> Vec<Target> {
    let refused =
        |records: &[SrvRecord]| records.len() == 1 && records[0].target.trim_end_matches('.').is_empty();
    let mut all: Vec<(SrvRecord, bool)> = Vec::new();
    if !refused(xmpps) {
        all.extend(xmpps.iter().cloned().map(|r| (r, true)));
    }
    if !refused(xmpp) {
        all.extend(xmpp.iter().cloned().map(|r| (r, false)));
    }
    all.retain(|(r, _)| !r.target.trim_end_matches('.').is_empty());
    all.sort_by_key(|(r, tls)| (r.priority, !*tls));
    let mut out = Vec::with_capacity(all.len());
    let mut i = 0;
    while i < all.len() {
        let priority = all[i].0.priority;
        let mut group: Vec<(SrvRecord, bool)> = Vec::new();
        while i < all.len() && all[i].0.priority == priority {
            group.push(all[i].clone());
            i += 1;
        }
        // RFC 2782: zero-weight records first, then pick by running sums.
        group.sort_by_key(|(r, tls)| (r.weight != 0, !*tls));
        while !group.is_empty() {
            let total: u32 = group.iter().map(|(r, _)| u32::from(r.weight)).sum();
            let pick = if total == 0 {
                0
            } else {
                let roll = rng.next_u32() % (total + 1);
                let mut sum = 0;
                group
                    .iter()
                    .position(|(r, _)| {
                        sum += u32::from(r.weight);
                        sum >= roll
                    })
                    .unwrap_or(0)
            };
            let (r, direct_tls) = group.remove(pick);
            out.push(Target {
                host: r.target.trim_end_matches('.').to_string(),
                port: r.port,
                direct_tls,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(priority: u16, weight: u16, target: &str) -> SrvRecord {
        SrvRecord {
            priority,
            weight,
            port: 5269,
            target: target.into(),
        }
    }

    #[test]
    fn priorities_first_then_direct_tls_between_equals() {
        let mut rng = rand_core::OsRng;
        let order = order(
            &[rec(10, 0, "tls.example.")],
            &[rec(5, 0, "a.example."), rec(10, 0, "b.example.")],
            &mut rng,
        );
        let hosts: Vec<(&str, bool)> = order.iter().map(|t| (t.host.as_str(), t.direct_tls)).collect();
        assert_eq!(
            hosts,
            vec![("a.example", false), ("tls.example", true), ("b.example", false)]
        );
    }

    #[test]
    fn a_dot_target_means_no_service() {
        let mut rng = rand_core::OsRng;
        assert!(order(&[], &[rec(0, 0, ".")], &mut rng).is_empty());
    }

    /// RFC 2782: within a priority, each record comes first in proportion to its weight.
    #[test]
    fn weights_share_the_first_place() {
        use rand_core::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let records = [rec(1, 90, "heavy"), rec(1, 10, "light")];
        let heavy_first = (0..1000)
            .filter(|_| order(&[], &records, &mut rng)[0].host == "heavy")
            .count();
        assert!((800..=980).contains(&heavy_first), "{heavy_first}");
    }
}
