//! The live event stream: `GET /api/v1/events/stream`, server-sent events. The ingest thread
//! publishes each batch's numbered events into a bounded ring (the replay for a reconnecting
//! reader's `Last-Event-ID`) and a broadcast channel; it never waits for a reader. A reader
//! that falls `web.stream_buffer` events behind is cut off with a final `dropped` event and
//! counted (its connection is closed), and resumes from its last id when it reconnects.
use std::{
    collections::VecDeque,
    convert::Infallible,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex, OnceLock,
    },
    time::Duration,
};

use axum::{
    extract::{Query, State},
    http::{HeaderMap, StatusCode},
    response::{
        sse::{Event, KeepAlive, Sse},
        IntoResponse, Response,
    },
};
use serde::Deserialize;
use tokio::sync::broadcast;

use super::{api::ApiError, Shared};
use crate::engine::HistoryEvent;

/// One published event; its JSON is built once, by the first reader that wants it.
pub struct Published {
    pub ev: HistoryEvent,
    json: OnceLock<String>,
}

impl Published {
    pub fn new(ev: HistoryEvent) -> Published {
        Published {
            ev,
            json: OnceLock::new(),
        }
    }

    /// The event as `/api/v1/events` shows it (with `interface` and `vlan`).
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| event_json(&self.ev).to_string())
    }
}

/// A history event as the API shows it.
pub fn event_json(e: &HistoryEvent) -> serde_json::Value {
    let mut v = serde_json::to_value(e).unwrap_or_default();
    v["interface"] = serde_json::json!(e.seg.iface);
    v["vlan"] = serde_json::json!(e.seg.vlan_label());
    v
}

/// Counters exported as `l2watch_event_stream_*`.
#[derive(Debug, Default)]
pub struct StreamStats {
    pub published: AtomicU64,
    pub open: AtomicU64,
    /// Readers cut off for falling behind.
    pub cut_off: AtomicU64,
    /// Events those readers missed when they were cut off.
    pub lagged_events: AtomicU64,
    /// Streams refused because web.max_streams were open.
    pub refused: AtomicU64,
}

pub struct EventHub {
    ring: Mutex<VecDeque<Arc<Published>>>,
    replay: usize,
    tx: broadcast::Sender<Arc<Published>>,
    /// How far one reader may fall behind (its queue), in events.
    buffer: usize,
    max_streams: usize,
    pub stats: StreamStats,
}

impl EventHub {
    /// `buffer`: how far a reader may fall behind; `replay`: recent events kept for resumes.
    pub fn new(buffer: usize, replay: usize, max_streams: usize) -> EventHub {
        EventHub {
            ring: Mutex::new(VecDeque::with_capacity(replay.min(65_536))),
            replay,
            tx: broadcast::channel(buffer.max(1)).0,
            buffer: buffer.max(1),
            max_streams,
            stats: StreamStats::default(),
        }
    }

    /// Hands a batch to the ring and the readers; never blocks on them.
    pub fn publish(&self, events: Vec<HistoryEvent>) {
        if events.is_empty() {
            return;
        }
        self.stats
            .published
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        let mut ring = self.ring.lock().expect("event ring");
        for ev in events {
            let p = Arc::new(Published::new(ev));
            if self.replay > 0 {
                if ring.len() >= self.replay {
                    ring.pop_front();
                }
                ring.push_back(p.clone());
            }
            // No reader is not an error.
            let _ = self.tx.send(p);
        }
    }

