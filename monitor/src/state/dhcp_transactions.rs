//! DHCPv4 transactions: messages paired by (segment, xid, client MAC), as tshark pairs them
//! by `dhcp.id`. DISCOVER -> OFFERs (one per server, each with its delay), REQUEST ->
//! ACK/NAK, INFORM -> ACK, and DECLINE. Each records the time to the first answer, which
//! server the client chose (the REQUEST's option 54), the relay (giaddr) and, for PXE
//! clients, the architecture and the boot offer. A transaction unanswered after `timeout`
//! ends `unanswered`. Bounded: the oldest transaction is evicted (and counted).
use std::{net::Ipv4Addr, num::NonZeroUsize};

use monitor_common::DhcpMsgType;
use serde::Serialize;

use crate::{
    decode::DhcpMessage,
    model::{fast_lru, FastLru, Mac, Nanos, Segment},
};

/// The transaction table's settings.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct TxConfig {
    /// Transactions kept at most (the oldest is evicted).
    pub capacity: usize,
    /// A DISCOVER, REQUEST or INFORM with no answer for this long is unanswered.
    pub timeout_secs: u64,
}

impl Default for TxConfig {
    fn default() -> Self {
        TxConfig {
            // Transactions last seconds: 16k in flight covers a whole rack PXE-booting at
            // once, and ended ones (oldest first) make room.
            capacity: 16_384,
            timeout_secs: 10,
        }
    }
}

/// What identifies a transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct TxKey {
    #[serde(flatten)]
    pub seg: Segment,
    pub xid: u32,
    pub client: Mac,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Still waiting for an answer (or for the client's next step).
    Pending,
    /// Offers came, the client has not requested yet.
    Offered,
    Bound,
    Nak,
    Declined,
    /// An INFORM answered by an ACK.
    Informed,
    /// The client gave its lease back (RELEASE: nothing to answer).
    Released,
    /// No answer within the timeout.
    Unanswered,
}

impl Outcome {
    pub const ENDED: &'static [Outcome] = &[
        Outcome::Bound,
        Outcome::Nak,
        Outcome::Declined,
        Outcome::Informed,
        Outcome::Released,
        Outcome::Unanswered,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Offered => "offered",
            Outcome::Bound => "bound",
            Outcome::Nak => "nak",
            Outcome::Declined => "declined",
            Outcome::Informed => "informed",
            Outcome::Released => "released",
            Outcome::Unanswered => "unanswered",
        }
    }
}

/// One server's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answer {
    pub server: Ipv4Addr,
    pub mac: Mac,
    /// What it answered: offer, ack or nak.
    pub kind: &'static str,
    /// Since the client's DISCOVER (an offer) or REQUEST/INFORM (an ack or nak).
    pub delay_ns: Nanos,
    pub yiaddr: Ipv4Addr,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_server: Option<Box<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub boot_file: Option<Box<str>>,
}

/// Answers kept per transaction (one per server is the norm).
const MAX_ANSWERS: usize = 8;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transaction {
    pub started: Nanos,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub discover_at: Option<Nanos>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_at: Option<Nanos>,
    pub answers: Vec<Answer>,
    /// The server the client chose (its REQUEST's option 54).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub chosen: Option<Ipv4Addr>,
    pub outcome: Outcome,
    /// Every outcome this transaction id reached, in order: a client that starts over with
    /// the same xid after a NAK shows `nak`, then `bound`.
    pub outcomes: Vec<Outcome>,
    /// The relay it came through (giaddr), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay: Option<Ipv4Addr>,
    pub pxe: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub arch: Option<u16>,
    /// The relay agent's circuit and remote ids (option 82), as any message carried them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub circuit_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote_id: Option<String>,
}

impl Transaction {
    /// The time to the first OFFER.
    pub fn first_offer_delay(&self) -> Option<Nanos> {
        self.answers
            .iter()
            .filter(|a| a.kind == "offer")
            .map(|a| a.delay_ns)
            .min()
    }
}

/// Outcomes remembered per transaction id.
const MAX_OUTCOMES: usize = 8;

