//! The MAAS neighbour feed: what `/usr/sbin/maas-netmon <ifname>` prints for MAAS's network
//! discovery, made from the agent's live ARP events. One JSON object per line:
//!
//! `{"event": "NEW"|"REFRESHED"|"MOVED", "ip": "...", "mac": "...", "previous_mac": "..."
//! (MOVED only), "time": <unix seconds>, "vid": <int|null>}`
//!
//! with maas-netmon's state machine per (vid, ip): the first sighting is NEW, another MAC is
//! MOVED, and the same MAC again is REFRESHED at most once per [`SEEN_AGAIN_SECS`]. All-zero
//! IPs (ARP probes) and MACs are never reported.
//!
//! VID: maas-netmon understands one 802.1Q tag; l2watch also sees QinQ. A QinQ binding is
//! reported under its **outer** (service) VID: that is the VLAN the rack controller's
//! interface is on, and the one MAAS models for it. Untagged is `null`.
use std::collections::HashMap;

use serde_json::Value;

/// maas-netmon's SEEN_AGAIN_THRESHOLD.
pub const SEEN_AGAIN_SECS: u64 = 600;

/// Bindings the feed remembers; past it the oldest-seen half is forgotten (they come back
/// as NEW, as after a maas-netmon restart).
pub const MAX_BINDINGS: usize = 100_000;

struct Binding {
    mac: String,
    /// When it was last reported.
    time: u64,
}

#[derive(Default)]
pub struct Feed {
    bindings: HashMap<(Option<u16>, String), Binding>,
}

impl Feed {
    /// The feed's line for one event from the stream, if it makes one.
    pub fn line(&mut self, e: &Value) -> Option<String> {
        let kind = e["kind"].as_str()?;
        if !matches!(
            kind,
            "arp_new" | "arp_refreshed" | "arp_moved" | "arp_flip_flop"
        ) {
            return None;
        }
        let ip = e["ip"].as_str()?;
        let ip4: std::net::Ipv4Addr = ip.parse().ok()?;
        let mac = e["mac"].as_str()?.to_ascii_lowercase();
        if ip4.is_unspecified() || mac == "00:00:00:00:00:00" {
            return None;
        }
        let vid = e["outer_vlan"].as_u64().map(|v| v as u16);
        let time = e["ts"].as_u64()? / 1_000_000_000;
        if self.bindings.len() >= MAX_BINDINGS {
            self.forget_oldest();
        }
        let key = (vid, ip.to_string());
        let vid_json = vid.map_or("null".to_string(), |v| v.to_string());
        match self.bindings.get_mut(&key) {
            None => {
                self.bindings.insert(
                    key,
                    Binding {
                        mac: mac.clone(),
                        time,
                    },
                );
                Some(format!(
                    r#"{{"event": "NEW", "ip": "{ip}", "mac": "{mac}", "time": {time}, "vid": {vid_json}}}"#
                ))
            }
            Some(b) if b.mac != mac => {
                let previous = std::mem::replace(&mut b.mac, mac.clone());
                b.time = time;
                Some(format!(
                    r#"{{"event": "MOVED", "ip": "{ip}", "mac": "{mac}", "previous_mac": "{previous}", "time": {time}, "vid": {vid_json}}}"#
                ))
            }
            Some(b) if time >= b.time + SEEN_AGAIN_SECS => {
                b.time = time;
                Some(format!(
                    r#"{{"event": "REFRESHED", "ip": "{ip}", "mac": "{mac}", "time": {time}, "vid": {vid_json}}}"#
                ))
            }
            Some(_) => None,
        }
    }

