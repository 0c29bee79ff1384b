//! SQLite sink: devices, DHCP servers, findings (open and closed) and the event history.
//! One thread writes batches off the hot path (`writer`), each batch one transaction in WAL
//! mode, so a crash loses at most the batch in flight and never leaves a torn database. On
//! start the state is read back; an older schema is migrated, and a corrupt file is moved
//! aside (never overwritten) before a new one is created.
mod schema;
pub mod writer;

use std::{
    net::Ipv4Addr,
    path::{Path, PathBuf},
    str::FromStr,
};

use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row};
use serde_json::Value;

pub use schema::VERSION as SCHEMA_VERSION;
pub use writer::{StoreStats, Writer};

use crate::{
    detect::{kind, Finding},
    engine::{Changes, Detail, HistoryEvent, Restored},
    model::{Mac, Nanos, Segment, SECOND},
    state::{
        Addr6, AddrKind, Device, DeviceKey, Learnt, Lease, Router, RouterKey, Server, Server6,
        Server6Key, ServerKey, Source,
    },
};

/// Where the database lives unless `--db` says otherwise (systemd's StateDirectory).
pub const DEFAULT_PATH: &str = "/var/lib/l2watch/l2watch.db";

/// How long history is kept.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Retention {
    /// Events older than this many days are deleted.
    pub event_days: u64,
    /// At most this many events are kept; the oldest go first.
    pub max_events: u64,
    /// Closed findings older than this many days are deleted.
    pub closed_finding_days: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            event_days: 30,
            max_events: 1_000_000,
            closed_finding_days: 90,
        }
    }
}

/// Row caps applied by pruning, so the file stays as bounded as the tables in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub devices: usize,
    pub servers: usize,
    pub closed_findings: usize,
    pub addrs6: usize,
    pub routers: usize,
    pub servers6: usize,
}

impl Caps {
    /// The caps of the engine's own tables.
    pub fn of(cfg: &crate::engine::EngineConfig) -> Caps {
        Caps {
            devices: cfg.devices.capacity,
            servers: cfg.limits.max_dhcp_servers,
            closed_findings: cfg.limits.max_closed_findings,
            addrs6: cfg
                .ipv6
                .neighbours
                .capacity
                .saturating_mul(cfg.ipv6.neighbours.max_addrs_per_station),
            routers: cfg.ipv6.max_routers,
            servers6: cfg.ipv6.max_dhcpv6_servers,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create the database directory {dir}: {source}; create it, or pass --db PATH")]
    Dir {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("database {path}: {source}")]
    Sql {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "database {path} has schema version {found}, newer than this l2watch knows ({known}); \
         run the l2watch that wrote it, or pass --db with another path"
    )]
    TooNew {
        path: PathBuf,
        found: u32,
        known: u32,
    },
    #[error("a new database at {path} is unusable too ({reason}); check the disk and the path")]
    StillCorrupt { path: PathBuf, reason: String },
    #[error(
        "database {path} is corrupt ({reason}) and cannot be moved aside to {aside}: {source}"
    )]
    MoveAside {
        path: PathBuf,
        reason: String,
        aside: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What opening found and did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenNote {
    Created,
    Opened,
    Migrated {
        from: u32,
        to: u32,
    },
    /// The file was corrupt; it now lives at `aside` and a new database was created.
    MovedAside {
        reason: String,
        aside: PathBuf,
    },
}

pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// Why a file is not a usable database; `None` for errors that are not corruption (those
/// must not cost the operator their file).
fn corruption(e: &rusqlite::Error) -> Option<String> {
    match e.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => Some(e.to_string()),
        _ => None,
    }
}