fn push_outcome(tx: &mut Transaction, o: Outcome) {
    if tx.outcomes.len() >= MAX_OUTCOMES {
        tx.outcomes.remove(0);
    }
    tx.outcomes.push(o);
}

/// What one message did.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxUpdate {
    pub key: Option<TxKey>,
    /// A server answered, after this long.
    pub answer: Option<(Ipv4Addr, &'static str, Nanos)>,
    /// The transaction ended with this outcome.
    pub ended: Option<Outcome>,
}

pub struct Transactions {
    map: FastLru<TxKey, Transaction>,
    timeout: Nanos,
    evictions: u64,
}

impl Transactions {
    pub fn new(capacity: usize, timeout: Nanos) -> Self {
        Transactions {
            map: fast_lru(NonZeroUsize::new(capacity.max(1)).expect("non-zero")),
            timeout,
            evictions: 0,
        }
    }

    /// Pairs one message (from `src_mac`, at `now`) into its transaction.
    pub fn observe(
        &mut self,
        seg: Segment,
        src_mac: Mac,
        msg: &DhcpMessage,
        now: Nanos,
    ) -> TxUpdate {
        let Some(kind) = msg.kind() else {
            return TxUpdate::default();
        };
        let client = msg.chaddr.unwrap_or(src_mac);
        let key = TxKey {
            seg,
            xid: msg.xid,
            client,
        };
        let mut up = TxUpdate {
            key: Some(key),
            ..TxUpdate::default()
        };
        let relay = (!msg.giaddr.is_unspecified()).then_some(msg.giaddr);
        if let Some(ra) = &msg.relay_agent {
            let tx = self.entry(key, now);
            tx.circuit_id = ra.circuit_id.clone().or(tx.circuit_id.take());
            tx.remote_id = ra.remote_id.clone().or(tx.remote_id.take());
        }
        match kind {
            DhcpMsgType::Discover | DhcpMsgType::Request | DhcpMsgType::Inform => {
                let tx = self.entry(key, now);
                // After an outcome, a client message starts the next round.
                if Outcome::ENDED.contains(&tx.outcome) {
                    tx.started = now;
                    tx.discover_at = None;
                    tx.request_at = None;
                    tx.answers.clear();
                    tx.chosen = None;
                    tx.outcome = Outcome::Pending;
                }
                match kind {
                    DhcpMsgType::Discover => {
                        tx.discover_at.get_or_insert(now);
                    }
                    _ => {
                        tx.request_at = Some(now);
                        tx.chosen = msg.server_id.or(tx.chosen);
                        if tx.outcome == Outcome::Offered {
                            tx.outcome = Outcome::Pending;
                        }
                    }
                }
                tx.relay = relay.or(tx.relay);
                if msg.is_pxe() {
                    tx.pxe = true;
                    tx.arch = msg.client_arch.first().copied().or(tx.arch);
                }
            }
            DhcpMsgType::Offer | DhcpMsgType::Ack | DhcpMsgType::Nak => {
                let tx = self.entry(key, now);
                let since = match kind {
                    DhcpMsgType::Offer => tx.discover_at,
                    _ => tx.request_at,
                }
                .unwrap_or(tx.started);
                let delay = now.saturating_sub(since);
                let server = msg.server_id.unwrap_or(Ipv4Addr::UNSPECIFIED);
                if tx.answers.len() < MAX_ANSWERS {
                    // Exactly as many as there are: most transactions hold one or two.
                    tx.answers.reserve_exact(1);
                    tx.answers.push(Answer {
                        server,
                        mac: src_mac,
                        kind: crate::decode::dhcp::msg_type_name(msg.msg_type),
                        delay_ns: delay,
                        yiaddr: msg.yiaddr,
                        boot_server: msg.boot_server().map(String::into_boxed_str),
                        boot_file: msg.boot_file().map(Box::from),
                    });
                }
                tx.relay = relay.or(tx.relay);
                up.answer = Some((
                    server,
                    crate::decode::dhcp::msg_type_name(msg.msg_type),
                    delay,
                ));
                let ended = match kind {
                    DhcpMsgType::Offer => {
                        if tx.outcome == Outcome::Pending {
                            tx.outcome = Outcome::Offered;
                        }
                        None
                    }
                    DhcpMsgType::Nak => Some(Outcome::Nak),
                    _ if tx.request_at.is_some()
                        && tx.discover_at.is_none()
                        && msg.yiaddr.is_unspecified() =>
                    {
                        Some(Outcome::Informed)
                    }
                    _ => Some(Outcome::Bound),
                };
                if let Some(o) = ended {
                    if !Outcome::ENDED.contains(&tx.outcome) {
                        tx.outcome = o;
                        push_outcome(tx, o);
                        up.ended = Some(o);
                    }
                }
            }
            DhcpMsgType::Decline => {
                let tx = self.entry(key, now);
                tx.outcome = Outcome::Declined;
                push_outcome(tx, Outcome::Declined);
                up.ended = Some(Outcome::Declined);
            }
            DhcpMsgType::Release => {
                let tx = self.entry(key, now);
                tx.outcome = Outcome::Released;
                push_outcome(tx, Outcome::Released);
                up.ended = Some(Outcome::Released);
            }
        }
        up
    }