    /// A reader starting after `after` (0: from now): the ring's events past it, the live
    /// receiver (subscribed under the same lock, so nothing falls between), and the oldest
    /// id the ring still holds when `after` is older than that (the gap the store may fill).
    fn subscribe(
        &self,
        after: Option<u64>,
    ) -> (
        Vec<Arc<Published>>,
        broadcast::Receiver<Arc<Published>>,
        Option<u64>,
    ) {
        let ring = self.ring.lock().expect("event ring");
        let rx = self.tx.subscribe();
        let Some(after) = after else {
            return (Vec::new(), rx, None);
        };
        let backlog: Vec<_> = ring.iter().filter(|p| p.ev.id > after).cloned().collect();
        let oldest = ring.front().map(|p| p.ev.id);
        let gap = match oldest {
            Some(o) if o > after + 1 => Some(o),
            // Nothing in memory: the store may hold what came after `after`.
            None => Some(u64::MAX),
            _ => None,
        };
        (backlog, rx, gap)
    }
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
pub struct StreamQuery {
    /// Kinds, comma-separated; a family name (`arp`, `dhcp`, `ipv6`, `lacp`) takes all of its
    /// kinds (`arp_new`, `arp_moved`, ...).
    pub kind: Option<String>,
    /// A VLAN label: `untagged`, `100`, `200.300`.
    pub vlan: Option<String>,
    pub interface: Option<String>,
    /// Resume after this id (as the Last-Event-ID header does).
    pub last_event_id: Option<u64>,
}

/// What a reader wants to see.
#[derive(Clone, Default)]
pub struct Filter {
    kinds: Vec<String>,
    vlan: Option<String>,
    interface: Option<String>,
}

impl Filter {
    pub fn new(q: &StreamQuery) -> Filter {
        Filter {
            kinds: q
                .kind
                .iter()
                .flat_map(|k| k.split(','))
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty())
                .collect(),
            vlan: q.vlan.clone(),
            interface: q.interface.clone(),
        }
    }

    pub fn matches(&self, e: &HistoryEvent) -> bool {
        let kind_ok = self.kinds.is_empty()
            || self.kinds.iter().any(|k| {
                e.kind == *k
                    || e.kind
                        .strip_prefix(k.as_str())
                        .is_some_and(|rest| rest.starts_with('_'))
            });
        kind_ok
            && self.vlan.as_ref().is_none_or(|v| e.seg.vlan_label() == *v)
            && self
                .interface
                .as_ref()
                .is_none_or(|i| e.seg.iface.name() == i.as_str())
    }
}

/// Events read from the store per gap fill, at most.
const GAP_FILL: usize = 10_000;

