//! The device table: (segment, IP) -> MAC with first/last seen, source, DHCP hostname and
//! lease, and a per-MAC view. Bounded: past its capacity an entry is evicted and counted, the
//! least recently seen of those learnt during a flood first (the probation tier), so a flood of
//! made-up stations cannot push out the real ones learnt before it. Change names follow MAAS (new, refreshed, moved) and arpwatch where it
//! is finer (flip flop: back to a MAC this IP had recently).
use std::{net::Ipv4Addr, num::NonZeroUsize};

use serde::Serialize;
use smallvec::SmallVec;

use crate::model::{fast_lru, FastLru, FastMap, FastSet, Mac, Nanos, Segment, SECOND};

/// Key of the device table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct DeviceKey {
    #[serde(flatten)]
    pub seg: Segment,
    pub ip: Ipv4Addr,
}

/// Two words: the device table, its per-MAC index and the store's journal hash keys on every
/// event.
impl std::hash::Hash for DeviceKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        h.write_u64(self.seg.packed());
        h.write_u32(u32::from(self.ip));
    }
}

/// Where a binding was learnt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    Arp,
    Dhcp,
}

/// A DHCP lease as the server granted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Lease {
    pub server: Ipv4Addr,
    pub lease_secs: u32,
    /// ns since the epoch.
    pub expires: Nanos,
}

/// How a binding changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum Change {
    /// First time this IP is seen on this segment.
    New,
    /// Same MAC again.
    Refreshed,
    /// Another MAC now holds the IP (arpwatch: changed ethernet address).
    Moved { old_mac: Mac },
    /// Back to a MAC the IP had recently (arpwatch: flip flop).
    FlipFlop { old_mac: Mac },
}

impl Change {
    pub fn name(&self) -> &'static str {
        match self {
            Change::New => "new",
            Change::Refreshed => "refreshed",
            Change::Moved { .. } => "moved",
            Change::FlipFlop { .. } => "flip_flop",
        }
    }
}

/// One row of the table. Kept small: the table is sized for a million entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    pub mac: Mac,
    pub first_seen: Nanos,
    pub last_seen: Nanos,
    pub source: Source,
    pub hostname: Option<Box<str>>,
    pub lease: Option<Lease>,
    /// The MAC before the current one, and when it was last seen holding the IP (flip-flop
    /// and duplicate detection).
    pub previous: Option<(Mac, Nanos)>,
    /// How many times the MAC changed.
    pub mac_changes: u32,
    /// How the machine booted and reached DHCP (boxed: most devices have none).
    pub boot: Option<Box<Boot>>,
}

/// What a machine's DHCP said about booting and the path it came by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Boot {
    /// A PXE client (vendor class PXEClient, or option 93).
    pub pxe: bool,
    /// Option 93's first architecture, by name (x64_uefi, x86_bios, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<String>,
    /// The boot server and file its lease named (options 66/67, else siaddr and `file`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_server: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_file: Option<String>,
    /// The relay (giaddr) and the relay agent's circuit and remote ids (option 82).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<std::net::Ipv4Addr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