    fn entry(&mut self, key: TxKey, now: Nanos) -> &mut Transaction {
        if !self.map.contains(&key) {
            let tx = Transaction {
                started: now,
                discover_at: None,
                request_at: None,
                answers: Vec::new(),
                chosen: None,
                outcome: Outcome::Pending,
                outcomes: Vec::new(),
                relay: None,
                pxe: false,
                arch: None,
                circuit_id: None,
                remote_id: None,
            };
            if let Some((k, _)) = self.map.push(key, tx) {
                if k != key {
                    self.evictions += 1;
                }
            }
        }
        self.map.get_mut(&key).expect("just inserted")
    }

    /// Ends transactions that waited longer than the timeout without an answer; returns them.
    pub fn tick(&mut self, now: Nanos) -> Vec<(TxKey, Transaction)> {
        let mut out = Vec::new();
        // Oldest last in the LRU's iteration; waiting ones are the ones to check.
        for (k, tx) in self.map.iter_mut() {
            let waiting = matches!(tx.outcome, Outcome::Pending);
            let since = tx.request_at.or(tx.discover_at).unwrap_or(tx.started);
            if waiting && now.saturating_sub(since) > self.timeout {
                tx.outcome = Outcome::Unanswered;
                push_outcome(tx, Outcome::Unanswered);
                out.push((*k, tx.clone()));
            }
        }
        out
    }