impl Store {
    /// Opens (creating, migrating or replacing a corrupt file as needed) the database at `path`.
    pub fn open(path: &Path) -> Result<(Store, OpenNote), StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Dir {
                dir: dir.to_path_buf(),
                source,
            })?;
        }
        let existed = path.exists();
        match Store::open_checked(path) {
            Ok((store, from)) => {
                let note = match from {
                    _ if !existed => OpenNote::Created,
                    0 => OpenNote::Created,
                    v if v == schema::VERSION => OpenNote::Opened,
                    v => OpenNote::Migrated {
                        from: v,
                        to: schema::VERSION,
                    },
                };
                Ok((store, note))
            }
            Err(OpenFailure::Corrupt(reason)) => {
                let aside = move_aside(path).map_err(|(aside, source)| StoreError::MoveAside {
                    path: path.to_path_buf(),
                    reason: reason.clone(),
                    aside,
                    source,
                })?;
                let (store, _) = Store::open_checked(path).map_err(|f| match f {
                    OpenFailure::Corrupt(reason) => StoreError::StillCorrupt {
                        path: path.to_path_buf(),
                        reason,
                    },
                    OpenFailure::Other(e) => e,
                })?;
                Ok((store, OpenNote::MovedAside { reason, aside }))
            }
            Err(OpenFailure::Other(e)) => Err(e),
        }
    }

    /// Opens for reading only (the API, while the agent's writer owns the file); WAL lets
    /// readers and the writer work at once.
    pub fn open_readonly(path: &Path) -> Result<Store, StoreError> {
        let sql = |source| StoreError::Sql {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        Ok(Store {
            conn,
            path: path.to_path_buf(),
        })
    }

    /// Opens, checks and migrates; returns the schema version found.
    fn open_checked(path: &Path) -> Result<(Store, u32), OpenFailure> {
        let sql = |source| {
            if let Some(reason) = corruption(&source) {
                OpenFailure::Corrupt(reason)
            } else {
                OpenFailure::Other(StoreError::Sql {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let conn = Connection::open(path).map_err(sql)?;
        // Reading the header is what notices a file that is not a database at all.
        let found: u32 = conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(sql)?;
        if found > schema::VERSION {
            return Err(OpenFailure::Other(StoreError::TooNew {
                path: path.to_path_buf(),
                found,
                known: schema::VERSION,
            }));
        }
        let check: String = conn
            .pragma_query_value(None, "quick_check", |r| r.get(0))
            .map_err(sql)?;
        if check != "ok" {
            return Err(OpenFailure::Corrupt(format!("quick_check: {check}")));
        }
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(sql)?;
        // In WAL mode NORMAL survives a crash of the process (kill -9); only a power loss can
        // roll back the last commits, and never into a torn state.
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(sql)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(sql)?;
        // 32 MiB of page cache: a flush of 100,000 devices stays in memory until it commits.
        conn.pragma_update(None, "cache_size", -32_768)
            .map_err(sql)?;
        let mut store = Store {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate(found).map_err(OpenFailure::Other)?;
        Ok((store, found))
    }

    fn migrate(&mut self, from: u32) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        if (from as usize) < schema::MIGRATIONS.len() {
            self.load_ifnames().map_err(sql)?;
        }
        for (i, step) in schema::MIGRATIONS.iter().enumerate().skip(from as usize) {
            let tx = self.conn.transaction().map_err(sql)?;
            tx.execute_batch(step).map_err(sql)?;
            tx.pragma_update(None, "user_version", i as u32 + 1)
                .map_err(sql)?;
            tx.commit().map_err(sql)?;
        }
        Ok(())
    }

    /// The kernel's interface names by index, for the migration from ifindex keys to names.
    fn load_ifnames(&self) -> rusqlite::Result<()> {
        self.conn.execute_batch(
            "CREATE TEMP TABLE IF NOT EXISTS ifnames (ifindex INTEGER PRIMARY KEY, name TEXT NOT NULL)",
        )?;
        let Ok(dir) = std::fs::read_dir("/sys/class/net") else {
            return Ok(());
        };
        for e in dir.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(idx) = crate::links::ifindex(&name) else {
                continue;
            };
            self.conn.execute(
                "INSERT OR REPLACE INTO temp.ifnames (ifindex, name) VALUES (?1, ?2)",
                rusqlite::params![idx, name],
            )?;
        }
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn err(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql {
            path: self.path.clone(),
            source,
        }
    }

    /// Writes one batch as one transaction.
    pub fn write(&mut self, c: &Changes) -> Result<(), StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql {
            path: path.clone(),
            source,
        };
        let tx = self.conn.transaction().map_err(sql)?;
        {
            let mut st = tx
                // An upsert updates a known row in place (only the indexes of columns that
                // changed move); INSERT OR REPLACE would delete and re-insert it.
                .prepare_cached(
                    "INSERT INTO devices (interface, outer_vlan, inner_vlan, ip, mac,
                     first_seen, last_seen, source, hostname, lease_server, lease_secs,
                     lease_expires, prev_mac, prev_until, mac_changes, boot)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)
                     ON CONFLICT (interface, outer_vlan, inner_vlan, ip) DO UPDATE SET
                     mac = excluded.mac, first_seen = excluded.first_seen,
                     last_seen = excluded.last_seen, source = excluded.source,
                     hostname = excluded.hostname, lease_server = excluded.lease_server,
                     lease_secs = excluded.lease_secs, lease_expires = excluded.lease_expires,
                     prev_mac = excluded.prev_mac, prev_until = excluded.prev_until,
                     mac_changes = excluded.mac_changes, boot = excluded.boot",
                )
                .map_err(sql)?;
            let (mut ip_buf, mut mac_buf) = (String::new(), String::new());
            for (k, d) in &c.devices {
                let (i, o, n) = seg_cols(&k.seg);
                st.execute(params![
                    i,
                    o,
                    n,
                    fmt_into(&mut ip_buf, k.ip),
                    fmt_into(&mut mac_buf, d.mac),
                    ns(d.first_seen),
                    ns(d.last_seen),
                    source_name(d.source),
                    d.hostname.as_deref(),
                    d.lease.map(|l| l.server.to_string()),
                    d.lease.map(|l| l.lease_secs),
                    d.lease.map(|l| ns(l.expires)),
                    d.previous.map(|(m, _)| m.to_string()),
                    d.previous.map(|(_, t)| ns(t)),
                    d.mac_changes,
                    d.boot
                        .as_deref()
                        .and_then(|b| serde_json::to_string(b).ok()),
                ])
                .map_err(sql)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dhcp_servers (interface, outer_vlan, inner_vlan,
                     server_id, mac, first_seen, last_seen, offers, acks, naks, lowest_offered,
                     highest_offered, recent_offers)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                )
                .map_err(sql)?;
            for (k, s) in &c.servers {
                let (i, o, n) = seg_cols(&k.seg);
                st.execute(params![
                    i,
                    o,
                    n,
                    k.server_id.to_string(),
                    k.mac.to_string(),
                    ns(s.first_seen),
                    ns(s.last_seen),
                    ns(s.offers),
                    ns(s.acks),
                    ns(s.naks),
                    s.lowest_offered.map(|ip| ip.to_string()),
                    s.highest_offered.map(|ip| ip.to_string()),
                    serde_json::to_string(&s.recent_offers).unwrap_or_else(|_| "[]".into()),
                ])
                .map_err(sql)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO addresses6 (interface, outer_vlan, inner_vlan, ip, mac, kind,
                     learnt, first_seen, last_seen) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                     ON CONFLICT (interface, outer_vlan, inner_vlan, ip) DO UPDATE SET
                     mac = excluded.mac, kind = excluded.kind, learnt = excluded.learnt,
                     first_seen = excluded.first_seen, last_seen = excluded.last_seen",
                )
                .map_err(sql)?;
            for (seg, mac, a) in &c.addrs6 {
                let (i, o, n) = seg_cols(seg);
                st.execute(params![
                    i,
                    o,
                    n,
                    a.ip.to_string(),
                    mac.to_string(),
                    a.kind.name(),
                    a.learnt.name(),
                    ns(a.first_seen),
                    ns(a.last_seen),
                ])
                .map_err(sql)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO routers6 (interface, outer_vlan, inner_vlan, ip, mac,
                     first_seen, last_seen, adverts, retired_at, last_ra)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(sql)?;
            for (k, r) in &c.routers {
                let (i, o, n) = seg_cols(&k.seg);
                st.execute(params![
                    i,
                    o,
                    n,
                    k.ip.to_string(),
                    k.mac.to_string(),
                    ns(r.first_seen),
                    ns(r.last_seen),
                    ns(r.adverts),
                    r.retired_at.map(ns),
                    r.last
                        .as_ref()
                        .and_then(|ra| serde_json::to_string(ra).ok()),
                ])
                .map_err(sql)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO dhcpv6_servers (interface, outer_vlan, inner_vlan,
                     duid, first_seen, last_seen, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                )
                .map_err(sql)?;
            for (k, s) in &c.servers6 {
                let (i, o, n) = seg_cols(&k.seg);
                st.execute(params![
                    i,
                    o,
                    n,
                    k.duid.to_string(),
                    ns(s.first_seen),
                    ns(s.last_seen),
                    serde_json::to_string(s).unwrap_or_else(|_| "{}".into()),
                ])
                .map_err(sql)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT OR REPLACE INTO findings (kind, subject, opened, interface, outer_vlan,
                     inner_vlan, last_seen, closed, packets, quiet_ns, evidence)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                )
                .map_err(sql)?;
            for f in &c.findings {
                let (i, o, n) = seg_cols(&f.seg);
                st.execute(params![
                    f.kind.name(),
                    f.subject.to_string(),
                    ns(f.opened),
                    i,
                    o,
                    n,
                    ns(f.last_seen),
                    f.closed.map(ns),
                    ns(f.packets),
                    ns(f.quiet),
                    f.evidence.to_string(),
                ])
                .map_err(sql)?;
            }
            let mut st = tx
                .prepare_cached(
                    "INSERT INTO events (id, ts, kind, interface, outer_vlan, inner_vlan, ip, mac,
                     detail) VALUES (?9, ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )
                .map_err(sql)?;
            // Text columns are formatted into reused buffers: a storm writes one event per
            // station.
            let (mut ip_buf, mut mac_buf, mut detail_buf) =
                (String::new(), String::new(), String::new());
            // The engine's id is the row's, so the live stream and the history agree. An
            // engine that was not restored from this file (a replay into an existing one)
            // numbers from 1 again; its events then take the next row ids instead.
            let mut last_id: i64 = tx
                .query_row("SELECT COALESCE(max(id), 0) FROM events", [], |r| r.get(0))
                .map_err(sql)?;
            for e in &c.events {
                let (i, o, n) = seg_cols(&e.seg);
                let ip = e.ip.map(|ip| fmt_into(&mut ip_buf, ip));
                let mac = fmt_into(&mut mac_buf, e.mac);
                let detail = e.detail.write_json(&mut detail_buf).then_some(&*detail_buf);
                let id = match e.id as i64 {
                    id if id > last_id => id,
                    _ => last_id + 1,
                };
                last_id = id;
                st.execute(params![ns(e.ts), &*e.kind, i, o, n, ip, mac, detail, id])
                    .map_err(sql)?;
            }
        }
        tx.commit().map_err(sql)
    }

    /// Runs a query whose rows parse with `parse`; rows that do not parse are counted in
    /// `skipped` and left out.
    fn rows<T>(
        &self,
        q: &str,
        params: impl rusqlite::Params,
        parse: fn(&Row<'_>) -> Parsed<T>,
        skipped: &mut u64,
    ) -> Result<Vec<T>, StoreError> {
        let mut st = self.conn.prepare_cached(q).map_err(|e| self.err(e))?;
        let rows = st.query_map(params, parse).map_err(|e| self.err(e))?;
        let mut out = Vec::new();
        for row in rows {
            match row.map_err(|e| self.err(e))? {
                Some(v) => out.push(v),
                None => *skipped += 1,
            }
        }
        Ok(out)
    }

    /// Reads back what the engine keeps in memory, within its caps. Rows that do not parse
    /// (edited by hand, say) are skipped and counted in the second value.
    pub fn load(&self, caps: Caps) -> Result<(Restored, u64), StoreError> {
        let mut skipped = 0u64;
        let mut devices = self.rows(
            &format!("{DEVICE_COLS} ORDER BY last_seen DESC LIMIT ?1"),
            [caps.devices as i64],
            device_row,
            &mut skipped,
        )?;
        devices.reverse();
        let mut servers = self.rows(
            &format!("{SERVER_COLS} ORDER BY last_seen DESC LIMIT ?1"),
            [caps.servers as i64],
            server_row,
            &mut skipped,
        )?;
        servers.reverse();
        let open_findings = self.rows(
            &format!("{FINDING_COLS} WHERE closed IS NULL ORDER BY opened"),
            [],
            finding_row,
            &mut skipped,
        )?;
        let mut closed_findings = self.rows(
            &format!("{FINDING_COLS} WHERE closed IS NOT NULL ORDER BY closed DESC LIMIT ?1"),
            [caps.closed_findings as i64],
            finding_row,
            &mut skipped,
        )?;
        closed_findings.reverse();
        let mut addrs6 = self.rows(
            &format!("{ADDR6_COLS} ORDER BY last_seen DESC LIMIT ?1"),
            [caps.addrs6 as i64],
            addr6_row,
            &mut skipped,
        )?;
        addrs6.reverse();
        let mut routers = self.rows(
            &format!("{ROUTER_COLS} ORDER BY last_seen DESC LIMIT ?1"),
            [caps.routers as i64],
            router_row,
            &mut skipped,
        )?;
        routers.reverse();
        let mut servers6 = self.rows(
            &format!("{SERVER6_COLS} ORDER BY last_seen DESC LIMIT ?1"),
            [caps.servers6 as i64],
            server6_row,
            &mut skipped,
        )?;
        servers6.reverse();
        let r = Restored {
            devices,
            servers,
            addrs6,
            routers,
            servers6,
            open_findings,
            closed_findings,
            last_event_id: self
                .conn
                .query_row("SELECT COALESCE(max(id), 0) FROM events", [], |r| {
                    r.get::<_, i64>(0)
                })
                .map_err(|e| StoreError::Sql {
                    path: self.path.clone(),
                    source: e,
                })? as u64,
        };
        Ok((r, skipped))
    }

    /// Findings opened or closed at or after `since`, and every open one; newest first.
    pub fn findings_since(&self, since: Nanos) -> Result<Vec<Finding>, StoreError> {
        self.rows(
            &format!(
                "{FINDING_COLS} WHERE closed IS NULL OR closed >= ?1 OR opened >= ?1
                 ORDER BY opened DESC"
            ),
            [ns(since)],
            finding_row,
            &mut 0,
        )
    }

    /// History events at or after `since`, oldest first, at most `limit`.
    pub fn events_since(
        &self,
        since: Nanos,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        self.rows(
            &format!("{EVENT_COLS} WHERE ts >= ?1 ORDER BY ts, id LIMIT ?2"),
            params![ns(since), limit as i64],
            event_row,
            &mut 0,
        )
    }

    /// Events with ids in (`after`, `before`), oldest first, at most `limit`: what a
    /// reconnecting stream missed that memory no longer holds.
    pub fn events_between(
        &self,
        after: u64,
        before: u64,
        limit: usize,
    ) -> Result<Vec<HistoryEvent>, StoreError> {
        self.rows(
            &format!("{EVENT_COLS} WHERE id > ?1 AND id < ?2 ORDER BY id LIMIT ?3"),
            params![
                after as i64,
                before.min(i64::MAX as u64) as i64,
                limit as i64
            ],
            event_row,
            &mut 0,
        )
    }

    /// Applies retention and the row caps; returns how many rows went.
    pub fn prune(&mut self, now: Nanos, ret: &Retention, caps: Caps) -> Result<u64, StoreError> {
        let day = 86_400 * SECOND;
        let event_cut = now.saturating_sub(ret.event_days.saturating_mul(day));
        let finding_cut = now.saturating_sub(ret.closed_finding_days.saturating_mul(day));
        let tx = self.conn.transaction().map_err(|e| StoreError::Sql {
            path: self.path.clone(),
            source: e,
        })?;
        let steps: [(&str, &[i64]); 8] = [
            ("DELETE FROM events WHERE ts < ?1", &[ns(event_cut)]),
            (
                // Ids have gaps (the stream numbers refreshes the history leaves out), so the
                // cut is the id max_events rows below the newest.
                "DELETE FROM events WHERE id <= (SELECT id FROM events ORDER BY id DESC
                 LIMIT 1 OFFSET ?1)",
                &[ns(ret.max_events)],
            ),
            (
                "DELETE FROM findings WHERE closed IS NOT NULL AND (closed < ?1 OR rowid IN
                 (SELECT rowid FROM findings WHERE closed IS NOT NULL
                  ORDER BY closed DESC LIMIT -1 OFFSET ?2))",
                &[ns(finding_cut), caps.closed_findings as i64],
            ),
            (
                // The guard keeps the (unindexed) sort off the common case: under the cap.
                "DELETE FROM devices WHERE (SELECT count(*) FROM devices) > ?1
                 AND (interface, outer_vlan, inner_vlan, ip) IN
                 (SELECT interface, outer_vlan, inner_vlan, ip FROM devices
                  ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
                &[caps.devices as i64],
            ),
            (
                "DELETE FROM dhcp_servers WHERE rowid IN
                 (SELECT rowid FROM dhcp_servers ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
                &[caps.servers as i64],
            ),
            (
                "DELETE FROM addresses6 WHERE (SELECT count(*) FROM addresses6) > ?1
                 AND rowid IN (SELECT rowid FROM addresses6
                  ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
                &[caps.addrs6 as i64],
            ),
            (
                "DELETE FROM routers6 WHERE rowid IN
                 (SELECT rowid FROM routers6 ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
                &[caps.routers as i64],
            ),
            (
                "DELETE FROM dhcpv6_servers WHERE rowid IN
                 (SELECT rowid FROM dhcpv6_servers ORDER BY last_seen DESC LIMIT -1 OFFSET ?1)",
                &[caps.servers6 as i64],
            ),
        ];
        let mut gone = 0u64;
        for (q, args) in steps {
            gone += tx
                .execute(q, rusqlite::params_from_iter(args))
                .map_err(|e| StoreError::Sql {
                    path: self.path.clone(),
                    source: e,
                })? as u64;
        }
        tx.commit().map_err(|e| self.err(e))?;
        Ok(gone)
    }

    /// Row counts per table, for tests and `check`.
    pub fn counts(&self) -> Result<[(&'static str, u64); 4], StoreError> {
        let mut out = [
            ("devices", 0),
            ("dhcp_servers", 0),
            ("findings", 0),
            ("events", 0),
        ];
        for (t, n) in &mut out {
            *n = self
                .conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .map(u)
                .map_err(|e| self.err(e))?;
        }
        Ok(out)
    }

    /// Folds the WAL into the main file (clean shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        self.conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .optional()
            .map(|_| ())
            .map_err(|e| self.err(e))
    }

    /// The schema version of the open database.
    pub fn schema_version(&self) -> Result<u32, StoreError> {
        self.conn
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .map_err(|e| self.err(e))
    }
}

const DEVICE_COLS: &str = "SELECT interface, outer_vlan, inner_vlan, ip, mac, first_seen,
    last_seen, source, hostname, lease_server, lease_secs, lease_expires, prev_mac, prev_until,
    mac_changes, boot FROM devices";
const SERVER_COLS: &str = "SELECT interface, outer_vlan, inner_vlan, server_id, mac, first_seen,
    last_seen, offers, acks, naks, lowest_offered, highest_offered, recent_offers
    FROM dhcp_servers";
const ADDR6_COLS: &str = "SELECT interface, outer_vlan, inner_vlan, ip, mac, kind, learnt,
    first_seen, last_seen FROM addresses6";
const ROUTER_COLS: &str = "SELECT interface, outer_vlan, inner_vlan, ip, mac, first_seen,
    last_seen, adverts, retired_at, last_ra FROM routers6";
const SERVER6_COLS: &str = "SELECT interface, outer_vlan, inner_vlan, duid, first_seen, last_seen,
    detail FROM dhcpv6_servers";
const FINDING_COLS: &str = "SELECT kind, subject, opened, interface, outer_vlan, inner_vlan,
    last_seen, closed, packets, quiet_ns, evidence FROM findings";
const EVENT_COLS: &str =
    "SELECT ts, kind, interface, outer_vlan, inner_vlan, ip, mac, detail, id FROM events";

enum OpenFailure {
    Corrupt(String),
    Other(StoreError),
}

/// Renames `path` (and its WAL) to `path.corrupt-<unix seconds>`; returns the new name.
fn move_aside(path: &Path) -> Result<PathBuf, (PathBuf, std::io::Error)> {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{stamp}"));
    let aside = PathBuf::from(aside);
    std::fs::rename(path, &aside).map_err(|e| (aside.clone(), e))?;
    for (ext, keep) in [("-wal", true), ("-shm", false)] {
        let mut side = path.as_os_str().to_owned();
        side.push(ext);
        let side = PathBuf::from(side);
        if side.exists() {
            if keep {
                let mut to = aside.as_os_str().to_owned();
                to.push(ext);
                let _ = std::fs::rename(&side, PathBuf::from(to));
            } else {
                let _ = std::fs::remove_file(&side);
            }
        }
    }
    Ok(aside)
}

/// `v` as text in `buf`, which is reused from row to row.
fn fmt_into(buf: &mut String, v: impl std::fmt::Display) -> &str {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{v}");
    buf
}

/// u64 ns/counts as SQLite integers (i64 holds ns until the year 2262).
fn ns(v: u64) -> i64 {
    v.min(i64::MAX as u64) as i64
}

fn seg_cols(s: &Segment) -> (&'static str, i64, i64) {
    let v = |v: Option<u16>| v.map_or(-1, i64::from);
    (s.iface.name(), v(s.outer_vlan), v(s.inner_vlan))
}

fn seg_from(iface: &str, outer: i64, inner: i64) -> Segment {
    let v = |v: i64| u16::try_from(v).ok().filter(|v| *v < 4096);
    Segment {
        iface: crate::model::Iface::named(iface),
        outer_vlan: v(outer),
        inner_vlan: v(inner),
    }
}

fn source_name(s: Source) -> &'static str {
    match s {
        Source::Arp => "arp",
        Source::Dhcp => "dhcp",
    }
}

fn parse<T: FromStr>(s: Option<String>) -> Option<Option<T>> {
    match s {
        None => Some(None),
        Some(s) => s.parse().ok().map(Some),
    }
}

fn u(v: i64) -> u64 {
    v.max(0) as u64
}

type Parsed<T> = rusqlite::Result<Option<T>>;

fn device_row(r: &Row<'_>) -> Parsed<(DeviceKey, Device)> {
    let seg = seg_from(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
    let (Ok(ip), Ok(mac)) = (
        r.get::<_, String>(3)?.parse::<Ipv4Addr>(),
        r.get::<_, String>(4)?.parse::<Mac>(),
    ) else {
        return Ok(None);
    };
    let source = match r.get::<_, String>(7)?.as_str() {
        "arp" => Source::Arp,
        "dhcp" => Source::Dhcp,
        _ => return Ok(None),
    };
    let Some(lease_server) = parse::<Ipv4Addr>(r.get(9)?) else {
        return Ok(None);
    };
    let lease_secs: Option<u32> = r.get(10)?;
    let lease_expires: Option<i64> = r.get(11)?;
    let lease = match (lease_server, lease_secs, lease_expires) {
        (Some(server), Some(lease_secs), Some(exp)) => Some(Lease {
            server,
            lease_secs,
            expires: u(exp),
        }),
        _ => None,
    };
    let Some(prev_mac) = parse::<Mac>(r.get(12)?) else {
        return Ok(None);
    };
    let prev_until: Option<i64> = r.get(13)?;
    let hostname: Option<String> = r.get(8)?;
    Ok(Some((
        DeviceKey { seg, ip },
        Device {
            mac,
            first_seen: u(r.get(5)?),
            last_seen: u(r.get(6)?),
            source,
            hostname: hostname.map(Into::into),
            lease,
            previous: prev_mac.zip(prev_until.map(u)),
            mac_changes: r.get(14)?,
            boot: r
                .get::<_, Option<String>>(15)?
                .and_then(|j| serde_json::from_str(&j).ok())
                .map(Box::new),
        },
    )))
}

fn addr6_row(r: &Row<'_>) -> Parsed<(Segment, Mac, Addr6)> {
    let seg = seg_from(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
    let (Ok(ip), Ok(mac), Some(learnt)) = (
        r.get::<_, String>(3)?.parse::<std::net::Ipv6Addr>(),
        r.get::<_, String>(4)?.parse::<Mac>(),
        Learnt::parse(&r.get::<_, String>(6)?),
    ) else {
        return Ok(None);
    };
    Ok(Some((
        seg,
        mac,
        Addr6 {
            ip,
            // Derived again, so a row edited by hand cannot make it disagree with the address.
            kind: AddrKind::of(ip, mac, learnt),
            learnt,
            first_seen: u(r.get(7)?),
            last_seen: u(r.get(8)?),
        },
    )))
}

fn router_row(r: &Row<'_>) -> Parsed<(RouterKey, Router)> {
    let seg = seg_from(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
    let (Ok(ip), Ok(mac)) = (
        r.get::<_, String>(3)?.parse::<std::net::Ipv6Addr>(),
        r.get::<_, String>(4)?.parse::<Mac>(),
    ) else {
        return Ok(None);
    };
    let last: Option<String> = r.get(9)?;
    let last = match last {
        None => None,
        Some(j) => match serde_json::from_str(&j) {
            Ok(ra) => Some(ra),
            Err(_) => return Ok(None),
        },
    };
    Ok(Some((
        RouterKey { seg, ip, mac },
        Router {
            first_seen: u(r.get(5)?),
            last_seen: u(r.get(6)?),
            adverts: u(r.get(7)?),
            retired_at: r.get::<_, Option<i64>>(8)?.map(u),
            last,
        },
    )))
}

fn server6_row(r: &Row<'_>) -> Parsed<(Server6Key, Server6)> {
    let seg = seg_from(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
    let (Ok(duid), Ok(s)) = (
        r.get::<_, String>(3)?.parse::<crate::decode::Duid>(),
        serde_json::from_str::<Server6>(&r.get::<_, String>(6)?),
    ) else {
        return Ok(None);
    };
    Ok(Some((Server6Key { seg, duid }, s)))
}

fn server_row(r: &Row<'_>) -> Parsed<(ServerKey, Server)> {
    let seg = seg_from(&r.get::<_, String>(0)?, r.get(1)?, r.get(2)?);
    let (Ok(server_id), Ok(mac)) = (
        r.get::<_, String>(3)?.parse::<Ipv4Addr>(),
        r.get::<_, String>(4)?.parse::<Mac>(),
    ) else {
        return Ok(None);
    };
    let (Some(lowest), Some(highest)) =
        (parse::<Ipv4Addr>(r.get(10)?), parse::<Ipv4Addr>(r.get(11)?))
    else {
        return Ok(None);
    };
    let Ok(recent) = serde_json::from_str::<Vec<Ipv4Addr>>(&r.get::<_, String>(12)?) else {
        return Ok(None);
    };
    Ok(Some((
        ServerKey {
            seg,
            server_id,
            mac,
        },
        Server {
            first_seen: u(r.get(5)?),
            last_seen: u(r.get(6)?),
            offers: u(r.get(7)?),
            acks: u(r.get(8)?),
            naks: u(r.get(9)?),
            lowest_offered: lowest,
            highest_offered: highest,
            recent_offers: recent,
        },
    )))
}

fn finding_row(r: &Row<'_>) -> Parsed<Finding> {
    let Some(kind) = kind::parse(&r.get::<_, String>(0)?) else {
        return Ok(None);
    };
    let seg = seg_from(&r.get::<_, String>(3)?, r.get(4)?, r.get(5)?);
    let Ok(evidence) = serde_json::from_str::<Value>(&r.get::<_, String>(10)?) else {
        return Ok(None);
    };
    let closed: Option<i64> = r.get(7)?;
    Ok(Some(Finding {
        kind,
        subject: crate::detect::Subject::parse(&r.get::<_, String>(1)?, seg),
        seg,
        vlan: seg.vlan_label(),
        opened: u(r.get(2)?),
        last_seen: u(r.get(6)?),
        closed: closed.map(u),
        packets: u(r.get(8)?),
        evidence,
        quiet: u(r.get(9)?),
    }))
}

fn event_row(r: &Row<'_>) -> Parsed<HistoryEvent> {
    let seg = seg_from(&r.get::<_, String>(2)?, r.get(3)?, r.get(4)?);
    let (Some(ip), Ok(mac)) = (
        parse::<std::net::IpAddr>(r.get(5)?),
        r.get::<_, String>(6)?.parse::<Mac>(),
    ) else {
        return Ok(None);
    };
    let detail: Option<String> = r.get(7)?;
    let detail = detail
        .and_then(|d| serde_json::from_str(&d).ok())
        .unwrap_or(Value::Null);
    Ok(Some(HistoryEvent {
        id: u(r.get(8)?),
        ts: u(r.get(0)?),
        seg,
        kind: r.get::<_, String>(1)?.into(),
        ip,
        mac,
        detail: Detail::Json(detail),
    }))
}

#[cfg(test)]
mod tests;