    fn forget_oldest(&mut self) {
        let mut times: Vec<u64> = self.bindings.values().map(|b| b.time).collect();
        let mid = times.len() / 2;
        let cut = *times.select_nth_unstable(mid).1;
        self.bindings.retain(|_, b| b.time > cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(
        kind: &str,
        ip: &str,
        mac: &str,
        secs: u64,
        outer: Option<u16>,
        inner: Option<u16>,
    ) -> Value {
        json!({"kind": kind, "ip": ip, "mac": mac, "ts": secs * 1_000_000_000,
               "outer_vlan": outer, "inner_vlan": inner, "interface": "eth0"})
    }

    /// Field names and types as maas-netmon prints them.
    fn check_shape(line: &str) -> Value {
        let v: Value = serde_json::from_str(line).unwrap();
        let o = v.as_object().unwrap();
        let event = o["event"].as_str().unwrap();
        assert!(["NEW", "REFRESHED", "MOVED"].contains(&event));
        let mut keys: Vec<&str> = o.keys().map(String::as_str).collect();
        keys.sort();
        let want: &[&str] = if event == "MOVED" {
            &["event", "ip", "mac", "previous_mac", "time", "vid"]
        } else {
            &["event", "ip", "mac", "time", "vid"]
        };
        assert_eq!(keys, want, "{line}");
        assert!(o["ip"].is_string() && o["mac"].is_string());
        assert!(o["time"].is_u64());
        assert!(o["vid"].is_null() || o["vid"].is_u64());
        v
    }

    #[test]
    fn new_refreshed_at_most_every_600_s_and_moved_with_the_previous_mac() {
        let mut f = Feed::default();
        let a = "02:00:00:00:00:0a";
        let b = "02:00:00:00:00:0b";
        let mut out = Vec::new();
        for (kind, mac, t) in [
            ("arp_new", a, 1_000),
            ("arp_refreshed", a, 1_060),
            ("arp_refreshed", a, 1_599),
            ("arp_refreshed", a, 1_600),
            ("arp_refreshed", a, 1_660),
            ("arp_moved", b, 1_700),
            ("arp_flip_flop", a, 1_710),
            ("arp_refreshed", a, 2_309),
            ("arp_refreshed", a, 2_310),
        ] {
            if let Some(l) = f.line(&ev(kind, "10.0.0.5", mac, t, Some(100), None)) {
                out.push(check_shape(&l));
            }
        }
        let got: Vec<(String, u64)> = out
            .iter()
            .map(|v| {
                (
                    v["event"].as_str().unwrap().to_string(),
                    v["time"].as_u64().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                ("NEW".into(), 1_000),
                ("REFRESHED".into(), 1_600),
                ("MOVED".into(), 1_700),
                ("MOVED".into(), 1_710),
                ("REFRESHED".into(), 2_310),
            ]
        );
        assert_eq!(out[2]["previous_mac"], a);
        assert_eq!(out[2]["mac"], b);
        assert_eq!(out[0]["vid"], 100);
    }

    #[test]
    fn zero_addresses_are_never_reported_and_other_kinds_are_ignored() {
        let mut f = Feed::default();
        assert!(f
            .line(&ev(
                "arp_new",
                "0.0.0.0",
                "02:00:00:00:00:01",
                1,
                None,
                None
            ))
            .is_none());
        assert!(f
            .line(&ev(
                "arp_new",
                "10.0.0.1",
                "00:00:00:00:00:00",
                1,
                None,
                None
            ))
            .is_none());
        assert!(f
            .line(&ev(
                "dhcp_ack",
                "10.0.0.1",
                "02:00:00:00:00:01",
                1,
                None,
                None
            ))
            .is_none());
        assert!(f
            .line(&ev(
                "arp_probe",
                "10.0.0.1",
                "02:00:00:00:00:01",
                1,
                None,
                None
            ))
            .is_none());
        let v = check_shape(
            &f.line(&ev(
                "arp_new",
                "10.0.0.1",
                "02:00:00:00:00:01",
                1,
                None,
                None,
            ))
            .unwrap(),
        );
        assert!(v["vid"].is_null(), "untagged is null");
    }

    #[test]
    fn qinq_is_reported_under_the_outer_vid_and_vids_are_separate() {
        let mut f = Feed::default();
        let l = f
            .line(&ev(
                "arp_new",
                "10.0.0.1",
                "02:00:00:00:00:01",
                1,
                Some(200),
                Some(300),
            ))
            .unwrap();
        assert_eq!(check_shape(&l)["vid"], 200);
        // The same IP on another VLAN is another binding.
        let l = f
            .line(&ev(
                "arp_new",
                "10.0.0.1",
                "02:00:00:00:00:02",
                2,
                Some(201),
                None,
            ))
            .unwrap();
        assert_eq!(check_shape(&l)["event"], "NEW");
    }
}