    pub fn get(&self, key: &TxKey) -> Option<&Transaction> {
        self.map.peek(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&TxKey, &Transaction)> {
        self.map.iter()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn evictions(&self) -> u64 {
        self.evictions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Iface, SECOND};

    fn seg() -> Segment {
        Segment::from_vids(Iface::named("eth0"), 100, monitor_common::NO_VLAN)
    }

    const CLIENT: Mac = Mac([2, 0, 0, 0, 1, 1]);

    fn msg(t: u8, server: Option<[u8; 4]>, yiaddr: [u8; 4]) -> DhcpMessage {
        let mut b = vec![0u8; 236];
        b[0] = if matches!(t, 2 | 5 | 6) { 2 } else { 1 };
        b[1] = 1;
        b[2] = 6;
        b[4..8].copy_from_slice(&0x1234u32.to_be_bytes());
        b[16..20].copy_from_slice(&yiaddr);
        b[28..34].copy_from_slice(&CLIENT.0);
        b.extend_from_slice(&monitor_common::proto::DHCP_MAGIC);
        b.extend_from_slice(&[53, 1, t]);
        if let Some(s) = server {
            b.extend_from_slice(&[54, 4, s[0], s[1], s[2], s[3]]);
        }
        b.push(255);
        crate::decode::decode_dhcp(&b, true).unwrap()
    }

    #[test]
    fn a_dora_pairs_offers_per_server_the_choice_and_the_outcome() {
        let mut t = Transactions::new(16, 10 * SECOND);
        let (a, b) = ([10, 0, 0, 1], [10, 0, 0, 2]);
        let srv = |n| Mac([2, 0, 0, 0, 0, n]);
        t.observe(seg(), CLIENT, &msg(1, None, [0; 4]), SECOND);
        let up = t.observe(
            seg(),
            srv(1),
            &msg(2, Some(a), [10, 0, 0, 50]),
            SECOND + 20_000_000,
        );
        assert_eq!(up.answer, Some((Ipv4Addr::from(a), "offer", 20_000_000)));
        t.observe(
            seg(),
            srv(2),
            &msg(2, Some(b), [10, 0, 0, 60]),
            SECOND + 900_000_000,
        );
        t.observe(seg(), CLIENT, &msg(3, Some(a), [0; 4]), 2 * SECOND);
        let up = t.observe(
            seg(),
            srv(1),
            &msg(5, Some(a), [10, 0, 0, 50]),
            2 * SECOND + 5_000_000,
        );
        assert_eq!(up.ended, Some(Outcome::Bound));
        let key = up.key.unwrap();
        let tx = t.get(&key).unwrap();
        assert_eq!(tx.chosen, Some(Ipv4Addr::from(a)));
        assert_eq!(tx.first_offer_delay(), Some(20_000_000));
        assert_eq!(tx.answers.len(), 3);
        assert_eq!(
            tx.answers[2].delay_ns, 5_000_000,
            "the ACK is timed from the REQUEST"
        );
        assert!(
            t.tick(100 * SECOND).is_empty(),
            "an ended transaction never times out"
        );
    }

    #[test]
    fn naks_declines_informs_and_silence() {
        let mut t = Transactions::new(16, 10 * SECOND);
        let s = [10, 0, 0, 1];
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        t.observe(seg(), CLIENT, &msg(3, Some(s), [0; 4]), SECOND);
        let up = t.observe(seg(), srv, &msg(6, Some(s), [0; 4]), SECOND + 1);
        assert_eq!(up.ended, Some(Outcome::Nak));
        let mut t = Transactions::new(16, 10 * SECOND);
        t.observe(seg(), CLIENT, &msg(8, None, [0; 4]), SECOND);
        let up = t.observe(seg(), srv, &msg(5, Some(s), [0; 4]), SECOND + 1);
        assert_eq!(up.ended, Some(Outcome::Informed));
        let mut t = Transactions::new(16, 10 * SECOND);
        t.observe(seg(), CLIENT, &msg(1, None, [0; 4]), SECOND);
        assert!(
            t.tick(11 * SECOND).is_empty(),
            "10 s is not past the timeout"
        );
        let gone = t.tick(11 * SECOND + 1);
        assert_eq!(gone.len(), 1);
        assert_eq!(gone[0].1.outcome, Outcome::Unanswered);
        assert!(t.tick(20 * SECOND).is_empty(), "reported once");
    }

    #[test]
    fn a_client_starting_over_after_a_nak_is_a_new_round() {
        let mut t = Transactions::new(16, 10 * SECOND);
        let s = [10, 0, 0, 1];
        let srv = Mac([2, 0, 0, 0, 0, 1]);
        t.observe(seg(), CLIENT, &msg(3, Some(s), [0; 4]), SECOND);
        t.observe(seg(), srv, &msg(6, Some(s), [0; 4]), SECOND + 1);
        t.observe(seg(), CLIENT, &msg(3, Some(s), [0; 4]), 2 * SECOND);
        let up = t.observe(seg(), srv, &msg(5, Some(s), [10, 0, 0, 9]), 2 * SECOND + 7);
        assert_eq!(up.ended, Some(Outcome::Bound));
        let tx = t.get(&up.key.unwrap()).unwrap();
        assert_eq!(tx.outcomes, [Outcome::Nak, Outcome::Bound]);
        assert_eq!(tx.answers.len(), 1, "this round's answers only");
        assert_eq!(tx.answers[0].delay_ns, 7);
    }

    #[test]
    fn bounded_oldest_first() {
        let mut t = Transactions::new(2, SECOND);
        for xid in 0..5u32 {
            let mut m = msg(1, None, [0; 4]);
            m.xid = xid;
            t.observe(seg(), CLIENT, &m, SECOND);
        }
        assert_eq!((t.len(), t.evictions()), (2, 3));
    }
}