/// Closes the reader's slot when its stream ends.
struct Slot(Arc<Shared>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.hub.stats.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Set by the listener on each request: cancelling it closes that request's connection.
#[derive(Clone)]
pub struct ConnKill(pub tokio_util::sync::CancellationToken);

fn sse(p: &Published) -> Event {
    Event::default()
        .id(p.ev.id.to_string())
        .event(p.ev.kind.as_ref())
        .data(p.json())
}

/// Moves live events from the broadcast to this reader's queue, filtered. It never waits:
/// when the queue is full the reader is too slow, and its connection is closed and counted
/// (it resumes with Last-Event-ID from where it got to).
async fn pump(
    mut rx: broadcast::Receiver<Arc<Published>>,
    tx: tokio::sync::mpsc::Sender<Arc<Published>>,
    filter: Filter,
    mut last: u64,
    kill: Option<ConnKill>,
    shared: Arc<Shared>,
) {
    let cut = |missed: u64| {
        let st = &shared.hub.stats;
        st.cut_off.fetch_add(1, Ordering::Relaxed);
        st.lagged_events.fetch_add(missed, Ordering::Relaxed);
        if let Some(k) = &kill {
            k.0.cancel();
        }
    };
    loop {
        let r = tokio::select! {
            r = rx.recv() => r,
            _ = tx.closed() => return,
        };
        match r {
            Ok(p) => {
                if p.ev.id <= last || !filter.matches(&p.ev) {
                    continue;
                }
                last = p.ev.id;
                match tx.try_send(p) {
                    Ok(()) => {}
                    Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => return,
                    Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                        cut((tx.max_capacity() - tx.capacity()) as u64 + 1);
                        return;
                    }
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => {
                cut(n);
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}

pub async fn stream(
    State(s): State<Arc<Shared>>,
    kill: Option<axum::Extension<ConnKill>>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Response, ApiError> {
    let header_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .ok_or_else(|| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "Last-Event-ID must be an event id (a number) from this agent",
                    )
                })
        })
        .transpose()?;
    let after = header_id.or(q.last_event_id);
    let hub = &s.hub;
    if hub.stats.open.fetch_add(1, Ordering::Relaxed) as usize >= hub.max_streams {
        hub.stats.open.fetch_sub(1, Ordering::Relaxed);
        hub.stats.refused.fetch_add(1, Ordering::Relaxed);
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "{} event streams are open (web.max_streams); try again later",
                hub.max_streams
            ),
        ));
    }
    let slot = Slot(s.clone());
    let filter = Filter::new(&q);
    let (mut backlog, rx, gap) = hub.subscribe(after);
    if let (Some(after), Some(before), Some(db)) = (after, gap, s.db.clone()) {
        let stored =
            super::api::read_store(db, move |st| st.events_between(after, before, GAP_FILL))
                .await?;
        let mut all: Vec<Arc<Published>> = stored
            .into_iter()
            .map(|e| Arc::new(Published::new(e)))
            .collect();
        all.append(&mut backlog);
        backlog = all;
    }
    // The backlog goes first; live events already in it are skipped by id.
    let mut last = after.unwrap_or(0);
    let backlog: Vec<Arc<Published>> = backlog
        .into_iter()
        .filter(|p| {
            let fresh = p.ev.id > last;
            last = last.max(p.ev.id);
            fresh && filter.matches(&p.ev)
        })
        .collect();
    let (tx, queue) = tokio::sync::mpsc::channel(hub.buffer);
    tokio::spawn(pump(rx, tx, filter, last, kill.map(|k| k.0), s.clone()));
    let live = futures_util::stream::unfold((queue, slot), |(mut q, slot)| async move {
        q.recv().await.map(|p| (p, (q, slot)))
    });
    let events = futures_util::StreamExt::map(
        futures_util::StreamExt::chain(futures_util::stream::iter(backlog), live),
        |p| Ok::<_, Infallible>(sse(&p)),
    );
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Iface, Mac, Segment};

    fn ev(id: u64, kind: &'static str, vlan: Option<u16>) -> HistoryEvent {
        HistoryEvent {
            id,
            ts: id,
            seg: Segment {
                iface: Iface::named("eth0"),
                outer_vlan: vlan,
                inner_vlan: None,
            },
            kind: kind.into(),
            ip: None,
            mac: Mac([2, 0, 0, 0, 0, 1]),
            detail: crate::engine::Detail::Json(serde_json::Value::Null),
        }
    }

    #[test]
    fn filters_take_kinds_families_vlans_and_interfaces() {
        let f = Filter::new(&StreamQuery {
            kind: Some("arp,dhcp_offer".into()),
            vlan: Some("100".into()),
            ..Default::default()
        });
        assert!(f.matches(&ev(1, "arp_new", Some(100))));
        assert!(f.matches(&ev(1, "dhcp_offer", Some(100))));
        assert!(!f.matches(&ev(1, "dhcp_ack", Some(100))));
        assert!(!f.matches(&ev(1, "arp_new", None)));
        assert!(!f.matches(&ev(1, "arpx_new", Some(100))));
        let f = Filter::new(&StreamQuery {
            interface: Some("eth1".into()),
            ..Default::default()
        });
        assert!(!f.matches(&ev(1, "arp_new", None)));
    }

    #[test]
    fn a_resume_gets_what_the_ring_holds_and_names_the_gap() {
        let hub = EventHub::new(16, 3, 4);
        hub.publish((1..=5).map(|i| ev(i, "arp_new", None)).collect());
        let (backlog, _rx, gap) = hub.subscribe(Some(1));
        let ids: Vec<u64> = backlog.iter().map(|p| p.ev.id).collect();
        assert_eq!(ids, [3, 4, 5], "the ring keeps the newest 3");
        assert_eq!(
            gap,
            Some(3),
            "ids 2 (after 1, before 3) must come from the store"
        );
        let (backlog, _rx, gap) = hub.subscribe(Some(4));
        assert_eq!(backlog.len(), 1);
        assert_eq!(gap, None);
        let (backlog, _rx, gap) = hub.subscribe(None);
        assert!(backlog.is_empty() && gap.is_none(), "no id: live only");
    }

    #[test]
    fn a_reader_that_falls_behind_lags_and_the_publisher_never_waits() {
        let hub = EventHub::new(4, 0, 4);
        let (_, mut rx, _) = hub.subscribe(None);
        // Far more than the buffer, with a reader that reads nothing: publish returns.
        hub.publish((1..=100).map(|i| ev(i, "arp_new", None)).collect());
        match rx.try_recv() {
            Err(broadcast::error::TryRecvError::Lagged(n)) => assert_eq!(n, 96),
            other => panic!("expected a lag, got {:?}", other.map(|p| p.ev.id)),
        }
    }
}