impl Boot {
    /// Whether there is anything to record.
    pub fn is_empty(&self) -> bool {
        *self == Boot::default()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct DeviceTableConfig {
    /// Most entries kept; the least recently seen is evicted past it.
    pub capacity: usize,
    /// A change back to the previous MAC within this many seconds is a flip flop.
    pub flip_flop_window_secs: u64,
    /// A device not seen for this long is reported as stale.
    pub stale_after_secs: u64,
}

impl Default for DeviceTableConfig {
    fn default() -> Self {
        DeviceTableConfig {
            capacity: 100_000,
            flip_flop_window_secs: 3_600,
            stale_after_secs: 3_600,
        }
    }
}

/// Device state as reported.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    Active,
    Stale,
    LeaseExpired,
}

pub struct DeviceTable {
    cfg: DeviceTableConfig,
    rows: FastLru<DeviceKey, Device>,
    /// Rows first learnt while their segment was flooding: evicted before any in `rows`, and
    /// promoted to `rows` when seen again after the flood.
    probation: FastLru<DeviceKey, Device>,
    /// Segments with an open flood finding.
    flooding: FastSet<Segment>,
    /// Nearly every MAC holds one address: the first key lives inline, not on the heap.
    by_mac: FastMap<Mac, SmallVec<[DeviceKey; 1]>>,
    /// Host names clients sent in DISCOVER/REQUEST, until the ACK names their address.
    pending_names: FastLru<(Segment, Mac), Box<str>>,
    evictions: u64,
}

impl DeviceTable {
    pub fn new(cfg: DeviceTableConfig) -> Self {
        let cap = NonZeroUsize::new(cfg.capacity.max(1)).expect("non-zero");
        let names = NonZeroUsize::new((cfg.capacity / 10).clamp(16, 65_536)).expect("non-zero");
        DeviceTable {
            cfg,
            rows: fast_lru(cap),
            probation: crate::detect::lazy_lru(cap.get()),
            flooding: FastSet::default(),
            by_mac: FastMap::default(),
            pending_names: fast_lru(names),
            evictions: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.rows.len() + self.probation.len()
    }

    /// Rows learnt during a flood and not seen again since.
    pub fn probation_len(&self) -> usize {
        self.probation.len()
    }

    /// True at capacity: each new row now evicts one.
    pub fn is_full(&self) -> bool {
        self.len() >= self.cfg.capacity.max(1)
    }

    /// True when `key` is a row learnt during a flood and not seen since.
    pub fn in_probation(&self, key: &DeviceKey) -> bool {
        !self.probation.is_empty() && self.probation.contains(key)
    }

    /// Marks `seg` as flooding (or no longer): its new rows go to the probation tier.
    pub fn set_flooding(&mut self, seg: Segment, on: bool) {
        if on {
            self.flooding.insert(seg);
        } else {
            self.flooding.remove(&seg);
        }
    }

    /// Applies new windows (flip flop, stale); the capacity stays.
    pub fn set_windows(&mut self, cfg: &DeviceTableConfig) {
        self.cfg.flip_flop_window_secs = cfg.flip_flop_window_secs;
        self.cfg.stale_after_secs = cfg.stale_after_secs;
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty() && self.probation.is_empty()
    }

    /// Entries evicted because the table was full.
    pub fn evictions(&self) -> u64 {
        self.evictions
    }

    pub fn get(&self, key: &DeviceKey) -> Option<&Device> {
        self.rows.peek(key).or_else(|| self.probation.peek(key))
    }

    fn peek_mut(&mut self, key: &DeviceKey) -> Option<&mut Device> {
        match self.rows.peek_mut(key) {
            Some(d) => Some(d),
            None => self.probation.peek_mut(key),
        }
    }

    /// Every binding of `mac`.
    pub fn by_mac(&self, mac: &Mac) -> &[DeviceKey] {
        self.by_mac.get(mac).map_or(&[], |v| v.as_slice())
    }

    /// Rows, most recently seen first (the probation tier after the rest).
    pub fn iter(&self) -> impl Iterator<Item = (&DeviceKey, &Device)> {
        self.rows.iter().chain(self.probation.iter())
    }

    /// How long unseen before a row is stale.
    pub fn stale_after(&self) -> Nanos {
        self.cfg.stale_after_secs.saturating_mul(SECOND)
    }

    pub fn state(&self, d: &Device, now: Nanos) -> DeviceState {
        if d.lease.is_some_and(|l| l.expires < now) {
            DeviceState::LeaseExpired
        } else if now.saturating_sub(d.last_seen) > self.cfg.stale_after_secs * SECOND {
            DeviceState::Stale
        } else {
            DeviceState::Active
        }
    }

    /// Records a claim the kernel held back (drained from its pending maps): one no newer
    /// than what the table already knows for the address, from another MAC, does not override
    /// it, since a newer event went ahead of it.
    pub fn observe_held_back(
        &mut self,
        key: DeviceKey,
        mac: Mac,
        source: Source,
        now: Nanos,
    ) -> Change {
        if self
            .get(&key)
            .is_some_and(|d| d.mac != mac && now <= d.last_seen)
        {
            return Change::Refreshed;
        }
        self.observe(key, mac, source, now)
    }

    /// Records that `mac` holds `key.ip` on `key.seg` now.
    pub fn observe(&mut self, key: DeviceKey, mac: Mac, source: Source, now: Nanos) -> Change {
        let window = self.cfg.flip_flop_window_secs * SECOND;
        // Outside floods both are empty: no lookup in either.
        let flooding = !self.flooding.is_empty() && self.flooding.contains(&key.seg);
        if !flooding && !self.probation.is_empty() {
            if let Some(d) = self.probation.pop(&key) {
                self.rows.push(key, d);
            }
        }
        let found = match self.rows.get_mut(&key) {
            Some(d) => Some(d),
            None if !self.probation.is_empty() => self.probation.get_mut(&key),
            None => None,
        };
        if let Some(d) = found {
            let old_seen = d.last_seen;
            d.last_seen = d.last_seen.max(now);
            if d.mac == mac {
                return Change::Refreshed;
            }
            let old = d.mac;
            let flip = d
                .previous
                .is_some_and(|(m, seen)| m == mac && now.saturating_sub(seen) <= window);
            d.previous = Some((old, old_seen));
            d.mac = mac;
            d.source = source;
            d.mac_changes = d.mac_changes.saturating_add(1);
            d.hostname = None;
            d.lease = None;
            unlink(&mut self.by_mac, &old, &key);
            self.by_mac.entry(mac).or_default().push(key);
            return if flip {
                Change::FlipFlop { old_mac: old }
            } else {
                Change::Moved { old_mac: old }
            };
        }
        let dev = Device {
            mac,
            first_seen: now,
            last_seen: now,
            source,
            hostname: None,
            lease: None,
            previous: None,
            mac_changes: 0,
            boot: None,
        };
        if self.len() >= self.cfg.capacity.max(1) {
            // The probation tier goes first: flood entries before real stations.
            let evicted = self.probation.pop_lru().or_else(|| self.rows.pop_lru());
            if let Some((old_key, old)) = evicted {
                self.evictions += 1;
                unlink(&mut self.by_mac, &old.mac, &old_key);
            }
        }
        if flooding {
            self.probation.push(key, dev);
        } else {
            self.rows.push(key, dev);
        }
        self.by_mac.entry(mac).or_default().push(key);
        Change::New
    }

    /// Puts back a row read from the store (call least recently seen first).
    pub fn restore(&mut self, key: DeviceKey, dev: Device) {
        let mac = dev.mac;
        // push() hands back the replaced row or the evicted one: unlink either.
        if let Some((old_key, old)) = self.rows.push(key, dev) {
            unlink(&mut self.by_mac, &old.mac, &old_key);
        }
        self.by_mac.entry(mac).or_default().push(key);
    }

    /// Remembers the host name a client asked for, until its ACK arrives.
    pub fn note_client_name(&mut self, seg: Segment, mac: Mac, name: &str) {
        self.pending_names.put((seg, mac), name.into());
    }

    /// Records a DHCP ACK: the binding, its lease and the client's host name.
    pub fn apply_ack(
        &mut self,
        key: DeviceKey,
        mac: Mac,
        name: Option<&str>,
        lease: Option<Lease>,
        now: Nanos,
    ) -> Change {
        let change = self.observe(key, mac, Source::Dhcp, now);
        let pending = self.pending_names.pop(&(key.seg, mac));
        if let Some(d) = self.peek_mut(&key) {
            d.source = Source::Dhcp;
            if let Some(l) = lease {
                d.lease = Some(l);
            }
            if let Some(n) = name.map(Box::from).or(pending) {
                d.hostname = Some(n);
            }
        }
        change
    }

    /// Records how the device at `key` booted (its ACK and transaction said so).
    pub fn set_boot(&mut self, key: &DeviceKey, boot: Boot) {
        if let Some(d) = self.peek_mut(key) {
            d.boot = (!boot.is_empty()).then(|| Box::new(boot));
        }
    }

    /// Ends a lease (DHCPRELEASE) without forgetting the binding.
    pub fn release(&mut self, key: &DeviceKey, mac: Mac, now: Nanos) {
        if let Some(d) = self.peek_mut(key) {
            if d.mac == mac {
                if let Some(l) = d.lease.as_mut() {
                    l.expires = l.expires.min(now);
                }
            }
        }
    }
}

fn unlink(by_mac: &mut FastMap<Mac, SmallVec<[DeviceKey; 1]>>, mac: &Mac, key: &DeviceKey) {
    if let Some(v) = by_mac.get_mut(mac) {
        v.retain(|k| k != key);
        if v.is_empty() {
            by_mac.remove(mac);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: u8) -> DeviceKey {
        DeviceKey {
            seg: Segment {
                iface: crate::model::Iface::named("eth2"),
                outer_vlan: Some(10),
                inner_vlan: None,
            },
            ip: Ipv4Addr::new(10, 0, 0, ip),
        }
    }
    const A: Mac = Mac([2, 0, 0, 0, 0, 0xa]);
    const B: Mac = Mac([2, 0, 0, 0, 0, 0xb]);
    const C: Mac = Mac([2, 0, 0, 0, 0, 0xc]);

    #[test]
    fn new_refreshed_moved_and_flip_flop() {
        let mut t = DeviceTable::new(DeviceTableConfig::default());
        assert_eq!(t.observe(key(1), A, Source::Arp, SECOND), Change::New);
        assert_eq!(
            t.observe(key(1), A, Source::Arp, 2 * SECOND),
            Change::Refreshed
        );
        assert_eq!(
            t.observe(key(1), B, Source::Arp, 3 * SECOND),
            Change::Moved { old_mac: A }
        );
        assert_eq!(
            t.observe(key(1), A, Source::Arp, 4 * SECOND),
            Change::FlipFlop { old_mac: B }
        );
        assert_eq!(
            t.observe(key(1), C, Source::Arp, 5 * SECOND),
            Change::Moved { old_mac: A }
        );
        let d = t.get(&key(1)).unwrap();
        assert_eq!(
            (d.mac, d.first_seen, d.last_seen, d.mac_changes),
            (C, SECOND, 5 * SECOND, 3)
        );
        assert_eq!(t.by_mac(&C), &[key(1)]);
        assert!(t.by_mac(&A).is_empty());
    }

    #[test]
    fn flip_flop_window_boundary() {
        let cfg = DeviceTableConfig {
            flip_flop_window_secs: 10,
            ..Default::default()
        };
        // The window runs from the old MAC's last sighting, not from the change.
        let mut t = DeviceTable::new(cfg.clone());
        t.observe(key(1), A, Source::Arp, 0);
        t.observe(key(1), A, Source::Arp, 95 * SECOND);
        t.observe(key(1), B, Source::Arp, 100 * SECOND);
        // Exactly at the window edge: still a flip flop.
        assert_eq!(
            t.observe(key(1), A, Source::Arp, 105 * SECOND),
            Change::FlipFlop { old_mac: B }
        );
        let mut t = DeviceTable::new(cfg);
        t.observe(key(1), A, Source::Arp, 0);
        t.observe(key(1), A, Source::Arp, 95 * SECOND);
        t.observe(key(1), B, Source::Arp, 100 * SECOND);
        assert_eq!(
            t.observe(key(1), A, Source::Arp, 105 * SECOND + 1),
            Change::Moved { old_mac: B }
        );
    }

    #[test]
    fn capacity_evicts_least_recently_seen_and_counts() {
        let mut t = DeviceTable::new(DeviceTableConfig {
            capacity: 3,
            ..Default::default()
        });
        for ip in 1..=3 {
            t.observe(key(ip), Mac([2, 0, 0, 0, 0, ip]), Source::Arp, ip as u64);
        }
        t.observe(key(1), Mac([2, 0, 0, 0, 0, 1]), Source::Arp, 10);
        t.observe(key(4), Mac([2, 0, 0, 0, 0, 4]), Source::Arp, 11);
        assert_eq!(t.len(), 3);
        assert_eq!(t.evictions(), 1);
        assert!(t.get(&key(2)).is_none(), "ip .2 was least recently seen");
        assert!(t.by_mac(&Mac([2, 0, 0, 0, 0, 2])).is_empty());
        assert!(t.get(&key(1)).is_some());
    }

    #[test]
    fn a_flood_evicts_its_own_rows_before_real_stations() {
        let mut t = DeviceTable::new(DeviceTableConfig {
            capacity: 4,
            ..Default::default()
        });
        for ip in 1..=2 {
            t.observe(key(ip), Mac([2, 0, 0, 0, 0, ip]), Source::Arp, ip as u64);
        }
        t.set_flooding(key(0).seg, true);
        for ip in 10..=50 {
            t.observe(
                key(ip),
                Mac([2, 0, 0, 0, 1, ip]),
                Source::Arp,
                100 + ip as u64,
            );
        }
        assert_eq!(t.len(), 4);
        assert_eq!(t.evictions(), 39);
        assert!(t.get(&key(1)).is_some() && t.get(&key(2)).is_some());
        assert!(t.get(&key(50)).is_some() && t.get(&key(49)).is_some());
        assert_eq!(t.probation_len(), 2);
        // Seen again after the flood: promoted, and no longer evicted first.
        t.set_flooding(key(0).seg, false);
        t.observe(key(50), Mac([2, 0, 0, 0, 1, 50]), Source::Arp, 1_000);
        assert_eq!(t.probation_len(), 1);
        t.observe(key(60), Mac([2, 0, 0, 0, 1, 60]), Source::Arp, 1_001);
        assert!(t.get(&key(49)).is_none(), "the probation row went first");
        assert!(t.get(&key(1)).is_some() && t.get(&key(50)).is_some());
    }

    #[test]
    fn a_held_back_claim_does_not_override_a_newer_one() {
        let mut t = DeviceTable::new(DeviceTableConfig::default());
        t.observe(key(1), B, Source::Arp, 10 * SECOND);
        // Held back from before, or from the same clock tick: the newer MAC stays.
        for at in [9 * SECOND, 10 * SECOND] {
            assert_eq!(
                t.observe_held_back(key(1), A, Source::Arp, at),
                Change::Refreshed
            );
            assert_eq!(t.get(&key(1)).unwrap().mac, B);
        }
        assert_eq!(t.get(&key(1)).unwrap().mac_changes, 0);
        // Held back but newer: applied.
        assert_eq!(
            t.observe_held_back(key(1), A, Source::Arp, 11 * SECOND),
            Change::Moved { old_mac: B }
        );
        // Ring events come in the kernel's order: a change is applied even when the clock
        // conversion puts it a moment before the last sighting (same coarse tick).
        assert_eq!(
            t.observe(key(1), C, Source::Arp, 11 * SECOND - 1_000),
            Change::Moved { old_mac: A }
        );
    }

    #[test]
    fn ack_carries_pending_hostname_and_lease() {
        let mut t = DeviceTable::new(DeviceTableConfig::default());
        t.note_client_name(key(5).seg, A, "node-a");
        let lease = Lease {
            server: Ipv4Addr::new(10, 0, 0, 254),
            lease_secs: 120,
            expires: 130 * SECOND,
        };
        assert_eq!(
            t.apply_ack(key(5), A, None, Some(lease), 10 * SECOND),
            Change::New
        );
        let d = t.get(&key(5)).unwrap();
        assert_eq!(d.hostname.as_deref(), Some("node-a"));
        assert_eq!(d.source, Source::Dhcp);
        assert_eq!(t.state(d, 100 * SECOND), DeviceState::Active);
        assert_eq!(t.state(d, 131 * SECOND), DeviceState::LeaseExpired);
        t.release(&key(5), A, 20 * SECOND);
        assert_eq!(
            t.state(t.get(&key(5)).unwrap(), 21 * SECOND),
            DeviceState::LeaseExpired
        );
    }
}
